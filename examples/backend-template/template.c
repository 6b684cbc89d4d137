/* template.c - a minimal, correct tether backend, built against the
 * installed package only:  make  (see Makefile; needs pkg-config tether).
 *
 * Actors run as processes started with posix_spawn: each is the installed
 * exec helper (tether-actor) loading the C actor module named by the
 * target, in a process group of its own. Copy this file and change what
 * your backend does differently; keep the contracts in tether_backend(3):
 * soft_cancel, hard_kill and abort_channels never block; reap honours its
 * deadline; spawn owns channel_fd on success and on failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <tether/backend.h>

#ifndef TETHER_ACTOR_HELPER /* from pkg-config --variable=actorhelper tether */
#error "build with -DTETHER_ACTOR_HELPER=\"$(pkg-config --variable=actorhelper tether)\""
#endif

extern char **environ;

struct child {
    struct tether_child pub; /* first: the core sees only this; exit_fd is a pidfd */
    pid_t pid;
    int reaped;
};

static int tpl_open(const struct tether_backend_host *host, const struct tether_options *opts,
                    void **state, struct tether_error *err)
{
    (void)host;
    if (opts->count) {
        snprintf(err->msg, sizeof err->msg, "unknown option '%s' (this backend has none)",
                 opts->items[0].key);
        return TETHER_ECONFIG;
    }
    if (access(TETHER_ACTOR_HELPER, X_OK) != 0) {
        snprintf(err->msg, sizeof err->msg, "%s: %s", TETHER_ACTOR_HELPER, strerror(errno));
        return TETHER_ECONFIG;
    }
    *state = NULL;
    return 0;
}

static void tpl_close(void *state)
{
    (void)state;
}

static int tpl_spawn(void *state, const struct tether_spawn_spec *spec, struct tether_child **out,
                     struct tether_error *err)
{
    (void)state;
    char parent[32];
    snprintf(parent, sizeof parent, "%d", (int)getpid());
    char *argv[] = {TETHER_ACTOR_HELPER, "--channel-fd", "3", "--parent", parent,
                    (char *)spec->target, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    /* the child keeps stdio and its channel (as fd 3) only */
    posix_spawn_file_actions_adddup2(&fa, spec->channel_fd, 3);
    posix_spawn_file_actions_addclosefrom_np(&fa, 4);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setpgroup(&at, 0); /* its own group: hard kill takes grandchildren */
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_USEVFORK);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(spec->channel_fd); /* ours to close, success or not */
    if (rc) {
        snprintf(err->msg, sizeof err->msg, "posix_spawn %s: %s", argv[0], strerror(rc));
        return TETHER_ESPAWN;
    }
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    struct child *c = pidfd >= 0 ? calloc(1, sizeof *c) : NULL;
    if (!c) {
        kill(-pid, SIGKILL);
        waitpid(pid, NULL, 0); /* SIGKILLed child of ours: returns at once */
        if (pidfd >= 0)
            close(pidfd);
        snprintf(err->msg, sizeof err->msg, "cannot track the child: %s", strerror(errno));
        return TETHER_ESPAWN;
    }
    fcntl(pidfd, F_SETFD, FD_CLOEXEC);
    c->pid = pid;
    c->pub.exit_fd = pidfd; /* the core polls it: readable once the child exited */
    c->pub.pid = pid;
    *out = &c->pub;
    return 0;
}

static int tpl_soft_cancel(struct tether_child *child)
{
    (void)child; /* the core's CANCEL message is enough for C actors */
    return 0;
}

static int tpl_hard_kill(struct tether_child *child)
{
    struct child *c = (struct child *)child;
    if (!c->reaped) {
        kill(-c->pid, SIGKILL);
        syscall(SYS_pidfd_send_signal, c->pub.exit_fd, SIGKILL, NULL, 0);
    }
    return 0;
}

static int tpl_abort_channels(struct tether_child *child)
{
    (void)child; /* this backend holds no channel end: the core shuts its own */
    return 0;
}

static int tpl_reap(struct tether_child *child, int64_t deadline_ns, struct tether_outcome *out)
{
    struct child *c = (struct child *)child;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t left = deadline_ns - ((int64_t)now.tv_sec * 1000000000 + now.tv_nsec);
    struct pollfd p = {.fd = c->pub.exit_fd, .events = POLLIN};
    if (poll(&p, 1, left > 0 ? (int)((left + 999999) / 1000000) : 0) <= 0)
        return TETHER_ETIMEDOUT; /* bounded by the deadline */
    kill(-c->pid, SIGKILL); /* leftovers of its group; the zombie pins the group id */
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid((idtype_t)3 /* P_PIDFD */, (id_t)c->pub.exit_fd, &si, WEXITED | WNOHANG) != 0 ||
        si.si_pid == 0)
        return TETHER_ETIMEDOUT;
    c->reaped = 1;
    memset(out, 0, sizeof *out);
    if (si.si_code == CLD_EXITED) {
        out->kind = TETHER_OUTCOME_EXITED;
        out->code = si.si_status;
    } else {
        out->kind = TETHER_OUTCOME_KILLED;
        out->signal = si.si_status;
    }
    return 0;
}

static void tpl_release(struct tether_child *child)
{
    struct child *c = (struct child *)child;
    if (!c->reaped)
        kill(-c->pid, SIGKILL);
    close(c->pub.exit_fd);
    free(c);
}

static const struct tether_backend template_backend = {
    .abi = TETHER_BACKEND_ABI,
    .size = sizeof(struct tether_backend),
    .name = "template",
    .language = "c",
    .caps = TETHER_CAP_OUT_OF_PROCESS | TETHER_CAP_SURVIVES_CRASH | TETHER_CAP_CAN_KILL |
            TETHER_CAP_NESTED,
    .open = tpl_open,
    .close = tpl_close,
    .spawn = tpl_spawn,
    .soft_cancel = tpl_soft_cancel,
    .hard_kill = tpl_hard_kill,
    .abort_channels = tpl_abort_channels,
    .reap = tpl_reap,
    .release = tpl_release,
};

TETHER_BACKEND_DEFINE(template_backend)
