/* core/teardown.c - the teardown engine: one table, one dispatch, one thread.
 *
 * THE TABLE BELOW IS THE STATE MACHINE. Every event from every source --
 * frames (READY, STOPPED), the end of a channel, a protocol error, the
 * backend's exit, a phase deadline, the program's requests (cancel, kill,
 * abort, release), the supervisor's close, a sibling's failure -- goes
 * through tether__dispatch(), which looks up table[state][event] and runs
 * that cell's action. Nothing else changes `state`. Every cell is filled:
 * an action, IGNORE on purpose, or IMPOSSIBLE (counted, logged in debug
 * builds). docs/teardown.md shows the same table (`tether doc teardown`
 * prints it from here), and tests/unit/test_teardown.c checks that the two
 * agree cell by cell.
 *
 * One engine thread per supervisor owns the clock (core/engine_loop.c). It
 * waits on an epoll set of every actor's channel (the core's end), every
 * backend exit fd, and a wake-up eventfd, with a timeout no longer than the
 * nearest phase deadline. Program threads never call the backend's teardown
 * members: their requests are posted (tether__post) and dispatched by the
 * engine at the start of its next round. The closing thread dispatches
 * itself (the engine is still running, the lock serialises them). A program
 * thread waiting for one frame (READY, a call's reply) may read the channel
 * itself meanwhile (channel.c, read_direct).
 *
 * Entering HARD calls the backend's hard_kill and abort_channels, then
 * shuts down the core's own end of the channel (never trusting the backend
 * alone): every parked waiter returns at once. Entering a final state
 * decides the outcome (outcome.c), then releases the backend's child; an
 * abandoned actor pins its plugin. Before the final state is entered,
 * restart.c decides whether the actor restarts instead: then it goes to
 * RESTARTING (no channel, no child, the backoff as deadline), whose
 * DEADLINE respawns it and whose requests end it for good.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"

/* ---- the table ----------------------------------------------------------- */

#define C(a, w) {TETHER__A_##a, w}
#define FINAL_ROW                                                                                \
    {                                                                                            \
        C(IMPOSSIBLE, "no reads after the end"), C(IMPOSSIBLE, "no reads after the end"),        \
            C(IMPOSSIBLE, "no reads after the end"), C(IMPOSSIBLE, "no reads after the end"),    \
            C(IMPOSSIBLE, "the child is released"), C(IMPOSSIBLE, "no deadline after the end"),  \
            C(IGNORE, "already ended"), C(IGNORE, "already ended"), C(IGNORE, "already ended"),  \
            C(IGNORE, "already ended"), C(IGNORE, "already ended"),                              \
            C(IMPOSSIBLE, "close forces only live actors"), C(IGNORE, "already ended"),          \
            C(IGNORE, "the engine frees it"), C(IGNORE, "already ended")                         \
    }

/* Columns: READY STOPPED EOF PROTOCOL EXITED DEADLINE CANCEL KILL OWNER_ABORT
 * SEND_BROKEN CLOSE CLOSE_EXPIRED SIBLING RELEASE RESTART (enum tether__event). */
