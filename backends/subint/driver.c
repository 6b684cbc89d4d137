/* backends/subint/driver.c - an actor's driver thread: its interpreter
 * (made cold, or ahead by the warm pool), the actor in it, its outcome, the
 * interpreter's end. The design is in subint.c's header comment. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "codecache.h"
#include "driver.h"

/* ---- the driver thread --------------------------------------------------------------- */

const char *istate_text(int s)
{
    return s == I_GONE ? "its sub-interpreter was ended"
           : s == I_LEAKED ? "its sub-interpreter was left alive (other threads run in it)"
                           : "it had no sub-interpreter";
}

/* The actor code is done: sleeping soft helpers give up. */
void set_over(struct schild *c)
{
    pthread_mutex_lock(&c->m);
    c->over = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->m);
}

/* End the interpreter, with `ts` current and the GIL held; returns without
 * the GIL and without a thread state. */
static void end_interpreter(struct schild *c, PyThreadState *ts)
{
    PyInterpreterState *interp = PyThreadState_GetInterpreter(ts);
    int64_t deadline = now_ns() + END_WAIT_NS;
    unsigned others = 0;
    for (;;) {
        pthread_mutex_lock(&c->m);
        if (c->istate == I_ALIVE && c->helpers == 0)
            c->istate = I_ENDING; /* from now on no helper makes a thread state here */
        int ending = c->istate == I_ENDING;
        others = c->helpers;
        pthread_mutex_unlock(&c->m);
        if (ending) {
            /* stable: we hold the GIL, and only a holder of it adds or
             * removes thread states of this interpreter now */
            others = 0;
            for (PyThreadState *t = PyInterpreterState_ThreadHead(interp); t;
                 t = PyThreadState_Next(t))
                others += t != ts;
            if (others == 0)
                break;
        }
        if (now_ns() >= deadline) {
            pthread_mutex_lock(&c->m);
            c->istate = I_LEAKED; /* nobody touches it again */
            pthread_mutex_unlock(&c->m);
            c->host->log("subint",
                          "actor %llu (%s): %u other thread state(s) still in its "
                          "sub-interpreter after %.0f ms; leaving it alive",
                          (unsigned long long)c->actor_id, c->target, others, END_WAIT_NS / 1e6);
            PyThreadState_Clear(ts);
            PyThreadState_DeleteCurrent(); /* others remain: the list never empties here */
            return;
        }
        /* let them run (helpers want the GIL; the actor's threads finish) */
        PyThreadState *saved = PyEval_SaveThread();
        nap_ns(5 * 1000000LL);
        subint_gil_take(saved);
    }
    /* 3.11 returns from Py_EndInterpreter with the GIL held and no thread
     * state: a main-interpreter one, made now, releases it afterwards.
     * 3.12+ returns holding no GIL (an own one is freed with its
     * interpreter): the swap below then takes the main GIL, and the
     * delete releases it, the same ending in both modes. */
    PyThreadState *release = PyThreadState_New(py_main);
    if (!release) {
        pthread_mutex_lock(&c->m);
        c->istate = I_LEAKED;
        pthread_mutex_unlock(&c->m);
        PyThreadState_Clear(ts);
        PyThreadState_DeleteCurrent();
        return;
    }
    Py_EndInterpreter(ts);
    pthread_mutex_lock(&c->m);
    c->istate = I_GONE;
    c->interp = NULL;
    c->drv_ts = NULL;
    pthread_mutex_unlock(&c->m);
    PyThreadState_Swap(release);
    PyThreadState_Clear(release);
    PyThreadState_DeleteCurrent();
}

/* End an interpreter no actor code ran in (made ahead for the pool), whose
 * thread state `ts` this thread holds without the GIL: no other thread
 * state can be in it. Returns without the GIL. Same ending as above. */
static void discard_interpreter(PyThreadState *ts)
{
    subint_gil_take(ts);
    PyThreadState *release = PyThreadState_New(py_main);
    if (!release) { /* out of memory: leave it */
        PyThreadState_Clear(ts);
        PyThreadState_DeleteCurrent();
        return;
    }
    Py_EndInterpreter(ts);
    PyThreadState_Swap(release);
    PyThreadState_Clear(release);
    PyThreadState_DeleteCurrent();
}

