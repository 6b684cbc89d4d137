/* backends/slurm/watch.c - the watcher thread: how each actor ended.
 *
 * One thread per backend state polls, for every child whose srun is not
 * reaped yet, srun's stderr (the helper's end record, see slurm.h) and
 * srun's pidfd. It frees a
 * child once the core released it and srun is reaped.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "slurm.h"

#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

#define MARK_LEN (sizeof SLURM_RECORD_MARK - 1)

/* After close(): how long the sruns of actors that ended by themselves
 * (their helper's record is in) are waited for while they complete their
 * jobs (25-100 ms after the task's end, measured), before the spawner
 * thread ends. Its end sends every srun it started its parent-death
 * signal, SIGKILL, which makes the shepherd complete the job while slurmd
 * still sees the step: Slurm records the job CANCELLED and keeps the node
 * COMPLETING 2-3 s (docs/slurm.md). Short, because it adds to close(),
 * which the core bounds by e past the teardown; the sruns of killed or
 * abandoned actors are not waited for (they are being killed anyway, and
 * under load took over a second: cancel.supervisor-close missed its
 * bound). */
#define STOP_GRACE_NS (100 * (int64_t)1000000)
/* How long slurm_reap_rest waits for the sruns the spawner's end killed. */
#define REST_WAIT_MS 500

/* Pass srun's stderr on to ours. Bounded: at most 100 ms for room in our
 * stderr per chunk, then the chunk is dropped (a stderr nobody drains
 * must not stop the watcher: every outcome goes through it). */
static void forward(const char *p, size_t n)
{
    while (n > 0) {
        struct pollfd pf = {.fd = 2, .events = POLLOUT};
        if (poll(&pf, 1, 100) <= 0 || (pf.revents & (POLLERR | POLLNVAL)))
            return;
        size_t chunk = n < 4096 ? n : 4096; /* a pipe with room takes 4096 at once */
        ssize_t w = write(2, p, chunk);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

/* The longest tail of p[0..n) that is a beginning of the mark. */
static size_t mark_prefix_tail(const char *p, size_t n)
{
    for (size_t k = n < MARK_LEN - 1 ? n : MARK_LEN - 1; k > 0; k--)
        if (!memcmp(p + n - k, SLURM_RECORD_MARK, k))
            return k;
    return 0;
}

struct record {
    int have, sig, code, desc; /* the end record */
    int seen;                  /* the last 'd' record's count, or -1 */
};

/* A record line (mark to newline) with this child's token, into *r. */
static int parse_record(const struct schild *c, const char *line, size_t len, struct record *r)
{
    char buf[sizeof c->hold + 1], tok[sizeof c->token];
    if (len >= sizeof buf)
        return 0;
    memcpy(buf, line + MARK_LEN, len - MARK_LEN);
    buf[len - MARK_LEN] = '\0';
    char kind;
    int value, desc;
    if (sscanf(buf, "%39s %c %d %d", tok, &kind, &value, &desc) != 4 || strcmp(tok, c->token) ||
        (kind != 'x' && kind != 's' && kind != 'd'))
        return 0;
    if (kind == 'd') { /* the actor's descendants now, not an end */
        r->seen = desc;
        return 1;
    }
    r->have = 1;
    r->sig = kind == 's' ? value : 0;
    r->code = kind == 'x' ? value : 0;
    r->desc = desc;
    return 1;
}

/* Feed n bytes of srun's stderr: forward everything but the record;
 * hold back a tail that may be the start of one. */
static void feed(struct schild *c, const char *data, size_t n, struct record *r)
{
    char work[sizeof c->hold + 4096];
    memcpy(work, c->hold, c->n_hold);
    memcpy(work + c->n_hold, data, n);
    size_t len = c->n_hold + n, pos = 0;
    c->n_hold = 0;
    while (pos < len) {
        char *m = memmem(work + pos, len - pos, SLURM_RECORD_MARK, MARK_LEN);
        if (!m) {
            size_t keep = mark_prefix_tail(work + pos, len - pos);
            forward(work + pos, len - pos - keep);
            memcpy(c->hold, work + len - keep, keep);
            c->n_hold = keep;
            return;
        }
        forward(work + pos, (size_t)(m - (work + pos)));
        size_t rest = len - (size_t)(m - work);
        char *nl = memchr(m, '\n', rest);
        if (!nl) {
            if (rest < sizeof c->hold) { /* the rest of the line comes later */
                memcpy(c->hold, m, rest);
                c->n_hold = rest;
            } else {
                forward(m, rest); /* too long to be ours */
            }
            return;
        }
        size_t line = (size_t)(nl + 1 - m);
        if (!parse_record(c, m, line, r))
            forward(m, line);
        pos = (size_t)(nl + 1 - work);
    }
}

/* Read what srun's stderr has now (nonblocking; at most 64 KiB a round,
 * so that one chatty actor cannot starve the others). At its end: close. */
static void drain_err(struct schild *c, struct record *r)
{
    char buf[4096];
    for (int i = 0; i < 16; i++) {
        ssize_t got = read(c->errfd, buf, sizeof buf);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0 && errno == EAGAIN)
            return;
        if (got <= 0) {
            forward(c->hold, c->n_hold);
            c->n_hold = 0;
            close(c->errfd);
            c->errfd = -1;
            return;
        }
        feed(c, buf, (size_t)got, r);
    }
}

/* The child's outcome is known: exit_fd readable, reap's waiters woken. */
static void signal_exit(struct sstate *st, struct schild *c)
{
    uint64_t one = 1;
    ssize_t w = write(c->pub.exit_fd, &one, sizeof one);
    (void)w; /* an eventfd: fails only at 2^64-1 */
    pthread_cond_broadcast(&st->cond);
}

/* srun ended? Reap it (WNOHANG: never blocks). Caller holds st->lock. */
static void check_srun(struct sstate *st, struct schild *c)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (c->srun_done || waitid((idtype_t)P_PIDFD, (id_t)c->pidfd, &si, WEXITED | WNOHANG) != 0 ||
        si.si_pid == 0)
        return;
    c->srun_done = 1;
    c->srun_code = si.si_code;
    c->srun_status = si.si_status;
    signal_exit(st, c);
}

