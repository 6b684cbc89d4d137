#!/bin/sh
# The slurm backend's configuration errors at open: each names the option or
# the check that failed. Runs without a cluster (the option checks come
# first, and "slurm installed" and "controller reachable" are provoked with
# a PATH without the tools and a controller that does not exist); the
# partition check runs when a controller answers.
set -u
top=${abs_top_builddir:-$(pwd)}
tether="$top/cli/tether"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
T="$top/conformance/.libs/conformance_actors.so:race_exit"

# expect OPTIONS_YAML TEXT [ENV...]: `tether run` must exit 2 and say TEXT
expect() {
    opts=$1 text=$2
    shift 2
    cat > "$tmp/p.yaml" <<CONF
backend: slurm
backends:
  slurm: { path: "$top/backends/slurm/.libs/slurm.so", options: { helper: "$top/cli/tether-actor"$opts } }
CONF
    out=$(env "$@" "$tether" run -c "$tmp/p.yaml" "$T" 2>&1)
    rc=$?
    if [ "$rc" -eq 2 ] && printf '%s' "$out" | grep -qF -- "$text"; then
        echo "ok - ${opts:-no options} ${*:+($*)}: $text"
    else
        echo "not ok - ${opts:-no options} ${*:+($*)}: expected status 2 and '$text', got $rc: $out"
        fail=1
    fi
}

expect ", srun_args: '--mem=1G -o out.txt'" "option srun_args: '-o' is refused"
expect ", srun_args: '--pty'" "option srun_args: '--pty' is refused"
expect ", srun_args: '--outp=x'" "'--outp=x' is refused (--output"
expect ", srun_args: '-l'" "'-l' is refused"
expect ", srun_args: '--input=none'" "'--input=none' is refused"
expect ", time_limit: 'ten'" "option time_limit: 'ten' is not a Slurm time"
expect ", job_name: 'a:b'" "option job_name: 'a:b' contains"
expect ", partition: ''" "option partition: empty"
expect ", colour: blue" "unknown option 'colour'"
# the tools: an empty PATH (the libtool wrapper runs with /bin/sh's builtins)
mkdir "$tmp/bin"
expect "" "check 'slurm installed': srun not found in PATH" PATH="$tmp/bin"
# a controller that does not exist (a port nobody listens on)
if command -v scontrol >/dev/null 2>&1; then
    printf 'ClusterName=none\nSlurmctldHost=localhost\nSlurmctldPort=9\nAuthType=auth/none\nNodeName=localhost CPUs=1\nPartitionName=p Nodes=localhost\n' \
        > "$tmp/none.conf"
    expect "" "check 'controller reachable': scontrol ping" SLURM_CONF="$tmp/none.conf"
    if timeout 10 scontrol ping 2>/dev/null | grep -q "is UP"; then
        expect ", partition: no_such_partition" "check 'partition exists': partition 'no_such_partition'"
    else
        echo "ok - # SKIP partition check: no Slurm controller answers"
    fi
else
    echo "ok - # SKIP controller and partition checks: scontrol is not installed"
fi
exit $fail
