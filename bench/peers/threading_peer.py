"""Peer: threading.Thread start + the 1-byte socketpair handshake (+ join).

    threading_peer.py MODE ITERS BUDGET"""
import socket
import threading

from _common import args, emit, loop, now, progress


def child(s):
    s.send(b"r")


def main():
    mode, iters, budget = args()
    progress(f"peer threading ({mode})")
    ready, cycle = [], []
    for _ in loop(iters, budget):
        t0 = now()
        a, b = socket.socketpair()
        t = threading.Thread(target=child, args=(b,))
        t.start()
        a.recv(1)
        t1 = now()
        t.join()
        a.close()
        b.close()
        t2 = now()
        ready.append((t1 - t0) / 1e3)
        cycle.append((t2 - t0) / 1e3)
    emit("spawn_ready", "py-threading", mode, ready)
    emit("spawn_cycle", "py-threading", mode, cycle)


main()
