/* conformance/restart.c - the RESTART scenarios of SCENARIOS.md (issue 18).
 *
 * A part of suite.c kept in its own file: suite.c includes it just before
 * its catalogue, so it uses the suite's helpers (open_sup, spawn, outcome,
 * expect_within...) and adds the entries of restart_catalogue. Not compiled
 * on its own. Every backend must pass these: the point is that each one
 * respawns cleanly after a crash, a kill or an abandonment; the runner's
 * after-scenario checks (no fd, process or thread left) then cover the
 * instances too, and restart.hundred makes 100 of them.
 *
 * Bounds: a restart costs one spawn (measured here, on the first instance:
 * it is the backend's, not the engine's) plus e; the teardown bounds are
 * the usual ones (S, H, e).
 */
#include <sys/resource.h>

/* Instances of one actor share a counter file (actors.c, next_instance). */
static void restart_counter(struct suite *s, char *path, size_t n)
{
    snprintf(path, n, "%s/restart-counter", s->tmpdir);
    unlink(path);
    setenv("TETHER_RESTART_COUNTER", path, 1);
}

static void set_supervision(tether_supervisor *sup, struct result *r, int strategy,
                            unsigned max_restarts, double period, double backoff)
{
    struct tether_supervision sv;
    tether_supervisor_supervision(sup, &sv);
    sv.strategy = strategy;
    sv.max_restarts = max_restarts;
    sv.period = period;
    sv.backoff = backoff;
    sv.backoff_max = backoff;
    struct tether_error err;
    if (tether_supervisor_set_supervision(sup, &sv, &err))
        FAILF(r, "set_supervision: %s", err.msg);
}

/* Spawn with a restart type; *took: seconds to ready (the backend's spawn). */
static tether_handle *spawn_restart(struct suite *s, tether_supervisor *sup, const char *fn,
                                    int restart, double *took, struct result *r)
{
    char t[PATH_MAX + 64];
    struct tether_error err;
    tether_handle *h = NULL;
    struct tether_spawn_opts o = {.restart = restart};
    jitter();
    double t0 = now_s();
    if (tether_spawn_ex(sup, target(s, fn, t, sizeof t), &o, &h, &err)) {
        FAILF(r, "spawn %s: %s", fn, err.msg);
        tether_handle_release(h);
        return NULL;
    }
    if (took)
        *took = now_s() - t0;
    return h;
}

/* Wait (bounded) until the actor has been restarted `n` times and is
 * running again. Returns 0, or -1 at the deadline. */
static int wait_restarted(tether_handle *h, unsigned n, double secs)
{
    int64_t end = tether_now_ns() + (int64_t)(secs * 1e9);
    while (tether_handle_restarts(h) < n || strcmp(tether_handle_state(h), "running") != 0) {
        if (tether_now_ns() >= end)
            return -1;
        sleep_s(0.001);
    }
    return 0;
}

static int gave_up(tether_supervisor *sup, unsigned max, double period)
{
    const char *f = tether_supervisor_failure(sup);
    char want[96];
    snprintf(want, sizeof want, "restart intensity exceeded: %u restarts in %g s; last failure: ",
             max, period);
    return f && strstr(f, want) != NULL;
}

/* The actor fails twice, then exits 0: restarted twice, then exited. */
static void sc_restart_transient_crash(struct suite *s, struct result *r)
{
    char counter[PATH_MAX];
    restart_counter(s, counter, sizeof counter);
    tether_supervisor *sup = open_sup(s, r, NULL);
    if (sup)
        set_supervision(sup, r, TETHER_ONE_FOR_ONE, 5, 10, 0);
    double spawn_s = 0, t0 = now_s();
    tether_handle *h =
        sup ? spawn_restart(s, sup, "fail_twice", TETHER_RESTART_TRANSIENT, &spawn_s, r) : NULL;
    if (h) {
        double bound = 2 * (spawn_s + e_slack(1)) + e_slack(1);
        struct tether_outcome o;
        int k = outcome(h, bound, &o);
        expect_within(r, now_s() - t0 - spawn_s, bound);
        expect_kind(r, "the third instance", k, "exited");
        if (k == TETHER_OUTCOME_EXITED && o.code != 0)
            FAILF(r, "exited with status %d, expected 0", o.code);
        if (tether_handle_restarts(h) != 2)
            FAILF(r, "%u restarts, expected 2", tether_handle_restarts(h));
        sleep_s(e_slack(1)); /* nothing restarts after the normal exit */
        if (tether_handle_restarts(h) != 2 || strcmp(tether_handle_state(h), "reaped"))
            FAILF(r, "after the normal exit: %s, %u restarts", tether_handle_state(h),
                  tether_handle_restarts(h));
        tether_handle_release(h);
    }
    close_sup(sup, r);
    unlink(counter);
}

