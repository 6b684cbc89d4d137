"""tests/python/test_tether.py - the tether Python package against the build tree.

Run by tests/python/run.sh (make check), which puts python/.libs on
PYTHONPATH and sets abs_top_builddir / abs_top_srcdir.
"""
import gc
import os
import select
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest

import tether

BUILD = os.environ.get("abs_top_builddir", os.getcwd())
SRC = os.environ.get("abs_top_srcdir", BUILD)
ACTORS = os.path.join(BUILD, "tests/unit/.libs/test_actors.so")
DEMO = os.path.join(BUILD, "examples/.libs/demo_actors.so")
SOFT, HARD = 0.3, 0.3
# teardown bound: soft + hard + slack (generous: 2 cores shared with others)
BOUND = SOFT + HARD + 1.0


def write_config(folder, soft=SOFT, hard=HARD, max_frame=1 << 20, backend="thread"):
    path = os.path.join(folder, "plugins.yaml")
    with open(path, "w") as f:
        f.write(textwrap.dedent(f"""\
            backend: {backend}
            timeouts: {{ spawn: 5.0, soft_cancel: {soft}, hard_kill: {hard} }}
            max_frame: {max_frame}
            backends:
              thread: {{ path: {BUILD}/backends/thread/.libs/thread.so }}
              fork:   {{ path: {BUILD}/backends/fork/.libs/fork.so, options: {{ mode: fork }} }}
            """))
    return path


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.config = write_config(self.tmp.name)
        self.sup = tether.Supervisor(config=self.config)

    def tearDown(self):
        self.sup.close()
        self.tmp.cleanup()

    def spawn(self, fn, lib=ACTORS, **kw):
        return self.sup.spawn(f"{lib}:{fn}", **kw)


