#!/usr/bin/env bash
# pobox status --prometheus and run's metrics_file.
#  - format, line by line (always, in python): sample lines match the text
#    exposition grammar, every family has exactly one # HELP and one # TYPE
#    before its samples, samples of a family are together, no duplicate
#    series, counters end in _total, units in names (_seconds, _bytes,
#    _calls); plus `promtool check metrics` when apt can provide it.
#  - numbers after a known scenario: 3 urgent single calls, 4 bulk
#    profiles delivered (1 value superseded), 2 dead (HTTP 500), 1 pending;
#    pobox_calls_total per lane equals the simulator's counters of calls
#    received, batches by lane/state equal the outbox's.
#  - metrics_file + metrics_interval = 1s with `pobox run`: the file appears,
#    is mode 0644, is never read partial while run rewrites it, and follows
#    new deliveries; no temporary file is left behind.
OPS_SINGLE=1
. "$(cd "$(dirname "$0")" && pwd)/ops_lib.sh" "$@"

preload_pc "$T/preload.csv" 10 pc a
sim_start --preload "$T/preload.csv"
write_conf "max_attempts = 2" "backoff_base = 10ms" "backoff_cap = 50ms"

# the line-by-line checker: FILE [expected families] -> "ok" or the problems
cat >"$T/promcheck.py" <<'EOF'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
want = sys.argv[2].split(",") if len(sys.argv) > 2 and sys.argv[2] else None
LBL = r'[a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*"'
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{' + LBL + r'(,' + LBL + r')*\})? (-?[0-9.eE+-]+)$')
bad = []
if not text.endswith("\n"):
    bad.append("output does not end with a newline")
help_, type_, order, seen_series, closed = {}, {}, [], set(), set()
current = None
for n, line in enumerate(text.split("\n")[:-1], 1):
    if line.startswith("# HELP "):
        parts = line.split(" ", 3)
        name = parts[2]
        if len(parts) < 4 or not parts[3].strip():
            bad.append(f"{n}: HELP without text")
        help_[name] = help_.get(name, 0) + 1
        if name in order:
            bad.append(f"{n}: HELP for {name} after its samples or TYPE")
        continue
    if line.startswith("# TYPE "):
        parts = line.split(" ")
        if len(parts) != 4 or parts[3] not in ("counter", "gauge", "histogram", "summary", "untyped"):
            bad.append(f"{n}: bad TYPE line {line!r}")
            continue
        name, kind = parts[2], parts[3]
        type_[name] = type_.get(name, 0) + 1
        if help_.get(name) != 1:
            bad.append(f"{n}: TYPE {name} not after exactly one HELP")
        if kind == "counter" and not name.endswith("_total"):
            bad.append(f"{n}: counter {name} does not end in _total")
        if current is not None:
            closed.add(current)
        current = name
        order.append(name)
        continue
    if line.startswith("#") or not line.strip():
        bad.append(f"{n}: unexpected line {line!r}")
        continue
    m = SAMPLE.match(line)
    if not m:
        bad.append(f"{n}: not a valid sample line: {line!r}")
        continue
    name = m.group(1)
    try:
        float(m.group(m.lastindex))
    except ValueError:
        bad.append(f"{n}: value is not a number: {line!r}")
    if name != current:
        bad.append(f"{n}: sample of {name} outside its family (current {current}); HELP/TYPE must come first")
    series = line.rsplit(" ", 1)[0]
    if series in seen_series:
        bad.append(f"{n}: duplicate series {series}")
    seen_series.add(series)
for name in set(help_) | set(type_):
    if help_.get(name) != 1 or type_.get(name) != 1:
        bad.append(f"{name}: {help_.get(name, 0)} HELP and {type_.get(name, 0)} TYPE lines (want 1 and 1)")
for name in order:
    if re.search(r"(age|timestamp|duration|latency|seconds)", name) and not name.endswith("_seconds"):
        bad.append(f"{name}: a time without _seconds")
    if re.search(r"(size|bytes)", name) and not name.endswith("_bytes"):
        bad.append(f"{name}: a size without _bytes")
    if name.startswith("pobox_quota_") and not name.endswith("_calls"):
        bad.append(f"{name}: a quota without _calls")
    if not name.startswith("pobox_"):
        bad.append(f"{name}: not in the pobox_ namespace")
if want is not None and order != want:
    bad.append(f"families {order} != {want}")
print("\n".join(bad) if bad else "ok")
EOF
# metric NAME{labels} from $T/r.out (or FILE): the value
metric() { awk -v k="$1" '$1 == k { print $2 }' "${2:-$T/r.out}"; }

