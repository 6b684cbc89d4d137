/* core/restart.c - restarts: whether an ended instance starts again, the
 * restart intensity, the backoff, and the respawn itself.
 *
 * A restart is a state and an event of the teardown table (teardown.c):
 * when an instance reaches its end, finish() asks tether__restart_decide;
 * yes puts the actor in RESTARTING with the backoff as its deadline, and
 * (one_for_all, rest_for_one) gives the siblings the RESTART event, which
 * tears them down like a cancel and restarts them after. The DEADLINE of
 * RESTARTING is the RESPAWN action (tether__respawn); any request of the
 * program, a close, or a give-up is the END action (tether__restart_end):
 * the last instance's outcome stands. The handle is the actor: it keeps
 * its id, inbox, pollable fd and outcome waiters from instance to
 * instance; only the channel and the backend's child are new.
 *
 * The promises (issue 18): nothing restarts once close has begun or the
 * supervisor gave up; an explicit cancel, kill or abort of the actor ends
 * it for good (for_good); a restart in progress when a cancel arrives is
 * torn down under the usual bound (the new instance is a live state of the
 * table); an abandoned instance is cut loose like any other and its
 * replacement does not wait for it.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine.h"

/* A number the checks accept: finite and not negative. */
static int bad_secs(double v)
{
    return !(v >= 0 && v <= 1e9);
}

int tether_supervision_check(const struct tether_supervision *sv, struct tether_error *err)
{
    if (sv->strategy < TETHER_ONE_FOR_ALL || sv->strategy > TETHER_REST_FOR_ONE)
        return tether_error_set(err, TETHER_EINVAL, "strategy: unknown strategy %d", sv->strategy);
    if (sv->restart < TETHER_RESTART_TEMPORARY || sv->restart > TETHER_RESTART_PERMANENT)
        return tether_error_set(err, TETHER_EINVAL, "restart: unknown restart type %d",
                                sv->restart);
    if (bad_secs(sv->period))
        return tether_error_set(err, TETHER_EINVAL,
                                "period: must be a finite number of seconds >= 0, not %g",
                                sv->period);
    if (sv->period == 0 && sv->max_restarts > 0)
        return tether_error_set(err, TETHER_EINVAL,
                                "period: 0 with max_restarts %u (no restart could ever be "
                                "counted); set max_restarts: 0 to never restart",
                                sv->max_restarts);
    if (sv->max_restarts > TETHER_MAX_RESTARTS_LIMIT)
        return tether_error_set(err, TETHER_EINVAL, "max_restarts: %u is over the limit %u",
                                sv->max_restarts, TETHER_MAX_RESTARTS_LIMIT);
    if (bad_secs(sv->backoff))
        return tether_error_set(err, TETHER_EINVAL,
                                "backoff: must be a finite number of seconds >= 0, not %g",
                                sv->backoff);
    if (bad_secs(sv->backoff_max))
        return tether_error_set(err, TETHER_EINVAL,
                                "backoff_max: must be a finite number of seconds >= 0, not %g",
                                sv->backoff_max);
    return 0;
}

/* ---- the decision ------------------------------------------------------------- */

/* One more restart now: within the intensity? Records it if so. The ring
 * holds the times of the last max_restarts restarts: a new one is one too
 * many when the oldest of those is younger than the period. */
static int intensity_allows(tether_supervisor *sup, int64_t now)
{
    unsigned max = sup->sv.max_restarts;
    if (max == 0)
        return 0;
    if (!sup->restart_times) {
        sup->restart_times = calloc(max, sizeof *sup->restart_times);
        if (!sup->restart_times)
            return 0; /* out of memory: no restart (the supervisor gives up) */
        sup->n_restart_times = sup->restart_ring_pos = 0;
    }
    if (sup->n_restart_times == max &&
        now - sup->restart_times[sup->restart_ring_pos] < tether__secs_ns(sup->sv.period))
        return 0;
    sup->restart_times[sup->restart_ring_pos] = now;
    sup->restart_ring_pos = (sup->restart_ring_pos + 1) % max;
    if (sup->n_restart_times < max)
        sup->n_restart_times++;
    return 1;
}

