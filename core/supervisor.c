/* core/supervisor.c - the supervisor API: open, close, spawn, the
 * program's requests, waiting, releasing a handle (queries and the hang
 * dump: inspect.c).
 *
 * The state machine these functions drive is the table in teardown.c; the
 * channel side (send, recv, call) is in channel.c; both share the shapes in
 * engine.h. A request from a program thread is posted to the engine
 * (tether__post): only the engine, or the thread closing the supervisor,
 * calls the backend's teardown members (tether/backend.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine.h"

static uint64_t next_actor_id = 1; /* atomic: no lock to inherit held across fork */

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

const struct tether_backend_host *tether_backend_host(void)
{
    return &host;
}

static int open_with(const struct tether_config *cfg, const char *path, const char *name,
                     const struct tether_timeouts *to, const struct tether_supervision *sv,
                     const struct tether_option *opts, size_t n_opts, tether_supervisor **out,
                     struct tether_error *err)
{
    *out = NULL;
    tether_supervisor *sup = calloc(1, sizeof *sup);
    if (!sup)
        return tether_error_set(err, TETHER_ENOMEM, "out of memory");
    sup->wake_fd = -1;
    sup->ep_fd = -1;
    sup->to = *to;
    sup->sv = *sv;
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
    sup->ep_fd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event wake = {.events = EPOLLIN, .data.u64 = 0};
    if (sup->wake_fd < 0 || sup->ep_fd < 0 ||
        epoll_ctl(sup->ep_fd, EPOLL_CTL_ADD, sup->wake_fd, &wake) != 0 ||
        pthread_create(&sup->engine, NULL, tether__engine_main, sup) != 0) {
        vt->close(sup->bstate);
        rc = tether_error_set(err, TETHER_ESYS, "cannot start the supervisor: %s",
                              strerror(errno));
        goto fail;
    }
    pthread_setname_np(sup->engine, "tether-engine"); /* top -H, gdb, the tests */
    *out = sup;
    return 0;
fail:
    if (sup->wake_fd >= 0)
        close(sup->wake_fd);
    if (sup->ep_fd >= 0)
        close(sup->ep_fd);
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
    return open_with(cfg, bc->path, bc->name, &bc->timeouts, &bc->supervision, bc->options,
                     bc->n_options, out, err);
}

int tether_supervisor_open_plugin(const struct tether_config *cfg, const char *plugin_path,
                                  tether_supervisor **out, struct tether_error *err)
{
    if (!cfg || !out || !plugin_path)
        return tether_error_set(err, TETHER_EINVAL, "tether_supervisor_open_plugin: NULL argument");
    return open_with(cfg, plugin_path, NULL, &cfg->timeouts, &cfg->supervision, NULL, 0, out,
                     err);
}

void tether__free_handle(tether_handle *h)
{
    tether__chan_free(h);
    free(h->target);
    free(h->said_text);
    free(h->lost_reason);
    free(h->out_msg);
    free(h);
}

static void free_supervisor(tether_supervisor *sup)
{
    pthread_cond_destroy(&sup->cond);
    pthread_mutex_destroy(&sup->lock);
    free(sup->failure);
    free(sup->failure_before);
    free(sup->restart_times);
    free(sup->backend_name);
    free(sup);
}

static int all_final(tether_supervisor *sup)
{
    for (tether_handle *h = sup->handles; h; h = h->next)
        if (!TETHER__IS_FINAL(h))
            return 0;
    return 1;
}

/* A backend state whose spawn() never returned cannot be closed (that call
 * still uses it): it is kept here for the life of the process,
 * deliberately alive, not leaked. */
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

/* Abandoned actors of this supervisor's backend state still running, or
 * the count the supervisor made when the backend does not say. */
unsigned tether__still_running(tether_supervisor *sup)
{
    const struct tether_backend *vt = sup->plugin->vt;
    if (!vt->abandoned_count)
        return sup->abandoned;
    unsigned n;
    TETHER__BACKEND_CALL(sup, "abandoned_count", n = vt->abandoned_count(sup->bstate));
    return n;
}

