#!/usr/bin/env python3
"""An outbox as the schema-4/5 release (the `updates` layout) left it, for
tests/integration/cli_storage_upgrade.sh.

The schema itself is applied by that test with the sqlite3 shell from
schema/0001..0004 (or ..0005), the way pobox's store applies migrations.
This script writes the SQL that fills it: a model of the old code's
operations (enqueue, cut, submit, deliver, dead-letter, split, stuck and
replaced, prune, purge, requeue, the single lane), each writing rows the way
main's src/store/batch.c and src/sched.c did:

  - updates: seq AUTOINCREMENT, state live/superseded/dead; a cut
    supersedes the older values of an attribute (superseded_by = the
    winner's seq); dead rows carry attempts, last_error, dead_at_ms and
    last_http_status; requeued dead rows become superseded and keep them;
  - profiles: batch + batch_seq (the newest seq in the outbox when the cut
    began) while in an unfinished batch; done_seq = batch_seq, done_at_ms,
    last_v2_at_ms on delivery; attempts / next_attempt_at_ms / last_error
    after a failed row;
  - batches: payload = zlib(header) + zlib(rows) (two streams, the header
    written last), payload_crc32 and bytes of the exact batch file
    (`batch=<idtype>,<attr>...` then one percent-encoded row per profile, a
    v2 row carrying the profile's last delivered values of other
    attributes when it was delivered by v2 within 24 hours);
  - profile_state: the newest delivered value of each attribute of a
    pruned profile (the whole profile's delivered rows are deleted).

The batch that is `submitted` in the old outbox was really submitted: this
script POSTs its exact bytes to the simulator (--sim) and stores the
batchStatus URL the simulator answered, so the new pobox can follow it.

Outputs (--out DIR):
  fill.sql      the rows (run inside one transaction by the test)
  expected.log  the expected simulator store after `pobox flush --wait`,
                in bulk_expect.py's log format
  facts.txt     shell assignments the test uses (KEY=VALUE)
  batch_N.body  the exact batch file of some of its batches
"""
import argparse
import json
import os
import random
import time
import urllib.parse
import urllib.request
import zlib

H = 3600 * 1000
BULK_ATTRS = 10
CARRY_MS = 24 * H

TRICKY = [
    "a,b,c", "x&y=z", "k=v", "1+1=2", "100%", "%41%zz%", 'say "hi"', "'single'",
    "line1\nline2", "cr\r\nlf", "tab\there", "space in value", "ünïcødé ✓ 日本語 🎉",
    "semi;colon", "#hash?q=1&r=2", "back\\slash", "<xml>&amp;</xml>", "batch=x,y",
    "trailing comma,", "=leading-equals", "+plus-first", "%", "&", "a%2Cb", "\u00a0nbsp",
]
TRICKY_IDS = ["id with space", "id,comma", "ünï-id", "id&amp=1", "id%25", 'id"q"', "tp.1-_~x"]

UNRESERVED = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def urlenc(s):
    """src/urlenc.c: RFC 3986 unreserved bytes as they are, the rest %XX."""
    return "".join(chr(b) if b in UNRESERVED else "%%%02X" % b for b in s.encode("utf-8"))


def sql_str(v):
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, int):
        return str(v)
    if isinstance(v, bytes):
        return "X'" + v.hex() + "'"
    s = str(v)
    if any(ord(c) < 0x20 and c != "\n" for c in s):
        # the sqlite3 shell drops a CR before a line end: spell the bytes
        return "CAST(X'" + s.encode("utf-8").hex() + "' AS TEXT)"
    return "'" + s.replace("'", "''") + "'"


