/* core/actor_rt.c - the C actor runtime: what runs on the actor's side of
 * the channel (on a thread, or in a child process).
 *
 * The runtime loads the target module, greets the supervisor (READY), runs
 * the actor function, and reports how it ended (STOPPED). Cancel requests
 * arrive as CANCEL frames (plus an optional flag the backend sets); end of
 * stream on the channel counts as a cancel too, so an actor whose
 * supervisor side went away stops instead of lingering.
 *
 * Waits here belong to the actor: each one ends when the supervisor sends
 * CANCEL or shuts its end down (which its bounded teardown always does), or
 * when the thread is cancelled (poll is a cancellation point), or the
 * process killed. */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <tether/actor.h>

#include "internal.h"
#include "wire.h"

struct inmsg {
    struct tether__msg m;
    struct inmsg *next;
};

struct tether_actor {
    int fd;
    tether_cancel_flag *cancel_flag;
    int cancelled;
    int eof;
    struct tether__reader rd;
    struct inmsg *msgs, **msgs_tail; /* MESSAGE frames */
    size_t msgs_bytes;                 /* their data */
    struct inmsg *calls, **calls_tail; /* CALL frames */
    struct inmsg *cur_call; /* handed out by next_call, freed at the next one */
    char *fail;
    void *dl;
    char *path;
    const struct tether_function *functions;
};

static void queue_push(struct inmsg **head, struct inmsg ***tail, struct inmsg *q)
{
    q->next = NULL;
    **tail = q;
    *tail = &q->next;
}

static struct inmsg *queue_pop(struct inmsg **head, struct inmsg ***tail)
{
    struct inmsg *q = *head;
    if (q) {
        *head = q->next;
        if (!*head)
            *tail = head;
    }
    return q;
}

static int on_data(void *ctx, void *data, size_t len);

static int on_frame(void *ctx, const uint8_t *body, size_t len)
{
    tether_actor *self = ctx;
    struct inmsg *q = calloc(1, sizeof *q);
    char why[256];
    if (!q)
        return TETHER_ENOMEM;
    if (tether__msg_decode(body, len, &q->m, why, sizeof why) != 0) {
        free(q);
        return TETHER_EPROTO;
    }
    switch (q->m.kind) {
    case TETHER__MSG_CANCEL:
        self->cancelled = 1;
        break;
    case TETHER__MSG_MESSAGE: { /* one the fast path did not take: own its data */
        void *data = malloc(q->m.len ? q->m.len : 1);
        if (data && q->m.len)
            memcpy(data, q->m.data, q->m.len);
        size_t n = q->m.len;
        tether__msg_free(&q->m);
        free(q);
        return data ? on_data(self, data, n) : TETHER_ENOMEM;
    }
    case TETHER__MSG_CALL:
        queue_push(&self->calls, &self->calls_tail, q);
        return 0;
    default: /* not for an actor: ignore */
        break;
    }
    tether__msg_free(&q->m);
    free(q);
    return 0;
}

/* A MESSAGE's data in a buffer of its own: queued as it is, handed to
 * tether_recv_msg's caller without a copy. */
static int on_data(void *ctx, void *data, size_t len)
{
    tether_actor *self = ctx;
    struct inmsg *q = calloc(1, sizeof *q);
    if (!q) {
        free(data);
        return TETHER_ENOMEM;
    }
    q->m.kind = TETHER__MSG_MESSAGE;
    q->m.data = data;
    q->m.len = len;
    q->m.mem = data;
    self->msgs_bytes += len;
    queue_push(&self->msgs, &self->msgs_tail, q);
    return 0;
}

/* Read what is available, waiting at most timeout_ms (-1: until something
 * arrives or the supervisor goes), and stop early once `ahead` bytes of
 * messages are queued (0: no limit). */