# ---- the scenario ----------------------------------------------------------------------
for i in 1 2 3; do put_ok "urgent $i" pcId "pc$i" a="new$i" --urgent; done
flush_wait "3 single calls" 0 30
put_logged thirdPartyId t1 a=0
for i in 1 2 3 4; do put_logged thirdPartyId "t$i" a=1; done
flush_wait "4 bulk profiles" 0 30
sim_faults 'error_rate=1&error_codes=500'
put_logged thirdPartyId x1 a=1
put_logged thirdPartyId x2 a=1
flush_wait "2 dead" 65 30
sim_faults 'error_rate=0'
put_logged thirdPartyId pend a=1
sleep 1.2

pbr 0 "status --prometheus" status --prometheus
cp "$T/r.out" "$T/status.prom"
FAMILIES="pobox_updates,pobox_oldest_pending_age_seconds,pobox_batches,pobox_calls_total,pobox_call_errors_total,pobox_quota_budget_calls,pobox_quota_used_calls,pobox_quota_remaining_calls,pobox_quota_urgent_reserve_calls,pobox_last_delivery_timestamp_seconds,pobox_outbox_size_bytes,pobox_lane_paused"
check_eq "format: line by line (the README's families, in order)" ok "$(python3 "$T/promcheck.py" "$T/status.prom" "$FAMILIES")"

# promtool, when apt can provide it
if ! command -v promtool >/dev/null 2>&1; then
	if apt-cache policy prometheus 2>/dev/null | grep -q 'Candidate: [0-9]'; then
		echo "# installing prometheus for promtool"
		DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y --no-install-recommends prometheus >"$T/apt.log" 2>&1 ||
			echo "# apt-get install prometheus failed: $(tail -3 "$T/apt.log")"
	fi
fi
if command -v promtool >/dev/null 2>&1; then
	if out=$(promtool check metrics <"$T/status.prom" 2>&1); then pass "promtool check metrics: clean"; else
		fail "promtool check metrics: clean" "$out"; fi
else
	echo "# SKIP promtool: apt cannot provide the prometheus package here (line-by-line check done above)"
fi

# ---- the numbers --------------------------------------------------------------------------
check_eq "pobox_updates delivered = 3 single + 4 bulk" 7 "$(metric 'pobox_updates{state="delivered"}')"
check_eq "pobox_updates superseded = 1" 1 "$(metric 'pobox_updates{state="superseded"}')"
check_eq "pobox_updates dead = 2" 2 "$(metric 'pobox_updates{state="dead"}')"
check_eq "pobox_updates pending = 1" 1 "$(metric 'pobox_updates{state="pending"}')"
check_eq "pobox_updates batched = 0" 0 "$(metric 'pobox_updates{state="batched"}')"
for s in pending batched delivered superseded dead; do
	check_eq "pobox_updates{$s} = v_updates" "$(state_count "$s")" "$(metric "pobox_updates{state=\"$s\"}")"
done
AGE=$(metric pobox_oldest_pending_age_seconds)
python3 -c 'import sys; a=float(sys.argv[1]); sys.exit(0 if 1 <= a < 60 else 1)' "$AGE" &&
	pass "oldest pending age is about right ($AGE s)" || fail "oldest pending age is about right" "$AGE"
curl -s "$B/_sim/counters" >"$T/counters.json"
simc() { python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))["calls"]; print(eval(sys.argv[2], {"c": c}))' "$T/counters.json" "$1"; }
sum_lane() { awk -v l="lane=\"$1\"" -v m="$2" 'index($1, m "{") == 1 && index($1, l) { s += $2 } END { print s + 0 }' "$T/status.prom"; }
check_eq "pobox_calls_total{lane=single} = the simulator's single-update calls" \
	"$(simc 'c["single_update"]["total"]')" "$(sum_lane single pobox_calls_total)"
check_eq "pobox_calls_total{lane=single,status=200} = 3" 3 "$(metric 'pobox_calls_total{lane="single",status="200"}' "$T/status.prom")"
check_eq "pobox_calls_total{lane=bulk} = the simulator's batchUpdate + batchStatus calls" \
	"$(simc 'c["batch_update_v1"]["total"] + c["batch_update_v2"]["total"] + c["batch_status"]["total"]')" "$(sum_lane bulk pobox_calls_total)"
check_eq "pobox_calls_total{lane=bulk,status=500} = the simulator's injected 500s" \
	"$(simc 'c["batch_update_v1"]["fault_error"] + c["batch_update_v2"]["fault_error"] + c["batch_status"]["fault_error"]')" \
	"$(metric 'pobox_calls_total{lane="bulk",status="500"}' "$T/status.prom")"