int tether_supervisor_close(tether_supervisor *sup, struct tether_close_report *report)
{
    if (!sup)
        return TETHER_EINVAL;
    int64_t t0 = tether_now_ns();
    pthread_mutex_lock(&sup->lock);
    sup->closing = 1;
    unsigned live = 0;
    for (tether_handle *h = sup->handles; h; h = h->next) {
        tether__run_posted(h);
        if (!TETHER__IS_FINAL(h)) {
            live++;
            tether__dispatch(h, TETHER__EV_CLOSE, NULL);
        }
    }
    tether__wake_engine(sup); /* to take up the new deadlines */
    /* The engine finishes every actor within spawn/soft + hard of now; the
     * wait below is the same bound plus slack, so a misbehaving backend
     * cannot hold close. */
    double first = sup->to.soft_cancel > sup->to.spawn ? sup->to.soft_cancel : sup->to.spawn;
    int64_t deadline = t0 + tether__secs_ns(first) + tether__secs_ns(sup->to.hard_kill) +
                       TETHER_SLACK_NS(live);
    while ((!all_final(sup) || sup->spawning) &&
           tether__cond_wait_until(sup, deadline) != ETIMEDOUT)
        ;
    for (tether_handle *h = sup->handles; h; h = h->next) {
        tether__run_posted(h);
        if (!TETHER__IS_FINAL(h))
            tether__dispatch(h, TETHER__EV_CLOSE_EXPIRED, NULL);
    }
    /* a backend spawn() that never returned: its state cannot be closed */
    int stuck_spawn = sup->spawning > 0;
    sup->stop = 1;
    tether__wake_engine(sup);
    pthread_mutex_unlock(&sup->lock);
    /* Bounded: the engine checks `stop` after every poll, and its poll
     * returns at once on wake_fd; nothing it calls blocks (the ABI forbids
     * it, and reap is only ever called with the deadline now). */
    pthread_join(sup->engine, NULL);

    pthread_mutex_lock(&sup->lock);
    if (report) {
        report->actors = live;
        report->abandoned = sup->abandoned;
        report->elapsed_ns = tether_now_ns() - t0;
    }
    if (sup->abandoned && sup->events)
        tether__event(sup->events, 0, sup->backend_name, 0, 0, "supervisor-closed", NULL,
                      "\"abandoned\":%u,\"still_running\":%u", sup->abandoned, tether__still_running(sup));
    /* Every child is released by now, abandoned ones included (backend.h:
     * close must not wait for them and keeps alive what they use). */
    if (!stuck_spawn) {
        sup->plugin->vt->close(sup->bstate);
    } else {
        tether__plugin_pin(sup->plugin);
        keep_backend_state(sup->bstate);
    }
    tether__plugin_unref(sup->plugin);
    tether__events_close(sup->events);
    sup->events = NULL;
    close(sup->wake_fd);
    sup->wake_fd = -1;
    close(sup->ep_fd);
    sup->ep_fd = -1;
    sup->closed = 1;
    tether_handle **pp = &sup->handles;
    while (*pp) {
        tether_handle *h = *pp;
        if (h->ch.fd >= 0 && h->ch.fd_users == 0) {
            close(h->ch.fd);
            h->ch.fd = -1;
        }
        if (!h->user_ref) {
            *pp = h->next;
            tether__free_handle(h);
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

/* The backend's spawn(), made without the supervisor's lock: a backend's
 * spawn may take a moment (a fork of a large process), and nothing else
 * must wait for it. It is bounded by the spawn deadline by contract. Not
 * bracketed with TETHER__BACKEND_CALL (sup->in_call belongs to the lock
 * holder: the engine's reap would race it); the dump lists sup->spawns
 * instead. Called and returns with the lock held. */
static int spawn_unlocked(tether_supervisor *sup, const struct tether_spawn_spec *spec,
                          struct tether_child **child, struct tether_error *berr)
{
    sup->spawning++;
    struct tether__parked sp = {.what = spec->target, .since = tether_now_ns(), .next = sup->spawns};
    sup->spawns = &sp;
    /* The engine's round, restarting an actor: what it deferred goes out
     * now, and others holding the lock meanwhile broadcast at once. */
    int engine = sup->engine_holds;
    if (engine) {
        sup->engine_holds = 0;
        if (sup->wake_deferred) {
            sup->wake_deferred = 0;
            pthread_cond_broadcast(&sup->cond);
        }
    }
    pthread_mutex_unlock(&sup->lock);
    int rc = sup->plugin->vt->spawn(sup->bstate, spec, child, berr);
    pthread_mutex_lock(&sup->lock);
    sup->engine_holds = engine;
    sup->spawning--;
    for (struct tether__parked **pp = &sup->spawns; *pp; pp = &(*pp)->next)
        if (*pp == &sp) {
            *pp = sp.next;
            break;
        }
    tether__wake_waiters(sup);
    return rc;
}

int tether__spawn_instance(tether_handle *h, int sv[2], struct tether_child **child,
                           struct tether_error *err)
{
    tether_supervisor *sup = h->sup;
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    tether__chan_renew(h, sv[0]);
    int64_t now = tether_now_ns();
    tether__set_state(h, TETHER__ST_SPAWNING, now + tether__secs_ns(sup->to.spawn));
    struct tether_spawn_spec spec = {
        .target = h->target,
        .channel_fd = sv[1],
        .actor_id = h->id,
        .spawn_deadline_ns = h->deadline,
    };
    struct tether_error berr = {0, ""};
    h->respawning = 1;
    int rc = spawn_unlocked(sup, &spec, child, &berr);
    h->respawning = 0;
    if (rc)
        return tether_error_set(err, rc, "%s: %s", sup->backend_name,
                                berr.msg[0] ? berr.msg : tether_strerror(rc));
    return 0;
}

static int restart_type(const tether_supervisor *sup, const struct tether_spawn_opts *o)
{
    return o->restart ? o->restart : sup->sv.restart;
}

int tether_spawn_ex(tether_supervisor *sup, const char *target, const struct tether_spawn_opts *o,
                    tether_handle **out, struct tether_error *err)
{
    static const struct tether_spawn_opts none;
    if (out)
        *out = NULL;
    if (!o)
        o = &none;
    if (!sup || !target || !out)
        return tether_error_set(err, TETHER_EINVAL, "tether_spawn: NULL argument");
    if (!strchr(target, ':'))
        return tether_error_set(err, TETHER_EINVAL,
                                "target '%s' is not of the form path/module.so:function", target);
    if (o->restart < TETHER_RESTART_DEFAULT || o->restart > TETHER_RESTART_PERMANENT)
        return tether_error_set(err, TETHER_EINVAL, "tether_spawn: unknown restart type %d",
                                o->restart);
    if (!(o->backoff >= 0 && o->backoff <= 1e9) || !(o->backoff_max >= 0 && o->backoff_max <= 1e9))
        return tether_error_set(err, TETHER_EINVAL,
                                "tether_spawn: backoff and backoff_max must be finite seconds >= 0");
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
    tether__chan_init(h, sv[0], sup->max_frame);
    h->state = TETHER__ST_SPAWNING;
    h->state_since = tether_now_ns();
    h->deadline = h->state_since + tether__secs_ns(sup->to.spawn);

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
        tether__free_handle(h);
        return tether_error_set(err, TETHER_ESTATE, "supervisor is closing");
    }
    h->restart = restart_type(sup, o);
    h->backoff = o->backoff > 0 ? o->backoff : sup->sv.backoff;
    h->backoff_max = o->backoff_max > 0 ? o->backoff_max : sup->sv.backoff_max;
    h->backoff_next = h->backoff;
    h->seq = ++sup->next_seq;
    struct tether_child *child = NULL;
    int rc = spawn_unlocked(sup, &spec, &child, &berr);
    if (rc) {
        pthread_mutex_unlock(&sup->lock);
        tether__free_handle(h);
        return tether_error_set(err, rc == TETHER_ENOTSUP ? rc : TETHER_ESPAWN, "%s: %s: %s",
                                target, sup->backend_name,
                                berr.msg[0] ? berr.msg : tether_strerror(rc));
    }
    h->child = child;
    if (h->deadline < sup->eng_next)
        sup->eng_next = h->deadline; /* the engine's cached earliest deadline */
    /* waiting for READY: this thread reads it (tether__chan_read_direct) */
    h->ch.direct = !(o->flags & TETHER_SPAWN_NOWAIT) && !sup->closing;
    h->next = sup->handles;
    sup->handles = h;
    sup->n_handles++;
    tether__event_log(h, "spawned", target);
    if (sup->closing)
        tether__post(h, TETHER__EV_CLOSE); /* close began meanwhile: tear it down too */
    /* spawn deadline, then a teardown if it fails: B + S + H + slack */
    int64_t deadline = spec.spawn_deadline_ns + tether__secs_ns(sup->to.hard_kill) +
                       tether__secs_ns(sup->to.soft_cancel) + TETHER_SLACK_NS(1);
    *out = h;
    tether__ep_sync(h); /* its exit fd (and channel, unless read here) */
    if (h->ch.direct)
        tether__chan_read_direct(h, deadline); /* wakes the engine if it must */
    else if (h->deadline < sup->engine_until || h->ep_ch_failed || h->exit_timer)
        tether__wake_engine(sup); /* the spawn deadline comes before the engine's next
                                   * round, or epoll refused an fd: the engine's to know */
    pthread_mutex_unlock(&sup->lock);
    if (o->flags & TETHER_SPAWN_NOWAIT)
        return 0;
    return tether_wait_ready(h, deadline, err);
}

int tether_spawn(tether_supervisor *sup, const char *target, unsigned flags, tether_handle **out,
                 struct tether_error *err)
{
    struct tether_spawn_opts o = {.flags = flags};
    return tether_spawn_ex(sup, target, &o, out, err);
}

int tether_wait_ready(tether_handle *h, int64_t deadline_ns, struct tether_error *err)
{
    tether_supervisor *sup = h->sup;
    pthread_mutex_lock(&sup->lock);
    struct tether__parked p;
    tether__park(h, &p, "wait-ready");
    int timed_out = 0;
    while (!h->t_ready && !TETHER__IS_FINAL(h))
        if (tether__cond_wait_until(sup, deadline_ns) == ETIMEDOUT) {
            timed_out = 1;
            break;
        }
    tether__unpark(h, &p);
    int rc = 0;
    if (h->t_ready)
        rc = 0;
    else if (timed_out)
        rc = tether_error_set(err, TETHER_ETIMEDOUT, "%s: not ready by the caller's deadline",
                              h->target);
    else if (h->requested && !(h->said && h->said_kind == TETHER_OUTCOME_FAILED))
        rc = tether_error_set(err, TETHER_ECANCELLED, "%s: cancelled while spawning", h->target);
    else if (h->hard_from == TETHER__ST_SPAWNING && h->hard_by == TETHER__EV_DEADLINE)
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

/* ---- requests: posted to the engine ------------------------------------------------ */

static int request(tether_handle *h, int event)
{
    if (!h)
        return TETHER_EINVAL;
    tether_supervisor *sup = h->sup;
    pthread_mutex_lock(&sup->lock);
    h->for_good = 1; /* from now: an instance ending meanwhile does not restart */
    if (!TETHER__IS_FINAL(h) && !sup->closed)
        tether__post(h, event);
    pthread_mutex_unlock(&sup->lock);
    return 0;
}

int tether_cancel(tether_handle *h)
{
    return request(h, TETHER__EV_CANCEL);
}

int tether_kill(tether_handle *h)
{
    return request(h, TETHER__EV_KILL);
}

int tether_abort(tether_handle *h)
{
    if (!h)
        return TETHER_EINVAL;
    tether_supervisor *sup = h->sup;
    pthread_mutex_lock(&sup->lock);
    h->for_good = 1;
    if (!TETHER__IS_FINAL(h)) {
        /* the waiters return now, on this thread; the teardown (an actor
         * that cannot be told any more ends under the same bounds as a
         * cancelled one) is the engine's */
        tether__chan_abort(h, TETHER_EABORTED, "aborted by the supervisor's owner");
        if (!sup->closed)
            tether__post(h, TETHER__EV_OWNER_ABORT);
    }
    pthread_mutex_unlock(&sup->lock);
    return 0;
}

static void request_all(tether_supervisor *sup, int event)
{
    pthread_mutex_lock(&sup->lock);
    if (!sup->closed)
        for (tether_handle *h = sup->handles; h; h = h->next) {
            h->for_good = 1; /* a supervisor cancel: nothing restarts */
            if (!TETHER__IS_FINAL(h))
                tether__post(h, event);
        }
    pthread_mutex_unlock(&sup->lock);
}

void tether_supervisor_cancel_all(tether_supervisor *sup)
{
    request_all(sup, TETHER__EV_CANCEL);
}

void tether_supervisor_kill_all(tether_supervisor *sup)
{
    request_all(sup, TETHER__EV_KILL);
}

/* ---- waiting ---------------------------------------------------------------------- */

int tether_wait(tether_handle *h, int64_t deadline_ns, struct tether_outcome *out)
{
    if (!h)
        return TETHER_EINVAL;
    tether_supervisor *sup = h->sup;
    pthread_mutex_lock(&sup->lock);
    struct tether__parked p;
    tether__park(h, &p, "wait-outcome");
    int rc = 0;
    while (!TETHER__IS_FINAL(h))
        if (tether__cond_wait_until(sup, deadline_ns) == ETIMEDOUT) {
            rc = TETHER_ETIMEDOUT;
            break;
        }
    tether__unpark(h, &p);
    if (rc == 0 && out)
        *out = h->out;
    pthread_mutex_unlock(&sup->lock);
    return rc;
}

/* ---- releasing a handle ------------------------------------------------------------- */

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
        tether__free_handle(h);
        free_sup = --sup->n_handles == 0;
    } else {
        tether__dispatch(h, TETHER__EV_RELEASE, NULL);
        if (!sup->stop)
            tether__wake_engine(sup); /* the engine frees it once it has ended */
    }
    pthread_mutex_unlock(&sup->lock);
    if (free_sup)
        free_supervisor(sup);
}
