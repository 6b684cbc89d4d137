/* core/outcome.c - how an actor ended, decided once, from facts only.
 *
 * A pure function: what ended it (a loss of the channel, the owner's abort,
 * a request, or nothing), which phase it reached (hard kill or not), what
 * the actor said (its STOPPED frame), what the backend's reap saw, and
 * whether it was abandoned -> kind, code, signal, message, and whether the
 * supervisor counts it as a failure. The rows, first match wins:
 *
 *   abandoned, said STOPPED   its word (kind, code), text + "(stopped, but its
 *                             thread|process did not end within hard_kill: abandoned)"
 *   abandoned                 ABANDONED
 *   channel lost              LOST: the loss reason; the reap's signal, code, text
 *   said STOPPED              its word; + "; " + the reap's text when the reap
 *                             says EXITED with one (what the teardown added,
 *                             e.g. descendants killed: backend.h, reap)
 *   owner aborted, not hard,  CANCELLED "stopped after its channel was closed"
 *     reap says EXITED
 *   hard, reap says KILLED    KILLED with the reap's signal and text
 *   otherwise                 LOST: the reap's signal, code, text
 *
 * A FAILED or LOST outcome is a failure of the supervisor, except a LOST
 * one that a request asked for (an actor torn down on request may die
 * without a word). tests/unit/test_outcome.c covers every row.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "engine.h"

static void lost(const struct tether__ending *in, struct tether__decision *d, char *buf,
                 size_t buflen)
{
    const struct tether_outcome *bo = in->reaped;
    d->kind = TETHER_OUTCOME_LOST;
    if (bo) {
        d->signal = bo->signal;
        d->code = bo->code;
    }
    if (bo && bo->message)
        snprintf(buf, buflen, "%s; %s", in->lost_reason, bo->message);
    else if (bo && bo->signal)
        snprintf(buf, buflen, "%s; killed by signal %d", in->lost_reason, bo->signal);
    else if (bo && bo->kind == TETHER_OUTCOME_EXITED)
        snprintf(buf, buflen, "%s; exited with status %d", in->lost_reason, bo->code);
    else
        snprintf(buf, buflen, "%s", in->lost_reason);
    d->message = buf;
}

void tether__outcome_decide(const struct tether__ending *in, struct tether__decision *d,
                            char *buf, size_t buflen)
{
    const struct tether_outcome *bo = in->reaped;
    memset(d, 0, sizeof *d);
    if (in->abandoned && in->said) {
        /* the actor said how it ended; only its thread or process did not
         * go away in time: keep its word, and count the leftover */
        d->kind = in->said_kind;
        d->code = in->said_code;
        snprintf(buf, buflen, "%s%s(stopped, but its %s did not end within hard_kill: abandoned)",
                 in->said_text ? in->said_text : "", in->said_text ? " " : "",
                 in->in_process ? "thread" : "process");
        d->message = buf;
    } else if (in->abandoned) {
        d->kind = TETHER_OUTCOME_ABANDONED;
        d->message = "did not stop within hard_kill; abandoned";
    } else if (in->lost_reason) {
        lost(in, d, buf, buflen);
    } else if (in->said) {
        d->kind = in->said_kind;
        d->code = in->said_code;
        d->message = in->said_text;
        if (bo && bo->kind == TETHER_OUTCOME_EXITED && bo->message) {
            snprintf(buf, buflen, "%s%s%s", in->said_text ? in->said_text : "",
                     in->said_text ? "; " : "", bo->message);
            d->message = buf;
        }
    } else if (bo && in->requested == TETHER__REQ_OWNER_ABORT && !in->hard_killed &&
               bo->kind == TETHER_OUTCOME_EXITED) {
        /* it saw end of stream and stopped by itself, as it should */
        d->kind = TETHER_OUTCOME_CANCELLED;
        d->message = "stopped after its channel was closed";
    } else if (bo && in->hard_killed && bo->kind == TETHER_OUTCOME_KILLED) {
        d->kind = TETHER_OUTCOME_KILLED;
        d->signal = bo->signal;
        d->message = bo->message;
    } else {
        d->kind = TETHER_OUTCOME_LOST;
        d->signal = bo ? bo->signal : 0;
        d->code = bo ? bo->code : 0;
        d->message = bo && bo->message ? bo->message : "ended without a stopped message";
    }
    d->failure = d->kind == TETHER_OUTCOME_FAILED ||
                 (d->kind == TETHER_OUTCOME_LOST && in->requested == TETHER__REQ_NONE);
}
