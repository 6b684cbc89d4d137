/* cli/cli.h - shared pieces of the tether command. Uses only public headers. */
#ifndef TETHER_CLI_H
#define TETHER_CLI_H

#include <stdio.h>

#include <tether/tether.h>

/* Exit statuses of the command (documented in tether --help). */
enum {
    EXIT_OK = 0,
    EXIT_FAIL = 1,      /* the actor failed, was lost, or the operation failed */
    EXIT_USAGE = 2,     /* bad command line or invalid configuration */
    EXIT_STOPPED = 3,   /* the actor was cancelled, killed or abandoned on request */
    EXIT_INTERRUPTED = 130
};

/* Options every subcommand that loads a config accepts. */
struct cli_common {
    const char *config;  /* -c FILE */
    const char *backend; /* -b NAME */
};

/* Load the config: -c FILE, else $TETHER_CONFIG, else ./plugins.yaml, else
 * the installed one. Prints the error and returns NULL on failure. */
struct tether_config *cli_load_config(const char *prog, const char *path);
/* Resolve a demo actor module path for `name` (e.g. "demo_actors.so"). */
const char *cli_demo_module(const struct tether_config *cfg, char *buf, size_t n);
/* Worst-case teardown bound for one actor, seconds. */
double cli_bound(const struct tether_timeouts *to, unsigned actors);
void cli_usage_error(const char *prog, const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

int cmd_backends(int argc, char **argv);
int cmd_config(int argc, char **argv);
int cmd_doc(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_call(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_reap(int argc, char **argv);

#endif
