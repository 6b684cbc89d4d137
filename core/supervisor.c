/* core/supervisor.c - the supervisor and its teardown engine.
 *
 * One engine thread per supervisor owns the clock and the state machine.
 * It polls every actor's channel (the parent's end), every backend exit
 * fd, and a wake-up eventfd, with a timeout no longer than the nearest
 * phase deadline. Program threads (spawn, call, send, recv, wait) never run
 * the state machine; they park on one condition variable with their own
 * deadline and are woken by a broadcast at every change.
 *
 * The state machine (s6-style: state x event -> action):
 *
 *   state      | ready     | stopped/EOF     | cancel     | deadline        | exit seen
 *   -----------+-----------+-----------------+------------+-----------------+----------
 *   SPAWNING   | RUNNING   | EXITING         | SOFT       | HARD (timed out)| REAPED
 *   RUNNING    | (ignore)  | EXITING         | SOFT       | (none)          | REAPED
 *   SOFT       | (ignore)  | (wait for exit) | (ignore)   | HARD            | REAPED
 *   EXITING    | (ignore)  | (ignore)        | (ignore)   | HARD            | REAPED
 *   HARD       | (ignore)  | (ignore)        | (ignore)   | ABANDONED       | REAPED
 *   REAPED, ABANDONED: final; nothing changes them.
 *
 * Entering HARD calls the backend's hard_kill and abort_channels, then
 * shuts down the core's own end of the channel (never trusting the
 * backend alone): every parked waiter returns at once. Entering a final
 * state releases the backend's child; an abandoned actor pins its plugin.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "handle_fd.h" /* HFD hook */
#include "internal.h"
#include "wire.h"

enum state { ST_SPAWNING, ST_RUNNING, ST_SOFT, ST_EXITING, ST_HARD, ST_REAPED, ST_ABANDONED };

static const char *const state_names[] = {"spawning",  "running", "soft-cancel", "exiting",
                                          "hard-kill", "reaped",  "abandoned"};

#define IS_FINAL(h) ((h)->state == ST_REAPED || (h)->state == ST_ABANDONED)
/* HFD hook: the handle's pollable fd is readable while recv or wait would not block. */
#define HFD_SYNC(h) tether__hfd_sync(&(h)->hfd, (h)->inbox != NULL || IS_FINAL(h))
/* Messages from an actor wait in its inbox until the owner receives them.
 * Past these bounds the engine stops reading that channel (backpressure:
 * the actor's sends block, and a flooding child cannot exhaust the
 * supervisor); reading resumes as the owner drains it. */
#define INBOX_MAX_MSGS 65536
#define INBOX_MAX_BYTES (64u * 1024 * 1024)
#define INBOX_OVER(h) ((h)->inbox_count >= INBOX_MAX_MSGS || (h)->inbox_bytes >= INBOX_MAX_BYTES)
/* Once a teardown has begun the engine reads on regardless (so that the
 * actor's stopped message gets through) and drops what overflows. */
#define INBOX_FULL(h) (INBOX_OVER(h) && !(h)->cancel_requested && !(h)->draining)
/* Slack of the teardown bound: 100 ms + 2 ms an actor (SCENARIOS.md). */
#define SLACK_NS(n) (100 * 1000000LL + 2 * 1000000LL * (int64_t)(n))

struct parked {
    const char *what;
    pid_t tid;
    int64_t since;
    struct parked *next;
};

struct pcall {
    uint64_t id;
    int done;
    int rc;
    struct tether_value ret;
    char *text; /* error text, or returned string */
    struct pcall *next;
};

struct inbox_msg {
    void *data;
    size_t len;
    struct inbox_msg *next;
};

struct tether_handle {
    tether_supervisor *sup;
    struct tether_handle *next; /* in sup->handles */
    uint64_t id;
    char *target;
    int user_ref; /* the program still holds it */

    int state;
    int64_t state_since;
    int64_t deadline; /* of the current phase; TETHER_NEVER if none */

    /* channel (parent end) */
    int fd;
    int fd_users;   /* program threads writing outside the lock */
    int aborted;    /* our end is shut down: no more reads, waiters fail */
    int abort_err;  /* what waiters get once aborted */
    int writer;     /* 0 free, 1 a program thread writes, 2 the engine flushes */
    uint8_t *pend;  /* engine's unflushed CANCEL bytes */
    size_t pend_len, pend_off;
    int cancel_frame_wanted;
    struct tether__reader rd;
    struct inbox_msg *inbox, **inbox_tail;
    size_t inbox_count, inbox_bytes; /* bounded: see INBOX_FULL */
    size_t inbox_dropped;            /* over the bound during teardown */
    int draining;                    /* reading what an ended actor left: no bound */
    int reap_pending; /* exit fd fired but reap() not done yet: poll reap on a timer */
    struct pcall *calls;
    uint64_t next_call;
    struct parked *parked;
    struct tether__hfd hfd; /* HFD hook: tether_handle_fd */

    /* backend */
    struct tether_child *child;

    /* what happened */
    int ready;
    int cancel_requested;
    int kill_requested;
    int hard_killed;
    int spawn_timed_out;
    int stopped; /* STOPPED received */
    int stopped_kind, stopped_code;
    char *stopped_text;
    int eof;
    int owner_aborted; /* tether_abort: the owner shut the channel */
    char *lost_reason;
    struct tether_outcome out;
    char *out_msg;
    int64_t t_spawn, t_ready, t_cancel, t_hard, t_end;
};

struct tether_supervisor {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC; broadcast at every change */
    int wake_fd;
    pthread_t engine;
    int engine_started;
    int stop;
    int closing;  /* close has begun: no new spawn */
    int spawning; /* backend spawn() calls in progress (made without the lock) */
    int closed;
    const struct tether_config *cfg;
    struct tether_timeouts to;
    uint64_t max_frame;
    struct tether__plugin *plugin;
    void *bstate;
    char *backend_name;
    struct tether__events *events;
    struct tether_handle *handles;
    unsigned n_handles; /* not yet freed */
    unsigned abandoned;
    /* the backend member the engine is inside, for the hang dump (read
     * without the lock when the lock cannot be had) */
    const char *volatile in_call;
    volatile int64_t in_call_since;
    int strategy;
    char *failure;
};

static uint64_t next_actor_id = 1; /* atomic: no lock to inherit held across fork */

static pid_t my_tid(void)
{
    return (pid_t)syscall(SYS_gettid);
}

/* Seconds to nanoseconds, clamped so that sums of a few stay far from overflow. */
static int64_t secs_ns(double s)
{
    if (!(s > 0))
        return 0;
    if (s > 1e9)
        return (int64_t)1e18;
    return (int64_t)(s * 1e9);
}

static void wake_engine(tether_supervisor *sup)
{
    uint64_t one = 1;
    ssize_t w = write(sup->wake_fd, &one, sizeof one);
    (void)w; /* an eventfd at its maximum is already readable */
}

/* A backend may fill thread_id from the actor's own thread (the thread
 * backend does: only that thread knows its gettid): read it atomically. */
#define CHILD_TID(child) __atomic_load_n(&(child)->thread_id, __ATOMIC_RELAXED)

static void event(tether_handle *h, const char *phase, const char *reason)
{
    tether_supervisor *sup = h->sup;
    if (!sup->events)
        return;
    tether__event(sup->events, h->id, sup->backend_name, h->child ? h->child->pid : 0,
                  h->child ? CHILD_TID(h->child) : 0, phase, reason, "\"state\":\"%s\"",
                  state_names[h->state]);
}

