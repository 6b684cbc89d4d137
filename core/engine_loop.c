/* core/engine_loop.c - the engine's thread: its epoll set and its rounds.
 *
 * The teardown table and its actions are core/teardown.c; this is the loop
 * that feeds them. One thread per supervisor waits on an epoll set of every
 * actor's channel (the core's end), every backend exit fd and a wake-up
 * eventfd, with a timeout no longer than the nearest phase deadline, then
 * runs a round under the supervisor's lock: the program's posted requests
 * first, then what the wait saw (reads, flushes, reaps), then deadlines and
 * reap timers, each through tether__dispatch. It sleeps as SCHED_BATCH while
 * no actor is torn down (calm_sleep). docs/teardown.md tells the same.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "engine.h"

/* The engine's unlock: the broadcast its round deferred goes out after it. */
static void engine_unlock(tether_supervisor *sup)
{
    int wake = sup->wake_deferred;
    sup->wake_deferred = 0;
    sup->engine_holds = 0;
    pthread_mutex_unlock(&sup->lock);
    if (wake)
        pthread_cond_broadcast(&sup->cond);
}

static void engine_lock(tether_supervisor *sup)
{
    pthread_mutex_lock(&sup->lock);
    sup->engine_holds = 1;
}

/* ---- the engine thread ------------------------------------------------------ */

enum { FD_CHANNEL, FD_EXIT };

/* An exit fd fires a moment before reap can succeed (the thread backend's
 * actor thread wrote it and is still returning: pthread_tryjoin_np says
 * busy). Reap is then retried on a timer that starts at 20 us and doubles
 * up to 2 ms: a fixed 2 ms made one cooperative cancel in four on the
 * thread backend take 2.2 ms instead of 0.15 (bench/tbench --test cancel). */
#define REAP_RETRY_MIN_NS (20 * 1000LL)
#define REAP_RETRY_MAX_NS (2 * 1000 * 1000LL)

static void reap_retry_later(tether_handle *h)
{
    h->exit_timer = 1;
    h->reap_retry_ns = h->reap_retry_ns ? h->reap_retry_ns * 2 : REAP_RETRY_MIN_NS;
    if (h->reap_retry_ns > REAP_RETRY_MAX_NS)
        h->reap_retry_ns = REAP_RETRY_MAX_NS;
}

/* Reap is polled on the timer, not on an exit fd: no exit fd (once the
 * actor is past running), or the fd fired and reap said not yet. */
static int reap_on_timer(const tether_handle *h)
{
    if (!h->child)
        return 0;
    if (h->exit_timer)
        return 1;
    return h->child->exit_fd < 0 && h->state != TETHER__ST_SPAWNING &&
           h->state != TETHER__ST_RUNNING;
}

static void engine_round(tether_supervisor *sup, struct pollfd *pfd, tether_handle **who,
                         int *kind, nfds_t n, int full)
{
    /* requests first: they happened before anything this poll saw is handled */
    for (tether_handle *h = full ? sup->handles : NULL; h; h = h->next)
        if (h->posted)
            tether__run_posted(h);
    for (nfds_t i = 1; i < n; i++) {
        tether_handle *h = who[i];
        if (!pfd[i].revents || TETHER__IS_FINAL(h))
            continue;
        if (kind[i] == FD_CHANNEL && !tether__chan_aborted(h) && h->ch.fd >= 0 && !h->ch.direct) {
            if (pfd[i].revents & POLLOUT && h->ch.writer == TETHER__W_ENGINE)
                tether__chan_flush(h);
            if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
                tether__chan_read(h);
        } else if (kind[i] == FD_EXIT && h->ep_exit_on) {
            tether__try_reap(h);
            /* the exit fd stays readable: poll reap on the timer instead,
             * or the engine would spin */
            if (!TETHER__IS_FINAL(h)) {
                if (!h->exit_timer && sup->events)
                    tether__event(sup->events, h->id, sup->backend_name,
                                  h->child ? h->child->pid : 0,
                                  h->child ? TETHER__CHILD_TID(h->child) : 0, "reap-retry",
                                  "exit fd readable, reap not yet", NULL);
                reap_retry_later(h);
            }
        }
    }
    int64_t now = tether_now_ns();
    for (tether_handle *h = full ? sup->handles : NULL; h; h = h->next) {
        if (TETHER__IS_FINAL(h))
            continue;
        if (h->ch.cancel_wanted && h->ch.writer == TETHER__W_FREE && !tether__chan_aborted(h))
            tether__chan_send_cancel(h);
        if (reap_on_timer(h)) {
            tether__try_reap(h);
            if (!TETHER__IS_FINAL(h) && h->exit_timer)
                reap_retry_later(h);
        }
        if (!TETHER__IS_FINAL(h) && now >= h->deadline)
            tether__dispatch(h, TETHER__EV_DEADLINE, NULL);
    }
}

