#!/bin/sh
# CI lane: CPython 3.13 from Debian's `python3.13` source package, built into a
# private prefix, then tether configured against it and its unit tests plus the
# conformance suite run on the subint backend in both GIL modes.
#
#   sh scripts/build-python313.sh            # build Python (or reuse), test tether
#   sh scripts/build-python313.sh --python   # only build/reuse the interpreter
#
# Environment:
#   TETHER_CI_CACHE  where the interpreter is built and kept (default
#                    /var/cache/tether-ci; a fresh machine builds from nothing:
#                    ~4-6 min on 2 cores). PREFIX is $TETHER_CI_CACHE/python3.13.
#   DEBIAN_MIRROR    the archive (default http://deb.debian.org/debian).
#
# Only Debian's archive is used: a private sources list (deb-src for trixie,
# then forky) and private apt lists, so the system's apt setup is untouched.
# Every step is bounded with timeout(1); nothing is left running.
# Needs: dpkg-dev, libssl-dev zlib1g-dev libffi-dev (scripts/install-deps.sh).
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
cache=${TETHER_CI_CACHE:-/var/cache/tether-ci}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
prefix=$cache/python3.13
only_python=0
[ "${1:-}" = "--python" ] && only_python=1

say() { echo "build-python313: $*"; }
die() { echo "build-python313: $*" >&2; exit 1; }
t0=$(date +%s)
elapsed() { echo "$(( $(date +%s) - t0 )) s"; }

build_python() {
    work=$cache/py313-src
    rm -rf "$work" && mkdir -p "$work/lists/partial" "$work/archives/partial"
    for suite in trixie forky; do
        echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main" \
            > "$work/sources.list"
        apt_opts="-o Dir::Etc::sourcelist=$work/sources.list -o Dir::Etc::sourceparts=/dev/null
                  -o Dir::State::Lists=$work/lists -o Dir::Cache::Archives=$work/archives
                  -o Acquire::Check-Valid-Until=false -o APT::Sandbox::User=root"
        # shellcheck disable=SC2086
        if timeout 300 apt-get -qq $apt_opts update &&
           (cd "$work" && timeout 600 apt-get -qq $apt_opts source --download-only python3.13); then
            break
        fi
        say "python3.13 source not available from $suite"
    done
    orig=$(ls "$work"/python3.13_*.orig.tar.* 2>/dev/null | head -n 1)
    [ -n "$orig" ] || die "no python3.13 source package downloaded from $mirror (trixie, forky)"
    say "source: $(basename "$orig") ($(elapsed))"
    tar -C "$work" -xf "$orig"
    src=$(ls -d "$work"/Python-3.13* | head -n 1)
    [ -d "$src" ] || die "$orig: no Python-3.13* directory inside"
    # A minimal interpreter: shared libpython with headers and python3-embed.pc;
    # optional modules tether never uses are turned off (faster build).
    off=""
    for m in _tkinter _curses _curses_panel readline _dbm _gdbm _sqlite3 _decimal _ctypes \
             _lzma _bz2 _uuid nis _codecs_cn _codecs_hk _codecs_iso2022 _codecs_jp _codecs_kr \
             _codecs_tw _multibytecodec pyexpat _elementtree xxlimited xxlimited_35; do
        off="$off py_cv_module_$m=n/a"
    done
    rm -rf "$prefix"
    # shellcheck disable=SC2086
    (cd "$src" && timeout 1800 nice ./configure -q --prefix="$prefix" --enable-shared \
        --without-ensurepip --disable-test-modules \
        LDFLAGS="-Wl,-rpath,$prefix/lib" $off) > "$work/configure.log" 2>&1 ||
        { tail -n 40 "$work/configure.log"; die "configure failed ($work/configure.log)"; }
    (cd "$src" && timeout 1800 nice make -j2 -s) > "$work/make.log" 2>&1 ||
        { tail -n 40 "$work/make.log"; die "make failed ($work/make.log)"; }
    (cd "$src" && timeout 900 nice make -s install COMPILEALL_OPTS='-j0 -x .') \
        > "$work/install.log" 2>&1 ||
        { tail -n 40 "$work/install.log"; die "make install failed ($work/install.log)"; }
    basename "$orig" > "$prefix/.tether-source"
    rm -rf "$src"
    say "built $("$prefix/bin/python3.13" -V) into $prefix ($(elapsed))"
}

