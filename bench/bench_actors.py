"""bench/bench_actors.py - Python actors only the benchmark needs (for
Python backends such as subint), the twins of bench_actors.c:

    noop   returns at once (spawn + exit + reap cycle)
    pump   "S<count> <size>" -> sends count messages of size bytes;
           "A" -> replies "k"; anything else is consumed; ends on cancel
    count  gilbench: counts to the N it receives, in Python (CPU-bound)

Written against the subint backend's built-in `tether` module. The C side
(tbench) sends and expects raw bytes, so pump uses send_bytes/recv_bytes:
send/recv would MessagePack-encode them (the batch then came back with the
wrong sizes: "tether batch failed").
"""
import tether


def noop(*_args):
    return 0


def pump(*_args):
    out = b""
    while True:
        msg = tether.recv_bytes()
        if msg[:1] == b"S":
            count, size = (int(x) for x in msg[1:].split())
            if len(out) != size:
                out = b"x" * size
            for _ in range(count):
                tether.send_bytes(out)
        elif msg == b"A":
            tether.send_bytes(b"k")


def count(*_args):
    """gilbench: receives N, counts to N in a Python loop (CPU only, no
    tether call), says "done" and returns."""
    n = int(tether.recv_bytes(timeout=60))
    i = 0
    while i < n:
        i += 1
    tether.send_bytes(b"done")
    return 0