/* A long-lived supervisor frees what nobody holds any more: ended,
 * released, and no thread inside it. (Only at the top of the loop, where
 * who[] is about to be rebuilt, can the engine let go of a handle.) */
static void sweep(tether_supervisor *sup)
{
    for (tether_handle **pp = &sup->handles; *pp;) {
        tether_handle *h = *pp;
        if (TETHER__IS_FINAL(h) && !h->user_ref && !h->ch.fd_users &&
            h->ch.writer == TETHER__W_FREE && !h->ch.parked) {
            *pp = h->next;
            tether__ep_forget(h, TETHER__EP_CHANNEL | TETHER__EP_EXIT);
            tether__free_handle(h);
            sup->n_handles--;
        } else {
            pp = &h->next;
        }
    }
}

/* While every actor starts or runs, the engine sleeps as SCHED_BATCH: a
 * wake-up then does not preempt the thread that caused it (Linux: a batch
 * task waits for the running one to block or for the tick). The engine's
 * work there is bookkeeping behind the program's back -- taking up a new
 * actor after tether_spawn read its READY, reading a reply the actor wrote
 * before it blocks -- and preempting cost a context switch on the
 * program's path (bench/tbench, pinned: spawn -> ready 89 -> 52 us, call
 * round trip 27 -> 25 us, cancel 141 -> 103 us). Once any actor is being torn
 * down (or the supervisor closes) it sleeps as SCHED_OTHER: deadlines are
 * then acted on at once, not at the next tick. Awake it is always
 * SCHED_OTHER, so what it creates (a restart's thread or process) inherits
 * the normal policy. A refused change leaves the policy as it is. */
static int calm_sleep(int batch, int want)
{
    if (batch == want)
        return batch;
    struct sched_param sp = {0};
    if (pthread_setschedparam(pthread_self(), want ? SCHED_BATCH : SCHED_OTHER, &sp) != 0)
        return batch;
    return want;
}

/* ---- the epoll set -------------------------------------------------------- */

/* An event's data: the handle's address, the low bit set for its exit fd
 * (handles are malloc'd: the bit is free); 0 is wake_fd. A registration
 * always goes before its fd is closed or handed back (tether__ep_forget):
 * the kernel drops a closed fd from the set only once every copy of it is
 * closed (a forked child may briefly hold one), and a stale entry would
 * name a freed handle. */
#define EP_EXIT_BIT 1u

static int ep_ctl(tether_handle *h, int op, int fd, int exit_fd, uint32_t ev)
{
    struct epoll_event e = {.events = ev,
                            .data.u64 = (uint64_t)(uintptr_t)h | (exit_fd ? EP_EXIT_BIT : 0)};
    return epoll_ctl(h->sup->ep_fd, op, fd, &e);
}

void tether__ep_forget(tether_handle *h, int which)
{
    if ((which & TETHER__EP_CHANNEL) && h->ep_ch_on) {
        ep_ctl(h, EPOLL_CTL_DEL, h->ep_ch_fd, 0, 0);
        h->ep_ch_on = 0;
    }
    if ((which & TETHER__EP_EXIT) && h->ep_exit_on) {
        ep_ctl(h, EPOLL_CTL_DEL, h->ep_exit_fd, 1, 0);
        h->ep_exit_on = 0;
    }
}

/* The interest is what a poll set built each round would hold: the
 * channel unless ended, aborted, read by a program thread (ch.direct) or
 * paused by a full inbox (then not at all: a hang-up would wake the
 * engine without end), POLLOUT while the engine flushes a CANCEL; the exit
 * fd unless reap went on the timer. */
