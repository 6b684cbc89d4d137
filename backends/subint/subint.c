/* backends/subint - Python actors in CPython sub-interpreters, each on a
 * dedicated driver pthread in the supervisor's process.
 *
 * See ../shared/notes/cpython-3.11-subinterpreters.md (and -3.13-3.14.md)
 * for the measured facts this file is built on. In short, on 3.11:
 *
 * interpreter  Python is initialised once per process (or the host's is
 *              used), then the initialising thread releases the GIL for
 *              good: no supervisor thread ever takes it again. Each driver
 *              makes a main-interpreter thread state only to create its
 *              sub-interpreter, drops it, then makes its own first thread
 *              state in the new interpreter (so PyGILState finds the right
 *              interpreter on that thread) and deletes the one
 *              Py_NewInterpreter made (never leaving the interpreter with
 *              no thread state: 3.11 aborts when one is created after that).
 * soft cancel  the core's CANCEL frame, the cancel flag the host runtime
 *              reads at every tether call, and, half the soft period later
 *              (so that code that noticed the cancel, or is busy finishing,
 *              is not interrupted on its own way out), tether.Cancelled
 *              injected asynchronously into the driver thread. One injector
 *              thread per open backend waits out that grace (soft_cancel
 *              only queues the actor: no thread is created on the engine's
 *              path); if the actor still runs, a short-lived helper
 *              thread injects it, with a thread state of the target
 *              interpreter: with a main-interpreter thread state
 *              PyThreadState_SetAsyncExc looks in the wrong interpreter,
 *              and only a GIL request made from the target interpreter
 *              makes a spinning actor let go. soft_cancel() never waits.
 * hard kill    inject again (even into code that saw the cancel), then the
 *              core abandons the driver if it has not ended within
 *              hard_kill. Nothing interrupts a blocking C call (time.sleep,
 *              a lock, read): such an actor is abandoned. Threads inside
 *              Python are never pthread_cancel'ed.
 * exit fd      an eventfd the driver signals once the actor's outcome is
 *              out (STOPPED sent, before its interpreter is ended), so reap
 *              never waits for a running thread nor for an interpreter's
 *              end; the driver then ends the interpreter and exits (release
 *              detaches it, close waits for it, bounded). Abandoning closes
 *              it (the abandoned driver keeps only its channel).
 * late exit    an abandoned driver that ends later still ends its
 *              interpreter (if no other thread state remains in it, else the
 *              interpreter is left alive: Py_EndInterpreter would join its
 *              threads forever or abort) and logs the late exit.
 * GIL fairness on 3.11 every interpreter shares one GIL, but a GIL request
 *              is made to the waiter's own interpreter, which a thread of
 *              another interpreter spinning on the CPU never reads. While
 *              one of our threads waits for the GIL, a driver is starting,
 *              or two actors run, a monitor thread forwards such a request
 *              to the holder's interpreter (gil311.c), as CPython 3.13
 *              does by itself. Without it a busy actor starved spawns for seconds.
 * exit         Py_FinalizeEx is never called (it aborts with live
 *              sub-interpreters and would wait for abandoned ones); the
 *              process may exit with abandoned drivers running.
 *
 * own GIL     on CPython 3.12+ each actor's interpreter gets its own GIL
 *              by default (options own_gil: false shares one; 3.11 has
 *              only the shared mode): see new_interpreter(). The hand-off
 *              above is unchanged: since 3.12 a thread-state swap releases
 *              and takes each interpreter's own GIL. docs/subint.md.
 *
 * Files: subint.c (this: the vtable, the GIL monitor, the cancel
 * injector), driver.c (a driver thread: its interpreter, the actor, the
 * outcome, the end; the warm pool's hooks), driver.h (their shared
 * state), module.c (the `tether` module), codecache.c (the actor
 * modules' code, compiled once per process), pack.c, gil311.c.
 *
 * Every wait of this file has a deadline except the GIL waits of the
 * backend's own threads (driver, helpers): those are never supervisor
 * threads, and on 3.11 the monitor above keeps them from starving. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <tether/backend.h>

#include "../inproc.h"
#include "codecache.h"
#include "driver.h"

/* The host members this backend calls (appended after `log`). */
#define HOST_NEEDS \
    (offsetof(struct tether_backend_host, actor_finish) + sizeof(void (*)(void)))

