#!/bin/sh
# make check: `tether backends` keeps its columns aligned whatever the
# length of the names (a 14-character name here) and of the capabilities.
set -u
top=${abs_top_builddir:-$(pwd)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/backends.yaml" <<YAML
backend: thread
backends:
  thread: { path: $top/backends/thread/.libs/thread.so }
  fork: { path: $top/backends/fork/.libs/fork.so }
  broken-nogroup: { path: $top/conformance/.libs/broken_nogroup.so }
YAML
out=$("$top/cli/tether" backends -c "$tmp/backends.yaml")
status=$?
printf '%s\n' "$out"
[ "$status" -eq 0 ] || { echo "FAIL: tether backends exited $status"; exit 1; }
# every row has its ABI, LANGUAGE, CAPABILITIES, LOADS and FILE values
# starting in the column of their heading
printf '%s\n' "$out" | awk '
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = index($0, $i); next }
    /^default backend:/ || /^ / { next }
    {
        rows++
        if (substr($0, col["ABI"], 1) !~ /[0-9]/ ||
            substr($0, col["LANGUAGE"] - 1, 2) !~ / [a-z]/ ||
            substr($0, col["CAPABILITIES"] - 1, 2) !~ / [a-z-]/ ||
            substr($0, col["LOADS"] - 1, 4) != " yes" ||
            substr($0, col["FILE"], 1) != "/") {
            print "FAIL: misaligned row: " $0; bad = 1
        }
    }
    END { if (rows != 3) { print "FAIL: expected 3 rows, got " rows; bad = 1 } exit bad }'
