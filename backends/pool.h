/* backends/pool.h - a warm pool of worker threads, shared by the in-process
 * backends (thread, subint; plugins.yaml `options: { pool: N }`).
 *
 * A worker is started ahead by a background refiller thread, runs the
 * backend's `prepare` (thread: nothing; subint: create its sub-interpreter)
 * and parks. spawn() takes a parked worker and hands it the job; the worker
 * runs `run` and then EXITS: a worker serves exactly one actor, so a pooled
 * actor gets a fresh thread (fresh thread-local storage, cancel state,
 * signal mask, name) and, on subint, a fresh interpreter, exactly as a cold
 * one does. Nothing of one actor can reach the next. The refiller then
 * starts a replacement. With no parked worker, spawn() starts the actor cold
 * (it never waits for the pool).
 *
 * Ownership: a taken worker's thread is joinable and belongs to the job
 * (the backend joins it in reap, or detaches it on release, as for a cold
 * thread). An untaken worker detaches itself and exits when the pool stops
 * (after `discard`).
 *
 * A parked worker's thread is named POOL_THREAD_NAME (so `ps -L` shows the
 * pool, and tests can wait for it to be warm).
 *
 * Fork: the pool belongs to the process that started it. In a forked child
 * (a fork actor of the same program) its workers do not exist: pool_take
 * then says no (the child spawns cold) and pool_stop does not wait.
 *
 * Private to backends/ (static inline; built into each plugin). Includes
 * only system headers; the includer defines _GNU_SOURCE. */
#ifndef TETHER_BACKENDS_POOL_H
#define TETHER_BACKENDS_POOL_H

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* the largest pool: each parked worker holds a thread (and, subint, an
 * interpreter of ~2 MiB) */
#define POOL_MAX 256
/* after a worker whose prepare failed, the refiller waits this long before
 * it starts another (no busy loop on a persistent failure) */
#define POOL_BACKOFF_NS (100 * 1000000LL)
/* the name of a parked worker's thread (/proc/PID/task/TID/comm); a taken
 * one gets back the name it was born with (its creator's) */
#define POOL_THREAD_NAME "tether-pool"

struct pool;

struct pool_worker {
    struct pool *pool;
    pthread_t thread;
    uint64_t tid;              /* gettid() of the worker */
    void *warm;                /* what prepare made */
    void *job;                 /* set by pool_take */
    pthread_cond_t cv;         /* CLOCK_MONOTONIC; signalled by pool_take / pool_stop */
    struct pool_worker *next;  /* in the idle list */
};

struct pool {
    /* set by the backend before pool_start */
    unsigned size; /* parked workers to keep */
    void *ctx;
    /* on the worker, cancellation disabled: return what run/discard need,
     * or NULL when it failed (the worker then exits) */
    void *(*prepare)(void *ctx);
    /* on the worker with the job; cancellation still disabled (run enables
     * it where a cold thread would have it) */
    void (*run)(void *ctx, void *warm, void *job);
    /* on the worker at stop, for a warm never taken */
    void (*discard)(void *ctx, void *warm);
    /* the pool's own */
    pthread_mutex_t m;
    pthread_cond_t cv; /* CLOCK_MONOTONIC: the refiller and pool_stop wait on it */
    struct pool_worker *idle;
    unsigned n_idle;
    unsigned n_untaken; /* started, not yet running a job nor exited */
    unsigned n_handed;  /* of which taken, not yet woken: not counted for the refill */
    int64_t backoff_until;
    int stop;
    int refiller_on;
    pid_t pid;
    pthread_t refiller;
};

static inline int64_t pool_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline struct timespec pool_ts(int64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
    return ts;
}

/* A worker's way out without a job: detach, count it gone, free it. */
static inline void pool_worker_gone(struct pool_worker *w)
{
    struct pool *p = w->pool;
    pthread_detach(pthread_self());
    pthread_cond_destroy(&w->cv);
    free(w);
    pthread_mutex_lock(&p->m);
    p->n_untaken--;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->m); /* p may be freed once this returns: touch nothing after */
}

static inline void *pool_worker_main(void *arg)
{
    struct pool_worker *w = arg;
    struct pool *p = w->pool;
    /* a parked worker is nobody's actor yet: nothing may cancel it */
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
    w->tid = (uint64_t)syscall(SYS_gettid);
    char name[16] = "";
    pthread_getname_np(pthread_self(), name, sizeof name);
    void *warm = p->prepare(p->ctx);
    pthread_mutex_lock(&p->m);
    if (!warm)
        p->backoff_until = pool_now_ns() + POOL_BACKOFF_NS;
    if (!warm || p->stop) {
        pthread_mutex_unlock(&p->m);
        if (warm)
            p->discard(p->ctx, warm);
        pool_worker_gone(w);
        return NULL;
    }
    w->warm = warm;
    w->next = p->idle;
    p->idle = w;
    p->n_idle++;
    /* parked, as `ps -L` and tests see it (a thread name is set by a
     * system call that never waits) */
    pthread_setname_np(pthread_self(), POOL_THREAD_NAME);
    /* Idle wait without a deadline on purpose: a parked worker blocks
     * nobody. Proof that it ends: pool_take sets w->job and pool_stop sets
     * p->stop, each under p->m, and each signals w->cv. */
    while (!w->job && !p->stop)
        pthread_cond_wait(&w->cv, &p->m);
    void *job = w->job;
    if (!job) { /* stopping: pool_stop emptied the idle list */
        pthread_mutex_unlock(&p->m);
        p->discard(p->ctx, warm);
        pool_worker_gone(w);
        return NULL;
    }
    p->n_untaken--;
    p->n_handed--;
    pthread_cond_broadcast(&p->cv); /* pool_stop may be waiting for it */
    void *ctx = p->ctx;
    void (*run)(void *, void *, void *) = p->run;
    pthread_mutex_unlock(&p->m); /* the pool may be gone from here */
    pthread_setname_np(pthread_self(), name); /* the name it was born with */
    pthread_cond_destroy(&w->cv);
    free(w); /* the job owns this thread from here; the pool may be gone */
    run(ctx, warm, job);
    return NULL;
}

