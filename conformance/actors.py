"""conformance/actors.py - the Python scenario actors of the
conformance suite (the subint backend; the fork backend with --language
python, each actor in a process of its own). Each function behaves as its namesake in
actors.c and as SCENARIOS.md describes. Messages the suite reads are raw
bytes (send_bytes), as a C actor sends them.

Only what the function needs is imported, inside it: every actor imports
this file into a fresh sub-interpreter.
"""
import os
import threading
import time

import tether

# Callable functions (cancel.in-flight-call, error.bad-call,
# orphan.late-reply), with signatures as a C module's table declares them.
tether_functions = {"ping": ":i", "block10": ":i", "late": "d:i"}


def ping():
    return 1


def block10():
    """Blocks 10 s in one C call, no checkpoint: only abandonment ends it."""
    time.sleep(10)
    return 0


def _spin_until(end):
    while time.monotonic() < end:
        pass


def late(secs):
    """Spins `secs` seconds and ignores every cancel (even the injected one),
    then replies (orphan.late-reply): it outlives its own teardown.

    The spin is a call inside the try, not a loop written there: CPython
    3.13 can place a loop's backward jump (where an injected exception is
    raised) outside the try's exception-table range, so the exception
    escapes the handler (docs/subint.md). Raised inside the callee, it
    reaches the handler through the call, on every version."""
    end = time.monotonic() + secs
    while time.monotonic() < end:
        try:
            _spin_until(end)
        except tether.Cancelled:
            pass
    return 2


# ---- helpers ---------------------------------------------------------------


def _timed_wait_forever():
    """1 s timed waits, never a checkpoint (C: nanosleep loop)."""
    while True:
        threading.Event().wait(1.0)


def _wait_for_cancel():
    while True:
        tether.sleep(3600)


def _visible_pid(pid):
    """`pid` (as this process sees it) as /proc, and so the supervisor, names
    it: they differ when the actor has a PID namespace of its own (fork
    backend, containment pidns)."""
    if int(os.readlink("/proc/self")) == os.getpid():
        return pid
    ns = os.readlink("/proc/self/ns/pid")
    for d in os.listdir("/proc"):
        try:
            if not d.isdigit() or os.readlink(f"/proc/{d}/ns/pid") != ns:
                continue
            with open(f"/proc/{d}/status") as f:
                for line in f:
                    if line.startswith("NSpid:") and int(line.split()[-1]) == pid:
                        return int(d)
        except (OSError, ValueError):
            pass
    return pid


# ---- CANCEL ----------------------------------------------------------------


def cooperative(actor):
    while True:
        tether.checkpoint()
        tether.sleep(0.010)


def idle_serving(actor):
    tether.serve()


def idle(actor):
    _wait_for_cancel()


def timed_waits(actor):
    _timed_wait_forever()


def busy_loop(actor):
    while True:
        pass


def blocked_syscall(actor):
    """Blocks forever in read() of a pipe nobody writes. One fd only: the
    pipe reopened read-write through /proc (an abandoned actor cannot close
    what it holds, and a C actor closes both ends when it is cancelled)."""
    r, w = os.pipe()
    fd = os.open(f"/proc/self/fd/{r}", os.O_RDWR | os.O_CLOEXEC)
    os.close(r)
    os.close(w)
    try:
        os.read(fd, 1)
    finally:
        os.close(fd)


def ignores_signals(actor):
    """In a process of its own: ignores SIGTERM, SIGINT and SIGHUP, then
    timed waits. In a sub-interpreter signals are not the actor's (only the
    main thread of the main interpreter may set handlers): timed waits, as
    the suite runs it for in-process backends."""
    if os.environ.get("TETHER_CONFORMANCE_IN_PROCESS") != "1":
        import signal

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
    _timed_wait_forever()


def race_exit(actor):
    """Returns after a random 0-2 ms."""
    time.sleep(int.from_bytes(os.urandom(2), "little") % 2001 / 1e6)
    return 0