class SupervisorAPI(Base):
    def test_properties(self):
        self.assertEqual(self.sup.backend, "thread")
        self.assertEqual(self.sup.timeouts, {"spawn": 5.0, "soft_cancel": SOFT, "hard_kill": HARD})
        self.assertIsNone(self.sup.failure)
        self.assertEqual(self.sup.abandoned, 0)
        self.assertFalse(self.sup.closed)
        self.assertIn("thread", repr(self.sup))

    def test_backend_argument_picks_the_backend(self):
        with tether.Supervisor(backend="fork", config=self.config) as sup:
            self.assertEqual(sup.backend, "fork")
            a = sup.spawn(f"{ACTORS}:serve")
            self.assertGreater(a.pid, 0)
            self.assertEqual(a.call("add_i", "ii:i", 2, 3), 5)

    def test_context_manager_closes_and_reports(self):
        with tether.Supervisor(config=self.config) as sup:
            a = sup.spawn(f"{ACTORS}:cooperative")
        self.assertTrue(sup.closed)
        self.assertEqual(a.outcome.kind, "cancelled")
        rep = sup.close()  # idempotent: the same report
        self.assertEqual(rep.actors, 1)
        self.assertEqual(rep.abandoned, 0)
        self.assertLess(rep.elapsed, BOUND)

    def test_exception_in_block_tears_down_within_bound(self):
        t0 = time.monotonic()
        with self.assertRaises(ZeroDivisionError):
            with tether.Supervisor(config=self.config) as sup:
                stuck = [sup.spawn(f"{ACTORS}:busy_loop") for _ in range(3)]
                1 / 0
        self.assertLess(time.monotonic() - t0, BOUND + 0.5)
        for a in stuck:
            self.assertIn(a.outcome.kind, ("killed", "abandoned"))

    def test_cancel_all_and_kill_all(self):
        a = self.spawn("cooperative")
        b = self.spawn("timed_waits")
        self.sup.cancel_all()
        self.assertEqual(a.wait(timeout=BOUND).kind, "cancelled")
        self.assertIn(b.wait(timeout=BOUND).kind, ("killed", "abandoned"))
        c = self.spawn("cooperative")
        t0 = time.monotonic()
        self.sup.kill_all()
        self.assertEqual(c.wait(timeout=BOUND).kind, "killed")
        self.assertLess(time.monotonic() - t0, HARD + 0.5)  # the soft phase was skipped

    def test_dump_names_actors_and_waiters(self):
        a = self.spawn("never_reads")
        t = threading.Thread(target=lambda: self.assertRaises(tether.Aborted, a.recv))
        t.start()
        # recv waits in slices (so that Ctrl-C is seen): between two of them
        # the thread is not parked, and a dump taken then shows no waiter.
        # Take dumps until one catches it (bounded).
        deadline = time.monotonic() + BOUND
        while True:
            time.sleep(0.05)
            text = self.sup.dump()
            if "in recv" in text or time.monotonic() > deadline:
                break
        self.assertIn("tether hang dump", text)
        self.assertIn("never_reads", text)
        self.assertIn("in recv", text)
        a.kill()
        t.join(BOUND)
        self.assertFalse(t.is_alive())

    def test_one_for_all_failure_cancels_siblings_and_is_reported(self):
        sib = self.spawn("cooperative")
        bad = self.spawn("fails")
        out = bad.wait(timeout=BOUND)
        self.assertEqual(out.kind, "failed")
        self.assertIn("deliberate failure 42", out.message)
        self.assertEqual(sib.wait(timeout=BOUND).kind, "cancelled")
        self.assertIn("deliberate failure 42", self.sup.failure)
        self.sup.close()
        self.assertIn("deliberate failure 42", self.sup.failure)  # kept after close

    def test_one_for_one_leaves_siblings_running(self):
        with tether.Supervisor(config=self.config, strategy="one_for_one") as sup:
            sib = sup.spawn(f"{ACTORS}:cooperative")
            sup.spawn(f"{ACTORS}:fails").wait(timeout=BOUND)
            time.sleep(0.1)
            self.assertIsNone(sib.outcome)

    def test_restarts_follow_the_actor_until_the_intensity_is_exceeded(self):
        with tether.Supervisor(config=self.config, strategy="rest_for_one", max_restarts=3,
                               period=10) as sup:
            a = sup.spawn(f"{ACTORS}:exit_7", restart="permanent")
            out = a.wait(timeout=BOUND * 4)
            self.assertEqual(out.kind, "exited")
            self.assertEqual(a.restarts, 3)
            self.assertIn("restart intensity exceeded: 3 restarts in 10 s", sup.failure)

    def test_bad_restart_options_are_refused(self):
        with self.assertRaises(ValueError):
            tether.Supervisor(config=self.config, strategy="one_for_some")
        with self.assertRaises(ValueError):
            tether.Supervisor(config=self.config, period=0)
        with self.assertRaises(ValueError):
            tether.Supervisor(config=self.config, backoff=-2)
        with self.assertRaises(ValueError):
            tether.Supervisor(config=self.config, max_restarts=-5)
        with tether.Supervisor(config=self.config) as sup:
            with self.assertRaises(ValueError):
                sup.spawn(f"{ACTORS}:cooperative", restart="always")

    def test_spawn_without_wait_then_wait_ready(self):
        a = self.spawn("serve", wait=False)
        a.wait_ready(timeout=5)
        self.assertEqual(a.call("add_i", "ii:i", 1, 2), 3)


