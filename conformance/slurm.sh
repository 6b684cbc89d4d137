#!/bin/sh
# make check: the conformance suite against the slurm backend, when a Slurm
# controller answers (scripts/slurm-up.sh brings one up; SLURM_CONF names its
# configuration, default /tmp/tether-slurm/slurm.conf when that exists).
# Otherwise skipped (exit 77) with the reason.
if [ -z "${SLURM_CONF:-}" ] && [ -f "${TETHER_SLURM_DIR:-/tmp/tether-slurm}/slurm.conf" ]; then
    SLURM_CONF="${TETHER_SLURM_DIR:-/tmp/tether-slurm}/slurm.conf"
    export SLURM_CONF
fi
if ! command -v scontrol >/dev/null 2>&1 || ! command -v srun >/dev/null 2>&1; then
    echo "# SKIP slurm: the Slurm client commands are not installed (scripts/install-slurm-deps.sh)"
    exit 77
fi
ping=$(timeout 10 scontrol ping 2>&1)
case $ping in
    *"is UP"*) ;;
    *)
        echo "# SKIP slurm: no Slurm controller answers (scontrol ping: $(printf '%s' "$ping" | head -n 1));" \
             "bring one up with scripts/slurm-up.sh"
        exit 77 ;;
esac
exec "$(dirname "$0")/suite.sh" slurm "$@"
