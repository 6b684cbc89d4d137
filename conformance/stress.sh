#!/bin/sh
# make stress: every backend that can spawn (thread; fork in both modes;
# subint once it spawns) through the cancel and orphan scenarios, shuffled,
# with random timing jitter. Any hang (watchdog), leak (fd, process,
# thread) or missed bound fails it.
#
# One full round of cancel.* + orphan.* takes 13-23 s a backend (most
# scenarios wait out soft_cancel + hard_kill, spawn-hangs waits the spawn
# timeout, race-with-exit spawns 200 actors): 200 full rounds of the four
# backend runs would take ~3 hours. So the bulk is 200 rounds of the fast
# scenarios (under ~0.2 s each, plus orphan.parked-waiter, the seed's hang),
# then every cancel.* and orphan.* scenario STRESS_FULL_ROUNDS times.
#
#   STRESS_ROUNDS       bulk rounds per backend (default 200)
#   STRESS_GLOBS        bulk scenarios (default: the fast list below)
#   STRESS_FULL_ROUNDS  rounds of all cancel.* orphan.* (default 10; 0: none)
#   STRESS_JITTER       max jitter in ms before cancel triggers and spawns (default 5)
#   STRESS_SEED         replay a seed (default: a fresh one a run, printed)
#   STRESS_BACKENDS     only these (default: every configured one that spawns)
#   STRESS_PARALLEL backends run side by side (default 1: the bounds have
#                   only ~100 ms of slack, CPU contention would be the finding)
# Logs: stress-BACKEND.log in the build tree; a summary at the end.
set -u
set -f   # scenario globs are patterns for the suite, not for the shell
top=${abs_top_builddir:-$(pwd)}
tether="$top/cli/tether"
cfg="$top/plugins.yaml"
[ -f "$cfg" ] || cfg="${abs_top_srcdir:-$top}/plugins.yaml"
rounds=${STRESS_ROUNDS:-200}
full_rounds=${STRESS_FULL_ROUNDS:-10}
jitter=${STRESS_JITTER:-5}
fast='cancel.cooperative cancel.idle-serving cancel.idempotent cancel.zero-soft cancel.tree
      orphan.parked-waiter orphan.peer-vanishes orphan.crash orphan.external-kill
      orphan.parent-dies orphan.channel-closed orphan.fd-hygiene orphan.spawn-dies'
globs=${STRESS_GLOBS:-$fast}
parallel=${STRESS_PARALLEL:-1}

if [ -n "${STRESS_BACKENDS:-}" ]; then
    backends=$STRESS_BACKENDS
else
    # NAME ABI LANGUAGE CAPABILITIES LOADS SPAWNS FILE
    # (a backend that loads but "cannot open here", e.g. slurm without a
    # controller, is left out)
    backends=$("$tether" backends -c "$cfg" | awk '
        $2 ~ /^[0-9]+$/ { if (p != "") print p; p = ($6 == "yes") ? $1 : ""; next }
        /cannot open here/ { p = "" }
        END { if (p != "") print p }')
fi
runs=""
for b in $backends; do
    case $b in
        fork) runs="$runs fork:mode=fork fork:mode=exec" ;;
        *) runs="$runs $b" ;;
    esac
done
[ -n "$runs" ] || { echo "stress: no backend can spawn"; exit 77; }

run() { # NAME[:KEY=VALUE] PHASE ROUNDS GLOBS
    name=${1%%:*}
    opt=""
    label=$name
    case $1 in *:*) opt="-o ${1#*:}"; label="$name-${1#*=}" ;; esac
    phase=$2
    rounds=$3
    kargs=""
    for g in $4; do kargs="$kargs -k $g"; done
    label="$label-$phase"
    log="$top/stress-$label.log"
    start=$(date +%s)
    # shellcheck disable=SC2086
    timeout $((rounds * 120 + 600)) "$tether" conformance -c "$cfg" -b "$name" $opt $kargs \
        --repeat "$rounds" --shuffle --jitter "$jitter" ${STRESS_SEED:+--seed "$STRESS_SEED"} \
        > "$log" 2>&1
    st=$?
    secs=$(( $(date +%s) - start ))
    summary=$(tail -n 1 "$log")
    seed=$(sed -n 's/^# seed \([0-9]*\).*/\1/p' "$log" | head -n 1)
    hangs=$(grep -c 'watchdog:\|runner gave no result' "$log")
    leaks=$(grep -c 'leaked\|left behind\|processes left\|thread(s) left\|still alive' "$log")
    echo "stress: $label: $summary; hangs $hangs, leaks $leaks; ${secs}s; seed $seed; exit $st; log $log"
    if [ "$st" -ne 0 ]; then
        grep '^not ok' "$log" | sed 's/^/stress:   /' | head -n 20
        return 1
    fi
    return 0
}

phase() { # PHASE ROUNDS GLOBS
    [ "$2" -gt 0 ] || return 0
    echo "stress: $1: $2 rounds of [$(echo $3)] with jitter 0..${jitter} ms on:$runs"
    if [ "$parallel" -gt 1 ]; then
        tmp=$(mktemp -d)
        i=0
        for r in $runs; do
            ( run "$r" "$1" "$2" "$3" > "$tmp/$i.out" 2>&1; echo $? > "$tmp/$i.rc" ) &
            i=$((i + 1))
            if [ $((i % parallel)) -eq 0 ]; then wait; fi
        done
        wait
        cat "$tmp"/*.out
        for f in "$tmp"/*.rc; do [ "$(cat "$f")" = 0 ] || fail=1; done
        rm -rf "$tmp"
    else
        for r in $runs; do run "$r" "$1" "$2" "$3" || fail=1; done
    fi
}

fail=0
phase bulk "$rounds" "$globs"
phase full "$full_rounds" 'cancel.* orphan.*'
[ $fail -eq 0 ] && echo "stress: PASS" || echo "stress: FAIL"
exit $fail
