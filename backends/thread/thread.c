/* backends/thread - actors on their own pthread in the supervisor's process.
 *
 * soft cancel: the core's CANCEL message plus a flag the actor runtime reads
 *              at every checkpoint.
 * hard kill:   deferred pthread_cancel: acts at the next cancellation point
 *              (read, poll, nanosleep, ...). A thread that reaches none (a
 *              busy loop) is abandoned by the core when hard_kill expires:
 *              detached, counted, never joined.
 * exit fd:     an eventfd the thread signals as its very last act, so the
 *              core's reap never waits for a running thread.
 * pool:        options { pool: N } keeps N threads started ahead
 *              (../pool.h); spawn hands the actor to a parked one, which
 *              then runs exactly as a cold actor thread (and only this
 *              actor: it exits after it). With none parked, spawn starts a
 *              thread cold.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <tether/backend.h>

#include "../inproc.h"
#include "../pool.h"

struct tstate {
    const struct tether_backend_host *host;
    atomic_uint abandoned_running;
    atomic_uint live; /* children not yet freed */
    struct pool pool; /* warm threads; size 0: none */
};

enum { FATE_RUNNING, FATE_DONE, FATE_ABANDONED };

struct tchild {
    struct tether_child pub; /* first: the core sees only this */
    struct tstate *st;
    pthread_t thread;
    char *target;
    int channel_fd;
    tether_cancel_flag cancel_flag; /* the engine sets it, the actor thread reads it */
    atomic_int done;    /* the thread has finished (normally or cancelled) */
    int status;
    int cancelled;      /* ended by pthread_cancel */
    int joined;
    atomic_int fate;    /* RUNNING, then DONE or ABANDONED, whichever comes first */
    atomic_int refs;    /* the core's and the thread's */
};

static void child_unref(struct tchild *c)
{
    if (atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    close(c->pub.exit_fd);
    free(c->target);
    atomic_fetch_sub(&c->st->live, 1);
    free(c);
}

/* The thread's last act, on every way out (return or cancellation). */
static void thread_exit(struct tchild *c)
{
    atomic_store(&c->done, 1);
    uint64_t one = 1;
    ssize_t w = write(c->pub.exit_fd, &one, sizeof one);
    (void)w;
    /* exactly one of this and release() moves `fate` off RUNNING */
    int expect = FATE_RUNNING;
    if (!atomic_compare_exchange_strong(&c->fate, &expect, FATE_DONE))
        atomic_fetch_sub(&c->st->abandoned_running, 1); /* it was abandoned */
    child_unref(c);
}

static void on_cancel(void *arg)
{
    struct tchild *c = arg;
    c->cancelled = 1;
    thread_exit(c);
}

static void *actor_thread(void *arg)
{
    struct tchild *c = arg;
    /* the core reads it from its own threads (events, hang dump) */
    __atomic_store_n(&c->pub.thread_id, (uint64_t)syscall(SYS_gettid), __ATOMIC_RELAXED);
    pthread_setcanceltype(PTHREAD_CANCEL_DEFERRED, NULL);
    pthread_cleanup_push(on_cancel, c);
    c->status = c->st->host->run_c_actor(c->channel_fd, c->target, &c->cancel_flag);
    /* From here the thread must not be cancelled: a hard kill arriving in
     * thread_exit's write() would skip the unref and leak the exit fd. */
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
    pthread_cleanup_pop(0);
    thread_exit(c);
    return NULL;
}

/* A replacement thread starts 1 ms after the last spawn that took one
 * (../pool.h: it would compete with the actor just started). */
#define POOL_QUIET_NS (1000000LL)

/* The pool's hooks (../pool.h). A parked thread needs nothing prepared. */
static void *pool_prepare(void *ctx)
{
    return ctx;
}

static void pool_discard(void *ctx, void *warm)
{
    (void)ctx;
    (void)warm;
}

/* A parked thread takes its actor: from here it is that actor's thread,
 * cancellable as a cold one (a hard kill sent before this point is
 * pending and acts at the first cancellation point, in run_c_actor, with
 * the cleanup handler pushed). */
static void pool_run(void *ctx, void *warm, void *job)
{
    (void)ctx;
    (void)warm;
    pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
    actor_thread(job);
}

static void prime_once(void);
static void *exit_at_once(void *arg)
{
    (void)arg;
    pthread_exit(NULL);
}

static void prime_once(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, exit_at_once, NULL) == 0)
        pthread_join(t, NULL); /* bounded: the thread exits at once */
}

/* glibc loads the unwinder (libgcc_s) with dlopen the first time a thread
 * is cancelled or exits through pthread_exit. If that first time is a hard
 * kill while the actor thread is inside dlopen (a slow constructor), the
 * load waits for the loader lock the actor holds: hard_kill would block.
 * Make the first time happen here, once, where blocking is harmless. */
static void prime_unwinder(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, prime_once);
}

