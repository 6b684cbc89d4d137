/* cli/cmd_config.c - `tether backends` and `tether config check`. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tether/backend.h>

#include "cli.h"

static const char *const strategy_names[] = {"one_for_all", "one_for_one", "rest_for_one"};
static const char *const restart_names[] = {"default", "temporary", "transient", "permanent"};

static const char backends_usage[] =
    "usage: tether backends [-c FILE]\n"
    "List the configured backends: name, plugin file, ABI, language,\n"
    "capabilities, and whether the plugin loads (with the loader's reason).\n"
    "Exit 0 when every configured backend loads, 1 otherwise.\n";

static const char check_usage[] =
    "usage: tether config check [-c FILE]\n"
    "Validate a configuration and print the effective settings with the\n"
    "worst-case teardown bound of each backend. Exit 0 valid, 2 invalid.\n";

static const char explain_usage[] =
    "usage: tether config explain [-c FILE]\n"
    "Print, per backend, the teardown timeline the configuration implies (phase\n"
    "by phase, worst case), measure one spawn of a trivial actor, and warn about\n"
    "settings that would surprise. Exit 0, or 2 if the configuration is invalid.\n";

static const struct option config_opts[] = {
    {"config", required_argument, NULL, 'c'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Parse [-c FILE] [--help]; returns -1 to continue, else an exit status. */
static int parse_config_only(int argc, char **argv, const char *usage, const char **config)
{
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+c:h", config_opts, NULL)) != -1) {
        switch (c) {
        case 'c': *config = optarg; break;
        case 'h': fputs(usage, stdout); return EXIT_OK;
        default:
            cli_usage_error("tether", usage, "unknown or incomplete option '%s'",
                            argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        cli_usage_error("tether", usage, "unexpected argument '%s'", argv[optind]);
        return EXIT_USAGE;
    }
    return -1;
}

int cmd_backends(int argc, char **argv)
{
    const char *config = NULL;
    int rc = parse_config_only(argc, argv, backends_usage, &config);
    if (rc >= 0)
        return rc;
    struct tether_config *cfg = cli_load_config("tether backends", config);
    if (!cfg)
        return EXIT_USAGE;
    /* probe every plugin first: the NAME and CAPABILITIES columns are as
     * wide as their widest entry */
    size_t n = cfg->n_backends;
    struct row {
        struct tether_plugin_info info;
        struct tether_error err;
        int ok;
        char caps[128];
    } *rows = calloc(n ? n : 1, sizeof *rows);
    if (!rows) {
        fprintf(stderr, "tether backends: out of memory\n");
        tether_config_free(cfg);
        return EXIT_FAIL;
    }
    int w = 8, cw = 12;
    for (size_t i = 0; i < n; i++) {
        struct row *r = &rows[i];
        r->ok = tether_plugin_probe(cfg->backends[i].path, &r->info, &r->err) == 0;
        snprintf(r->caps, sizeof r->caps, "-");
        if (r->ok)
            tether_caps_format(r->info.caps, r->caps, sizeof r->caps);
        if ((int)strlen(cfg->backends[i].name) > w)
            w = (int)strlen(cfg->backends[i].name);
        if ((int)strlen(r->caps) > cw)
            cw = (int)strlen(r->caps);
    }
    printf("%-*s %-4s %-8s %-*s %-5s %-7s %s\n", w, "NAME", "ABI", "LANGUAGE", cw, "CAPABILITIES",
           "LOADS", "SPAWNS", "FILE");
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        const struct tether_backend_config *b = &cfg->backends[i];
        const struct tether_plugin_info *info = &rows[i].info;
        if (rows[i].ok) {
            printf("%-*s %-4u %-8s %-*s %-5s %-7s %s\n", w, b->name, info->abi, info->language, cw,
                   rows[i].caps, "yes", "yes", b->path); /* spawn is mandatory */
            if (info->note[0])
                printf("%*s note: %s\n", w, "", info->note);
            /* what opening it with this configuration decides (e.g. the
             * fork backend's containment), or why it cannot open */
            tether_supervisor *sup;
            struct tether_error err;
            if (tether_supervisor_open(cfg, b->name, &sup, &err) == 0) {
                const char *d = tether_supervisor_backend_detail(sup);
                if (d)
                    printf("%*s %s\n", w, "", d);
                tether_supervisor_close(sup, NULL);
            } else {
                /* it loads, but cannot open here (e.g. slurm without a
                 * reachable controller): said, not a failure of the list */
                printf("%*s cannot open here: %s\n", w, "", err.msg);
            }
            if (strcmp(info->name, b->name) != 0) {
                printf("%*s error: plugin calls itself '%s'\n", w, "", info->name);
                bad = 1;
            }
        } else {
            printf("%-*s %-4s %-8s %-*s %-5s %-7s %s\n", w, b->name, "-", "-", cw, "-", "no", "-",
                   b->path);
            printf("%*s error: %s\n", w, "", rows[i].err.msg);
            bad = 1;
        }
    }
    free(rows);
    printf("default backend: %s\n", cfg->backend);
    tether_config_free(cfg);
    return bad ? EXIT_FAIL : EXIT_OK;
}