void tether__ep_sync(tether_handle *h)
{
    int live = !TETHER__IS_FINAL(h);
    int cfd = -1;
    uint32_t cev = 0;
    if (live && h->ch.fd >= 0 && !tether__chan_aborted(h) && !h->ch.direct) {
        int full = tether__chan_inbox_full(h), flushing = h->ch.writer == TETHER__W_ENGINE;
        if (!full || flushing) {
            cfd = h->ch.fd;
            cev = (full ? 0u : (uint32_t)EPOLLIN) | (flushing ? (uint32_t)EPOLLOUT : 0u);
        }
    }
    if (h->ep_ch_on && h->ep_ch_fd != cfd)
        tether__ep_forget(h, TETHER__EP_CHANNEL);
    h->ep_ch_failed = 0;
    if (cfd >= 0 && !h->ep_ch_on) {
        if (ep_ctl(h, EPOLL_CTL_ADD, cfd, 0, cev) == 0) {
            h->ep_ch_on = 1;
            h->ep_ch_fd = cfd;
            h->ep_ch_ev = cev;
        } else {
            h->ep_ch_failed = 1; /* ENOMEM, ENOSPC: read on the timer */
        }
    } else if (cfd >= 0 && h->ep_ch_ev != cev) {
        if (ep_ctl(h, EPOLL_CTL_MOD, cfd, 0, cev) == 0)
            h->ep_ch_ev = cev;
        else
            h->ep_ch_failed = 1;
    }
    int xfd = live && h->child && h->child->exit_fd >= 0 && !h->exit_timer ? h->child->exit_fd : -1;
    if (h->ep_exit_on && h->ep_exit_fd != xfd)
        tether__ep_forget(h, TETHER__EP_EXIT);
    if (xfd >= 0 && !h->ep_exit_on) {
        if (ep_ctl(h, EPOLL_CTL_ADD, xfd, 1, EPOLLIN) == 0) {
            h->ep_exit_on = 1;
            h->ep_exit_fd = xfd;
        } else {
            h->exit_timer = 1; /* refused: reap on the timer */
        }
    }
}

/* ---- the engine's loop ---------------------------------------------------- */

/* events taken from the epoll set per round (more wait for the next round:
 * the set is level-triggered) */
#define EP_BATCH 256

/* A round walks every actor (sync, deadlines, timers, requests, sweep),
 * except a round woken only by channel data whose reading changed nothing
 * but READY, messages and replies: it syncs the actors it read and keeps
 * the earliest deadline it knew (sup->eng_next, lowered by whoever sets
 * an earlier one). With a thousand actors, a walk per READY held the lock
 * for most of the time their spawns needed (bench: N=1000 spawned in
 * parallel). Anything else -- wake_fd (a request, a spawn, a release), an
 * exit fd, the timeout, a deadline or a reap timer due, any dispatch but
 * READY (sup->eng_full) -- makes the round a full one. */