/* Create the actor's interpreter, with the main interpreter's GIL held by
 * the caller's thread state. Returns its first thread state, current (and
 * holding that interpreter's GIL), or NULL with `why`.
 *
 * Own GIL (3.12+, PEP 684): its own GIL and allocator, as PEP 684 requires,
 * so only extension modules that declare per-interpreter GIL support import
 * there (single-phase init ones refuse to load with ImportError). os.fork()
 * is refused (forking a process that runs other interpreters' threads is
 * unsafe: notes); exec, subprocess and threads work; daemon threads are
 * allowed, as on 3.11: an interpreter one still runs in at the end is left
 * alive (end_interpreter), never ended. Shared: Py_NewInterpreter()'s
 * legacy configuration, as on 3.11. Since 3.12 PyThreadState_Swap releases
 * and takes each interpreter's own GIL, so the hand-off in run_actor holds
 * for both modes. */
static PyThreadState *new_interpreter(int own_gil, char *why, size_t n)
{
#if PY_VERSION_HEX >= 0x030C0000
    if (own_gil) {
        PyInterpreterConfig cfg = {
            .use_main_obmalloc = 0,
            .allow_fork = 0,
            .allow_exec = 1,
            .allow_threads = 1,
            .allow_daemon_threads = 1,
            .check_multi_interp_extensions = 1,
            .gil = PyInterpreterConfig_OWN_GIL,
        };
        PyThreadState *ts = NULL;
        PyStatus s = Py_NewInterpreterFromConfig(&ts, &cfg);
        if (PyStatus_Exception(s) || !ts) {
            snprintf(why, n, "cannot create a sub-interpreter with its own GIL: %s%s%s",
                     s.func ? s.func : "", s.func ? ": " : "",
                     s.err_msg ? s.err_msg : "Py_NewInterpreterFromConfig failed");
            return NULL;
        }
        return ts;
    }
#else
    (void)own_gil;
#endif
    PyThreadState *ts = Py_NewInterpreter();
    if (!ts)
        snprintf(why, n, "Py_NewInterpreter failed");
    return ts;
}

/* Steps 1 and 2 of an actor: its interpreter, made on the calling thread
 * (the driver's). Returns this thread's own first thread state in it,
 * current and holding its GIL, or NULL: with `why`, or, `a` given and
 * cancelled while waiting for the GIL, with why[0] == 0. */
static PyThreadState *make_interpreter(int own_gil, const struct tether_backend_host *host,
                                       struct tether_actor *a, tether_cancel_flag *flag,
                                       char *why, size_t n)
{
    why[0] = 0;
    /* 1. A main-interpreter thread state, only to create ours. */
    PyThreadState *mts = PyThreadState_New(py_main);
    if (!mts) {
        snprintf(why, n, "cannot create a Python thread state");
        return NULL;
    }
    subint_gil_take(mts);
    if (a && (tether_cancel_flag_get(flag) != TETHER_CANCEL_NONE || host->actor_checkpoint(a))) {
        /* cancelled while waiting for the GIL: no interpreter at all */
        PyThreadState_Clear(mts);
        PyThreadState_DeleteCurrent();
        return NULL;
    }
    PyThreadState *first = new_interpreter(own_gil, why, n);
    if (!first) {
        PyThreadState_Swap(mts);
        PyThreadState_Clear(mts);
        PyThreadState_DeleteCurrent();
        return NULL;
    }
    PyInterpreterState *interp = PyThreadState_GetInterpreter(first);
    /* 2. The hand-off: drop the main-interpreter state (PyGILState forgets
     * it), make this thread's own first state in the new interpreter, and
     * only then delete the one Py_NewInterpreter made. */
    PyThreadState_Swap(mts);
    PyThreadState_Clear(mts);
    PyThreadState_DeleteCurrent();
    PyThreadState *ts = PyThreadState_New(interp);
    if (!ts) {
        host->log("subint", "out of memory after creating a sub-interpreter; leaving it");
        snprintf(why, n, "cannot create a Python thread state");
        return NULL;
    }
    subint_gil_take(ts);
    PyThreadState_Clear(first);
    PyThreadState_Delete(first);
    return ts;
}

