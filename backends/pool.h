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
 * starts a replacement, once spawns have been quiet for quiet_ns. With no
 * parked worker, spawn() starts the actor cold (it never waits for the
 * pool).
 *
 * Ownership: a taken worker's thread is joinable and belongs to the job
 * (the backend joins it in reap, or detaches it on release, as for a cold
 * thread). An untaken worker is joined by the pool: by the refiller when
 * its prepare failed, by pool_stop after its `discard` (never detached: the
 * core may unload the plugin right after close, and a detached thread
 * could still be returning through the plugin's code).
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

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
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
    sem_t wake;                /* posted by pool_take (job set) or pool_stop (no job) */
    void *ctx;                 /* copies of the pool's, read after the pool may be gone */
    void (*run)(void *ctx, void *warm, void *job);
    struct pool_worker *next;  /* in the idle list */
    struct pool_worker *anext, *aprev; /* in the list of untaken workers (p->all) */
    int dead;                  /* exited (or exiting) without a job: to be joined */
};

struct pool {
    /* set by the backend before pool_start */
    unsigned size;    /* parked workers to keep */
    int64_t quiet_ns; /* a replacement starts this long after the last take */
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
    struct pool_worker *all; /* every worker not taken: joined by the refiller or pool_stop */
    unsigned n_idle;
    unsigned n_untaken; /* started, not yet taken nor exited */
    unsigned n_preparing; /* of which still in prepare: at most one at a time */
    int refiller_idle;  /* the refiller waits for a take (pool_take wakes it) */
    int64_t backoff_until;
    int64_t last_take;
    int stop;
    int orphaned; /* pool_stop returned with workers still running: they detach */
    int refiller_on;
    int attr_ok;         /* attr carries the opener's scheduling */
    pthread_attr_t attr; /* of the workers */
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

/* Under p->m: unlink `w` from p->all. */
static inline void pool_unlink_locked(struct pool *p, struct pool_worker *w)
{
    if (w->aprev)
        w->aprev->anext = w->anext;
    else
        p->all = w->anext;
    if (w->anext)
        w->anext->aprev = w->aprev;
    w->anext = w->aprev = NULL;
}

/* A worker's way out without a job: it stays joinable and listed (the
 * refiller or pool_stop joins it: a detached thread could still be
 * running this plugin's code when the core unloads it). */
static inline void *pool_worker_gone(struct pool_worker *w, void *warm)
{
    struct pool *p = w->pool;
    if (warm)
        p->discard(p->ctx, warm);
    pthread_mutex_lock(&p->m);
    w->dead = 1;
    /* pool_stop gave up waiting for this worker and will join no more:
     * nobody joins it, so it must not end joinable (the plugin is pinned
     * then: its code may still run here) */
    if (p->orphaned)
        pthread_detach(pthread_self());
    p->n_untaken--;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->m);
    return NULL;
}

static inline void *pool_worker_main(void *arg)
{
    struct pool_worker *w = arg;
    struct pool *p = w->pool;
    /* a parked worker is nobody's actor yet: nothing may cancel it */
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
    /* read by pool_take and the joiners only after this worker took p->m */
    w->thread = pthread_self();
    w->tid = (uint64_t)syscall(SYS_gettid);
    char name[16] = "";
    pthread_getname_np(pthread_self(), name, sizeof name);
    void *warm = p->prepare(p->ctx);
    pthread_mutex_lock(&p->m);
    p->n_preparing--;
    pthread_cond_broadcast(&p->cv); /* the refiller may start the next one */
    if (!warm)
        p->backoff_until = pool_now_ns() + POOL_BACKOFF_NS;
    if (!warm || p->stop) {
        pthread_mutex_unlock(&p->m);
        return pool_worker_gone(w, warm);
    }
    w->warm = warm;
    w->next = p->idle;
    p->idle = w;
    p->n_idle++;
    /* parked, as `ps -L` and tests see it (a thread name is set by a
     * system call that never waits) */
    pthread_setname_np(pthread_self(), POOL_THREAD_NAME);
    pthread_mutex_unlock(&p->m);
    /* Idle wait without a deadline on purpose: a parked worker blocks
     * nobody. Proof that it ends: pool_take (with w->job set) and
     * pool_stop (with p->stop set) each unlink it from the idle list under
     * p->m and post w->wake once; only EINTR repeats the wait. A semaphore,
     * not p->m's condition variable: the woken worker then takes no lock
     * shared with the spawning thread. */
    while (sem_wait(&w->wake) != 0)
        ;
    void *job = w->job; /* ordered by the post */
    if (!job) /* stopping: pool_stop emptied the idle list */
        return pool_worker_gone(w, warm);
    /* taken: pool_take unlinked and uncounted it; the job owns (joins)
     * this thread; the pool may be gone: only w is used */
    void *ctx = w->ctx;
    void (*run)(void *, void *, void *) = w->run;
    pthread_setname_np(pthread_self(), name); /* the name it was born with */
    sem_destroy(&w->wake);
    free(w);
    run(ctx, warm, job);
    return NULL;
}

