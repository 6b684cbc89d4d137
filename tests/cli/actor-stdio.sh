#!/bin/sh
# make check: tether-actor --channel-stdio (the slurm backend's helper on
# the nodes), without a cluster: its end record on stderr, the sweep of
# descendants that detached, and SIGUSR2 as the hard kill.
set -u
top=${abs_top_builddir:-$(pwd)}
helper="$top/cli/tether-actor"
actors="$top/conformance/.libs/conformance_actors.so"
tmp=$(mktemp -d)
# Every helper below is started with an end token unique to this run: the
# actor and every descendant it forks share the helper's command line, so
# "--end-token TOKEN" finds all that this test started (and nothing else).
u="t$$x$(date +%s)"
# (read from /proc, not pgrep: the forky lane's minimal root has no procps)
mine() {
    for d in /proc/[0-9]*; do
        c=$({ tr '\0' ' ' <"$d/cmdline"; } 2>/dev/null) || continue
        case $c in *"--end-token T"[0-9]"$u "*) echo "${d#/proc/}" ;; esac
    done
}
# what() PID: its pid, parent and command line
what() { echo "$1 ppid $(cut -d' ' -f4 "/proc/$1/stat" 2>/dev/null) $({ tr '\0' ' ' <"/proc/$1/cmdline"; } 2>/dev/null)"; }
# At any exit (a failed check, an interrupted run): kill what is left of
# ours, however it detached.
cleanup() {
    for p in $(mine); do kill -KILL "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM
fail=0
ok() { echo "ok - $*"; }
bad() { echo "not ok - $*"; fail=1; }
rec=$(printf '\036')tether-step-end

# a bad token: refused, status 2
"$helper" --channel-stdio --end-token "" "$actors:idle_serving" </dev/null >/dev/null 2>"$tmp/e0"
[ $? -eq 2 ] && grep -q "end-token" "$tmp/e0" && ok "an empty end token is refused" ||
    bad "an empty end token: $(cat "$tmp/e0")"

# end of stdin: the actor cancels itself and exits; one record, last
"$helper" --channel-stdio --end-token T1 "$actors:idle_serving" </dev/null >/dev/null 2>"$tmp/e1"
status=$?
last=$(tail -n 1 "$tmp/e1")
# (its status: 0, or 249 when it saw the end before it was running)
[ "$last" = "$rec T1 x $status 0" ] && ok "normal end: status $status, record '$last'" ||
    bad "normal end: status $status, last line '$(printf '%s' "$last" | cat -v)'"

# no token: no record
"$helper" --channel-stdio "$actors:idle_serving" </dev/null >/dev/null 2>"$tmp/e2"
grep -q "$rec" "$tmp/e2" && bad "a record without --end-token" || ok "no record without --end-token"

# SIGUSR2: the actor is killed, its escaped grandchild (own session,
# ignores every signal) swept and counted. stdin stays open (fd 3).
mkfifo "$tmp/in"
exec 3<>"$tmp/in"
"$helper" --channel-stdio --end-token "T2$u" "$actors:escaped_descendant" <&3 >/dev/null 2>"$tmp/e3" &
hp=$!
gc=""
i=0
# The helper's children and their session ids from /proc (the kernel's
# children lists, as the backends read them): no procps needed, which a
# minimal root (the forky lane's debootstrap --variant=minbase) lacks.
while [ -z "$gc" ] && [ $i -lt 100 ]; do # at most 10 s for the grandchild to escape
    for c in $(cat /proc/"$hp"/task/*/children 2>/dev/null); do
        # after "pid (comm) ": state ppid pgrp session
        [ "$(sed 's/.*) //' /proc/"$c"/stat 2>/dev/null | cut -d' ' -f4)" = "$c" ] && gc=$c
    done
    [ -n "$gc" ] || { sleep 0.1; i=$((i + 1)); }
done
[ -n "$gc" ] && ok "the escaped grandchild $gc came back to the helper (subreaper)" ||
    bad "no escaped grandchild under the helper after 10 s"
# its count, reported while it runs (within 100 ms of the escape)
i=0
while ! grep -q "$rec T2$u d 0 1" "$tmp/e3" && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
grep -q "$rec T2$u d 0 1" "$tmp/e3" && ok "the running count: 1 descendant" ||
    bad "no 'd 0 1' record while the actor runs: $(cat -v "$tmp/e3")"
kill -USR2 "$hp"
wait "$hp"
status=$?
exec 3>&-
last=$(tail -n 1 "$tmp/e3")
[ "$status" -eq 137 ] && [ "$last" = "$rec T2$u s 9 1" ] && ok "hard kill: status 137, record '$last'" ||
    bad "hard kill: status $status, last line '$(printf '%s' "$last" | cat -v)'"
if [ -n "$gc" ] && kill -0 "$gc" 2>/dev/null; then
    bad "the escaped grandchild $gc survived the helper"
    kill -KILL "$gc"
fi

# SIGTERM to the helper (scancel, a time limit): as SIGUSR2, the actor
# killed and the escaped grandchild swept. (Left to its default, SIGTERM
# killed the helper alone, and the grandchild lived on with ppid 1.)
exec 3<>"$tmp/in"
"$helper" --channel-stdio --end-token "T3$u" "$actors:escaped_descendant" <&3 >/dev/null 2>"$tmp/e4" &
hp=$!
i=0
while ! grep -q "$rec T3$u d 0 1" "$tmp/e4" && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
grep -q "$rec T3$u d 0 1" "$tmp/e4" || bad "SIGTERM: the grandchild did not escape within 10 s"
kill -TERM "$hp"
wait "$hp"
status=$?
exec 3>&-
last=$(tail -n 1 "$tmp/e4")
[ "$status" -eq 137 ] && [ "$last" = "$rec T3$u s 9 1" ] && ok "SIGTERM: status 137, record '$last'" ||
    bad "SIGTERM: status $status, last line '$(printf '%s' "$last" | cat -v)'"

# nothing of ours is left: no helper, actor or grandchild (they share the
# helper's command line), reparented to init or not
i=0
while [ -n "$(mine)" ] && [ $i -lt 20 ]; do sleep 0.1; i=$((i + 1)); done
left=$(mine | tr '\n' ' ')
[ -z "$left" ] && ok "no process of this test is left" ||
    bad "left running: $left($(for p in $left; do what "$p"; done))"
exit $fail