# ---- ORPHAN ----------------------------------------------------------------


def vanish(actor):
    """Shuts its channel and returns without a word."""
    import socket

    s = socket.socket(fileno=os.dup(tether._channel_fd()))
    s.shutdown(socket.SHUT_RDWR)
    s.close()
    return 0


def crash(actor):
    tether.sleep(0.050)
    os.abort()


def _start_sleeper():
    import subprocess

    return subprocess.Popen(["/bin/sleep", "1000"], stdin=subprocess.DEVNULL)


def grandchild(actor):
    """Starts `sleep 1000`, never checkpoints. In process there is no
    process group to kill: the injected tether.Cancelled unwinds through
    here and the grandchild goes with it. Short timed waits, so that the
    injected exception is raised within the soft timeout."""
    p = _start_sleeper()
    try:
        tether.send_bytes(b"%d" % _visible_pid(p.pid))
        while True:
            time.sleep(0.1)
    finally:
        p.kill()
        p.wait()


def parent_dies_idle(actor):
    p = _start_sleeper()
    try:
        tether.send_bytes(b"%d" % _visible_pid(p.pid))
        _wait_for_cancel()
    finally:
        p.kill()
        p.wait()


def late_actor(actor):
    """Serves calls (late() spins past the teardown); once serving ends it
    still sends messages, into a channel that is gone by then."""
    try:
        tether.serve()
    finally:
        for _ in range(3):
            try:
                tether.send_bytes(b"late")
            except BaseException:
                pass


def _fds_beyond(skip):
    """The open fds beyond stdio, found without opening one (a listing of
    /proc/self/fd would show its own)."""
    fds = []
    for fd in range(3, 1024):
        try:
            os.fstat(fd)
        except OSError:
            continue
        if fd not in skip:
            fds.append(str(fd))
    return ",".join(fds)


def fd_report(actor):
    """Reports the fds beyond stdio and its channel, its own (when it is a
    process of its own) and a grandchild's."""
    import subprocess

    if os.environ.get("TETHER_CONFORMANCE_IN_PROCESS") == "1":
        tether.send_bytes(b"self:in-process")
    else:
        tether.send_bytes(("self:" + _fds_beyond({tether._channel_fd()})).encode())
    out = subprocess.run(["/bin/ls", "-1", "/proc/self/fd"], stdout=subprocess.PIPE, check=False)
    fds = [l for l in out.stdout.decode().split() if int(l) > 3]  # ls holds 3 for the listing
    tether.send_bytes(("grandchild:" + ",".join(fds)).encode())
    _wait_for_cancel()


def stdout_flood(actor):
    """1 MiB to a stdout nobody drains, then timed waits."""
    chunk = b"x" * 65536
    for _ in range(16):
        os.write(1, chunk)
    _timed_wait_forever()


# ---- ERRORS ------------------------------------------------------------------


def fails(actor):
    raise ValueError("remote failure: the actor gave up")


def fail_at(actor):
    """Waits for an absolute CLOCK_MONOTONIC time (a raw message "SEC
    NSEC"), then fails: all at once, none cancelled first."""
    sec, nsec = tether.recv_bytes(timeout=30).split()
    at = int(sec) + int(nsec) / 1e9
    time.sleep(max(0.0, at - time.monotonic()))
    tether.fail("failed at once (pid %d)" % os.getpid())


def fail_in_cancel(actor):
    try:
        while True:
            tether.sleep(0.010)
    except tether.Cancelled:
        raise RuntimeError("failed while handling its cancellation")


# ---- PROTOCOL ------------------------------------------------------------------


def garbage(actor):
    os.write(tether._channel_fd(), b"\x00\x00\x00\x04\xc1\xc1\xc1\xc1")
    _wait_for_cancel()


def oversized(actor):
    os.write(tether._channel_fd(), b"\x7f\xff\xff\xff")
    _wait_for_cancel()