static const struct tether__cell table[TETHER__N_STATES][TETHER__N_EVENTS] = {
    [TETHER__ST_SPAWNING] = {
        C(READY, NULL), C(STOPPED, "actor stopped"),
        C(LOST, "channel closed without a stopped message"), C(PROTOCOL, "protocol error"),
        C(REAPED, NULL), C(HARD, "spawn deadline expired"), C(SOFT, NULL),
        C(HARD, "kill requested"), C(SOFT, NULL), C(HARD, "a send timed out mid-frame"),
        C(SOFT, NULL), C(FORCE, "supervisor close: deadline expired"), C(SOFT, NULL),
        C(IGNORE, "freed once it has ended"), C(SOFT, NULL)},
    [TETHER__ST_RUNNING] = {
        C(IGNORE, "a second greeting"), C(STOPPED, "actor stopped"),
        C(LOST, "channel closed without a stopped message"), C(PROTOCOL, "protocol error"),
        C(REAPED, NULL), C(IMPOSSIBLE, "running has no deadline"), C(SOFT, NULL),
        C(HARD, "kill requested"), C(SOFT, NULL), C(HARD, "a send timed out mid-frame"),
        C(SOFT, NULL), C(FORCE, "supervisor close: deadline expired"), C(SOFT, NULL),
        C(IGNORE, "freed once it has ended"), C(SOFT, NULL)},
    [TETHER__ST_SOFT] = {
        C(NOTE_READY, NULL), C(STOPPED_STAY, "actor stopped"),
        C(CLOSED_STAY, "channel closed without a stopped message"),
        C(PROTOCOL, "protocol error"), C(REAPED, NULL),
        C(HARD, "soft_cancel deadline expired"), C(NOTE, "cancel already under way"),
        C(HARD, "kill requested"), C(NOTE, "cancel already under way"),
        C(HARD, "a send timed out mid-frame"), C(NOTE, "cancel already under way"),
        C(FORCE, "supervisor close: deadline expired"), C(NOTE, "cancel already under way"),
        C(IGNORE, "freed once it has ended"), C(NOTE, "cancel already under way")},
    [TETHER__ST_EXITING] = {
        C(IMPOSSIBLE, "our end is aborted"), C(IMPOSSIBLE, "our end is aborted"),
        C(IMPOSSIBLE, "our end is aborted"), C(IMPOSSIBLE, "our end is aborted"),
        C(REAPED, NULL), C(HARD, "did not exit within hard_kill after stopping"),
        C(NOTE, "the actor is ending"), C(HARD, "kill requested"), C(NOTE, "the actor is ending"),
        C(HARD, "a send timed out mid-frame"), C(NOTE, "the actor is ending"),
        C(FORCE, "supervisor close: deadline expired"), C(NOTE, "the actor is ending"),
        C(IGNORE, "freed once it has ended"), C(NOTE, "the actor is ending")},
    [TETHER__ST_HARD] = {
        C(IMPOSSIBLE, "our end is aborted"), C(IMPOSSIBLE, "our end is aborted"),
        C(IMPOSSIBLE, "our end is aborted"), C(IMPOSSIBLE, "our end is aborted"),
        C(REAPED, NULL), C(ABANDON, "hard_kill deadline expired"), C(NOTE, "already killed"),
        C(NOTE, "already killed"), C(NOTE, "already killed"), C(IGNORE, "our end is aborted"),
        C(NOTE, "already killed"), C(FORCE, "supervisor close: deadline expired"),
        C(NOTE, "already killed"), C(IGNORE, "freed once it has ended"),
        C(NOTE, "already killed")},
    /* Between two instances: no channel, no child; only the clock (the
     * backoff) and the program's or the supervisor's word act. */
    [TETHER__ST_RESTARTING] = {
        C(IMPOSSIBLE, "no channel between instances"),
        C(IMPOSSIBLE, "no channel between instances"),
        C(IMPOSSIBLE, "no channel between instances"),
        C(IMPOSSIBLE, "no channel between instances"),
        C(IMPOSSIBLE, "no child between instances"), C(RESPAWN, "backoff over"),
        C(END, "cancelled between instances"), C(END, "killed between instances"),
        C(END, "aborted between instances"), C(IGNORE, "the old channel is gone"),
        C(END, "supervisor close: nothing restarts"),
        C(END, "supervisor close: nothing restarts"), C(END, "the supervisor gives up"),
        C(IGNORE, "the supervisor owns it: it restarts on"),
        C(IGNORE, "already restarting")},
    [TETHER__ST_REAPED] = FINAL_ROW,
    [TETHER__ST_ABANDONED] = FINAL_ROW,
};
#undef FINAL_ROW
#undef C

static const char *const state_names[TETHER__N_STATES] = {
    "spawning", "running", "soft-cancel", "exiting", "hard-kill", "restarting", "reaped",
    "abandoned"};
static const char *const event_names[TETHER__N_EVENTS] = {
    "ready",  "stopped", "eof",         "protocol",      "exited",  "deadline", "cancel",
    "kill",   "owner-abort", "send-broken", "close", "close-expired", "sibling", "release",
    "restart"};
