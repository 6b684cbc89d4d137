/* backends/subint - placeholder until its own issue lands: a correct vtable
 * whose spawn refuses with TETHER_ENOTSUP, so that loading, listing and
 * configuration work today and every spawn fails honestly. */
/* Linked against libpython (python3-embed) so that the build proves the
 * embedding flags; the interpreter is not initialised yet. Python.h first,
 * as CPython requires. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <tether/backend.h>

static int b_open(const struct tether_backend_host *host, const struct tether_options *opts,
                  void **state, struct tether_error *err)
{
    (void)host;
    (void)opts;
    (void)err;
    *state = NULL;
    return 0;
}

static void b_close(void *state)
{
    (void)state;
}

static int b_spawn(void *state, const struct tether_spawn_spec *spec, struct tether_child **child,
                   struct tether_error *err)
{
    (void)state;
    (void)child;
    close(spec->channel_fd);
    snprintf(err->msg, sizeof err->msg, "the subint backend cannot spawn yet (not implemented)");
    err->code = TETHER_ENOTSUP;
    return TETHER_ENOTSUP;
}

static int b_nothing(struct tether_child *child)
{
    (void)child;
    return TETHER_ENOTSUP;
}

static int b_reap(struct tether_child *child, int64_t deadline_ns, struct tether_outcome *out)
{
    (void)child;
    (void)deadline_ns;
    (void)out;
    return TETHER_ENOTSUP;
}

static void b_release(struct tether_child *child)
{
    (void)child;
}

static const struct tether_backend subint_backend = {
    .abi = TETHER_BACKEND_ABI,
    .size = sizeof(struct tether_backend),
    .name = "subint",
    .language = "python",
    .caps = TETHER_CAP_NO_SPAWN,
    .open = b_open,
    .close = b_close,
    .spawn = b_spawn,
    .soft_cancel = b_nothing,
    .hard_kill = b_nothing,
    .abort_channels = b_nothing,
    .reap = b_reap,
    .release = b_release,
};

TETHER_BACKEND_DEFINE(subint_backend)
