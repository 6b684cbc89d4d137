/* core/engine.h - the supervisor's private shapes, shared by its rooms:
 *
 *   teardown.c    the teardown table (state x event -> action), dispatch(),
 *                 the actions and the engine thread. Start reading there.
 *   outcome.c     the outcome decision: a pure function.
 *   restart.c     restarts: whether an ended instance starts again, the
 *                 intensity, the backoff, the respawn (state RESTARTING).
 *   channel.c     the core's end of each channel: frames in, inbox and
 *                 backpressure, the CANCEL frame out, send/recv/call and
 *                 the parked waiters.
 *   supervisor.c  the public supervisor API: open, close, spawn, requests,
 *                 queries, the hang dump.
 *
 * Locking: one mutex a supervisor (sup->lock) guards everything below
 * except what a comment says otherwise. Never installed. */
#ifndef TETHER_ENGINE_H
#define TETHER_ENGINE_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "handle_fd.h" /* tether_handle_fd */
#include "internal.h"
#include "wire.h"

/* ---- the teardown table's vocabulary (documented in docs/teardown.md) ---- */

/* Where an actor is in its life. The two last are final. */
enum tether__state {
    TETHER__ST_SPAWNING,  /* started; waiting for READY under the spawn deadline */
    TETHER__ST_RUNNING,   /* ready; no deadline */
    TETHER__ST_SOFT,      /* cancel requested; CANCEL sent; soft_cancel deadline */
    TETHER__ST_EXITING,   /* said STOPPED or closed its channel; hard_kill deadline for the exit */
    TETHER__ST_HARD,      /* hard kill + channels aborted; hard_kill deadline for the reap */
    TETHER__ST_RESTARTING,/* an instance ended and the actor restarts: backoff deadline, then
                           * the next instance is spawned (-> SPAWNING) */
    TETHER__ST_REAPED,    /* final: outcome known, child released */
    TETHER__ST_ABANDONED, /* final: cut loose, counted, never waited for again */
    TETHER__N_STATES
};

/* Everything that can happen to an actor, from every source. */
enum tether__event {
    TETHER__EV_READY,         /* frame READY */
    TETHER__EV_STOPPED,       /* frame STOPPED (the actor said how it ended) */
    TETHER__EV_EOF,           /* the channel ended without a STOPPED frame */
    TETHER__EV_PROTOCOL,      /* a frame that does not decode or is too big */
    TETHER__EV_EXITED,        /* the backend's reap collected the actor */
    TETHER__EV_DEADLINE,      /* the current phase's deadline passed */
    TETHER__EV_CANCEL,        /* tether_cancel, tether_supervisor_cancel_all */
    TETHER__EV_KILL,          /* tether_kill, tether_supervisor_kill_all */
    TETHER__EV_OWNER_ABORT,   /* tether_abort: the owner shut the channel */
    TETHER__EV_SEND_BROKEN,   /* a program thread's send stopped mid-frame */
    TETHER__EV_CLOSE,         /* tether_supervisor_close began */
    TETHER__EV_CLOSE_EXPIRED, /* close's own deadline passed with the actor not final */
    TETHER__EV_SIBLING,       /* a sibling failed (one_for_all) */
    TETHER__EV_RELEASE,       /* the owner released the handle */
    TETHER__EV_RESTART,       /* a sibling restarts and takes this one along
                               * (one_for_all, rest_for_one) */
    TETHER__N_EVENTS
};

/* What a cell of the table does. */
enum tether__action {
    TETHER__A_IGNORE,      /* nothing, on purpose (the cell's text says why) */
    TETHER__A_IMPOSSIBLE,  /* cannot happen: counted, and logged in debug builds */
    TETHER__A_READY,       /* -> RUNNING */
    TETHER__A_NOTE_READY,  /* record the greeting, stay */
    TETHER__A_STOPPED,     /* abort our end (the actor is done) -> EXITING */
    TETHER__A_STOPPED_STAY,/* abort our end, stay (the soft deadline still runs) */
    TETHER__A_LOST,        /* lost: abort our end -> EXITING */
    TETHER__A_CLOSED_STAY, /* abort our end, stay */
    TETHER__A_PROTOCOL,    /* lost: abort our end (EPROTO) -> HARD */
    TETHER__A_REAPED,      /* drain the channel, decide the outcome -> REAPED */
    TETHER__A_SOFT,        /* note the request; CANCEL + soft_cancel -> SOFT (HARD if soft_cancel is 0) */
    TETHER__A_NOTE,        /* note the request (it changes the outcome), stay */
    TETHER__A_HARD,        /* hard_kill + abort_channels + abort our end -> HARD */
    TETHER__A_ABANDON,     /* a last reap; else -> ABANDONED */
    TETHER__A_FORCE,       /* close expired: HARD if not yet, a last reap, else -> ABANDONED */
    TETHER__A_RESPAWN,     /* start the next instance (fresh channel, backend spawn) -> SPAWNING */
    TETHER__A_END,         /* end for good between instances: the last outcome stands -> final */
    TETHER__N_ACTIONS
};

