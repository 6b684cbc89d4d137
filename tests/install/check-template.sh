#!/bin/sh
# installcheck: a new user with only the installed package copies the
# installed backend template, builds it and passes the conformance suite
# with it (spawn.thread-exits included), reads every man page, and finds a
# guide that names no file of the source tree.
#   check-template.sh SRCDIR        (PKG_CONFIG_PATH must find the installed tether.pc)
set -eu
pc() { pkg-config "$@" tether; }
prefix=$(pc --variable=prefix)
echo "installed tether $(pc --modversion) at $prefix"
templatedir=$(pc --variable=templatedir)
docdir=$(pc --variable=docdir)
for f in template.c Makefile README.md; do
    [ -f "$templatedir/$f" ] || { echo "missing from the installed template: $templatedir/$f" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$templatedir/template.c" "$templatedir/Makefile" "$work/"
make -C "$work" template.so
"$prefix/bin/tether" backends -c "$(pc --variable=config)"
# Every scenario, orphan.escaped-descendant and orphan.escaped-parent-dies
# included: the template contains an actor's processes with a subreaper
# keeper, not by its process group only.
make -C "$work" check
mandir="$prefix/share/man"
for page in man1/tether.1 man1/tether-actor.1 man5/plugins.yaml.5 man3/tether_backend.3 man3/tether_actor.3; do
    if [ -f "$mandir/$page" ]; then
        MANWIDTH=80 man -l "$mandir/$page" > /dev/null
        echo "man page ok: $page"
    else
        echo "missing man page: $mandir/$page" >&2
        exit 1
    fi
done
# the guide stands on the installed files alone
guide="$docdir/writing-a-backend.md"
[ -f "$guide" ] || { echo "missing guide: $guide" >&2; exit 1; }
if grep -nE '(backends|tests|core|cli)/[A-Za-z0-9_./-]*\.(c|h|sh)\b' "$guide"; then
    echo "$guide names source-tree files (above): an installed reader does not have them" >&2
    exit 1
fi
echo "guide ok: $guide"