static const char *const action_names[TETHER__N_ACTIONS] = {
    "ignore", "impossible", "ready",  "note-ready", "stopped", "stopped-stay", "lost",
    "closed-stay", "protocol", "reaped", "soft", "note", "hard", "abandon", "force",
    "respawn", "end"};

const struct tether__cell *tether__teardown_cell(int state, int event)
{
    if (state < 0 || state >= TETHER__N_STATES || event < 0 || event >= TETHER__N_EVENTS)
        return NULL;
    return &table[state][event];
}

const char *tether__state_name(int state)
{
    return state >= 0 && state < TETHER__N_STATES ? state_names[state] : "?";
}

const char *tether__event_name(int event)
{
    return event >= 0 && event < TETHER__N_EVENTS ? event_names[event] : "?";
}

const char *tether__action_name(int action)
{
    return action >= 0 && action < TETHER__N_ACTIONS ? action_names[action] : "?";
}

/* Print the table (tether doc teardown; docs/teardown.md holds the same). */
void tether_teardown_table(FILE *fp)
{
    fprintf(fp, "| state \\ event |");
    for (int e = 0; e < TETHER__N_EVENTS; e++)
        fprintf(fp, " %s |", event_names[e]);
    fprintf(fp, "\n|---|");
    for (int e = 0; e < TETHER__N_EVENTS; e++)
        fprintf(fp, "---|");
    fputc('\n', fp);
    for (int s = 0; s < TETHER__N_STATES; s++) {
        fprintf(fp, "| %s |", state_names[s]);
        for (int e = 0; e < TETHER__N_EVENTS; e++)
            fprintf(fp, " %s |", action_names[table[s][e].action]);
        fputc('\n', fp);
    }
}

/* ---- small helpers ------------------------------------------------------- */

/* Seconds to nanoseconds, clamped so that sums of a few stay far from overflow. */
int64_t tether__secs_ns(double s)
{
    if (!(s > 0))
        return 0;
    if (s > 1e9)
        return (int64_t)1e18;
    return (int64_t)(s * 1e9);
}

void tether__wake_engine(tether_supervisor *sup)
{
    uint64_t one = 1;
    ssize_t w = write(sup->wake_fd, &one, sizeof one);
    (void)w; /* an eventfd at its maximum is already readable */
}

void tether__wake_waiters(tether_supervisor *sup)
{
    /* set only while the engine's round holds the lock (spawn_unlocked
     * clears it for the time the engine lets go of the lock) */
    if (sup->engine_holds)
        sup->wake_deferred = 1;
    else
        pthread_cond_broadcast(&sup->cond);
}

void tether__event_log(tether_handle *h, const char *phase, const char *reason)
{
    tether_supervisor *sup = h->sup;
    if (!sup->events)
        return;
    tether__event(sup->events, h->id, sup->backend_name, h->child ? h->child->pid : 0,
                  h->child ? TETHER__CHILD_TID(h->child) : 0, phase, reason, "\"state\":\"%s\"",
                  state_names[h->state]);
}

void tether__set_state(tether_handle *h, int st, int64_t deadline)
{
    h->state = st;
    h->state_since = tether_now_ns();
    h->deadline = deadline;
    if (deadline < h->sup->eng_next)
        h->sup->eng_next = deadline; /* the engine's cached earliest deadline */
    TETHER__HFD_SYNC(h);
    tether__wake_waiters(h->sup);
}

/* A nonzero return of soft_cancel/hard_kill/abort_channels: the clock drives
 * the teardown either way, but the author should see it. */
static void backend_said(tether_handle *h, const char *member, int rc)
{
    if (rc == 0)
        return;
    tether_supervisor *sup = h->sup;
    sup->backend_errors++;
    if (sup->events)
        tether__event(sup->events, h->id, sup->backend_name, h->child ? h->child->pid : 0,
                      h->child ? TETHER__CHILD_TID(h->child) : 0, "backend-error", member,
                      "\"error\":\"%s\"", tether_err_name(rc));
}

/* ---- the actions ---------------------------------------------------------- */