/* Free the children the core is done with whose srun is reaped (and
 * stderr drained). Caller holds st->lock. */
static void free_done(struct sstate *st, int all)
{
    for (struct schild **pp = &st->children; *pp;) {
        struct schild *c = *pp;
        if (!all && !(c->released && c->srun_done && c->errfd < 0)) {
            pp = &c->next;
            continue;
        }
        *pp = c->next;
        if (c->errfd >= 0)
            close(c->errfd);
        close(c->pidfd); /* an srun still running (close gave up): left to init */
        close(c->pub.exit_fd);
        free(c);
    }
}

/* After close(): 1 to end now; 0 to go on waiting for the sruns of
 * actors that ended by themselves, at most STOP_GRACE_NS (from the first
 * call, which sets *give_up). The others are left to slurm_reap_rest. */
static int stopping(struct sstate *st, int64_t *give_up)
{
    int waiting = 0;
    for (struct schild *c = st->children; c; c = c->next)
        waiting += !c->srun_done && c->rec && !c->kill_asked;
    if (!waiting)
        return 1;
    int64_t now = slurm_mono_ns();
    if (!*give_up)
        *give_up = now + STOP_GRACE_NS;
    return now >= *give_up;
}

/* Hard kills whose srun did not exit within its grace (slurm.c,
 * s_hard_kill, slurm.h): scancel --signal=KILL JOB.0 first (the killer
 * thread), then SIGKILL of srun, whose shepherd kills the step. Caller
 * holds st->lock. */
static void term_overdue(struct sstate *st)
{
    int64_t now = slurm_mono_ns();
    for (struct schild *c = st->children; c; c = c->next) {
        if (c->srun_done || c->rec) {
            c->term_deadline = c->kill_deadline = 0;
            continue;
        }
        if (c->term_deadline && c->term_deadline <= now) {
            c->term_deadline = 0;
            c->kill_deadline = now + SLURM_KILL_GRACE_NS;
            slurm_queue_scancel(st, c->name);
        }
        if (c->kill_deadline && c->kill_deadline <= now) {
            c->kill_deadline = 0;
            syscall(SYS_pidfd_send_signal, c->pidfd, SIGKILL, NULL, 0);
        }
    }
}