static void run_in(struct schild *c, struct tether_actor *a, PyThreadState *ts);

static void run_actor(struct schild *c, struct tether_actor *a)
{
    char why[200];
    PyThreadState *ts =
        make_interpreter(c->st->own_gil, c->host, a, &c->cancel_flag, why, sizeof why);
    if (!ts) {
        if (why[0])
            c->host->actor_finish(a, TETHER_OUTCOME_FAILED, 1, why);
        else
            c->host->actor_finish(a, TETHER_OUTCOME_CANCELLED, 0, NULL);
        return;
    }
    run_in(c, a, ts);
}

/* Steps 3 and 4: the actor in its interpreter, whose thread state `ts` is
 * current with the GIL held; returns without either. */
static void run_in(struct schild *c, struct tether_actor *a, PyThreadState *ts)
{
    const struct tether_backend_host *host = c->host;
    PyInterpreterState *interp = PyThreadState_GetInterpreter(ts);
    c->run.host = host;
    c->run.backend_child = c;
    c->run.a = a;
    c->run.py_tid = PyThread_get_thread_ident();
    c->run.code_of = &codecache_code_of;
    pthread_mutex_lock(&c->m);
    c->interp = interp;
    c->drv_ts = ts;
    c->istate = I_ALIVE;
    pthread_mutex_unlock(&c->m);
    running_set(c, 1);

    /* 3. The actor. */
    int outcome, code;
    char *text;
    subint_run_target(&c->run, c->target, &outcome, &code, &text);
    running_set(c, 0);
    c->run.finished = 1; /* no helper injects anything after this */
    set_over(c);         /* and sleeping ones give up now */
    PyThreadState_SetAsyncExc(c->run.py_tid, NULL);
    PyErr_Clear();
    subint_run_clear(&c->run);
    c->run.a = NULL;
    c->status = outcome == TETHER_OUTCOME_EXITED ? code : 0;
    PyThreadState *saved = PyEval_SaveThread();
    host->actor_finish(a, outcome, code, text); /* STOPPED; closes the channel */
    free(text);
    /* The actor is over and has said how: reap may see it now. Ending the
     * interpreter costs ~3-4 ms of CPU on 3.13+ (docs/subint.md); 16
     * actors failing at once on 2 busy cores paid all of it before the
     * last outcome was known (error.many-fail missed its bound on 3.14).
     * It is backend housekeeping, done after the outcome; close waits
     * for it (bounded).
     * Then the CPU goes to whoever waits for that outcome: the engine
     * woken by the exit fd, and the program thread it wakes, were
     * runnable on this CPU, but the scheduler let this thread go on into
     * Py_EndInterpreter (~2 ms of CPU on 3.11) before either ran, so a
     * cooperative cancel took ~2 ms where the actor had stopped after
     * 0.15 (bench/tbench --test cancel, pinned: median 1.4-1.7 ms
     * without the yield, 0.14-0.15 ms with it). One yield, without the
     * GIL. */
    outcome_out(c);
    sched_yield();
    subint_gil_take(saved);

    /* 4. Its interpreter. */
    end_interpreter(c, ts);
}

/* The outcome is out: mark the child done and wake reap (unless it was
 * abandoned: nobody reaps it, its exit fd is closed). From now on the
 * driver only ends its interpreter and exits, counted in st->ending. */
void outcome_out(struct schild *c)
{
    pthread_mutex_lock(&c->m);
    if (!atomic_load(&c->done)) {
        if (!c->abandoned) {
            pthread_mutex_lock(&c->st->m); /* order: c->m, then st->m */
            c->st->ending++;
            pthread_mutex_unlock(&c->st->m);
            c->ending = 1;
            /* done before the fd: the engine woken by the write may reap
             * at once (it found done unset and fell back to reaping on a
             * 2 ms timer: a cooperative cancel took 2.2 ms instead of 0.2
             * about half the time, bench/tbench --test cancel) */
            atomic_store(&c->done, 1);
            uint64_t one = 1;
            ssize_t w = write(c->pub.exit_fd, &one, sizeof one); /* nonblocking eventfd */
            (void)w;
        }
        atomic_store(&c->done, 1);
    }
    pthread_mutex_unlock(&c->m);
}

