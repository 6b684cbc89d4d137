/* conformance/conformance.h - the conformance suite's entry point.
 *
 * The suite is a product: backend authors run it (`tether conformance`)
 * against their plugin, from the build tree or installed. It lives in its
 * own room; the tether command calls this entry and the suite includes
 * nothing of the command's. Uses only public headers. */
#ifndef TETHER_CONFORMANCE_H
#define TETHER_CONFORMANCE_H

#include <tether/tether.h>

/* What tether_conformance_main returns: the tether command's exit statuses
 * (tether(1); cli/main.c checks that they agree). */
enum {
    TETHER_CONFORMANCE_OK = 0,   /* nothing failed (passed or skipped) */
    TETHER_CONFORMANCE_FAIL = 1, /* a scenario failed, or the suite could not run */
    TETHER_CONFORMANCE_USAGE = 2 /* bad command line or configuration */
};

/* Load the configuration named by `path` (NULL: the caller's default
 * search). On failure print the error, prefixed by `prog`, and return NULL.
 * The result is freed with tether_config_free. */
typedef struct tether_config *(*tether_conformance_load_fn)(const char *prog, const char *path);

/* Run the suite: `argv[0]` is "conformance", the rest its options (see
 * `tether conformance --help`). Prints TAP on stdout. The scenarios re-run
 * the calling executable (/proc/self/exe) with `run`, so the caller must be
 * the tether command. */
int tether_conformance_main(int argc, char **argv, tether_conformance_load_fn load_config);

#endif
