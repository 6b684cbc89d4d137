#!/bin/sh
# make check: tether-actor(1), the exec helper, refuses every bad command
# line with exit status 2 and a message naming the bad argument, before it
# arms anything (its command line is a stable interface).
set -u
top=${abs_top_builddir:-$(pwd)}
helper="$top/cli/tether-actor"
fail=0
# expect TEXT ARGS...: exit status 2 and TEXT on stderr
expect() {
    text=$1; shift
    err=$("$helper" "$@" 2>&1 >/dev/null)
    status=$?
    if [ "$status" -eq 2 ] && printf '%s\n' "$err" | grep -q -- "$text"; then
        echo "ok: tether-actor $*: $text"
    else
        echo "FAIL: tether-actor $*: status $status, expected 2 with '$text':"
        printf '%s\n' "$err" | sed 's/^/    | /'
        fail=1
    fi
}
expect "usage: tether-actor --channel-fd N --parent PID \[--cgroup PROCS\] TARGET"
expect "usage: tether-actor" --channel-fd 3 --parent 1
expect "usage: tether-actor" --fd 3 --parent 1 x.so:f
expect "channel-fd: '3x' is not a file descriptor number" --channel-fd 3x --parent 1 x.so:f
expect "parent: '-4' is not a process id" --channel-fd 3 --parent -4 x.so:f
expect "channel-fd 9: not open" --channel-fd 9 --parent $$ x.so:f 9>&-
expect "channel-fd 0: not a socket" --channel-fd 0 --parent $$ x.so:f </dev/null
# a socket, but started in this script's process group: refused, nothing killed
if command -v python3 >/dev/null 2>&1; then
    out=$(python3 -c '
import socket, subprocess, sys
a, b = socket.socketpair()
r = subprocess.run([sys.argv[1], "--channel-fd", str(b.fileno()), "--parent", str(__import__("os").getpid()), "x.so:f"],
                   pass_fds=[b.fileno()], stderr=subprocess.PIPE, text=True)
print(r.returncode, r.stderr.strip())' "$helper")
    case $out in
        "2 tether-actor: not the leader of its own process group"*) echo "ok: refused outside its own process group" ;;
        *) echo "FAIL: started in its starter's process group: $out"; fail=1 ;;
    esac
fi
exit $fail