static void pump_ahead(tether_actor *self, int timeout_ms, size_t ahead)
{
    if (self->eof)
        return;
    struct pollfd p = {.fd = self->fd, .events = POLLIN};
    int n = poll(&p, 1, timeout_ms);
    if (n <= 0)
        return;
    for (int rounds = 0; rounds < 64 && !(ahead && self->msgs_bytes >= ahead); rounds++) {
        char why[256];
        int rc = 0;
        ssize_t r = tether__reader_recv(&self->rd, self->fd, on_frame, self, &rc, why, sizeof why);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (r <= 0 || rc) {
            /* End of stream, an error, or a stream that no longer parses:
             * the supervisor's side is gone (or must be treated so). */
            self->eof = 1;
            self->cancelled = 1;
            return;
        }
    }
}

static void pump(tether_actor *self, int timeout_ms)
{
    pump_ahead(self, timeout_ms, 0);
}

static int is_cancelled(tether_actor *self)
{
    /* set by the backend from another thread (thread backend soft cancel) */
    if (self->cancel_flag && tether_cancel_flag_get(self->cancel_flag) != TETHER_CANCEL_NONE)
        self->cancelled = 1;
    return self->cancelled;
}

/* Write a whole frame. Blocks only while the channel is full; ends when the
 * supervisor reads or shuts its end (EPIPE). */
static void frame_cleanup(void *arg)
{
    tether__out_free(arg);
}

static int send_out(tether_actor *self, struct tether__out *o, int final);

static int send_frame_ex(tether_actor *self, struct tether__frame *f, int final)
{
    struct tether__out o;
    tether__out_frame(&o, f);
    return send_out(self, &o, final);
}

static int send_frame(tether_actor *self, struct tether__frame *f)
{
    return send_frame_ex(self, f, 0);
}

/* `final`: the stopped message, which waits for room even after a cancel
 * (the supervisor reads on during a teardown). */
static int send_out(tether_actor *self, struct tether__out *f, int final)
{
    size_t off = 0, total = tether__out_len(f);
    int rc = 0;
    /* a hard kill can cancel the thread in sendmsg() or poll() below */
    pthread_cleanup_push(frame_cleanup, f);
    while (off < total) {
        ssize_t w = tether__out_send(self->fd, f, off);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            /* The supervisor is not reading (its owner is behind): wait for
             * room, but keep reading so that a CANCEL gets through. A frame
             * half sent must be finished (or the actor killed): only one
             * not yet begun is given up. */
            struct pollfd p = {.fd = self->fd, .events = POLLOUT | (self->eof ? 0 : POLLIN)};
            poll(&p, 1, 100);
            if (p.revents & POLLIN)
                pump(self, 0);
            if (self->eof || (!final && is_cancelled(self) && off == 0)) {
                rc = self->eof ? TETHER_ECLOSED : TETHER_ECANCELLED;
                break;
            }
            continue;
        }
        self->eof = 1;
        self->cancelled = 1;
        rc = TETHER_ECLOSED;
        break;
    }
    pthread_cleanup_pop(1);
    return rc;
}

int tether_checkpoint(tether_actor *self)
{
    if (!is_cancelled(self))
        pump(self, 0);
    return is_cancelled(self) ? TETHER_ECANCELLED : 0;
}

int tether_cancelled(tether_actor *self)
{
    return is_cancelled(self);
}

int tether_sleep(tether_actor *self, double seconds)
{
    int64_t deadline = tether__deadline_after(seconds);
    while (!is_cancelled(self)) {
        int ms = tether__poll_ms(deadline);
        if (ms == 0)
            return 0;
        if (self->eof) {
            poll(NULL, 0, ms > 10 ? 10 : ms);
            continue;
        }
        pump(self, ms);
    }
    return TETHER_ECANCELLED;
}

int tether_wait_fd(tether_actor *self, int fd, short events, double seconds)
{
    int64_t deadline = seconds < 0 ? TETHER_NEVER : tether__deadline_after(seconds);
    while (!is_cancelled(self)) {
        struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = self->eof ? -1 : self->fd, .events = POLLIN}};
        int ms = deadline == TETHER_NEVER ? -1 : tether__poll_ms(deadline);
        int n = poll(p, 2, ms);
        if (n < 0 && errno != EINTR)
            return TETHER_ESYS;
        if (p[1].revents)
            pump(self, 0);
        if (p[0].revents)
            return p[0].revents;
        if (n == 0 && ms >= 0 && tether_now_ns() >= deadline)
            return 0;
    }
    return TETHER_ECANCELLED;
}

