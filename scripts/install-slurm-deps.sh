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
# already there (a second CI run, a developer machine): nothing to do
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "install-slurm-deps.sh: already installed: $PKGS"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# the package lists: refreshed unless apt-get update ran in the last hour
# (scripts/install-deps.sh just before, in CI), or when they lack slurmd
lists=/var/lib/apt/lists
if [ -z "$(find "$lists" -maxdepth 1 -name '*_Packages*' -mmin -60 2>/dev/null | head -n 1)" ] ||
    ! apt-cache show slurmd >/dev/null 2>&1; then
    apt-get update -qq
fi
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
