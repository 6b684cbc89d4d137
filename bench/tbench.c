/* bench/tbench.c - tether measured through its public API (tether.h), each
 * figure interleaved sample by sample with its floor (floors.c) so both see
 * the same machine noise. One figure group per process: bench/run.py runs
 * it once per (backend, test, mode) and reads the "R {json}" lines.
 *
 *   tbench probe CONFIG
 *   tbench run --config PLUGINS.YAML --backend NAME --test TEST --mode MODE
 *              --builddir DIR --srcdir DIR [--n N] [--iters I] [--budget S]
 *
 * TEST: spawn, spawn-pool (the same from a warm pool), cancel, call, tput, stuck, many, many-stuck, mem, mem-floor
 * MODE: pinned (everything on CPU 0), split (supervisor side on CPU 0, actors
 *       on CPU 1), unpinned (the scheduler decides).
 */
#include "floors.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <unistd.h>

#include <tether/backend.h> /* TETHER_CAP_* bits of tether_plugin_probe */
#include <tether/tether.h>

static struct {
    const char *config, *backend, *test, *mode, *builddir, *srcdir;
    int n;
    long iters;
    double budget;
} o = {.mode = "pinned", .n = 10, .iters = 1000, .budget = 20};

static int python;     /* the backend runs Python actors */
static int outproc;    /* actors are processes */
static int actor_cpu = -1; /* split: where actors go */
static char plugin_path[4096];
static char option_text[2048];
static unsigned seed = 12345;

/* ---- targets ------------------------------------------------------------------- */

static char tbuf[16][4200];
static int tnext;
static const char *target(const char *which)
{
    char *t = tbuf[tnext++ % 16];
    const char *d = o.builddir, *s = o.srcdir;
    if (python) {
        if (!strcmp(which, "noop") || !strcmp(which, "pump"))
            snprintf(t, 4200, "%s/bench/bench_actors.py:%s", s, which);
        else if (!strcmp(which, "serve"))
            snprintf(t, 4200, "%s/conformance/actors.py:idle_serving", s);
        else if (!strcmp(which, "spin"))
            snprintf(t, 4200, "%s/conformance/actors.py:busy_loop", s);
        else
            snprintf(t, 4200, "%s/conformance/actors.py:%s", s, which);
    } else {
        if (!strcmp(which, "noop") || !strcmp(which, "pump") ||
            (!strcmp(which, "spin") && !outproc))
            snprintf(t, 4200, "%s/bench/.libs/bench_actors.so:%s", d, which);
        else if (!strcmp(which, "spin"))
            snprintf(t, 4200, "%s/conformance/.libs/conformance_actors.so:busy_loop", d);
        else if (!strcmp(which, "serve"))
            snprintf(t, 4200, "%s/examples/.libs/demo_actors.so:serve", d);
        else
            snprintf(t, 4200, "%s/conformance/.libs/conformance_actors.so:%s", d, which);
    }
    return t;
}

/* ---- configuration ------------------------------------------------------------- */

static struct tether_config *make_config(double soft, double hard)
{
    char text[8192];
    snprintf(text, sizeof text,
             "backend: %s\n"
             "timeouts:\n  spawn: 5.0\n  soft_cancel: %g\n  hard_kill: %g\n"
             "max_frame: 16777216\nevents: null\nbackends:\n"
             "  %s: { path: \"%s\"%s }\n",
             o.backend, soft, hard, o.backend, plugin_path, option_text);
    struct tether_config *cfg;
    struct tether_error err;
    if (tether_config_parse(text, strlen(text), "bench.yaml", "/", &cfg, &err)) {
        fprintf(stderr, "tbench: config: %s\n%s", err.msg, text);
        exit(2);
    }
    return cfg;
}

static tether_supervisor *open_sup(struct tether_config *cfg)
{
    tether_supervisor *sup;
    struct tether_error err;
    if (tether_supervisor_open(cfg, o.backend, &sup, &err)) {
        fprintf(stderr, "tbench: open: %s\n", err.msg);
        exit(2);
    }
    return sup;
}

static void fatal_spawn(const char *what, struct tether_error *err)
{
    char buf[1200];
    snprintf(buf, sizeof buf, "spawn %s failed: %s", what, err->msg);
    emit_note(o.test, o.backend, o.mode, buf);
    fprintf(stderr, "tbench: %s\n", buf);
    fflush(NULL);
    _exit(3); /* do not wait for anything that may be stuck */
}

static tether_handle *spawn_or_die(tether_supervisor *sup, const char *which)
{
    tether_handle *h;
    struct tether_error err;
    if (tether_spawn(sup, target(which), 0, &h, &err))
        fatal_spawn(which, &err);
    if (actor_cpu >= 0 && outproc) {
        int64_t pid = tether_handle_pid(h);
        if (pid > 0 && pid != getpid()) {
            cpu_set_t s;
            cpuset_one(&s, actor_cpu);
            sched_setaffinity((pid_t)pid, sizeof s, &s);
        }
    }
    return h;
}