class Old:
    def __init__(self, now_ms, rnd, bulk=0):
        self.now = now_ms
        self.rnd = rnd
        self.bulk = bulk        # profiles of a bulk history written by bulk_sql()
        self.profiles = {}      # id -> dict
        self.by_key = {}        # (type, pid) -> id
        self.attrs = {}         # name -> id
        self.sources = {}
        self.updates = {}       # seq -> dict (all rows ever inserted)
        self.deleted = []       # seqs deleted later (pruned, purged), in order
        self.seq = 0
        self.batches = {}       # id -> dict
        self.profile_state = {}  # (profile, attr) -> [value, sent_at_ms, seq]
        self.quota = {}         # minute -> [used, urgent]
        self.bulk_calls = []
        self.call_counts = {}   # (lane, status) -> [calls, errors]
        if bulk:  # ids, seqs and the first batch taken by the bulk history
            self.seq = bulk * BULK_ATTRS
            for a in range(BULK_ATTRS):
                self.attr("b%d" % a)
            self.source("import")

    # ---- keys --------------------------------------------------------------
    def profile(self, t, pid):
        k = (t, pid)
        if k not in self.by_key:
            i = len(self.profiles) + 1 + self.bulk
            self.by_key[k] = i
            self.profiles[i] = dict(id=i, id_type=t, profile_id=pid, batch=None, batch_seq=0,
                                    done_seq=0, done_at_ms=None, last_v2_at_ms=None, attempts=0,
                                    next_attempt_at_ms=0, last_error=None, route_bulk=0)
        return self.by_key[k]

    def attr(self, name):
        if name not in self.attrs:
            self.attrs[name] = len(self.attrs) + 1
        return self.attrs[name]

    def source(self, name):
        if name not in self.sources:
            self.sources[name] = len(self.sources) + 1
        return self.sources[name]

    # ---- writing -----------------------------------------------------------
    def enqueue(self, t, pid, attr, value, at, source="import", urgent=0, via=None):
        """via = (id_type, attr) as a sqlite3 producer spelled them: the row is
        written by the old schema's INSERT INTO enqueue (its trigger)."""
        if value == "":
            return None
        p = self.profile(t, pid)
        self.seq += 1
        self.updates[self.seq] = dict(seq=self.seq, profile=p, attr=self.attr(attr), value=value,
                                      enqueued_at_ms=at, source=self.source(source), urgent=urgent,
                                      state="live", superseded_by=None, attempts=0,
                                      last_error=None, dead_at_ms=None, last_http_status=None,
                                      via=via)
        return self.seq

    def put(self, t, pid, at, source="import", urgent=0, **kv):
        return [self.enqueue(t, pid, a, v, at, source, urgent) for a, v in kv.items()]

    def live(self, p, lo, hi=None):
        """Live rows of profile p with lo < seq <= hi, by attribute then seq."""
        rows = [u for u in self.updates.values() if u["profile"] == p and u["state"] == "live"
                and u["seq"] > lo and (hi is None or u["seq"] <= hi) and u["seq"] not in self.gone()]
        return sorted(rows, key=lambda u: (u["attr"], u["seq"]))

    def gone(self):
        return set(self.deleted)

    def max_seq(self):
        g = self.gone()
        return max([s for s in self.updates if s not in g], default=0)

    def last_delivered(self, p):
        """pobox_store_last_delivered of main: attr -> value."""
        pr = self.profiles[p]
        out = {}
        for u in sorted(self.live(p, 0, pr["done_seq"]), key=lambda u: u["seq"]):
            out[u["attr"]] = u["value"]
        for (pp, a), (v, _, _) in sorted(self.profile_state.items()):
            if pp == p and a not in out:
                out[a] = v
        return out

    # ---- batches -----------------------------------------------------------
    def _row_cells(self, p, api, at, fixed_upto=None, supersede=True):
        """on_profile of main's sched.c: own cells (coalesced), carried ones."""
        pr = self.profiles[p]
        rows = self.live(p, pr["done_seq"], fixed_upto)
        own = []
        upto = 0
        for i, u in enumerate(rows):
            upto = max(upto, u["seq"])
            if i + 1 < len(rows) and rows[i + 1]["attr"] == u["attr"]:
                if supersede:
                    w = i + 1
                    while w + 1 < len(rows) and rows[w + 1]["attr"] == u["attr"]:
                        w += 1
                    u["state"] = "superseded"
                    u["superseded_by"] = rows[w]["seq"]
                continue
            own.append((u["attr"], u["value"], False))
        carried = []
        if (api == 2 and pr["last_v2_at_ms"] is not None
                and at - pr["last_v2_at_ms"] <= CARRY_MS):
            have = {a for a, _, _ in own}
            for a, v in self.last_delivered(p).items():
                if a not in have:
                    carried.append((a, v, True))
        return own, carried, upto

    def _payload(self, t, profiles_cells):
        """The batch file, and its stored form (two zlib streams)."""
        names = {i: n for n, i in self.attrs.items()}
        cols, colpos = [], {}
        lines = []
        for pid, cells in profiles_cells:
            for a, _, _ in cells:
                if a not in colpos:
                    colpos[a] = len(cols)
                    cols.append(a)
            cells = sorted(cells, key=lambda c: colpos[c[0]])
            line, col = urlenc(pid), 0
            for a, v, _ in cells:
                while col < colpos[a]:
                    line += ","
                    col += 1
                line += "," + urlenc(v)
                col += 1
            lines.append(line + "\n")
        head = "batch=" + t + "".join("," + urlenc(names[a]) for a in cols) + "\n"
        rows = "".join(lines)
        hb, rb = head.encode(), rows.encode()
        stored = zlib.compress(hb, 1) + zlib.compress(rb, 1)
        return hb + rb, stored

    def new_batch(self, api, t, at, reason="cut", parent=None, resubmits=0, lane="bulk"):
        i = len(self.batches) + 1 + (1 if self.bulk else 0)
        self.batches[i] = dict(id=i, lane=lane, api=("v%d" % api) if lane == "bulk" else "single",
                               id_type=t, state="ready", reason=reason, parent=parent,
                               resubmits=resubmits, profiles=0, updates=0, carried=0, bytes=0,
                               payload_crc32=0, status_url=None, attempts=0, polls=0,
                               next_at_ms=at, remote_status=None, last_http_status=None,
                               last_error=None, created_at_ms=at, submitted_at_ms=None,
                               finished_at_ms=None, batch_size=None, successful_updates=None,
                               profiles_not_found=None, failed_updates=None, payload=b"",
                               body=b"")
        return i

    def _fill(self, b, t, members, at, api, build=False):
        """Builds b's payload from its members' rows (a cut, or a rebuild)."""
        pc, updates, carried = [], 0, 0
        for p in members:
            pr = self.profiles[p]
            own, car, _ = self._row_cells(p, api, at, pr["batch_seq"] if build else None,
                                          supersede=not build)
            pc.append((pr["profile_id"], own + car))
            updates += len(own)
            carried += len(car)
        body, stored = self._payload(t, pc)
        bb = self.batches[b]
        bb.update(profiles=len(members), updates=updates, carried=carried, bytes=len(body),
                  payload_crc32=zlib.crc32(body), payload=stored, body=body)

    def cut(self, keys, at, api=None):
        """One batch of these profiles (all of one id type), as a cut makes it."""
        ps = sorted(self.by_key[k] for k in keys)
        t = self.profiles[ps[0]]["id_type"]
        api = api or (1 if t == "pcId" else 2)
        max_seq = self.max_seq()
        b = self.new_batch(api, t, at)
        self._fill(b, t, ps, at, api)
        for p in ps:
            self.profiles[p].update(batch=b, batch_seq=max_seq)
        return b

    def submit(self, b, at, status_url, calls=1):
        self.batches[b].update(state="submitted", status_url=status_url, attempts=0,
                               submitted_at_ms=at, next_at_ms=at + 100, last_http_status=200)
        self.call(at, 200, calls)

    def call(self, at, status, n=1, errors=0):
        for k in range(n):
            self.bulk_calls.append(at + k)
        c = self.call_counts.setdefault(("bulk", status), [0, 0])
        c[0] += n
        c[1] += errors

    def members(self, b):
        return sorted(p for p, pr in self.profiles.items() if pr["batch"] == b)

    def deliver(self, b, at):
        bb = self.batches[b]
        v2 = bb["api"] == "v2"
        for p in self.members(b):
            pr = self.profiles[p]
            pr.update(done_seq=pr["batch_seq"], done_at_ms=at, batch=None, attempts=0,
                      next_attempt_at_ms=0, last_error=None, route_bulk=0)
            if v2:
                pr["last_v2_at_ms"] = at
        bb.update(state="done", finished_at_ms=at, remote_status="complete", last_http_status=200,
                  batch_size=bb["profiles"], successful_updates=bb["profiles"],
                  profiles_not_found=0, failed_updates=0, polls=1)
        self.call(at, 200)

    def kill_batch(self, b, reason, http, attempts, at):
        bb = self.batches[b]
        bb.update(attempts=attempts, last_http_status=http, last_error=reason)
        for p in self.members(b):
            pr = self.profiles[p]
            for u in self.live(p, pr["done_seq"], pr["batch_seq"]):
                u.update(state="dead", last_error=reason, attempts=attempts,
                         last_http_status=http, dead_at_ms=at)
            pr["batch"] = None
        bb.update(state="dead", finished_at_ms=at)
        self.call(at, http, attempts, attempts)

    def kill_cap(self, key, at):
        """A profile over Target's per-profile cap, dead-lettered at a cut."""
        p = self.by_key[key]
        pr = self.profiles[p]
        own, _, upto = self._row_cells(p, 2, at)
        names = {i: n for n, i in self.attrs.items()}
        raw = sum(len(names[u["attr"]].encode()) + len(u["value"].encode())
                  for u in self.live(p, pr["done_seq"]))
        why = ("profile data is %d bytes, over Target's 65536-byte per-profile cap" % raw)
        for u in self.live(p, pr["done_seq"], upto):
            u.update(state="dead", last_error=why, attempts=0, dead_at_ms=at)

    def row_failed(self, b, key, reason, next_at):
        p = self.by_key[key]
        pr = self.profiles[p]
        pr.update(batch=None, attempts=pr["attempts"] + 1, next_attempt_at_ms=next_at,
                  last_error=reason)

    def split(self, b, at):
        """A refused file: two halves, rows moved (batch_move), payloads rebuilt."""
        bb = self.batches[b]
        ms = self.members(b)
        mid = ms[(len(ms) - 1) // 2]
        api = int(bb["api"][1])
        kids = []
        for half in ([p for p in ms if p <= mid], [p for p in ms if p > mid]):
            k = self.new_batch(api, bb["id_type"], at, "split", b)
            for p in half:
                self.profiles[p]["batch"] = k
            self._fill(k, bb["id_type"], half, at, api, build=True)
            kids.append(k)
        bb.update(state="split", finished_at_ms=at, last_http_status=400,
                  last_error="HTTP 400: too many rows", attempts=1)
        self.call(at, 400, 1, 1)
        return kids

    def replace_stuck(self, b, at):
        bb = self.batches[b]
        k = self.new_batch(int(bb["api"][1]), bb["id_type"], at, "stuck", b, bb["resubmits"] + 1)
        kb = self.batches[k]
        for f in ("profiles", "updates", "carried", "bytes", "payload", "payload_crc32", "body"):
            kb[f] = bb[f]
        for p in self.members(b):
            self.profiles[p]["batch"] = k
        bb.update(state="replaced", finished_at_ms=at, remote_status="stuck")
        return k

    def single_deliver(self, keys, at, urgent=0):
        """A single-lane batch whose calls all succeeded."""
        ps = sorted(self.by_key[k] for k in keys)
        t = self.profiles[ps[0]]["id_type"]
        b = self.new_batch(0, t, at, lane="single")
        n = 0
        for p in ps:
            pr = self.profiles[p]
            own, _, upto = self._row_cells(p, 0, at)
            n += len(own)
            pr.update(done_seq=upto, done_at_ms=at, attempts=0, next_attempt_at_ms=0,
                      last_error=None)
        self.batches[b].update(state="done", profiles=len(ps), updates=n, bytes=40 * len(ps),
                               finished_at_ms=at, successful_updates=len(ps),
                               profiles_not_found=0, failed_updates=0)
        q = self.quota.setdefault(at // 60000, [0, 0])
        q[0] += len(ps)
        q[1] += urgent * len(ps)
        c = self.call_counts.setdefault(("single", 200), [0, 0])
        c[0] += len(ps)

    # ---- housekeeping and operators ----------------------------------------
    def prune(self, key):
        """main's pobox_store_prune for one profile."""
        p = self.by_key[key]
        pr = self.profiles[p]
        newest = {}
        for u in self.live(p, 0, pr["done_seq"]):
            if u["attr"] not in newest or u["seq"] > newest[u["attr"]]["seq"]:
                newest[u["attr"]] = u
        for a, u in newest.items():
            cur = self.profile_state.get((p, a))
            if cur is None or u["seq"] > cur[2]:
                self.profile_state[(p, a)] = [u["value"], pr["done_at_ms"], u["seq"]]
        for u in self.live(p, 0, pr["done_seq"]):
            self.deleted.append(u["seq"])

    def purge(self, seqs):
        self.deleted.extend(seqs)

    def requeue(self, seqs, at):
        """main's pobox_store_dead_requeue."""
        g = self.gone()
        sel = [self.updates[s] for s in sorted(seqs)]
        for u in sel:  # 1. replaced by a newer live value or a pruned one
            newer = [n["seq"] for n in self.updates.values() if n["seq"] not in g
                     and n["profile"] == u["profile"] and n["attr"] == u["attr"]
                     and n["state"] == "live" and n["seq"] > u["seq"]]
            ps = self.profile_state.get((u["profile"], u["attr"]))
            if ps and ps[2] > u["seq"]:
                newer.append(ps[2])
            if newer:
                u.update(state="superseded", superseded_by=max(newer))
        newest = {}
        for u in sel:  # 2. the newest still dead per profile+attr goes in again
            if u["state"] == "dead":
                newest[(u["profile"], u["attr"])] = u
        for u in sorted(newest.values(), key=lambda u: u["seq"]):
            pr = self.profiles[u["profile"]]
            name = next(n for n, i in self.attrs.items() if i == u["attr"])
            src = next(n for n, i in self.sources.items() if i == u["source"])
            self.enqueue(pr["id_type"], pr["profile_id"], name, u["value"], at, src, u["urgent"])
        for u in sel:  # 3. the rest points at the replacement
            if u["state"] == "dead":
                rep = [n["seq"] for n in self.updates.values() if n["profile"] == u["profile"]
                       and n["attr"] == u["attr"] and n["state"] == "live"]
                u.update(state="superseded", superseded_by=max(rep))
        for u in sel:
            pr = self.profiles[u["profile"]]
            if pr["batch"] is None:
                pr.update(attempts=0, next_attempt_at_ms=0, last_error=None)

    # ---- output ------------------------------------------------------------
    def bulk_sql(self):
        """A big delivered history, as an old nightly job left it: `bulk`
        profiles x BULK_ATTRS attributes, cut four days ago into batch 1 (one
        v2 batch, its real payload) and delivered.  Written with recursive
        CTEs (fast); the model's own rows come after it in seq order."""
        n, w = self.bulk, BULK_ATTRS
        at = self.now - 96 * H
        body = ("batch=thirdPartyId," + ",".join("b%d" % a for a in range(w)) + "\n").encode()
        rows = "".join("bulk-%06d,%s\n" % (k, ",".join("v%d-%d" % (k, a) for a in range(w)))
                       for k in range(1, n + 1)).encode()
        stored = zlib.compress(body, 1) + zlib.compress(rows, 1)
        data = body + rows
        self.bulk_body = data
        return "\n".join([
            "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < %d) "
            "INSERT INTO profiles (id, id_type, profile_id, batch, batch_seq, done_seq, done_at_ms,"
            " last_v2_at_ms) SELECT i, 'thirdPartyId', printf('bulk-%%06d', i), NULL, %d, %d, %d, %d"
            " FROM k;" % (n, n * w, n * w, at + 9000, at + 9000),
            "WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < %d) "
            "INSERT INTO updates (seq, profile, attr, value, enqueued_at_ms, source)"
            " SELECT i + 1, i / %d + 1, i %% %d + 1, printf('v%%d-%%d', i / %d + 1, i %% %d), %d, 1"
            " FROM k;" % (n * w - 1, w, w, w, w, at),
            "INSERT INTO batches (id, lane, api, id_type, state, reason, profiles, updates, bytes,"
            " payload_crc32, status_url, next_at_ms, remote_status, last_http_status, created_at_ms,"
            " submitted_at_ms, finished_at_ms, batch_size, successful_updates, profiles_not_found,"
            " failed_updates, polls, payload) VALUES (1, 'bulk', 'v2', 'thirdPartyId', 'done', 'cut',"
            " %d, %d, %d, %d, 'http://localhost:1/m2/demo/profile/batchStatus?batchId=demo-old-bulk',"
            " %d, 'complete', 200, %d, %d, %d, %d, %d, 0, 0, 3, %s);"
            % (n, n * w, len(data), zlib.crc32(data), at + 9000, at + 1000, at + 2000, at + 9000,
               n, n, sql_str(stored)),
        ]) + "\n"

    def sql(self):
        out = [self.bulk_sql()] if self.bulk else []
        for n, i in self.attrs.items():
            out.append("INSERT INTO attributes (id, name) VALUES (%d, %s);" % (i, sql_str(n)))
        for n, i in self.sources.items():
            out.append("INSERT INTO sources (id, name) VALUES (%d, %s);" % (i, sql_str(n)))
        pc = ["id", "id_type", "profile_id", "batch", "batch_seq", "done_seq", "done_at_ms",
              "last_v2_at_ms", "attempts", "next_attempt_at_ms", "last_error", "route_bulk"]
        for p in sorted(self.profiles):
            pr = self.profiles[p]
            out.append("INSERT INTO profiles (%s) VALUES (%s);" %
                       (", ".join(pc), ", ".join(sql_str(pr[c]) for c in pc)))
        uc = ["seq", "profile", "attr", "value", "enqueued_at_ms", "source", "urgent", "state",
              "superseded_by", "attempts", "last_error", "dead_at_ms", "last_http_status"]
        names = {i: n for n, i in self.attrs.items()}
        srcs = {i: n for n, i in self.sources.items()}
        for s in sorted(self.updates):
            u = self.updates[s]
            if u["via"]:  # the trigger takes the next seq: s, as rows go in seq order
                assert u["state"] == "live"
                out.append("INSERT INTO enqueue (id_type, profile_id, attr, value, urgent, source) "
                           "VALUES (%s);" % ", ".join(map(sql_str, (
                               u["via"][0], self.profiles[u["profile"]]["profile_id"],
                               u["via"][1], u["value"], u["urgent"], srcs[u["source"]]))))
                continue
            out.append("INSERT INTO updates (%s) VALUES (%s);" %
                       (", ".join(uc), ", ".join(sql_str(u[c]) for c in uc)))
        for s in self.deleted:
            out.append("DELETE FROM updates WHERE seq = %d;" % s)
        for (p, a), (v, at, s) in sorted(self.profile_state.items()):
            out.append("INSERT INTO profile_state (profile, attr, value, sent_at_ms, seq) "
                       "VALUES (%d, %d, %s, %d, %d);" % (p, a, sql_str(v), at, s))
        bc = ["id", "lane", "api", "id_type", "state", "reason", "parent", "resubmits", "profiles",
              "updates", "carried", "bytes", "payload_crc32", "status_url", "attempts", "polls",
              "next_at_ms", "remote_status", "last_http_status", "last_error", "created_at_ms",
              "submitted_at_ms", "finished_at_ms", "batch_size", "successful_updates",
              "profiles_not_found", "failed_updates", "payload"]
        for b in sorted(self.batches):
            bb = self.batches[b]
            out.append("INSERT INTO batches (%s) VALUES (%s);" %
                       (", ".join(bc), ", ".join(sql_str(bb[c]) for c in bc)))
        for m, (used, urg) in sorted(self.quota.items()):
            out.append("INSERT INTO quota_minutes (minute, used, urgent) VALUES (%d, %d, %d);"
                       % (m, used, urg))
        for at in self.bulk_calls:
            if at < self.now - 60000:
                continue  # the old code kept the last minute's only
            out.append("INSERT INTO bulk_calls (at_ms) VALUES (%d);" % at)
        # the single lane paused by a throttle, for an hour yet
        out.append("UPDATE lanes SET paused_until_ms = %d, pause_class = 'throttle', pause_reason = "
                   "%s WHERE lane = 'single';"
                   % (self.now + H, sql_str("HTTP 429 from profile/update: Retry-After 3600 s")))
        for (lane, st), (c, e) in sorted(self.call_counts.items()):
            out.append("INSERT INTO call_counts (lane, http_status, calls, errors) VALUES "
                       "(%s, %d, %d, %d);" % (sql_str(lane), st, c, e))
        return "\n".join(out) + "\n"


def post_batch(sim, b, client="demo"):
    path = "/m2/%s/v2/profile/batchUpdate" % client if b["api"] == "v2" else \
        "/m2/%s/profile/batchUpdate" % client
    req = urllib.request.Request(sim.rstrip("/") + path, data=b["body"], method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(req, timeout=30) as r:
        doc = r.read().decode()
    s = doc.find("<batchStatus>")
    e = doc.find("</batchStatus>")
    if s < 0 or e <= s + 13 or "<success>true</success>" not in doc:
        raise SystemExit("the simulator refused the submitted batch: " + doc)
    return doc[s + 13:e]


def scenario(m, sim):
    """The old outbox's history.  Returns facts for the test."""
    now = m.now
    T, P = "thirdPartyId", "pcId"
    r = m.rnd
    facts = {}
    pcs = ["1700000000%03d-%06d.01_00" % (i, i * 7919 % 1000000) for i in range(1, 7)]

    # three days ago: a first night, delivered, later pruned (profile_state)
    d3 = now - 72 * H
    for i in range(1, 9):
        m.put(T, "hist-%d" % i, d3, tier="gold", name="Ann %d, \"the\" 1st" % i, score=str(i))
    m.put(T, "carry-1", d3, tier="bronze", city="Zürich", email="c1@example.com")
    m.put(T, "rb-hist", d3, tier="wood", city="Bern")
    m.put(T, "carry-2", d3, tier="c2-old", city="Basel", pet="cat")
    for i, pc in enumerate(pcs):
        m.put(P, pc, d3, a0="pc night1 %d" % i, a1=TRICKY[i])
    b = m.cut([(T, "hist-%d" % i) for i in range(1, 9)] + [(T, "carry-1"), (T, "rb-hist"),
                                                             (T, "carry-2")], d3 + 1000)
    m.submit(b, d3 + 2000, "http://localhost:1/m2/demo/profile/batchStatus?batchId=demo-old-%d" % b)
    m.deliver(b, d3 + 5000)
    b = m.cut([(P, pc) for pc in pcs], d3 + 1000)
    m.submit(b, d3 + 2000, "http://localhost:1/m2/demo/profile/batchStatus?batchId=demo-old-%d" % b)
    m.deliver(b, d3 + 6000)
    for i in range(1, 5):
        m.prune((T, "hist-%d" % i))
    m.prune((T, "carry-1"))
    m.prune((T, "carry-2"))
    m.prune((P, pcs[0]))

    # thirty hours ago: a second night (delivered rows stay: not pruned yet)
    d2 = now - 30 * H
    for i in range(1, 9):
        m.put(T, "hist-%d" % i, d2, tier="silver", score=str(10 + i))
    m.put(T, "rb-hist", d2, city="Genève")
    for i, pc in enumerate(pcs[:4]):
        m.put(P, pc, d2, a0="pc night2 %d" % i)
    b = m.cut([(T, "hist-%d" % i) for i in range(1, 9)] + [(T, "rb-hist")], d2 + 1000)
    # it was refused (too many rows), split, both halves delivered
    kids = m.split(b, d2 + 2000)
    for k in kids:
        m.deliver(k, d2 + 4000)
    b = m.cut([(P, pc) for pc in pcs[:4]], d2 + 1000)
    # it got stuck and was replaced by a new generation, which completed
    m.submit(b, d2 + 2000, "http://localhost:1/m2/demo/profile/batchStatus?batchId=demo-old-%d" % b)
    k = m.replace_stuck(b, d2 + 60000)
    m.submit(k, d2 + 61000, "http://localhost:1/m2/demo/profile/batchStatus?batchId=demo-old-%d" % k)
    m.deliver(k, d2 + 62000)

    # one hour ago: carry-1 delivered by v2 again (its next row carries its values)
    d1 = now - 1 * H
    m.put(T, "carry-1", d1, city="Zürich Nord", phone="+41 44 000")
    m.put(T, "carry-2", d1, pet="dog")
    b = m.cut([(T, "carry-1"), (T, "carry-2")], d1 + 100)
    m.submit(b, d1 + 200, "http://localhost:1/m2/demo/profile/batchStatus?batchId=demo-old-%d" % b)
    m.deliver(b, d1 + 900)

    # dead letters: HTTP 500 five times (a batch that gave up) ...
    d0 = now - 2 * H
    m.put(T, "dead-http", d0, tier="x", note="will die")
    m.put(T, "dead-http2", d0, tier="y")
    b = m.cut([(T, "dead-http"), (T, "dead-http2")], d0 + 100)
    m.kill_batch(b, "gave up after 5 attempts: HTTP 500 from batchUpdate", 500, 5, d0 + 60000)
    # ... one over the per-profile cap (dead at its cut, nothing sent) ...
    big = {"k%03d" % i: ("v%03d" % i) * 63 for i in range(300)}
    m.put(T, "dead-big", d0, **big)
    m.kill_cap((T, "dead-big"), d0 + 200)
    # ... some requeued (old requeue: they become superseded, new live rows) ...
    m.put(T, "dead-rq", d0, tier="rq-old", score="rq")
    b = m.cut([(T, "dead-rq")], d0 + 300)
    m.kill_batch(b, "gave up after 5 attempts: HTTP 502 from batchUpdate", 502, 5, d0 + 70000)
    rq = [s for s, u in m.updates.items() if u["state"] == "dead"
          and m.profiles[u["profile"]]["profile_id"] == "dead-rq"]
    m.requeue(rq, d0 + 80000)
    # ... a dead value replaced by a newer one before requeue (stale rule) ...
    m.put(T, "dead-http2", d0 + 90000, tier="y2")
    stale = [s for s, u in m.updates.items() if u["state"] == "dead"
             and m.profiles[u["profile"]]["profile_id"] == "dead-http2"]
    m.requeue(stale, d0 + 91000)
    # single lane: pcIds delivered one call each, an hour ago
    m.put(P, pcs[4], d1, a2="single one")
    m.put(P, pcs[5], d1, a2="single two", a3=TRICKY[12])
    m.single_deliver([(P, pcs[4]), (P, pcs[5])], d1 + 500, urgent=1)

    # batches in flight: one sending, one submitted for real, ready ones
    ten = now - 10 * 60000
    for i in range(1, 6):
        m.put(T, "sb-%d" % i, ten, tier="sub-%d" % i, city=TRICKY[i + 5])
    m.put(T, "sb-1", ten + 10, tier="sub-1b")        # superseded at the cut
    b_sub = m.cut([(T, "sb-%d" % i) for i in range(1, 6)], ten + 1000)
    m.submit(b_sub, ten + 2000, post_batch(sim, m.batches[b_sub]))
    for i in range(1, 4):
        m.put(T, "sd-%d" % i, ten, tier="send-%d" % i, TRICKY_name=TRICKY[i])
    b_send = m.cut([(T, "sd-%d" % i) for i in range(1, 4)], ten + 1100)
    m.batches[b_send].update(state="sending", attempts=0)
    five = now - 5 * 60000
    for i, pid in enumerate(TRICKY_IDS):
        m.put(T, pid, five, tier="ready %d" % i, val=TRICKY[(i * 3) % len(TRICKY)])
    for i in range(1, 9):
        m.put(T, "rb-%d" % i, five, tier="r%d" % i, flag=TRICKY[i + 10], score=str(i * 100))
    m.put(T, "rb-1", five + 5, flag="rb-1 newer")    # superseded at the cut
    m.put(T, "rb-2", five + 5, score="250", tier="r2b")
    m.put(T, "rb-hist", five, tier="oak")            # last_v2 30 h ago: nothing carried
    m.put(T, "carry-2", five, tier="c2-new")         # last_v2 1 h ago: its row carries city, pet
    b_ready = m.cut([(T, pid) for pid in TRICKY_IDS] + [(T, "rb-%d" % i) for i in range(1, 9)]
                    + [(T, "rb-hist"), (T, "carry-2")], five + 1000)
    m.put(P, pcs[1], five, a0="pc ready", a4=TRICKY[15])
    m.put(P, pcs[2], five, a1="pc ready 2")
    b_ready1 = m.cut([(P, pcs[1]), (P, pcs[2])], five + 1000)

    # pending: new profiles, repeated values (no cut saw them: all live),
    # newer values of fenced profiles, history profiles, a retry, urgent
    one = now - 60000
    for i in range(1, 21):
        pid = "pend-%d" % i
        m.put(T, pid, one, tier="p%d" % i, city=r.choice(TRICKY), score=str(r.randint(0, 999)))
        if i % 3 == 0:
            m.put(T, pid, one + 5, tier="p%d-newer" % i)
        if i % 5 == 0:
            m.put(T, pid, one + 9, city="final %d" % i, urgent=1, source="put")
    m.put(T, "sb-2", one, tier="after submitted")    # fenced by the submitted batch
    m.put(T, "sd-1", one, city="after sending")      # fenced by the sending batch
    m.put(T, "rb-3", one, tier="after ready", extra="e3")
    m.put(T, "id,comma", one, val="after ready, too")
    m.put(T, "carry-1", one, email="c1-new@example.com", zip="8001")  # carries the rest
    m.put(T, "hist-2", one, tier="platinum")         # delivered 30 h ago: nothing carried
    m.put(T, "hist-6", one, score="66")
    m.put(T, "dead-http", one, tier="alive again")   # a profile with dead rows
    m.put(P, pcs[0], one, a1="pc pending")           # a pruned pcId
    m.put(P, pcs[3], one, a0="pc pending 2", a1=TRICKY[8], urgent=1)
    m.put(T, "retry-1", now - 20 * 60000, tier="retry")
    b = m.cut([(T, "retry-1")], now - 19 * 60000)
    m.submit(b, now - 19 * 60000 + 100,
             "http://localhost:1/m2/demo/profile/batchStatus?batchId=demo-old-%d" % b)
    m.batches[b].update(state="done", finished_at_ms=now - 18 * 60000, remote_status="complete",
                        batch_size=1, successful_updates=0, profiles_not_found=0,
                        failed_updates=1)
    m.row_failed(b, (T, "retry-1"), "row failed at Target (batch %d)" % b, now - 10000)
    m.profiles[m.by_key[(T, "retry-1")]]["attempts"] = 2
    # a pcId a single call did not find: bulk only from then on
    m.put(P, pcs[5], one, a0="route bulk")
    m.profiles[m.by_key[(P, pcs[5])]]["route_bulk"] = 1
    # producers via sqlite3 (the old schema's enqueue trigger)
    m.enqueue(T, "pend-1", "sql_attr", "from sqlite3", one, "sqlite3", 0, (T, "sql_attr"))
    m.enqueue(T, "sqlite-new", "tier", "sqlite ✓, new", one, "crm-sql", 1, (T, "tier"))
    m.enqueue(T, "sqlite-new", "city", "Lausanne", one, "crm-sql", 0, ("mbox3rdPartyId", "profile.city"))
    m.enqueue(P, pcs[2], "a5", "trigger pc", one, "sqlite3", 0, ("tntId", "a5"))
    # dead letters purged by an operator: the newest seqs of the old outbox
    # (so sqlite_sequence is above max(seq): seqs must never be reused)
    m.put(T, "dead-purged", now - 50000, tier="gone", note="purged")
    b = m.cut([(T, "dead-purged")], now - 49000)
    m.kill_batch(b, "gave up after 5 attempts: HTTP 503 from batchUpdate", 503, 5, now - 40000)
    purged = [s for s, u in m.updates.items() if m.profiles[u["profile"]]["profile_id"] == "dead-purged"]
    m.purge(purged)
    facts.update(SUB_BATCH=b_sub, SEND_BATCH=b_send, READY_BATCH=b_ready, READY_V1=b_ready1,
                 MAX_SEQ_EVER=m.seq, PURGED=",".join(map(str, purged)))
    return facts, pcs


def sim_known(sim, pcs):
    """The pcIds Target knows (v1 updates existing profiles only), each with
    a value pobox never sends (another writer's: /_sim/set)."""
    lines = []
    for i, pc in enumerate(pcs):
        url = "%s/_sim/set?pcId=%s&profile.keep=%s" % (sim.rstrip("/"), urlenc(pc), urlenc("kept %d" % i))
        with urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST"), timeout=30) as r:
            if r.status != 200:
                raise SystemExit("the simulator refused " + url)
        lines.append(json.dumps({"t": "pcId", "id": pc, "a": "keep", "v": "kept %d" % i}))
    return lines


def expected(m, pcs, out, lines):
    """The simulator's store after pobox delivers the upgraded outbox, from
    the model (not from pobox): per profile, the preload, then (when its next
    v2 row carries them) its last delivered values, then what it held
    undelivered, oldest first (batched rows, then pending; newest wins)."""
    names = {i: n for n, i in m.attrs.items()}
    keys = set(m.by_key)
    for key in sorted(keys):
        t, pid = key
        p = m.by_key[key]
        pr = m.profiles[p]
        und = sorted((u for u in m.updates.values() if u["profile"] == p
                          and u["seq"] not in m.gone() and u["state"] == "live"
                     and u["seq"] > pr["done_seq"]), key=lambda u: u["seq"])
        und = [(names[u["attr"]], u["value"], u["seq"]) for u in und]
        if not und:
            continue
        # batched rows: in the payload of an unfinished batch (with what it carried)
        sent = []
        fenced = pr["batch"] is not None
        if fenced:
            b = m.batches[pr["batch"]]
            sent += [(a, v) for a, v in payload_row(b["body"], pid)]
        # the next (new) cut's row carries the last delivered values when
        # the profile goes by v2 and had a v2 delivery within 24 h (the
        # fence's batch is v2 and is delivered first)
        pending = [(a, v) for a, v, s in und if not fenced or s > pr["batch_seq"]]
        v2 = t == "thirdPartyId" or pr["route_bulk"]
        recent = ((fenced and m.batches[pr["batch"]]["api"] == "v2") or
                         (pr["last_v2_at_ms"] is not None and m.now - pr["last_v2_at_ms"] < 20 * H))
        carry = []
        if pending and v2 and recent:
            carry = [(names[a], v) for a, v in m.last_delivered(p).items()]
        for a, v in carry + sent + pending:
            lines.append(json.dumps({"t": t, "id": pid, "a": a, "v": v}, ensure_ascii=False))
    with open(os.path.join(out, "expected.log"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def payload_row(body, pid):
    """(attr, value) of pid's row in a batch file."""
    text = body.decode()
    head, *rows = text.split("\n")
    cols = [urllib.parse.unquote(c) for c in head[len("batch="):].split(",")[1:]]
    for r in rows:
        cells = r.split(",")
        if cells and urllib.parse.unquote(cells[0]) == pid:
            return [(cols[i], urllib.parse.unquote(v)) for i, v in enumerate(cells[1:]) if v]
    raise SystemExit("no row for %r in batch" % pid)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--sim", required=True, help="simulator base URL (the submitted batch)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bulk", type=int, default=0,
                    help="profiles of delivered history before the scenario (x%d updates)" % BULK_ATTRS)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    m = Old(int(time.time() * 1000), random.Random(a.seed), a.bulk)
    facts, pcs = scenario(m, a.sim)
    with open(os.path.join(a.out, "fill.sql"), "w", encoding="utf-8") as f:
        f.write(m.sql())
    expected(m, pcs, a.out, sim_known(a.sim, pcs))
    # the exact bytes of every bulk batch the old outbox holds, finished or
    # not (pobox show --payload)
    bodies = {b: bb["body"] for b, bb in m.batches.items() if bb["lane"] == "bulk"}
    if m.bulk:
        bodies[1] = m.bulk_body
    for b, body in bodies.items():
        with open(os.path.join(a.out, "batch_%d.body" % b), "wb") as f:
            f.write(body)
    with open(os.path.join(a.out, "facts.txt"), "w") as f:
        for k, v in facts.items():
            f.write("%s=%s\n" % (k, v))


if __name__ == "__main__":
    main()