/* Permanent, exits 0 at once, intensity 3 in 10 s: restarted until the
 * intensity is exceeded; then the supervisor gives up and says so. */
static void sc_restart_permanent_exit(struct suite *s, struct result *r)
{
    tether_supervisor *sup = open_sup(s, r, NULL);
    if (sup)
        set_supervision(sup, r, TETHER_ONE_FOR_ONE, 3, 10, 0);
    double spawn_s = 0;
    tether_handle *h =
        sup ? spawn_restart(s, sup, "exits_at_once", TETHER_RESTART_PERMANENT, &spawn_s, r) : NULL;
    if (h) {
        double bound = 3 * (spawn_s + e_slack(1)) + e_slack(1);
        struct tether_outcome o;
        double t0 = now_s();
        int k = outcome(h, bound, &o);
        expect_within(r, now_s() - t0, bound);
        expect_kind(r, "the last instance", k, "exited");
        if (tether_handle_restarts(h) != 3)
            FAILF(r, "%u restarts, expected 3", tether_handle_restarts(h));
        if (!gave_up(sup, 3, 10))
            FAILF(r, "the give-up is not reported: %s",
                  tether_supervisor_failure(sup) ? tether_supervisor_failure(sup) : "(none)");
        tether_handle_release(h);
    }
    close_sup(sup, r);
}

/* Permanent, intensity 2 in 5 s; 3 siblings, one crashes in a loop: the
 * supervisor gives up and tears every sibling down (S + H + e(3)). */
static void sc_restart_intensity(struct suite *s, struct result *r)
{
    tether_supervisor *sup = open_sup(s, r, NULL);
    if (sup)
        set_supervision(sup, r, TETHER_ONE_FOR_ONE, 2, 5, 0);
    tether_handle *sib[3] = {NULL, NULL, NULL};
    for (int i = 0; sup && i < 3; i++)
        sib[i] = spawn_restart(s, sup, "cooperative", TETHER_RESTART_PERMANENT, NULL, r);
    /* a real crash where the backend survives one, a failure in process */
    const char *crasher = has(s, TETHER_CAP_SURVIVES_CRASH) ? "crash" : "fails";
    tether_handle *c =
        sup ? spawn_restart(s, sup, crasher, TETHER_RESTART_PERMANENT, NULL, r) : NULL;
    if (c) {
        struct tether_outcome o;
        int k = outcome(c, 10, &o); /* three crashes and two respawns */
        double t0 = now_s(), bound = s->S + s->H + e_slack(3);
        expect_kind(r, "the crasher", k, "lost, failed");
        if (tether_handle_restarts(c) != 2)
            FAILF(r, "%u restarts, expected 2", tether_handle_restarts(c));
        if (!gave_up(sup, 2, 5))
            FAILF(r, "the give-up is not reported: %s",
                  tether_supervisor_failure(sup) ? tether_supervisor_failure(sup) : "(none)");
        for (int i = 0; i < 3; i++)
            if (sib[i]) {
                expect_kind(r, "sibling", outcome(sib[i], bound, NULL), "cancelled");
                if (tether_handle_restarts(sib[i]))
                    FAILF(r, "a sibling restarted after the give-up");
            }
        expect_within(r, now_s() - t0, bound);
    }
    for (int i = 0; i < 3; i++)
        tether_handle_release(sib[i]);
    tether_handle_release(c);
    close_sup(sup, r);
}

/* rest_for_one; A, B, C in that order; B fails: B and C restarted in start
 * order, A keeps running (same instance). */
