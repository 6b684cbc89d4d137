/* cli/cmd_demo.c - `tether demo`: the README's main job.
 *
 * Spawns three actors (one serving calls, one cooperative worker, one stuck
 * in timed waits that never checkpoints), calls into the server, cancels
 * everything, and prints a timeline showing each teardown inside its bound.
 */
#include "config.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char demo_usage[] =
    "usage: tether demo [-c FILE] [-b NAME]\n"
    "Spawn a serving actor, a cooperative worker and a stuck actor that never\n"
    "checkpoints; call into the server; cancel all three; print the teardown\n"
    "timeline. Exit 0 when every teardown kept its bound.\n"
    "The demo actors come from $TETHER_DEMO_MODULE, else the build tree, else\n"
    "the installed examples.\n";

static const struct option demo_opts[] = {
    {"config", required_argument, NULL, 'c'},
    {"backend", required_argument, NULL, 'b'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

struct demo_actor {
    const char *role;
    const char *fn;
    tether_handle *h;
    struct tether_outcome o;
    int64_t t_done;
};

static double since(int64_t t0)
{
    return (tether_now_ns() - t0) / 1e9;
}

int cmd_demo(int argc, char **argv)
{
    struct cli_common c = {0};
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "+c:b:h", demo_opts, NULL)) != -1) {
        switch (opt) {
        case 'c': c.config = optarg; break;
        case 'b': c.backend = optarg; break;
        case 'h': fputs(demo_usage, stdout); return EXIT_OK;
        default:
            cli_usage_error("tether demo", demo_usage, "unknown or incomplete option '%s'",
                            argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        cli_usage_error("tether demo", demo_usage, "unexpected argument '%s'", argv[optind]);
        return EXIT_USAGE;
    }
    struct tether_config *cfg = cli_load_config("tether demo", c.config);
    if (!cfg)
        return EXIT_USAGE;
    char modbuf[4096];
    const char *mod = cli_demo_module(cfg, modbuf, sizeof modbuf);
    struct tether_error err;
    tether_supervisor *sup;
    if (tether_supervisor_open(cfg, c.backend, &sup, &err)) {
        fprintf(stderr, "tether demo: %s\n", err.msg);
        tether_config_free(cfg);
        return EXIT_FAIL;
    }
    const struct tether_timeouts to = *tether_supervisor_timeouts(sup);
    struct demo_actor actors[] = {
        {"server (serves calls)", "serve", NULL, {0}, 0},
        {"worker (checkpoints every 10 ms)", "worker", NULL, {0}, 0},
        {"stuck (1 s timed waits, never checkpoints)", "stuck", NULL, {0}, 0},
    };
    const size_t n = sizeof actors / sizeof actors[0];
    int status = EXIT_OK;
    int64_t t0 = tether_now_ns();
    printf("tether demo: backend %s, soft_cancel %.3gs, hard_kill %.3gs\n",
           tether_supervisor_backend(sup), to.soft_cancel, to.hard_kill);
    printf("actor module: %s\n\n", mod);
    for (size_t i = 0; i < n; i++) {
        char target[4200];
        snprintf(target, sizeof target, "%s:%s", mod, actors[i].fn);
        if (tether_spawn(sup, target, 0, &actors[i].h, &err)) {
            fprintf(stderr, "tether demo: %s\n", err.msg);
            status = EXIT_FAIL;
            goto out;
        }
        printf("%7.3fs  spawned  %-44s ready\n", since(t0), actors[i].role);
    }
    struct tether_value args[2] = {{.type = 'i', .v.i = 20}, {.type = 'i', .v.i = 22}};
    struct tether_value ret;
    if (tether_call(actors[0].h, "add", "ii:i", args, 2, &ret, tether_now_ns() + 5000000000LL, &err) == 0)
        printf("%7.3fs  call     add(20, 22) = %lld\n", since(t0), (long long)ret.v.i);
    else
        printf("%7.3fs  call     add failed: %s\n", since(t0), err.msg);
    struct tether_value who = {.type = 's', .v.s = "tether"};
    if (tether_call(actors[0].h, "greet", "s:s", &who, 1, &ret, tether_now_ns() + 5000000000LL, &err) == 0) {
        printf("%7.3fs  call     greet(\"tether\") = \"%s\"\n", since(t0), ret.v.s);
        free((char *)ret.v.s);
    }
    /* the actor checks the caller's signature against its table */
    if (tether_call(actors[0].h, "add", "i:i", args, 1, &ret, tether_now_ns() + 5000000000LL, &err) != 0)
        printf("%7.3fs  call     add(20) refused by the actor: %s\n", since(t0), err.msg);

    printf("%7.3fs  cancel   all three\n", since(t0));
    int64_t tc = tether_now_ns();
    for (size_t i = 0; i < n; i++)
        tether_cancel(actors[i].h);
    double bound = cli_bound(&to, (unsigned)n);
    /* Each wait is bounded by the teardown bound (plus a margin for a slow
     * machine); the close below would catch anything left. */
    int64_t deadline = tc + (int64_t)((bound + 1.0) * 1e9);
    size_t left = n;
    while (left) {
        for (size_t i = 0; i < n; i++) {
            if (actors[i].t_done)
                continue;
            if (tether_wait(actors[i].h, tether_now_ns() + 2000000LL, &actors[i].o) == 0) {
                actors[i].t_done = tether_now_ns();
                left--;
                double td = (actors[i].t_done - tc) / 1e9;
                printf("%7.3fs  ended    %-44s %-9s after %.3fs (soft %.3fs, hard %.3fs)%s\n",
                       since(t0), actors[i].role, tether_outcome_name(actors[i].o.kind), td,
                       actors[i].o.soft_cancel_ns / 1e9, actors[i].o.hard_kill_ns / 1e9,
                       td <= bound ? "" : "  BOUND EXCEEDED");
                if (td > bound)
                    status = EXIT_FAIL;
            }
        }
        if (left && tether_now_ns() > deadline) {
            printf("%7.3fs  %zu actor(s) not torn down within the bound\n", since(t0), left);
            tether_supervisor_dump(sup, stdout);
            status = EXIT_FAIL;
            break;
        }
    }
    double total = (tether_now_ns() - tc) / 1e9;
    printf("\nteardown of all %zu actors: %.3fs; bound soft_cancel + hard_kill + slack = %.3fs: %s\n",
           n, total, bound, total <= bound ? "kept" : "EXCEEDED");
out:;
    struct tether_close_report rep;
    tether_supervisor_close(sup, &rep);
    if (rep.abandoned)
        printf("abandoned: %u actor(s) could not be stopped and were cut loose\n", rep.abandoned);
    for (size_t i = 0; i < n; i++)
        tether_handle_release(actors[i].h);
    tether_config_free(cfg);
    return status;
}
