"""Peer: CPython 3.11 _xxsubinterpreters: create, run the 1-byte handshake
(ready), destroy (cycle). run_string runs on the calling thread.

    subint_peer.py MODE ITERS BUDGET"""
import os
import socket

import _xxsubinterpreters as interpreters

from _common import args, emit, loop, now, progress


def main():
    mode, iters, budget = args()
    progress(f"peer _xxsubinterpreters ({mode})")
    ready, cycle = [], []
    for _ in loop(iters, budget):
        a, b = socket.socketpair()
        t0 = now()
        iid = interpreters.create()
        interpreters.run_string(iid, f"import os\nos.write({b.fileno()}, b'r')\n")
        a.recv(1)
        t1 = now()
        interpreters.destroy(iid)
        t2 = now()
        a.close()
        b.close()
        ready.append((t1 - t0) / 1e3)
        cycle.append((t2 - t0) / 1e3)
    emit("spawn_ready", "py-subinterpreters", mode, ready)
    emit("spawn_cycle", "py-subinterpreters", mode, cycle)


main()