static void begin_hard(tether_handle *h, int event, const char *why)
{
    tether_supervisor *sup = h->sup;
    h->t_hard = tether_now_ns();
    h->hard_from = h->state;
    h->hard_by = event;
    tether__set_state(h, TETHER__ST_HARD, h->t_hard + tether__secs_ns(sup->to.hard_kill));
    tether__event_log(h, "hard-kill", why);
    const struct tether_backend *vt = sup->plugin->vt;
    if (h->child) {
        int rc;
        TETHER__BACKEND_CALL(sup, "hard_kill", rc = vt->hard_kill(h->child));
        backend_said(h, "hard_kill", rc);
        TETHER__BACKEND_CALL(sup, "abort_channels", rc = vt->abort_channels(h->child));
        backend_said(h, "abort_channels", rc);
    }
    /* Defence in depth: whatever the backend did, our end goes now. */
    tether__chan_abort(h, TETHER_EABORTED, why);
}

static void begin_soft(tether_handle *h, int event)
{
    tether_supervisor *sup = h->sup;
    h->t_cancel = tether_now_ns();
    tether__event_log(h, "cancel-requested", NULL);
    if (sup->to.soft_cancel <= 0) {
        begin_hard(h, event, "soft_cancel is 0: hard kill at once");
        return;
    }
    tether__set_state(h, TETHER__ST_SOFT, h->t_cancel + tether__secs_ns(sup->to.soft_cancel));
    tether__chan_send_cancel(h);
    if (h->child) {
        int rc;
        TETHER__BACKEND_CALL(sup, "soft_cancel", rc = sup->plugin->vt->soft_cancel(h->child));
        backend_said(h, "soft_cancel", rc);
    }
    tether__event_log(h, "soft-cancel-sent", NULL);
}

static void finish(tether_handle *h, int st, const struct tether_outcome *bo)
{
    tether_supervisor *sup = h->sup;
    h->t_end = tether_now_ns();
    struct tether__ending in = {
        .abandoned = st == TETHER__ST_ABANDONED,
        .hard_killed = h->state == TETHER__ST_HARD,
        .requested = h->requested,
        .lost_reason = h->lost_reason,
        .said = h->said,
        .said_kind = h->said_kind,
        .said_code = h->said_code,
        .said_text = h->said_text,
        .reaped = bo,
        .in_process = !(h->child && h->child->pid),
    };
    struct tether__decision d;
    char buf[TETHER_ERROR_MSG_MAX];
    tether__outcome_decide(&in, &d, buf, sizeof buf);
    struct tether_outcome *o = &h->out;
    memset(o, 0, sizeof *o);
    o->kind = d.kind;
    o->code = d.code;
    o->signal = d.signal;
    /* copied before release(): a reap's message may belong to the child */
    free(h->out_msg);
    h->out_msg = d.message ? strdup(d.message) : NULL;
    o->message = h->out_msg;
    int64_t run_end = h->t_cancel ? h->t_cancel : (h->t_hard ? h->t_hard : h->t_end);
    o->run_ns = h->t_ready ? run_end - h->t_ready : 0;
    if (h->t_cancel && sup->to.soft_cancel > 0) /* 0: the phase was skipped */
        o->soft_cancel_ns = (h->t_hard ? h->t_hard : h->t_end) - h->t_cancel;
    if (h->t_hard)
        o->hard_kill_ns = h->t_end - h->t_hard;

    if (h->ch.inbox_dropped && sup->events)
        tether__event(sup->events, h->id, sup->backend_name, 0, 0, "messages-dropped",
                      "inbox bound reached during teardown", "\"dropped\":%zu",
                      h->ch.inbox_dropped);
    int err = o->kind == TETHER_OUTCOME_CANCELLED ? TETHER_ECANCELLED
              : o->kind == TETHER_OUTCOME_LOST    ? TETHER_ELOST
              : o->kind == TETHER_OUTCOME_EXITED  ? TETHER_ECLOSED
                                                  : TETHER_EABORTED;
    tether__chan_abort(h, err, "actor ended");
    if (h->child) {
        tether__ep_forget(h, TETHER__EP_EXIT);
        TETHER__BACKEND_CALL(sup, "release", sup->plugin->vt->release(h->child));
        h->child = NULL;
    }
    if (st == TETHER__ST_ABANDONED) {
        sup->abandoned++;
        tether__plugin_pin(sup->plugin);
    }
    if (sup->events)
        tether__event(sup->events, h->id, sup->backend_name, 0, 0,
                      st == TETHER__ST_ABANDONED ? "abandoned" : "reaped", o->message,
                      "\"outcome\":\"%s\",\"code\":%d,\"signal\":%d,\"soft_ms\":%.3f,\"hard_ms\":%.3f",
                      tether_outcome_name(o->kind), o->code, o->signal, o->soft_cancel_ns / 1e6,
                      o->hard_kill_ns / 1e6);
    int gave_up;
    if (tether__restart_decide(h, &d, &gave_up)) {
        tether__restart_schedule(h, st);
        return;
    }
    tether__set_state(h, st, TETHER_NEVER);
    if (gave_up) {
        tether__give_up(sup, h);
        return;
    }
    if (!d.failure)
        return;
    if (!sup->failure) {
        char *text = NULL;
        if (asprintf(&text, "actor %llu (%s) %s: %s", (unsigned long long)h->id, h->target,
                     tether_outcome_name(o->kind), o->message ? o->message : "") >= 0)
            sup->failure = text;
    }
    /* a failure that does not restart: one_for_all ends the group with it,
     * rest_for_one the actors started after it */
    if (sup->sv.strategy == TETHER_ONE_FOR_ONE)
        return;
    for (tether_handle *s = sup->handles; s; s = s->next)
        if (s != h && !TETHER__IS_FINAL(s) &&
            (sup->sv.strategy == TETHER_ONE_FOR_ALL || s->seq > h->seq))
            tether__dispatch(s, TETHER__EV_SIBLING, NULL);
}