class ActorAPI(Base):
    def test_calls_of_every_type(self):
        a = self.spawn("serve")
        self.assertEqual(a.call("add_i", "ii:i", 20, 22), 42)
        self.assertEqual(a.call("add_i", "ii:i", -5, 2), -3)
        self.assertEqual(a.call("add_l", "ll:l", 1 << 40, 1), (1 << 40) + 1)
        self.assertEqual(a.call("add_u", "uu:u", 4000000000, 1), 4000000001)
        self.assertEqual(a.call("add_U", "UU:U", 1 << 63, 5), (1 << 63) + 5)
        self.assertEqual(a.call("add_d", "dd:d", 1.5, 2), 3.5)
        self.assertAlmostEqual(a.call("add_f", "ff:f", 0.25, 0.5), 0.75)
        self.assertEqual(a.call("echo_s", "s:s", "héllo"), "héllo")
        self.assertEqual(a.call("len_s", "s:U", "abcd"), 4)
        self.assertIsNone(a.call("bump", ":v"))
        self.assertEqual(a.call("count", ":i", timeout=5), 1)
        self.assertEqual(a.call("mix", "iluUdfs:d", 1, 2, 3, 4, 0.5, 0.5, "abc"), 14.0)

    def test_send_and_recv(self):
        a = self.spawn("echo_messages")
        a.send(b"ping")
        self.assertEqual(a.recv(timeout=5), b"ping")
        a.send(bytearray(b"\x00" * 1000))
        self.assertEqual(a.recv(timeout=5), b"\x00" * 1000)
        a.send(memoryview(b"view"), timeout=5)
        self.assertEqual(a.recv(), b"view")

    def test_recv_timeout(self):
        a = self.spawn("cooperative")
        t0 = time.monotonic()
        with self.assertRaises(TimeoutError):
            a.recv(timeout=0.2)
        self.assertGreaterEqual(time.monotonic() - t0, 0.19)
        with self.assertRaises(TimeoutError):
            a.recv(timeout=0)

    def test_cancel_wait_outcome(self):
        a = self.spawn("cooperative")
        self.assertIsNone(a.outcome)
        with self.assertRaises(TimeoutError):
            a.wait(timeout=0.05)
        a.cancel()
        a.cancel()  # idempotent
        out = a.wait(timeout=BOUND)
        self.assertEqual(out.kind, "cancelled")
        self.assertEqual(out, a.outcome)
        self.assertEqual(set(out.phases), {"run", "soft_cancel", "hard_kill"})
        self.assertGreater(out.phases["run"], 0)
        self.assertLess(out.phases["soft_cancel"], SOFT + 0.1)
        self.assertIsNone(out.exception)

    def test_kill_skips_the_soft_phase(self):
        a = self.spawn("timed_waits")
        a.kill()
        out = a.wait(timeout=BOUND)
        self.assertEqual(out.kind, "killed")
        self.assertEqual(out.phases["soft_cancel"], 0)

    def test_exit_code_and_states(self):
        a = self.spawn("exit_7")
        out = a.wait(timeout=5)
        self.assertEqual((out.kind, out.code), ("exited", 7))
        self.assertEqual(a.state, "reaped")

    def test_identity(self):
        a = self.spawn("serve")
        b = self.spawn("serve")
        self.assertNotEqual(a.id, b.id)
        self.assertEqual(a.target, f"{ACTORS}:serve")
        self.assertEqual(a.pid, 0)  # in-process backend
        self.assertEqual(a.state, "running")
        self.assertIs(a.supervisor, self.sup)
        self.assertIn(str(a.id), repr(a))
        with self.assertRaises(TypeError):
            tether.Actor()

    def test_fileno_polls_readable_for_a_message_and_at_the_end(self):
        a = self.spawn("echo_messages")
        fd = a.fileno()
        self.assertEqual(fd, a.fileno())
        self.assertEqual(select.select([fd], [], [], 0.05)[0], [])
        a.send(b"x")
        self.assertEqual(select.select([fd], [], [], 5)[0], [fd])
        self.assertEqual(a.recv(timeout=0), b"x")
        self.assertEqual(select.select([fd], [], [], 0.05)[0], [])  # drained: not readable
        a.cancel()
        self.assertEqual(select.select([fd], [], [], BOUND)[0], [fd])  # ended
        self.assertIsNotNone(a.outcome)