/* One poll over every child; returns how long to sleep at most (ms). */
static int next_timeout(struct sstate *st, int64_t give_up)
{
    int64_t now = slurm_mono_ns(), next = now + 1000000000;
    if (give_up && give_up < next)
        next = give_up;
    for (struct schild *c = st->children; c; c = c->next) {
        if (c->term_deadline && c->term_deadline < next)
            next = c->term_deadline;
        if (c->kill_deadline && c->kill_deadline < next)
            next = c->kill_deadline;
    }
    return next <= now ? 0 : (int)((next - now + 999999) / 1000000);
}

/* Its idle wait is a poll of at most one second (next_timeout), woken by
 * wake_fd at every change. Ends: see slurm.h. */
void *slurm_watcher_main(void *arg)
{
    struct sstate *st = arg;
    struct pollfd *pf = NULL;
    struct schild **who = NULL;
    size_t cap = 0;
    int64_t give_up = 0;
    pthread_mutex_lock(&st->lock);
    for (;;) {
        free_done(st, 0);
        term_overdue(st);
        if (st->stop && stopping(st, &give_up))
            break;
        size_t n = 1;
        for (struct schild *c = st->children; c; c = c->next)
            n += 2;
        if (n > cap) {
            struct pollfd *p2 = realloc(pf, n * sizeof *pf);
            struct schild **w2 = p2 ? realloc(who, n * sizeof *who) : NULL;
            if (p2)
                pf = p2;
            if (w2)
                who = w2;
            if (!p2 || !w2) { /* out of memory: try again in a moment */
                pthread_mutex_unlock(&st->lock);
                usleep(10000);
                pthread_mutex_lock(&st->lock);
                continue;
            }
            cap = n;
        }
        n = 0;
        pf[n++] = (struct pollfd){.fd = st->wake_fd, .events = POLLIN};
        for (struct schild *c = st->children; c; c = c->next) {
            if (c->errfd >= 0) {
                who[n] = c;
                pf[n++] = (struct pollfd){.fd = c->errfd, .events = POLLIN};
            }
            if (!c->srun_done) {
                who[n] = c;
                pf[n++] = (struct pollfd){.fd = c->pidfd, .events = POLLIN};
            }
        }
        int ms = next_timeout(st, give_up);
        pthread_mutex_unlock(&st->lock);
        if (poll(pf, n, ms) < 0)
            for (size_t i = 0; i < n; i++)
                pf[i].revents = 0;
        if (pf[0].revents) {
            uint64_t v;
            ssize_t r = read(st->wake_fd, &v, sizeof v);
            (void)r;
        }
        /* children are freed only by this thread: who[] stays valid */
        for (size_t i = 1; i < n; i++) {
            struct schild *c = who[i];
            if (!pf[i].revents)
                continue;
            if (pf[i].fd == c->errfd) {
                struct record r = {.seen = -1};
                drain_err(c, &r); /* unlocked: errfd and hold are ours */
                pthread_mutex_lock(&st->lock);
                if (r.seen >= 0)
                    c->desc_seen = r.seen;
                if (r.have && !c->rec) {
                    c->rec = 1;
                    c->rec_sig = r.sig;
                    c->rec_code = r.code;
                    c->rec_desc = r.desc;
                    signal_exit(st, c);
                }
            } else {
                pthread_mutex_lock(&st->lock);
                check_srun(st, c);
            }
            pthread_mutex_unlock(&st->lock);
        }
        pthread_mutex_lock(&st->lock);
    }
    free_done(st, 0); /* the rest: slurm_reap_rest, after the spawner's end */
    pthread_mutex_unlock(&st->lock);
    free(pf);
    free(who);
    return NULL;
}

/* After every thread has ended (the spawner last: its end SIGKILLed the
 * sruns still running), reap them and free every child. Bounded: at most
 * REST_WAIT_MS in all; an srun still there then is left (a zombie until
 * the process exits; never seen: SIGKILL is not ignorable). */
void slurm_reap_rest(struct sstate *st)
{
    int64_t end = slurm_mono_ns() + REST_WAIT_MS * (int64_t)1000000;
    for (struct schild *c = st->children; c; c = c->next) {
        int64_t left = end - slurm_mono_ns();
        if (!c->srun_done && left > 0) {
            struct pollfd p = {.fd = c->pidfd, .events = POLLIN};
            poll(&p, 1, (int)((left + 999999) / 1000000)); /* bounded by `end` */
        }
        check_srun(st, c); /* WNOHANG */
    }
    free_done(st, 1);
}