void tether__try_reap(tether_handle *h)
{
    if (!h->child || TETHER__IS_FINAL(h))
        return;
    struct tether_outcome bo;
    memset(&bo, 0, sizeof bo);
    tether_supervisor *sup = h->sup;
    int rc;
    /* The deadline is now: the engine never waits in reap (backend.h). */
    tether__ep_forget(h, TETHER__EP_EXIT); /* back in at the next round if still wanted */
    TETHER__BACKEND_CALL(sup, "reap", rc = sup->plugin->vt->reap(h->child, tether_now_ns(), &bo));
    if (rc == 0)
        tether__dispatch(h, TETHER__EV_EXITED, &bo);
}

static int is_request(int event)
{
    switch (event) {
    case TETHER__EV_CANCEL:
    case TETHER__EV_KILL:
    case TETHER__EV_OWNER_ABORT:
    case TETHER__EV_CLOSE:
    case TETHER__EV_CLOSE_EXPIRED:
    case TETHER__EV_SIBLING:
    case TETHER__EV_RESTART: return 1;
    default: return 0;
    }
}

/* A request is remembered for the outcome: a LOST actor that was asked to
 * end is no failure; the owner's abort explains an exit without STOPPED. */
static void note_request(tether_handle *h, int event)
{
    /* a sibling's restart takes this actor along; every other request
     * (the program's, a close, a failed sibling, a give-up) ends it for good */
    if (event == TETHER__EV_RESTART)
        h->restart_asked = 1;
    else
        h->for_good = 1;
    if (event == TETHER__EV_OWNER_ABORT)
        h->requested = TETHER__REQ_OWNER_ABORT;
    else if (h->requested == TETHER__REQ_NONE)
        h->requested = TETHER__REQ_CANCEL;
}

static void impossible(tether_handle *h, int event, const char *why)
{
    h->sup->impossible++;
#ifndef NDEBUG
    fprintf(stderr, "tether: BUG: impossible teardown event %s in state %s (%s), actor %llu\n",
            event_names[event], state_names[h->state], why, (unsigned long long)h->id);
#endif
    tether__event_log(h, "impossible", event_names[event]);
}