/* Bracket every backend call so a stuck backend shows in the hang dump. */
#define BACKEND_CALL(sup, name, expr)                                                            \
    do {                                                                                         \
        (sup)->in_call_since = tether_now_ns();                                                  \
        (sup)->in_call = (name);                                                                 \
        expr;                                                                                    \
        (sup)->in_call = NULL;                                                                   \
    } while (0)

static void set_state(tether_handle *h, int st, int64_t deadline)
{
    h->state = st;
    h->state_since = tether_now_ns();
    h->deadline = deadline;
    HFD_SYNC(h); /* HFD hook */
    pthread_cond_broadcast(&h->sup->cond);
}

static unsigned count_parked(tether_handle *h)
{
    unsigned n = 0;
    for (struct parked *p = h->parked; p; p = p->next)
        n++;
    return n;
}

static void park(tether_handle *h, struct parked *p, const char *what)
{
    p->what = what;
    p->tid = my_tid();
    p->since = tether_now_ns();
    p->next = h->parked;
    h->parked = p;
}

static void unpark(tether_handle *h, struct parked *p)
{
    for (struct parked **pp = &h->parked; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            return;
        }
}

/* Wait on the supervisor's condition until `deadline`. Returns ETIMEDOUT
 * once it has passed. Every program-side wait goes through here. */
static int cond_wait_until(tether_supervisor *sup, int64_t deadline)
{
    if (tether_now_ns() >= deadline)
        return ETIMEDOUT;
    struct timespec ts;
    tether__ns_to_timespec(deadline, &ts);
    return pthread_cond_timedwait(&sup->cond, &sup->lock, &ts);
}

static void close_fd_if_unused(tether_handle *h)
{
    if (h->fd >= 0 && h->aborted && h->fd_users == 0 && h->writer != 1) {
        close(h->fd);
        h->fd = -1;
    }
}

/* Shut the core's end of the channel: every waiter returns `err` now. */
static void abort_channel(tether_handle *h, int err, const char *why)
{
    if (h->aborted)
        return;
    h->aborted = 1;
    h->abort_err = err;
    if (h->fd >= 0)
        shutdown(h->fd, SHUT_RDWR);
    free(h->pend);
    h->pend = NULL;
    if (h->writer == 2)
        h->writer = 0;
    for (struct pcall *c = h->calls; c; c = c->next)
        if (!c->done) {
            c->done = 1;
            c->rc = err;
        }
    if (h->sup->events) {
        tether__event(h->sup->events, h->id, h->sup->backend_name, h->child ? h->child->pid : 0,
                      h->child ? CHILD_TID(h->child) : 0, "channels-aborted", why,
                      "\"waiters_released\":%u,\"error\":\"%s\"", count_parked(h),
                      tether_err_name(err));
    }
    close_fd_if_unused(h);
    pthread_cond_broadcast(&h->sup->cond);
}

/* ---- outbound CANCEL (engine side, never blocks) -------------------------- */

