"""Peer: multiprocessing with one start method: start until the child
signals ready over a Pipe (ready), then terminate + join (cycle).

    mp_peer.py METHOD MODE ITERS BUDGET      METHOD: fork | forkserver | spawn"""
import multiprocessing as mp
import sys
import time

from _common import emit, loop, now, progress


def child(conn):
    conn.send_bytes(b"r")
    time.sleep(3600)


def main():
    method = sys.argv.pop(1)
    from _common import args
    mode, iters, budget = args()
    ctx = mp.get_context(method)
    progress(f"peer multiprocessing {method} ({mode})")
    # one untimed round: forkserver starts its server, spawn warms the caches
    r, w = ctx.Pipe(duplex=False)
    p = ctx.Process(target=child, args=(w,))
    p.start()
    r.recv_bytes()
    p.terminate()
    p.join()
    ready, cycle = [], []
    for _ in loop(iters, budget):
        t0 = now()
        r, w = ctx.Pipe(duplex=False)
        p = ctx.Process(target=child, args=(w,))
        p.start()
        r.recv_bytes()
        t1 = now()
        p.terminate()
        p.join()
        r.close()
        w.close()
        t2 = now()
        ready.append((t1 - t0) / 1e3)
        cycle.append((t2 - t0) / 1e3)
    emit("spawn_ready", f"py-mp-{method}", mode, ready)
    emit("spawn_cycle", f"py-mp-{method}", mode, cycle)


if __name__ == "__main__":
    main()
