/* cli/tether_actor.c - tether-actor(1): the exec helper of the fork
 * backend's exec mode, and of any backend that execs its actors (the
 * template). Runs one C actor in a fresh process:
 *   tether-actor --channel-fd N --parent PID [--cgroup PROCS] TARGET
 * That command line is a stable interface (documented in tether-actor.1).
 * PID is its parent as it sees it (0 in a PID namespace of its own). With
 * --cgroup it first moves itself into that cgroup.procs (the fork
 * backend's cgroup containment), and will not run the actor outside it.
 * It asks for a parent-death signal that kills its process group (with the
 * getppid() re-check against the race at set-up), then runs the actor
 * runtime on the channel. It is started by a backend, with a channel the
 * supervisor made: run by hand it has no supervisor to talk to. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <tether/actor.h>
#include <tether/backend.h> /* TETHER_PARENT_DEATH_SIGNAL: the fork backend's */

/* cgroup containment: the actor's cgroup.kill (from --cgroup) */
static char cgroup_kill[4096];

static void on_parent_death(int sig)
{
    (void)sig;
    if (cgroup_kill[0]) { /* every process of the actor's cgroup, escaped ones too */
        int fd = open(cgroup_kill, O_WRONLY | O_CLOEXEC);
        if (fd >= 0 && write(fd, "1", 1) == 1)
            close(fd);
    }
    kill(0, SIGKILL);
}

/* The supervisor went away before hearing from us: it may be dying right
 * now, its parent-death signal not yet sent. Wait for the reparenting (a
 * few ms at most), then take our whole process group down with us, so that
 * no grandchild outlives the actor. */
static void orphan_exit(pid_t parent, int orphaned)
{
    if (!orphaned)
        return;
    for (int i = 0; i < 50 && getppid() == parent; i++)
        usleep(1000);
    if (getppid() != parent)
        on_parent_death(0);
}

#define USAGE                                                                               \
    "usage: tether-actor --channel-fd N --parent PID [--cgroup PROCS] TARGET\n"                                \
    "(the exec helper of tether's process backends; see tether-actor(1))\n"

/* A decimal number in [min, max], or -1. */
static long number(const char *s, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return -1;
    return v;
}

int main(int argc, char **argv)
{
    const char *cgroup = NULL;
    if (argc == 8 && !strcmp(argv[5], "--cgroup")) {
        cgroup = argv[6];
        argv[5] = argv[7];
        argc = 6;
    }
    if (argc != 6 || strcmp(argv[1], "--channel-fd") || strcmp(argv[3], "--parent")) {
        fprintf(stderr, USAGE);
        return 2;
    }
    long fdl = number(argv[2], 0, INT_MAX), parentl = number(argv[4], 0, INT_MAX);
    if (fdl < 0) {
        fprintf(stderr, "tether-actor: --channel-fd: '%s' is not a file descriptor number\n" USAGE,
                argv[2]);
        return 2;
    }
    if (parentl < 0) {
        fprintf(stderr, "tether-actor: --parent: '%s' is not a process id\n" USAGE, argv[4]);
        return 2;
    }
    int fd = (int)fdl;
    pid_t parent = (pid_t)parentl;
    struct stat st;
    if (fcntl(fd, F_GETFD) < 0) {
        fprintf(stderr, "tether-actor: --channel-fd %d: not open (%s); the starting process must "
                        "pass it without close-on-exec\n", fd, strerror(errno));
        return 2;
    }
    if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) {
        fprintf(stderr, "tether-actor: --channel-fd %d: not a socket (the channel is one end of "
                        "the supervisor's AF_UNIX socketpair)\n", fd);
        return 2;
    }
    if (getpgrp() != getpid()) {
        /* its parent-death handler and orphan exit kill its process group:
         * that group must be the actor's own, never its starter's */
        fprintf(stderr, "tether-actor: not the leader of its own process group: start it with "
                        "POSIX_SPAWN_SETPGROUP (pgroup 0) or setpgid(0, 0)\n");
        return 2;
    }
    if (cgroup) {
        int cg = open(cgroup, O_WRONLY | O_CLOEXEC);
        if (cg < 0 || write(cg, "0", 1) != 1) {
            fprintf(stderr, "tether-actor: --cgroup %s: cannot enter it (%s)\n", cgroup,
                    strerror(errno));
            return 125; /* never run the actor uncontained */
        }
        close(cg);
        size_t n = strlen(cgroup); /* ".../cgroup.procs" -> ".../cgroup.kill" */
        if (n > 5 && n < sizeof cgroup_kill) {
            memcpy(cgroup_kill, cgroup, n - 5);
            memcpy(cgroup_kill + n - 5, "kill", 5);
        }
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_parent_death;
    sigaction(TETHER_PARENT_DEATH_SIGNAL, &sa, NULL);
    prctl(PR_SET_PDEATHSIG, TETHER_PARENT_DEATH_SIGNAL);
    if (getppid() != parent)
        on_parent_death(0);
    int orphaned = 0;
    int status = tether_actor_main(fd, argv[5], &orphaned);
    orphan_exit(parent, orphaned);
    return status & 0xff;
}