/* Monitor period: while one of ours waits for the GIL (or starts), the
 * driver holding it at each sample gets a nudge. */
#define MONITOR_NS (2 * 1000000LL)

/* `tether backends` and `tether config explain` print this (< 256 bytes):
 * the Python the plugin is built for and its GIL modes. */
#if PY_VERSION_HEX >= 0x030C0000
#define OWN_GIL_DEFAULT 1
#define GIL_NOTE                                                                        \
    "CPython " PY_VERSION ": each actor's sub-interpreter has its own GIL (actors run in " \
    "parallel) unless options own_gil: false (one shared GIL); a blocking call cannot be " \
    "interrupted (such an actor is abandoned)"
#else
#define OWN_GIL_DEFAULT 0
#define GIL_NOTE                                                                   \
    "CPython " PY_VERSION ": all sub-interpreters share one GIL (a CPU-bound actor " \
    "slows its siblings; own GIL needs 3.12+); a blocking call cannot be interrupted " \
    "(such an actor is abandoned)"
#endif

/* Process-wide: the GIL is. */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned g_waiters;  /* our threads waiting for the GIL */
static unsigned g_starting; /* drivers not ready yet (their imports wait for the GIL too) */
static unsigned g_running;  /* drivers running actor code */
static unsigned g_running_abandoned; /* of which abandoned ones */
#if PY_VERSION_HEX < 0x030C0000
static int g_monitor; /* the monitor thread runs (3.11) */
#endif

static pthread_once_t py_once = PTHREAD_ONCE_INIT;
static int py_ok;
static char py_err[256];
PyInterpreterState *py_main;

void state_unref(struct sstate *st)
{
    if (atomic_fetch_sub(&st->refs, 1) != 1)
        return;
    pthread_cond_destroy(&st->inj_cv);
    pthread_cond_destroy(&st->cv);
    pthread_mutex_destroy(&st->m);
    free(st);
    codecache_release(); /* the last state frees the compiled modules */
}

void child_unref(struct schild *c)
{
    if (atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    if (c->pub.exit_fd >= 0)
        close(c->pub.exit_fd);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->m);
    free(c->target);
    struct sstate *st = c->st;
    free(c);
    state_unref(st);
}

/* Start a thread, with the process's default attributes (a program's CPU
 * set, stack size: pthread_setattr_default_np), as one made with none gets.
 * `quiet`: every blockable signal blocked (helpers: they run no user code
 * and the host's signals are not for them). Otherwise the caller's mask plus
 * SIGPIPE (a driver: Python code expects EPIPE, never to die of a pipe; an
 * abandoned writer whose reader closes must not kill the process). */