void *tether__engine_main(void *arg)
{
    tether_supervisor *sup = arg;
    /* engine_round's view: entry 0 is wake_fd, then one per event */
    struct pollfd pfd[1 + EP_BATCH];
    tether_handle *who[1 + EP_BATCH];
    int kind[1 + EP_BATCH];
    struct epoll_event evs[EP_BATCH];
    int pwait2 = 1; /* epoll_pwait2 works (not under an old valgrind, say) */
    int batch = 0;  /* sleeping as SCHED_BATCH (calm_sleep) */
    int full = 1, calm = 0, any_failed = 0;
    int64_t retry_at = 0; /* the earliest reap timer, 0: none */
    nfds_t n = 1;
    engine_lock(sup);
    while (!sup->stop) {
        if (full) {
            sweep(sup);
            sup->eng_full = 0;
            calm = !sup->closing;
            any_failed = 0;
            int64_t next = tether_now_ns() + TETHER_NS_PER_SEC; /* at least once a second */
            int64_t retry_ns = 0;
            for (tether_handle *h = sup->handles; h; h = h->next) {
                tether__ep_sync(h);
                if (TETHER__IS_FINAL(h))
                    continue;
                if (h->ep_ch_failed) {
                    any_failed = 1;
                    if (!retry_ns || REAP_RETRY_MAX_NS < retry_ns)
                        retry_ns = REAP_RETRY_MAX_NS;
                }
                if (reap_on_timer(h)) {
                    int64_t p =
                        h->exit_timer && h->reap_retry_ns ? h->reap_retry_ns : REAP_RETRY_MAX_NS;
                    if (!retry_ns || p < retry_ns)
                        retry_ns = p;
                }
                if (h->deadline < next)
                    next = h->deadline;
                if (h->state != TETHER__ST_SPAWNING && h->state != TETHER__ST_RUNNING &&
                    h->state != TETHER__ST_RESTARTING)
                    calm = 0;
            }
            sup->eng_next = next;
            retry_at = retry_ns ? tether_now_ns() + retry_ns : 0;
        } else {
            for (nfds_t i = 1; i < n; i++)
                tether__ep_sync(who[i]); /* what this round read: an inbox may be full */
        }
        int64_t now = tether_now_ns();
        int64_t until = retry_at && retry_at < sup->eng_next ? retry_at : sup->eng_next;
        int64_t wait_ns = until > now ? until - now : 0;
        sup->engine_until = now + wait_ns;
        engine_unlock(sup);
        struct timespec wait = {(time_t)(wait_ns / TETHER_NS_PER_SEC),
                                (long)(wait_ns % TETHER_NS_PER_SEC)};
        batch = calm_sleep(batch, calm);
        /* Bounded: at most one second (eng_next is at most a second past
         * the last full round, and a timeout makes a full round), woken
         * early by wake_fd. (epoll_pwait2: a timer never fires early, and
         * a reap retry needs finer steps than milliseconds.) */
        int r = pwait2 ? epoll_pwait2(sup->ep_fd, evs, EP_BATCH, &wait, NULL) : -1;
        if (r < 0 && (!pwait2 || errno == ENOSYS)) {
            pwait2 = 0; /* milliseconds, rounded up: never early */
            r = epoll_wait(sup->ep_fd, evs, EP_BATCH, (int)((wait_ns + 999999) / 1000000));
        }
        batch = calm_sleep(batch, 0);
        engine_lock(sup);
        full = r <= 0 || sup->eng_full || any_failed;
        /* Handles are only freed by this thread (sweep, which takes them
         * out of the set first) or by close after this thread is joined,
         * so the events' handles stay valid across the unlocked wait. */
        n = 1;
        pfd[0].revents = 0;
        for (int i = 0; i < r; i++) {
            uint64_t d = evs[i].data.u64;
            if (d == 0) {
                uint64_t v;
                ssize_t rd = read(sup->wake_fd, &v, sizeof v);
                (void)rd;
                full = 1;
                continue;
            }
            uint32_t e = evs[i].events;
            who[n] = (tether_handle *)(uintptr_t)(d & ~(uint64_t)EP_EXIT_BIT);
            kind[n] = d & EP_EXIT_BIT ? FD_EXIT : FD_CHANNEL;
            if (kind[n] == FD_EXIT)
                full = 1;
            pfd[n].revents = (short)((e & EPOLLIN ? POLLIN : 0) | (e & EPOLLOUT ? POLLOUT : 0) |
                                     (e & EPOLLHUP ? POLLHUP : 0) | (e & EPOLLERR ? POLLERR : 0));
            n++;
        }
        now = tether_now_ns();
        if (now >= sup->eng_next || (retry_at && now >= retry_at))
            full = 1;
        /* a channel epoll refused is read every (full) round */
        for (tether_handle *h = any_failed ? sup->handles : NULL; h; h = h->next)
            if (h->ep_ch_failed && !TETHER__IS_FINAL(h) && h->ch.fd >= 0 &&
                !tether__chan_aborted(h) && !h->ch.direct && !tether__chan_inbox_full(h))
                tether__chan_read(h);
        engine_round(sup, pfd, who, kind, n, full);
        if (sup->eng_full)
            full = 1; /* a dispatch in this round */
    }
    engine_unlock(sup);
    return NULL;
}
