#!/bin/sh
# make check: the conformance suite must catch each deliberately broken
# backend (conformance/broken.c) in the right scenario, within its
# watchdog, and go on.
set -u
top=${abs_top_builddir:-$(pwd)}
tether="$top/cli/tether"
lib="$top/conformance/.libs"
cfg="$top/plugins.yaml"   # a VPATH build has its own copy (Makefile.am)
[ -f "$cfg" ] || cfg="${abs_top_srcdir:-$top}/plugins.yaml"
fail=0

# A sanitizer build is slower than the watchdogs' setup room allows under
# load (ASan's exec and exit-time leak scan: tests/sanitizers/README): there
# the watchdogs are tripled. --timeout-scale never touches a bound, so each
# broken backend must still fail for its own reason.
scale=1
[ -n "${TETHER_SANITIZER:-}" ] && scale=3

# expect PLUGIN GLOB SCENARIO TEXT: SCENARIO reported "not ok" with TEXT
expect() {
    out=$(timeout 120 "$tether" conformance -c "$cfg" --plugin "$lib/$1.so" -k "$2" \
        --timeout-scale "$scale" 2>&1)
    status=$?
    line=$(printf '%s\n' "$out" | grep -E "^not ok [0-9]+ - $3( |$)")
    if [ "$status" -eq 124 ]; then
        echo "FAIL: $1: the suite itself hung"; fail=1
    elif [ "$status" -ne 1 ]; then
        echo "FAIL: $1: exit status $status, expected 1"; fail=1
    elif [ -z "$line" ]; then
        echo "FAIL: $1: $3 was not reported as failed"; fail=1
    elif ! printf '%s\n' "$out" | grep -qE -- "$4"; then
        echo "FAIL: $1: $3 failed, but without '$4'"; fail=1
    else
        echo "ok: $1 caught: $line"
    fi
    printf '%s\n' "$out" | sed 's/^/    | /'
}

expect broken_nokill 'cancel.timed-waits' cancel.timed-waits "outcome abandoned, expected cancelled, killed"
expect broken_nokill 'cancel.blocked-syscall' cancel.blocked-syscall "expected killed"
expect broken_reap 'cancel.timed-waits' cancel.timed-waits "inside the backend's reap()"
expect broken_spawn 'cancel.cooperative' cancel.cooperative "inside the backend's spawn()"
# a scenario of many bounded steps (200 spawns) is caught within one step's
# bound when a step hangs, not at the sum of them all
expect broken_spawn 'cancel.race-with-exit' cancel.race-with-exit \
    "no step finished for [0-9.]+s"

# expect_first PLUGIN SCENARIO FIRST ALSO: SCENARIO fails, its "not ok" line
# reports FIRST (the most specific failure) and a "# also failed:" line ALSO
# (every failed check is printed, not only the first).
expect_first() {
    expect "$1" "$2" "$2" "$3"
    line=$(printf '%s\n' "$out" | grep -E "^not ok [0-9]+ - $2( |$)")
    if ! printf '%s\n' "$line" | grep -qE -- " - $3"; then
        echo "FAIL: $1: $2: the first failure reported is not '$3': $line"; fail=1
    elif ! printf '%s\n' "$out" | grep -qE -- "^# also failed: $4"; then
        echo "FAIL: $1: $2: no '# also failed: $4' line"; fail=1
    else
        echo "ok: $1: $2 reports '$3' first, and '$4' too"
    fi
}
# hard kill misses the process group: the live grandchild, not the time
expect_first broken_nogroup orphan.grandchildren \
    "grandchild [0-9]+ \(sleep 1000\) is still alive" "took [0-9.]+s, bound"
# the template's old bug: the actor dies with the thread that spawned it
expect broken_callerspawn 'spawn.thread-exits' spawn.thread-exits \
    "when the thread that spawned it exited"

# --timeout-scale X multiplies the watchdogs (here 3 s -> 1.5 s), never the
# measured bounds; a bad value is a usage error naming it.
out=$(timeout 60 "$tether" conformance -c "$cfg" --plugin "$lib/broken_spawn.so" \
      -k cancel.cooperative --timeout-scale 0.5 2>&1)
if printf '%s\n' "$out" | grep -q "^not ok 1 - cancel.cooperative .*still running after 1.5s"; then
    echo "ok: --timeout-scale 0.5 halves the watchdog"
else
    echo "FAIL: --timeout-scale 0.5 did not halve the watchdog"; fail=1
    printf '%s\n' "$out" | sed 's/^/    | /'
fi
out=$(timeout 60 "$tether" conformance -c "$cfg" -b thread -k cancel.cooperative --timeout-scale 4 2>&1)
if printf '%s\n' "$out" | grep -qE "^ok 1 - cancel.cooperative [0-9.]+s <= 0.102s"; then
    echo "ok: --timeout-scale 4 leaves the bound at 0.102s"
else
    echo "FAIL: --timeout-scale 4 changed the bound or failed"; fail=1
    printf '%s\n' "$out" | sed 's/^/    | /'
fi
out=$("$tether" conformance --timeout-scale 0 --list 2>&1)
if [ $? -eq 2 ] && printf '%s\n' "$out" | grep -q "timeout-scale: '0' is not a number"; then
    echo "ok: --timeout-scale 0 is refused"
else
    echo "FAIL: --timeout-scale 0 was not refused as a usage error"; fail=1
fi
w1=$("$tether" conformance --help | sed -n 's/^Worst case: .*: \([0-9]*\)s for$/\1/p')
w2=$("$tether" conformance --timeout-scale 2 --help | sed -n 's/^Worst case: .*: \([0-9]*\)s for$/\1/p')
if [ -n "$w1" ] && [ -n "$w2" ] && [ "$w2" -gt "$w1" ]; then
    echo "ok: --help states the worst case: ${w1}s, ${w2}s at scale 2"
else
    echo "FAIL: --help does not state a worst case that grows with the scale ('$w1', '$w2')"; fail=1
fi
exit $fail
