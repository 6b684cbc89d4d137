/* backends/subint/pyactor.c - tether-pyactor: one Python actor in a process
 * of its own, the fork backend's helper for path/file.py:FUNC targets.
 *
 *   tether-pyactor --channel-fd N --parent PID [--cgroup PROCS] TARGET
 *
 * The command line and the process set-up are tether-actor's (tether-actor.1:
 * its own process group, the cgroup entered before anything is loaded, a
 * parent-death signal that kills the group, the getppid() re-check); then
 * Python is initialised and the actor runs in the main interpreter with the
 * subint backend's `tether` module and target loader (module.c, pack.c:
 * the same calls, the same outcomes, exception type and traceback). The
 * actor side of the channel is libtether's, through the host table every
 * backend gets (tether_backend_host).
 *
 * Cancellation is the fork backend's: the CANCEL frame (seen at every tether
 * call), then SIGKILL of the process at hard kill, which ends it whatever it
 * does, a blocking C call included. No asynchronous tether.Cancelled is
 * injected: code that never calls tether is killed, as a C actor is. Python's
 * own signal handlers are installed (SIGINT raises KeyboardInterrupt, SIGPIPE
 * is ignored), as for any Python program. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

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

#include "subint.h"

#define USAGE                                                                   \
    "usage: tether-pyactor --channel-fd N --parent PID [--cgroup PROCS] TARGET\n" \
    "(the fork backend's helper for Python targets; see tether-actor(1))\n"

/* As in subint.c: no other interpreter here, no GIL monitor needed. */
void subint_gil_take(PyThreadState *ts)
{
    PyEval_RestoreThread(ts);
}

void subint_started(struct subint_run *run)
{
    (void)run;
}

static char cgroup_kill[4096];

static void on_parent_death(int sig)
{
    (void)sig;
    if (cgroup_kill[0]) {
        int fd = open(cgroup_kill, O_WRONLY | O_CLOEXEC);
        if (fd >= 0 && write(fd, "1", 1) == 1)
            close(fd);
    }
    kill(0, SIGKILL);
}

static long number(const char *s, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return -1;
    return v;
}

/* Checks tether-actor makes too; 0, or the exit status with the reason said. */
static int check_setup(int fd, const char *cgroup)
{
    struct stat st;
    if (fcntl(fd, F_GETFD) < 0 || fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) {
        fprintf(stderr, "tether-pyactor: --channel-fd %d: not an open socket (the channel is one "
                        "end of the supervisor's socketpair, passed without close-on-exec)\n", fd);
        return 2;
    }
    if (getpgrp() != getpid()) {
        fprintf(stderr, "tether-pyactor: not the leader of its own process group: start it "
                        "with POSIX_SPAWN_SETPGROUP (pgroup 0) or setpgid(0, 0)\n");
        return 2;
    }
    if (cgroup) {
        int cg = open(cgroup, O_WRONLY | O_CLOEXEC);
        if (cg < 0 || write(cg, "0", 1) != 1) {
            fprintf(stderr, "tether-pyactor: --cgroup %s: cannot enter it (%s)\n", cgroup,
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
    return 0;
}

static int py_start(void)
{
    PyConfig cfg;
    PyConfig_InitPythonConfig(&cfg);
    cfg.parse_argv = 0;
    PyStatus s = PyConfig_SetBytesString(&cfg, &cfg.program_name, "tether-pyactor");
    if (!PyStatus_Exception(s))
        s = Py_InitializeFromConfig(&cfg);
    PyConfig_Clear(&cfg);
    if (PyStatus_Exception(s)) {
        fprintf(stderr, "tether-pyactor: cannot initialise Python: %s\n",
                s.err_msg ? s.err_msg : "error");
        return -1;
    }
    return 0;
}

/* Run TARGET on the channel; returns the exit status (and whether the
 * supervisor's end was gone before the outcome could be told). */
static int run(int fd, const char *target, int *orphaned)
{
    static tether_cancel_flag flag; /* the actor runtime reads it; nobody sets it here */
    const struct tether_backend_host *host = tether_backend_host();
    struct tether_actor *a = host->actor_attach(fd, &flag);
    if (!a)
        return 127;
    if (py_start() != 0) {
        host->actor_finish(a, TETHER_OUTCOME_FAILED, 1, "tether-pyactor: cannot initialise Python");
        return 1;
    }
    struct subint_run r;
    memset(&r, 0, sizeof r);
    r.host = host;
    r.a = a;
    r.py_tid = PyThread_get_thread_ident();
    int outcome, code;
    char *text;
    subint_run_target(&r, target, &outcome, &code, &text);
    r.finished = 1;
    PyErr_Clear();
    subint_run_clear(&r);
    r.a = NULL;
    PyThreadState *ts = PyEval_SaveThread(); /* other Python threads may finish meanwhile */
    host->actor_finish(a, outcome, code, text); /* STOPPED; closes the channel */
    PyEval_RestoreThread(ts);
    free(text);
    *orphaned = tether_cancel_flag_get(&flag) == TETHER_CANCEL_ORPHANED;
    /* Not Py_FinalizeEx: it would wait for the actor's non-daemon threads,
     * and the outcome is out. Flushed by subint_run_clear. */
    return outcome == TETHER_OUTCOME_EXITED ? code : 1;
}

int main(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(USAGE, stdout);
        return 0;
    }
    const char *cgroup = NULL;
    if (argc == 8 && !strcmp(argv[5], "--cgroup")) {
        cgroup = argv[6];
        argv[5] = argv[7];
        argc = 6;
    }
    if (argc != 6 || strcmp(argv[1], "--channel-fd") || strcmp(argv[3], "--parent")) {
        fputs(USAGE, stderr);
        return 2;
    }
    long fdl = number(argv[2], 0, INT_MAX), parentl = number(argv[4], 0, INT_MAX);
    if (fdl < 0 || parentl < 0) {
        fprintf(stderr, "tether-pyactor: %s: '%s' is not a number\n" USAGE,
                fdl < 0 ? "--channel-fd" : "--parent", fdl < 0 ? argv[2] : argv[4]);
        return 2;
    }
    pid_t parent = (pid_t)parentl;
    int bad = check_setup((int)fdl, cgroup);
    if (bad)
        return bad;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_parent_death;
    sigaction(TETHER_PARENT_DEATH_SIGNAL, &sa, NULL);
    prctl(PR_SET_PDEATHSIG, TETHER_PARENT_DEATH_SIGNAL);
    if (getppid() != parent)
        on_parent_death(0);
    int orphaned = 0;
    int status = run((int)fdl, argv[5], &orphaned);
    if (orphaned) {
        /* as tether-actor: the supervisor may be dying, its parent-death
         * signal not sent yet; wait for the reparenting (50 ms at most),
         * then take the group down */
        for (int i = 0; i < 50 && getppid() == parent; i++)
            usleep(1000);
        if (getppid() != parent)
            on_parent_death(0);
    }
    fflush(NULL);
    _exit(status & 0xff);
}
