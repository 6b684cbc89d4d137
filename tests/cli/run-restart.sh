#!/bin/sh
# make check: `tether run --restart ...` (issue 18): a permanent actor that
# exits at once is restarted until the intensity is exceeded, said in the
# text and the JSON output, exit status 1; bad restart options are usage
# errors naming the option (exit status 2).
set -u
top=${abs_top_builddir:-$(pwd)}
src=${abs_top_srcdir:-$top}
tether="$top/cli/tether"
cfg="$top/plugins.yaml"
[ -f "$cfg" ] || cfg="$src/plugins.yaml"
hello="$top/examples/.libs/demo_actors.so:hello"
fail=0

out=$("$tether" run -c "$cfg" -b thread --restart permanent --max-restarts 2 --period 10 "$hello" 2>&1)
status=$?
printf '%s\n' "$out"
if [ "$status" -eq 1 ] && printf '%s\n' "$out" | grep -q '^restarts: 2$' &&
   printf '%s\n' "$out" | grep -q '^gave up:  restart intensity exceeded: 2 restarts in 10 s; last failure: '; then
    echo "ok: restarted twice, then the supervisor gave up (exit 1)"
else
    echo "FAIL: expected 2 restarts, a give-up and exit status 1 (got $status)"; fail=1
fi

out=$("$tether" run -c "$cfg" -b thread --json --restart transient "$hello" 2>&1)
status=$?
if [ "$status" -eq 0 ] && printf '%s\n' "$out" | grep -q '"restarts":0,"gave_up":false}'; then
    echo "ok: transient: a normal exit is not restarted"
else
    echo "FAIL: transient after a normal exit: status $status: $out"; fail=1
fi

for bad in "--restart always" "--max-restarts -1" "--period x" "--backoff -2" "--period 0"; do
    # shellcheck disable=SC2086 # the option and its value are two words
    out=$("$tether" run -c "$cfg" -b thread $bad "$hello" 2>&1)
    status=$?
    opt=${bad%% *}
    [ "$opt" = "--period" ] && [ "$bad" = "--period 0" ] && opt="period"
    if [ "$status" -eq 2 ] && printf '%s\n' "$out" | grep -q -- "$opt"; then
        echo "ok: $bad is refused naming $opt"
    else
        echo "FAIL: $bad: status $status: $out"; fail=1
    fi
done
exit $fail
