#!/bin/sh
# make check: the conformance suite must catch each deliberately broken
# backend (tests/conformance/broken.c) in the right scenario, within its
# watchdog, and go on.
set -u
top=${abs_top_builddir:-$(pwd)}
tether="$top/cli/tether"
lib="$top/tests/conformance/.libs"
cfg="$top/plugins.yaml"   # a VPATH build has its own copy (Makefile.am)
[ -f "$cfg" ] || cfg="${abs_top_srcdir:-$top}/plugins.yaml"
fail=0

# expect PLUGIN GLOB SCENARIO TEXT: SCENARIO reported "not ok" with TEXT
expect() {
    out=$(timeout 120 "$tether" conformance -c "$cfg" --plugin "$lib/$1.so" -k "$2" 2>&1)
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
exit $fail