static void sc_restart_rest_for_one(struct suite *s, struct result *r)
{
    tether_supervisor *sup = open_sup(s, r, NULL);
    if (sup)
        set_supervision(sup, r, TETHER_REST_FOR_ONE, 5, 10, 0);
    /* the costliest of the three spawns: with a warm pool the first ones
     * take a pooled actor and a later one (or the respawns) may start
     * cold while the pool refills (subint: ~1 ms vs ~13 ms) */
    double took[3] = {0, 0, 0}, spawn_s = 0;
    tether_handle *a = sup ? spawn_restart(s, sup, "cooperative", TETHER_RESTART_PERMANENT,
                                           &took[0], r) : NULL;
    tether_handle *b = sup ? spawn_restart(s, sup, "fail_on_msg", TETHER_RESTART_PERMANENT,
                                           &took[1], r) : NULL;
    tether_handle *c = sup ? spawn_restart(s, sup, "cooperative", TETHER_RESTART_PERMANENT,
                                           &took[2], r) : NULL;
    for (int i = 0; i < 3; i++)
        if (took[i] > spawn_s)
            spawn_s = took[i];
    if (a && b && c) {
        int64_t pid_a = tether_handle_pid(a);
        double t0 = now_s();
        /* C is cancelled (soft phase: it stops at once), then B, C respawn */
        double bound = 2 * spawn_s + e_slack(3);
        tether_send(b, "fail", 4, tether_now_ns() + SEC);
        if (wait_restarted(b, 1, bound + 1) || wait_restarted(c, 1, bound + 1))
            FAILF(r, "B, C not restarted: B %s %u, C %s %u", tether_handle_state(b),
                  tether_handle_restarts(b), tether_handle_state(c), tether_handle_restarts(c));
        expect_within(r, now_s() - t0, bound);
        if (tether_handle_restarts(a) || strcmp(tether_handle_state(a), "running") ||
            tether_handle_pid(a) != pid_a)
            FAILF(r, "A did not keep running as the same instance: %s, %u restarts",
                  tether_handle_state(a), tether_handle_restarts(a));
        if (tether_handle_restarts(b) != 1 || tether_handle_restarts(c) != 1)
            FAILF(r, "restarts: B %u, C %u, expected 1 each", tether_handle_restarts(b),
                  tether_handle_restarts(c));
        if (tether_supervisor_failure(sup))
            FAILF(r, "a failure was reported: %s", tether_supervisor_failure(sup));
    }
    tether_handle_release(a);
    tether_handle_release(b);
    tether_handle_release(c);
    close_sup(sup, r);
}

/* Permanent with a 2 s backoff; the actor failed; the supervisor is
 * closed during the backoff: no respawn, close within e. */
static void sc_restart_cancel_during_backoff(struct suite *s, struct result *r)
{
    tether_supervisor *sup = open_sup(s, r, NULL);
    if (sup)
        set_supervision(sup, r, TETHER_ONE_FOR_ONE, 5, 10, 2.0);
    tether_handle *h =
        sup ? spawn_restart(s, sup, "fail_on_msg", TETHER_RESTART_PERMANENT, NULL, r) : NULL;
    if (h) {
        tether_send(h, "fail", 4, tether_now_ns() + SEC);
        int64_t end = tether_now_ns() + 2 * SEC;
        while (strcmp(tether_handle_state(h), "restarting") && tether_now_ns() < end)
            sleep_s(0.001);
        if (strcmp(tether_handle_state(h), "restarting"))
            FAILF(r, "not restarting after its failure: %s", tether_handle_state(h));
        jitter();
        double t0 = now_s(), bound = e_slack(1);
        tether_supervisor *closing = sup;
        sup = NULL;
        close_sup(closing, r);
        expect_within(r, now_s() - t0, bound);
        if (tether_handle_restarts(h) || strcmp(tether_handle_state(h), "reaped"))
            FAILF(r, "after close: %s, %u restarts", tether_handle_state(h),
                  tether_handle_restarts(h));
        tether_handle_release(h);
    }
    close_sup(sup, r);
}

/* one_for_all; A permanent and a busy loop, B fails once: both torn down
 * and restarted; A's replacement does not wait for the abandoned instance. */
static void sc_restart_abandoned_instance(struct suite *s, struct result *r)
{
    tether_supervisor *sup = open_sup(s, r, NULL);
    if (sup)
        set_supervision(sup, r, TETHER_ONE_FOR_ALL, 5, 10, 0);
    double spawn_s = 0;
    tether_handle *a =
        sup ? spawn_restart(s, sup, "busy_loop", TETHER_RESTART_PERMANENT, &spawn_s, r) : NULL;
    tether_handle *b =
        sup ? spawn_restart(s, sup, "fail_on_msg", TETHER_RESTART_TRANSIENT, NULL, r) : NULL;
    if (a && b) {
        jitter();
        double t0 = now_s(), bound = s->S + s->H + 2 * spawn_s + e_slack(2);
        tether_send(b, "fail", 4, tether_now_ns() + SEC);
        if (wait_restarted(a, 1, bound + 1) || wait_restarted(b, 1, bound + 1))
            FAILF(r, "A, B not restarted: A %s %u, B %s %u", tether_handle_state(a),
                  tether_handle_restarts(a), tether_handle_state(b), tether_handle_restarts(b));
        expect_within(r, now_s() - t0, bound);
        unsigned ab = tether_supervisor_abandoned(sup);
        /* a C busy loop in process cannot be stopped (a Python one can:
         * the asynchronous Cancelled reaches it) */
        if (!has(s, TETHER_CAP_CAN_KILL) && !s->python && ab == 0)
            FAILF(r, "the busy loop cannot be killed in process, yet nothing was abandoned");
        if (r->status != FAIL)
            snprintf(r->msg, sizeof r->msg, "%u abandoned instance(s)", ab);
    }
    tether_handle_release(a);
    tether_handle_release(b);
    close_sup(sup, r);
}