check_eq "pobox_call_errors_total{lane=bulk,status=500} = 2" 2 "$(metric 'pobox_call_errors_total{lane="bulk",status="500"}' "$T/status.prom")"
check_eq "no errors counted on the single lane" 0 "$(sum_lane single pobox_call_errors_total)"
q "SELECT 'pobox_batches{lane=\"' || lane || '\",state=\"' || state || '\"} ' || count(*) FROM batches GROUP BY lane, state ORDER BY 1" >"$T/b.want"
grep '^pobox_batches{' "$T/status.prom" | grep -v ' 0$' | sort >"$T/b.got"
check_eq "pobox_batches = the outbox's batches by lane and state" "$(cat "$T/b.want")" "$(cat "$T/b.got")"
check_eq "quota used = 3" 3 "$(metric pobox_quota_used_calls "$T/status.prom")"
check_eq "quota budget + remaining" "1000000 999997" "$(metric pobox_quota_budget_calls "$T/status.prom") $(metric pobox_quota_remaining_calls "$T/status.prom")"
LAST=$(metric pobox_last_delivery_timestamp_seconds "$T/status.prom")
python3 -c 'import sys,time; sys.exit(0 if abs(time.time() - float(sys.argv[1])) < 60 else 1)' "$LAST" &&
	pass "last delivery timestamp is recent ($LAST)" || fail "last delivery timestamp is recent" "$LAST"
SIZE=$(( $(stat -c %s "$DB") + $(stat -c %s "$DB-wal" 2>/dev/null || echo 0) ))
check_eq "outbox size = file + WAL" "$SIZE" "$(metric pobox_outbox_size_bytes "$T/status.prom")"
check_eq "no lane paused" "0 0" "$(metric 'pobox_lane_paused{lane="bulk"}' "$T/status.prom") $(metric 'pobox_lane_paused{lane="single"}' "$T/status.prom")"

# ---- metrics_file with pobox run -------------------------------------------------------------
mkdir -p "$T/prom"
MF=$T/prom/pobox.prom
write_conf "max_attempts = 2" "backoff_base = 10ms" "backoff_cap = 50ms" \
	"metrics_file = $MF" "metrics_interval = 1s" "flush_max_delay = 200ms" "flush_rows = 1"
run_bg "$T/run.log"
wait_for "metrics file appears" 15 test -s "$MF" && pass "metrics file appears"
check_eq "metrics file is mode 0644 (node_exporter reads it as another user)" 644 "$(stat -c %a "$MF")"
# read it as fast as possible for 5 s while run rewrites it, and meanwhile
# deliver new updates: every read is complete; the delivered count rises
cat >"$T/reader.py" <<'EOF'
import os, subprocess, sys, time
path, checker, fams, out = sys.argv[1:5]
reads, bad, vals, inodes = 0, [], set(), set()
end = time.time() + 5
while time.time() < end:
    try:
        with open(path, "rb") as f:
            data = f.read()
            inodes.add(os.fstat(f.fileno()).st_ino)
    except FileNotFoundError:
        bad.append("the file vanished for a moment")
        continue
    reads += 1
    txt = data.decode()
    if not txt.endswith("pobox_lane_paused{lane=\"single\"} 0\n") and not txt.endswith("pobox_lane_paused{lane=\"single\"} 1\n"):
        bad.append(f"read {reads}: incomplete ({len(data)} bytes): ...{txt[-80:]!r}")
    for line in txt.splitlines():
        if line.startswith('pobox_updates{state="delivered"} '):
            vals.add(int(line.split()[1]))
    if reads % 200 == 0:
        open(out + ".snap", "w").write(txt)
        r = subprocess.run([sys.executable, checker, out + ".snap", fams], capture_output=True, text=True).stdout.strip()
        if r != "ok":
            bad.append(f"read {reads}: {r}")
    time.sleep(0.001)
open(out, "w").write(f"{reads} {len(inodes)} {min(vals) if vals else -1} {max(vals) if vals else -1}\n" + "\n".join(bad[:10]))
EOF
python3 "$T/reader.py" "$MF" "$T/promcheck.py" "$FAMILIES" "$T/reader.out" &
READER=$!
sleep 0.5
for i in 1 2 3 4 5 6; do put_logged thirdPartyId "r$i" a=1; sleep 0.3; done
wait "$READER"
read -r READS INODES VMIN VMAX <"$T/reader.out"
check_ge "metrics file read many times" 500 "$READS"
check_eq "metrics file: never a partial read" "" "$(tail -n +2 "$T/reader.out")"
check_ge "metrics file rewritten (distinct files seen) at least 3 times in 5 s" 3 "$INODES"
check_ge "metrics file: delivered count rose while run delivered" $((VMIN + 1)) "$VMAX"
wait_for "all delivered by run" 20 nothing_left
sleep 1.5
check_eq "metrics file follows: delivered = v_updates" "$(state_count delivered)" "$(metric 'pobox_updates{state="delivered"}' "$MF")"
check_eq "metrics file passes the line-by-line check" ok "$(python3 "$T/promcheck.py" "$MF" "$FAMILIES")"
stop_run "metrics run"
check_eq "no temporary file left beside the metrics file" "pobox.prom" "$(ls -A "$T/prom")"
check_store "store after run" --preload "$T/preload.csv" --exclude thirdPartyId:x1 --exclude thirdPartyId:x2
finish