/* The driver's last act, on every way out. */
static void driver_exit(struct schild *c)
{
    outcome_out(c); /* the ways out that made no interpreter */
    pthread_mutex_lock(&c->m);
    c->over = 1;
    pthread_cond_broadcast(&c->cv);
    int abandoned = c->abandoned;
    int64_t since = c->t_abandoned;
    int istate = c->istate;
    int ending = c->ending;
    pthread_mutex_unlock(&c->m);
    if (ending) {
        pthread_mutex_lock(&c->st->m);
        c->st->ending--;
        pthread_cond_broadcast(&c->st->cv);
        pthread_mutex_unlock(&c->st->m);
    }
    if (abandoned) {
        atomic_fetch_sub(&c->st->abandoned_running, 1);
        c->host->log("subint", "actor %llu (%s): abandoned %.3fs ago, it has finished by itself; %s",
                     (unsigned long long)c->actor_id, c->target, (now_ns() - since) / 1e9,
                     istate_text(istate));
    }
    child_unref(c);
}

/* A pooled driver's actor: its interpreter `ts` was made ahead, on this
 * thread, and is held without the GIL. */
static void run_warm(struct schild *c, struct tether_actor *a, PyThreadState *ts)
{
    subint_gil_take(ts);
    if (tether_cancel_flag_get(&c->cancel_flag) == TETHER_CANCEL_NONE &&
        !c->host->actor_checkpoint(a)) {
        run_in(c, a, ts);
        return;
    }
    /* cancelled before it ran: as a cold driver, no actor code at all */
    PyEval_SaveThread();
    c->host->actor_finish(a, TETHER_OUTCOME_CANCELLED, 0, NULL);
    outcome_out(c);
    discard_interpreter(ts);
}

/* The driver: `warm` is its interpreter made ahead (a pooled driver) or NULL. */
static void drive(struct schild *c, PyThreadState *warm)
{
    /* atomic: the core reads it for a dump from another thread (TETHER__CHILD_TID) */
    __atomic_store_n(&c->pub.thread_id, (uint64_t)syscall(SYS_gettid), __ATOMIC_RELAXED);
    struct tether_actor *a = c->host->actor_attach(c->channel_fd, &c->cancel_flag);
    c->channel_fd = -1;
    starting_begin(c);
    if (a && warm)
        run_warm(c, a, warm);
    else if (a)
        run_actor(c, a);
    else
        c->status = 127;
    if (!a && warm)
        discard_interpreter(warm);
    starting_end(c);
    driver_exit(c);
}

void *driver_main(void *arg)
{
    drive(arg, NULL);
    return NULL;
}

/* ---- the warm pool (options pool: N; ../pool.h) ------------------------------------------ */


/* On a pool worker: the interpreter of a future actor, made as a cold
 * driver makes it, then parked without the GIL. */
void *pool_prepare(void *ctx)
{
    struct sstate *st = ctx;
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, NULL); /* what start_thread gives a driver */
    starting_count(1);
    char why[200];
    PyThreadState *ts = make_interpreter(st->own_gil, st->host, NULL, NULL, why, sizeof why);
    if (ts)
        subint_preload();
    starting_count(-1);
    if (!ts) {
        if (!atomic_exchange(&st->pool_failed, 1))
            st->host->log("subint", "pool: %s; the pool retries every 100 ms", why);
        return NULL;
    }
    PyEval_SaveThread();
    return ts;
}

void pool_run(void *ctx, void *warm, void *job)
{
    (void)ctx;
    pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL); /* as a cold driver's */
    drive(job, warm);
}

void pool_discard(void *ctx, void *warm)
{
    (void)ctx;
    discard_interpreter(warm);
}

