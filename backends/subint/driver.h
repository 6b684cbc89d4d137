/* backends/subint/driver.h - what subint.c (the vtable, the GIL monitor,
 * the cancel injector) and driver.c (an actor's driver thread, its
 * interpreter, the warm pool's hooks) share. Private to the plugin; include
 * after <Python.h>. */
#ifndef TETHER_SUBINT_DRIVER_H
#define TETHER_SUBINT_DRIVER_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include <tether/backend.h>

#include "../pool.h"
#include "subint.h"

/* How long an ending driver lets other thread states of its interpreter
 * finish (helpers that hold one, the actor's own threads) before it leaves
 * the interpreter alive instead of ending it. */
#define END_WAIT_NS (100 * 1000000LL)
/* How long close waits beyond that for drivers still ending their
 * interpreters (each end: a few ms of CPU). */
#define CLOSE_END_NS (200 * 1000000LL)
static inline int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void nap_ns(int64_t ns)
{
    if (ns <= 0)
        return;
    struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- state ---------------------------------------------------------------------- */

struct sstate {
    const struct tether_backend_host *host;
    int64_t grace_ns; /* CANCEL frame -> injected Cancelled: soft_cancel / 2, <= 0.5 s */
    int own_gil;      /* each actor's interpreter has its own GIL (3.12+) */
    atomic_uint abandoned_running;
    atomic_uint refs; /* open's, and one per child not yet freed */
    /* m guards `ending`: drivers whose outcome is out and that still end
     * their interpreter; close waits for them (bounded), cv says when one
     * is done */
    pthread_mutex_t m;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    unsigned ending;
    /* The soft-cancel timer (injector_main), also under m: children whose
     * grace runs, each holding a reference, in no order. */
    pthread_t injector;
    int injector_on, stopping;
    pthread_cond_t inj_cv; /* CLOCK_MONOTONIC */
    struct schild *soft_head;
    struct pool pool;       /* interpreters made ahead; size 0: none */
    atomic_int pool_failed; /* a pool worker failed (logged once) */
};

enum istate { I_NONE, I_ALIVE, I_ENDING, I_GONE, I_LEAKED };
/* INJ_SOFT: wait the grace, then inject unless the actor saw the cancel;
 * INJ_SOFT_DUE: the same with the grace over (the injector waited it). */
enum inject { INJ_SOFT, INJ_SOFT_DUE, INJ_HARD };

struct schild {
    struct tether_child pub; /* first: the core sees only this */
    struct sstate *st;
    const struct tether_backend_host *host;
    char *target;
    uint64_t actor_id;
    int channel_fd; /* handed to the driver, which gives it to the host runtime */
    pthread_t thread;
    tether_cancel_flag cancel_flag; /* read by the host runtime at every tether call */
    atomic_int refs;          /* the core's, the driver's, one per helper */
    atomic_int done;          /* the outcome is out (reap may see it); written under m */
    atomic_int hard_killed;
    int status; /* exit code, read after done */

    /* m guards what follows; held for a few instructions only, never
     * across a wait or a GIL acquisition */
    pthread_mutex_t m;
    pthread_cond_t cv; /* CLOCK_MONOTONIC; broadcast when `over` is set */
    int over;          /* the actor code is done (or never ran) */
    int abandoned;
    int64_t t_abandoned;
    int istate;
    unsigned helpers; /* helpers holding (or making) a thread state in interp */
    PyInterpreterState *interp;
    PyThreadState *drv_ts;
    int soft_sent, hard_sent;
    int ending; /* counted in st->ending */
    /* under st->m: queued for the injector */
    struct schild *soft_next;
    int64_t soft_due;

    /* under g_lock */
    int starting; /* counted in g_starting */
    int running;  /* counted in g_running */
    int running_abandoned; /* and in g_running_abandoned */

    struct subint_run run; /* the driver's; see subint.h */
};

/* A replacement interpreter is made 10 ms after the last spawn that took
 * one: making it (several ms, on 3.11 under the one GIL) would slow the
 * actor just started through its imports. */
#define POOL_QUIET_NS (10 * 1000000LL)

/* subint.c */
extern PyInterpreterState *py_main;
void state_unref(struct sstate *st);
void child_unref(struct schild *c);
void starting_count(int delta);
void starting_begin(struct schild *c);
void starting_end(struct schild *c);
void running_set(struct schild *c, int on);

/* driver.c */
const char *istate_text(int s);
void set_over(struct schild *c);
void outcome_out(struct schild *c);
void *driver_main(void *arg); /* a cold driver: start_thread's function */
void *pool_prepare(void *ctx); /* the warm pool's hooks (../pool.h) */
void pool_run(void *ctx, void *warm, void *job);
void pool_discard(void *ctx, void *warm);

#endif