/* Would the actor's type restart this end? */
static int type_restarts(const tether_handle *h, const struct tether__decision *d)
{
    if (h->restart == TETHER_RESTART_PERMANENT)
        return 1;
    if (h->restart != TETHER_RESTART_TRANSIENT)
        return 0;
    /* transient: a failure, crash or loss; an abandoned instance or a spawn
     * that timed out count as failures; a normal exit or a cancel do not */
    return h->restart_asked || d->failure || d->kind == TETHER_OUTCOME_ABANDONED ||
           (h->hard_by == TETHER__EV_DEADLINE && h->hard_from == TETHER__ST_SPAWNING &&
            !h->requested);
}

int tether__restart_decide(tether_handle *h, const struct tether__decision *d, int *gave_up)
{
    tether_supervisor *sup = h->sup;
    *gave_up = 0;
    if (sup->closing || sup->gave_up || h->for_good)
        return 0;
    if (!h->t_ready && !h->restarts)
        return 0; /* the first instance never started: tether_spawn reports that */
    if (!type_restarts(h, d))
        return 0;
    /* a sibling's restart carried this one along: the sibling counted it */
    if (h->restart_asked)
        return 1;
    if (intensity_allows(sup, tether_now_ns()))
        return 1;
    *gave_up = 1;
    return 0;
}

/* ---- restarting ----------------------------------------------------------------- */

static void log_restarting(tether_handle *h, double delay)
{
    tether_supervisor *sup = h->sup;
    if (!sup->events)
        return;
    tether__event(sup->events, h->id, sup->backend_name, 0, 0, "restarting",
                  h->out.message ? h->out.message : tether_outcome_name(h->out.kind),
                  "\"outcome\":\"%s\",\"restarts\":%u,\"backoff_s\":%.3f,\"with_sibling\":%s",
                  tether_outcome_name(h->out.kind), h->restarts, delay,
                  h->restart_asked ? "true" : "false");
}

void tether__restart_schedule(tether_handle *h, int final_state)
{
    tether_supervisor *sup = h->sup;
    h->last_final = final_state;
    double cap = h->backoff_max > h->backoff ? h->backoff_max : h->backoff;
    /* healthy for a whole period: back to the first delay */
    if (h->t_ready && h->t_end - h->t_ready >= tether__secs_ns(sup->sv.period))
        h->backoff_next = h->backoff;
    double delay = h->backoff_next;
    h->backoff_next = delay * 2 > cap ? cap : delay * 2;
    tether__set_state(h, TETHER__ST_RESTARTING, tether_now_ns() + tether__secs_ns(delay));
    log_restarting(h, delay);
    if (h->restart_asked || sup->sv.strategy == TETHER_ONE_FOR_ONE)
        return;
    /* this actor's own end: its group restarts with it */
    for (tether_handle *s = sup->handles; s; s = s->next)
        if (s != h && !TETHER__IS_FINAL(s) &&
            (sup->sv.strategy == TETHER_ONE_FOR_ALL || s->seq > h->seq))
            tether__dispatch(s, TETHER__EV_RESTART, NULL);
}

void tether__restart_end(tether_handle *h, const char *why)
{
    tether__set_state(h, h->last_final, TETHER_NEVER);
    tether__event_log(h, "ended", why);
}

void tether__give_up(tether_supervisor *sup, tether_handle *h)
{
    sup->gave_up = 1;
    char *text = NULL;
    if (asprintf(&text,
                 "restart intensity exceeded: %u restarts in %g s; last failure: actor %llu "
                 "(%s) %s%s%s",
                 sup->sv.max_restarts, sup->sv.period, (unsigned long long)h->id, h->target,
                 tether_outcome_name(h->out.kind), h->out.message ? ": " : "",
                 h->out.message ? h->out.message : "") >= 0) {
        /* a program may still hold the first failure's text: kept till close */
        free(sup->failure_before);
        sup->failure_before = sup->failure;
        sup->failure = text;
    }
    if (sup->events)
        tether__event(sup->events, h->id, sup->backend_name, 0, 0, "restart-intensity-exceeded",
                      text, "\"max_restarts\":%u,\"period_s\":%g,\"restarts\":%u",
                      sup->sv.max_restarts, sup->sv.period, sup->restarts_total);
    for (tether_handle *s = sup->handles; s; s = s->next)
        if (s != h && !TETHER__IS_FINAL(s))
            tether__dispatch(s, TETHER__EV_SIBLING, NULL);
}

/* ---- the respawn ------------------------------------------------------------------ */

