/* conformance/broken_template.c - the backend template
 * (examples/backend-template/template.c, compiled in as is) with one bug
 * each, to prove the conformance suite catches it and says what it is:
 *   BROKEN_NOGROUP        hard_kill (and reap, release) miss the process
 *                         group: SIGKILL reaches the actor, never its
 *                         grandchildren (orphan.grandchildren)
 *   BROKEN_CALLER_SPAWNS  spawn starts the helper on the calling thread, so
 *                         the helper's parent-death signal fires when that
 *                         thread exits (the template's old bug;
 *                         spawn.thread-exits)
 */
#define _GNU_SOURCE
#include <signal.h>
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
#endif

#include "../examples/backend-template/template.c"

#ifdef BROKEN_NOGROUP
#undef kill
#endif

#ifdef BROKEN_CALLER_SPAWNS
/* BROKEN: posix_spawn on the thread inside tether_spawn(). */
static int caller_spawn(void *state, const struct tether_spawn_spec *spec,
                        struct tether_child **out, struct tether_error *err)
{
    (void)state;
    pid_t pid;
    int rc = start_helper(spec, &pid);
    close(spec->channel_fd);
    if (rc) {
        snprintf(err->msg, sizeof err->msg, "posix_spawn: %s", strerror(rc));
        return TETHER_ESPAWN;
    }
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    struct child *c = pidfd >= 0 ? calloc(1, sizeof *c) : NULL;
    if (!c) {
        kill(-pid, SIGKILL);
        waitpid(pid, NULL, 0); /* a SIGKILLed child of ours: returns at once */
        if (pidfd >= 0)
            close(pidfd);
        snprintf(err->msg, sizeof err->msg, "cannot track the child");
        return TETHER_ESPAWN;
    }
    fcntl(pidfd, F_SETFD, FD_CLOEXEC);
    c->pid = pid;
    c->pub.exit_fd = pidfd;
    c->pub.pid = pid;
    *out = &c->pub;
    return 0;
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
