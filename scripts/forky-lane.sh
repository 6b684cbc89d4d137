#!/bin/sh
# CI lane: the whole project on the next Debian (forky: gcc 16, glibc 2.42+,
# CPython 3.14 with a GIL per sub-interpreter), from Debian's binary packages.
# A forky root is made with debootstrap, the build dependencies are installed
# inside it, and the source tree is configured with --enable-werror and must
# pass `make check` there.
#
#   sh scripts/forky-lane.sh           # make the root (or reuse it), make check inside
#   sh scripts/forky-lane.sh --root    # only make (or reuse) the root
#
# Environment:
#   TETHER_CI_CACHE  where the root is kept (default /var/cache/tether-ci; the
#                    root is $TETHER_CI_CACHE/forky-root, ~5-8 min to make on a
#                    fresh machine, reused while its stamp matches this script's
#                    package list).
#   DEBIAN_MIRROR    the archive (default http://deb.debian.org/debian).
#
# Run as root (debootstrap, chroot, mount). Every step is bounded with
# timeout(1); the mounts are undone and any process still running in the root
# is killed on exit. Needs: debootstrap (scripts/install-deps.sh).
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
cache=${TETHER_CI_CACHE:-/var/cache/tether-ci}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
chr=$cache/forky-root
only_root=0
[ "${1:-}" = "--root" ] && only_root=1
# forky's names: msgpack-c's -dev package is libmsgpack-c-dev (msgpack-c.pc);
# python3-dev is 3.14 there (python3.pc, python3-embed.pc: configure checks it)
PKGS="build-essential autoconf automake libtool pkg-config autoconf-archive
      libffi-dev libyaml-dev libmsgpack-c-dev check python3-dev python3.14-dev python3-trio"
stamp="forky $(echo $PKGS)"

say() { echo "forky-lane: $*"; }
die() { echo "forky-lane: $*" >&2; exit 1; }
t0=$(date +%s)
elapsed() { echo "$(( $(date +%s) - t0 )) s"; }
tf=$cache/forky-times
cpu() {  # children's user + sys so far, in seconds, into $c (`times` must
         # run in this shell, not in a $(...) subshell)
    times > "$tf"
    c=$(awk 'NR == 2 { t = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] }
                       printf "%.0f", t }' "$tf")
}
[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap, chroot and mount need it)"
command -v debootstrap >/dev/null || die "debootstrap not installed (scripts/install-deps.sh)"

mounted=""
cleanup() {
    # processes this lane started inside the root (a timed-out make check)
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/root" 2>/dev/null)" = "$chr" ] && kill -9 "${p#/proc/}" 2>/dev/null
    done
    for m in $mounted; do umount -l "$chr/$m" 2>/dev/null || true; done
    mounted=""
    sweep_cgroups
}
# The host's cgroup2 tree is bound in: the fork backend's cgroup containment
# makes tether.PID.N groups there, and a supervisor killed by a test
# (test_fork's parent-death cases) leaves its empty ones for the next
# supervisor's open to remove. The lane has no next one: remove them as the
# backend does (only a dead PID's, and rmdir takes only empty groups).
sweep_cgroups() {
    cg=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts)
    [ -n "$cg" ] || return 0
    cg=$cg$(sed -n 's/^0::\/*/\//p' /proc/self/cgroup | sed 's|^/$||')
    for d in "$cg"/tether.*.*; do
        p=${d##*/tether.}; p=${p%%.*}
        [ -d "$d" ] && [ ! -d "/proc/$p" ] || continue
        rmdir "$d"/a* "$d" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mnt() {  # mnt TYPE-OR-BIND SOURCE DIR
    mkdir -p "$chr/$3"
    case $1 in
    bind) mount --bind "$2" "$chr/$3" ;;
    rbind) mount --rbind "$2" "$chr/$3" ;;
    *) mount -t "$1" "$2" "$chr/$3" ;;
    esac
    mounted="$3 $mounted"
}
in_root() {  # in_root SECONDS COMMAND...: bounded, in a clean environment
    secs=$1; shift
    timeout "$secs" chroot "$chr" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}

make_root() {
    rm -rf "$chr" "$chr.new"
    mkdir -p "$cache"
    # Debian 12's debootstrap has no forky script: sid's works for it.
    say "debootstrap forky into $chr.new"
    timeout 1200 nice debootstrap --variant=minbase forky "$chr.new" "$mirror" \
        /usr/share/debootstrap/scripts/sid > "$cache/forky-debootstrap.log" 2>&1 ||
        { tail -n 30 "$cache/forky-debootstrap.log"; rm -rf "$chr.new"; die "debootstrap failed"; }
    mv "$chr.new" "$chr"
    cpu
    say "root made ($(elapsed) wall, $c s CPU so far)"
}