/* One cell: the action and why (the reason logged with the transition). */
struct tether__cell {
    unsigned char action;
    const char *why;
};

/* Who asked for the end (data the outcome decision reads). */
enum tether__request {
    TETHER__REQ_NONE,
    TETHER__REQ_CANCEL, /* cancel, kill, close, a failed sibling, or a sibling's restart */
    TETHER__REQ_OWNER_ABORT
};

const struct tether__cell *tether__teardown_cell(int state, int event);
const char *tether__state_name(int state);
const char *tether__event_name(int event);
const char *tether__action_name(int action);

/* ---- the outcome decision (outcome.c): a pure function -------------------- */

struct tether__ending {
    int abandoned;          /* ended in ABANDONED (else REAPED) */
    int hard_killed;        /* the HARD phase happened */
    int requested;          /* enum tether__request */
    const char *lost_reason; /* the channel was lost (EOF without STOPPED, protocol error), or NULL */
    int said;               /* the actor sent STOPPED: */
    int said_kind, said_code;
    const char *said_text;  /* may be NULL */
    const struct tether_outcome *reaped; /* the backend's reap result, or NULL (abandoned) */
    int in_process;         /* a thread, not a process (for the abandoned text) */
};

struct tether__decision {
    int kind, code, signal;
    const char *message; /* NULL, a string of the input, or `buf` */
    int failure;         /* a failure of the supervisor (sets its failure; one_for_all) */
};

/* Decide how the actor ended. Reads only its arguments; writes only `d`
 * and `buf` (the message when composed). */
void tether__outcome_decide(const struct tether__ending *in, struct tether__decision *d,
                            char *buf, size_t buflen);

/* ---- the core's end of a channel (channel.c) ----------------------------- */

struct tether__parked {
    const char *what;
    pid_t tid;
    int64_t since;
    struct tether__parked *next;
};

struct tether__pcall {
    uint64_t id;
    int done;
    int rc;
    struct tether_value ret;
    char *text; /* error text, or returned string */
    struct tether__pcall *next;
};

struct tether__inbox_msg {
    void *data;
    size_t len;
    struct tether__inbox_msg *next;
};

/* Who writes on the channel now (one writer at a time; frames never interleave). */
enum tether__writer {
    TETHER__W_FREE,          /* nobody */
    TETHER__W_PROGRAM,       /* a program thread, outside the lock */
    TETHER__W_ENGINE         /* the engine, flushing the CANCEL frame */
};

/* Messages from an actor wait in its inbox until the owner receives them.
 * Past these bounds the engine stops reading that channel (backpressure:
 * the actor's sends block, and a flooding child cannot exhaust the
 * supervisor); reading resumes as the owner drains it. */
#define TETHER__INBOX_MAX_MSGS 65536
#define TETHER__INBOX_MAX_BYTES (64u * 1024 * 1024)

struct tether__channel {
    int fd;
    int fd_users;  /* program threads writing outside the lock */
    int abort_err; /* 0 while open; once aborted, what waiters get */
    int writer;    /* enum tether__writer */
    int cancel_wanted; /* a CANCEL frame waits for the writer's turn */
    int direct; /* a program thread reads it itself (READY, a call's reply): not in the
                 * engine's epoll set (channel.c, read_direct) */
    uint8_t *pend; /* engine's unflushed CANCEL bytes */
    size_t pend_len, pend_off;
    struct tether__reader rd;
    struct tether__inbox_msg *inbox, **inbox_tail;
    size_t inbox_count, inbox_bytes;
    size_t inbox_dropped; /* over the bound during teardown */
    struct tether__pcall *calls;
    uint64_t next_call;
    struct tether__parked *parked;
};

/* ---- handles and the supervisor -------------------------------------------- */

struct tether_handle {
    tether_supervisor *sup;
    struct tether_handle *next; /* in sup->handles */
    uint64_t id;
    char *target;
    int user_ref; /* the program still holds it */

    int state; /* enum tether__state: the only control state */
    int64_t state_since;
    int64_t deadline; /* of the current phase; TETHER_NEVER if none */
    unsigned posted;  /* program threads' requests for the engine: bits of 1u << event */

    struct tether__channel ch;
    struct tether_child *child; /* the backend's, until released */
    int exit_timer; /* exit fd fired but reap said not yet: reap on the timer */
    /* in the engine's epoll set (engine_loop.c, tether__ep_sync): which fd, for what */
    int ep_ch_on, ep_ch_fd, ep_exit_on, ep_exit_fd;
    uint32_t ep_ch_ev;
    int ep_ch_failed; /* epoll_ctl refused the channel: the engine reads it every round */
    int64_t reap_retry_ns; /* with exit_timer: the timer's period, doubled per try
                            * from REAP_RETRY_MIN_NS to _MAX_NS (teardown.c) */

