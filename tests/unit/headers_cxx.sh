#!/bin/sh
# make check: the public headers compile as C++ (C++11, 17, 20), and the
# cancel flag of <tether/backend.h> (C11 atomic_int in C, std::atomic<int>
# in C++) is one object to both languages: a C++ host passes it to C code
# that sets it (as the actor runtime does) and reads the value back, and
# the other way round. Skipped (77) when there is no C++ compiler.
set -u
src=${abs_top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
cc=${CC:-cc}
cxx=${CXX:-c++}
command -v "$cxx" >/dev/null 2>&1 || { echo "SKIP: no C++ compiler ($cxx)"; exit 77; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/tether-cxx.XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT

cat > "$dir/c_side.c" <<'C'
#include <tether/backend.h>
void c_orphan(tether_cancel_flag *f);
int c_get(tether_cancel_flag *f);
void c_orphan(tether_cancel_flag *f) { tether_cancel_flag_set(f, TETHER_CANCEL_ORPHANED); }
int c_get(tether_cancel_flag *f) { return (int)tether_cancel_flag_get(f); }
C
cat > "$dir/main.cc" <<'CXX'
#include <signal.h>
#include <stdio.h>
#include <tether/actor.h>
#include <tether/backend.h>
#include <tether/common.h>
#include <tether/error.h>
#include <tether/tether.h>
extern "C" void c_orphan(tether_cancel_flag *f);
extern "C" int c_get(tether_cancel_flag *f);
int main()
{
    tether_cancel_flag f(TETHER_CANCEL_NONE);
    if (c_get(&f) != TETHER_CANCEL_NONE) return 1;
    tether_cancel_flag_set(&f, TETHER_CANCEL_REQUESTED);
    if (c_get(&f) != TETHER_CANCEL_REQUESTED) return 2;
    c_orphan(&f);
    if (tether_cancel_flag_get(&f) != TETHER_CANCEL_ORPHANED) return 3;
    if (TETHER_PARENT_DEATH_SIGNAL <= 0) return 4;
    puts("ok");
    return 0;
}
CXX
fail=0
"$cc" -std=c11 -Wall -Wextra -Werror -I"$src/include" -c "$dir/c_side.c" -o "$dir/c_side.o" || exit 1
for std in c++11 c++17 c++20; do
    if "$cxx" -std=$std -Wall -Wextra -Werror -I"$src/include" "$dir/main.cc" "$dir/c_side.o" \
        -o "$dir/main" && "$dir/main" >/dev/null; then
        echo "ok: public headers as $std, the cancel flag shared with C"
    else
        echo "FAIL: public headers as $std (status $?)"; fail=1
    fi
done
exit $fail
