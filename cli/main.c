/* cli/main.c - the tether command: dispatch and shared helpers. */
#include "config.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <tether/backend.h>

#include "cli.h"
#include "conformance.h"

_Static_assert((int)TETHER_CONFORMANCE_OK == EXIT_OK && (int)TETHER_CONFORMANCE_FAIL == EXIT_FAIL &&
                   (int)TETHER_CONFORMANCE_USAGE == EXIT_USAGE,
               "the conformance suite returns the command's exit statuses");

static const char usage_text[] =
    "usage: tether COMMAND [OPTIONS]\n"
    "\n"
    "Run actors under a supervisor whose teardown is bounded, through spawn\n"
    "backends loaded as plugins (thread, fork, subint).\n"
    "\n"
    "commands:\n"
    "  backends [-c FILE]                  list configured backends and whether they load\n"
    "  config check [-c FILE]              validate a configuration and print its bounds\n"
    "  config explain [-c FILE]            the teardown timeline per backend, with warnings\n"
    "  doc teardown                        the teardown engine's state x event table\n"
    "  run [-c FILE] [-b NAME] [--cancel-after SECS] [--json] TARGET\n"
    "                                      run one actor and print its outcome\n"
    "  call [-c FILE] [-b NAME] TARGET FUNC SIG [ARGS...]\n"
    "                                      spawn, call one function, print the result\n"
    "  demo [-c FILE] [-b NAME]            the tour: three actors, calls, a bounded teardown\n"
    "  conformance [-c FILE] (-b NAME | --plugin PATH) [-k GLOB] [--repeat N] [--list]\n"
    "                                      run the conformance suite against a backend\n"
    "  reap [-c FILE] [-b NAME] [--dry-run]  cancel the Slurm jobs of supervisors that are gone\n"
    "\n"
    "TARGET is path/module.so:function. FILE defaults to $TETHER_CONFIG, then\n"
    "./plugins.yaml, then the installed plugins.yaml; $TETHER_BACKEND picks the\n"
    "default backend. `tether COMMAND --help` tells more.\n"
    "\n"
    "exit status: 0 success; 1 failure; 2 usage or configuration error;\n"
    "3 actor stopped on request (cancelled, killed, abandoned); 130 interrupted.\n";

void cli_usage_error(const char *prog, const char *usage, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%s", usage);
}

struct tether_config *cli_load_config(const char *prog, const char *path)
{
    struct tether_error err;
    struct tether_config *cfg = NULL;
    const char *env = getenv("TETHER_CONFIG");
    struct stat st;
    if (!path && !(env && *env) && stat("plugins.yaml", &st) != 0)
        path = TETHER_SYSCONFDIR "/plugins.yaml";
    if (tether_config_load(path, &cfg, &err) != 0) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return NULL;
    }
    return cfg;
}

const char *cli_demo_module(const struct tether_config *cfg, char *buf, size_t n)
{
    const char *env = getenv("TETHER_DEMO_MODULE");
    if (env && *env)
        return env;
    snprintf(buf, n, "%s/examples/.libs/demo_actors.so", cfg->dir);
    if (access(buf, R_OK) == 0)
        return buf;
    snprintf(buf, n, "%s/examples/demo_actors.so", TETHER_PKGLIBDIR);
    return buf;
}

double cli_bound(const struct tether_timeouts *to, unsigned actors)
{
    return to->soft_cancel + to->hard_kill + (double)TETHER_SLACK_NS(actors) / TETHER_NS_PER_SEC;
}

/* The suite lives in conformance/ and loads its configuration as every
 * subcommand does. */
static int cmd_conformance(int argc, char **argv)
{
    return tether_conformance_main(argc, argv, cli_load_config);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(usage_text, stdout);
        return EXIT_OK;
    }
    if (!strcmp(cmd, "--version")) {
        printf("tether %s (backend ABI %d)\n", PACKAGE_VERSION, TETHER_BACKEND_ABI);
        return EXIT_OK;
    }
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {
        {"backends", cmd_backends}, {"config", cmd_config}, {"run", cmd_run},
        {"call", cmd_call},         {"demo", cmd_demo},         {"conformance", cmd_conformance},
        {"doc", cmd_doc},
        {"reap", cmd_reap},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(cmd, cmds[i].name))
            return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "tether: unknown command '%s'\n%s", cmd, usage_text);
    return EXIT_USAGE;
}