void tether__dispatch(tether_handle *h, int event, const struct tether_outcome *reaped)
{
    const struct tether__cell *c = &table[h->state][event];
    if (event != TETHER__EV_READY) {
        h->ch.direct = 0; /* the engine's own again (tether__chan_read_direct) */
        h->sup->eng_full = 1; /* deadlines, siblings, restarts: the next round walks all */
    }
    if (c->action == TETHER__A_IMPOSSIBLE) {
        impossible(h, event, c->why);
        return;
    }
    if (c->action == TETHER__A_IGNORE)
        return;
    if (is_request(event))
        note_request(h, event);
    tether_supervisor *sup = h->sup;
    switch (c->action) {
    case TETHER__A_READY:
        h->t_ready = tether_now_ns();
        tether__set_state(h, TETHER__ST_RUNNING, TETHER_NEVER);
        tether__event_log(h, "ready", NULL);
        break;
    case TETHER__A_NOTE_READY:
        if (!h->t_ready) {
            h->t_ready = tether_now_ns();
            tether__event_log(h, "ready", NULL);
            tether__wake_waiters(sup);
        }
        break;
    case TETHER__A_STOPPED:
    case TETHER__A_STOPPED_STAY:
        tether__chan_abort(h,
                           h->said_kind == TETHER_OUTCOME_CANCELLED ? TETHER_ECANCELLED
                                                                    : TETHER_ECLOSED,
                           c->why);
        if (c->action == TETHER__A_STOPPED)
            tether__set_state(h, TETHER__ST_EXITING, tether_now_ns() + tether__secs_ns(sup->to.hard_kill));
        break;
    case TETHER__A_LOST:
        if (!h->lost_reason)
            h->lost_reason = strdup(c->why);
        /* fall through */
    case TETHER__A_CLOSED_STAY:
        tether__chan_abort(h, TETHER_ELOST, c->why);
        if (c->action == TETHER__A_LOST)
            tether__set_state(h, TETHER__ST_EXITING, tether_now_ns() + tether__secs_ns(sup->to.hard_kill));
        break;
    case TETHER__A_PROTOCOL: {
        const char *why = h->lost_reason ? h->lost_reason : c->why;
        tether__chan_abort(h, TETHER_EPROTO, why);
        begin_hard(h, event, why);
        break;
    }
    case TETHER__A_REAPED:
        tether__chan_drain(h);
        finish(h, TETHER__ST_REAPED, reaped);
        break;
    case TETHER__A_SOFT: begin_soft(h, event); break;
    case TETHER__A_NOTE: break; /* the request is noted above */
    case TETHER__A_HARD: begin_hard(h, event, c->why); break;
    case TETHER__A_ABANDON:
        tether__try_reap(h);
        if (!TETHER__IS_FINAL(h)) {
            tether__event_log(h, "deadline-expired", c->why);
            finish(h, TETHER__ST_ABANDONED, NULL);
        }
        break;
    case TETHER__A_FORCE:
        if (h->state != TETHER__ST_HARD) /* never leave one unkilled */
            begin_hard(h, event, c->why);
        tether__try_reap(h);
        if (!TETHER__IS_FINAL(h))
            finish(h, TETHER__ST_ABANDONED, NULL);
        break;
    case TETHER__A_RESPAWN: tether__respawn(h); break;
    case TETHER__A_END: tether__restart_end(h, c->why); break;
    default: impossible(h, event, "no such action"); break;
    }
}

/* Program threads' requests wait here for the engine, in this order: a
 * kill wins over a cancel posted with it (as if it came first). */
static const int posted_order[] = {TETHER__EV_PROTOCOL, TETHER__EV_SEND_BROKEN, TETHER__EV_KILL,
                                   TETHER__EV_OWNER_ABORT, TETHER__EV_CLOSE, TETHER__EV_CANCEL};

void tether__post(tether_handle *h, int event)
{
    h->posted |= 1u << event;
    tether__wake_engine(h->sup);
}

void tether__run_posted(tether_handle *h)
{
    for (size_t i = 0; h->posted && i < sizeof posted_order / sizeof posted_order[0]; i++) {
        unsigned bit = 1u << posted_order[i];
        if (h->posted & bit) {
            h->posted &= ~bit;
            tether__dispatch(h, posted_order[i], NULL);
        }
    }
    h->posted = 0;
}