class Errors(Base):
    def test_error_hierarchy(self):
        for name in ("ConfigError", "LoadError", "SpawnError", "CallError", "Aborted"):
            self.assertTrue(issubclass(getattr(tether, name), tether.Error))
        self.assertTrue(issubclass(tether.Cancelled, tether.Aborted))
        self.assertTrue(issubclass(tether.Error, Exception))

    def test_bad_config(self):
        bad = os.path.join(self.tmp.name, "bad.yaml")
        with open(bad, "w") as f:
            f.write("timeouts: { soft_cancel: -1 }\n")
        with self.assertRaises(tether.ConfigError) as cm:
            tether.Supervisor(config=bad)
        self.assertIn("bad.yaml", str(cm.exception))
        self.assertEqual(cm.exception.name, "TETHER_ECONFIG")
        with self.assertRaises(tether.ConfigError):
            tether.Supervisor(config=os.path.join(self.tmp.name, "missing.yaml"))
        with self.assertRaises(tether.ConfigError) as cm:
            tether.Supervisor(backend="nope", config=self.config)
        self.assertIn("nope", str(cm.exception))
        with self.assertRaises(ValueError):
            tether.Supervisor(config=self.config, strategy="rest_for_everyone")
        with self.assertRaises(TypeError):
            tether.Supervisor(config=42)

    def test_bad_plugin(self):
        cfg = os.path.join(self.tmp.name, "plug.yaml")
        with open(cfg, "w") as f:
            f.write(f"backend: x\nbackends:\n  x: {{ path: {BUILD}/tests/unit/plugins/.libs/no_entry.so }}\n")
        with self.assertRaises(tether.LoadError) as cm:
            tether.Supervisor(config=cfg)
        self.assertIn("no_entry.so", str(cm.exception))

    def test_bad_targets(self):
        with self.assertRaises(tether.SpawnError) as cm:
            self.sup.spawn("no-colon-here")
        self.assertIn("no-colon-here", str(cm.exception))
        with self.assertRaises(tether.SpawnError) as cm:
            self.sup.spawn("/nonexistent/mod.so:fn")
        self.assertIn("/nonexistent/mod.so", str(cm.exception))
        with self.assertRaises(tether.SpawnError) as cm:
            self.spawn("no_such_function")
        self.assertIn("no_such_function", str(cm.exception))
        with self.assertRaises(TypeError):
            self.sup.spawn(None)

    def test_bad_calls(self):
        a = self.spawn("serve")
        with self.assertRaises(tether.CallError) as cm:
            a.call("nope", "ii:i", 1, 2)
        self.assertIn("nope", str(cm.exception))
        with self.assertRaises(tether.CallError) as cm:
            a.call("add_i", "dd:d", 1.0, 2.0)  # the actor's table says ii:i
        self.assertIn("add_i", str(cm.exception))
        with self.assertRaises(tether.CallError):
            a.call("add_i", "ix:i", 1, 2)  # not a type letter
        with self.assertRaises(tether.CallError):
            a.call("add_i", "ii", 1, 2)  # no return type
        with self.assertRaises(tether.CallError) as cm:
            a.call("add_i", "ii:i", 1)  # too few
        self.assertIn("argument count", str(cm.exception))
        with self.assertRaises(tether.CallError):
            a.call("add_i", "ii:i", 1, 2, 3)  # too many
        with self.assertRaises(TypeError) as cm:
            a.call("add_i", "ii:i", 1, "2")
        self.assertIn("argument 2", str(cm.exception))
        with self.assertRaises(TypeError):
            a.call("echo_s", "s:s", b"bytes")
        with self.assertRaises(TypeError):
            a.call("add_d", "dd:d", 1.0, None)
        with self.assertRaises(OverflowError):
            a.call("add_i", "ii:i", 1 << 40, 1)
        with self.assertRaises(OverflowError):
            a.call("add_u", "uu:u", -1, 1)
        with self.assertRaises(ValueError):
            a.call("echo_s", "s:s", "nul\0inside")
        with self.assertRaises(TypeError):
            a.call("add_i")
        with self.assertRaises(TypeError):
            a.call(1, "ii:i", 1, 2)
        with self.assertRaises(TypeError):
            a.call("add_i", "ii:i", 1, 2, deadline=3)
        with self.assertRaises(ValueError):
            a.call("add_i", "ii:i", 1, 2, timeout=-1)
        with self.assertRaises(TypeError):
            a.recv(timeout="soon")
        with self.assertRaises(TypeError):
            a.send("text is not bytes")
        self.assertEqual(a.call("add_i", "ii:i", 1, 2), 3)  # still serving

    def test_huge_messages_are_refused_before_sending(self):
        a = self.spawn("echo_messages")
        with self.assertRaises(ValueError) as cm:
            a.send(b"x" * (2 << 20))  # max_frame is 1 MiB here
        self.assertIn("max_frame", str(cm.exception))
        s = self.spawn("serve")
        with self.assertRaises(ValueError):
            s.call("echo_s", "s:s", "x" * (2 << 20))
        big = b"y" * (512 << 10)  # fits
        a.send(big)
        self.assertEqual(a.recv(timeout=5), big)
        self.assertIsNone(a.outcome)

    def test_oversized_frame_from_the_actor(self):
        a = self.spawn("oversized")
        with self.assertRaises(tether.Aborted):
            a.recv(timeout=BOUND)
        out = a.wait(timeout=BOUND)
        self.assertEqual(out.kind, "lost")
        self.assertIn("exceeds the maximum", out.message)

    def test_waiters_on_ended_actors_get_aborted(self):
        a = self.spawn("exit_7")
        a.wait(timeout=5)
        with self.assertRaises(tether.Aborted) as cm:
            a.recv(timeout=1)
        self.assertIsInstance(cm.exception.code, int)
        with self.assertRaises(tether.Aborted):
            a.send(b"x", timeout=1)
        with self.assertRaises(tether.Aborted):
            a.call("count", ":i", timeout=1)
        c = self.spawn("cooperative")
        c.cancel()
        c.wait(timeout=BOUND)
        with self.assertRaises(tether.Cancelled):
            c.recv(timeout=1)

    def test_closed_supervisor(self):
        a = self.spawn("serve")
        self.sup.close()
        with self.assertRaises(tether.Error) as cm:
            self.sup.spawn(f"{ACTORS}:serve")
        self.assertEqual(cm.exception.name, "TETHER_ESTATE")
        self.assertIn("closed", str(cm.exception))
        for m in (self.sup.cancel_all, self.sup.kill_all, self.sup.dump):
            with self.assertRaises(tether.Error):
                m()
        with self.assertRaises(tether.Error):
            with self.sup:
                pass
        # handles stay valid after close: the outcome is there, waiters fail
        self.assertEqual(a.outcome.kind, "cancelled")
        with self.assertRaises(tether.Aborted):
            a.call("count", ":i")
        a.cancel()  # a no-op, not an error
        self.assertEqual(self.sup.close().actors, 1)

    def test_use_after_release(self):
        a = self.spawn("serve")
        a.release()
        a.release()  # idempotent
        for f in (lambda: a.call("count", ":i"), lambda: a.send(b"x"), a.recv, a.wait,
                  a.cancel, a.kill, a.fileno, lambda: a.outcome, lambda: a.pid):
            with self.assertRaises(tether.Error) as cm:
                f()
            self.assertIn("released", str(cm.exception))
        self.assertIn("released", repr(a))
        dump = self.sup.dump()
        self.assertIn(":serve: running", dump)
        self.assertEqual(self.sup.close().actors, 1, dump)  # still torn down by its supervisor

    def test_release_while_another_thread_waits(self):
        a = self.spawn("never_reads")
        got = []
        t = threading.Thread(target=lambda: got.append(self._catch(a.recv)))
        t.start()
        time.sleep(0.1)
        a.release()
        self.sup.close()
        t.join(BOUND)
        self.assertFalse(t.is_alive())
        self.assertTrue(issubclass(got[0], tether.Aborted), got)

    @staticmethod
    def _catch(f, *args):
        try:
            f(*args)
            return None
        except BaseException as e:  # noqa: B902 - the type is the result
            return type(e)


