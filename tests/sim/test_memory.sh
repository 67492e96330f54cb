#!/bin/bash
# Memory bound for the largest legal batches (the bound is stated in
# tools/sim/README.md): the body is kept once, as raw rows, and freed when
# applied.  Peak RSS (VmHWM) of the simulator must stay under
#   200 MB for a 49,999,990-byte batch of 256,410 wide rows, and
#   300 MB after that plus a 500,000-row batch (42 MB) of new profiles,
# and a refused 60 MB body must cost nothing.  Skipped (the bounds are not
# meaningful) under sanitizers, which add their own shadow memory.
. "$(dirname "$0")/lib.sh"

if [ "${POBOX_SIM_SANITIZED:-OFF}" = ON ]; then
	echo "skipped: sanitizer build"
	exit 0
fi
hwm() { sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB$/\1/p' "/proc/$SIM_PID/status"; }

python3 - <<'PY'
head = "batch=thirdPartyId,profile_blob,segment\n"
out = [head]; size = len(head); i = 0
while True:
    r = "u%07d,%s,seg%d\n" % (i, "v" * 180, i % 7)
    if size + len(r) >= 49_999_999: break
    out.append(r); size += len(r); i += 1
open("wide.txt", "w").write("".join(out))
head = "batch=thirdPartyId,email,tier,city,score\n"
out = [head]
for i in range(500_000):
    out.append("user-%07d,user%07d%%40example.com,gold-tier-%03d,S%%C3%%A3o+Paulo+%05d,%08d\n" % (i, i, i % 1000, i, i))
open("tall.txt", "w").write("".join(out))
open("huge.txt", "w").write("batch=thirdPartyId,a\n" + "x,1\n" * 15_000_000)
PY

sim_start --bulk-per-minute 0
BASE=$(hwm)
batch /m2/demo/profile/batchUpdate @huge.txt
check "60 MB body refused" 400 "$STATUS"
check "refused 60 MB body: peak RSS grew < 8 MB" 1 "$(( $(hwm) - BASE < 8192 ))"

batch /m2/demo/v2/profile/batchUpdate @wide.txt
check "50 MB batch accepted" 200 "$STATUS"
req "$(status_url)&showDetails=true"
check_match "50 MB batch applied" "<status>complete</status><batchSize>256410</batchSize><consumedCount>256410</consumedCount><successfulUpdates>256410</successfulUpdates>" "$BODY"
echo "# peak RSS after the 50 MB batch: $(hwm) kB"
check "peak RSS < 200 MB after a 50 MB batch" 1 "$(( $(hwm) < 200 * 1024 ))"
batch /m2/demo/v2/profile/batchUpdate @wide.txt
batch /m2/demo/v2/profile/batchUpdate @wide.txt
echo "# peak RSS after the same batch twice more: $(hwm) kB"
check "repeating it does not grow the peak (< 200 MB)" 1 "$(( $(hwm) < 200 * 1024 ))"

batch /m2/demo/v2/profile/batchUpdate @tall.txt
req "$(status_url)&showDetails=true"
check_match "500,000-row batch applied" "<successfulUpdates>500000</successfulUpdates>" "$BODY"
echo "# peak RSS after 756,410 profiles: $(hwm) kB"
check "peak RSS < 300 MB with 756,410 profiles stored" 1 "$(( $(hwm) < 300 * 1024 ))"
check "profiles stored" 756410 "$(counter profiles)"
sim_stop
rm -f wide.txt tall.txt huge.txt
finish
