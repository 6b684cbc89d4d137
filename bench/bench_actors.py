"""bench/bench_actors.py - Python actors only the benchmark needs (for
Python backends such as subint), the twins of bench_actors.c:

    noop   returns at once (spawn + exit + reap cycle)
    pump   "S<count> <size>" -> sends count messages of size bytes;
           "A" -> replies "k"; anything else is consumed; ends on cancel
    count  gilbench: counts to the N it receives, in Python (CPU-bound)

Written against the built-in `tether` module of DESIGN.md (send/recv,
checkpoint, tether.Cancelled). The subint backend did not exist when this
was written: if its API differs, adjust here (the benchmark reports a
failed spawn or batch as a note, it does not hang).
"""
import tether


def noop(*_args):
    return 0


def pump(*_args):
    out = b""
    while True:
        msg = tether.recv()
        if isinstance(msg, str):
            msg = msg.encode()
        if msg[:1] == b"S":
            count, size = (int(x) for x in msg[1:].split())
            if len(out) != size:
                out = b"x" * size
            for _ in range(count):
                tether.send(out)
        elif msg == b"A":
            tether.send(b"k")


def count(*_args):
    """gilbench: receives N, counts to N in a Python loop (CPU only, no
    tether call), says "done" and returns."""
    n = int(tether.recv_bytes(timeout=60))
    i = 0
    while i < n:
        i += 1
    tether.send_bytes(b"done")
    return 0
