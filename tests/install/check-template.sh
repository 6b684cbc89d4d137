#!/bin/sh
# installcheck: a new user with only the installed package builds the
# backend template (examples/backend-template) and passes the conformance
# suite with it, and reads every man page.
#   check-template.sh SRCDIR        (PKG_CONFIG_PATH must find the installed tether.pc)
set -eu
srcdir=$1
pc() { pkg-config "$@" tether; }
prefix=$(pc --variable=prefix)
echo "installed tether $(pc --modversion) at $prefix"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$srcdir/examples/backend-template/template.c" "$srcdir/examples/backend-template/Makefile" "$work/"
make -C "$work" template.so
"$prefix/bin/tether" backends -c "$(pc --variable=config)"
make -C "$work" check
mandir="$prefix/share/man"
for page in man1/tether.1 man5/plugins.yaml.5 man3/tether_backend.3 man3/tether_actor.3; do
    if [ -f "$mandir/$page" ]; then
        MANWIDTH=80 man -l "$mandir/$page" > /dev/null
        echo "man page ok: $page"
    else
        echo "missing man page: $mandir/$page" >&2
        exit 1
    fi
done
