/* core/channel.c - the core's end of an actor's channel.
 *
 * Frames in: the engine reads (bounded a round), decodes, and turns what
 * matters to the teardown into events (READY, STOPPED, EOF, PROTOCOL) for
 * tether__dispatch; replies wake their callers, messages queue in the
 * inbox (bounded: backpressure). Frames out: program threads write whole
 * frames one at a time (send, call); the engine writes the CANCEL frame
 * without ever blocking. Waiters: every program thread that waits on an
 * actor parks here with its own deadline, and an abort of the channel
 * releases all of them at once.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "engine.h"

/* ---- parked waiters ---------------------------------------------------------- */

unsigned tether__chan_count_parked(const tether_handle *h)
{
    unsigned n = 0;
    for (struct tether__parked *p = h->ch.parked; p; p = p->next)
        n++;
    return n;
}

void tether__park(tether_handle *h, struct tether__parked *p, const char *what)
{
    p->what = what;
    p->tid = (pid_t)syscall(SYS_gettid);
    p->since = tether_now_ns();
    p->next = h->ch.parked;
    h->ch.parked = p;
}

void tether__unpark(tether_handle *h, struct tether__parked *p)
{
    for (struct tether__parked **pp = &h->ch.parked; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            return;
        }
}

/* Wait on the supervisor's condition until `deadline`. Returns ETIMEDOUT
 * once it has passed. Every program-side wait goes through here. */
int tether__cond_wait_until(tether_supervisor *sup, int64_t deadline)
{
    if (tether_now_ns() >= deadline)
        return ETIMEDOUT;
    struct timespec ts;
    tether__ns_to_timespec(deadline, &ts);
    return pthread_cond_timedwait(&sup->cond, &sup->lock, &ts);
}

/* ---- open, abort, free ---------------------------------------------------------- */

static int on_data(void *ctx, void *data, size_t len);

void tether__chan_init(tether_handle *h, int fd, uint64_t max_frame)
{
    h->ch.fd = fd;
    h->ch.inbox_tail = &h->ch.inbox;
    tether__reader_init(&h->ch.rd, max_frame);
    h->ch.rd.on_data = on_data;
    tether__hfd_init(&h->hfd);
}

void tether__chan_free(tether_handle *h)
{
    struct tether__channel *ch = &h->ch;
    tether__ep_forget(h, TETHER__EP_CHANNEL);
    if (ch->fd >= 0)
        close(ch->fd);
    ch->fd = -1;
    while (ch->inbox) {
        struct tether__inbox_msg *q = ch->inbox;
        ch->inbox = q->next;
        free(q->data);
        free(q);
    }
    tether__reader_reset(&ch->rd);
    free(ch->pend);
    ch->pend = NULL;
    tether__hfd_close(&h->hfd);
}

int tether__chan_aborted(const tether_handle *h)
{
    return h->ch.abort_err != 0;
}

void tether__chan_close_if_unused(tether_handle *h)
{
    struct tether__channel *ch = &h->ch;
    if (ch->fd >= 0 && ch->abort_err && ch->fd_users == 0 && ch->writer != TETHER__W_PROGRAM) {
        tether__ep_forget(h, TETHER__EP_CHANNEL);
        close(ch->fd);
        ch->fd = -1;
    }
}

void tether__chan_abort(tether_handle *h, int err, const char *why)
{
    struct tether__channel *ch = &h->ch;
    if (ch->abort_err)
        return;
    ch->abort_err = err;
    if (ch->fd >= 0)
        shutdown(ch->fd, SHUT_RDWR);
    free(ch->pend);
    ch->pend = NULL;
    if (ch->writer == TETHER__W_ENGINE)
        ch->writer = TETHER__W_FREE;
    for (struct tether__pcall *c = ch->calls; c; c = c->next)
        if (!c->done) {
            c->done = 1;
            c->rc = err;
        }
    tether_supervisor *sup = h->sup;
    if (sup->events)
        tether__event(sup->events, h->id, sup->backend_name, h->child ? h->child->pid : 0,
                      h->child ? TETHER__CHILD_TID(h->child) : 0, "channels-aborted", why,
                      "\"waiters_released\":%u,\"error\":\"%s\"", tether__chan_count_parked(h),
                      tether_err_name(err));
    tether__chan_close_if_unused(h);
    tether__wake_waiters(sup);
}