def escaped_descendant(actor):
    """As the C actor: a grandchild that leaves the process group and the
    session and ignores every catchable signal (a shell double fork); never
    checkpoints. Skipped in process (it would be the supervising process's
    own grandchild), kept for parity."""
    import subprocess
    out = subprocess.run(
        ["/bin/sh", "-c", "trap '' HUP INT QUIT TERM USR1 USR2; "
         "setsid sleep 1000 </dev/null >/dev/null 2>&1 & echo $!"],
        stdin=subprocess.DEVNULL, capture_output=True, check=True)
    tether.send_bytes(b"%d" % _visible_pid(int(out.stdout.strip())))
    _timed_wait_forever()


def fork_storm(actor):
    """Starts short-lived children (each exits after ~1 ms) in a tight loop,
    checkpointing between them; at cancel it waits for the ones still
    running, so none outlives it."""
    import subprocess
    procs = []
    said = False
    try:
        while True:
            procs.append(subprocess.Popen(["/bin/sleep", "0.001"], stdin=subprocess.DEVNULL))
            procs = [p for p in procs if p.poll() is None]
            if not said:
                tether.send_bytes(b"storming")
                said = True
            tether.checkpoint()
    finally:
        for p in procs:
            p.wait()


# ---- RESTART ----------------------------------------------------------------


def _next_instance():
    """The instance number (0, 1, ...) of an actor whose instances share the
    file named by $TETHER_RESTART_COUNTER (the scenario sets it)."""
    import fcntl

    path = os.environ.get("TETHER_RESTART_COUNTER")
    if not path:
        return -1
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
        text = os.pread(fd, 32, 0)
        n = int(text) if text.strip() else 0
        os.pwrite(fd, b"%d\n" % (n + 1), 0)
        return n
    finally:
        os.close(fd)


def fail_twice(actor):
    n = _next_instance()
    if n < 0:
        return tether.fail("no TETHER_RESTART_COUNTER")
    if n < 2:
        return tether.fail("instance %d fails" % n)
    return 0


def exits_at_once(actor):
    return 0


def fail_on_msg(actor):
    while True:
        if tether.recv_bytes(timeout=3600) == b"fail":
            return tether.fail("told to fail (pid %d)" % os.getpid())


# ---- TREES (nested supervisors: tether.Supervisor inside an actor) ------------


def _tree(child):
    """A node of cancel.tree: opens its own supervisor (the suite's config
    and backend, from TETHER_CONFIG and TETHER_BACKEND) and spawns two
    children one level down; tells its parent when its whole subtree is
    ready; on cancel leaves the `with` block, which closes its supervisor."""
    if child is None:
        tether.send_bytes(b"up")
        _wait_for_cancel()
    target = os.environ["TETHER_CONFORMANCE_ACTORS"] + ":" + child
    with tether.Supervisor() as sup:
        kids = [sup.spawn(target) for _ in range(2)]
        for k in kids:
            k.recv(timeout=20)
        tether.send_bytes(b"up")
        _wait_for_cancel()


def tree1(actor):
    _tree(None)


def tree2(actor):
    _tree("tree1")


def tree3(actor):
    _tree("tree2")


def abandon16(actor):
    """cancel.sigint-after-abandon: abandons 16 actors of its own (8 blocked
    reads, then 8 busy loops), says so on its stdout (the CLI's), then idles
    cooperatively until cancelled. As the C actor, a spawn that fails is
    passed over. The blocked ones first: with one shared GIL (3.11) each
    busy loop already spinning slows the next start (docs/subint.md)."""
    where = os.environ["TETHER_CONFORMANCE_ACTORS"]
    with tether.Supervisor() as sup:
        kids = []
        for fn in ["blocked_syscall"] * 8 + ["busy_loop"] * 8:
            try:
                kids.append(sup.spawn(where + ":" + fn))
            except (tether.Error, TimeoutError):
                pass
        for k in kids:
            k.cancel()
        for k in kids:
            k.wait(timeout=30)
        tether.send_bytes(b"abandoned")
        os.write(1, b"abandoned\n")
        _wait_for_cancel()
