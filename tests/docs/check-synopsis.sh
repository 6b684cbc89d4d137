#!/bin/sh
# make check: the man pages show the public headers as they are.
#   check-synopsis.sh [SRCDIR]
# For each page and the header it documents (tether_actor.3 and actor.h,
# tether_backend.3 and backend.h), compares the C in the page's .nf blocks
# (the SYNOPSIS, the STRUCTURES) with the header's declarations:
#   - every function the header declares (or defines static inline) is in
#     the page, declared identically (types, names, qualifiers; whitespace
#     and comments do not matter);
#   - every function a page shows is declared identically in a public header;
#   - every struct the header defines is shown in the page, and every struct
#     a page shows has exactly the header's members, in the header's order.
# Prints each drift with both versions and exits 1 if there is any.
set -u
src=${1:-${abs_top_srcdir:-.}}
inc="$src/include/tether"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The C text of a man page's .nf ... .fi blocks: font requests joined as
# troff prints them (.B/.I with spaces, .BI/.BR/... alternating without),
# escapes undone; a block's end and a paragraph break end a statement.
man2c() {
    awk '
    /^\.nf/ { nf = 1; next }
    /^\.fi/ { nf = 0; print ";"; next }
    !nf { next }
    /^\.(PP|sp|br|in|RS|RE)/ { print ";"; next }
    {
        line = $0
        if (line ~ /^\.[A-Z][A-Z]?( |$)/) {
            sp = index(line " ", " ")
            req = substr(line, 2, sp - 2)
            rest = substr(line, sp + 1)
            out = ""; n = 0; i = 1; len = length(rest)
            while (i <= len) {
                c = substr(rest, i, 1)
                if (c == " ") { i++; continue }
                arg = ""
                if (c == "\"") {
                    i++
                    while (i <= len && substr(rest, i, 1) != "\"") { arg = arg substr(rest, i, 1); i++ }
                    i++
                } else {
                    while (i <= len && substr(rest, i, 1) != " ") { arg = arg substr(rest, i, 1); i++ }
                }
                out = out ((n > 0 && (req == "B" || req == "I")) ? " " : "") arg
                n++
            }
            line = out
        }
        gsub(/\\\(dq/, "\"", line); gsub(/\\\(em/, "--", line)
        gsub(/\\-/, "-", line); gsub(/\\f[BIRP]/, "", line); gsub(/\\&/, "", line)
        gsub(/\\e/, "\\", line)
        print line
    }' "$1"
}

# One line per declaration of C text: "F decl" for a function, "S name|m1; m2; "
# for a struct and its members. Comments, preprocessor lines and C++ guards
# are dropped, __attribute__((...)) removed, whitespace normalised.
decls() {
    awk '
    function norm(s,    p, q, d, c) {
        while ((p = index(s, "__attribute__")) > 0) {
            q = p + 13; d = 0
            while (q <= length(s)) {
                c = substr(s, q, 1)
                if (c == "(") d++
                else if (c == ")") { d--; if (d == 0) break }
                q++
            }
            s = substr(s, 1, p - 1) " " substr(s, q + 1)
        }
        gsub(/[ \t\n]+/, " ", s); sub(/^ /, "", s); sub(/ $/, "", s)
        gsub(/\( /, "(", s); gsub(/ \)/, ")", s); gsub(/ ,/, ",", s)
        return s
    }
    function fname(s,    h) {
        h = substr(s, 1, index(s, "(") - 1)
        sub(/[ ]+$/, "", h)
        if (match(h, /[A-Za-z_][A-Za-z_0-9]*$/)) return substr(h, RSTART)
        return ""
    }
    function emit_func(s) {
        if (s ~ /^typedef / || s !~ /\)$/ || s !~ /^[A-Za-z_]/) return
        if (fname(s) ~ /^tether_/ && fname(s) != substr(s, 1, length(fname(s)))) print "F " s
    }
    BEGIN { incomment = 0; cont = 0; cxx = 0 }
    {
        line = $0
        if (cont) { cont = (line ~ /\\$/); next }
        if (cxx) { if (line ~ /^[ \t]*#[ \t]*endif/) cxx = 0; next }
        if (!incomment && line ~ /^[ \t]*#[ \t]*ifdef[ \t]+__cplusplus/) { cxx = 1; next }
        if (!incomment && line ~ /^[ \t]*#/) { cont = (line ~ /\\$/); next }
        out = ""
        while (line != "") {
            if (incomment) {
                p = index(line, "*/")
                if (p == 0) { line = ""; break }
                line = substr(line, p + 2); incomment = 0
            } else {
                p = index(line, "/*")
                if (p == 0) { out = out line; line = ""; break }
                out = out substr(line, 1, p - 1) " "
                line = substr(line, p + 2); incomment = 1
            }
        }
        text = text out "\n"
    }
    END {
        depth = 0; cur = ""; head = ""; members = ""
        n = length(text)
        for (i = 1; i <= n; i++) {
            c = substr(text, i, 1)
            if (c == "{") {
                if (depth == 0) { head = norm(cur); cur = ""; members = "" }
                else cur = cur c
                depth++
            } else if (c == "}") {
                depth--
                if (depth == 0) {
                    if (head ~ /^(typedef )?struct [A-Za-z_0-9]+$/) {
                        sub(/^typedef /, "", head)
                        print "S " substr(head, 8) "|" members
                    } else if (head ~ /\)$/) {
                        emit_func(head) # a static inline definition
                    }
                    cur = ""; head = "-"
                } else cur = cur c
            } else if (c == ";") {
                if (depth == 0) {
                    if (head != "-") emit_func(norm(cur))
                    cur = ""; head = ""
                } else if (depth == 1) {
                    members = members norm(cur) "; "; cur = ""
                } else cur = cur c
            } else cur = cur c
        }
    }' "$@"
}

status=0
for h in "$inc"/*.h; do decls "$h"; done > "$tmp/all"
for pair in "tether_actor.3 actor.h" "tether_backend.3 backend.h"; do
    set -- $pair
    page="$src/docs/$1"
    header="$inc/$2"
    decls "$header" > "$tmp/header"
    man2c "$page" > "$tmp/page.c"
    decls "$tmp/page.c" > "$tmp/page"
    if ! [ -s "$tmp/page" ]; then
        echo "FAIL: $1: no declaration found in its .nf blocks"; status=1; continue
    fi
    awk -v page="$1" -v header="$2" '
    function fname(s,    h) {
        h = substr(s, 3, index(s, "(") - 3)
        sub(/[ ]+$/, "", h)
        if (match(h, /[A-Za-z_][A-Za-z_0-9]*$/)) return substr(h, RSTART)
        return ""
    }
    FILENAME == ARGV[1] { all[$0] = 1; if (/^F /) allf[fname($0)] = $0
                          else { s = substr($0, 3, index($0, "|") - 3); alls[s] = $0 }
                          next }
    FILENAME == ARGV[2] { hdr[++nh] = $0; next }
    { shown[$0] = 1
      if (/^F /) shownf[fname($0)] = 1
      else { s = substr($0, 3, index($0, "|") - 3); showns[s] = 1; pg[++np] = $0 } }
    END {
        bad = 0
        for (k in shown) {
            if (k ~ /^F / && !(k in all) && fname(k) != "tether_backend_v1") {
                f = fname(k)
                print "FAIL: " page " shows   " substr(k, 3)
                print "      but the headers " ((f in allf) ? "declare " substr(allf[f], 3) : "do not declare " f)
                bad = 1
            }
        }
        for (i = 1; i <= np; i++) {
            k = pg[i]; s = substr(k, 3, index(k, "|") - 3)
            if (k in all) continue
            bad = 1
            if (!(s in alls)) { print "FAIL: " page " shows struct " s ", which no header defines"; continue }
            nm = split(substr(k, index(k, "|") + 1), m, "; ")
            nd = split(substr(alls[s], index(alls[s], "|") + 1), d, "; ")
            split("", inm); split("", ind)
            for (j = 1; j <= nm; j++) if (m[j] != "") inm[m[j]] = 1
            for (j = 1; j <= nd; j++) if (d[j] != "") ind[d[j]] = 1
            said = 0
            for (j = 1; j <= nd; j++) if (d[j] != "" && !(d[j] in inm)) {
                print "FAIL: " page ": struct " s " lacks the member   " d[j]; said = 1 }
            for (j = 1; j <= nm; j++) if (m[j] != "" && !(m[j] in ind)) {
                print "FAIL: " page ": struct " s " shows the member   " m[j] "   which the header does not have"; said = 1 }
            if (!said) print "FAIL: " page ": struct " s " shows its members in another order than the header"
        }
        for (i = 1; i <= nh; i++) {
            k = hdr[i]
            if (k ~ /^F / && !(fname(k) in shownf)) {
                print "FAIL: " header " declares " substr(k, 3) " but " page " does not show it"; bad = 1
            }
            if (k ~ /^S /) {
                s = substr(k, 3, index(k, "|") - 3)
                if (!(s in showns)) { print "FAIL: " header " defines struct " s " but " page " does not show it"; bad = 1 }
            }
        }
        if (!bad) print "ok: " page " agrees with " header " (" nh " declarations)"
        exit bad
    }' "$tmp/all" "$tmp/header" "$tmp/page" || status=1
done
[ -n "${CHECK_SYNOPSIS_DRIFT:-}" ] && exit $status

# The check must fail on a drift: run it on a copy with two deliberate ones
# (a prototype's argument and a struct member gone from the pages).
mkdir -p "$tmp/drift/include/tether" "$tmp/drift/docs"
cp "$inc"/*.h "$tmp/drift/include/tether/"
cp "$src/docs/tether_actor.3" "$src/docs/tether_backend.3" "$tmp/drift/docs/"
sed -i 's/^\.BI "int tether_actor_main(int " channel_fd ", const char \*" target .*$/.BI "int tether_actor_main(int " channel_fd ", const char *" target );/' \
    "$tmp/drift/docs/tether_actor.3"
sed -i '/^\.BR "    const char \*note;"/d' "$tmp/drift/docs/tether_backend.3"
drift=$(CHECK_SYNOPSIS_DRIFT=1 sh "$0" "$tmp/drift" 2>&1)
if [ $? -ne 1 ] ||
   ! printf '%s\n' "$drift" | grep -q "tether_actor.3 shows   int tether_actor_main(int channel_fd, const char \*target)" ||
   ! printf '%s\n' "$drift" | grep -q "struct tether_backend lacks the member   const char \*note"; then
    echo "FAIL: the check does not catch a deliberate drift:"
    printf '%s\n' "$drift" | sed 's/^/    | /'
    status=1
else
    echo "ok: a deliberate drift is caught:"
    printf '%s\n' "$drift" | sed 's/^/    | /'
fi
exit $status
