#!/usr/bin/env bash
# What a person sees on a terminal (tmux panes on a private server, read
# back with capture-pane):
#  - flush --wait draws one live progress line (batches cut/sent/complete,
#    updates delivered of those it waits for, the oldest batch's wait on
#    Target, the next poll, quota) that updates while Target takes its time
#    (the simulator's processing delay), never more than one at a time, log
#    lines intact above it, and ends with the final summary in its place;
#  - in a 40-column pane the line is cut to fit: it never wraps, and what
#    is left afterwards is exactly the cut and summary lines;
#  - with stdout not a terminal the output is exactly the lines it always
#    was, with no carriage return or escape sequence on either stream, also
#    when stderr is a terminal;
#  - status --watch redraws in place (one header at a time, its clock and
#    figures changing, a put shows up), cuts its lines to a narrow pane, and
#    Ctrl-C ends it with exit 0; into a file the frames follow one another
#    and SIGINT ends it with 0; bad intervals and combinations are refused.
. "$(cd "$(dirname "$0")" && pwd)/ops_lib.sh" "$@"
command -v tmux >/dev/null || { fail "tmux is needed"; finish; }

tm() { tmux -S "$T/tmux.sock" "$@"; }
trap 'tm kill-server 2>/dev/null; bulk_cleanup' EXIT
# pane NAME WIDTH COMMAND: a detached pane running COMMAND, then EXIT=<code>
pane() {
	tm new-session -d -s "$1" -x "$2" -y 40 "$3; echo EXIT=\$?; sleep 600"
}
# screen NAME: what the pane shows, wrapped lines joined, trailing blanks cut
screen() { tm capture-pane -p -J -t "$1" | sed 's/[[:space:]]*$//'; }
# rows NAME: the pane's rows as drawn (no joining)
rows() { tm capture-pane -p -t "$1" | sed 's/[[:space:]]*$//'; }
# wait_for NAME TEXT SECONDS: 0 once the pane shows TEXT
wait_for() {
	local i
	for i in $(seq 1 $(($3 * 10))); do
		screen "$1" | grep -qF -- "$2" && return 0
		sleep 0.1
	done
	return 1
}
PROGRESS='^flush [0-9hms]+: batches [0-9]+ cut, [0-9]+ sent, [0-9]+ complete'

twelve() { # the same 12 profiles again, new values
	{
		echo "thirdPartyId,tier"
		for i in $(seq 1 12); do echo "p-$i,$1$i"; done
	} >"$T/in.csv"
	pbr 0 "import $1" import "$T/in.csv"
}

sim_start
# Target takes 5 s to apply a batch: the progress line has time to move
sim_faults 'process_delay_ms=5000'
write_conf "max_batch_rows = 5"

# ---- the progress line, 200 columns, stderr on the terminal too ----------------------------
twelve a
pane wide 200 "'$POBOX' -c '$CONF' flush --wait --timeout 60s"
seen="" most=0
for i in $(seq 1 300); do
	s=$(screen wide)
	n=$(grep -cE "$PROGRESS" <<<"$s")
	[ "$n" -gt "$most" ] && most=$n
	l=$(grep -E "$PROGRESS" <<<"$s" | head -1)
	[ -n "$l" ] && seen=$(printf '%s\n%s' "$seen" "$l")
	grep -q '^EXIT=' <<<"$s" && break
	sleep 0.2
done
final=$(screen wide)
distinct=$(grep -E . <<<"$seen" | sort -u | wc -l)
check_ge "wide: the progress line changed while waiting (distinct lines seen)" 2 "$distinct"
check_eq "wide: never more than one progress line on the screen" 1 "$most"
steady='^flush [0-9hms]+: batches 3 cut, 3 sent, 0 complete \| 0/12 updates delivered \| oldest on Target [0-9hms]+ \| next poll ([0-9hms]+|now) \| quota bulk [0-9]+/6000/min$'
if grep -qE "$steady" <<<"$seen"; then pass "wide: every part while the batches wait on Target"; else
	fail "wide: every part while the batches wait on Target" "$seen"; fi
if grep -qE '\| 0/12 updates delivered' <<<"$seen" && ! grep -qE '1[3-9]/12|[2-9][0-9]/12' <<<"$seen"; then
	pass "wide: updates delivered counts those this flush waits for"