SUBINT = os.path.join(BUILD, "backends/subint/.libs/subint.so")
PY_ACTORS = os.path.join(SRC, "tests/unit/py_actors.py")


@unittest.skipUnless(os.path.exists(SUBINT), "subint backend not built (--disable-subint)")
class PythonActorsOnSubint(unittest.TestCase):
    """A Python program supervising Python actors: the subint backend uses
    the interpreter that is already running."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        cfg = write_config(self.tmp.name, backend="subint")
        with open(cfg, "a") as f:
            f.write(f"  subint: {{ path: {SUBINT} }}\n")
        self.sup = tether.Supervisor(config=cfg)

    def tearDown(self):
        self.sup.close()
        self.tmp.cleanup()

    def test_messages_and_a_clean_exit(self):
        a = self.sup.spawn(f"{PY_ACTORS}:echo")
        a.send(b"\xa3abc")  # MessagePack "abc"
        self.assertEqual(a.recv(timeout=5), b"\xa3abc")
        self.assertEqual(a.recv(timeout=5), b"'abc'")
        self.assertEqual(self.sup.spawn(f"{PY_ACTORS}:exits_7").wait(timeout=5).code, 7)

    def test_outcome_carries_the_exception_and_traceback(self):
        out = self.sup.spawn(f"{PY_ACTORS}:raises").wait(timeout=5)
        self.assertEqual(out.kind, "failed")
        self.assertEqual(out.exception, "ValueError: boom 42")
        self.assertTrue(out.traceback.startswith("Traceback (most recent call last):"))
        self.assertIn("_deeper", out.traceback)
        self.assertIn("boom 42", self.sup.failure)


TREE_ACTORS = os.path.join(SRC, "tests/python/tree_actors.py")


PYACTOR = os.path.join(BUILD, "backends/subint/tether-pyactor")


@unittest.skipUnless(os.path.exists(PYACTOR), "tether-pyactor not built (--disable-subint)")
class PythonActorsOnFork(unittest.TestCase):
    """The same file.py:FUNC targets in processes of their own (the fork
    backend's python_helper): same module, same outcomes; a hard kill ends
    an actor stuck in a C call."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        cfg = os.path.join(self.tmp.name, "plugins.yaml")
        with open(cfg, "w") as f:
            f.write(textwrap.dedent(f"""\
                backend: fork
                timeouts: {{ spawn: 10.0, soft_cancel: {SOFT}, hard_kill: {HARD} }}
                backends:
                  fork: {{ path: {BUILD}/backends/fork/.libs/fork.so,
                           options: {{ python_helper: {PYACTOR} }} }}
                """))
        self.sup = tether.Supervisor(config=cfg)

    def tearDown(self):
        self.sup.close()
        self.tmp.cleanup()

    def test_messages_exit_status_and_a_process_of_its_own(self):
        a = self.sup.spawn(f"{PY_ACTORS}:echo")
        self.assertGreater(a.pid, 0)
        a.send(b"\xa3abc")
        self.assertEqual(a.recv(timeout=5), b"\xa3abc")
        self.assertEqual(a.call("add", "ii:i", 20, 22, timeout=5), 42)
        self.assertEqual(self.sup.spawn(f"{PY_ACTORS}:exits_7").wait(timeout=5).code, 7)

    def test_outcome_carries_the_exception_and_traceback(self):
        out = self.sup.spawn(f"{PY_ACTORS}:raises").wait(timeout=5)
        self.assertEqual(out.kind, "failed")
        self.assertEqual(out.exception, "ValueError: boom 42")
        self.assertTrue(out.traceback.startswith("Traceback (most recent call last):"))
        self.assertIn("_deeper", out.traceback)

    def test_a_hard_kill_ends_a_c_call(self):
        a = self.sup.spawn(f"{TREE_ACTORS}:sleeps_in_c")
        self.assertEqual(a.recv(timeout=5), b"sleeping")
        t0 = time.monotonic()
        a.cancel()
        out = a.wait(timeout=BOUND + 5)
        self.assertEqual(out.kind, "killed", out.message)
        self.assertLess(time.monotonic() - t0, BOUND)



def tasks():
    return len(os.listdir("/proc/self/task"))


@unittest.skipUnless(os.path.exists(SUBINT), "subint backend not built (--disable-subint)")
class TreesFromSubintActors(unittest.TestCase):
    """Subint actors open supervisors of their own (tether.Supervisor inside
    the actor): a cancel of the root tears the whole tree down under one
    bound, not one per level."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.cfg = write_config(self.tmp.name, backend="subint")
        with open(self.cfg, "a") as f:
            f.write(f"  subint: {{ path: {SUBINT} }}\n")
        self.marks = os.path.join(self.tmp.name, "marks")
        os.mkdir(self.marks)
        self.sup = tether.Supervisor(config=self.cfg)

    def tearDown(self):
        self.sup.close()
        self.tmp.cleanup()

    def start(self, fn, *orders):
        a = self.sup.spawn(f"{TREE_ACTORS}:{fn}")
        a.send("\n".join(str(o) for o in orders).encode())
        return a

    def marked(self, prefix=""):
        return sorted(m.split("-")[0] for m in os.listdir(self.marks) if m.startswith(prefix))

    def test_three_levels_come_down_under_one_bound(self):
        before = tasks()
        root = self.start("tree_node", self.cfg, 3, self.marks)
        self.assertEqual(root.recv(timeout=30), b"up")  # 7 actors, 3 supervisors
        self.assertEqual(self.marked(), [])
        t0 = time.monotonic()
        root.cancel()
        out = root.wait(timeout=BOUND + 5)
        self.assertLess(time.monotonic() - t0, BOUND)
        self.assertEqual(out.kind, "cancelled", out.message)
        # every actor of the tree ended before the root's outcome
        self.assertEqual(self.marked(), ["level1"] * 4 + ["level2"] * 2 + ["level3"])
        # and every driver thread goes (each ends its interpreter after its outcome)
        deadline = time.monotonic() + 5
        while tasks() > before and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertLessEqual(tasks(), before)

    def test_a_supervisor_left_open_is_closed_before_the_outcome(self):
        a = self.start("leaves_open", self.cfg, self.marks)
        self.assertEqual(a.recv(timeout=30), b"up")
        out = a.wait(timeout=BOUND + 5)
        self.assertEqual((out.kind, out.code), ("exited", 5), out.message)
        self.assertEqual(self.marked(), ["level1"])

    def test_a_wait_inside_the_actor_ends_at_its_cancel(self):
        a = self.start("waits_on_kid", self.cfg, self.marks)
        self.assertEqual(a.recv(timeout=30), b"up")
        time.sleep(0.2)  # parked in kid.wait()
        t0 = time.monotonic()
        a.cancel()
        out = a.wait(timeout=BOUND + 5)
        # cancelled by its own tether.Cancelled, not abandoned at hard kill
        self.assertEqual(out.kind, "cancelled", out.message)
        self.assertLess(time.monotonic() - t0, SOFT)
        self.assertEqual(self.marked(), ["level1", "waiter"])

    def test_any_configured_backend(self):
        for backend in ("thread", "fork"):
            with self.subTest(backend=backend):
                a = self.start("calls_c_actor", self.cfg, backend, DEMO)
                self.assertEqual(a.recv(timeout=30), b"42 " + backend.encode())
                a.cancel()
                self.assertEqual(a.wait(timeout=BOUND + 5).kind, "cancelled")

    def test_outside_an_actor_the_extension_is_the_module(self):
        # the main interpreter's tether has no actor-side calls to shadow it
        self.assertFalse(hasattr(tether, "checkpoint"))
        self.assertTrue(issubclass(tether.Cancelled, tether.Aborted))


class WaiterRelease(unittest.TestCase):
    """Four Python threads parked in recv, call, send and wait on an actor
    that never reads and never checkpoints are all released within the
    teardown bound once it is cancelled."""

    def test_four_parked_threads_are_released_within_the_bound(self):
        with tempfile.TemporaryDirectory() as tmp:
            with tether.Supervisor(config=write_config(tmp)) as sup:
                a = sup.spawn(f"{ACTORS}:never_reads")
                results = {}

                def park(name, f):
                    try:
                        results[name] = ("returned", f())
                    except BaseException as e:  # noqa: B902
                        results[name] = ("raised", type(e))
                    results[name] += (time.monotonic(),)

                def flood():
                    while True:  # fills the socket, then parks in send
                        a.send(b"z" * 65536)

                threads = [threading.Thread(target=park, args=a_) for a_ in (
                    ("recv", a.recv), ("call", lambda: a.call("count", ":i")),
                    ("send", flood), ("wait", a.wait))]
                for t in threads:
                    t.start()
                deadline = time.monotonic() + 5
                while sup.dump().count("  waiter:") < 4 and time.monotonic() < deadline:
                    time.sleep(0.02)
                self.assertGreaterEqual(sup.dump().count("  waiter:"), 4, sup.dump())
                t0 = time.monotonic()
                a.cancel()
                for t in threads:
                    t.join(BOUND + 1)
                self.assertFalse(any(t.is_alive() for t in threads), results)
                for name in ("recv", "call", "send"):
                    self.assertEqual(results[name][0], "raised", (name, results))
                    self.assertTrue(issubclass(results[name][1], tether.Aborted), (name, results))
                self.assertEqual(results["wait"][0], "returned")
                self.assertIn(results["wait"][1].kind, ("killed", "abandoned"))
                for name, r in results.items():
                    self.assertLess(r[-1] - t0, BOUND, (name, results))


def run_child(code, timeout=30):
    env = dict(os.environ)
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class CtrlC(unittest.TestCase):
    """SIGINT to a program whose main thread waits: KeyboardInterrupt comes
    promptly, whatever it waits on, and the with-block tears down."""

    def interrupt(self, wait_expr):
        with tempfile.TemporaryDirectory() as tmp:
            cfg = write_config(tmp)
            p = run_child(f"""
                import sys, time, tether
                with tether.Supervisor(config={cfg!r}) as sup:
                    a = sup.spawn({ACTORS + ':never_reads'!r})
                    print("waiting", flush=True)
                    t0 = time.monotonic()
                    try:
                        {wait_expr}
                    except KeyboardInterrupt:
                        print("interrupted after %.3f" % (time.monotonic() - t0), flush=True)
                        raise
                """)
            self.assertEqual(p.stdout.readline().strip(), "waiting")
            time.sleep(0.3)
            t0 = time.monotonic()
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=BOUND + 10)
            elapsed = time.monotonic() - t0
            self.assertIn("interrupted after", out, err)
            self.assertIn("KeyboardInterrupt", err)
            self.assertNotEqual(p.returncode, 0)
            # interrupted promptly, then the block's teardown (soft + hard)
            self.assertLess(elapsed, BOUND + 1.0, (out, err))

    def test_ctrl_c_during_recv(self):
        self.interrupt("a.recv()")

    def test_ctrl_c_during_wait(self):
        self.interrupt("a.wait()")

    def test_ctrl_c_during_call(self):
        self.interrupt("a.call('count', ':i')")

    def test_ctrl_c_during_spawn(self):
        # its constructor never returns: the ready handshake never comes
        hangs = os.path.join(BUILD, "conformance/.libs/ctor_hangs.so") + ":idle"
        self.interrupt(f"sup.spawn({hangs!r})")

    def test_ctrl_c_during_send(self):
        self.interrupt("while True: a.send(b'z' * 65536)")


class Examples(unittest.TestCase):
    def run_example(self, name):
        p = subprocess.run([sys.executable, os.path.join(SRC, "examples", name)],
                           cwd=BUILD, capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = p.stdout.splitlines()
        self.assertEqual(len(lines), 3, p.stdout)
        for line in lines:
            self.assertIn("1 message(s) [b'hello from an actor'], exited", line)

    def test_asyncio_example(self):
        self.run_example("asyncio_actors.py")

    def test_trio_example(self):
        try:
            import trio  # noqa: F401
        except ImportError:
            self.fail("python3-trio is not installed (scripts/install-deps.sh installs it)")
        self.run_example("trio_actors.py")

    def test_readme_example(self):
        with open(os.path.join(SRC, "README.md")) as f:
            readme = f.read()
        start = readme.index("```python\n", readme.index("## Python")) + len("```python\n")
        code = readme[start:readme.index("```", start)]
        self.assertLessEqual(len(code.strip().splitlines()), 12)
        p = subprocess.run([sys.executable, "-c", code], cwd=BUILD, capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("42", p.stdout)


class Leaks(unittest.TestCase):
    """Spawn/cancel cycles leave memory flat (the 10,000-cycle figure is in
    bench/python_rss.py; here a shorter run with a tolerance)."""

    @staticmethod
    def rss_kib():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def cycles(self, sup, n):
        for _ in range(n):
            a = sup.spawn(f"{ACTORS}:cooperative")
            a.send(b"m" * 100)
            a.cancel()
            a.wait(timeout=BOUND)

    @unittest.skipIf(os.environ.get("TETHER_SANITIZER") or "asan" in os.environ.get("LD_PRELOAD", ""),
                     "no RSS bound under a sanitizer's quarantine")
    def test_spawn_cancel_cycles_keep_rss_flat(self):
        with tempfile.TemporaryDirectory() as tmp:
            with tether.Supervisor(config=write_config(tmp)) as sup:
                self.cycles(sup, 300)  # warm up allocator and caches
                gc.collect()
                before = self.rss_kib()
                self.cycles(sup, 1000)
                gc.collect()
                grew = self.rss_kib() - before
        # a leak of one handle or Actor per cycle (>1 KiB) would show as >1 MiB
        self.assertLess(grew, 1024, f"RSS grew by {grew} KiB over 1000 cycles")


if __name__ == "__main__":
    unittest.main(verbosity=2)
