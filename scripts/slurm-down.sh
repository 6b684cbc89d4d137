#!/bin/sh
# Tear down the cluster scripts/slurm-up.sh started from DIR: cancel every
# job, stop slurmd, slurmctld and (if it started it) munged by pid, and kill
# any step daemon of this cluster that is left. Every wait is bounded.
# Leaves DIR (logs) in place; `rm -rf DIR` after it if wanted.
set -u
dir=${1:-${TETHER_SLURM_DIR:-/tmp/tether-slurm}}
export SLURM_CONF="$dir/slurm.conf"
say() { echo "slurm-down: $*" >&2; }

# stop PIDFILE: SIGTERM, at most 5 s, then SIGKILL
stop() {
    [ -f "$1" ] || return 0
    pid=$(cat "$1")
    rm -f "$1"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null
    i=0
    while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    if kill -0 "$pid" 2>/dev/null; then
        say "$(basename "$1" .pid) ($pid) ignored SIGTERM for 5 s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null
    fi
}

if [ -f "$dir/slurmctld.pid" ] && kill -0 "$(cat "$dir/slurmctld.pid")" 2>/dev/null; then
    # every job of this cluster: cancelled, then at most 10 s for them to go
    timeout 10 scancel --full --signal=KILL --user=root >/dev/null 2>&1 || true
    timeout 10 scancel --user=root >/dev/null 2>&1 || true
    i=0
    while [ -n "$(timeout 5 squeue -h -o %i 2>/dev/null)" ] && [ "$i" -lt 100 ]; do
        sleep 0.1; i=$((i + 1))
    done
fi
for f in "$dir"/slurmd.pid "$dir"/slurmd.*.pid; do   # one slurmd a node (slurmd -N)
    case $f in *.daemon.pid) continue ;; esac
    stop "$f"
done
stop "$dir/slurmctld.pid"
# step daemons (slurmstepd) of this cluster still alive: they carry its SLURM_CONF
for p in $(pgrep -x slurmstepd 2>/dev/null); do
    if tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "SLURM_CONF=$dir/slurm.conf"; then
        say "killing leftover slurmstepd $p"
        kill -KILL "$p" 2>/dev/null
    fi
done
stop "$dir/munged.pid"
left=""
for p in $(pgrep -x 'slurmctld|slurmd|slurmstepd' 2>/dev/null); do
    if tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "SLURM_CONF=$dir/slurm.conf"; then
        left="$left $p"
    fi
done
if [ -n "$left" ]; then
    say "still running:$left"
    exit 1
fi
say "down ($dir)"