    /* data the actions record and the outcome decision reads */
    int requested; /* enum tether__request */
    int hard_from; /* state HARD was entered from, and by which event */
    int hard_by;
    int said, said_kind, said_code;
    char *said_text;
    char *lost_reason;
    struct tether_outcome out;
    char *out_msg;
    int64_t t_ready, t_cancel, t_hard, t_end; /* 0: not (yet) */
    struct tether__hfd hfd; /* tether_handle_fd (handle_fd.c) */

    /* restarts (carried across instances; the rest above is per instance) */
    uint64_t seq;        /* start order in the supervisor (rest_for_one) */
    int restart;         /* TETHER_RESTART_* (never _DEFAULT) */
    int for_good;        /* the program (or close, or a give-up) ended it: no restart */
    int restart_asked;   /* this instance ends because a sibling restarts */
    int last_final;      /* REAPED or ABANDONED: the final state of the last instance */
    unsigned restarts;   /* instances started after the first */
    double backoff, backoff_max; /* seconds (0: none) */
    double backoff_next; /* the delay before the next respawn */
    int respawning;      /* the engine is in the backend's spawn() for it, unlocked */
};

struct tether_supervisor {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC; broadcast at every change
                          * (tether__wake_waiters) */
    int wake_fd;
    int ep_fd; /* the engine's epoll set: wake_fd, channels, exit fds */
    int64_t engine_until; /* the engine wakes by then on its own (its timeout) */
    int64_t eng_next; /* no phase deadline comes before this (lowered by whoever sets one) */
    int eng_full;     /* a change only a walk over every actor takes up (engine_loop.c) */
    pthread_t engine;
    int engine_holds;   /* the engine thread holds `lock` for its round */
    int wake_deferred;  /* a change in that round: broadcast once it unlocks */
    int stop;
    int closing;  /* close has begun: no new spawn */
    int spawning; /* backend spawn() calls in progress (made without the lock) */
    struct tether__parked *spawns; /* the threads making them, for the dump */
    int closed;
    struct tether_timeouts to;
    uint64_t max_frame;
    struct tether__plugin *plugin;
    void *bstate;
    char *backend_name;
    struct tether__events *events;
    struct tether_handle *handles;
    unsigned n_handles; /* not yet freed */
    unsigned abandoned;
    unsigned impossible;     /* IMPOSSIBLE cells met (a bug) */
    unsigned backend_errors; /* nonzero returns of soft_cancel/hard_kill/abort_channels */
    /* The backend member a thread holding the lock is inside, for the hang
     * dump (read without the lock when the lock cannot be had: atomics). */
    const char *in_call;
    int64_t in_call_since;
    char *failure;
    char *failure_before; /* the failure a give-up replaced (valid until close) */
    /* restarts (supervisor-wide) */
    struct tether_supervision sv;
    int64_t *restart_times; /* the last sv.max_restarts restarts, a ring */
    unsigned n_restart_times, restart_ring_pos;
    unsigned restarts_total;
    int gave_up;            /* restart intensity exceeded: nothing restarts any more */
    uint64_t next_seq;
};

/* teardown.c */
void tether__set_state(tether_handle *h, int st, int64_t deadline);
void tether__dispatch(tether_handle *h, int event, const struct tether_outcome *reaped);
/* A program thread's request: queued for the engine (which alone calls the
 * backend's teardown members), engine woken. */
void tether__post(tether_handle *h, int event);
/* Dispatch what program threads posted (engine, or the closing thread). */
void tether__run_posted(tether_handle *h);
/* Poll the backend's reap once; on success dispatches EXITED. */
void tether__try_reap(tether_handle *h);
void *tether__engine_main(void *arg);
void tether__wake_engine(tether_supervisor *sup);
/* Wake the threads waiting on sup->cond (with sup->lock held). From the
 * engine's round the broadcast waits until the engine unlocks: woken under
 * the lock, each waiter would only block again on it. */
void tether__wake_waiters(tether_supervisor *sup);
void tether__event_log(tether_handle *h, const char *phase, const char *reason);
int64_t tether__secs_ns(double s);
/* supervisor.c: start the next instance of h's actor on the channel sv
 * (sv[0] becomes the core's end: the old channel's program threads are
 * gone, tether__chan_idle; sv[1] goes to the backend). h enters SPAWNING;
 * the backend's spawn() is made without the lock (sup->spawning counts
 * it, the dump shows it). Called and returns with the lock held. Returns
 * 0 and *child, or the backend's error with `err` filled. */