/* Under p->m: join the workers that ended without a job (each has
 * returned or is returning: the join is bounded). */
static inline void pool_join_dead_locked(struct pool *p)
{
    for (struct pool_worker *w = p->all, *next; w; w = next) {
        next = w->anext;
        if (!w->dead)
            continue;
        pool_unlink_locked(p, w);
        pthread_mutex_unlock(&p->m);
        pthread_join(w->thread, NULL); /* bounded: it is returning */
        sem_destroy(&w->wake);
        free(w);
        pthread_mutex_lock(&p->m);
        next = p->all; /* the list may have changed meanwhile */
    }
}

/* Under p->m: start one worker. 0, or an errno. */
static inline int pool_start_worker_locked(struct pool *p)
{
    struct pool_worker *w = calloc(1, sizeof *w);
    if (!w)
        return ENOMEM;
    w->pool = p;
    w->ctx = p->ctx;
    w->run = p->run;
    sem_init(&w->wake, 0, 0);
    p->n_untaken++;
    p->n_preparing++;
    w->anext = p->all; /* listed before it runs: it parks (and may be taken) under p->m */
    if (p->all)
        p->all->aprev = w;
    p->all = w;
    pthread_t t;
    pthread_mutex_unlock(&p->m); /* pthread_create outside the lock */
    int rc = pthread_create(&t, p->attr_ok ? &p->attr : NULL, pool_worker_main, w);
    pthread_mutex_lock(&p->m);
    if (rc) {
        pool_unlink_locked(p, w);
        p->n_untaken--;
        p->n_preparing--;
        sem_destroy(&w->wake);
        free(w);
        return rc;
    }
    return 0; /* w may be taken and freed already: not touched here */
}

/* The refiller keeps size workers preparing or parked. A replacement
 * starts only once no worker was taken for quiet_ns: starting it at once
 * would compete with the actor just handed over (on a busy or a single
 * CPU, or for the GIL) in the very moments the pool is meant to shorten;
 * a burst of spawns empties the pool and the rest start cold. Its waits:
 * the idle wait has no deadline on purpose (it blocks nobody); proof that
 * it ends: pool_take (a worker taken lowers the count) and pool_stop
 * broadcast p->cv under p->m. The backoff and quiet waits are timed. */
static inline void *pool_refiller_main(void *arg)
{
    struct pool *p = arg;
    /* SCHED_BATCH: woken by a take, the refiller does not preempt the
     * spawning thread nor the actor (its workers get the opener's policy
     * back: pool_start_worker_locked) */
    struct sched_param batch = {0};
    pthread_setschedparam(pthread_self(), SCHED_BATCH, &batch);
    pthread_mutex_lock(&p->m);
    while (!p->stop) {
        pool_join_dead_locked(p);
        int64_t now = pool_now_ns();
        if (p->n_untaken >= p->size) {
            p->refiller_idle = 1;
            pthread_cond_wait(&p->cv, &p->m); /* idle wait: proof above */
            p->refiller_idle = 0;
            continue;
        }
        if (p->n_preparing > 0) {
            /* one prepare at a time: a pool filling up competes less
             * with the actors (subint: for the GIL), and pool_stop waits
             * for at most one interpreter being made */
            pthread_cond_wait(&p->cv, &p->m); /* ends: the worker broadcasts after prepare */
            continue;
        }
        int64_t until = p->last_take + p->quiet_ns;
        if (until < p->backoff_until)
            until = p->backoff_until;
        if (now < until) {
            struct timespec ts = pool_ts(until);
            pthread_cond_timedwait(&p->cv, &p->m, &ts); /* bounded: quiet or backoff */
            continue;
        }
        if (pool_start_worker_locked(p))
            p->backoff_until = pool_now_ns() + POOL_BACKOFF_NS;
    }
    pthread_mutex_unlock(&p->m);
    return NULL;
}