/* Permanent; the program cancels that one actor: it ends for good. */
static void sc_restart_explicit_cancel(struct suite *s, struct result *r)
{
    tether_supervisor *sup = open_sup(s, r, NULL);
    if (sup)
        set_supervision(sup, r, TETHER_ONE_FOR_ONE, 5, 10, 0);
    tether_handle *h =
        sup ? spawn_restart(s, sup, "cooperative", TETHER_RESTART_PERMANENT, NULL, r) : NULL;
    if (h) {
        jitter();
        double t0 = now_s(), bound = e_slack(1);
        tether_cancel(h);
        expect_kind(r, "cooperative", outcome(h, bound, NULL), "cancelled");
        expect_within(r, now_s() - t0, bound);
        sleep_s(e_slack(1));
        if (tether_handle_restarts(h) || strcmp(tether_handle_state(h), "reaped"))
            FAILF(r, "after the cancel: %s, %u restarts", tether_handle_state(h),
                  tether_handle_restarts(h));
        tether_handle_release(h);
    }
    close_sup(sup, r);
}

/* An actor that exits at once, restarted 100 times; then the supervisor is
 * closed mid-loop: the close bound does not grow with the restarts before
 * it, and the runner's checks afterwards find no fd, thread or process
 * left of the 100 instances. */
static void sc_restart_hundred(struct suite *s, struct result *r)
{
    tether_supervisor *sup = open_sup(s, r, NULL);
    if (sup)
        set_supervision(sup, r, TETHER_ONE_FOR_ONE, 100000, 3600, 0);
    double spawn_s = 0;
    tether_handle *h =
        sup ? spawn_restart(s, sup, "exits_at_once", TETHER_RESTART_PERMANENT, &spawn_s, r) : NULL;
    if (h) {
        struct rusage ru0, ru1;
        getrusage(RUSAGE_SELF, &ru0);
        /* a time limit for the loop, not a bound: a respawn may take longer
         * than the first spawn (on slurm each waits for Slurm to complete the
         * previous job), so allow up to a quarter of the spawn timeout each,
         * inside the watchdog (b_hundred) */
        double loop = 100 * (spawn_s + e_slack(1)) + 10;
        if (loop < 100 * s->B / 4 + 10)
            loop = 100 * s->B / 4 + 10;
        int64_t end = tether_now_ns() + (int64_t)(loop * 1e9);
        while (tether_handle_restarts(h) < 100 && tether_now_ns() < end)
            sleep_s(0.001);
        getrusage(RUSAGE_SELF, &ru1);
        unsigned n = tether_handle_restarts(h);
        if (n < 100)
            FAILF(r, "only %u restarts, state %s", n, tether_handle_state(h));
        double cpu = (ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
                     (ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
                     ((ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) +
                      (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec)) / 1e6;
        jitter();
        double t0 = now_s(), bound = s->S + s->H + e_slack(1);
        tether_supervisor *closing = sup;
        sup = NULL;
        close_sup(closing, r);
        expect_within(r, now_s() - t0, bound);
        if (strcmp(tether_handle_state(h), "reaped") && strcmp(tether_handle_state(h), "abandoned"))
            FAILF(r, "after close: %s", tether_handle_state(h));
        unsigned after = tether_handle_restarts(h);
        sleep_s(e_slack(1));
        if (tether_handle_restarts(h) != after)
            FAILF(r, "restarted after the close");
        if (r->status != FAIL)
            snprintf(r->msg, sizeof r->msg, "%u restarts: %.3f s of the supervisor's CPU", n, cpu);
        tether_handle_release(h);
    }
    close_sup(sup, r);
}

static double b_restart(const struct suite *s)
{
    return 4 * s->B + 2 * (s->S + s->H) + 8;
}

static double b_hundred(const struct suite *s)
{
    return 100 * s->B / 4 + s->S + s->H + 20;
}

#define RESTART_CATALOGUE                                                                           \
    {"restart.transient-crash", sc_restart_transient_crash, b_restart, NULL},                       \
        {"restart.permanent-exit", sc_restart_permanent_exit, b_restart, NULL},                     \
        {"restart.intensity", sc_restart_intensity, b_restart, NULL},                               \
        {"restart.rest-for-one", sc_restart_rest_for_one, b_restart, NULL},                         \
        {"restart.cancel-during-backoff", sc_restart_cancel_during_backoff, b_restart, NULL},       \
        {"restart.abandoned-instance", sc_restart_abandoned_instance, b_restart, NULL},             \
        {"restart.explicit-cancel", sc_restart_explicit_cancel, b_restart, NULL},                   \
        {"restart.hundred", sc_restart_hundred, b_hundred, NULL},