int tether__spawn_instance(tether_handle *h, int sv[2], struct tether_child **child,
                           struct tether_error *err);

/* restart.c */
/* Whether the ended instance restarts (its intensity counted); *gave_up
 * when the intensity is exceeded (the caller ends it, then tether__give_up). */
int tether__restart_decide(tether_handle *h, const struct tether__decision *d, int *gave_up);
/* -> RESTARTING with the backoff as deadline; the group restarts with it. */
void tether__restart_schedule(tether_handle *h, int final_state);
/* RESPAWN: the next instance (or 2 ms later while the old channel empties). */
void tether__respawn(tether_handle *h);
/* END: the last instance's outcome stands -> its final state. */
void tether__restart_end(tether_handle *h, const char *why);
/* The intensity is exceeded: report it, tear every other actor down. */
void tether__give_up(tether_supervisor *sup, tether_handle *h);
/* Free an ended handle (its channel fd closed if still open). */
void tether__free_handle(tether_handle *h);
/* supervisor.c: abandoned actors of this supervisor's backend state still
 * running (the backend's count, else the supervisor's). */
unsigned tether__still_running(tether_supervisor *sup);
#define TETHER__IS_FINAL(h)                                                                      \
    ((h)->state == TETHER__ST_REAPED || (h)->state == TETHER__ST_ABANDONED)
/* The handle's pollable fd is readable while recv or wait would not block:
 * kept in step wherever the inbox or the state changes. */
#define TETHER__HFD_READABLE(h) ((h)->ch.inbox != NULL || TETHER__IS_FINAL(h))
#define TETHER__HFD_SYNC(h) tether__hfd_sync(&(h)->hfd, TETHER__HFD_READABLE(h))

/* channel.c */
void tether__chan_init(tether_handle *h, int fd, uint64_t max_frame);
void tether__chan_free(tether_handle *h);
/* Shut the core's end of the channel: every waiter returns `err` now. */
void tether__chan_abort(tether_handle *h, int err, const char *why);
int tether__chan_aborted(const tether_handle *h);
/* Queue a CANCEL frame; sent now if the writer's turn is free. Never blocks. */
void tether__chan_send_cancel(tether_handle *h);
void tether__chan_flush(tether_handle *h);
/* Read what is there (bounded), dispatching READY, STOPPED, EOF, PROTOCOL. */
void tether__chan_read(tether_handle *h);
/* The engine's interest in h's channel and exit fd, brought up to date in
 * its epoll set (any thread, under the lock); and dropped, before an fd
 * is closed or handed back to the backend (which = TETHER__EP_*). */
void tether__ep_sync(tether_handle *h);
#define TETHER__EP_CHANNEL 1
#define TETHER__EP_EXIT 2
void tether__ep_forget(tether_handle *h, int which);
/* The spawning thread's own read of its actor's READY (channel.c, read_direct). */
void tether__chan_read_direct(tether_handle *h, int64_t until);
/* The actor has ended: read everything it left before the outcome. */
void tether__chan_drain(tether_handle *h);
/* Over the inbox bound and not tearing down: do not read. */
int tether__chan_inbox_full(const tether_handle *h);
void tether__chan_close_if_unused(tether_handle *h);
/* No program thread uses the (aborted) channel any more, bar those waiting
 * on the actor itself (wait, wait_ready): a restart may renew it. */
int tether__chan_idle(const tether_handle *h);
/* A fresh channel `fd` for the next instance; the inbox, the pollable fd
 * and the outcome waiters carry over. Only once tether__chan_idle. */
void tether__chan_renew(tether_handle *h, int fd);
unsigned tether__chan_count_parked(const tether_handle *h);
void tether__park(tether_handle *h, struct tether__parked *p, const char *what);
void tether__unpark(tether_handle *h, struct tether__parked *p);
int tether__cond_wait_until(tether_supervisor *sup, int64_t deadline);

/* Bracket every backend call a lock holder makes, so a stuck backend shows
 * in the hang dump. */
#define TETHER__BACKEND_CALL(sup, name, expr)                                                    \
    do {                                                                                         \
        __atomic_store_n(&(sup)->in_call_since, tether_now_ns(), __ATOMIC_RELAXED);              \
        __atomic_store_n(&(sup)->in_call, (name), __ATOMIC_RELEASE);                             \
        expr;                                                                                    \
        __atomic_store_n(&(sup)->in_call, (const char *)NULL, __ATOMIC_RELEASE);                 \
    } while (0)

/* A backend may fill thread_id from the actor's own thread (the thread
 * backend does: only that thread knows its gettid): read it atomically. */
#define TETHER__CHILD_TID(child) __atomic_load_n(&(child)->thread_id, __ATOMIC_RELAXED)

#endif
