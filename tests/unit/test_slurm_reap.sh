#!/bin/sh
# `tether reap -b slurm`: a job named for a supervisor that is gone is
# listed by --dry-run and cancelled without it; a job of a live supervisor
# (this shell) is left alone. Needs a Slurm controller (skipped otherwise).
set -u
top=${abs_top_builddir:-$(pwd)}
. "${abs_top_srcdir:-$(pwd)}/tests/unit/slurm_cluster.sh"
host=$(hostname -s)
start=$(sed 's/.*) //' /proc/$$/stat | cut -d' ' -f20)
gone="tether:$host:999999999:1:1"   # no such pid
live="tether:$host:$$:$start:2"     # this shell
srun -Q -N1 -n1 -J "$gone" sleep 300 </dev/null >/dev/null 2>&1 &
a=$!
srun -Q -N1 -n1 -J "$live" sleep 300 </dev/null >/dev/null 2>&1 &
b=$!
fail=0
cleanup() {
    scancel --name="$gone" --name="$live" 2>/dev/null
    scancel -n "$gone" 2>/dev/null; scancel -n "$live" 2>/dev/null
    kill "$a" "$b" 2>/dev/null
    wait 2>/dev/null
}
trap cleanup EXIT
# both running: at most 20 s
i=0
while [ "$(squeue -h -t R -n "$gone,$live" -o %j | wc -l)" -lt 2 ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
cfg="$top/plugins.yaml"
out=$("$top/cli/tether" reap -c "$cfg" -b slurm --dry-run)
echo "$out" | sed 's/^/# /'
echo "$out" | grep -q "$gone .*is gone: would cancel" || { echo "not ok - dry run does not list $gone"; fail=1; }
echo "$out" | grep -q "$live .*is running" || { echo "not ok - dry run does not see $live as running"; fail=1; }
[ -n "$(squeue -h -n "$gone" -o %i)" ] || { echo "not ok - the dry run cancelled $gone"; fail=1; }
out=$("$top/cli/tether" reap -c "$cfg" -b slurm)
echo "$out" | sed 's/^/# /'
echo "$out" | grep -q "$gone .*is gone: cancelled" || { echo "not ok - reap did not cancel $gone"; fail=1; }
# gone from the queue within 10 s; the live one still there
i=0
while [ -n "$(squeue -h -n "$gone" -t R,PD -o %i)" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
[ -z "$(squeue -h -n "$gone" -t R,PD -o %i)" ] || { echo "not ok - $gone still running 10 s after reap"; fail=1; }
[ -n "$(squeue -h -n "$live" -t R -o %i)" ] || { echo "not ok - reap touched $live"; fail=1; }
[ $fail -eq 0 ] && echo "ok - tether reap cancels the orphan and only it"
exit $fail