int tether_send_msg(tether_actor *self, const void *buf, size_t len)
{
    if (!buf && len)
        return TETHER_EINVAL;
    /* the supervisor would end the actor for a frame over its bound */
    if (tether__message_body_len(len) > TETHER__DEFAULT_MAX_FRAME)
        return TETHER_ETOOBIG;
    struct tether__out o;
    tether__out_message(&o, buf, len); /* written from buf: no copy */
    return send_out(self, &o, 0);
}

int tether_recv_msg(tether_actor *self, void **buf, size_t *len, double seconds)
{
    int64_t deadline = seconds < 0 ? TETHER_NEVER : tether__deadline_after(seconds);
    for (;;) {
        struct inmsg *q = queue_pop(&self->msgs, &self->msgs_tail);
        if (q) {
            /* the buffer the data was read into is the caller's now */
            *buf = q->m.mem;
            *len = q->m.len;
            self->msgs_bytes -= q->m.len;
            free(q);
            return 0;
        }
        if (is_cancelled(self))
            return TETHER_ECANCELLED;
        int ms = deadline == TETHER_NEVER ? -1 : tether__poll_ms(deadline);
        if (ms == 0)
            return TETHER_ETIMEDOUT;
        /* Read ahead at most 64 KiB of messages: the caller frees each
         * before the next is read, so the allocator hands the same memory
         * back instead of growing the heap by megabytes and returning the
         * pages to the kernel (a page fault every 4 KiB on the next batch).
         * checkpoint and sleep read on without a limit (a CANCEL behind
         * unreceived messages still gets through). */
        pump_ahead(self, ms, 65536);
    }
}

int tether_fail(tether_actor *self, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    free(self->fail);
    self->fail = strdup(buf);
    return TETHER_EREMOTE;
}

int tether_actor_fd(tether_actor *self)
{
    return self->fd;
}

/* ---- calls ----------------------------------------------------------------- */

