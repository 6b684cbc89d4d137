#!/bin/sh
# make check: `tether run -b fork file.py:FUNC` runs a Python actor in a
# process of its own (tether-pyactor, the fork backend's python_helper):
# its exit status, its exception and traceback, a cooperative cancel on
# SIGINT, and a hard kill that ends an actor stuck in a C call. Both modes.
set -u
top=${abs_top_builddir:-$(pwd)}
[ -x "$top/backends/subint/tether-pyactor" ] || { echo "skip: built without subint"; exit 77; }
tether="$top/cli/tether"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
ok() { echo "ok - $*"; }
bad() { echo "not ok - $*"; fail=1; }

cat > "$tmp/a.py" <<'PY'
import os, time, tether
def exits(actor):
    tether.send_bytes(b"pid %d" % os.getpid())
    return 7
def raises(actor):
    raise KeyError("no such key on fork")
def idle(actor):
    print("idling", flush=True)
    while True:
        tether.sleep(3600)
def stuck(actor):
    print("stuck", flush=True)
    time.sleep(3600)  # one C call: only the hard kill ends it
PY
for mode in fork exec; do
    cat > "$tmp/c.yaml" <<Y
backend: fork
timeouts: { spawn: 20.0, soft_cancel: 0.5, hard_kill: 0.5 }
backends:
  fork: { path: $top/backends/fork/.libs/fork.so, options: { mode: $mode, helper: $top/cli/tether-actor, python_helper: $top/backends/subint/tether-pyactor } }
Y
    "$tether" run -c "$tmp/c.yaml" -b fork "$tmp/a.py:exits" > "$tmp/o1" 2>&1
    st=$?
    [ $st -eq 7 ] && grep -q "exited with status 7" "$tmp/o1" && grep -q "^message: *pid " "$tmp/o1" &&
        ok "$mode: exits 7" || bad "$mode: exits: status $st: $(cat "$tmp/o1")"

    "$tether" run -c "$tmp/c.yaml" "$tmp/a.py:raises" > "$tmp/o2" 2>&1
    grep -q "failed (KeyError: 'no such key on fork'" "$tmp/o2" &&
        grep -q 'File ".*a.py", line 6, in raises' "$tmp/o2" &&
        ok "$mode: the exception and its traceback" || bad "$mode: raises: $(cat "$tmp/o2")"

    for fn in idle stuck; do
        "$tether" run -c "$tmp/c.yaml" "$tmp/a.py:$fn" > "$tmp/o3" 2>&1 &
        pid=$!
        i=0
        while ! grep -q "^$fn" "$tmp/o3" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
        kill -INT $pid
        i=0
        while kill -0 $pid 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
        if kill -0 $pid 2>/dev/null; then
            kill -KILL $pid
            bad "$mode: $fn: tether run still running 10 s after SIGINT"
        fi
        wait $pid
        want=cancelled
        [ $fn = stuck ] && want=killed
        grep -q "^outcome: *$want" "$tmp/o3" && ok "$mode: $fn: $want" ||
            bad "$mode: $fn: $(cat "$tmp/o3")"
    done
done

# a Python target without a python_helper: refused, naming the option
cat > "$tmp/n.yaml" <<Y
backend: fork
backends:
  fork: { path: $top/backends/fork/.libs/fork.so }
Y
env -u TETHER_PYACTOR_HELPER "$tether" run -c "$tmp/n.yaml" "$tmp/a.py:exits" > "$tmp/o4" 2>&1
grep -q "python_helper" "$tmp/o4" && ok "no python_helper: refused, naming the option" ||
    bad "no python_helper: $(cat "$tmp/o4")"
exit $fail