static int start_thread(pthread_t *t, void *(*fn)(void *), void *arg, int quiet)
{
    sigset_t set, old;
    pthread_sigmask(SIG_SETMASK, NULL, &old);
    if (quiet) {
        sigfillset(&set);
        sigdelset(&set, SIGSEGV);
        sigdelset(&set, SIGBUS);
        sigdelset(&set, SIGFPE);
        sigdelset(&set, SIGILL);
    } else {
        set = old;
        sigaddset(&set, SIGPIPE);
    }
    pthread_sigmask(SIG_SETMASK, &set, NULL);
    pthread_attr_t at;
    if (pthread_getattr_default_np(&at) != 0)
        pthread_attr_init(&at);
    pthread_t tmp;
    if (!t)
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(t ? t : &tmp, &at, fn, arg);
    pthread_attr_destroy(&at);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

/* ---- the GIL on 3.11: registered waits and the forwarding monitor ---------------------- */

#if PY_VERSION_HEX < 0x030C0000
/* While one of our threads waits for the GIL, a driver is starting (its
 * imports wait for the GIL inside Python, where we cannot register them) or
 * two or more actors run (one may spin while the other wants the GIL), a
 * monitor forwards starved GIL requests to the holder's interpreter every
 * MONITOR_NS (gil311.c). It stops when none of these holds. */
static void *monitor_main(void *arg)
{
    (void)arg;
    for (;;) {
        nap_ns(MONITOR_NS);
        pthread_mutex_lock(&g_lock);
        /* abandoned actors alone need no fairness between them: nothing
         * waits for them, and a new spawn (g_starting) restarts it */
        if (g_waiters == 0 && g_starting == 0 &&
            (g_running < 2 || g_running == g_running_abandoned)) {
            g_monitor = 0;
            pthread_mutex_unlock(&g_lock);
            return NULL;
        }
        pthread_mutex_unlock(&g_lock);
        subint_gil_forward(); /* never waits: see gil311.c */
    }
}

/* With g_lock held. */
static void monitor_start_locked(void)
{
    if (!g_monitor && start_thread(NULL, monitor_main, NULL, 1) == 0)
        g_monitor = 1;
}
#else
/* 3.12+: nothing is forwarded. With its own GIL per interpreter nothing is
 * to be; with a shared GIL, 3.13+ sends a waiter's request to the holder
 * (3.12 does not: use own_gil there). */
static void monitor_start_locked(void)
{
}
#endif

/* A pool worker making an interpreter ahead is starting too (3.11: its
 * imports wait for the GIL). */
void starting_count(int delta)
{
    pthread_mutex_lock(&g_lock);
    g_starting += (unsigned)delta;
    if (delta > 0)
        monitor_start_locked();
    pthread_mutex_unlock(&g_lock);
}

void starting_begin(struct schild *c)
{
    pthread_mutex_lock(&g_lock);
    c->starting = 1;
    g_starting++;
    monitor_start_locked();
    pthread_mutex_unlock(&g_lock);
}

void starting_end(struct schild *c)
{
    pthread_mutex_lock(&g_lock);
    if (c->starting) {
        c->starting = 0;
        g_starting--;
    }
    pthread_mutex_unlock(&g_lock);
}

void subint_started(struct subint_run *run)
{
    starting_end((struct schild *)run->backend_child);
}

/* The driver runs (or stops running) actor code. */
void running_set(struct schild *c, int on)
{
    pthread_mutex_lock(&g_lock);
    if (on != c->running) {
        c->running = on;
        if (on)
            g_running++;
        else
            g_running--;
        if (!on && c->running_abandoned) {
            c->running_abandoned = 0;
            g_running_abandoned--;
        }
        if (g_running >= 2)
            monitor_start_locked();
    }
    pthread_mutex_unlock(&g_lock);
}

void subint_gil_take(PyThreadState *ts)
{
    pthread_mutex_lock(&g_lock);
    g_waiters++;
    monitor_start_locked();
    pthread_mutex_unlock(&g_lock);
    PyEval_RestoreThread(ts);
    pthread_mutex_lock(&g_lock);
    g_waiters--;
    pthread_mutex_unlock(&g_lock);
}

/* ---- helpers: inject tether.Cancelled, or only ask for the GIL ------------------------- */

struct helper {
    struct schild *c;
    int kind;
};

static void *helper_main(void *p)
{
    struct helper h = *(struct helper *)p;
    free(p);
    struct schild *c = h.c;
    pthread_mutex_lock(&c->m);
    if (h.kind == INJ_SOFT) {
        /* the grace: ends early when the actor is over; bounded by 0.5 s */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t until = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + c->st->grace_ns;
        ts.tv_sec = (time_t)(until / 1000000000);
        ts.tv_nsec = (long)(until % 1000000000);
        while (!c->over && pthread_cond_timedwait(&c->cv, &c->m, &ts) != ETIMEDOUT)
            ;
    }
    int go = c->istate == I_ALIVE && !c->over;
    PyInterpreterState *interp = c->interp;
    if (go)
        c->helpers++; /* the driver does not end the interpreter while > 0 */
    pthread_mutex_unlock(&c->m);
    if (go) {
        PyThreadState *ts = PyThreadState_New(interp);
        if (ts) {
            subint_gil_take(ts);
            struct subint_run *r = &c->run;
            if (!r->finished && r->cancelled_type &&
                (h.kind == INJ_HARD || !r->observed)) /* INJ_SOFT(_DUE): unless it saw it */
                PyThreadState_SetAsyncExc(r->py_tid, r->cancelled_type);
            PyThreadState_Clear(ts);
            PyThreadState_DeleteCurrent(); /* releases the GIL */
        }
        pthread_mutex_lock(&c->m);
        c->helpers--;
        pthread_mutex_unlock(&c->m);
    }
    child_unref(c);
    return NULL;
}

/* Never blocks: starts a detached thread (or gives up quietly: the CANCEL
 * frame and the flag still work). */
static void start_helper(struct schild *c, int kind)
{
    struct helper *h = malloc(sizeof *h);
    if (!h)
        return;
    h->c = c;
    h->kind = kind;
    atomic_fetch_add(&c->refs, 1);
    if (start_thread(NULL, helper_main, h, 1) != 0) {
        free(h);
        child_unref(c);
    }
}

/* ---- the soft-cancel timer ---------------------------------------------------------------- */

/* One thread per open backend waits each soft-cancelled actor's grace and
 * only then, if the actor is still running, starts its helper. The engine's
 * soft_cancel thus never creates a thread: in a one-for-all wave (15
 * siblings cancelled at once, error.many-fail) pthread_create took up to
 * 0.37 s each on a loaded 2-core machine while other actors ended their
 * interpreters (mmap contention), and most of those actors end by
 * themselves within the grace, needing no helper at all. */
static void *injector_main(void *arg)
{
    struct sstate *st = arg;
    pthread_mutex_lock(&st->m);
    while (!st->stopping) {
        int64_t now = now_ns(), next = INT64_MAX;
        struct schild **pp = &st->soft_head, *due = NULL;
        for (; *pp; pp = &(*pp)->soft_next) {
            if ((*pp)->soft_due <= now) {
                due = *pp;
                *pp = due->soft_next;
                break;
            }
            if ((*pp)->soft_due < next)
                next = (*pp)->soft_due;
        }
        if (due) {
            pthread_mutex_unlock(&st->m);
            pthread_mutex_lock(&due->m);
            int go = !due->over;
            pthread_mutex_unlock(&due->m);
            if (go)
                start_helper(due, INJ_SOFT_DUE);
            child_unref(due); /* the queue's reference; st outlives this thread */
            pthread_mutex_lock(&st->m);
            continue;
        }
        if (next == INT64_MAX) {
            /* nothing queued: ends by soft_cancel or close's signal, never a GIL wait */
            pthread_cond_wait(&st->inj_cv, &st->m);
        } else {
            struct timespec ts = {(time_t)(next / 1000000000), (long)(next % 1000000000)};
            pthread_cond_timedwait(&st->inj_cv, &st->m, &ts);
        }
    }
    pthread_mutex_unlock(&st->m);
    return NULL;
}

/* Queue c's soft injection for when its grace is over (or start its helper
 * at once when there is no injector). Never blocks. */
static void soft_later(struct schild *c)
{
    struct sstate *st = c->st;
    pthread_mutex_lock(&st->m);
    int queued = st->injector_on && !st->stopping;
    if (queued) {
        atomic_fetch_add(&c->refs, 1);
        c->soft_due = now_ns() + st->grace_ns;
        c->soft_next = st->soft_head;
        st->soft_head = c;
        pthread_cond_signal(&st->inj_cv);
    }
    pthread_mutex_unlock(&st->m);
    if (!queued)
        start_helper(c, INJ_SOFT);
}

/* close: stop the injector and drop what it still holds. The join is
 * bounded: the injector only waits on inj_cv (signalled here) and starts
 * detached helpers. */
static void injector_stop(struct sstate *st)
{
    pthread_mutex_lock(&st->m);
    int on = st->injector_on;
    st->stopping = 1;
    pthread_cond_signal(&st->inj_cv);
    pthread_mutex_unlock(&st->m);
    /* Bounded: the injector waits only on inj_cv (signalled above, with
     * stopping set) or until its next due time, and its one other call,
     * start_helper, creates a thread and returns: it sees stopping within
     * one turn of its loop. */
    if (on)
        pthread_join(st->injector, NULL);
    pthread_mutex_lock(&st->m);
    struct schild *c = st->soft_head;
    st->soft_head = NULL;
    pthread_mutex_unlock(&st->m);
    while (c) {
        struct schild *next = c->soft_next;
        child_unref(c);
        c = next;
    }
}

/* ---- Python, once per process ----------------------------------------------------------- */

static void py_init(void)
{
    Dl_info di;
    /* Never unloaded: Python cannot be finalised and started again, and
     * abandoned drivers run our code. */
    if (dladdr((void *)&py_init, &di) && di.dli_fname)
        dlopen(di.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
    if (Py_IsInitialized()) {
        /* the host runs Python already (a Python program using the tether
         * package): use it; its Py* symbols are global already, and it may
         * be a python3 that links libpython statically, so there may be no
         * libpython to dlopen. (It must not hold the GIL while it waits
         * for actors.) */
        py_main = PyInterpreterState_Main();
        py_ok = 1;
        return;
    }
    /* Extension modules (lib-dynload) expect the Py* symbols in the
     * global namespace; we arrived RTLD_LOCAL. */
    if (!dladdr((void *)&Py_InitializeEx, &di) || !di.dli_fname ||
        !dlopen(di.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD)) {
        snprintf(py_err, sizeof py_err, "cannot make libpython global: %s", dlerror());
        return;
    }
    PyConfig cfg;
    PyConfig_InitPythonConfig(&cfg);
    cfg.install_signal_handlers = 0; /* the host owns signals */
    cfg.parse_argv = 0;
    PyStatus s = PyConfig_SetBytesString(&cfg, &cfg.program_name, "tether");
    if (!PyStatus_Exception(s))
        s = Py_InitializeFromConfig(&cfg);
    PyConfig_Clear(&cfg);
    if (PyStatus_Exception(s)) {
        snprintf(py_err, sizeof py_err, "cannot initialise Python: %s%s%s",
                 s.func ? s.func : "", s.func ? ": " : "", s.err_msg ? s.err_msg : "error");
        return;
    }
    py_main = PyInterpreterState_Main();
    /* The main thread state stays with this thread, which never takes the
     * GIL again; drivers make their own. Never finalised (see the top). */
    PyEval_SaveThread();
    py_ok = 1;
}

/* ---- the vtable ---------------------------------------------------------------------------- */

static int s_open(const struct tether_backend_host *host, const struct tether_options *opts,
                  void **state, struct tether_error *err)
{
    if (host->size < HOST_NEEDS) {
        snprintf(err->msg, sizeof err->msg,
                 "the core's host table (%u bytes) lacks the actor services this backend "
                 "needs (%zu bytes): libtether is older than the plugin",
                 host->size, (size_t)HOST_NEEDS);
        return err->code = TETHER_ELOAD;
    }
    int own_gil = OWN_GIL_DEFAULT;
    unsigned pool = 0;
    for (size_t i = 0; i < opts->count; i++) {
        const struct tether_option *o = &opts->items[i];
        if (strcmp(o->key, "pool") == 0) {
            if (pool_parse_size(o->value, &pool) == 0)
                continue;
            snprintf(err->msg, sizeof err->msg,
                     "option pool: '%s' is not a whole number from 0 to %d", o->value, POOL_MAX);
        } else if (strcmp(o->key, "own_gil") == 0) {
            if (strcmp(o->value, "false") == 0) {
                own_gil = 0;
                continue;
            }
            if (strcmp(o->value, "true") != 0)
                snprintf(err->msg, sizeof err->msg,
                         "option own_gil: '%s' is not true or false", o->value);
#if PY_VERSION_HEX >= 0x030C0000
            else {
                own_gil = 1;
                continue;
            }
#else
            else
                snprintf(err->msg, sizeof err->msg,
                         "option own_gil: needs CPython 3.12 or later; this plugin is built for "
                         "CPython %s, where every sub-interpreter shares one GIL",
                         PY_VERSION);
#endif
        } else {
            snprintf(err->msg, sizeof err->msg,
                     "unknown option '%s' (the subint backend knows own_gil, pool)", o->key);
        }
        return err->code = TETHER_ECONFIG;
    }
    pthread_once(&py_once, py_init); /* bounded: Python's initialisation */
    if (!py_ok) {
        snprintf(err->msg, sizeof err->msg, "%s", py_err);
        return err->code = TETHER_ESYS;
    }
    struct sstate *st = calloc(1, sizeof *st);
    if (!st)
        return TETHER_ENOMEM;
    st->host = host;
    atomic_init(&st->refs, 1);
    codecache_hold(); /* until state_unref frees st */
    pthread_mutex_init(&st->m, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&st->cv, &ca);
    pthread_cond_init(&st->inj_cv, &ca);
    pthread_condattr_destroy(&ca);
    /* without it soft_cancel starts each helper at once, as it can */
    st->injector_on = start_thread(&st->injector, injector_main, st, 1) == 0;
    st->own_gil = own_gil;
    /* Half the soft period for the actor to stop by itself (or to finish
     * what it was doing: siblings that fail at the same moment must report
     * their failure, not an injected Cancelled, even when 16 of them queue
     * for the GIL on a loaded machine), the other half for the injected
     * exception to unwind through its finally blocks; at most 0.5 s. */
    double g = opts->soft_cancel_timeout / 2;
    st->grace_ns = (int64_t)((g < 0.5 ? g : 0.5) * 1e9);
    st->pool.size = pool;
    st->pool.quiet_ns = POOL_QUIET_NS;
    st->pool.ctx = st;
    st->pool.prepare = pool_prepare;
    st->pool.run = pool_run;
    st->pool.discard = pool_discard;
    int rc = pool_start(&st->pool);
    if (rc) {
        snprintf(err->msg, sizeof err->msg, "cannot start the pool's refiller: %s", strerror(rc));
        injector_stop(st);
        pool_destroy(&st->pool);
        state_unref(st);
        return err->code = TETHER_ESYS;
    }
    *state = st;
    return 0;
}

static void s_close(void *state)
{
    struct sstate *st = state;
    /* Parked drivers end their interpreters (each a few ms of CPU, on 3.11
     * under the one GIL) and exit; one slower than the bound finishes by
     * itself, and st stays alive for it. */
    /* With abandoned actors running under the one shared GIL, ending a
     * parked interpreter waits its turn for the GIL behind each spinner
     * (2 parked behind 8 spinners: 0.34 s, past the bound of
     * cancel.sigint-after-abandon); the plugin is pinned by then anyway
     * (the core pins it for the abandoned ones), so they end in the
     * background and close does not wait for them. */
    int64_t pool_wait = atomic_load(&st->abandoned_running) && !st->own_gil
                            ? 0
                            : END_WAIT_NS + CLOSE_END_NS;
    unsigned parked = pool_stop(&st->pool, now_ns() + pool_wait);
    if (parked && pool_wait)
        st->host->log("subint", "%u pooled driver(s) still ending their interpreters after "
                                "%.0f ms; left to finish by themselves (state kept)",
                      parked, pool_wait / 1e6);
    injector_stop(st);
    /* Drivers whose actors have ended may still be ending their
     * interpreters (outcome_out): let them, so that close returns with
     * their threads gone. Bounded: END_WAIT_NS for leftover thread states
     * plus the end itself; one slower than that finishes by itself (it
     * holds its own reference to st). Abandoned drivers are not waited
     * for (backend.h). */
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    int64_t ns = until.tv_nsec + END_WAIT_NS + CLOSE_END_NS;
    until.tv_sec += (time_t)(ns / 1000000000);
    until.tv_nsec = (long)(ns % 1000000000);
    pthread_mutex_lock(&st->m);
    while (st->ending > 0 && pthread_cond_timedwait(&st->cv, &st->m, &until) != ETIMEDOUT)
        ;
    unsigned left = st->ending;
    pthread_mutex_unlock(&st->m);
    if (left)
        st->host->log("subint",
                      "%u actor(s) ended but their sub-interpreters are still being ended "
                      "(atexit handlers?) after %.0f ms; left to finish by themselves",
                      left, (END_WAIT_NS + CLOSE_END_NS) / 1e6);
    /* children still alive (abandoned, or ending) hold their own reference */
    if (!parked) {
        pool_destroy(&st->pool);
        state_unref(st);
    }
    /* Python stays initialised: never Py_FinalizeEx (see the top) */
}

static int s_spawn(void *state, const struct tether_spawn_spec *spec, struct tether_child **out,
                   struct tether_error *err)
{
    struct sstate *st = state;
    char *target;
    struct schild *c = inproc_child_new(sizeof *c, spec, &target, err);
    if (!c)
        return TETHER_ENOMEM;
    c->target = target;
    c->st = st;
    c->host = st->host;
    c->actor_id = spec->actor_id;
    c->channel_fd = spec->channel_fd;
    pthread_mutex_init(&c->m, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&c->refs, 2);
    atomic_fetch_add(&st->refs, 1);
    uint64_t tid;
    if (pool_take(&st->pool, c, &c->thread, &tid)) {
        __atomic_store_n(&c->pub.thread_id, tid, __ATOMIC_RELAXED);
        *out = &c->pub;
        return 0;
    }
    int rc = start_thread(&c->thread, driver_main, c, 0);
    if (rc != 0) {
        snprintf(err->msg, sizeof err->msg, "pthread_create: %s", strerror(rc));
        close(spec->channel_fd);
        atomic_store(&c->refs, 1);
        child_unref(c);
        return err->code = TETHER_ESPAWN;
    }
    *out = &c->pub;
    return 0;
}

static int s_soft_cancel(struct tether_child *child)
{
    struct schild *c = (struct schild *)child;
    tether_cancel_flag_set(&c->cancel_flag, TETHER_CANCEL_REQUESTED);
    pthread_mutex_lock(&c->m);
    int first = !c->soft_sent;
    c->soft_sent = 1;
    pthread_mutex_unlock(&c->m);
    if (first)
        soft_later(c);
    return 0;
}

static int s_hard_kill(struct tether_child *child)
{
    struct schild *c = (struct schild *)child;
    tether_cancel_flag_set(&c->cancel_flag, TETHER_CANCEL_REQUESTED);
    atomic_store(&c->hard_killed, 1);
    pthread_mutex_lock(&c->m);
    int first = !c->hard_sent;
    c->hard_sent = 1;
    pthread_mutex_unlock(&c->m);
    if (first)
        start_helper(c, INJ_HARD);
    return 0;
}

static int s_abort_channels(struct tether_child *child)
{
    /* The actor's end belongs to the host runtime on the driver thread; the
     * core's shutdown of its own end gives it end of stream, which is all
     * an abort needs (and a cancel request to the runtime). */
    (void)child;
    return 0;
}

/* Done once the outcome is out (outcome_out), not when the driver thread
 * has exited: it may still be ending the interpreter (release detaches
 * it; close waits for it, bounded). */
static int s_reap(struct tether_child *child, int64_t deadline_ns, struct tether_outcome *out)
{
    struct schild *c = (struct schild *)child;
    if (!atomic_load(&c->done)) {
        int64_t left = deadline_ns - now_ns();
        if (left > 0) {
            struct pollfd p = {.fd = c->pub.exit_fd, .events = POLLIN};
            poll(&p, 1, (int)((left + 999999) / 1000000)); /* bounded by the deadline */
        }
        if (!atomic_load(&c->done))
            return TETHER_ETIMEDOUT;
    }
    memset(out, 0, sizeof *out);
    if (atomic_load(&c->hard_killed)) {
        out->kind = TETHER_OUTCOME_KILLED;
        out->message = "stopped by tether.Cancelled injected at hard kill";
    } else {
        out->kind = TETHER_OUTCOME_EXITED;
        out->code = c->status;
    }
    return 0;
}

static void s_release(struct tether_child *child)
{
    struct schild *c = (struct schild *)child;
    pthread_mutex_lock(&c->m);
    if (!atomic_load(&c->done)) {
        /* abandoned: cut loose; it frees itself if it ever ends */
        c->abandoned = 1;
        c->t_abandoned = now_ns();
        atomic_fetch_add(&c->st->abandoned_running, 1);
        pthread_mutex_lock(&g_lock); /* order: c->m, then g_lock (never the reverse) */
        if (c->running && !c->running_abandoned) {
            c->running_abandoned = 1;
            g_running_abandoned++;
        }
        pthread_mutex_unlock(&g_lock);
    }
    /* Nobody polls the exit fd again (the core is done, the driver skips
     * it once abandoned or has written it already): close it now rather
     * than when a lingering helper drops the last reference. */
    close(c->pub.exit_fd);
    c->pub.exit_fd = -1;
    pthread_mutex_unlock(&c->m);
    pthread_detach(c->thread); /* never joined: reap does not wait for its exit */
    child_unref(c);
}

static unsigned s_abandoned_count(void *state)
{
    struct sstate *st = state;
    return atomic_load(&st->abandoned_running);
}

static const struct tether_backend subint_backend = {
    .abi = TETHER_BACKEND_ABI,
    .size = sizeof(struct tether_backend),
    .name = "subint",
    .language = "python",
    /* nested: an actor's tether.Supervisor (module.c) opens supervisors of
     * its own, on any configured backend */
    .caps = TETHER_CAP_NESTED,
    .open = s_open,
    .close = s_close,
    .spawn = s_spawn,
    .soft_cancel = s_soft_cancel,
    .hard_kill = s_hard_kill,
    .abort_channels = s_abort_channels,
    .reap = s_reap,
    .release = s_release,
    .abandoned_count = s_abandoned_count,
    .note = GIL_NOTE,
};

TETHER_BACKEND_DEFINE(subint_backend)