install_deps() {
    cp /etc/resolv.conf "$chr/etc/resolv.conf"
    # The archive served here may be older than forky's Release file allows.
    echo 'Acquire::Check-Valid-Until "false";' > "$chr/etc/apt/apt.conf.d/99tether-ci"
    # A throw-away root: dpkg need not fsync every file it unpacks.
    echo force-unsafe-io > "$chr/etc/dpkg/dpkg.cfg.d/99tether-ci"
    in_root 600 apt-get -qq update || die "apt-get update in the forky root failed"
    # shellcheck disable=SC2086
    in_root 1200 apt-get install -y -qq --no-install-recommends $PKGS \
        > "$cache/forky-apt.log" 2>&1 ||
        { tail -n 30 "$cache/forky-apt.log"; die "installing the build deps in the forky root failed"; }
    in_root 120 apt-get clean
    echo "$stamp" > "$chr/.tether-stamp"
    cpu
    say "build deps installed ($(elapsed) wall, $c s CPU so far)"
}

# A root made before (any stamp) is reused; a changed package list is
# installed into it below.
if [ -f "$chr/.tether-stamp" ]; then
    say "reusing $chr"
else
    make_root
fi
mnt proc proc proc
mnt sysfs sysfs sys
mnt bind /dev dev
mnt bind /dev/pts dev/pts
mnt tmpfs tmpfs dev/shm
# the fork backend's cgroup containment (tests/unit/test_fork) looks for
# the host's cgroup2 file system
mnt rbind /sys/fs/cgroup sys/fs/cgroup
[ -f "$chr/.tether-stamp" ] && [ "$(cat "$chr/.tether-stamp")" = "$stamp" ] || install_deps
say "$(in_root 30 gcc --version | head -n 1); glibc $(in_root 30 ldd --version | head -n 1 | awk '{print $NF}'); $(in_root 30 python3.14 -V)"
[ "$only_root" -eq 0 ] || exit 0

# The project's tracked files (as they are in the work tree) into /src.
rm -rf "$chr/src" && mkdir -p "$chr/src"
git ls-files -z | tar -C "$root" --null -T - -cf - | tar -C "$chr/src" -xf -
# configure finds Python through python3-embed (forky's python3-dev: 3.14);
# the lane is for 3.14, so say so if forky's default moves on.
v=$(in_root 30 pkg-config --modversion python3-embed) || die "no python3-embed.pc in the forky root"
[ "$v" = 3.14 ] || die "forky's python3-dev is CPython $v, not 3.14: name 3.14 in this script"
# Two phases, each bounded and reported with its wall and CPU time (user +
# sys of everything it ran, from the shell's `times`), so that the lane's
# cost can be weighed against CI's budget.
phase() {  # phase NAME SECONDS SCRIPT: run SCRIPT in /src inside the root
    name=$1 secs=$2 w0=$(date +%s)
    cpu; c0=$c
    timeout "$secs" chroot "$chr" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
        LANG=C.UTF-8 /bin/sh -c "set -e; cd /src; $3" >> "$cache/forky-check.log" 2>&1 || status=$?
    cpu
    say "$name: $(( $(date +%s) - w0 )) s wall, $(( c - c0 )) s CPU (user + sys)"
}
status=0
: > "$cache/forky-check.log"
phase build 1200 '
    ./autogen.sh > autogen.log 2>&1 || { tail -n 20 autogen.log; exit 1; }
    ./configure -q --enable-werror
    nice make -j2 -s'
[ "$status" -ne 0 ] || phase "make check" 2400 'nice make -j2 check'
if [ "$status" -ne 0 ]; then
    tail -n 60 "$cache/forky-check.log"
    # the per-program logs: tests/**/X.log and conformance/X.sh.log
    for log in $(find "$chr/src/tests" "$chr/src/conformance" -name '*.log'); do
        grep -qE '^(FAIL|ERROR)' "$log" 2>/dev/null && { echo "==== $log"; tail -n 60 "$log"; }
    done
fi
tl=$chr/src/test-suite.log
if [ -f "$tl" ]; then
    n() { sed -n "s/^# $1: *//p" "$tl" | head -n 1; }
    say "make check: $(n PASS) passed, $(( $(n FAIL) + $(n ERROR) )) failed, $(n SKIP) skipped ($(elapsed))"
fi
[ "$status" -eq 0 ] && say "passed ($(elapsed))" || say "FAILED ($(elapsed)): $cache/forky-check.log"
exit "$status"
