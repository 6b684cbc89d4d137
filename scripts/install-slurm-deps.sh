#!/bin/sh
# Install the Debian 12 packages the slurm backend's tests need: a one-node
# Slurm cluster (scripts/slurm-up.sh) and munge for its authentication.
# Run as root. Idempotent. (No libslurm-dev: the backend runs the client
# commands srun, scancel, squeue and scontrol in processes of their own,
# never a blocking controller RPC inside the supervising process.)
set -eu
PKGS="slurmctld slurmd slurm-client munge"
if [ "$(id -u)" -ne 0 ]; then
    echo "install-slurm-deps.sh: run as root (apt-get needs it)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# The packages' maintainer scripts must not start munged or the Slurm
# daemons (a munged started here would outlive the tests):
# scripts/slurm-up.sh starts what it needs and slurm-down.sh stops it.
policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    policy=/usr/sbin/policy-rc.d
fi
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $PKGS >/dev/null || { rm -f $policy; exit 1; }
rm -f $policy
echo "install-slurm-deps.sh: installed: $PKGS"