mkdir -p "$cache"
if [ -x "$prefix/bin/python3.13" ] && [ -f "$prefix/.tether-source" ] &&
   [ -f "$prefix/lib/pkgconfig/python3-embed.pc" ] &&
   "$prefix/bin/python3.13" -c 'import sys; assert sys.version_info[:2] == (3, 13)'; then
    say "reusing $prefix ($(cat "$prefix/.tether-source"))"
else
    build_python
fi
[ "$only_python" -eq 0 ] || exit 0

# tether against it: the project's tracked files (as they are in the work
# tree) copied into build-py313/, so that a tree configured in place (CI's
# first step) is left alone.
build=$root/build-py313
rm -rf "$build" && mkdir -p "$build"
git ls-files -z | tar --null -T - -cf - | tar -C "$build" -xf -
cd "$build"
timeout 300 ./autogen.sh > autogen.log 2>&1 || { tail -n 20 autogen.log; die "autogen.sh failed"; }
PKG_CONFIG_PATH=$prefix/lib/pkgconfig timeout 600 ./configure -q --enable-werror \
    LDFLAGS="-Wl,-rpath,$prefix/lib" > configure.log 2>&1 ||
    { tail -n 30 configure.log; die "tether configure against $prefix failed"; }
grep -q "python3.13" config.log || die "configure did not pick $prefix's python3.13"
timeout 900 nice make -j2 -s > make.log 2>&1 || { tail -n 40 make.log; die "tether build failed"; }
say "tether built against $("$prefix/bin/python3.13" -V) ($(elapsed))"

status=0
# The unit tests (with the default GIL mode: own GIL on 3.13), then the
# conformance suite on subint in each GIL mode.
# the unit test programs: build every check program, then run those named
# tests/unit/test_* (libraries such as test_actors.la are not tests)
timeout 900 nice make -j2 -s check TESTS= > unit-build.log 2>&1 ||
    { tail -n 30 unit-build.log; die "building the test programs failed"; }
units=$(for f in tests/unit/test_*; do
            # test_faults is driven by tests/fault/walk.sh, not run alone
            case $f in *.*|*/test_faults) ;; *) [ -f "$f" ] && [ -x "$f" ] && echo "$f" ;; esac
        done | tr '\n' ' ')
[ -n "$units" ] || die "no unit test programs in $build/tests/unit"
timeout 1200 make -j2 check TESTS="$units" > unit.log 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
    for log in tests/unit/*.log; do
        grep -qE '^(FAIL|ERROR)' "$log" 2>/dev/null && { echo "==== $log"; tail -n 40 "$log"; }
    done
fi
n() { sed -n "s/^# $1: *//p" test-suite.log 2>/dev/null | head -n 1 | grep . || echo 0; }
say "unit tests: $(n PASS) passed, $(( $(n FAIL) + $(n ERROR) )) failed, $(n SKIP) skipped ($(elapsed))"
export abs_top_builddir="$build" abs_top_srcdir="$build"
for gil in true false; do
    log=conformance-own_gil-$gil.log
    timeout 900 sh "$build/conformance/suite.sh" subint -o own_gil=$gil > "$log" 2>&1 ||
        { status=1; grep -A8 '^not ok' "$log" | head -n 60; }
    say "conformance subint own_gil=$gil: $(tail -n 1 "$log") ($(elapsed))"
done
[ "$status" -eq 0 ] && say "passed ($(elapsed))" || say "FAILED ($(elapsed)): $build/*.log"
exit "$status"