static int config_explain(int argc, char **argv);

int cmd_config(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "explain"))
        return config_explain(argc - 1, argv + 1);
    if (argc < 2 || strcmp(argv[1], "check") != 0) {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            fputs(check_usage, stdout);
            fputs(explain_usage, stdout);
            return EXIT_OK;
        }
        cli_usage_error("tether config", check_usage, "expected the subcommand 'check' or 'explain'");
        return EXIT_USAGE;
    }
    const char *config = NULL;
    int rc = parse_config_only(argc - 1, argv + 1, check_usage, &config);
    if (rc >= 0)
        return rc;
    struct tether_config *cfg = cli_load_config("tether config check", config);
    if (!cfg)
        return EXIT_USAGE;
    printf("config:    %s\n", cfg->path);
    printf("backend:   %s (default)\n", cfg->backend);
    printf("timeouts:  spawn %.3gs, soft_cancel %.3gs, hard_kill %.3gs\n", cfg->timeouts.spawn,
           cfg->timeouts.soft_cancel, cfg->timeouts.hard_kill);
    printf("max_frame: %llu bytes\n", (unsigned long long)cfg->max_frame);
    printf("events:    %s\n", cfg->events ? cfg->events : "(none)");
    printf("backends:\n");
    for (size_t i = 0; i < cfg->n_backends; i++) {
        const struct tether_backend_config *b = &cfg->backends[i];
        const struct tether_timeouts *t = &b->timeouts;
        printf("  %-8s %s\n", b->name, b->path);
        printf("           spawn %.3gs, soft_cancel %.3gs, hard_kill %.3gs\n", t->spawn,
               t->soft_cancel, t->hard_kill);
        printf("           worst-case teardown: soft_cancel + hard_kill = %.3gs "
               "(+ slack %.3gs + %.3gms an actor)\n",
               t->soft_cancel + t->hard_kill, TETHER_SLACK_BASE_NS / 1e9,
               TETHER_SLACK_PER_ACTOR_NS / 1e6);
        printf("           worst-case spawn failure: spawn + hard_kill = %.3gs\n",
               t->spawn + t->hard_kill);
        const struct tether_supervision *sv = &b->supervision;
        printf("           supervision %s, restart %s, intensity %u in %gs, backoff %gs to %gs\n",
               strategy_names[sv->strategy], restart_names[sv->restart], sv->max_restarts,
               sv->period, sv->backoff, sv->backoff_max);
        for (size_t j = 0; j < b->n_options; j++)
            printf("           option %s = %s\n", b->options[j].key, b->options[j].value);
    }
    printf("valid\n");
    tether_config_free(cfg);
    return EXIT_OK;
}

/* Sum of the first n backoff delays (doubling from b up to cap). */
static double backoff_sum(const struct tether_supervision *sv, unsigned n)
{
    double cap = sv->backoff_max > sv->backoff ? sv->backoff_max : sv->backoff, d = sv->backoff;
    double sum = 0;
    for (unsigned i = 0; i < n && d > 0; i++) {
        sum += d;
        d = d * 2 > cap ? cap : d * 2;
        if (d == cap) { /* the rest at the cap */
            sum += (double)(n - i - 1) * cap;
            break;
        }
    }
    return sum;
}

