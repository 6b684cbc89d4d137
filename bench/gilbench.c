/* bench/gilbench.c - does a GIL per sub-interpreter make Python actors run
 * in parallel? Two figures for the subint backend in one GIL mode, through
 * the public API (tether.h); bench/run.py runs it once per mode and reads
 * the "R {json}" lines (also printed as text on stderr).
 *
 *   gilbench --plugin SUBINT.so --srcdir DIR --own-gil true|false
 *            [--count N] [--rounds R]
 *
 * gil_parallel   one actor counting to N in a Python loop, then two at once
 *                (timed from the go message, after both are ready, to the
 *                last outcome): with a GIL each, two take about the time of
 *                one (speed-up ~2 on 2 idle cores); sharing one, twice.
 * gil_spawn      spawn -> ready of a trivial actor, alone (quiet) and while
 *                another actor spins on the CPU (beside_spinner).
 *
 * Every wait has a deadline; an actor that misses one is reported in a
 * note and the supervisor is closed (bounded teardown).
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <tether/tether.h>

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static const char *own_gil = "true";
static char t_count[4200], t_noop[4200], t_spin[4200];
static long count_n = 30000000;
static int rounds = 10;

/* A note record: `what` then `detail` (quotes and backslashes dropped). */
static void note(const char *figure, const char *what, const char *detail)
{
    printf("R {\"figure\": \"%s\", \"who\": \"subint own_gil=%s\", \"mode\": \"unpinned\", "
           "\"note\": \"%s",
           figure, own_gil, what);
    for (const char *p = detail; *p; p++)
        if (*p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
            putchar(*p);
    printf("\"}\n");
    fflush(stdout);
}

/* Run `k` counting actors at once; seconds from the go message to the last
 * outcome, or -1. */
static double count_round(tether_supervisor *sup, int k)
{
    tether_handle *h[2] = {NULL, NULL};
    struct tether_error err;
    double took = -1;
    int ok = 1;
    for (int i = 0; i < k && ok; i++)
        if (tether_spawn(sup, t_count, 0, &h[i], &err) != 0) {
            note("gil_parallel", "spawn failed: ", err.msg);
            ok = 0;
        }
    char go[32];
    int len = snprintf(go, sizeof go, "%ld", count_n);
    int64_t t0 = now_ns(), deadline = t0 + 120 * 1000000000LL;
    for (int i = 0; i < k && ok; i++)
        if (tether_send(h[i], go, (size_t)len, deadline) != 0) {
            note("gil_parallel", "send failed", "");
            ok = 0;
        }
    for (int i = 0; i < k && ok; i++) {
        struct tether_outcome out;
        if (tether_wait(h[i], deadline, &out) != 0 || out.kind != TETHER_OUTCOME_EXITED) {
            note("gil_parallel", "a counting actor did not end normally within 120 s", "");
            ok = 0;
        }
    }
    if (ok)
        took = (now_ns() - t0) / 1e9;
    for (int i = 0; i < k; i++)
        if (h[i])
            tether_handle_release(h[i]);
    return took;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void print_samples(const char *figure, const char *mode, double *s, int n, const char *unit,
                          double scale)
{
    printf("R {\"figure\": \"%s\", \"who\": \"subint own_gil=%s\", \"mode\": \"%s\", "
           "\"unit\": \"%s\", \"samples\": [",
           figure, own_gil, mode, unit);
    for (int i = 0; i < n; i++)
        printf("%s%.1f", i ? ", " : "", s[i] * scale);
    printf("]}\n");
    fflush(stdout);
    qsort(s, (size_t)n, sizeof *s, cmp_d);
    if (n)
        fprintf(stderr, "gilbench own_gil=%s %s %s: median %.1f %s, max %.1f %s (n=%d)\n", own_gil,
                figure, mode, s[n / 2] * scale, unit, s[n - 1] * scale, unit, n);
}

/* spawn -> ready of the noop actor, `n` times; beside a spinning actor or not */
static void spawn_figure(tether_supervisor *sup, int beside)
{
    struct tether_error err;
    tether_handle *spinner = NULL;
    if (beside && tether_spawn(sup, t_spin, 0, &spinner, &err) != 0) {
        note("gil_spawn", "the spinner did not start: ", err.msg);
        if (spinner)
            tether_handle_release(spinner);
        return;
    }
    double s[64];
    int n = 0;
    for (int i = 0; i < rounds && i < 64; i++) {
        usleep(20000); /* the spinner is in its loop, holding its GIL */
        tether_handle *h = NULL;
        int64_t t0 = now_ns();
        int rc = tether_spawn(sup, t_noop, 0, &h, &err);
        double took = (now_ns() - t0) / 1e9;
        if (rc == 0) {
            s[n++] = took;
            struct tether_outcome out;
            tether_wait(h, now_ns() + 10 * 1000000000LL, &out);
        } else {
            note("gil_spawn", "spawn failed: ", err.msg);
        }
        if (h)
            tether_handle_release(h);
    }
    print_samples("gil_spawn", beside ? "beside_spinner" : "quiet", s, n, "ms", 1e3);
    if (spinner) {
        tether_cancel(spinner);
        struct tether_outcome out;
        tether_wait(spinner, now_ns() + 5 * 1000000000LL, &out); /* bounded */
        tether_handle_release(spinner);
    }
}

int main(int argc, char **argv)
{
    const char *plugin = NULL, *srcdir = NULL;
    static const struct option opts[] = {
        {"plugin", required_argument, NULL, 'p'}, {"srcdir", required_argument, NULL, 's'},
        {"own-gil", required_argument, NULL, 'g'}, {"count", required_argument, NULL, 'n'},
        {"rounds", required_argument, NULL, 'r'},  {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'p': plugin = optarg; break;
        case 's': srcdir = optarg; break;
        case 'g': own_gil = optarg; break;
        case 'n': count_n = atol(optarg); break;
        case 'r': rounds = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: gilbench --plugin SUBINT.so --srcdir DIR --own-gil true|false "
                            "[--count N] [--rounds R]\n");
            return 2;
        }
    }
    if (!plugin || !srcdir || (strcmp(own_gil, "true") && strcmp(own_gil, "false")) ||
        count_n <= 0 || rounds <= 0) {
        fprintf(stderr, "gilbench: --plugin and --srcdir are required; --own-gil is true or "
                        "false; --count and --rounds are > 0\n");
        return 2;
    }
    snprintf(t_count, sizeof t_count, "%s/bench/bench_actors.py:count", srcdir);
    snprintf(t_noop, sizeof t_noop, "%s/bench/bench_actors.py:noop", srcdir);
    snprintf(t_spin, sizeof t_spin, "%s/conformance/actors.py:busy_loop", srcdir);
    char text[5000];
    int len = snprintf(text, sizeof text,
                       "backend: subint\n"
                       "timeouts: { spawn: 20.0, soft_cancel: 0.5, hard_kill: 1.0 }\n"
                       "backends:\n"
                       "  subint: { path: \"%s\", options: { own_gil: \"%s\" } }\n",
                       plugin, own_gil);
    struct tether_config *cfg = NULL;
    struct tether_error err;
    if (tether_config_parse(text, (size_t)len, "gilbench", ".", &cfg, &err) != 0) {
        fprintf(stderr, "gilbench: config: %s\n", err.msg);
        return 1;
    }
    tether_supervisor *sup = NULL;
    if (tether_supervisor_open(cfg, "subint", &sup, &err) != 0) {
        /* e.g. own_gil: true on a plugin built for CPython 3.11 */
        note("gil_parallel", "not run: ", err.msg);
        fprintf(stderr, "gilbench own_gil=%s: not run: %s\n", own_gil, err.msg);
        tether_config_free(cfg);
        return 0;
    }
    tether_supervisor_set_strategy(sup, TETHER_ONE_FOR_ONE);
    double one = count_round(sup, 1), two = one >= 0 ? count_round(sup, 2) : -1;
    if (one > 0 && two > 0) {
        printf("R {\"figure\": \"gil_parallel\", \"who\": \"subint own_gil=%s\", "
               "\"mode\": \"unpinned\", \"count\": %ld, \"one_s\": %.3f, \"two_s\": %.3f, "
               "\"speedup\": %.2f}\n",
               own_gil, count_n, one, two, 2 * one / two);
        fprintf(stderr, "gilbench own_gil=%s gil_parallel: one actor %.3f s, two at once %.3f s: "
                        "speed-up %.2f\n",
                own_gil, one, two, 2 * one / two);
    }
    spawn_figure(sup, 0);
    spawn_figure(sup, 1);
    struct tether_close_report rep;
    tether_supervisor_close(sup, &rep);
    tether_config_free(cfg);
    return 0;
}