static const struct tether_function *find_function(tether_actor *self, const char *name)
{
    for (const struct tether_function *f = self->functions; f && f->name; f++)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

static int reply_error(tether_actor *self, uint64_t id, const char *why)
{
    struct tether__frame f;
    if (tether__encode_error(&f, id, TETHER_EBADCALL, why))
        return TETHER_ENOMEM;
    return send_frame(self, &f);
}

static int serve_one(tether_actor *self, uint64_t id, const char *func, const char *sig,
                     const struct tether_value *args, size_t nargs)
{
    char why[512];
    const struct tether_function *fn = find_function(self, func);
    if (!fn) {
        snprintf(why, sizeof why, "no function '%s' in %s", func, self->path);
        return reply_error(self, id, why);
    }
    if (strcmp(fn->signature, sig) != 0) {
        snprintf(why, sizeof why, "signature mismatch for '%s': called as \"%s\", declared \"%s\"",
                 func, sig, fn->signature);
        return reply_error(self, id, why);
    }
    struct tether_value ret;
    if (tether__ffi_invoke(fn->fn, fn->signature, args, nargs, &ret, why, sizeof why)) {
        char full[640];
        snprintf(full, sizeof full, "%s: %s", func, why);
        return reply_error(self, id, full);
    }
    return tether__actor_reply(self, id, &ret);
}

static void drop_current_call(tether_actor *self)
{
    if (self->cur_call) {
        tether__msg_free(&self->cur_call->m);
        free(self->cur_call);
        self->cur_call = NULL;
    }
}

int tether__actor_next_call(tether_actor *self, double seconds, const char **func,
                            const char **sig, const struct tether_value **args, size_t *nargs,
                            uint64_t *id)
{
    drop_current_call(self);
    int64_t deadline = seconds < 0 ? TETHER_NEVER : tether__deadline_after(seconds);
    for (;;) {
        struct inmsg *q = queue_pop(&self->calls, &self->calls_tail);
        if (q) {
            self->cur_call = q;
            *func = q->m.func;
            *sig = q->m.sig;
            *args = q->m.args;
            *nargs = q->m.nargs;
            *id = q->m.id;
            return 0;
        }
        if (is_cancelled(self))
            return TETHER_ECANCELLED;
        /* Without a limit: ends at CANCEL, at end of stream, or by thread
         * cancellation (see the file comment); a 1 s tick re-reads the flag. */
        int ms = deadline == TETHER_NEVER ? 1000 : tether__poll_ms(deadline);
        if (ms == 0)
            return TETHER_ETIMEDOUT;
        pump(self, ms);
    }
}

int tether__actor_reply(tether_actor *self, uint64_t id, const struct tether_value *ret)
{
    struct tether__frame f;
    if (tether__encode_return(&f, id, ret))
        return TETHER_ENOMEM;
    return send_frame(self, &f);
}

int tether__actor_reply_error(tether_actor *self, uint64_t id, const char *text)
{
    return reply_error(self, id, text);
}

int tether_serve(tether_actor *self)
{
    for (;;) {
        const char *func, *sig;
        const struct tether_value *args;
        size_t nargs;
        uint64_t id;
        int rc = tether__actor_next_call(self, -1, &func, &sig, &args, &nargs, &id);
        if (rc)
            return rc;
        serve_one(self, id, func, sig, args, nargs);
    }
}

/* ---- running an actor ------------------------------------------------------ */

static void free_queue(struct inmsg *q)
{
    while (q) {
        struct inmsg *next = q->next;
        tether__msg_free(&q->m);
        free(q);
        q = next;
    }
}

static void actor_cleanup(void *arg)
{
    tether_actor *self = arg;
    if (self->fd >= 0)
        close(self->fd);
    self->fd = -1;
    drop_current_call(self);
    free_queue(self->msgs);
    free_queue(self->calls);
    tether__reader_reset(&self->rd);
    free(self->fail);
    free(self->path);
    /* The module stays loaded: a cancelled thread may have left its code
     * on some other stack (atexit handlers, TLS destructors). */
}

static void report(tether_actor *self, int outcome, int code, const char *text)
{
    struct tether__frame f;
    int rc = tether__encode_stopped(&f, outcome, code, text);
    if (rc == 0)
        rc = send_frame_ex(self, &f, 1);
    /* The supervisor's end was gone before it heard how the actor ended:
     * the supervisor died (or aborted the channel). Tell the host, whose
     * process backend then makes sure nothing of the actor outlives it. */
    if (rc && self->eof && self->cancel_flag)
        tether_cancel_flag_set(self->cancel_flag, TETHER_CANCEL_ORPHANED);
}

typedef int (*actor_fn)(tether_actor *);

/* Load "path:function". Returns the function or NULL with `why` set. */
static actor_fn load_target(tether_actor *self, const char *target, char *why, size_t whylen)
{
    const char *colon = strrchr(target, ':');
    if (!colon || colon == target || !colon[1]) {
        snprintf(why, whylen, "target '%s' is not of the form path/module.so:function", target);
        return NULL;
    }
    size_t plen = (size_t)(colon - target);
    int relative = !memchr(target, '/', plen);
    self->path = malloc(plen + 3);
    if (!self->path) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    snprintf(self->path, plen + 3, "%s%.*s", relative ? "./" : "", (int)plen, target);
    /* dlopen runs the module's constructors under the loader lock: a thread
     * cancelled there would leave that lock held for the whole process. */
    int old;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
    dlerror();
    self->dl = dlopen(self->path, RTLD_NOW | RTLD_LOCAL);
    const char *err = self->dl ? NULL : dlerror();
    pthread_setcancelstate(old, NULL);
    if (!self->dl) {
        snprintf(why, whylen, "cannot load actor module: %s", err ? err : self->path);
        return NULL;
    }
    void *sym = dlsym(self->dl, colon + 1);
    if (!sym) {
        snprintf(why, whylen, "actor module %s has no function '%s'", self->path, colon + 1);
        return NULL;
    }
    self->functions = dlsym(self->dl, TETHER_FUNCTIONS_SYMBOL);
    actor_fn fn;
    memcpy(&fn, &sym, sizeof fn);
    return fn;
}

/* The cleanup handler of a C actor's thread: also runs when it is cancelled. */
static void actor_free(void *arg)
{
    actor_cleanup(arg);
    free(arg);
}

tether_actor *tether__actor_attach(int channel_fd, tether_cancel_flag *cancel_flag)
{
    tether_actor *self = calloc(1, sizeof *self);
    if (!self) {
        close(channel_fd);
        return NULL;
    }
    self->fd = channel_fd;
    /* Programs the actor starts must not inherit its channel (an exec
     * helper receives it without the flag). */
    fcntl(channel_fd, F_SETFD, fcntl(channel_fd, F_GETFD) | FD_CLOEXEC);
    self->cancel_flag = cancel_flag;
    self->msgs_tail = &self->msgs;
    self->calls_tail = &self->calls;
    tether__reader_init(&self->rd, TETHER__DEFAULT_MAX_FRAME);
    self->rd.on_data = on_data;
    return self;
}

int tether__actor_ready(tether_actor *self)
{
    struct tether__frame f;
    if (tether__encode_ready(&f, (int64_t)getpid()))
        return TETHER_ENOMEM;
    return send_frame(self, &f);
}

int tether__actor_checkpoint(tether_actor *self)
{
    return tether_checkpoint(self);
}

int tether__actor_cancelled(tether_actor *self)
{
    return tether_cancelled(self);
}

int tether__actor_sleep(tether_actor *self, double seconds)
{
    return tether_sleep(self, seconds);
}

int tether__actor_send_msg(tether_actor *self, const void *buf, size_t len)
{
    return tether_send_msg(self, buf, len);
}

int tether__actor_recv_msg(tether_actor *self, void **buf, size_t *len, double seconds)
{
    return tether_recv_msg(self, buf, len, seconds);
}

int tether__actor_fd(tether_actor *self)
{
    return tether_actor_fd(self);
}

void tether__actor_finish(tether_actor *self, int outcome, int code, const char *message)
{
    report(self, outcome, code, message);
    actor_free(self);
}

int tether__run_c_actor(int channel_fd, const char *target, tether_cancel_flag *cancel_flag)
{
    tether_actor *self = tether__actor_attach(channel_fd, cancel_flag);
    if (!self)
        return 127;
    int status = 0, old_state = PTHREAD_CANCEL_ENABLE;

    pthread_cleanup_push(actor_free, self);
    char why[1024];
    actor_fn fn = load_target(self, target, why, sizeof why);
    if (!fn) {
        report(self, TETHER_OUTCOME_FAILED, 127, why);
        status = 127;
    } else if (is_cancelled(self) || tether_checkpoint(self)) {
        /* cancelled while loading: stop without running */
        report(self, TETHER_OUTCOME_CANCELLED, 0, NULL);
    } else {
        tether__actor_ready(self);
        status = fn(self);
        if (self->fail)
            report(self, TETHER_OUTCOME_FAILED, status, self->fail);
        else if (status == TETHER_ECANCELLED)
            report(self, TETHER_OUTCOME_CANCELLED, 0, NULL);
        else
            report(self, TETHER_OUTCOME_EXITED, status, NULL);
    }
    /* The last steps (close, free) must not be cut short by a hard kill
     * arriving just now: the actor has already ended. */
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old_state);
    pthread_cleanup_pop(1);
    pthread_setcancelstate(old_state, NULL);
    return status;
}

int tether_actor_main(int channel_fd, const char *target, int *orphaned)
{
    tether_cancel_flag flag = TETHER_CANCEL_NONE;
    int status = tether__run_c_actor(channel_fd, target, &flag);
    if (orphaned)
        *orphaned = tether_cancel_flag_get(&flag) == TETHER_CANCEL_ORPHANED;
    return status;
}
