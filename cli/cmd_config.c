/* cli/cmd_config.c - `tether backends` and `tether config check`. */
#include "config.h"

#include <getopt.h>
#include <string.h>

#include <tether/backend.h>

#include "cli.h"

static const char backends_usage[] =
    "usage: tether backends [-c FILE]\n"
    "List the configured backends: name, plugin file, ABI, language,\n"
    "capabilities, and whether the plugin loads (with the loader's reason).\n"
    "Exit 0 when every configured backend loads, 1 otherwise.\n";

static const char check_usage[] =
    "usage: tether config check [-c FILE]\n"
    "Validate a configuration and print the effective settings with the\n"
    "worst-case teardown bound of each backend. Exit 0 valid, 2 invalid.\n";

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
    printf("%-8s %-4s %-8s %-44s %-5s %-7s %s\n", "NAME", "ABI", "LANGUAGE", "CAPABILITIES",
           "LOADS", "SPAWNS", "FILE");
    int bad = 0;
    for (size_t i = 0; i < cfg->n_backends; i++) {
        const struct tether_backend_config *b = &cfg->backends[i];
        struct tether_plugin_info info;
        struct tether_error err;
        if (tether_plugin_probe(b->path, &info, &err) == 0) {
            char caps[128];
            tether_caps_format(info.caps, caps, sizeof caps);
            printf("%-8s %-4u %-8s %-44s %-5s %-7s %s\n", b->name, info.abi, info.language, caps,
                   "yes", (info.caps & TETHER_CAP_NO_SPAWN) ? "no" : "yes", b->path);
            if (info.caps & TETHER_CAP_NO_SPAWN)
                printf("         note: spawn not implemented yet (returns TETHER_ENOTSUP)\n");
            if (info.note[0])
                printf("         note: %s\n", info.note);
            if (strcmp(info.name, b->name) != 0) {
                printf("         error: plugin calls itself '%s'\n", info.name);
                bad = 1;
            }
        } else {
            printf("%-8s %-4s %-8s %-44s %-5s %-7s %s\n", b->name, "-", "-", "-", "no", "-",
                   b->path);
            printf("         error: %s\n", err.msg);
            bad = 1;
        }
    }
    printf("default backend: %s\n", cfg->backend);
    tether_config_free(cfg);
    return bad ? EXIT_FAIL : EXIT_OK;
}

int cmd_config(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "check") != 0) {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            fputs(check_usage, stdout);
            return EXIT_OK;
        }
        cli_usage_error("tether config", check_usage, "expected the subcommand 'check'");
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
               "(+ slack 0.1s + 2ms an actor)\n",
               t->soft_cancel + t->hard_kill);
        printf("           worst-case spawn failure: spawn + hard_kill = %.3gs\n",
               t->spawn + t->hard_kill);
        for (size_t j = 0; j < b->n_options; j++)
            printf("           option %s = %s\n", b->options[j].key, b->options[j].value);
    }
    printf("valid\n");
    tether_config_free(cfg);
    return EXIT_OK;
}
