#!/usr/bin/env python3
"""Helpers for the bulk-delivery integration tests (tests/integration/cli_bulk_*.sh).

The tests never trust pobox's own view of what it was asked to deliver: every
update a test enqueues is appended to a log (JSON lines, in enqueue order) by
the test itself, and the expected simulator store is computed from that log
(plus any --preload CSV the simulator was started with).

Subcommands
  gen      generate import CSVs (+ the log of what they enqueue, + a preload CSV)
  produce  a producer loop: `pobox put` / small `pobox import` of increasing
           values to overlapping profiles until a stop file appears; logs each
           update after pobox acknowledged it
  expect   print the expected store as JSON
  compare  fetch GET /_sim/profiles and diff it against the expected store:
           missing / extra profiles, missing / extra / stale attributes

Log format: one JSON object per line, {"t": idType, "id": ..., "a": attr,
"v": value}; lines of the form  TYPE<TAB>ID<TAB>ATTR<TAB>VALUE  are accepted
too (for simple values written by shell loops).
"""
import argparse
import csv
import io
import json
import os
import random
import subprocess
import sys
import time
import urllib.parse
import urllib.request

# Values that must survive URL-encoding, CSV quoting and form decoding.
TRICKY = [
    "a,b,c", "x&y=z", "k=v", "1+1=2", "100%", "%41%zz%", "say \"hi\"", "'single'",
    "line1\nline2", "cr\r\nlf", "tab\there", "space in value", "ünïcødé ✓ 日本語 🎉",
    "semi;colon", "#hash?q=1&r=2", "back\\slash", "<xml>&amp;</xml>", "batch=x,y",
    "trailing comma,", "=leading-equals", "+plus-first", "%", "&", "a%2Cb", "\u00a0nbsp",
]


def read_log(path):
    """Yields (idType, id, attr, value) in enqueue order."""
    if not path or not os.path.exists(path):
        return
    with open(path, "r", encoding="utf-8", newline="") as f:
        for ln, line in enumerate(f, 1):
            if line.endswith("\n"):
                line = line[:-1]
            if not line:
                continue
            if line.startswith("{"):
                o = json.loads(line)
                yield o["t"], o["id"], o["a"], o["v"]
            else:
                parts = line.split("\t")
                if len(parts) != 4:
                    sys.exit(f"{path}:{ln}: bad log line {line!r}")
                yield tuple(parts)


def log_line(t, pid, attr, value):
    return json.dumps({"t": t, "id": pid, "a": attr, "v": value}, ensure_ascii=False) + "\n"


def read_preload(path):
    """The simulator's --preload dialect: header idType,attr...; cells split on
    ',' then URL-decoded; empty cells skipped."""
    out = {}
    with open(path, "r", encoding="utf-8") as f:
        lines = f.read().split("\n")
    header = [urllib.parse.unquote_plus(h) for h in lines[0].rstrip("\r").split(",")]
    t = header[0]
    for line in lines[1:]:
        line = line.rstrip("\r")
        if not line:
            continue
        cells = [urllib.parse.unquote_plus(c) for c in line.split(",")]
        key = (t, cells[0])
        prof = out.setdefault(key, {})
        for name, v in zip(header[1:], cells[1:]):
            if v != "":
                prof[name] = v
    return out


def expected_store(logs, preloads, excludes):
    store = {}
    for p in preloads:
        for key, attrs in read_preload(p).items():
            store.setdefault(key, {}).update(attrs)
    ex = set()
    for e in excludes:
        t, _, pid = e.partition(":")
        ex.add((t, pid))
    for log in logs:
        for t, pid, attr, value in read_log(log):
            if (t, pid) in ex or value == "":
                continue
            store.setdefault((t, pid), {})[attr] = value
    return store


def fetch_store(url):
    with urllib.request.urlopen(url.rstrip("/") + "/_sim/profiles", timeout=30) as r:
        doc = json.load(r)
    store = {}
    for p in doc["profiles"]:
        store[(p["idType"], p["id"])] = dict(p["attributes"])
    return store


def short(v, n=60):
    r = repr(v)
    return r if len(r) <= n else r[: n - 10] + "..." + r[-7:]