static int wait_outcome(tether_handle *h, double secs, struct tether_outcome *out)
{
    return tether_wait(h, tether_now_ns() + (int64_t)(secs * 1e9), out);
}

/* ---- tests ------------------------------------------------------------------------ */

static const char *floor_name(void)
{
    return outproc ? "floor-fork" : "floor-thread";
}

/* The parked workers of a warm pool (threads named tether-pool, backends/pool.h). */
static int pool_parked(void)
{
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        char path[300], comm[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = e->d_name[0] != '.' ? fopen(path, "r") : NULL;
        if (f && fgets(comm, sizeof comm, f) && !strcmp(comm, "tether-pool\n"))
            n++;
        if (f)
            fclose(f);
    }
    if (d)
        closedir(d);
    return n;
}

static int tasks_now(void)
{
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

/* Wait (untimed by any figure; at most 200 ms) until the process has no
 * more than `want` threads: the actor just reaped may still be ending on
 * its own thread (a sub-interpreter's end: ~2 ms of CPU after its outcome),
 * which must not run beside the next floor sample. */
static void tasks_settle(int want)
{
    int64_t end = tether_now_ns() + 200000000LL;
    while (tasks_now() > want && tether_now_ns() < end) {
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
}

/* Wait (untimed by the figure; at most 2 s) until `want` workers are
 * parked: a sample of the warm figure (and its floor) starts from a full
 * pool, with no refill running beside it. 0 when they did not come. */
static int pool_wait_parked(int want)
{
    int64_t end = tether_now_ns() + 2000000000LL;
    while (pool_parked() < want) {
        if (tether_now_ns() > end)
            return 0;
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    return 1;
}

/* spawn -> ready (and the whole cycle), cold; `pooled`: with options
 * pool: 4, each sample taken once a worker is parked, against the same
 * cold floor (issue #17: thread and fork <= the cold floor, subint <= 200 us). */
static void t_spawn(int pooled)
{
    const char *fr_name = pooled ? "spawn_ready_pool" : "spawn_ready";
    const char *fc_name = pooled ? "spawn_cycle_pool" : "spawn_cycle";
    if (pooled && outproc) {
        emit_note(fr_name, o.backend, o.mode, "not measured: this backend has no pool");
        exit(0);
    }
    if (pooled && !strcmp(o.mode, "split")) {
        /* the refiller and its workers are born when the supervisor opens,
         * on the supervisor's CPU: pooled actors would not run on CPU 1 */
        emit_note(fr_name, o.backend, o.mode,
                  "not measured: pooled workers run where the supervisor was opened");
        exit(0);
    }
    if (pooled) {
        size_t n = strlen(option_text);
        if (n)
            snprintf(option_text + n - 2, sizeof option_text - n + 2, ", pool: 4 }");
        else
            snprintf(option_text, sizeof option_text, ", options: { pool: 4 }");
    }
    struct tether_config *cfg = make_config(2.0, 1.0);
    tether_supervisor *sup = open_sup(cfg);
    int split = !strcmp(o.mode, "split");
    if (split && outproc) {
        emit_note(fr_name, o.backend, o.mode,
                  "not measured: a forked child starts on its parent's CPU");
        exit(0);
    }
    if (split)
        default_thread_cpu(1);
    struct samples tr = {0}, tc = {0}, fr = {0}, fc = {0};
    struct budget b;
    budget_init(&b, o.iters, 100, o.budget);
    long dry = 0;
    int base_tasks = -1;
    for (long i = 0; budget_more(&b, i); i++) {
        double r, c;
        if (pooled && !pool_wait_parked(4)) {
            dry++;
            continue;
        }
        /* the actor of the last sample may still be ending on its own thread
         * (a sub-interpreter: ~2 ms of CPU after its outcome) */
        if (base_tasks < 0)
            base_tasks = tasks_now();
        else
            tasks_settle(base_tasks);
        if (!python) {
            if ((outproc ? floor_fork_spawn(&r, &c) : floor_thread_spawn(split ? 1 : -1, &r, &c)))
                break;
            spush(&fr, r);
            spush(&fc, c);
        }
        struct tether_error err;
        tether_handle *h;
        int64_t t0 = bnow();
        if (tether_spawn(sup, target("noop"), 0, &h, &err))
            fatal_spawn("noop", &err);
        int64_t t1 = bnow();
        struct tether_outcome out;
        if (wait_outcome(h, 5, &out) || out.kind != TETHER_OUTCOME_EXITED) {
            emit_note(fc_name, o.backend, o.mode, "noop did not exit cleanly");
            _exit(3);
        }
        int64_t t2 = bnow();
        tether_handle_release(h);
        spush(&tr, (t1 - t0) / 1e3);
        spush(&tc, (t2 - t0) / 1e3);
    }
    if (dry) {
        char note[128];
        snprintf(note, sizeof note, "%ld samples skipped: the pool was not full within 2 s", dry);
        emit_note(fr_name, o.backend, o.mode, note);
    }
    emit(fr_name, o.backend, o.mode, "us", &tr);
    emit(fc_name, o.backend, o.mode, "us", &tc);
    if (!python) {
        emit(fr_name, floor_name(), o.mode, "us", &fr);
        emit(fc_name, floor_name(), o.mode, "us", &fc);
    }
    tether_supervisor_close(sup, NULL);
    tether_config_free(cfg);
}

static void t_cancel(void)
{
    struct tether_config *cfg = make_config(2.0, 1.0);
    tether_supervisor *sup = open_sup(cfg);
    int split = !strcmp(o.mode, "split");
    if (split) {
        default_thread_cpu(1);
        actor_cpu = 1;
    }
    struct samples tv = {0}, fv = {0};
    struct budget b;
    budget_init(&b, o.iters, 100, o.budget);
    int base_tasks = tasks_now();
    for (long i = 0; budget_more(&b, i); i++) {
        double us;
        tasks_settle(base_tasks);
        if ((outproc ? floor_proc_cancel_msg(actor_cpu, &seed, &us)
                     : floor_thread_cancel_msg(actor_cpu, &seed, &us)))
            break;
        spush(&fv, us);
        tether_handle *h = spawn_or_die(sup, "cooperative");
        settle(&seed);
        int64_t t0 = bnow();
        tether_cancel(h);
        struct tether_outcome out;
        if (wait_outcome(h, 5, &out) || out.kind != TETHER_OUTCOME_CANCELLED) {
            emit_note("cancel_coop", o.backend, o.mode, "cooperative actor did not end cancelled");
            _exit(3);
        }
        spush(&tv, (bnow() - t0) / 1e3);
        tether_handle_release(h);
    }
    emit("cancel_coop", o.backend, o.mode, "us", &tv);
    emit("cancel_coop", outproc ? "floor-cancel-msg-proc" : "floor-cancel-msg-thread", o.mode, "us",
         &fv);
    tether_supervisor_close(sup, NULL);
    tether_config_free(cfg);
}

static void t_call(void)
{
    struct tether_config *cfg = make_config(2.0, 1.0);
    tether_supervisor *sup = open_sup(cfg);
    int split = !strcmp(o.mode, "split");
    if (split) {
        default_thread_cpu(1);
        actor_cpu = 1;
    }
    tether_handle *h = spawn_or_die(sup, "serve");
    struct peer pt, pp;
    if (peer_open(&pt, 0, actor_cpu) || peer_open(&pp, 1, actor_cpu))
        exit(2);
    struct samples tv = {0}, ft = {0}, fp = {0};
    struct budget b;
    budget_init(&b, o.iters, 300, o.budget);
    struct tether_value args[2] = {{.type = 'i', .v.i = 20}, {.type = 'i', .v.i = 22}};
    for (long i = 0; budget_more(&b, i); i++) {
        double us;
        if (peer_rtt(&pt, 32, &us))
            exit(2);
        spush(&ft, us);
        if (peer_rtt(&pp, 32, &us))
            exit(2);
        spush(&fp, us);
        struct tether_value ret;
        struct tether_error err;
        int64_t t0 = bnow();
        int rc = python ? tether_call(h, "ping", ":i", NULL, 0, &ret, tether_now_ns() + 5000000000LL, &err)
                        : tether_call(h, "add", "ii:i", args, 2, &ret, tether_now_ns() + 5000000000LL, &err);
        int64_t t1 = bnow();
        if (rc) {
            emit_note("call_rtt", o.backend, o.mode, err.msg);
            _exit(3);
        }
        spush(&tv, (t1 - t0) / 1e3);
    }
    emit("call_rtt", o.backend, o.mode, "us", &tv);
    emit("call_rtt", "floor-pingpong-thread", o.mode, "us", &ft);
    emit("call_rtt", "floor-pingpong-proc", o.mode, "us", &fp);
    peer_close(&pt);
    peer_close(&pp);
    tether_cancel(h);
    struct tether_outcome out;
    wait_outcome(h, 5, &out);
    tether_handle_release(h);
    tether_supervisor_close(sup, NULL);
    tether_config_free(cfg);
}

/* tether side of the throughput figures; seconds for one batch */
static int tt_source(tether_handle *h, unsigned count, unsigned size, double *secs)
{
    char cmd[64];
    int n = snprintf(cmd, sizeof cmd, "S%u %u", count, size);
    int64_t dl = tether_now_ns() + 30 * TETHER_NS_PER_SEC;
    int64_t t0 = bnow();
    if (tether_send(h, cmd, (size_t)n, dl))
        return -1;
    for (unsigned i = 0; i < count; i++) {
        void *buf;
        size_t len;
        if (tether_recv(h, &buf, &len, dl) || len != size)
            return -1;
        free(buf);
    }
    *secs = (bnow() - t0) / 1e9;
    return 0;
}

static int tt_sink(tether_handle *h, unsigned count, unsigned size, double *secs)
{
    char *body = malloc(size ? size : 1);
    memset(body, 'D', size);
    int64_t dl = tether_now_ns() + 30 * TETHER_NS_PER_SEC;
    int64_t t0 = bnow();
    for (unsigned i = 0; i < count; i++)
        if (tether_send(h, body, size, dl))
            return -1;
    void *buf;
    size_t len;
    if (tether_send(h, "A", 1, dl) || tether_recv(h, &buf, &len, dl))
        return -1;
    free(buf);
    *secs = (bnow() - t0) / 1e9;
    free(body);
    return 0;
}

static void t_tput(void)
{
    struct tether_config *cfg = make_config(2.0, 1.0);
    tether_supervisor *sup = open_sup(cfg);
    int split = !strcmp(o.mode, "split");
    if (split) {
        default_thread_cpu(1);
        actor_cpu = 1;
    }
    tether_handle *h = spawn_or_die(sup, "pump");
    struct peer p;
    if (peer_open(&p, outproc, actor_cpu))
        exit(2);
    const char *fl = outproc ? "floor-stream-proc" : "floor-stream-thread";
    static const struct {
        const char *fig, *unit;
        unsigned count, size;
        int source;
    } kinds[] = {
        {"tput_small_in", "msg/s", 1000, 64, 1},  {"tput_small_out", "msg/s", 1000, 64, 0},
        {"tput_64k_in", "MB/s", 64, 65536, 1},    {"tput_64k_out", "MB/s", 64, 65536, 0},
    };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        struct samples tv = {0}, fv = {0};
        struct budget b;
        budget_init(&b, o.iters, 100, o.budget / 4);
        for (long i = 0; budget_more(&b, i); i++) {
            double s1 = 0, s2 = 0;
            int r1 = kinds[k].source ? peer_source(&p, kinds[k].count, kinds[k].size, &s1)
                                     : peer_sink(&p, kinds[k].count, kinds[k].size, &s1);
            int r2 = kinds[k].source ? tt_source(h, kinds[k].count, kinds[k].size, &s2)
                                     : tt_sink(h, kinds[k].count, kinds[k].size, &s2);
            if (r1 || r2) {
                emit_note(kinds[k].fig, o.backend, o.mode, r2 ? "tether batch failed" : "floor failed");
                _exit(3);
            }
            double per = kinds[k].size == 64 ? kinds[k].count : kinds[k].count * (double)kinds[k].size / 1e6;
            spush(&fv, per / s1);
            spush(&tv, per / s2);
        }
        emit(kinds[k].fig, o.backend, o.mode, kinds[k].unit, &tv);
        emit(kinds[k].fig, fl, o.mode, kinds[k].unit, &fv);
    }
    peer_close(&p);
    tether_cancel(h);
    struct tether_outcome out;
    wait_outcome(h, 5, &out);
    tether_handle_release(h);
    tether_supervisor_close(sup, NULL);
    tether_config_free(cfg);
}

/* Release abandoned `spin` actors of bench_actors.so (thread backend). */
static void release_spinners(void)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/bench/.libs/bench_actors.so", o.builddir);
    void *dl = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (!dl)
        return;
    volatile unsigned *gen = dlsym(dl, "bench_spin_generation");
    if (gen)
        (*gen)++;
    dlclose(dl);
}

static void t_stuck(void)
{
    const double S = 0.020, H = 0.020;
    struct tether_config *cfg = make_config(S, H);
    tether_supervisor *sup = open_sup(cfg);
    const struct tether_timeouts *to = tether_supervisor_timeouts(sup);
    static const char *kinds[] = {"timed_waits", "blocked_syscall", "spin"};
    char note[256];
    snprintf(note, sizeof note, "soft_cancel %gs, hard_kill %gs", to->soft_cancel, to->hard_kill);
    emit_note("stuck_config", o.backend, o.mode, note);
    for (int k = 0; k < 3; k++) {
        struct samples over = {0}, hardv = {0}, flv = {0}, endv = {0};
        int n_killed = 0, n_aband = 0, n_cancel = 0, n_other = 0;
        struct budget b;
        budget_init(&b, o.iters, 100, o.budget / 3);
        long i;
        for (i = 0; budget_more(&b, i); i++) {
            double us;
            if (!python && (outproc ? floor_proc_sigkill(-1, &seed, &us)
                                    : floor_thread_pcancel(-1, &seed, &us)) == 0)
                spush(&flv, us);
            tether_handle *h = spawn_or_die(sup, kinds[k]);
            settle(&seed);
            int64_t t0 = bnow();
            tether_cancel(h);
            struct tether_outcome out;
            if (wait_outcome(h, 10, &out)) {
                emit_note("stuck", o.backend, o.mode, "no outcome within 10 s");
                _exit(3);
            }
            double end_ms = (bnow() - t0) / 1e6;
            double expect = 0;
            if (out.kind == TETHER_OUTCOME_KILLED) {
                n_killed++;
                expect = to->soft_cancel;
                spush(&hardv, out.hard_kill_ns / 1e3);
            } else if (out.kind == TETHER_OUTCOME_ABANDONED) {
                n_aband++;
                expect = to->soft_cancel + to->hard_kill;
            } else if (out.kind == TETHER_OUTCOME_CANCELLED) {
                n_cancel++;
                expect = -1;
            } else {
                n_other++;
                expect = -1;
            }
            spush(&endv, end_ms);
            if (expect >= 0)
                spush(&over, end_ms - expect * 1e3);
            tether_handle_release(h);
            if (out.kind == TETHER_OUTCOME_ABANDONED) {
                if (!python && !outproc)
                    release_spinners();
                else if (python)
                    break; /* an abandoned interpreter keeps the shared GIL busy */
            }
        }
        char fig[64];
        snprintf(fig, sizeof fig, "stuck_%s", kinds[k]);
        snprintf(note, sizeof note, "%ld runs: %d killed, %d abandoned, %d cancelled, %d other", i,
                 n_killed, n_aband, n_cancel, n_other);
        emit_note(fig, o.backend, o.mode, note);
        emit(fig, o.backend, o.mode, "ms", &over);
        snprintf(fig, sizeof fig, "stuckend_%s", kinds[k]);
        emit(fig, o.backend, o.mode, "ms", &endv);
        if (hardv.n) {
            snprintf(fig, sizeof fig, "hardkill_%s", kinds[k]);
            emit(fig, o.backend, o.mode, "us", &hardv);
            if (flv.n)
                emit(fig, outproc ? "floor-sigkill" : "floor-pthread-cancel", o.mode, "us", &flv);
        }
    }
    tether_supervisor_close(sup, NULL);
    tether_config_free(cfg);
}

/* ---- N at once ------------------------------------------------------------------- */

static int spawn_many(tether_supervisor *sup, tether_handle **hs, int n, const char *which)
{
    struct tether_error err;
    for (int i = 0; i < n; i++)
        if (tether_spawn(sup, target(which), TETHER_SPAWN_NOWAIT, &hs[i], &err))
            fatal_spawn(which, &err);
    for (int i = 0; i < n; i++)
        if (tether_wait_ready(hs[i], tether_now_ns() + 30 * TETHER_NS_PER_SEC, &err))
            fatal_spawn(which, &err);
    return 0;
}

static int end_many(tether_supervisor *sup, tether_handle **hs, int n, double secs, int *kinds)
{
    tether_supervisor_cancel_all(sup);
    int64_t dl = tether_now_ns() + (int64_t)(secs * 1e9);
    for (int i = 0; i < n; i++) {
        struct tether_outcome out;
        if (tether_wait(hs[i], dl, &out))
            return -1;
        if (kinds)
            kinds[out.kind]++;
    }
    for (int i = 0; i < n; i++)
        tether_handle_release(hs[i]);
    return 0;
}

static void t_many(void)
{
    struct tether_config *cfg = make_config(2.0, 1.0);
    tether_supervisor *sup = open_sup(cfg);
    int n = o.n;
    tether_handle **hs = calloc((size_t)n, sizeof *hs);
    struct samples tr = {0}, td = {0}, fr = {0}, fd = {0};
    struct budget b;
    budget_init(&b, o.iters, 20, o.budget);
    for (long i = 0; budget_more(&b, i); i++) {
        if (!python) {
            double r, d;
            if (floor_many(outproc, n, &r, &d, NULL, NULL))
                break;
            spush(&fr, r);
            spush(&fd, d);
        }
        int64_t t0 = bnow();
        spawn_many(sup, hs, n, "idle");
        int64_t t1 = bnow();
        if (end_many(sup, hs, n, 30, NULL)) {
            emit_note("many", o.backend, o.mode, "not all ended within 30 s");
            _exit(3);
        }
        int64_t t2 = bnow();
        spush(&tr, (t1 - t0) / 1e6);
        spush(&td, (t2 - t1) / 1e6);
    }
    char fig[64];
    snprintf(fig, sizeof fig, "many%d_ready", n);
    emit(fig, o.backend, o.mode, "ms", &tr);
    if (fr.n)
        emit(fig, floor_name(), o.mode, "ms", &fr);
    snprintf(fig, sizeof fig, "many%d_cancel", n);
    emit(fig, o.backend, o.mode, "ms", &td);
    if (fd.n)
        emit(fig, outproc ? "floor-fork-cancel-msg" : "floor-thread-cancel-msg", o.mode, "ms", &fd);
    tether_supervisor_close(sup, NULL);
    tether_config_free(cfg);
}

/* N stuck actors (timed waits) cancelled together: the teardown must take
 * one bound, not N. */
static void t_many_stuck(void)
{
    const double S = 0.100, H = 0.100;
    struct tether_config *cfg = make_config(S, H);
    tether_supervisor *sup = open_sup(cfg);
    int n = o.n;
    tether_handle **hs = calloc((size_t)n, sizeof *hs);
    struct samples td = {0};
    int kinds[8] = {0};
    struct budget b;
    budget_init(&b, o.iters, 10, o.budget);
    long i;
    for (i = 0; budget_more(&b, i); i++) {
        spawn_many(sup, hs, n, "timed_waits");
        int64_t t1 = bnow();
        if (end_many(sup, hs, n, 30, kinds)) {
            emit_note("manystuck", o.backend, o.mode, "not all ended within 30 s");
            _exit(3);
        }
        spush(&td, (bnow() - t1) / 1e6);
    }
    char fig[64], note[256];
    snprintf(fig, sizeof fig, "manystuck%d", n);
    emit(fig, o.backend, o.mode, "ms", &td);
    /* the bound the design promises: soft + hard + slack (100 ms + 2 ms an actor) */
    emit_value(fig, "bound", o.mode, "ms", (S + H) * 1e3 + 100 + 2.0 * n);
    emit_value(fig, "soft_cancel", o.mode, "ms", S * 1e3);
    snprintf(note, sizeof note, "%ld rounds of %d: %d killed, %d abandoned, %d cancelled", i, n,
             kinds[TETHER_OUTCOME_KILLED], kinds[TETHER_OUTCOME_ABANDONED],
             kinds[TETHER_OUTCOME_CANCELLED]);
    emit_note(fig, o.backend, o.mode, note);
    tether_supervisor_close(sup, NULL);
    tether_config_free(cfg);
}

/* ---- memory ------------------------------------------------------------------------ */

static long status_kib(const char *path, const char *key)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[256];
    long v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == ':') {
            v = strtol(line + kl + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

/* Sum of the Pss of every child process of this process (any thread's). */
static long children_pss_kib(int *count)
{
    long total = 0;
    *count = 0;
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char p[300];
        snprintf(p, sizeof p, "/proc/self/task/%s/children", e->d_name);
        FILE *f = fopen(p, "r");
        if (!f)
            continue;
        long pid;
        while (fscanf(f, "%ld", &pid) == 1) {
            char sp[64];
            snprintf(sp, sizeof sp, "/proc/%ld/smaps_rollup", pid);
            long v = status_kib(sp, "Pss");
            if (v > 0) {
                total += v;
                (*count)++;
            }
        }
        fclose(f);
    }
    closedir(d);
    return total;
}

struct memsnap {
    long rss, hwm, avail, child_pss;
    int children;
};

static void snap(struct memsnap *m)
{
    m->rss = status_kib("/proc/self/status", "VmRSS");
    m->hwm = status_kib("/proc/self/status", "VmHWM");
    m->avail = status_kib("/proc/meminfo", "MemAvailable");
    m->child_pss = children_pss_kib(&m->children);
}

static struct memsnap at_ready_snap;
static void snap_cb(void *arg)
{
    (void)arg;
    snap(&at_ready_snap);
}

static void emit_mem(const char *who, int n, const struct memsnap *base, const struct memsnap *top)
{
    char fig[64];
    snprintf(fig, sizeof fig, "mem%d", n);
    printf("R {\"figure\":\"%s\",\"who\":\"%s\",\"mode\":\"%s\",\"n\":%d,\"rss_base_kib\":%ld,"
           "\"rss_ready_kib\":%ld,\"hwm_kib\":%ld,\"children\":%d,\"children_pss_kib\":%ld,"
           "\"memavail_drop_kib\":%ld}\n",
           fig, who, o.mode, n, base->rss, top->rss, top->hwm, top->children, top->child_pss,
           base->avail - top->avail);
    fflush(stdout);
}

static void t_mem(void)
{
    struct tether_config *cfg = make_config(2.0, 1.0);
    tether_supervisor *sup = open_sup(cfg);
    int n = o.n;
    tether_handle **hs = calloc((size_t)n, sizeof *hs);
    struct memsnap base, top;
    snap(&base);
    spawn_many(sup, hs, n, "idle");
    usleep(20000); /* let every actor settle into its wait */
    snap(&top);
    if (end_many(sup, hs, n, 30, NULL))
        _exit(3);
    emit_mem(o.backend, n, &base, &top);
    tether_supervisor_close(sup, NULL);
    tether_config_free(cfg);
}

static void t_mem_floor(void)
{
    struct memsnap base;
    snap(&base);
    double r, d;
    floor_many(outproc, o.n, &r, &d, snap_cb, NULL);
    emit_mem(floor_name(), o.n, &base, &at_ready_snap);
}

/* ---- main ---------------------------------------------------------------------------- */

static int probe(const char *config)
{
    struct tether_config *cfg;
    struct tether_error err;
    if (tether_config_load(config, &cfg, &err)) {
        fprintf(stderr, "tbench: %s\n", err.msg);
        return 2;
    }
    for (size_t i = 0; i < cfg->n_backends; i++) {
        const struct tether_backend_config *bc = &cfg->backends[i];
        struct tether_plugin_info info;
        char caps[256] = "";
        if (tether_plugin_probe(bc->path, &info, &err)) {
            printf("P {\"name\":\"%s\",\"loads\":false,\"why\":\"%s\"}\n", bc->name, err.msg);
            continue;
        }
        tether_caps_format(info.caps, caps, sizeof caps);
        printf("P {\"name\":\"%s\",\"loads\":true,\"language\":\"%s\",\"caps\":\"%s\","
               "\"can_spawn\":%s,\"out_of_process\":%s}\n",
               info.name, info.language, caps, "true" /* spawn is mandatory */,
               (info.caps & TETHER_CAP_OUT_OF_PROCESS) ? "true" : "false");
    }
    tether_config_free(cfg);
    return 0;
}

/* ---- containment cost (fork backend) ------------------------------------------------ */

/* The configuration with the backend's options plus mode and containment. */
static struct tether_config *make_contain_config(const char *mode, const char *mech)
{
    char text[8192], opts[2400], kept[2100] = "";
    /* the configuration's options but mode and containment ("k: \"v\"" items) */
    const char *p = strchr(option_text, '{');
    size_t used = 0;
    while (p && (p = strpbrk(p + 1, "abcdefghijklmnopqrstuvwxyz"))) {
        const char *q = strchr(p, '"');
        q = q ? strchr(q + 1, '"') : NULL;
        if (!q)
            break;
        if (strncmp(p, "mode:", 5) && strncmp(p, "containment:", 12) && used < sizeof kept)
            used += (size_t)snprintf(kept + used, sizeof kept - used, "%.*s, ", (int)(q - p + 1), p);
        p = q;
    }
    snprintf(opts, sizeof opts, ", options: { %smode: %s, containment: %s }", kept, mode, mech);
    snprintf(text, sizeof text,
             "backend: %s\n"
             "timeouts:\n  spawn: 5.0\n  soft_cancel: 0\n  hard_kill: 2.0\n"
             "max_frame: 16777216\nevents: null\nbackends:\n"
             "  %s: { path: \"%s\"%s }\n",
             o.backend, o.backend, plugin_path, opts);
    struct tether_config *cfg;
    struct tether_error err;
    /* relative option paths (the exec helper) resolve in the build tree */
    if (tether_config_parse(text, strlen(text), "bench.yaml", o.builddir, &cfg, &err)) {
        fprintf(stderr, "tbench: config: %s\n%s", err.msg, text);
        exit(2);
    }
    return cfg;
}

/* spawn -> ready of a trivial actor, and teardown (cancel with soft_cancel
 * 0, i.e. hard kill at once, -> outcome) of a stuck one, for each
 * containment, interleaved in one process so that all see the same noise. */
static void t_contain(void)
{
    if (python || !outproc) {
        emit_note("contain_spawn", o.backend, o.mode, "not measured: not an out-of-process C backend");
        return;
    }
    static const char *const mechs[] = {"group", "subreaper", "cgroup", "pidns"};
    static const char *const modes[] = {"fork", "exec"};
    enum { NM = 4 };
    for (int m = 0; m < 2; m++) {
        struct tether_config *cfg[NM];
        tether_supervisor *sup[NM];
        struct samples sp[NM], td[NM];
        memset(sp, 0, sizeof sp);
        memset(td, 0, sizeof td);
        int ok[NM];
        for (int k = 0; k < NM; k++) {
            cfg[k] = make_contain_config(modes[m], mechs[k]);
            struct tether_error err;
            ok[k] = tether_supervisor_open(cfg[k], o.backend, &sup[k], &err) == 0;
            if (!ok[k]) {
                char who[64];
                snprintf(who, sizeof who, "%s/%s", modes[m], mechs[k]);
                emit_note("contain_spawn", who, o.mode, err.msg);
            }
        }
        struct budget b;
        budget_init(&b, o.iters, 50, o.budget / 2);
        for (long i = 0; budget_more(&b, i); i++) {
            for (int k = 0; k < NM; k++) {
                if (!ok[k])
                    continue;
                struct tether_error err;
                tether_handle *h;
                int64_t t0 = bnow();
                if (tether_spawn(sup[k], target("noop"), 0, &h, &err))
                    fatal_spawn("noop", &err);
                spush(&sp[k], (bnow() - t0) / 1e3);
                struct tether_outcome out;
                if (wait_outcome(h, 5, &out)) {
                    emit_note("contain_spawn", o.backend, o.mode, "noop did not exit");
                    _exit(3);
                }
                tether_handle_release(h);
                h = spawn_or_die(sup[k], "timed_waits");
                t0 = bnow();
                tether_cancel(h);
                if (wait_outcome(h, 5, &out)) {
                    emit_note("contain_teardown", o.backend, o.mode, "no outcome within 5 s");
                    _exit(3);
                }
                spush(&td[k], (bnow() - t0) / 1e3);
                tether_handle_release(h);
            }
        }
        for (int k = 0; k < NM; k++) {
            char who[64];
            snprintf(who, sizeof who, "%s/%s", modes[m], mechs[k]);
            if (ok[k]) {
                emit("contain_spawn", who, o.mode, "us", &sp[k]);
                emit("contain_teardown", who, o.mode, "us", &td[k]);
                tether_supervisor_close(sup[k], NULL);
            }
            tether_config_free(cfg[k]);
        }
    }
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "probe"))
        return probe(argv[2]);
    if (argc < 2 || strcmp(argv[1], "run")) {
        fprintf(stderr, "usage: tbench probe CONFIG | tbench run --config F --backend B --test T ...\n");
        return 2;
    }
    static const struct option opts[] = {
        {"config", 1, 0, 'c'}, {"backend", 1, 0, 'b'}, {"test", 1, 0, 't'},
        {"mode", 1, 0, 'm'},   {"builddir", 1, 0, 'B'}, {"srcdir", 1, 0, 'S'},
        {"n", 1, 0, 'n'},      {"iters", 1, 0, 'i'},    {"budget", 1, 0, 'g'},
        {0, 0, 0, 0}};
    int c;
    optind = 2;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'c': o.config = optarg; break;
        case 'b': o.backend = optarg; break;
        case 't': o.test = optarg; break;
        case 'm': o.mode = optarg; break;
        case 'B': o.builddir = optarg; break;
        case 'S': o.srcdir = optarg; break;
        case 'n': o.n = atoi(optarg); break;
        case 'i': o.iters = atol(optarg); break;
        case 'g': o.budget = atof(optarg); break;
        default: return 2;
        }
    }
    if (!o.config || !o.backend || !o.test || !o.builddir || !o.srcdir) {
        fprintf(stderr, "tbench run: --config, --backend, --test, --builddir, --srcdir are required\n");
        return 2;
    }
    struct tether_config *cfg;
    struct tether_error err;
    if (tether_config_load(o.config, &cfg, &err)) {
        fprintf(stderr, "tbench: %s\n", err.msg);
        return 2;
    }
    const struct tether_backend_config *bc = tether_config_find(cfg, o.backend);
    if (!bc) {
        fprintf(stderr, "tbench: no backend %s in %s\n", o.backend, o.config);
        return 2;
    }
    snprintf(plugin_path, sizeof plugin_path, "%s", bc->path);
    if (bc->n_options) {
        size_t used = (size_t)snprintf(option_text, sizeof option_text, ", options: {");
        for (size_t i = 0; i < bc->n_options && used < sizeof option_text; i++)
            used += (size_t)snprintf(option_text + used, sizeof option_text - used, "%s%s: \"%s\"",
                                     i ? ", " : " ", bc->options[i].key, bc->options[i].value);
        if (used < sizeof option_text)
            snprintf(option_text + used, sizeof option_text - used, " }");
    }
    struct tether_plugin_info info;
    if (tether_plugin_probe(plugin_path, &info, &err)) {
        fprintf(stderr, "tbench: %s\n", err.msg);
        return 2;
    }
    tether_config_free(cfg);
    python = !strcmp(info.language, "python");
    outproc = (info.caps & TETHER_CAP_OUT_OF_PROCESS) != 0;
    /* bench actors find the conformance module the way the suite sets it */
    char conf[4200];
    snprintf(conf, sizeof conf, "%s/conformance/.libs/conformance_actors.so", o.builddir);
    setenv("TETHER_CONFORMANCE_ACTORS", conf, 0);

    if (!strcmp(o.mode, "pinned") || !strcmp(o.mode, "split"))
        pin_self(0);
    if (!strncmp(o.test, "many", 4) || !strncmp(o.test, "mem", 3))
        progress("%s %s N=%d (%s)", o.backend, o.test, o.n, o.mode);
    else
        progress("%s %s (%s)", o.backend, o.test, o.mode);
    if (!strcmp(o.test, "spawn"))
        t_spawn(0);
    else if (!strcmp(o.test, "spawn-pool"))
        t_spawn(1);
    else if (!strcmp(o.test, "cancel"))
        t_cancel();
    else if (!strcmp(o.test, "call"))
        t_call();
    else if (!strcmp(o.test, "tput"))
        t_tput();
    else if (!strcmp(o.test, "stuck"))
        t_stuck();
    else if (!strcmp(o.test, "many"))
        t_many();
    else if (!strcmp(o.test, "many-stuck"))
        t_many_stuck();
    else if (!strcmp(o.test, "mem"))
        t_mem();
    else if (!strcmp(o.test, "mem-floor"))
        t_mem_floor();
    else if (!strcmp(o.test, "contain"))
        t_contain();
    else {
        fprintf(stderr, "tbench: unknown test %s\n", o.test);
        return 2;
    }
    fflush(NULL);
    return 0;
}