/* How long a crash loop runs before the supervisor gives up. */
static void explain_supervision(const struct tether_backend_config *b)
{
    const struct tether_supervision *sv = &b->supervision;
    const struct tether_timeouts *t = &b->timeouts;
    unsigned n = sv->max_restarts;
    printf("  supervision: %s, restart %s, intensity %u restart(s) in %gs, backoff %gs "
           "(doubling to %gs)\n",
           strategy_names[sv->strategy], restart_names[sv->restart], n, sv->period, sv->backoff,
           sv->backoff_max > sv->backoff ? sv->backoff_max : sv->backoff);
    if (sv->restart == TETHER_RESTART_TEMPORARY)
        printf("    (actors spawned without a restart type are never restarted)\n");
    if (n == 0) {
        printf("    give up: at the first end that would restart, then the teardown (%.3gs)\n",
               t->soft_cancel + t->hard_kill);
        return;
    }
    double wait = backoff_sum(sv, n);
    double slow = (n + 1) * (t->spawn + t->hard_kill) + wait;
    printf("    give up: at the %u%s end within %gs; a loop of instant crashes spends %.3gs in\n"
           "    backoff, then the teardown (%.3gs): worst-case time to give up %.3gs\n",
           n + 1, n + 1 == 2 ? "nd" : n + 1 == 3 ? "rd" : "th", sv->period, wait,
           t->soft_cancel + t->hard_kill, wait + t->soft_cancel + t->hard_kill);
    if (wait >= sv->period)
        printf("    note: the backoff alone spreads %u restarts over more than the period: a crash\n"
               "    loop is never given up, it is throttled to one respawn every %gs at most\n",
               n + 1, sv->backoff_max > sv->backoff ? sv->backoff_max : sv->backoff);
    else if (slow >= sv->period)
        printf("    note: instances that each hang to their spawn timeout (%.3gs + %.3gs) fail too\n"
               "    slowly to exceed the intensity: such a loop is never given up\n",
               t->spawn, t->hard_kill);
}

/* Spawn the demo's `hello` actor once; seconds to ready, or < 0. Prints
 * the backend's detail line (e.g. the containment in force), or why it
 * does not open. */
static double measure_spawn(const struct tether_config *cfg, const char *backend)
{
    char buf[4096], target[4200];
    const char *mod = cli_demo_module(cfg, buf, sizeof buf);
    snprintf(target, sizeof target, "%s:hello", mod);
    tether_supervisor *sup;
    struct tether_error err;
    if (tether_supervisor_open(cfg, backend, &sup, &err)) {
        printf("  does not open: %s\n", err.msg);
        return -1;
    }
    const char *detail = tether_supervisor_backend_detail(sup);
    if (detail)
        printf("  %s\n", detail);
    tether_handle *h = NULL;
    int64_t t0 = tether_now_ns();
    int rc = tether_spawn(sup, target, 0, &h, &err);
    double took = (tether_now_ns() - t0) / 1e9;
    tether_handle_release(h);
    tether_supervisor_close(sup, NULL);
    return rc ? -1 : took;
}

