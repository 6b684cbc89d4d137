#!/bin/sh
# Closing a slurm supervisor right after its actors ended leaves their jobs
# to complete as Slurm's own: COMPLETED (or FAILED with the actor's
# status), never CANCELLED. The bug this catches: close ended the thread
# that started every srun first, and srun's parent-death signal (SIGKILL)
# then killed each srun still completing its job: Slurm recorded normally
# ended actors as cancelled and held their node COMPLETING for seconds
# (docs/slurm.md). Needs a Slurm controller (skipped otherwise).
set -u
top=${abs_top_builddir:-$(pwd)}
. "${abs_top_srcdir:-$(pwd)}/tests/unit/slurm_cluster.sh"
host=$(hostname -s)
cfg="$top/plugins.yaml"
[ -f "$cfg" ] || cfg="${abs_top_srcdir:-$top}/plugins.yaml"
actors="$top/conformance/.libs/conformance_actors.so"
fail=0
# TARGET EXPECTED-STATE: five runs of `tether run -b slurm TARGET`; each
# closes its supervisor as soon as the actor's outcome is known
check() {
    i=0
    while [ $i -lt 5 ]; do
        "$top/cli/tether" run -c "$cfg" -b slurm "$actors:$1" >/dev/null 2>&1 &
        pid=$!
        # bounded: SIGKILL after 60 s (the job name needs the CLI's own pid,
        # not a timeout(1)'s); the guard ends within 0.1 s of the CLI
        ( timeout 60 sh -c "while kill -0 $pid 2>/dev/null; do sleep 0.1; done" ||
              kill -KILL $pid 2>/dev/null ) &
        wait $pid
        # the job named for this supervisor (tether:HOST:PID:START:N), as
        # Slurm recorded its end; kept MinJobAge (2 s) after it: look for
        # at most 5 s while it is still completing
        k=0
        state=""
        while [ $k -lt 50 ]; do
            state=$(squeue -h -t all -o '%j %T' | awk -v p="tether:$host:$pid:" 'index($1, p) == 1 { print $2 }')
            case $state in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY) break ;; esac
            sleep 0.1
            k=$((k + 1))
        done
        echo "# $1, run $i: the job of supervisor $pid ended $state"
        if [ "$state" != "$2" ]; then
            echo "not ok - $1: the job of supervisor $pid ended '$state', expected $2"
            fail=1
        fi
        i=$((i + 1))
    done
}
check exits_at_once COMPLETED
check fails FAILED
wait # the guards
[ $fail -eq 0 ] && echo "ok - every job of a closed supervisor completed as Slurm's own"
exit $fail
