"""tests/unit/py_actors.py - Python actors the subint unit tests spawn."""
import threading
import time

import tether


def echo(actor):
    """Echoes one MessagePack value, then its repr as raw bytes."""
    v = tether.recv(timeout=5)
    tether.send(v)
    tether.send_bytes(repr(v).encode())
    tether.serve()


def unsendable(actor):
    for obj in (lambda: 0, object(), {1, 2}):
        try:
            tether.send(obj)
            tether.send_bytes(b"sent?!")
        except TypeError as e:
            tether.send_bytes(str(e).encode())
    tether.serve()


def _deeper(n):
    if n == 0:
        raise ValueError("boom 42")
    _deeper(n - 1)


def raises(actor):
    _deeper(3)


def busy(actor):
    while True:
        pass


def exits_7(actor):
    return 7


def short_thread(actor):
    """A non-daemon thread still running when the actor returns: the
    interpreter is ended once it has finished."""
    threading.Thread(target=time.sleep, args=(0.05,)).start()
    return 0


def endless_daemon_thread(actor):
    """A daemon thread that never ends: Py_EndInterpreter would abort the
    process; the interpreter must be left alive instead."""
    def spin():
        while True:
            time.sleep(0.01)

    threading.Thread(target=spin, daemon=True).start()
    return 0


def from_other_thread(actor):
    """tether calls belong to the actor's own thread."""
    out = []

    def other():
        try:
            tether.checkpoint()
            out.append(b"allowed?!")
        except RuntimeError as e:
            out.append(str(e).encode())

    t = threading.Thread(target=other)
    t.start()
    t.join()
    tether.send_bytes(out[0])
    tether.serve()


def add(a, b):
    return a + b


def greet(name):
    return "hello " + name


def wrong_type():
    return "not an int"


def chained(actor):
    """Fails with a chained exception (the text must show both)."""
    try:
        {}["inner"]
    except KeyError:
        raise ValueError("outer 43")


def raise_in_call():
    raise LookupError("call failed 44")


def traceback_loaded():
    """1 if the `traceback` module was imported in this interpreter: failure
    texts must not import it (~47 ms in a fresh 3.14 interpreter)."""
    import sys

    return int("traceback" in sys.modules)


def slow_end(actor):
    """Fails at once, but its interpreter cannot end (an atexit handler,
    run by Py_EndInterpreter) until the path it was sent exists (at most
    10 s): the outcome must not wait for that."""
    import atexit
    import os

    path = tether.recv_bytes(timeout=5).decode()

    def wait_for_path():
        for _ in range(1000):
            if os.path.exists(path):
                return
            time.sleep(0.01)

    atexit.register(wait_for_path)
    raise ValueError("slow end")


def leave_marks(actor):
    """test_subint's pool test: reports what an earlier actor could have left
    in this interpreter, then leaves it for the next one to find."""
    import builtins
    import sys
    found = [name for name, there in (
        ("sys.modules", "tether_pool_mark" in sys.modules),
        ("sys", hasattr(sys, "tether_pool_mark")),
        ("builtins", hasattr(builtins, "tether_pool_mark")),
        ("globals", "tether_pool_mark" in globals()),
    ) if there]
    tether.send_bytes(f"found={','.join(found) or '-'} tid={threading.get_native_id()}".encode())
    sys.modules["tether_pool_mark"] = sys
    sys.tether_pool_mark = builtins.tether_pool_mark = 1
    globals()["tether_pool_mark"] = 1
    return 0


def cooperative(actor):
    while True:
        tether.sleep(0.010)


def cpus(actor):
    """Says the CPUs its thread may run on, as "0,1"."""
    import os
    tether.send_bytes(",".join(str(c) for c in sorted(os.sched_getaffinity(0))).encode())