static void explain_backend(const struct tether_config *cfg, const struct tether_backend_config *b,
                            int *warnings)
{
    const struct tether_timeouts *t = &b->timeouts;
    struct tether_plugin_info info;
    struct tether_error err;
    printf("backend %s (%s)\n", b->name, b->path);
    if (tether_plugin_probe(b->path, &info, &err)) {
        printf("  does not load: %s\n\n", err.msg);
        (*warnings)++;
        return;
    }
    /* the runtime the plugin is built for (subint: the Python, the GIL
     * mode) and the options that choose among its modes */
    if (info.note[0])
        printf("  note: %s\n", info.note);
    for (size_t j = 0; j < b->n_options; j++)
        printf("  option %s = %s\n", b->options[j].key, b->options[j].value);
    int can_kill = (info.caps & TETHER_CAP_CAN_KILL) != 0;
    int inproc = !(info.caps & TETHER_CAP_OUT_OF_PROCESS);
    const char *force = can_kill ? "SIGKILL to the actor's process group: always ends it"
                        : strcmp(info.language, "python") == 0
                            ? "inject tether.Cancelled again; a blocking C call cannot be interrupted"
                            : "pthread_cancel: acts at the next cancellation point (read, poll, sleep)";
    double S = t->soft_cancel, H = t->hard_kill;
    printf("  %8s  cancel requested: the core sends CANCEL%s\n", "0s",
           inproc ? " and the backend sets its cancel flag" : "");
    if (S > 0)
        printf("  %7.3gs  soft phase: a cooperative actor stops at its next checkpoint\n", 0.0);
    else
        printf("  %8s  soft phase skipped (soft_cancel 0)\n", "");
    printf("  %7.3gs  hard kill: %s;\n"
           "            the channels are shut: every waiting thread returns now\n",
           S, force);
    if (H > 0)
        printf("  %7.3gs  reap: the outcome is collected as soon as the actor is gone\n", S);
    printf("  %7.3gs  %s\n", S + H,
           can_kill ? "abandoned only if SIGKILL did not end it (stuck in the kernel)"
                    : "still running: abandoned (cut loose, counted, never waited for again)");
    printf("  worst case: %.3gs + slack (%.3g ms + %.3g ms an actor) from cancel to outcome\n", S + H,
           TETHER_SLACK_BASE_NS / 1e6, TETHER_SLACK_PER_ACTOR_NS / 1e6);
    printf("  spawn: not ready within %.3gs is torn down: worst case %.3gs\n", t->spawn,
           t->spawn + H);
    explain_supervision(b);
    double took = measure_spawn(cfg, b->name);
    if (took >= 0)
        printf("  measured spawn of a trivial actor: %.3f ms\n", took * 1e3);
    if (S == 0) {
        printf("  warning: soft_cancel is 0: actors never get the chance to stop cleanly\n");
        (*warnings)++;
    }
    if (H == 0 && can_kill) {
        printf("  warning: hard_kill is 0: the kill is not waited for, so an actor killed a moment\n"
               "           later is still reported abandoned (its process is reaped later)\n");
        (*warnings)++;
    }
    if (H == 0 && !can_kill) {
        printf("  warning: hard_kill is 0 on a backend that cannot always kill: an actor that does\n"
               "           not stop by itself is abandoned at once and keeps running\n");
        (*warnings)++;
    }
    if (took >= 0 && t->spawn < 4 * took) {
        printf("  warning: spawn timeout %.3gs is less than 4x the measured spawn time (%.3fs):\n"
               "           spawns will time out under load\n",
               t->spawn, took);
        (*warnings)++;
    }
    putchar('\n');
}

static int config_explain(int argc, char **argv)
{
    const char *config = NULL;
    int rc = parse_config_only(argc, argv, explain_usage, &config);
    if (rc >= 0)
        return rc;
    struct tether_config *cfg = cli_load_config("tether config explain", config);
    if (!cfg)
        return EXIT_USAGE;
    printf("%s: default backend %s\n\n", cfg->path, cfg->backend);
    int warnings = 0;
    for (size_t i = 0; i < cfg->n_backends; i++)
        explain_backend(cfg, &cfg->backends[i], &warnings);
    printf("%d warning(s)\n", warnings);
    tether_config_free(cfg);
    return EXIT_OK;
}

/* ---- tether doc teardown ------------------------------------------------------ */

static const char doc_usage[] =
    "usage: tether doc teardown\n"
    "\n"
    "Print the teardown engine's table: for every actor state (rows) and every\n"
    "event (columns), the action the engine takes. It is printed from the table\n"
    "the engine runs; docs/teardown.md explains each state, event and action.\n";

int cmd_doc(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(doc_usage, stdout);
        return EXIT_OK;
    }
    if (argc != 2 || strcmp(argv[1], "teardown") != 0) {
        cli_usage_error("tether doc", doc_usage,
                        argc < 2 ? "expected a topic" : "unknown topic '%s' (known: teardown)",
                        argc < 2 ? "" : argv[1]);
        return EXIT_USAGE;
    }
    tether_teardown_table(stdout);
    return EXIT_OK;
}