/* In start order: an earlier member of the restarting group starts first. */
static int earlier_sibling_pending(const tether_handle *h)
{
    const tether_supervisor *sup = h->sup;
    if (sup->sv.strategy == TETHER_ONE_FOR_ONE)
        return 0;
    for (const tether_handle *s = sup->handles; s; s = s->next)
        if (s != h && s->seq < h->seq &&
            (s->state == TETHER__ST_RESTARTING || (s->restart_asked && !TETHER__IS_FINAL(s))))
            return 1;
    return 0;
}

/* Forget the ended instance; the actor's own fields stay. */
static void reset_instance(tether_handle *h)
{
    h->exit_timer = 0;
    h->reap_retry_ns = 0;
    h->requested = TETHER__REQ_NONE;
    h->hard_from = h->hard_by = 0;
    h->said = h->said_kind = h->said_code = 0;
    free(h->said_text);
    h->said_text = NULL;
    free(h->lost_reason);
    h->lost_reason = NULL;
    h->t_ready = h->t_cancel = h->t_hard = h->t_end = 0;
    h->restart_asked = 0;
}

/* The backend started a child for an actor that ended meanwhile (a close
 * forced it during the unlocked spawn): kill it and cut it loose. */
static void drop_child(tether_handle *h, struct tether_child *child)
{
    tether_supervisor *sup = h->sup;
    const struct tether_backend *vt = sup->plugin->vt;
    int rc;
    TETHER__BACKEND_CALL(sup, "hard_kill", rc = vt->hard_kill(child));
    TETHER__BACKEND_CALL(sup, "abort_channels", rc = vt->abort_channels(child));
    (void)rc;
    TETHER__BACKEND_CALL(sup, "release", vt->release(child));
    sup->abandoned++;
    tether__plugin_pin(sup->plugin);
}

/* The closing thread may have moved the new instance on while its spawn
 * ran without the lock (a close: SOFT; a kill it dispatched: HARD) with no
 * child to tell: tell the child now what the state says. */
static void catch_up(tether_handle *h)
{
    tether_supervisor *sup = h->sup;
    const struct tether_backend *vt = sup->plugin->vt;
    int rc;
    if (h->state == TETHER__ST_SOFT) {
        TETHER__BACKEND_CALL(sup, "soft_cancel", rc = vt->soft_cancel(h->child));
    } else if (h->state == TETHER__ST_HARD) {
        TETHER__BACKEND_CALL(sup, "hard_kill", rc = vt->hard_kill(h->child));
        TETHER__BACKEND_CALL(sup, "abort_channels", rc = vt->abort_channels(h->child));
    } else {
        return;
    }
    (void)rc;
    tether__event_log(h, "respawned-into-teardown", tether__state_name(h->state));
}

void tether__respawn(tether_handle *h)
{
    tether_supervisor *sup = h->sup;
    if (sup->closing || sup->gave_up) { /* both END it first; kept as a guard */
        tether__restart_end(h, "nothing restarts");
        return;
    }
    /* Program threads woken by the old instance's end are still leaving its
     * channel (they return at once: it is aborted); the engine comes back
     * in 2 ms rather than renew it under them. */
    if (!tether__chan_idle(h) || earlier_sibling_pending(h)) {
        h->deadline = tether_now_ns() + TETHER_NS_PER_SEC / 500;
        return;
    }
    int sv[2];
    struct tether_error err = {0, ""};
    struct tether_child *child = NULL;
    reset_instance(h);
    h->restarts++;
    sup->restarts_total++;
    int rc;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        rc = tether_error_set(&err, TETHER_ESYS, "socketpair: %s", strerror(errno));
        tether__set_state(h, TETHER__ST_SPAWNING, TETHER_NEVER); /* fails below */
    } else {
        rc = tether__spawn_instance(h, sv, &child, &err);
    }
    if (TETHER__IS_FINAL(h)) { /* a close forced it meanwhile */
        if (!rc)
            drop_child(h, child);
        return;
    }
    if (rc) {
        char *why = NULL;
        if (asprintf(&why, "respawn failed: %s", err.msg) < 0)
            why = NULL;
        h->lost_reason = why;
        tether__chan_abort(h, TETHER_ELOST, why ? why : "respawn failed");
        struct tether_outcome bo = {.kind = TETHER_OUTCOME_LOST};
        tether__dispatch(h, TETHER__EV_EXITED, &bo);
        return;
    }
    h->child = child;
    tether__event_log(h, "respawned", h->target);
    catch_up(h);
}
