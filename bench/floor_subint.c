/* bench/floor_subint.c - the sub-interpreter floor: Py_NewInterpreter +
 * the 1-byte handshake (written by Python code in the new interpreter) +
 * Py_EndInterpreter, on a driver thread, with the thread-state hand-off of
 * the shared notes (cpython-3.11-subinterpreters.md):
 *
 *   main:   holds the GIL; sub = Py_NewInterpreter(); swap back to its own
 *           state; release the GIL; start the driver
 *   driver: makes its OWN first thread state in the new interpreter, takes
 *           the GIL, and only then deletes the creator's state; runs the
 *           handshake; waits (GIL released) for the end byte; ends the
 *           interpreter with its own state current; exits
 *
 *   floor_subint MODE ITERS BUDGET      MODE: pinned | split
 *
 * Prints "R {json}" records like tbench (µs): subint_ready (create ->
 * byte received), subint_cycle (create -> driver joined), and
 * cancel_coop for "floor-cancel-msg-subint": Python code in a ready
 * sub-interpreter blocks reading its socket; the timed part is one byte
 * sent -> the code returns -> the driver says so (one byte back), before
 * it ends the interpreter (as the subint backend sends its outcome before
 * it ends one; the end, its join, is outside the timed part). Python is
 * initialised once, as a backend would (Py_InitializeEx(0): no signal
 * handlers), outside the timed region. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "bench.h"

#include <errno.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

struct drv {
    PyInterpreterState *interp;
    PyThreadState *creator;
    int fd;
    int cancel; /* the cancel floor: wait for a byte, say 'd' when the code returned */
};

static void *driver(void *arg)
{
    struct drv *d = arg;
    PyThreadState *mine = PyThreadState_New(d->interp);
    PyEval_RestoreThread(mine);
    PyThreadState_Clear(d->creator);
    PyThreadState_Delete(d->creator);
    char code[256];
    snprintf(code, sizeof code,
             "import os\nos.write(%d, b'r')\nos.read(%d, 1)\n", d->fd, d->fd);
    if (PyRun_SimpleString(code) != 0)
        fprintf(stderr, "floor_subint: handshake failed\n");
    if (d->cancel) {
        PyThreadState *saved = PyEval_SaveThread();
        ssize_t w = write(d->fd, "d", 1);
        (void)w;
        sched_yield(); /* as the backend's driver does: the waiter first, then the end */
        PyEval_RestoreThread(saved);
    }
    Py_EndInterpreter(mine);
    /* Py_EndInterpreter leaves the GIL held with no thread state: release it
     * through a short-lived main-interpreter state. */
    PyThreadState *tmp = PyThreadState_New(PyInterpreterState_Main());
    PyThreadState_Swap(tmp);
    PyThreadState_Clear(tmp);
    PyThreadState_DeleteCurrent();
    return NULL;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "pinned";
    long iters = argc > 2 ? atol(argv[2]) : 300;
    double budget_s = argc > 3 ? atof(argv[3]) : 20;
    pin_self(0);
    int split = !strcmp(mode, "split");
    Py_InitializeEx(0);
    PyThreadState *main_ts = PyEval_SaveThread();
    fprintf(stderr, "bench: subint floor (%s)\n", mode);

    struct samples ready = {0}, cycle = {0}, endv = {0}, cancelv = {0};
    struct budget b;
    budget_init(&b, iters, 100, budget_s);
    for (long i = 0; budget_more(&b, i); i++) {
        int cancel = i % 2; /* the two floors interleaved */
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
            return 1;
        int64_t t0 = bnow();
        PyEval_RestoreThread(main_ts);
        PyThreadState *sub = Py_NewInterpreter();
        if (!sub) {
            fprintf(stderr, "floor_subint: Py_NewInterpreter failed\n");
            return 1;
        }
        PyThreadState_Swap(main_ts);
        main_ts = PyEval_SaveThread();
        struct drv d = {sub->interp, sub, sv[1], cancel};
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        if (split) {
            cpu_set_t s;
            cpuset_one(&s, 1);
            pthread_attr_setaffinity_np(&at, sizeof s, &s);
        }
        if (pthread_create(&t, &at, driver, &d))
            return 1;
        pthread_attr_destroy(&at);
        char c;
        if (read(sv[0], &c, 1) != 1)
            return 1;
        int64_t t1 = bnow();
        if (cancel) {
            struct timespec ts = {0, 2000000}; /* settled: the code is in its read */
            nanosleep(&ts, NULL);
            int64_t c0 = bnow();
            if (write(sv[0], "q", 1) != 1 || read(sv[0], &c, 1) != 1 || c != 'd')
                return 1;
            spush(&cancelv, (bnow() - c0) / 1e3);
            pthread_join(t, NULL);
        } else {
            if (write(sv[0], "q", 1) != 1)
                return 1;
            pthread_join(t, NULL);
            int64_t t2 = bnow();
            spush(&ready, (t1 - t0) / 1e3);
            spush(&cycle, (t2 - t0) / 1e3);
            spush(&endv, (t2 - t1) / 1e3);
        }
        close(sv[0]);
        close(sv[1]);
    }
    emit("spawn_ready", "floor-subint", mode, "us", &ready);
    emit("spawn_cycle", "floor-subint", mode, "us", &cycle);
    emit("subint_end", "floor-subint", mode, "us", &endv);
    emit("cancel_coop", "floor-cancel-msg-subint", mode, "us", &cancelv);
    PyEval_RestoreThread(main_ts);
    Py_FinalizeEx();
    return 0;
}
