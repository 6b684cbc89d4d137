"""tests/python/tree_actors.py - subint actors that supervise actors of their
own (tests/python/test_tether.py, class TreesFromSubintActors).

Each receives its orders as one raw message of lines, as a C peer would
send them, and leaves a file in FOLDER on its way out, so that the test
sees which actors ended before their root's outcome."""
import os

import tether


def _orders():
    return tether.recv_bytes(timeout=30).decode().split("\n")


def _mark(folder, what):
    with open(os.path.join(folder, f"{what}-{os.urandom(6).hex()}"), "w"):
        pass


def _idle():
    while True:
        tether.sleep(3600)


def tree_node(actor):
    """CONFIG DEPTH FOLDER: a node of a binary tree of DEPTH levels; says
    "up" once its whole subtree is up, then waits for its cancel."""
    cfg, depth, folder = _orders()
    depth = int(depth)
    try:
        if depth == 1:
            tether.send_bytes(b"up")
            _idle()
        with tether.Supervisor(config=cfg) as sup:
            kids = [sup.spawn(__file__ + ":tree_node") for _ in range(2)]
            for k in kids:
                k.send(f"{cfg}\n{depth - 1}\n{folder}".encode())
            for k in kids:
                k.recv(timeout=30)
            tether.send_bytes(b"up")
            _idle()
    finally:
        _mark(folder, f"level{depth}")


def leaves_open(actor):
    """CONFIG FOLDER: starts a leaf, then returns 5 without closing its
    supervisor: the leaf must still end before this actor's outcome."""
    cfg, folder = _orders()
    sup = tether.Supervisor(config=cfg)
    kid = sup.spawn(__file__ + ":tree_node")
    kid.send(f"{cfg}\n1\n{folder}".encode())
    kid.recv(timeout=30)
    tether.send_bytes(b"up")
    return 5


def waits_on_kid(actor):
    """CONFIG FOLDER: starts a leaf, then waits for its outcome without a
    timeout: its own cancel must end that wait (tether.Cancelled)."""
    cfg, folder = _orders()
    try:
        with tether.Supervisor(config=cfg) as sup:
            kid = sup.spawn(__file__ + ":tree_node")
            kid.send(f"{cfg}\n1\n{folder}".encode())
            kid.recv(timeout=30)
            tether.send_bytes(b"up")
            kid.wait()
    finally:
        _mark(folder, "waiter")


def calls_c_actor(actor):
    """CONFIG BACKEND LIBRARY: a C actor on another backend, called."""
    cfg, backend, lib = _orders()
    with tether.Supervisor(backend=backend, config=cfg) as sup:
        a = sup.spawn(lib + ":serve")
        tether.send_bytes(b"%d %s" % (a.call("add", "ii:i", 20, 22), sup.backend.encode()))
        _idle()


def sleeps_in_c(actor):
    """One C call that never returns (on fork only the hard kill ends it)."""
    import time

    tether.send_bytes(b"sleeping")
    time.sleep(3600)
