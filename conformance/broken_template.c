/* conformance/broken_template.c - the backend template
 * (examples/backend-template/template.c, compiled in as is) with one bug
 * each, to prove the conformance suite catches it and says what it is:
 *   BROKEN_NOGROUP        hard_kill (and the keeper) miss the process
 *                         group, and the keeper is no subreaper: SIGKILL
 *                         reaches the actor, never its grandchildren
 *                         (orphan.grandchildren)
 *   BROKEN_CALLER_SPAWNS  spawn starts the keeper on the calling thread, so
 *                         the keeper's parent-death signal fires when that
 *                         thread exits (the template's old bug;
 *                         spawn.thread-exits)
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/types.h>

#include <tether/backend.h>

#undef TETHER_BACKEND_DEFINE
#define TETHER_BACKEND_DEFINE(vtable) /* ours is below */

#ifdef BROKEN_NOGROUP
static int broken_kill(pid_t pid, int sig)
{
    return pid < 0 ? 0 : kill(pid, sig); /* BROKEN: a group (pid < 0) is never signalled */
}
#define kill broken_kill
/* BROKEN: the keeper never becomes a subreaper, so the orphaned
 * grandchildren go to init, out of its sweep's reach */
static int broken_prctl(int option, ...)
{
    va_list ap;
    va_start(ap, option);
    int arg = va_arg(ap, int); /* the template passes ints */
    va_end(ap);
    return option == PR_SET_CHILD_SUBREAPER ? 0 : prctl(option, (unsigned long)arg, 0UL, 0UL, 0UL);
}
#define prctl broken_prctl
#endif

#include "../examples/backend-template/template.c"

#ifdef BROKEN_NOGROUP
#undef kill
#undef prctl
#endif

#ifdef BROKEN_CALLER_SPAWNS
/* BROKEN: the keeper forked on the thread inside tether_spawn(). */
static int caller_spawn(void *state, const struct tether_spawn_spec *spec,
                        struct tether_child **out, struct tether_error *err)
{
    (void)state;
    struct request r = {.spec = spec, .pid = -1, .report = -1};
    start_keeper(&r);
    close(spec->channel_fd);
    if (r.err) {
        snprintf(err->msg, sizeof err->msg, "fork: %s", strerror(r.err));
        return TETHER_ESPAWN;
    }
    return track_keeper(spec, &r, out, err);
}
#endif

static struct tether_backend broken_backend;

__attribute__((visibility("default"))) const struct tether_backend *tether_backend_v1(void);
__attribute__((visibility("default"))) const struct tether_backend *tether_backend_v1(void)
{
    broken_backend = template_backend;
    broken_backend.name = BROKEN_NAME;
#ifdef BROKEN_CALLER_SPAWNS
    broken_backend.spawn = caller_spawn;
#endif
    return &broken_backend;
}