/* Keep this plugin loaded for the life of the process (a worker that
 * outlived pool_stop's bound still runs its code; the core unloads a
 * plugin whose supervisors are all closed). */
static inline void pool_pin_plugin(void)
{
    Dl_info info;
    if (dladdr((void *)pool_worker_main, &info) && info.dli_fname)
        dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
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
    /* a worker is born with the scheduling of the thread that opened the
     * supervisor, not the refiller's */
    int policy;
    struct sched_param sp;
    if (pthread_attr_init(&p->attr) == 0) {
        p->attr_ok = pthread_getschedparam(pthread_self(), &policy, &sp) == 0 &&
                     pthread_attr_setinheritsched(&p->attr, PTHREAD_EXPLICIT_SCHED) == 0 &&
                     pthread_attr_setschedpolicy(&p->attr, policy) == 0 &&
                     pthread_attr_setschedparam(&p->attr, &sp) == 0;
        if (!p->attr_ok)
            pthread_attr_destroy(&p->attr);
    }
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
    pool_unlink_locked(p, w);
    p->n_untaken--;
    p->last_take = pool_now_ns();
    w->job = job;
    *thread = w->thread;
    *tid = w->tid;
    if (p->refiller_idle) /* a replacement, after the quiet time */
        pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->m);
    sem_post(&w->wake); /* w is the worker's from here */
    return 1;
}

/* Stop: no new worker, every parked one discards its warm and exits, and
 * is joined. Waits until deadline_ns at most for them. Returns how many
 * workers still use the pool (0: it may be freed; else it must stay
 * alive, and this plugin is pinned: their code still runs). */
static inline unsigned pool_stop(struct pool *p, int64_t deadline_ns)
{
    if (p->pid != getpid())
        return 0; /* a forked child: the workers are the parent's */
    pthread_mutex_lock(&p->m);
    p->stop = 1;
    pthread_cond_broadcast(&p->cv);
    for (struct pool_worker *w = p->idle; w; w = w->next)
        sem_post(&w->wake); /* it needs p->m to end: not before the unlock */
    p->idle = NULL;
    p->n_idle = 0;
    pthread_mutex_unlock(&p->m);
    if (p->refiller_on)
        pthread_join(p->refiller, NULL); /* bounded: it is in a wait, or in pthread_create */
    p->refiller_on = 0;
    pthread_mutex_lock(&p->m);
    /* untaken workers discard and end (a taken one never touches p again) */
    struct timespec ts = pool_ts(deadline_ns);
    while (p->n_untaken > 0)
        if (pthread_cond_timedwait(&p->cv, &p->m, &ts) == ETIMEDOUT)
            break; /* bounded by deadline_ns */
    unsigned left = p->n_untaken;
    /* join the ended ones; one still running keeps its struct (it writes
     * w->dead) */
    pool_join_dead_locked(p);
    /* no dead worker is listed now (checked under p->m): any that ends
     * from here on sees this and detaches itself */
    p->orphaned = p->n_untaken > 0;
    pthread_mutex_unlock(&p->m);
    if (left)
        pool_pin_plugin();
    return left;
}

/* After pool_stop returned 0 (or on a pool never started beyond init). */
static inline void pool_destroy(struct pool *p)
{
    if (p->pid != getpid())
        return; /* a forked child: the lock may have been held at the fork */
    if (p->attr_ok)
        pthread_attr_destroy(&p->attr);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->m);
}

#endif
