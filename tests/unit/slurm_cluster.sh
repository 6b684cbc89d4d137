# tests/unit/slurm_cluster.sh - sourced by the slurm tests (test_slurm_*.sh):
# finds the test cluster's configuration (SLURM_CONF, else the default
# folder of scripts/slurm-up.sh) and skips the test (exit 77) with the
# reason when no Slurm controller answers (at most 10 s).
if [ -z "${SLURM_CONF:-}" ] && [ -f "${TETHER_SLURM_DIR:-/tmp/tether-slurm}/slurm.conf" ]; then
    SLURM_CONF="${TETHER_SLURM_DIR:-/tmp/tether-slurm}/slurm.conf"
    export SLURM_CONF
fi
if ! command -v scontrol >/dev/null 2>&1 || ! timeout 10 scontrol ping 2>/dev/null | grep -q "is UP"; then
    echo "# SKIP: no Slurm controller answers (scripts/slurm-up.sh)"
    exit 77
fi
