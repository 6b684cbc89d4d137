#!/bin/sh
# Bring up a Slurm test cluster for tether's tests on this one host, without systemd:
# munged, slurmctld -D and one slurmd -D per node (slurmd -N; eight nodes by
# default, TETHER_SLURM_NODES=N: docs/slurm.md says why), started directly, as
# root, with their configuration, state and logs in one private folder. Installs nothing
# (scripts/install-slurm-deps.sh does). Every wait is bounded.
#
#   sh scripts/slurm-up.sh [DIR]      (default DIR: $TETHER_SLURM_DIR or /tmp/tether-slurm)
#   export SLURM_CONF=DIR/slurm.conf  (printed on success; srun, scontrol... need it)
#   sh scripts/slurm-down.sh [DIR]
#
# Exit status: 0 up; 1 a daemon did not come up (its log is printed);
# 2 not root or a command is missing.
set -eu
dir=${1:-${TETHER_SLURM_DIR:-/tmp/tether-slurm}}
# CPUs the node advertises (SlurmdParameters=config_overrides): every actor
# is a one-CPU job, and the conformance suite runs 64 at once
cpus=${TETHER_SLURM_CPUS:-96}

say() { echo "slurm-up: $*" >&2; }
[ "$(id -u)" -eq 0 ] || { say "run as root (slurmd tracks processes in cgroups)"; exit 2; }
for c in munged munge unmunge slurmctld slurmd scontrol sinfo srun scancel squeue; do
    command -v "$c" >/dev/null 2>&1 || { say "'$c' not found: run scripts/install-slurm-deps.sh"; exit 2; }
done
if [ -f "$dir/slurmctld.pid" ] && kill -0 "$(cat "$dir/slurmctld.pid")" 2>/dev/null; then
    say "a cluster from $dir is running already: scripts/slurm-down.sh $dir first"; exit 1
fi

host=$(hostname -s)
mkdir -p "$dir/state" "$dir/spool" "$dir/log"
chmod 0755 "$dir"
conf="$dir/slurm.conf"
export SLURM_CONF="$conf"

# wait_for SECONDS WHAT COMMAND...: run COMMAND every 0.1 s until it succeeds
wait_for() {
    secs=$1 what=$2; shift 2
    i=0
    while [ "$i" -lt $((secs * 10)) ]; do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1; i=$((i + 1))
    done
    say "$what: not ready after ${secs}s"
    return 1
}

# ---- process tracking: cgroups when the machine has them --------------------------
# proctrack/cgroup kills every process of a step, however it detached (setsid,
# double fork); proctrack/pgid misses those. Slurm 22.05 uses cgroup v1 (the
# freezer) on a v1 or hybrid layout, cgroup/v2 on a pure v2 layout.
proctrack=${TETHER_SLURM_PROCTRACK:-}
cgplugin=autodetect
if [ -z "$proctrack" ]; then
    if [ -d /sys/fs/cgroup/freezer ]; then
        proctrack=proctrack/cgroup
    elif [ -f /sys/fs/cgroup/cgroup.controllers ]; then
        proctrack=proctrack/cgroup cgplugin=cgroup/v2
    else
        proctrack=proctrack/pgid
        say "WARNING: no cgroup freezer or cgroup v2 here: proctrack/pgid (detached descendants escape)"
    fi
fi

# ---- nodes: slurmd -N runs one daemon per node name on this host ------------------
nnodes=${TETHER_SLURM_NODES:-8}
case $nnodes in
    [1-9] | [1-5][0-9] | 6[0-4]) ;;
    *) say "TETHER_SLURM_NODES='$nnodes': give a number of nodes from 1 to 64"; exit 2 ;;
esac
nodes=$host
i=2
while [ "$i" -le "$nnodes" ]; do nodes="$nodes,$host-$i"; i=$((i + 1)); done
node_lines() {
    echo "NodeName=$host CPUs=$cpus RealMemory=1000 State=UNKNOWN"
    i=2
    while [ "$i" -le "$nnodes" ]; do
        echo "NodeName=$host-$i NodeHostname=$host NodeAddr=127.0.0.1 Port=$((6817 + i)) CPUs=$cpus RealMemory=1000 State=UNKNOWN"
        i=$((i + 1))
    done
}
for n in $(echo "$nodes" | tr , ' '); do mkdir -p "$dir/spool/$n"; done

cat > "$conf" <<CONF
# written by tether's scripts/slurm-up.sh: a test cluster, every node on this host
ClusterName=tether
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
TaskPlugin=task/none
ProctrackType=$proctrack
# a step whose srun is gone (killed with its helper) is cancelled after this
InactiveLimit=15
KillWait=2
MinJobAge=2
ReturnToService=2
SlurmdParameters=config_overrides
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.daemon.pid
SlurmdPidFile=$dir/slurmd.%n.daemon.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.%n.log
SlurmctldDebug=info
SlurmdDebug=info
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
$(node_lines)
PartitionName=debug Nodes=$nodes Default=YES MaxTime=INFINITE State=UP
CONF
cat > "$dir/cgroup.conf" <<CONF
CgroupPlugin=$cgplugin
CgroupMountpoint=/sys/fs/cgroup
CgroupAutomount=no
ConstrainCores=no
ConstrainRAMSpace=no
ConstrainDevices=no
CONF

# ---- munged: reuse one that answers, else start our own ------------------------------
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "munged: already running, reused"
    rm -f "$dir/munged.pid"
else
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    chmod 0755 /run/munge
    [ -f /etc/munge/munge.key ] || { say "/etc/munge/munge.key is missing (reinstall munge)"; exit 2; }
    runuser -u munge -- munged --force
    wait_for 10 munged sh -c 'munge -n | unmunge' || exit 1
    cat /run/munge/munged.pid > "$dir/munged.pid"
fi

# ---- the daemons, each in a session of its own, in the foreground (-D) ----------------
start() { # NAME COMMAND...
    name=$1; shift
    setsid "$@" </dev/null >>"$dir/log/$name.out" 2>&1 &
    echo $! > "$dir/$name.pid"
}
fail() {
    say "$1 did not come up; its log:"
    tail -n 30 "$dir/log/$1.log" "$dir/log/$1.out" >&2 2>/dev/null || true
    exit 1
}
start slurmctld slurmctld -D -i -f "$conf"
wait_for 20 "slurmctld (scontrol ping)" sh -c 'scontrol ping | grep -q UP' || fail slurmctld
for n in $(echo "$nodes" | tr , ' '); do
    start "slurmd.$n" slurmd -D -N "$n" -f "$conf"
done
idle() { # every node idle
    [ "$(sinfo -h -N -o '%N %t' | awk '$2 == "idle" { n++ } END { print n + 0 }')" -eq "$nnodes" ]
}
wait_for 20 "slurmd (sinfo: $nnodes nodes idle)" idle || {
    # nodes that were down in a saved state: resume them once
    scontrol update nodename="$nodes" state=resume >/dev/null 2>&1 || true
    wait_for 10 "slurmd (sinfo: $nnodes nodes idle)" idle || fail "slurmd.$host"
}
say "up: $nodes on $host, $cpus CPUs advertised each, $proctrack, config $conf"
echo "export SLURM_CONF=$conf"