def cmd_compare(a):
    want = expected_store(a.log, a.preload, a.exclude)
    got = fetch_store(a.url)
    problems = []
    for key in sorted(set(want) | set(got)):
        w, g = want.get(key), got.get(key)
        name = f"{key[0]}:{key[1]}"
        if g is None:
            problems.append(f"missing profile {name} (expected {len(w)} attributes)")
            continue
        if w is None:
            problems.append(f"extra profile {name}: {short(g, 120)}")
            continue
        for attr in sorted(set(w) | set(g)):
            if attr not in g:
                problems.append(f"missing {name} {attr}: expected {short(w[attr])}")
            elif attr not in w:
                problems.append(f"extra {name} {attr} = {short(g[attr])}")
            elif w[attr] != g[attr]:
                problems.append(f"stale {name} {attr}: expected {short(w[attr])}, got {short(g[attr])}")
    nattr = sum(len(v) for v in want.values())
    if problems:
        print(f"store differs from expected ({len(want)} profiles, {nattr} attributes expected;"
              f" {len(got)} profiles in the store): {len(problems)} problems")
        kinds = {}
        for p in problems:
            k = p.split(" ", 1)[0]
            kinds[k] = kinds.get(k, 0) + 1
        print("  by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
        for p in problems[: a.show]:
            print("  " + p)
        if len(problems) > a.show:
            print(f"  ... and {len(problems) - a.show} more")
        return 1
    print(f"store matches: {len(want)} profiles, {nattr} attributes")
    return 0


def cmd_expect(a):
    want = expected_store(a.log, a.preload, a.exclude)
    doc = [{"idType": k[0], "id": k[1], "attributes": v} for k, v in sorted(want.items())]
    json.dump({"profiles": doc}, sys.stdout, ensure_ascii=False, sort_keys=True)
    print()
    return 0


def cmd_gen(a):
    """Writes DIR/import_NNN.csv (import in name order), appends what each
    enqueues to --log, and writes DIR/preload.csv for the pcIds (v1 updates
    existing profiles only)."""
    rnd = random.Random(a.seed)
    os.makedirs(a.out, exist_ok=True)
    attrs = [f"a{i}" for i in range(a.attrs)]
    tp = [f"tp-{i}" for i in range(a.tp)]
    pc = [f"{1700000000000 + i}-{i * 7919 % 1000000:06d}.01_00" for i in range(a.pc)]
    if a.tricky_ids:
        tp += ["ünï-id", "id with space", "id,comma", "id&amp=1", "id%25", "id\"q\""]
    # preload: every pcId (v1 never creates), with one attribute pobox will
    # overwrite (a0) and one it never touches (keep); a few thirdPartyIds too.
    with open(os.path.join(a.out, "preload.csv"), "w", encoding="utf-8", newline="") as f:
        f.write("pcId,a0,keep\n")
        for i, p in enumerate(pc):
            f.write(f"{urllib.parse.quote(p, safe='')},{urllib.parse.quote('pre,0 ' + str(i), safe='')},"
                    f"{urllib.parse.quote('kept ✓ ' + str(i), safe='')}\n")
    if a.tp_preload:
        with open(os.path.join(a.out, "preload_tp.csv"), "w", encoding="utf-8", newline="") as f:
            f.write("thirdPartyId,a1,keep\n")
            for i, p in enumerate(tp[: a.tp_preload]):
                f.write(f"{urllib.parse.quote(p, safe='')},old{i},{urllib.parse.quote('tp kept ' + str(i), safe='')}\n")
    counter = 0
    logf = open(a.log, "a", encoding="utf-8")
    per_file = max(1, a.updates // a.files)
    written = 0
    for fi in range(a.files):
        t = "pcId" if (a.pc and fi % 3 == 2) else "thirdPartyId"
        ids = pc if t == "pcId" else tp
        if not ids:
            t, ids = "thirdPartyId", tp
        # skewed choice: a hot set gets most updates, so coalescing matters
        hot = ids[: max(1, len(ids) // 10)]
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow([t] + attrs)
        n = 0
        target = per_file if fi < a.files - 1 else a.updates - written
        while n < target:
            pid = rnd.choice(hot) if rnd.random() < 0.5 else rnd.choice(ids)
            row = [pid] + [""] * len(attrs)
            for ai in rnd.sample(range(len(attrs)), rnd.randint(1, min(3, len(attrs)))):
                counter += 1
                v = f"v{counter}"
                if a.tricky and rnd.random() < 0.4:
                    v = rnd.choice(TRICKY) + f"#{counter}"
                row[1 + ai] = v
            for ai in range(len(attrs)):  # row order = enqueue order
                if row[1 + ai] != "":
                    logf.write(log_line(t, pid, attrs[ai], row[1 + ai]))
                    n += 1
            w.writerow(row)
        written += n
        with open(os.path.join(a.out, f"import_{fi:03d}.csv"), "w", encoding="utf-8", newline="") as f:
            f.write(buf.getvalue())
    logf.close()
    print(f"generated {written} updates in {a.files} files")
    return 0


def cmd_produce(a):
    """Producer loop for the fence and crash tests: until --stop exists, put
    or import increasing values to a small set of overlapping profiles.
    An update is logged only after pobox exited 0 for it.  Any other exit is
    reported (DESIGN: producers never see 'database is locked')."""
    rnd = random.Random(a.seed)
    ids = [("thirdPartyId", f"hot-{i}") for i in range(a.tp)] + \
          [("pcId", p) for p in (a.pcids.split(",") if a.pcids else [])]
    attrs = [f"h{i}" for i in range(a.attrs)]
    base = ["pobox"] if False else [a.pobox] + (["-c", a.conf] if a.conf else [])
    counter = a.start
    failures = 0
    ops = 0
    logf = open(a.log, "a", encoding="utf-8")
    tmpcsv = a.log + ".producer.csv"
    deadline = time.time() + a.max_seconds
    while not os.path.exists(a.stop) and time.time() < deadline:
        ops += 1
        if rnd.random() < 0.7:
            t, pid = rnd.choice(ids)
            chosen = rnd.sample(attrs, rnd.randint(1, min(3, len(attrs))))
            pairs = []
            for at in chosen:
                counter += 1
                pairs.append((at, f"p{counter}" + (" ,&=+%\"x" if counter % 7 == 0 else "")))
            cmd = base + ["put", f"{t}:{pid}"] + [f"{k}={v}" for k, v in pairs]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                failures += 1
                sys.stderr.write(f"producer: put exit {r.returncode}: {r.stderr.strip()[:300]}\n")
                continue
            for k, v in pairs:
                logf.write(log_line(t, pid, k, v))
        else:
            t = rnd.choice(sorted({x[0] for x in ids}))
            pool = [x for x in ids if x[0] == t]
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow([t] + attrs)
            rows = []
            for _ in range(rnd.randint(3, 15)):
                _, pid = rnd.choice(pool)
                row = [pid] + [""] * len(attrs)
                for ai in rnd.sample(range(len(attrs)), rnd.randint(1, len(attrs))):
                    counter += 1
                    row[1 + ai] = f"i{counter}"
                rows.append(row)
                w.writerow(row)
            with open(tmpcsv, "w", encoding="utf-8", newline="") as f:
                f.write(buf.getvalue())
            r = subprocess.run(base + ["import", tmpcsv], capture_output=True, text=True)
            if r.returncode != 0:
                failures += 1
                sys.stderr.write(f"producer: import exit {r.returncode}: {r.stderr.strip()[:300]}\n")
                continue
            for row in rows:
                for ai in range(len(attrs)):
                    if row[1 + ai] != "":
                        logf.write(log_line(t, row[0], attrs[ai], row[1 + ai]))
        logf.flush()
        if a.sleep_ms:
            time.sleep(rnd.random() * a.sleep_ms / 1000.0)
    logf.close()
    with open(a.stats, "w") as f:
        f.write(f"{ops} {failures} {counter}\n")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compare")
    c.add_argument("--url", required=True)
    c.add_argument("--log", action="append", default=[])
    c.add_argument("--preload", action="append", default=[])
    c.add_argument("--exclude", action="append", default=[], help="TYPE:ID whose enqueued updates are expected dead")
    c.add_argument("--show", type=int, default=25)
    e = sub.add_parser("expect")
    e.add_argument("--log", action="append", default=[])
    e.add_argument("--preload", action="append", default=[])
    e.add_argument("--exclude", action="append", default=[])
    g = sub.add_parser("gen")
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--out", required=True)
    g.add_argument("--log", required=True)
    g.add_argument("--tp", type=int, default=300)
    g.add_argument("--pc", type=int, default=100)
    g.add_argument("--tp-preload", type=int, default=0)
    g.add_argument("--attrs", type=int, default=8)
    g.add_argument("--updates", type=int, default=4000)
    g.add_argument("--files", type=int, default=6)
    g.add_argument("--tricky", action="store_true")
    g.add_argument("--tricky-ids", action="store_true")
    p = sub.add_parser("produce")
    p.add_argument("--pobox", required=True)
    p.add_argument("--conf")
    p.add_argument("--log", required=True)
    p.add_argument("--stop", required=True)
    p.add_argument("--stats", required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--tp", type=int, default=20)
    p.add_argument("--pcids", default="")
    p.add_argument("--attrs", type=int, default=4)
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--sleep-ms", type=int, default=0)
    p.add_argument("--max-seconds", type=float, default=600)
    a = ap.parse_args()
    return {"compare": cmd_compare, "expect": cmd_expect, "gen": cmd_gen, "produce": cmd_produce}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
