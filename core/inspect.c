/* core/inspect.c - what a program can ask of a supervisor and its actors
 * (ids, states, pids, restarts, the supervision in force, the handle's
 * pollable fd) and the hang dump. Every query takes the supervisor's lock
 * for a consistent answer and never waits for anything else.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

/* ---- queries ------------------------------------------------------------------------ */

uint64_t tether_handle_id(tether_handle *h)
{
    return h->id;
}

unsigned tether_handle_restarts(tether_handle *h)
{
    pthread_mutex_lock(&h->sup->lock);
    unsigned n = h->restarts;
    pthread_mutex_unlock(&h->sup->lock);
    return n;
}

int64_t tether_handle_pid(tether_handle *h)
{
    pthread_mutex_lock(&h->sup->lock);
    int64_t pid = h->child ? h->child->pid : 0;
    pthread_mutex_unlock(&h->sup->lock);
    return pid;
}

const char *tether_handle_state(tether_handle *h)
{
    pthread_mutex_lock(&h->sup->lock);
    const char *s = tether__state_name(h->state);
    pthread_mutex_unlock(&h->sup->lock);
    return s;
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

const char *tether_supervisor_backend_detail(tether_supervisor *sup)
{
    const struct tether_backend *vt = sup->plugin->vt;
    if (vt->size < offsetof(struct tether_backend, detail) + sizeof vt->detail || !vt->detail)
        return NULL;
    return vt->detail(sup->bstate);
}

const struct tether_timeouts *tether_supervisor_timeouts(tether_supervisor *sup)
{
    return &sup->to;
}

void tether_supervisor_set_strategy(tether_supervisor *sup, int strategy)
{
    if (strategy < TETHER_ONE_FOR_ALL || strategy > TETHER_REST_FOR_ONE)
        return;
    pthread_mutex_lock(&sup->lock);
    sup->sv.strategy = strategy;
    pthread_mutex_unlock(&sup->lock);
}

int tether_supervisor_set_supervision(tether_supervisor *sup, const struct tether_supervision *sv,
                                      struct tether_error *err)
{
    if (!sup || !sv)
        return tether_error_set(err, TETHER_EINVAL, "tether_supervisor_set_supervision: NULL");
    int rc = tether_supervision_check(sv, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&sup->lock);
    sup->sv = *sv;
    /* the intensity's window starts again with the new size */
    free(sup->restart_times);
    sup->restart_times = NULL;
    sup->n_restart_times = sup->restart_ring_pos = 0;
    pthread_mutex_unlock(&sup->lock);
    return 0;
}

void tether_supervisor_supervision(tether_supervisor *sup, struct tether_supervision *out)
{
    pthread_mutex_lock(&sup->lock);
    *out = sup->sv;
    pthread_mutex_unlock(&sup->lock);
}

unsigned tether_supervisor_restarts(tether_supervisor *sup)
{
    pthread_mutex_lock(&sup->lock);
    unsigned n = sup->restarts_total;
    pthread_mutex_unlock(&sup->lock);
    return n;
}

/* ---- the hang dump ------------------------------------------------------------------ */

static const char *restart_name(int type)
{
    return type == TETHER_RESTART_PERMANENT ? "permanent"
           : type == TETHER_RESTART_TRANSIENT ? "transient"
                                               : "temporary";
}

static void dump_actor(tether_handle *h, FILE *fp, int64_t now)
{
    const struct tether__channel *ch = &h->ch;
    fprintf(fp, "actor %llu %s: %s for %.3fs", (unsigned long long)h->id, h->target,
            tether__state_name(h->state), (now - h->state_since) / 1e9);
    if (h->child)
        fprintf(fp, ", pid %lld thread %llu", (long long)h->child->pid,
                (unsigned long long)TETHER__CHILD_TID(h->child));
    if (h->state == TETHER__ST_RESTARTING)
        fprintf(fp, ", next respawn in %.3fs", (h->deadline - now) / 1e9);
    else if (!TETHER__IS_FINAL(h) && h->deadline != TETHER_NEVER)
        fprintf(fp, ", next deadline in %.3fs", (h->deadline - now) / 1e9);
    if (h->restarts || h->restart != TETHER_RESTART_TEMPORARY)
        fprintf(fp, ", restart %s, %u restart(s)", restart_name(h->restart), h->restarts);
    fputc('\n', fp);
    fprintf(fp, "  channel: fd %d, %s%s; inbox %zu message(s), %zu bytes%s\n", ch->fd,
            ch->abort_err ? "aborted: " : "open", ch->abort_err ? tether_err_name(ch->abort_err) : "",
            ch->inbox_count, ch->inbox_bytes,
            tether__chan_inbox_full(h) ? " (full: not reading until the owner receives)" : "");
    if (ch->inbox_dropped)
        fprintf(fp, "  %zu message(s) over the inbox bound dropped during teardown\n",
                ch->inbox_dropped);
    for (struct tether__parked *p = ch->parked; p; p = p->next)
        fprintf(fp, "  waiter: thread %d in %s for %.3fs\n", (int)p->tid, p->what,
                (now - p->since) / 1e9);
}

void tether_supervisor_dump(tether_supervisor *sup, FILE *fp)
{
    int64_t now = tether_now_ns();
    const char *in_call = __atomic_load_n(&sup->in_call, __ATOMIC_ACQUIRE);
    if (in_call)
        fprintf(fp, "== a supervisor thread is inside the backend's %s() for %.3fs\n", in_call,
                (now - __atomic_load_n(&sup->in_call_since, __ATOMIC_RELAXED)) / 1e9);
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
    fprintf(fp, "== tether hang dump: backend %s, soft_cancel %.3gs, hard_kill %.3gs, %u abandoned",
            sup->backend_name, sup->to.soft_cancel, sup->to.hard_kill, sup->abandoned);
    if (sup->abandoned && sup->plugin->vt->abandoned_count)
        fprintf(fp, " (%u still running)", tether__still_running(sup));
    static const char *const strategies[] = {"one_for_all", "one_for_one", "rest_for_one"};
    fprintf(fp, "\n== supervision %s, intensity %u in %gs, %u restart(s)%s\n",
            strategies[sup->sv.strategy], sup->sv.max_restarts, sup->sv.period,
            sup->restarts_total, sup->gave_up ? ", gave up (intensity exceeded)" : "");
    for (struct tether__parked *p = sup->spawns; p; p = p->next)
        fprintf(fp, "== a program thread is inside the backend's spawn() for %.3fs (%s)\n",
                (now - p->since) / 1e9, p->what);
    if (sup->impossible || sup->backend_errors)
        fprintf(fp, "== %u impossible teardown event(s) (a bug), %u backend error(s)\n",
                sup->impossible, sup->backend_errors);
    for (tether_handle *h = sup->handles; h; h = h->next)
        dump_actor(h, fp, now);
    fprintf(fp, "== end of dump\n");
    fflush(fp);
    pthread_mutex_unlock(&sup->lock);
}

/* The mechanism is in handle_fd.c. */
int tether_handle_fd(tether_handle *h)
{
    if (!h)
        return TETHER_EINVAL;
    pthread_mutex_lock(&h->sup->lock);
    int fd = tether__hfd_get(&h->hfd, TETHER__HFD_READABLE(h));
    pthread_mutex_unlock(&h->sup->lock);
    return fd;
}
