/* backends/spawner.h - the spawner thread that process backends share: one
 * long-lived thread per backend state forks every child, so that a
 * parent-death signal (which fires when the *thread* that forked exits) is
 * tied to the backend's life, not to the program thread that called spawn.
 * Requests queue (several program threads may spawn at once), oldest
 * first; a request not yet taken when its spawn deadline passes is
 * withdrawn.
 *
 * Private to backends/ (static inline; built into each plugin). Includes
 * only system headers. The caller owns the mutex and the condition
 * variable (CLOCK_MONOTONIC), which it may share with its other threads:
 * the spawner broadcasts at every change.
 *
 * Use: embed struct spawner_req as the FIRST member of the request; set
 * sp->lock, sp->cond, sp->run (called unlocked on the spawner thread, for
 * each request) and sp->ctx; spawner_start; spawner_submit from spawn();
 * spawner_stop from close. (backends/fork/fork.c has the same skeleton
 * with a pidns probe first on the thread: it could adopt this header with
 * a `first` hook run before the loop.) */
#ifndef TETHER_BACKENDS_SPAWNER_H
#define TETHER_BACKENDS_SPAWNER_H

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

struct spawner_req {
    struct spawner_req *next; /* queued after this one */
    int taken;                /* the spawner has started it */
    int done;                 /* run() has returned */
};

struct spawner {
    pthread_mutex_t *lock;
    pthread_cond_t *cond; /* CLOCK_MONOTONIC */
    void (*run)(void *ctx, struct spawner_req *r);
    void *ctx;
    /* under *lock */
    struct spawner_req *queue;
    int stop;
    pthread_t thread;
};

/* The spawner thread. Its one wait has no deadline on purpose: it is the
 * idle wait of a service thread, nobody is blocked on it. Proof that it
 * ends: spawner_submit and spawner_stop set the predicate under the lock
 * and broadcast; spawner_stop sets `stop` before joining, so the join
 * returns once the request in hand (a fork: a kernel call) is done. */
static inline void *spawner_main(void *arg)
{
    struct spawner *sp = arg;
    pthread_mutex_lock(sp->lock);
    for (;;) {
        while (!sp->queue && !sp->stop)
            pthread_cond_wait(sp->cond, sp->lock); /* idle wait: proof above */
        if (sp->stop)
            break;
        struct spawner_req *r = sp->queue;
        sp->queue = r->next;
        r->taken = 1;
        pthread_mutex_unlock(sp->lock);
        sp->run(sp->ctx, r);
        pthread_mutex_lock(sp->lock);
        r->done = 1;
        pthread_cond_broadcast(sp->cond);
    }
    pthread_mutex_unlock(sp->lock);
    return NULL;
}

/* 0, or pthread_create's error. */
static inline int spawner_start(struct spawner *sp)
{
    sp->queue = NULL;
    sp->stop = 0;
    return pthread_create(&sp->thread, NULL, spawner_main, sp);
}

/* Queue `r` and wait until it is done. Bounded by deadline_ns (the
 * CLOCK_MONOTONIC nanoseconds of the cond's clock) while it waits its
 * turn: then it is withdrawn. Once taken, only run() in hand remains (a
 * fork, which completes by itself), and `r` must live until then: the
 * wait goes on in 1 ms steps. Returns r->done (0: withdrawn, or the
 * spawner is stopping). */
static inline int spawner_submit(struct spawner *sp, struct spawner_req *r, int64_t deadline_ns)
{
    r->next = NULL;
    r->taken = r->done = 0;
    pthread_mutex_lock(sp->lock);
    if (sp->stop) {
        pthread_mutex_unlock(sp->lock);
        return 0;
    }
    struct spawner_req **tail = &sp->queue;
    while (*tail)
        tail = &(*tail)->next;
    *tail = r;
    pthread_cond_broadcast(sp->cond);
    struct timespec ts = {(time_t)(deadline_ns / 1000000000), (long)(deadline_ns % 1000000000)};
    while (!r->done) {
        int rc = pthread_cond_timedwait(sp->cond, sp->lock, &ts);
        if (rc == ETIMEDOUT && !r->taken) { /* never started: withdraw it */
            for (struct spawner_req **p = &sp->queue; *p; p = &(*p)->next)
                if (*p == r) {
                    *p = r->next;
                    break;
                }
            break;
        }
        if (rc == ETIMEDOUT) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            int64_t later = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec + 1000000;
            ts.tv_sec = (time_t)(later / 1000000000);
            ts.tv_nsec = (long)(later % 1000000000);
        }
    }
    int done = r->done;
    pthread_mutex_unlock(sp->lock);
    return done;
}

/* Stop the thread and join it. Bounded: it finishes the request in hand.
 * A request still queued is left for its submitter to withdraw at its
 * deadline (spawn never outlives close: the core does not close a state
 * while a spawn on it runs). */
static inline void spawner_stop(struct spawner *sp)
{
    pthread_mutex_lock(sp->lock);
    sp->stop = 1;
    pthread_cond_broadcast(sp->cond);
    pthread_mutex_unlock(sp->lock);
    pthread_join(sp->thread, NULL);
}

#endif