static int t_open(const struct tether_backend_host *host, const struct tether_options *opts,
                  void **state, struct tether_error *err)
{
    unsigned pool = 0;
    for (size_t i = 0; i < opts->count; i++) {
        const char *k = opts->items[i].key, *v = opts->items[i].value;
        if (strcmp(k, "pool") == 0 && pool_parse_size(v, &pool) == 0)
            continue;
        if (strcmp(k, "pool") == 0)
            snprintf(err->msg, sizeof err->msg,
                     "option pool: '%s' is not a whole number from 0 to %d", v, POOL_MAX);
        else
            snprintf(err->msg, sizeof err->msg,
                     "unknown option '%s' (the thread backend takes pool)", k);
        err->code = TETHER_ECONFIG;
        return TETHER_ECONFIG;
    }
    prime_unwinder();
    struct tstate *st = calloc(1, sizeof *st);
    if (!st)
        return TETHER_ENOMEM;
    st->host = host;
    st->pool.size = pool;
    st->pool.quiet_ns = POOL_QUIET_NS;
    st->pool.ctx = st;
    st->pool.prepare = pool_prepare;
    st->pool.run = pool_run;
    st->pool.discard = pool_discard;
    int rc = pool_start(&st->pool);
    if (rc) {
        snprintf(err->msg, sizeof err->msg, "cannot start the pool's refiller: %s", strerror(rc));
        pool_destroy(&st->pool);
        free(st);
        return err->code = TETHER_ESYS;
    }
    *state = st;
    return 0;
}

static void t_close(void *state)
{
    struct tstate *st = state;
    /* Parked threads only wake and exit: 1 s is far beyond what they need. */
    unsigned left = pool_stop(&st->pool, tether_backend_now_ns() + 1000000000LL);
    if (left) {
        /* they still use st->pool: keep st alive for them */
        st->host->log("thread", "%u pooled thread(s) still exiting after 1 s; kept", left);
        return;
    }
    pool_destroy(&st->pool);
    /* Children still alive (abandoned) keep a pointer to st: leave it. */
    if (atomic_load(&st->live) == 0)
        free(st);
}

static int t_spawn(void *state, const struct tether_spawn_spec *spec, struct tether_child **out,
                   struct tether_error *err)
{
    struct tstate *st = state;
    char *target;
    struct tchild *c = inproc_child_new(sizeof *c, spec, &target, err);
    if (!c)
        return TETHER_ENOMEM;
    c->target = target;
    c->st = st;
    c->channel_fd = spec->channel_fd;
    atomic_init(&c->refs, 2);
    atomic_fetch_add(&st->live, 1);
    uint64_t tid;
    if (pool_take(&st->pool, c, &c->thread, &tid)) {
        __atomic_store_n(&c->pub.thread_id, tid, __ATOMIC_RELAXED);
        *out = &c->pub;
        return 0;
    }
    int rc = pthread_create(&c->thread, NULL, actor_thread, c);
    if (rc != 0) {
        snprintf(err->msg, sizeof err->msg, "pthread_create: %s", strerror(rc));
        close(spec->channel_fd);
        atomic_store(&c->refs, 1);
        child_unref(c);
        return TETHER_ESPAWN;
    }
    *out = &c->pub;
    return 0;
}

static int t_soft_cancel(struct tether_child *child)
{
    struct tchild *c = (struct tchild *)child;
    /* read by the actor thread at its checkpoints (actor_rt.c) */
    tether_cancel_flag_set(&c->cancel_flag, TETHER_CANCEL_REQUESTED);
    return 0;
}

static int t_hard_kill(struct tether_child *child)
{
    struct tchild *c = (struct tchild *)child;
    tether_cancel_flag_set(&c->cancel_flag, TETHER_CANCEL_REQUESTED);
    if (!atomic_load(&c->done) && !c->joined)
        pthread_cancel(c->thread); /* asks; never waits */
    return 0;
}

static int t_abort_channels(struct tether_child *child)
{
    /* The only channel end this backend touches is the actor's, which the
     * actor runtime owns and closes; shutting it from here could hit a
     * reused fd number. The core's shutdown of its own end gives the actor
     * end-of-stream, which is all an abort needs. */
    (void)child;
    return 0;
}

static int t_reap(struct tether_child *child, int64_t deadline_ns, struct tether_outcome *out)
{
    struct tchild *c = (struct tchild *)child;
    int rc = inproc_reap_thread(&c->done, c->pub.exit_fd, c->thread, &c->joined, deadline_ns);
    if (rc)
        return rc;
    memset(out, 0, sizeof *out);
    if (c->cancelled) {
        out->kind = TETHER_OUTCOME_KILLED;
        out->message = "thread cancelled";
    } else {
        out->kind = TETHER_OUTCOME_EXITED;
        out->code = c->status;
    }
    return 0;
}

static void t_release(struct tether_child *child)
{
    struct tchild *c = (struct tchild *)child;
    if (!c->joined) {
        /* Abandoned: cut loose. It frees itself if it ever ends. */
        int expect = FATE_RUNNING;
        if (atomic_compare_exchange_strong(&c->fate, &expect, FATE_ABANDONED))
            atomic_fetch_add(&c->st->abandoned_running, 1); /* still running */
        pthread_detach(c->thread);
    }
    child_unref(c);
}

static unsigned t_abandoned_count(void *state)
{
    struct tstate *st = state;
    return atomic_load(&st->abandoned_running);
}

static const struct tether_backend thread_backend = {
    .abi = TETHER_BACKEND_ABI,
    .size = sizeof(struct tether_backend),
    .name = "thread",
    .language = "c",
    .caps = TETHER_CAP_NESTED,
    .open = t_open,
    .close = t_close,
    .spawn = t_spawn,
    .soft_cancel = t_soft_cancel,
    .hard_kill = t_hard_kill,
    .abort_channels = t_abort_channels,
    .reap = t_reap,
    .release = t_release,
    .abandoned_count = t_abandoned_count,
};

TETHER_BACKEND_DEFINE(thread_backend)