/* ---- outbound CANCEL (engine side, never blocks) -------------------------- */

void tether__chan_flush(tether_handle *h)
{
    struct tether__channel *ch = &h->ch;
    while (ch->pend && ch->pend_off < ch->pend_len) {
        ssize_t w = send(ch->fd, ch->pend + ch->pend_off, ch->pend_len - ch->pend_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            ch->pend_off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return; /* engine polls POLLOUT */
        break;      /* peer gone: the read side will see it */
    }
    free(ch->pend);
    ch->pend = NULL;
    ch->writer = TETHER__W_FREE;
    tether__wake_waiters(h->sup);
}

void tether__chan_send_cancel(tether_handle *h)
{
    struct tether__channel *ch = &h->ch;
    ch->cancel_wanted = 1;
    if (ch->abort_err || ch->fd < 0 || ch->writer != TETHER__W_FREE)
        return; /* a program thread is mid-frame: retried when it finishes */
    struct tether__frame f;
    if (tether__encode_cancel(&f))
        return; /* out of memory: the engine retries next round */
    ch->cancel_wanted = 0;
    ch->writer = TETHER__W_ENGINE;
    ch->pend = f.buf;
    ch->pend_len = f.len;
    ch->pend_off = 0;
    tether__chan_flush(h);
}

/* ---- inbound frames ---------------------------------------------------------- */

/* Tearing down (or told to end): the inbox bound no longer stops reads. */
static int tearing_down(const tether_handle *h)
{
    return h->state != TETHER__ST_SPAWNING && h->state != TETHER__ST_RUNNING;
}

static int inbox_over(const tether_handle *h)
{
    return h->ch.inbox_count >= TETHER__INBOX_MAX_MSGS ||
           h->ch.inbox_bytes >= TETHER__INBOX_MAX_BYTES;
}

/* Read-ahead: past TETHER__INBOX_AHEAD_BYTES of unreceived messages the
 * engine pauses the channel until the owner has received half of them --
 * unless a call waits for its reply. Received messages are buffers their
 * receiver frees: reading megabytes ahead made the allocator grow its heap
 * and hand the pages back to the kernel at each drain, a page fault every
 * 4 KiB of the next burst (bench: 64 KiB messages at 1/8 of the stream
 * floor). A little ahead, the same memory is handed out again. */
#define TETHER__INBOX_AHEAD_BYTES (128u * 1024)

static int ahead_enough(const tether_handle *h)
{
    return h->ch.inbox_bytes >= TETHER__INBOX_AHEAD_BYTES && !h->ch.calls;
}

int tether__chan_inbox_full(const tether_handle *h)
{
    return (inbox_over(h) || ahead_enough(h)) && !tearing_down(h);
}

struct frame_ctx {
    tether_handle *h;
    int draining; /* reading what an ended actor left: no bound, nothing dropped */
};

static void on_reply(tether_handle *h, const struct tether__msg *m)
{
    for (struct tether__pcall *c = h->ch.calls; c; c = c->next)
        if (c->id == m->id && !c->done) {
            c->done = 1;
            if (m->kind == TETHER__MSG_RETURN) {
                c->rc = 0;
                c->ret = m->ret;
                if (m->ret.type == 's' && m->ret.v.s)
                    c->text = strdup(m->ret.v.s);
            } else {
                c->rc = m->code < 0 ? m->code : TETHER_EREMOTE;
                c->text = m->text ? strdup(m->text) : NULL;
            }
            tether__wake_waiters(h->sup);
            return;
        }
    /* a reply nobody waits for any more is dropped */
}

/* A MESSAGE's data, read into its own buffer: queued as it is (no copy). */
static int on_data(void *ctx, void *data, size_t len)
{
    struct frame_ctx *fc = ctx;
    tether_handle *h = fc->h;
    struct tether__channel *ch = &h->ch;
    if (inbox_over(h) && tearing_down(h) && !fc->draining) {
        ch->inbox_dropped++; /* tearing down: bounded memory wins */
        free(data);
        return 0;
    }
    struct tether__inbox_msg *q = malloc(sizeof *q);
    if (!q) {
        free(data);
        return 0;
    }
    q->data = data;
    q->len = len;
    q->next = NULL;
    *ch->inbox_tail = q;
    ch->inbox_tail = &q->next;
    ch->inbox_count++;
    ch->inbox_bytes += len;
    TETHER__HFD_SYNC(h);
    tether__wake_waiters(h->sup);
    return 0;
}

static int on_frame(void *ctx, const uint8_t *body, size_t len)
{
    struct frame_ctx *fc = ctx;
    tether_handle *h = fc->h;
    struct tether__msg m;
    char why[256];
    if (tether__msg_decode(body, len, &m, why, sizeof why)) {
        char buf[320];
        snprintf(buf, sizeof buf, "protocol error: %s", why);
        if (!h->lost_reason)
            h->lost_reason = strdup(buf);
        return TETHER_EPROTO;
    }
    int rc = 0;
    switch (m.kind) {
    case TETHER__MSG_READY: tether__dispatch(h, TETHER__EV_READY, NULL); break;
    case TETHER__MSG_RETURN:
    case TETHER__MSG_ERROR: on_reply(h, &m); break;
    case TETHER__MSG_MESSAGE: /* a MESSAGE the fast path did not take */
        if (m.len) {
            void *copy = malloc(m.len);
            if (copy) {
                memcpy(copy, m.data, m.len);
                on_data(fc, copy, m.len);
            }
        } else {
            void *empty = malloc(1);
            if (empty)
                on_data(fc, empty, 0);
        }
        break;
    case TETHER__MSG_STOPPED:
        h->said = 1;
        h->said_kind = m.outcome;
        h->said_code = m.code;
        free(h->said_text);
        h->said_text = m.text ? strdup(m.text) : NULL;
        tether__event_log(h, "stopped", tether_outcome_name(m.outcome));
        rc = 1; /* nothing may follow */
        break;
    default: break; /* CALL/CANCEL are not for the supervisor */
    }
    tether__msg_free(&m);
    return rc;
}

/* Read what is there, at most 16 reads (so one chatty actor cannot starve
 * the others' deadlines). Returns 1 once the channel has ended. */
static int read_some(tether_handle *h, int draining, int direct)
{
    struct tether__channel *ch = &h->ch;
    struct frame_ctx fc = {h, draining};
    for (int i = 0; i < 16 && !ch->abort_err && (draining || !tether__chan_inbox_full(h)); i++) {
        char why[256];
        int rc = 0;
        ssize_t r = tether__reader_recv(&ch->rd, ch->fd, on_frame, &fc, &rc, why, sizeof why);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (r <= 0) {
            tether__dispatch(h, TETHER__EV_EOF, NULL);
            return 1;
        }
        if (rc == 1) {
            tether__dispatch(h, TETHER__EV_STOPPED, NULL);
            return 1;
        }
        if (rc) {
            if (!h->lost_reason) {
                char b[320];
                snprintf(b, sizeof b, "protocol error: %s", why);
                h->lost_reason = strdup(b);
            }
            /* its action calls the backend: the engine's (a program
             * thread reading directly posts it) */
            if (direct)
                tether__post(h, TETHER__EV_PROTOCOL);
            else
                tether__dispatch(h, TETHER__EV_PROTOCOL, NULL);
            return 1;
        }
    }
    return 0;
}

void tether__chan_read(tether_handle *h)
{
    read_some(h, 0, 0);
}

/* A program thread that waits for a frame reads the channel itself
 * (ch.direct): tether_spawn waiting for READY, tether_call waiting for its
 * reply. The channel leaves the engine's epoll set meanwhile, so the frame
 * goes from the actor to the waiting thread with no engine round (one
 * wake-up and one context switch fewer: bench/tbench --test spawn, call).
 * Only what calls no backend member is dispatched here -- READY, messages,
 * replies, STOPPED and the end of the channel (both only shut our end and
 * start the hard_kill clock) -- and a protocol error is posted to the
 * engine. Whatever the engine dispatches on this actor meanwhile (a
 * request, its exit, a close) takes the channel back (tether__dispatch
 * clears ch.direct); so does a full inbox (the engine stops reading too).
 * It reads until `over` says the wait is over (READY read, the reply in,
 * the state moved on), `until` (the caller's deadline) or the phase's
 * deadline (the spawn deadline: the engine acts on it). Called with the
 * lock held and ch.direct set; returns with the lock held and the channel
 * the engine's again. */
static void read_direct(tether_handle *h, int (*over)(const tether_handle *, const void *),
                        const void *arg, int64_t until, const char *what)
{
    tether_supervisor *sup = h->sup;
    struct tether__channel *ch = &h->ch;
    struct tether__parked p;
    tether__park(h, &p, what);
    tether__ep_sync(h); /* out of the engine's set */
    while (ch->direct && !over(h, arg) && !ch->abort_err && ch->fd >= 0 &&
           !tether__chan_inbox_full(h)) {
        /* a phase deadline is the engine's to act on: hand it back then */
        int64_t end = until < h->deadline ? until : h->deadline;
        int64_t left = end - tether_now_ns();
        if (left <= 0)
            break;
        struct timespec ts = {(time_t)(left / TETHER_NS_PER_SEC), (long)(left % TETHER_NS_PER_SEC)};
        struct pollfd pf = {.fd = ch->fd, .events = POLLIN};
        ch->fd_users++; /* the fd stays open while this thread polls it */
        pthread_mutex_unlock(&sup->lock);
        /* Bounded: by `end`, the caller's deadline or the phase's; an
         * abort of the channel shuts the socket down, which wakes it
         * sooner. */
        int r = ppoll(&pf, 1, &ts, NULL);
        pthread_mutex_lock(&sup->lock);
        ch->fd_users--;
        if (r > 0 && ch->direct && !over(h, arg) && !ch->abort_err)
            read_some(h, 0, 1);
    }
    ch->direct = 0;
    tether__unpark(h, &p);
    tether__chan_close_if_unused(h);
    tether__ep_sync(h); /* the engine polls the channel from here */
    /* Running, nothing posted: no deadline, nothing for the engine to act
     * on now (its set has the channel and the exit fd). Anything else --
     * the spawn deadline reached, a STOPPED or the end read here (a
     * hard_kill deadline), a post -- is the engine's now. */
    if (h->state != TETHER__ST_RUNNING || h->posted || h->ep_ch_failed)
        tether__wake_engine(sup);
}

/* Spawning: until READY (the state moves on). */
static int ready_or_moved(const tether_handle *h, const void *arg)
{
    (void)arg;
    return h->t_ready || h->state != TETHER__ST_SPAWNING;
}

void tether__chan_read_direct(tether_handle *h, int64_t until)
{
    h->ch.direct = 1;
    read_direct(h, ready_or_moved, NULL, until, "wait-ready");
}

/* A call: until its reply (or the actor's teardown begins). */
static int replied_or_moved(const tether_handle *h, const void *arg)
{
    const struct tether__pcall *c = arg;
    return c->done || h->state != TETHER__ST_RUNNING;
}

/* The actor has ended: whatever it wrote is in the socket already, a
 * finite amount (the socket buffer). Read it all -- its last messages and
 * its stopped message -- before the outcome is decided, even past the
 * inbox bound and even if the exit was noticed before the data. */
void tether__chan_drain(tether_handle *h)
{
    struct tether__channel *ch = &h->ch;
    for (int i = 0; i < 4096 && !ch->abort_err && ch->fd >= 0; i++) {
        if (read_some(h, 1, 0))
            break;
        struct pollfd p = {.fd = ch->fd, .events = POLLIN};
        if (ch->abort_err || poll(&p, 1, 0) <= 0)
            break;
    }
}

/* ---- program threads: send, recv, call ------------------------------------------ */

/* Error a waiter gets on a torn-down channel. */
static int dead_err(const tether_handle *h)
{
    return h->ch.abort_err;
}

/* Write one whole frame from a program thread. Only one writer at a time;
 * waiting for the turn and for room in the socket are both bounded by the
 * caller's deadline and cut short by an abort (shutdown makes send fail). */
static int chan_write(tether_handle *h, const struct tether__out *f, int64_t deadline,
                      const char *what)
{
    tether_supervisor *sup = h->sup;
    struct tether__channel *ch = &h->ch;
    pthread_mutex_lock(&sup->lock);
    struct tether__parked p;
    tether__park(h, &p, what);
    int rc = 0;
    while (!ch->abort_err && ch->writer != TETHER__W_FREE)
        if (tether__cond_wait_until(sup, deadline) == ETIMEDOUT) {
            rc = TETHER_ETIMEDOUT;
            break;
        }
    if (!rc && ch->abort_err)
        rc = dead_err(h);
    if (rc) {
        tether__unpark(h, &p);
        pthread_mutex_unlock(&sup->lock);
        return rc;
    }
    ch->writer = TETHER__W_PROGRAM;
    ch->fd_users++;
    int fd = ch->fd;
    pthread_mutex_unlock(&sup->lock);

    size_t off = 0, total = tether__out_len(f);
    while (off < total) {
        ssize_t w = tether__out_send(fd, f, off);
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
    ch->writer = TETHER__W_FREE;
    ch->fd_users--;
    if (rc && ch->abort_err) {
        rc = dead_err(h);
    } else if (rc && off > 0) {
        /* half a frame went out: the stream can no longer be parsed */
        tether__chan_abort(h, TETHER_EABORTED, "a send timed out mid-frame");
        tether__post(h, TETHER__EV_SEND_BROKEN);
    }
    if (ch->cancel_wanted)
        tether__wake_engine(sup);
    tether__chan_close_if_unused(h);
    tether__unpark(h, &p);
    tether__wake_waiters(sup);
    pthread_mutex_unlock(&sup->lock);
    return rc;
}

int tether_send(tether_handle *h, const void *buf, size_t len, int64_t deadline_ns)
{
    if (!h || (!buf && len))
        return TETHER_EINVAL;
    /* refused before a byte goes out: the reader at the other end would
     * take the frame for a protocol error and end the actor */
    uint64_t body = tether__message_body_len(len);
    if (body > h->sup->max_frame || body > TETHER__DEFAULT_MAX_FRAME)
        return TETHER_ETOOBIG;
    struct tether__out o;
    tether__out_message(&o, buf, len);
    return chan_write(h, &o, deadline_ns, "send");
}

int tether_recv(tether_handle *h, void **buf, size_t *len, int64_t deadline_ns)
{
    if (!h || !buf || !len)
        return TETHER_EINVAL;
    tether_supervisor *sup = h->sup;
    struct tether__channel *ch = &h->ch;
    pthread_mutex_lock(&sup->lock);
    struct tether__parked p;
    tether__park(h, &p, "recv");
    int rc = 0;
    while (!ch->inbox && !ch->abort_err)
        if (tether__cond_wait_until(sup, deadline_ns) == ETIMEDOUT) {
            rc = TETHER_ETIMEDOUT;
            break;
        }
    tether__unpark(h, &p);
    if (ch->inbox) {
        /* messages that arrived before the end are still delivered */
        struct tether__inbox_msg *q = ch->inbox;
        int was_full = tether__chan_inbox_full(h), was_over = inbox_over(h);
        size_t before = ch->inbox_bytes;
        ch->inbox = q->next;
        if (!ch->inbox)
            ch->inbox_tail = &ch->inbox;
        ch->inbox_count--;
        ch->inbox_bytes -= q->len;
        /* read that channel again: after a hard bound at once, after the
         * read-ahead once half of it has been received */
        size_t half = TETHER__INBOX_AHEAD_BYTES / 2;
        if ((was_full && was_over && !tether__chan_inbox_full(h)) ||
            (before > half && ch->inbox_bytes <= half))
            tether__wake_engine(sup);
        *buf = q->data;
        *len = q->len;
        free(q);
        TETHER__HFD_SYNC(h);
        rc = 0;
    } else if (!rc) {
        rc = dead_err(h);
    }
    pthread_mutex_unlock(&sup->lock);
    return rc;
}

static int call_check(const char *sig, const struct tether_value *args, size_t nargs,
                      struct tether_error *err)
{
    size_t want;
    char rtype;
    char why[256];
    if (tether__sig_parse(sig, &want, &rtype, why, sizeof why))
        return tether_error_set(err, TETHER_EBADCALL, "%s", why);
    if (want != nargs)
        return tether_error_set(err, TETHER_EBADCALL,
                                "wrong argument count: %zu given, signature '%s' takes %zu", nargs,
                                sig, want);
    for (size_t i = 0; i < nargs; i++)
        if (args[i].type != sig[i])
            return tether_error_set(err, TETHER_EBADCALL,
                                    "argument %zu is typed '%c' but signature '%s' wants '%c'",
                                    i + 1, args[i].type, sig, sig[i]);
    return 0;
}

int tether_call(tether_handle *h, const char *func, const char *sig,
                const struct tether_value *args, size_t nargs, struct tether_value *ret,
                int64_t deadline_ns, struct tether_error *err)
{
    if (!h || !func || !sig || (nargs && !args))
        return tether_error_set(err, TETHER_EINVAL, "tether_call: NULL argument");
    int rc = call_check(sig, args, nargs, err);
    if (rc)
        return rc;
    tether_supervisor *sup = h->sup;
    struct tether__channel *ch = &h->ch;
    struct tether__pcall c;
    memset(&c, 0, sizeof c);
    pthread_mutex_lock(&sup->lock);
    if (ch->abort_err) {
        rc = dead_err(h);
        pthread_mutex_unlock(&sup->lock);
        return tether_error_set(err, rc, "%s: %s", h->target, tether_strerror(rc));
    }
    c.id = ++ch->next_call;
    int paused = tether__chan_inbox_full(h);
    c.next = ch->calls;
    ch->calls = &c;
    if (paused && !tether__chan_inbox_full(h))
        tether__wake_engine(sup); /* the read-ahead pause ends for the reply */
    pthread_mutex_unlock(&sup->lock);

    struct tether__frame f;
    rc = tether__encode_call(&f, c.id, func, sig, args, nargs) ? TETHER_ENOMEM : 0;
    if (!rc) {
        struct tether__out o;
        tether__out_frame(&o, &f);
        rc = chan_write(h, &o, deadline_ns, "call-send");
        tether__out_free(&o);
    }
    pthread_mutex_lock(&sup->lock);
    if (!rc && !c.done && !ch->direct && h->state == TETHER__ST_RUNNING && !ch->abort_err &&
        ch->fd >= 0 && !tether__chan_inbox_full(h)) {
        ch->direct = 1; /* this thread reads the reply (read_direct) */
        read_direct(h, replied_or_moved, &c, deadline_ns, "call");
    }
    if (!rc) {
        struct tether__parked p;
        tether__park(h, &p, "call");
        while (!c.done)
            if (tether__cond_wait_until(sup, deadline_ns) == ETIMEDOUT) {
                rc = TETHER_ETIMEDOUT;
                break;
            }
        tether__unpark(h, &p);
        if (!rc)
            rc = c.rc;
    }
    for (struct tether__pcall **pp = &ch->calls; *pp; pp = &(*pp)->next)
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

/* ---- restarts: the next instance's channel ---------------------------------- */

/* Waiting on the actor itself, not on this channel: they carry over. */
static int waits_on_actor(const struct tether__parked *p)
{
    return !strcmp(p->what, "wait-outcome") || !strcmp(p->what, "wait-ready");
}

int tether__chan_idle(const tether_handle *h)
{
    const struct tether__channel *ch = &h->ch;
    if (ch->fd_users || ch->writer == TETHER__W_PROGRAM || ch->calls)
        return 0;
    for (const struct tether__parked *p = ch->parked; p; p = p->next)
        if (!waits_on_actor(p))
            return 0;
    return 1;
}

void tether__chan_renew(tether_handle *h, int fd)
{
    struct tether__channel *ch = &h->ch;
    tether__ep_forget(h, TETHER__EP_CHANNEL);
    if (ch->fd >= 0)
        close(ch->fd);
    ch->fd = fd;
    ch->abort_err = 0;
    ch->writer = TETHER__W_FREE;
    ch->cancel_wanted = 0;
    ch->direct = 0; /* a restart's instance is read by the engine */
    free(ch->pend);
    ch->pend = NULL;
    ch->pend_len = ch->pend_off = 0;
    ch->inbox_dropped = 0;
    tether__reader_reset(&ch->rd);
}