/* Under p->m: start one worker. 0, or an errno. */
static inline int pool_start_worker_locked(struct pool *p)
{
    struct pool_worker *w = calloc(1, sizeof *w);
    if (!w)
        return ENOMEM;
    w->pool = p;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    p->n_untaken++;
    pthread_mutex_unlock(&p->m); /* pthread_create outside the lock */
    int rc = pthread_create(&w->thread, NULL, pool_worker_main, w);
    pthread_mutex_lock(&p->m);
    if (rc) {
        p->n_untaken--;
        pthread_cond_destroy(&w->cv);
        free(w);
    }
    return rc;
}

/* The refiller keeps size workers preparing or parked. Its waits: the idle wait below has
 * no deadline on purpose (it blocks nobody); proof that it ends: pool_take
 * (a worker taken lowers n_untaken) and pool_stop broadcast p->cv under
 * p->m. The backoff wait is timed. */
static inline void *pool_refiller_main(void *arg)
{
    struct pool *p = arg;
    pthread_mutex_lock(&p->m);
    while (!p->stop) {
        int64_t now = pool_now_ns();
        if (now < p->backoff_until) {
            struct timespec ts = pool_ts(p->backoff_until);
            pthread_cond_timedwait(&p->cv, &p->m, &ts); /* bounded: the backoff */
            continue;
        }
        if (p->n_untaken - p->n_handed >= p->size) {
            pthread_cond_wait(&p->cv, &p->m); /* idle wait: proof above */
            continue;
        }
        if (pool_start_worker_locked(p))
            p->backoff_until = pool_now_ns() + POOL_BACKOFF_NS;
    }
    pthread_mutex_unlock(&p->m);
    return NULL;
}

/* Parse the option value of `pool`: 0..POOL_MAX. 0 on success. */
static inline int pool_parse_size(const char *v, unsigned *out)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < 0 || n > POOL_MAX)
        return -1;
    *out = (unsigned)n;
    return 0;
}

/* Start the refiller (after size, ctx, prepare, run, discard are set).
 * size 0: no pool, nothing started. 0, or pthread_create's error. */
static inline int pool_start(struct pool *p)
{
    pthread_mutex_init(&p->m, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    p->pid = getpid();
    if (p->size == 0)
        return 0;
    int rc = pthread_create(&p->refiller, NULL, pool_refiller_main, p);
    p->refiller_on = rc == 0;
    return rc;
}

/* Hand `job` to a parked worker. Returns 1 and sets *thread and *tid (the
 * worker's; the caller now owns its join) or 0 when none is parked (the
 * caller starts the actor cold). Never blocks beyond the pool's lock,
 * which nobody holds across a wait or a system call other than a signal. */
static inline int pool_take(struct pool *p, void *job, pthread_t *thread, uint64_t *tid)
{
    if (!p->refiller_on || p->pid != getpid())
        return 0;
    pthread_mutex_lock(&p->m);
    struct pool_worker *w = p->idle;
    if (!w || p->stop) {
        pthread_mutex_unlock(&p->m);
        return 0;
    }
    p->idle = w->next;
    p->n_idle--;
    p->n_handed++;
    w->job = job;
    *thread = w->thread;
    *tid = w->tid;
    pthread_cond_signal(&w->cv);
    pthread_cond_broadcast(&p->cv); /* the refiller starts a replacement now */
    pthread_mutex_unlock(&p->m);
    return 1;
}

/* Stop: no new worker, every parked one discards its warm and exits.
 * Waits until deadline_ns at most for them. Returns how many untaken
 * workers still run (0: the pool may be freed; else it must stay alive:
 * they still use it, and free themselves). */
static inline unsigned pool_stop(struct pool *p, int64_t deadline_ns)
{
    if (p->pid != getpid())
        return 0; /* a forked child: the workers are the parent's */
    pthread_mutex_lock(&p->m);
    p->stop = 1;
    pthread_cond_broadcast(&p->cv);
    for (struct pool_worker *w = p->idle; w; w = w->next)
        pthread_cond_signal(&w->cv);
    p->idle = NULL;
    p->n_idle = 0;
    pthread_mutex_unlock(&p->m);
    if (p->refiller_on)
        pthread_join(p->refiller, NULL); /* bounded: it is in a wait, or in pthread_create */
    p->refiller_on = 0;
    pthread_mutex_lock(&p->m);
    struct timespec ts = pool_ts(deadline_ns);
    while (p->n_untaken > 0)
        if (pthread_cond_timedwait(&p->cv, &p->m, &ts) == ETIMEDOUT)
            break; /* bounded by deadline_ns */
    unsigned left = p->n_untaken;
    pthread_mutex_unlock(&p->m);
    return left;
}

/* After pool_stop returned 0 (or on a pool never started beyond init). */
static inline void pool_destroy(struct pool *p)
{
    if (p->pid != getpid())
        return; /* a forked child: the lock may have been held at the fork */
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->m);
}

#endif