static void flush_pending(tether_handle *h)
{
    while (h->pend && h->pend_off < h->pend_len) {
        ssize_t w = send(h->fd, h->pend + h->pend_off, h->pend_len - h->pend_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            h->pend_off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return; /* engine polls POLLOUT */
        break;    /* peer gone: the read side will see it */
    }
    free(h->pend);
    h->pend = NULL;
    h->writer = 0;
    pthread_cond_broadcast(&h->sup->cond);
}

static void send_cancel_frame(tether_handle *h)
{
    h->cancel_frame_wanted = 1;
    if (h->aborted || h->fd < 0 || h->writer)
        return; /* a program thread is mid-frame: retried when it finishes */
    struct tether__frame f;
    if (tether__encode_cancel(&f))
        return;
    h->cancel_frame_wanted = 0;
    h->writer = 2;
    h->pend = f.buf;
    h->pend_len = f.len;
    h->pend_off = 0;
    flush_pending(h);
}

/* ---- transitions ----------------------------------------------------------- */

static void begin_hard(tether_handle *h, const char *why)
{
    tether_supervisor *sup = h->sup;
    if (h->state == ST_HARD || IS_FINAL(h))
        return;
    h->t_hard = tether_now_ns();
    h->hard_killed = 1;
    set_state(h, ST_HARD, h->t_hard + secs_ns(sup->to.hard_kill));
    event(h, "hard-kill", why);
    const struct tether_backend *vt = sup->plugin->vt;
    if (h->child) {
        BACKEND_CALL(sup, "hard_kill", vt->hard_kill(h->child));
        BACKEND_CALL(sup, "abort_channels", vt->abort_channels(h->child));
    }
    /* Defence in depth: whatever the backend did, our end goes now. */
    abort_channel(h, TETHER_EABORTED, why);
}

static void begin_soft(tether_handle *h)
{
    tether_supervisor *sup = h->sup;
    if (h->state != ST_SPAWNING && h->state != ST_RUNNING)
        return;
    h->t_cancel = tether_now_ns();
    event(h, "cancel-requested", NULL);
    if (sup->to.soft_cancel <= 0) {
        begin_hard(h, "soft_cancel is 0: hard kill at once");
        return;
    }
    set_state(h, ST_SOFT, h->t_cancel + secs_ns(sup->to.soft_cancel));
    send_cancel_frame(h);
    if (h->child)
        BACKEND_CALL(sup, "soft_cancel", sup->plugin->vt->soft_cancel(h->child));
    event(h, "soft-cancel-sent", NULL);
}

static void cancel_siblings(tether_supervisor *sup, tether_handle *failed)
{
    for (tether_handle *s = sup->handles; s; s = s->next)
        if (s != failed && !IS_FINAL(s) && !s->cancel_requested) {
            s->cancel_requested = 1;
            begin_soft(s);
        }
}

static void finish(tether_handle *h, int st, const struct tether_outcome *bo)
{
    tether_supervisor *sup = h->sup;
    h->t_end = tether_now_ns();
    struct tether_outcome *o = &h->out;
    memset(o, 0, sizeof *o);
    const char *msg = NULL;
    char lostbuf[TETHER_ERROR_MSG_MAX];
    if (st == ST_ABANDONED && h->stopped) {
        /* the actor said how it ended; only its thread or process did not
         * go away in time: keep its word, and count the leftover */
        o->kind = h->stopped_kind;
        o->code = h->stopped_code;
        snprintf(lostbuf, sizeof lostbuf, "%s%s(stopped, but its %s did not end within hard_kill: abandoned)",
                 h->stopped_text ? h->stopped_text : "", h->stopped_text ? " " : "",
                 h->child && h->child->pid ? "process" : "thread");
        msg = lostbuf;
    } else if (st == ST_ABANDONED) {
        o->kind = TETHER_OUTCOME_ABANDONED;
        msg = "did not stop within hard_kill; abandoned";
    } else if (h->lost_reason) {
        o->kind = TETHER_OUTCOME_LOST;
        if (bo) {
            o->signal = bo->signal;
            o->code = bo->code;
        }
        if (bo && bo->message)
            snprintf(lostbuf, sizeof lostbuf, "%s; %s", h->lost_reason, bo->message);
        else if (bo && bo->signal)
            snprintf(lostbuf, sizeof lostbuf, "%s; killed by signal %d", h->lost_reason,
                     bo->signal);
        else if (bo && bo->kind == TETHER_OUTCOME_EXITED)
            snprintf(lostbuf, sizeof lostbuf, "%s; exited with status %d", h->lost_reason,
                     bo->code);
        else
            snprintf(lostbuf, sizeof lostbuf, "%s", h->lost_reason);
        msg = lostbuf;
    } else if (h->stopped) {
        o->kind = h->stopped_kind;
        o->code = h->stopped_code;
        msg = h->stopped_text;
    } else if (bo && h->owner_aborted && !h->hard_killed && bo->kind == TETHER_OUTCOME_EXITED) {
        /* it saw end of stream and stopped by itself, as it should */
        o->kind = TETHER_OUTCOME_CANCELLED;
        msg = "stopped after its channel was closed";
    } else if (bo && h->hard_killed && bo->kind == TETHER_OUTCOME_KILLED) {
        o->kind = TETHER_OUTCOME_KILLED;
        o->signal = bo->signal;
        msg = bo->message;
    } else {
        o->kind = TETHER_OUTCOME_LOST;
        o->signal = bo ? bo->signal : 0;
        o->code = bo ? bo->code : 0;
        msg = bo && bo->message ? bo->message : "ended without a stopped message";
    }
    if (o->kind == TETHER_OUTCOME_EXITED && bo)
        o->signal = 0;
    free(h->out_msg);
    h->out_msg = msg ? strdup(msg) : NULL;
    o->message = h->out_msg;
    int64_t run_end = h->t_cancel ? h->t_cancel : (h->t_hard ? h->t_hard : h->t_end);
    o->run_ns = h->t_ready ? run_end - h->t_ready : 0;
    if (h->t_cancel && sup->to.soft_cancel > 0) /* 0: the phase was skipped */
        o->soft_cancel_ns = (h->t_hard ? h->t_hard : h->t_end) - h->t_cancel;
    if (h->t_hard)
        o->hard_kill_ns = h->t_end - h->t_hard;

    if (h->inbox_dropped && sup->events)
        tether__event(sup->events, h->id, sup->backend_name, 0, 0, "messages-dropped",
                      "inbox bound reached during teardown", "\"dropped\":%zu", h->inbox_dropped);
    int err = o->kind == TETHER_OUTCOME_CANCELLED ? TETHER_ECANCELLED
              : o->kind == TETHER_OUTCOME_LOST    ? TETHER_ELOST
              : o->kind == TETHER_OUTCOME_EXITED  ? TETHER_ECLOSED
                                                  : TETHER_EABORTED;
    abort_channel(h, err, "actor ended");
    if (h->child) {
        BACKEND_CALL(sup, "release", sup->plugin->vt->release(h->child));
        h->child = NULL;
    }
    if (st == ST_ABANDONED) {
        sup->abandoned++;
        tether__plugin_pin(sup->plugin);
    }
    set_state(h, st, TETHER_NEVER);
    if (sup->events)
        tether__event(sup->events, h->id, sup->backend_name, 0, 0,
                      st == ST_ABANDONED ? "abandoned" : "reaped", msg,
                      "\"outcome\":\"%s\",\"code\":%d,\"signal\":%d,\"soft_ms\":%.3f,\"hard_ms\":%.3f",
                      tether_outcome_name(o->kind), o->code, o->signal, o->soft_cancel_ns / 1e6,
                      o->hard_kill_ns / 1e6);
    if ((o->kind == TETHER_OUTCOME_FAILED || o->kind == TETHER_OUTCOME_LOST) &&
        !(o->kind == TETHER_OUTCOME_LOST && h->cancel_requested)) {
        if (!sup->failure) {
            char *text = NULL;
            if (asprintf(&text, "actor %llu (%s) %s: %s", (unsigned long long)h->id, h->target,
                         tether_outcome_name(o->kind), o->message ? o->message : "") >= 0)
                sup->failure = text;
        }
        if (sup->strategy == TETHER_ONE_FOR_ALL)
            cancel_siblings(sup, h);
    }
}

static void read_channel(tether_handle *h);
static void free_handle(tether_handle *h);

/* The actor has ended: whatever it wrote is in the socket already, a
 * finite amount (the socket buffer). Read it all -- its last messages and
 * its stopped message -- before the outcome is decided, even past the
 * inbox bound and even if the exit was noticed before the data. */
static void drain_channel(tether_handle *h)
{
    h->draining = 1; /* lifts the inbox bound for this read, drops nothing */
    for (int i = 0; i < 4096 && !h->aborted && h->fd >= 0; i++) {
        int before = h->eof;
        read_channel(h);
        struct pollfd p = {.fd = h->fd, .events = POLLIN};
        if (h->aborted || h->eof != before || poll(&p, 1, 0) <= 0)
            break;
    }
    h->draining = 0;
}

static void try_reap(tether_handle *h)
{
    if (!h->child || IS_FINAL(h))
        return;
    struct tether_outcome bo;
    memset(&bo, 0, sizeof bo);
    /* A deadline in the past: the backend only polls. */
    tether_supervisor *sup = h->sup;
    int rc;
    BACKEND_CALL(sup, "reap", rc = sup->plugin->vt->reap(h->child, 0, &bo));
    if (rc == 0) {
        drain_channel(h);
        finish(h, ST_REAPED, &bo);
    }
}

static void on_deadline(tether_handle *h)
{
    switch (h->state) {
    case ST_SPAWNING:
        h->spawn_timed_out = 1;
        begin_hard(h, "spawn deadline expired");
        break;
    case ST_SOFT: begin_hard(h, "soft_cancel deadline expired"); break;
    case ST_EXITING: begin_hard(h, "did not exit within hard_kill after stopping"); break;
    case ST_HARD:
        try_reap(h);
        if (!IS_FINAL(h)) {
            event(h, "deadline-expired", "hard_kill deadline expired");
            finish(h, ST_ABANDONED, NULL);
        }
        break;
    default: break;
    }
}

/* The actor will say nothing more: stopped message, end of stream, or a
 * protocol error. */
static void channel_done(tether_handle *h, int err, const char *why)
{
    abort_channel(h, err, why);
    if (h->state == ST_RUNNING || h->state == ST_SPAWNING)
        set_state(h, ST_EXITING, tether_now_ns() + secs_ns(h->sup->to.hard_kill));
}

/* ---- inbound frames ---------------------------------------------------------- */

static int on_frame(void *ctx, const uint8_t *body, size_t len)
{
    tether_handle *h = ctx;
    struct tether__msg m;
    char why[256];
    if (tether__msg_decode(body, len, &m, why, sizeof why)) {
        char buf[320];
        snprintf(buf, sizeof buf, "protocol error: %s", why);
        free(h->lost_reason);
        h->lost_reason = strdup(buf);
        return TETHER_EPROTO;
    }
    switch (m.kind) {
    case TETHER__MSG_READY:
        if (!h->ready) {
            h->ready = 1;
            h->t_ready = tether_now_ns();
            if (h->state == ST_SPAWNING)
                set_state(h, ST_RUNNING, TETHER_NEVER);
            event(h, "ready", NULL);
            pthread_cond_broadcast(&h->sup->cond);
        }
        break;
    case TETHER__MSG_RETURN:
    case TETHER__MSG_ERROR:
        for (struct pcall *c = h->calls; c; c = c->next)
            if (c->id == m.id && !c->done) {
                c->done = 1;
                if (m.kind == TETHER__MSG_RETURN) {
                    c->rc = 0;
                    c->ret = m.ret;
                    if (m.ret.type == 's' && m.ret.v.s)
                        c->text = strdup(m.ret.v.s);
                } else {
                    c->rc = m.code < 0 ? m.code : TETHER_EREMOTE;
                    c->text = m.text ? strdup(m.text) : NULL;
                }
                pthread_cond_broadcast(&h->sup->cond);
                break;
            }
        /* a reply nobody waits for any more is dropped */
        break;
    case TETHER__MSG_MESSAGE: {
        if (INBOX_OVER(h) && h->cancel_requested && !h->draining) {
            h->inbox_dropped++; /* tearing down: bounded memory wins */
            break;
        }
        struct inbox_msg *q = malloc(sizeof *q);
        if (q && (q->data = malloc(m.len ? m.len : 1))) {
            memcpy(q->data, m.data, m.len);
            q->len = m.len;
            q->next = NULL;
            *h->inbox_tail = q;
            h->inbox_tail = &q->next;
            h->inbox_count++;
            h->inbox_bytes += m.len;
            HFD_SYNC(h); /* HFD hook */
            pthread_cond_broadcast(&h->sup->cond);
        } else {
            free(q);
        }
        break;
    }
    case TETHER__MSG_STOPPED:
        h->stopped = 1;
        h->stopped_kind = m.outcome;
        h->stopped_code = m.code;
        free(h->stopped_text);
        h->stopped_text = m.text ? strdup(m.text) : NULL;
        event(h, "stopped", tether_outcome_name(m.outcome));
        tether__msg_free(&m);
        return 1; /* nothing may follow */
    default: break; /* CALL/CANCEL are not for the supervisor */
    }
    tether__msg_free(&m);
    return 0;
}

static void read_channel(tether_handle *h)
{
    uint8_t buf[65536];
    /* Bounded: at most 16 reads a round, so one chatty actor cannot starve
     * the others' deadlines. */
    for (int i = 0; i < 16 && !h->aborted && !INBOX_FULL(h); i++) {
        ssize_t r = recv(h->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (r <= 0) {
            h->eof = 1;
            if (h->stopped)
                channel_done(h, TETHER_ECLOSED, "channel closed after stop");
            else {
                if (!h->lost_reason && !h->hard_killed && !h->cancel_requested)
                    h->lost_reason = strdup("channel closed without a stopped message");
                channel_done(h, TETHER_ELOST, "channel closed without a stopped message");
            }
            return;
        }
        char why[256];
        int rc = tether__reader_push(&h->rd, buf, (size_t)r, on_frame, h, why, sizeof why);
        if (rc == 1) {
            int k = h->stopped_kind;
            channel_done(h, k == TETHER_OUTCOME_CANCELLED ? TETHER_ECANCELLED : TETHER_ECLOSED,
                         "actor stopped");
            return;
        }
        if (rc) {
            if (!h->lost_reason) {
                char b[320];
                snprintf(b, sizeof b, "protocol error: %s", why);
                h->lost_reason = strdup(b);
            }
            abort_channel(h, TETHER_EPROTO, h->lost_reason);
            begin_hard(h, h->lost_reason);
            return;
        }
    }
}

/* ---- the engine thread -------------------------------------------------------- */

static void engine_round(tether_supervisor *sup, struct pollfd *pfd, tether_handle **who,
                         int *kind, nfds_t n)
{
    for (nfds_t i = 1; i < n; i++) {
        tether_handle *h = who[i];
        if (!pfd[i].revents || IS_FINAL(h))
            continue;
        if (kind[i] == 0 && !h->aborted && h->fd >= 0) {
            if (pfd[i].revents & POLLOUT && h->writer == 2)
                flush_pending(h);
            if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
                read_channel(h);
        } else if (kind[i] == 1) {
            try_reap(h);
            /* the exit fd stays readable: poll reap on the timer instead,
             * or the engine would spin */
            if (!IS_FINAL(h))
                h->reap_pending = 1;
        }
    }
    int64_t now = tether_now_ns();
    for (tether_handle *h = sup->handles; h; h = h->next) {
        if (IS_FINAL(h))
            continue;
        if (h->kill_requested && h->state != ST_HARD) {
            begin_hard(h, "kill requested");
            continue;
        }
        if (h->cancel_requested && (h->state == ST_RUNNING || h->state == ST_SPAWNING))
            begin_soft(h);
        if (h->cancel_frame_wanted && !h->writer && !h->aborted)
            send_cancel_frame(h);
        /* backends with no exit fd are polled every round */
        if (h->child && ((h->child->exit_fd < 0 && h->state != ST_SPAWNING &&
                          h->state != ST_RUNNING) ||
                         h->reap_pending))
            try_reap(h);
        if (!IS_FINAL(h) && now >= h->deadline)
            on_deadline(h);
    }
}

static void *engine_main(void *arg)
{
    tether_supervisor *sup = arg;
    struct pollfd *pfd = NULL;
    tether_handle **who = NULL;
    int *kind = NULL;
    size_t cap = 0;
    pthread_mutex_lock(&sup->lock);
    while (!sup->stop) {
        /* A long-lived supervisor frees what nobody holds any more: ended,
         * released, and no thread inside it. (Only here, where who[] is
         * about to be rebuilt, can the engine let go of a handle.) */
        for (tether_handle **pp = &sup->handles; *pp;) {
            tether_handle *h = *pp;
            if (IS_FINAL(h) && !h->user_ref && !h->fd_users && !h->writer && !h->parked) {
                *pp = h->next;
                if (h->fd >= 0)
                    close(h->fd);
                free_handle(h);
                sup->n_handles--;
            } else {
                pp = &h->next;
            }
        }
        size_t need = 1 + 2 * (size_t)sup->n_handles;
        if (need > cap) {
            cap = need * 2;
            struct pollfd *np = realloc(pfd, cap * sizeof *pfd);
            tether_handle **nw = realloc(who, cap * sizeof *who);
            int *nk = realloc(kind, cap * sizeof *kind);
            if (np)
                pfd = np;
            if (nw)
                who = nw;
            if (nk)
                kind = nk;
            if (!np || !nw || !nk) {
                cap = 0;
                pthread_mutex_unlock(&sup->lock);
                poll(NULL, 0, 10); /* out of memory: retry shortly */
                pthread_mutex_lock(&sup->lock);
                continue;
            }
        }
        nfds_t n = 0;
        pfd[n++] = (struct pollfd){.fd = sup->wake_fd, .events = POLLIN};
        int64_t next = tether_now_ns() + TETHER_NS_PER_SEC; /* at least once a second */
        int fast_poll = 0;
        for (tether_handle *h = sup->handles; h; h = h->next) {
            if (IS_FINAL(h))
                continue;
            if (h->fd >= 0 && !h->aborted) {
                who[n] = h;
                kind[n] = 0;
                short ev = (short)((INBOX_FULL(h) ? 0 : POLLIN) | (h->writer == 2 ? POLLOUT : 0));
                /* with no events requested, a hang-up still wakes poll: it
                 * is read (and ends) once the inbox drains */
                pfd[n++] = (struct pollfd){.fd = INBOX_FULL(h) && h->writer != 2 ? -1 : h->fd,
                                           .events = ev};
            }
            if (h->child && h->child->exit_fd >= 0 && !h->reap_pending) {
                who[n] = h;
                kind[n] = 1;
                pfd[n++] = (struct pollfd){.fd = h->child->exit_fd, .events = POLLIN};
            } else if (h->child && (h->reap_pending ||
                                    (h->state != ST_SPAWNING && h->state != ST_RUNNING))) {
                fast_poll = 1;
            }
            if (h->deadline < next)
                next = h->deadline;
        }
        pthread_mutex_unlock(&sup->lock);
        int ms = tether__poll_ms(next);
        if (fast_poll && ms > 2)
            ms = 2;
        /* Bounded: at most one second (see `next`), woken early by wake_fd. */
        int r = poll(pfd, n, ms);
        pthread_mutex_lock(&sup->lock);
        if (r < 0) {
            /* EINTR, or ENOMEM: no events, but the deadlines still run */
            for (nfds_t i = 0; i < n; i++)
                pfd[i].revents = 0;
        }
        if (pfd[0].revents) {
            uint64_t v;
            ssize_t rd = read(sup->wake_fd, &v, sizeof v);
            (void)rd;
        }
        /* Handles are only freed by close after this thread is joined, so
         * who[] stays valid across the unlocked poll. */
        engine_round(sup, pfd, who, kind, n);
    }
    pthread_mutex_unlock(&sup->lock);
    free(pfd);
    free(who);
    free(kind);
    return NULL;
}

/* ---- opening and closing ---------------------------------------------------------- */

static void host_log(const char *backend, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "tether[%s]: ", backend ? backend : "?");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static const struct tether_backend_host host = {
    .abi = TETHER_BACKEND_ABI,
    .size = sizeof(struct tether_backend_host),
    .run_c_actor = tether__run_c_actor,
    .log = host_log,
    .actor_attach = tether__actor_attach,
    .actor_ready = tether__actor_ready,
    .actor_checkpoint = tether__actor_checkpoint,
    .actor_cancelled = tether__actor_cancelled,
    .actor_sleep = tether__actor_sleep,
    .actor_send_msg = tether__actor_send_msg,
    .actor_recv_msg = tether__actor_recv_msg,
    .actor_next_call = tether__actor_next_call,
    .actor_reply = tether__actor_reply,
    .actor_reply_error = tether__actor_reply_error,
    .actor_fd = tether__actor_fd,
    .actor_finish = tether__actor_finish,
};

static int open_with(const struct tether_config *cfg, const char *path, const char *name,
                     const struct tether_timeouts *to, const struct tether_option *opts,
                     size_t n_opts, tether_supervisor **out, struct tether_error *err)
{
    *out = NULL;
    tether_supervisor *sup = calloc(1, sizeof *sup);
    if (!sup)
        return tether_error_set(err, TETHER_ENOMEM, "out of memory");
    sup->wake_fd = -1;
    sup->cfg = cfg;
    sup->to = *to;
    sup->max_frame = cfg->max_frame ? cfg->max_frame : TETHER__DEFAULT_MAX_FRAME;
    pthread_mutex_init(&sup->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&sup->cond, &ca);
    pthread_condattr_destroy(&ca);

    int rc = tether__plugin_load(path, &sup->plugin, err);
    if (rc)
        goto fail;
    const struct tether_backend *vt = sup->plugin->vt;
    if (name && strcmp(name, vt->name) != 0) {
        rc = tether_error_set(err, TETHER_ELOAD,
                              "%s: plugin calls itself '%s' but is configured as '%s'", path,
                              vt->name, name);
        goto fail;
    }
    sup->backend_name = strdup(vt->name);
    if (cfg->events) {
        sup->events = tether__events_open(cfg->events, err);
        if (!sup->events) {
            rc = err ? err->code : TETHER_ESYS;
            goto fail;
        }
    }
    struct tether_options o = {
        .items = opts,
        .count = n_opts,
        .spawn_timeout = to->spawn,
        .soft_cancel_timeout = to->soft_cancel,
        .hard_kill_timeout = to->hard_kill,
        .config_dir = cfg->dir,
    };
    struct tether_error berr = {0, ""};
    rc = vt->open(&host, &o, &sup->bstate, &berr);
    if (rc) {
        rc = tether_error_set(err, rc, "backend %s: %s", vt->name,
                              berr.msg[0] ? berr.msg : tether_strerror(rc));
        goto fail;
    }
    sup->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (sup->wake_fd < 0 || pthread_create(&sup->engine, NULL, engine_main, sup) != 0) {
        vt->close(sup->bstate);
        rc = tether_error_set(err, TETHER_ESYS, "cannot start the supervisor: %s",
                              strerror(errno));
        goto fail;
    }
    sup->engine_started = 1;
    *out = sup;
    return 0;
fail:
    if (sup->wake_fd >= 0)
        close(sup->wake_fd);
    tether__events_close(sup->events);
    tether__plugin_unref(sup->plugin);
    free(sup->backend_name);
    pthread_cond_destroy(&sup->cond);
    pthread_mutex_destroy(&sup->lock);
    free(sup);
    return rc;
}

int tether_supervisor_open(const struct tether_config *cfg, const char *backend,
                           tether_supervisor **out, struct tether_error *err)
{
    if (!cfg || !out)
        return tether_error_set(err, TETHER_EINVAL, "tether_supervisor_open: NULL argument");
    const char *name = backend ? backend : cfg->backend;
    const struct tether_backend_config *bc = name ? tether_config_find(cfg, name) : NULL;
    if (!bc)
        return tether_error_set(err, TETHER_ECONFIG, "%s: no backend named '%s'", cfg->path,
                                name ? name : "(none)");
    return open_with(cfg, bc->path, bc->name, &bc->timeouts, bc->options, bc->n_options, out,
                     err);
}

int tether_supervisor_open_plugin(const struct tether_config *cfg, const char *plugin_path,
                                  tether_supervisor **out, struct tether_error *err)
{
    if (!cfg || !out || !plugin_path)
        return tether_error_set(err, TETHER_EINVAL, "tether_supervisor_open_plugin: NULL argument");
    return open_with(cfg, plugin_path, NULL, &cfg->timeouts, NULL, 0, out, err);
}

static void free_handle(tether_handle *h)
{
    while (h->inbox) {
        struct inbox_msg *q = h->inbox;
        h->inbox = q->next;
        free(q->data);
        free(q);
    }
    tether__reader_reset(&h->rd);
    tether__hfd_close(&h->hfd); /* HFD hook */
    free(h->pend);
    free(h->target);
    free(h->stopped_text);
    free(h->lost_reason);
    free(h->out_msg);
    free(h);
}

static void free_supervisor(tether_supervisor *sup)
{
    pthread_cond_destroy(&sup->cond);
    pthread_mutex_destroy(&sup->lock);
    free(sup->failure);
    free(sup->backend_name);
    free(sup);
}

static int all_final(tether_supervisor *sup)
{
    for (tether_handle *h = sup->handles; h; h = h->next)
        if (!IS_FINAL(h))
            return 0;
    return 1;
}

/* Backend states that cannot be closed (abandoned actors may still use
 * them) are kept here for the life of the process: deliberately alive,
 * not leaked. */
static struct kept_state {
    void *state;
    struct kept_state *next;
} *kept_states;
static pthread_mutex_t kept_lock = PTHREAD_MUTEX_INITIALIZER;

static void keep_backend_state(void *state)
{
    struct kept_state *k = malloc(sizeof *k);
    if (!k)
        return;
    pthread_mutex_lock(&kept_lock);
    k->state = state;
    k->next = kept_states;
    kept_states = k;
    pthread_mutex_unlock(&kept_lock);
}

int tether_supervisor_close(tether_supervisor *sup, struct tether_close_report *report)
{
    if (!sup)
        return TETHER_EINVAL;
    int64_t t0 = tether_now_ns();
    pthread_mutex_lock(&sup->lock);
    sup->closing = 1;
    unsigned live = 0;
    for (tether_handle *h = sup->handles; h; h = h->next)
        if (!IS_FINAL(h)) {
            live++;
            h->cancel_requested = 1;
        }
    wake_engine(sup);
    /* The engine finishes every actor within spawn/soft + hard of now; the
     * wait below is the same bound plus slack, so a misbehaving backend
     * cannot hold close. */
    double first = sup->to.soft_cancel > sup->to.spawn ? sup->to.soft_cancel : sup->to.spawn;
    int64_t deadline = t0 + secs_ns(first) + secs_ns(sup->to.hard_kill) + SLACK_NS(live);
    while ((!all_final(sup) || sup->spawning) && cond_wait_until(sup, deadline) != ETIMEDOUT)
        ;
    for (tether_handle *h = sup->handles; h; h = h->next)
        if (!IS_FINAL(h)) {
            begin_hard(h, "supervisor close: deadline expired"); /* never leave one unkilled */
            try_reap(h);
            if (!IS_FINAL(h))
                finish(h, ST_ABANDONED, NULL);
        }
    /* a backend spawn() that never returned: its state cannot be closed */
    int stuck_spawn = sup->spawning > 0;
    sup->stop = 1;
    wake_engine(sup);
    pthread_mutex_unlock(&sup->lock);
    /* Bounded: the engine checks `stop` after every poll, and its poll
     * returns at once on wake_fd; nothing it calls blocks (the ABI forbids
     * it, and reap is only ever called with a past deadline). */
    pthread_join(sup->engine, NULL);

    pthread_mutex_lock(&sup->lock);
    if (report) {
        report->actors = live;
        report->abandoned = sup->abandoned;
        report->elapsed_ns = tether_now_ns() - t0;
    }
    if (sup->abandoned == 0 && !stuck_spawn) {
        sup->plugin->vt->close(sup->bstate);
    } else {
        tether__plugin_pin(sup->plugin);
        keep_backend_state(sup->bstate);
    }
    /* else: abandoned actors may still touch the backend's state; it is
     * left alive (and the plugin pinned) rather than freed under them. */
    tether__plugin_unref(sup->plugin);
    tether__events_close(sup->events);
    sup->events = NULL;
    close(sup->wake_fd);
    sup->wake_fd = -1;
    sup->closed = 1;
    tether_handle **pp = &sup->handles;
    while (*pp) {
        tether_handle *h = *pp;
        if (h->fd >= 0 && h->fd_users == 0) {
            close(h->fd);
            h->fd = -1;
        }
        if (!h->user_ref) {
            *pp = h->next;
            free_handle(h);
            sup->n_handles--;
        } else {
            pp = &h->next;
        }
    }
    int last = sup->n_handles == 0;
    pthread_mutex_unlock(&sup->lock);
    if (last)
        free_supervisor(sup);
    return 0;
}

/* ---- spawning ---------------------------------------------------------------- */

int tether_spawn(tether_supervisor *sup, const char *target, unsigned flags, tether_handle **out,
                 struct tether_error *err)
{
    if (out)
        *out = NULL;
    if (!sup || !target || !out)
        return tether_error_set(err, TETHER_EINVAL, "tether_spawn: NULL argument");
    if (!strchr(target, ':'))
        return tether_error_set(err, TETHER_EINVAL,
                                "target '%s' is not of the form path/module.so:function", target);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return tether_error_set(err, TETHER_ESYS, "socketpair: %s", strerror(errno));
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    tether_handle *h = calloc(1, sizeof *h);
    if (!h || !(h->target = strdup(target))) {
        free(h);
        close(sv[0]);
        close(sv[1]);
        return tether_error_set(err, TETHER_ENOMEM, "out of memory");
    }
    h->id = __atomic_fetch_add(&next_actor_id, 1, __ATOMIC_RELAXED);
    h->sup = sup;
    h->user_ref = 1;
    h->fd = sv[0];
    h->inbox_tail = &h->inbox;
    tether__hfd_init(&h->hfd); /* HFD hook */
    tether__reader_init(&h->rd, sup->max_frame);
    h->t_spawn = tether_now_ns();
    h->state = ST_SPAWNING;
    h->state_since = h->t_spawn;
    h->deadline = h->t_spawn + secs_ns(sup->to.spawn);

    struct tether_spawn_spec spec = {
        .target = target,
        .channel_fd = sv[1],
        .actor_id = h->id,
        .spawn_deadline_ns = h->deadline,
    };
    struct tether_error berr = {0, ""};
    pthread_mutex_lock(&sup->lock);
    if (sup->closing || sup->closed || sup->stop) {
        pthread_mutex_unlock(&sup->lock);
        close(sv[1]);
        close(sv[0]);
        free_handle(h);
        return tether_error_set(err, TETHER_ESTATE, "supervisor is closing");
    }
    sup->spawning++;
    pthread_mutex_unlock(&sup->lock);
    /* Without the supervisor's lock: a backend's spawn may take a moment (a
     * fork of a large process), and nothing else must wait for it. It is
     * bounded by the spawn deadline by contract. */
    int rc;
    BACKEND_CALL(sup, "spawn", rc = sup->plugin->vt->spawn(sup->bstate, &spec, &h->child, &berr));
    pthread_mutex_lock(&sup->lock);
    sup->spawning--;
    pthread_cond_broadcast(&sup->cond);
    if (rc) {
        pthread_mutex_unlock(&sup->lock);
        close(sv[0]);
        free_handle(h);
        return tether_error_set(err, rc == TETHER_ENOTSUP ? rc : TETHER_ESPAWN, "%s: %s: %s",
                                target, sup->backend_name,
                                berr.msg[0] ? berr.msg : tether_strerror(rc));
    }
    if (sup->closing)
        h->cancel_requested = 1; /* close began meanwhile: tear it down too */
    h->next = sup->handles;
    sup->handles = h;
    sup->n_handles++;
    event(h, "spawned", target);
    wake_engine(sup);
    pthread_mutex_unlock(&sup->lock);
    *out = h;
    if (flags & TETHER_SPAWN_NOWAIT)
        return 0;
    /* spawn deadline, then a teardown if it fails: B + S + H + slack */
    int64_t deadline = spec.spawn_deadline_ns + secs_ns(sup->to.hard_kill) +
                       secs_ns(sup->to.soft_cancel) + SLACK_NS(1);
    return tether_wait_ready(h, deadline, err);
}

int tether_wait_ready(tether_handle *h, int64_t deadline_ns, struct tether_error *err)
{
    tether_supervisor *sup = h->sup;
    pthread_mutex_lock(&sup->lock);
    struct parked p;
    park(h, &p, "wait-ready");
    int timed_out = 0;
    while (!h->ready && !IS_FINAL(h))
        if (cond_wait_until(sup, deadline_ns) == ETIMEDOUT) {
            timed_out = 1;
            break;
        }
    unpark(h, &p);
    int rc = 0;
    if (h->ready)
        rc = 0;
    else if (timed_out)
        rc = tether_error_set(err, TETHER_ETIMEDOUT, "%s: not ready by the caller's deadline",
                              h->target);
    else if (h->cancel_requested && !(h->stopped && h->stopped_kind == TETHER_OUTCOME_FAILED))
        rc = tether_error_set(err, TETHER_ECANCELLED, "%s: cancelled while spawning", h->target);
    else if (h->spawn_timed_out)
        rc = tether_error_set(err, TETHER_ETIMEDOUT,
                              "%s: not ready within the spawn timeout (%.3gs); actor %s",
                              h->target, sup->to.spawn, tether_outcome_name(h->out.kind));
    else
        rc = tether_error_set(err, TETHER_ESPAWN, "%s: died while starting (%s%s%s)", h->target,
                              tether_outcome_name(h->out.kind), h->out.message ? ": " : "",
                              h->out.message ? h->out.message : "");
    pthread_mutex_unlock(&sup->lock);
    return rc;
}

/* ---- requests ------------------------------------------------------------------- */

int tether_cancel(tether_handle *h)
{
    if (!h)
        return TETHER_EINVAL;
    tether_supervisor *sup = h->sup;
    pthread_mutex_lock(&sup->lock);
    if (!IS_FINAL(h) && !h->cancel_requested && !sup->closed) {
        h->cancel_requested = 1;
        /* Start the soft phase here (under the lock, as the engine would:
         * every step of it is non-blocking) and save the engine a hop; the
         * engine is woken only to take up the new deadline. */
        begin_soft(h);
        wake_engine(sup);
    }
    pthread_mutex_unlock(&sup->lock);
    return 0;
}

int tether_kill(tether_handle *h)
{
    if (!h)
        return TETHER_EINVAL;
    tether_supervisor *sup = h->sup;
    pthread_mutex_lock(&sup->lock);
    if (!IS_FINAL(h) && !sup->closed) {
        h->cancel_requested = 1;
        h->kill_requested = 1;
        wake_engine(sup);
    }
    pthread_mutex_unlock(&sup->lock);
    return 0;
}

int tether_abort(tether_handle *h)
{
    if (!h)
        return TETHER_EINVAL;
    tether_supervisor *sup = h->sup;
    pthread_mutex_lock(&sup->lock);
    if (!IS_FINAL(h)) {
        h->owner_aborted = 1;
        abort_channel(h, TETHER_EABORTED, "aborted by the supervisor's owner");
        /* an actor that cannot be told any more is torn down under the
         * same bounds as a cancelled one */
        h->cancel_requested = 1;
        if (!sup->closed)
            wake_engine(sup);
    }
    pthread_mutex_unlock(&sup->lock);
    return 0;
}

void tether_supervisor_cancel_all(tether_supervisor *sup)
{
    pthread_mutex_lock(&sup->lock);
    for (tether_handle *h = sup->handles; h; h = h->next)
        if (!IS_FINAL(h))
            h->cancel_requested = 1;
    if (!sup->closed)
        wake_engine(sup);
    pthread_mutex_unlock(&sup->lock);
}

void tether_supervisor_kill_all(tether_supervisor *sup)
{
    pthread_mutex_lock(&sup->lock);
    for (tether_handle *h = sup->handles; h; h = h->next)
        if (!IS_FINAL(h))
            h->cancel_requested = h->kill_requested = 1;
    if (!sup->closed)
        wake_engine(sup);
    pthread_mutex_unlock(&sup->lock);
}

/* ---- waiting ---------------------------------------------------------------------- */

int tether_wait(tether_handle *h, int64_t deadline_ns, struct tether_outcome *out)
{
    if (!h)
        return TETHER_EINVAL;
    tether_supervisor *sup = h->sup;
    pthread_mutex_lock(&sup->lock);
    struct parked p;
    park(h, &p, "wait-outcome");
    int rc = 0;
    while (!IS_FINAL(h))
        if (cond_wait_until(sup, deadline_ns) == ETIMEDOUT) {
            rc = TETHER_ETIMEDOUT;
            break;
        }
    unpark(h, &p);
    if (rc == 0 && out)
        *out = h->out;
    pthread_mutex_unlock(&sup->lock);
    return rc;
}

/* Error a waiter gets on a torn-down channel. */
static int dead_err(tether_handle *h)
{
    return h->abort_err ? h->abort_err : TETHER_EABORTED;
}

/* Write one whole frame from a program thread. Only one writer at a time;
 * waiting for the turn and for room in the socket are both bounded by the
 * caller's deadline and cut short by an abort (shutdown makes send fail). */
static int chan_write(tether_handle *h, struct tether__frame *f, int64_t deadline, const char *what)
{
    tether_supervisor *sup = h->sup;
    pthread_mutex_lock(&sup->lock);
    struct parked p;
    park(h, &p, what);
    int rc = 0;
    while (!h->aborted && h->writer)
        if (cond_wait_until(sup, deadline) == ETIMEDOUT) {
            rc = TETHER_ETIMEDOUT;
            break;
        }
    if (!rc && h->aborted)
        rc = dead_err(h);
    if (rc) {
        unpark(h, &p);
        pthread_mutex_unlock(&sup->lock);
        return rc;
    }
    h->writer = 1;
    h->fd_users++;
    int fd = h->fd;
    pthread_mutex_unlock(&sup->lock);

    size_t off = 0;
    while (off < f->len) {
        ssize_t w = send(fd, f->buf + off, f->len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int ms = tether__poll_ms(deadline);
            if (ms == 0) {
                rc = TETHER_ETIMEDOUT;
                break;
            }
            struct pollfd pf = {.fd = fd, .events = POLLOUT};
            /* bounded by the deadline; shutdown() of this end wakes it */
            poll(&pf, 1, ms);
            continue;
        }
        rc = TETHER_EABORTED;
        break;
    }

    pthread_mutex_lock(&sup->lock);
    h->writer = 0;
    h->fd_users--;
    if (rc && h->aborted)
        rc = dead_err(h);
    else if (rc && off > 0) {
        /* half a frame went out: the stream can no longer be parsed */
        abort_channel(h, TETHER_EABORTED, "a send timed out mid-frame");
        h->kill_requested = 1;
        wake_engine(sup);
    }
    if (h->cancel_frame_wanted)
        wake_engine(sup);
    close_fd_if_unused(h);
    unpark(h, &p);
    pthread_cond_broadcast(&sup->cond);
    pthread_mutex_unlock(&sup->lock);
    return rc;
}

int tether_send(tether_handle *h, const void *buf, size_t len, int64_t deadline_ns)
{
    if (!h || (!buf && len))
        return TETHER_EINVAL;
    struct tether__frame f;
    if (tether__encode_message(&f, buf, len))
        return TETHER_ENOMEM;
    int rc = chan_write(h, &f, deadline_ns, "send");
    tether__frame_free(&f);
    return rc;
}

int tether_recv(tether_handle *h, void **buf, size_t *len, int64_t deadline_ns)
{
    if (!h || !buf || !len)
        return TETHER_EINVAL;
    tether_supervisor *sup = h->sup;
    pthread_mutex_lock(&sup->lock);
    struct parked p;
    park(h, &p, "recv");
    int rc = 0;
    while (!h->inbox && !h->aborted)
        if (cond_wait_until(sup, deadline_ns) == ETIMEDOUT) {
            rc = TETHER_ETIMEDOUT;
            break;
        }
    unpark(h, &p);
    if (h->inbox) {
        /* messages that arrived before the end are still delivered */
        struct inbox_msg *q = h->inbox;
        int was_full = INBOX_FULL(h);
        h->inbox = q->next;
        if (!h->inbox)
            h->inbox_tail = &h->inbox;
        h->inbox_count--;
        h->inbox_bytes -= q->len;
        if (was_full && !INBOX_FULL(h))
            wake_engine(sup); /* read that channel again */
        *buf = q->data;
        *len = q->len;
        free(q);
        HFD_SYNC(h); /* HFD hook */
        rc = 0;
    } else if (!rc) {
        rc = dead_err(h);
    }
    pthread_mutex_unlock(&sup->lock);
    return rc;
}

int tether_call(tether_handle *h, const char *func, const char *sig,
                const struct tether_value *args, size_t nargs, struct tether_value *ret,
                int64_t deadline_ns, struct tether_error *err)
{
    if (!h || !func || !sig || (nargs && !args))
        return tether_error_set(err, TETHER_EINVAL, "tether_call: NULL argument");
    size_t want;
    char rtype;
    char why[256];
    if (tether__sig_parse(sig, &want, &rtype, why, sizeof why))
        return tether_error_set(err, TETHER_EBADCALL, "%s", why);
    if (want != nargs)
        return tether_error_set(err, TETHER_EBADCALL,
                                "wrong argument count: %zu given, signature '%s' takes %zu", nargs,
                                sig, want);
    struct tether_value typed[TETHER__MAX_ARGS];
    for (size_t i = 0; i < nargs; i++) {
        if (args[i].type != sig[i])
            return tether_error_set(err, TETHER_EBADCALL,
                                    "argument %zu is typed '%c' but signature '%s' wants '%c'",
                                    i + 1, args[i].type, sig, sig[i]);
        typed[i] = args[i];
    }
    tether_supervisor *sup = h->sup;
    struct pcall c;
    memset(&c, 0, sizeof c);
    pthread_mutex_lock(&sup->lock);
    if (h->aborted) {
        int rc = dead_err(h);
        pthread_mutex_unlock(&sup->lock);
        return tether_error_set(err, rc, "%s: %s", h->target, tether_strerror(rc));
    }
    c.id = ++h->next_call;
    c.next = h->calls;
    h->calls = &c;
    pthread_mutex_unlock(&sup->lock);

    struct tether__frame f;
    int rc = tether__encode_call(&f, c.id, func, sig, typed, nargs) ? TETHER_ENOMEM : 0;
    if (!rc) {
        rc = chan_write(h, &f, deadline_ns, "call-send");
        tether__frame_free(&f);
    }
    pthread_mutex_lock(&sup->lock);
    if (!rc) {
        struct parked p;
        park(h, &p, "call");
        while (!c.done)
            if (cond_wait_until(sup, deadline_ns) == ETIMEDOUT) {
                rc = TETHER_ETIMEDOUT;
                break;
            }
        unpark(h, &p);
        if (!rc)
            rc = c.rc;
    }
    for (struct pcall **pp = &h->calls; *pp; pp = &(*pp)->next)
        if (*pp == &c) {
            *pp = c.next;
            break;
        }
    pthread_mutex_unlock(&sup->lock);
    if (rc == 0) {
        if (ret) {
            *ret = c.ret;
            if (c.ret.type == 's')
                ret->v.s = c.text;
            else
                free(c.text);
        } else {
            free(c.text);
        }
        return 0;
    }
    if (rc == TETHER_ETIMEDOUT)
        tether_error_set(err, rc, "%s: call %s timed out", h->target, func);
    else if (c.text)
        tether_error_set(err, rc == TETHER_EREMOTE ? TETHER_EBADCALL : rc, "%s", c.text);
    else
        tether_error_set(err, rc, "%s: call %s: %s", h->target, func, tether_strerror(rc));
    free(c.text);
    return rc == TETHER_EREMOTE ? TETHER_EBADCALL : rc;
}

/* ---- queries ------------------------------------------------------------------------ */

uint64_t tether_handle_id(tether_handle *h)
{
    return h->id;
}

int64_t tether_handle_pid(tether_handle *h)
{
    pthread_mutex_lock(&h->sup->lock);
    int64_t pid = h->child ? h->child->pid : 0;
    pthread_mutex_unlock(&h->sup->lock);
    return pid;
}

/* HFD hook: the public entry; the mechanism is in handle_fd.c. */
int tether_handle_fd(tether_handle *h)
{
    if (!h)
        return TETHER_EINVAL;
    pthread_mutex_lock(&h->sup->lock);
    int fd = tether__hfd_get(&h->hfd, h->inbox != NULL || IS_FINAL(h));
    pthread_mutex_unlock(&h->sup->lock);
    return fd;
}

const char *tether_handle_state(tether_handle *h)
{
    pthread_mutex_lock(&h->sup->lock);
    const char *s = state_names[h->state];
    pthread_mutex_unlock(&h->sup->lock);
    return s;
}

void tether_handle_release(tether_handle *h)
{
    if (!h)
        return;
    tether_supervisor *sup = h->sup;
    pthread_mutex_lock(&sup->lock);
    h->user_ref = 0;
    int free_sup = 0;
    if (sup->closed) {
        for (tether_handle **pp = &sup->handles; *pp; pp = &(*pp)->next)
            if (*pp == h) {
                *pp = h->next;
                break;
            }
        free_handle(h);
        free_sup = --sup->n_handles == 0;
    }
    else if (!sup->stop)
        wake_engine(sup); /* the engine frees it once it has ended */
    pthread_mutex_unlock(&sup->lock);
    if (free_sup)
        free_supervisor(sup);
}

unsigned tether_supervisor_abandoned(tether_supervisor *sup)
{
    pthread_mutex_lock(&sup->lock);
    unsigned n = sup->abandoned;
    pthread_mutex_unlock(&sup->lock);
    return n;
}

const char *tether_supervisor_failure(tether_supervisor *sup)
{
    pthread_mutex_lock(&sup->lock);
    const char *f = sup->failure;
    pthread_mutex_unlock(&sup->lock);
    return f;
}

const char *tether_supervisor_backend(tether_supervisor *sup)
{
    return sup->backend_name;
}

const struct tether_timeouts *tether_supervisor_timeouts(tether_supervisor *sup)
{
    return &sup->to;
}

void tether_supervisor_set_strategy(tether_supervisor *sup, int strategy)
{
    pthread_mutex_lock(&sup->lock);
    sup->strategy = strategy;
    pthread_mutex_unlock(&sup->lock);
}

void tether_supervisor_dump(tether_supervisor *sup, FILE *fp)
{
    int64_t now = tether_now_ns();
    const char *in_call = sup->in_call;
    if (in_call)
        fprintf(fp, "== a supervisor thread is inside the backend's %s() for %.3fs\n", in_call,
                (now - sup->in_call_since) / 1e9);
    /* Bounded: a backend stuck while the lock is held must not hang the dump. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 1;
    if (pthread_mutex_timedlock(&sup->lock, &ts) != 0) {
        fprintf(fp, "== tether hang dump: backend %s: the supervisor lock has been held for over "
                    "1s (a backend call that does not return?); no more detail\n",
                sup->backend_name);
        fflush(fp);
        return;
    }
    fprintf(fp, "== tether hang dump: backend %s, soft_cancel %.3gs, hard_kill %.3gs, %u abandoned\n",
            sup->backend_name, sup->to.soft_cancel, sup->to.hard_kill, sup->abandoned);
    for (tether_handle *h = sup->handles; h; h = h->next) {
        fprintf(fp, "actor %llu %s: %s for %.3fs", (unsigned long long)h->id, h->target,
                state_names[h->state], (now - h->state_since) / 1e9);
        if (h->child)
            fprintf(fp, ", pid %lld thread %llu", (long long)h->child->pid,
                    (unsigned long long)CHILD_TID(h->child));
        if (!IS_FINAL(h) && h->deadline != TETHER_NEVER)
            fprintf(fp, ", next deadline in %.3fs", (h->deadline - now) / 1e9);
        fputc('\n', fp);
        fprintf(fp, "  channel: fd %d, %s%s; inbox %zu message(s), %zu bytes%s\n", h->fd,
                h->aborted ? "aborted: " : "open", h->aborted ? tether_err_name(h->abort_err) : "",
                h->inbox_count, h->inbox_bytes,
                INBOX_FULL(h) ? " (full: not reading until the owner receives)" : "");
        if (h->inbox_dropped)
            fprintf(fp, "  %zu message(s) over the inbox bound dropped during teardown\n",
                    h->inbox_dropped);
        for (struct parked *p = h->parked; p; p = p->next)
            fprintf(fp, "  waiter: thread %d in %s for %.3fs\n", (int)p->tid, p->what,
                    (now - p->since) / 1e9);
    }
    fprintf(fp, "== end of dump\n");
    fflush(fp);
    pthread_mutex_unlock(&sup->lock);
}