else fail "wide: updates delivered counts those this flush waits for" "$seen"; fi
check_eq "wide: exit 0" "EXIT=0" "$(grep '^EXIT=' <<<"$final")"
check_eq "wide: ends with the final summary" "flush: done: 0 pending, 0 in batches, 12 delivered, 0 dead" \
	"$(grep -v '^EXIT=' <<<"$final" | grep . | tail -1)"
check_eq "wide: no progress line left behind" 0 "$(grep -cE 'batches [0-9]+ cut' <<<"$final")"
odd=$(grep . <<<"$final" | grep -vE '^flush: cut 3 batches \(12 profiles, 12 updates, [0-9]+ bytes\)$|^20[0-9-]+T[0-9:.]+Z (info|warn) [a-z_]+ |^flush: done: |^EXIT=0$')
check_eq "wide: every line on the screen is a whole cut, log or summary line" "" "$odd"
check_ge "wide: the log lines are there (stderr as before)" 3 "$(grep -c ' info batch_completed ' <<<"$final")"

# ---- 40 columns, stderr to a file ----------------------------------------------------------
twelve b
pane narrow 40 "'$POBOX' -c '$CONF' flush --wait --timeout 60s 2>'$T/narrow.err'"
widest=0 seen=0
for i in $(seq 1 300); do
	r=$(rows narrow)
	if grep -qE 'flush [0-9hms]+: b' <<<"$r"; then
		seen=$((seen + 1))
		w=$(grep -E 'flush [0-9hms]+: b' <<<"$r" | awk '{ print length($0) }' | sort -n | tail -1)
		[ "$w" -gt "$widest" ] && widest=$w
	fi
	grep -q '^EXIT=' <<<"$r" && break
	sleep 0.2
done
check_ge "narrow: the progress line was drawn" 1 "$seen"
check_le "narrow: cut to 39 columns, never wrapped" 39 "$widest"
check_eq "narrow: afterwards exactly the cut and summary lines" \
	"flush: cut 3 batches (12 profiles, 12 updates, 162 bytes)
flush: done: 0 pending, 0 in batches, 24 delivered, 0 dead
EXIT=0" "$(screen narrow | grep .)"

# ---- stdout not a terminal: the same bytes as ever -----------------------------------------
twelve c
"$POBOX" -c "$CONF" flush --wait --timeout 60s >"$T/plain.out" 2>"$T/plain.err" </dev/null
check_eq "not a tty: exit 0" 0 $?
check_eq "not a tty: stdout is exactly the cut and summary lines" \
	"flush: cut 3 batches (12 profiles, 12 updates, 162 bytes)
flush: done: 0 pending, 0 in batches, 36 delivered, 0 dead" "$(cat "$T/plain.out")"
check_eq "not a tty: no CR or ESC on stdout or stderr" 0 "$(cat "$T/plain.out" "$T/plain.err" | tr -cd '\r\033' | wc -c)"
check_eq "not a tty: stderr is log lines only" "" "$(grep -vE '^20[0-9-]+T[0-9:.]+Z (info|warn) ' "$T/plain.err")"
twelve d
pane fileout 200 "'$POBOX' -c '$CONF' flush --wait --timeout 60s >'$T/fileout.out'"
wait_for fileout "EXIT=" 60 || fail "stdout a file, stderr the terminal: ends" "$(screen fileout)"
check_eq "stdout a file, stderr the terminal: stdout the same lines" \
	"flush: cut 3 batches (12 profiles, 12 updates, 162 bytes)
flush: done: 0 pending, 0 in batches, 48 delivered, 0 dead" "$(cat "$T/fileout.out")"
check_eq "stdout a file, stderr the terminal: no progress line on the terminal" 0 \
	"$(screen fileout | grep -cE 'batches [0-9]+ cut')"
check_eq "stdout a file: no CR or ESC in it" 0 "$(tr -cd '\r\033' <"$T/fileout.out" | wc -c)"

# ---- status --watch ------------------------------------------------------------------------
sim_faults 'process_delay_ms=0'
pane sw 120 "'$POBOX' -c '$CONF' status --watch 300ms"
wait_for sw "pobox status --watch" 20 || fail "watch: draws" "$(screen sw)"
headers="" most=0 before=$(screen sw)
for i in $(seq 1 30); do
	s=$(screen sw)
	n=$(grep -c '^pobox status --watch ' <<<"$s")
	[ "$n" -gt "$most" ] && most=$n
	headers=$(printf '%s\n%s' "$headers" "$(grep '^pobox status --watch ' <<<"$s")")
	sleep 0.1
done
check_ge "watch: redrawn (its clock moved over 3 s)" 2 "$(grep . <<<"$headers" | sort -u | wc -l)"
check_eq "watch: in place: one header on the screen at a time" 1 "$most"
if grep -qE '^updates   pending 0 \| batched 0 \| delivered 48 \| superseded 0 \| dead 0$' <<<"$before"; then
	pass "watch: counts by state"; else fail "watch: counts by state" "$before"; fi
if grep -qE '^bulk      done 12$' <<<"$before" && grep -qE '^single    no batches$' <<<"$before"; then
	pass "watch: batches by lane and state"; else fail "watch: batches by lane and state" "$before"; fi
if grep -qE '^lanes     bulk running \| single off \(single_lane = no\)$' <<<"$before" &&
	grep -qE '^quota     bulk [0-9]+/6000 calls in the last minute \| single 0/1,000,000 in 24 h, 1,000,000 left$' <<<"$before" &&
	grep -qE '^rates     (measuring|enqueued 0/min \| delivered 0/min \| dead 0/min \(over the last [0-9ms]+\))' <<<"$before"; then
	pass "watch: rates, lanes and quota"; else fail "watch: rates, lanes and quota" "$before"; fi
pbr 0 "watch: a put meanwhile" put thirdPartyId:w-1 tier=x
if wait_for sw "pending 1 (oldest" 10; then pass "watch: the put shows up as pending"; else
	fail "watch: the put shows up as pending" "$(screen sw)"; fi
if wait_for sw "enqueued " 5 && screen sw | grep -qE 'enqueued [1-9][0-9]*/min'; then
	pass "watch: and as an enqueue rate"; else fail "watch: and as an enqueue rate" "$(screen sw)"; fi
tm send-keys -t sw C-c
if wait_for sw "EXIT=0" 10; then pass "watch: Ctrl-C ends it with exit 0"; else
	fail "watch: Ctrl-C ends it with exit 0" "$(screen sw)"; fi

pane swn 40 "'$POBOX' -c '$CONF' status --watch 200ms"
wait_for swn "quota" 20 || fail "watch narrow: draws" "$(screen swn)"
sleep 1
check_le "watch narrow: lines cut to 39 columns" 39 "$(rows swn | awk '{ print length($0) }' | sort -n | tail -1)"
check_eq "watch narrow: one frame, seven lines" 7 "$(rows swn | grep -c .)"
tm send-keys -t swn C-c
wait_for swn "EXIT=0" 10 && pass "watch narrow: Ctrl-C, exit 0" || fail "watch narrow: Ctrl-C, exit 0" "$(screen swn)"

"$POBOX" -c "$CONF" status --watch 200ms >"$T/watch.out" 2>"$T/watch.err" </dev/null &
wpid=$!
BG_PIDS="$BG_PIDS $wpid"
for i in $(seq 1 100); do
	[ "$(grep -c '^pobox status --watch ' "$T/watch.out")" -ge 3 ] && break
	sleep 0.1
done
kill -INT "$wpid"
wait "$wpid"
check_eq "watch into a file: SIGINT ends it with exit 0" 0 $?
check_ge "watch into a file: frame after frame" 3 "$(grep -c '^pobox status --watch ' "$T/watch.out")"
check_eq "watch into a file: no escape sequences" 0 "$(tr -cd '\r\033' <"$T/watch.out" | wc -c)"
check_eq "watch into a file: nothing on stderr" "" "$(cat "$T/watch.err")"

pbr 64 "watch: a bad interval" status --watch soon
out_has "watch: says what an interval is" "status: --watch 'soon': give an interval like 1s"
pbr 64 "watch: too short an interval" status --watch=10ms
pbr 64 "watch: with --json" status --watch --json
out_has "watch: says why" "--watch draws the text status"
finish
