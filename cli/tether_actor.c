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
 * supervisor made: run by hand it has no supervisor to talk to.
 *
 *   tether-actor --channel-stdio [--end-token TOKEN] TARGET
 *       the slurm backend's mode (a job step started by srun -u): the
 *       channel arrives as stdin (bytes from the supervisor) and stdout
 *       (bytes to it), two different files on the node (a pipe and a pty).
 *       The helper forks the actor onto one end of a socketpair (as fd 3;
 *       its stdin becomes /dev/null, its stdout goes to stderr, so that a
 *       printf of the actor cannot corrupt the channel), pumps bytes
 *       between stdio and the other end, and exits as the actor did: its
 *       exit status, or 128 + the signal that killed it (what srun reports
 *       for a task killed by a signal). End of stdin is end of channel for
 *       the actor (it then cancels itself). It is a subreaper: when the
 *       actor has ended it kills every descendant left (however it
 *       detached) and counts them. SIGUSR2 (srun forwards it to the task)
 *       is a counted hard kill: SIGKILL of the actor, then the same sweep;
 *       so are SIGTERM, SIGINT and SIGHUP to the helper.
 *       With --end-token, its last word is one line on stderr,
 *       "\036tether-step-end TOKEN x|s VALUE DESCENDANTS\n" (exit code or
 *       signal): the backend learns the outcome from it at once, without
 *       waiting for srun, which exits only once Slurm has completed the
 *       job (a controller round trip); while the actor runs, "... d 0 N"
 *       when the number N of its descendants changed (looked at after
 *       100 ms, then at doubling intervals up to 1 s): what the step's
 *       end took with it when srun is killed. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
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
 * no grandchild outlives the actor. Not when our parent is PID 1: a
 * namespace's init (the fork backend's pidns containment), whose death
 * kills the whole namespace; waiting only made every such end 50 ms late
 * (backends/fork/fork.c says the same). */
static void orphan_exit(pid_t parent, int orphaned)
{
    if (!orphaned || parent == 1)
        return;
    for (int i = 0; i < 50 && getppid() == parent; i++)
        usleep(1000);
    if (getppid() != parent)
        on_parent_death(0);
}

#define USAGE                                                                               \
    "usage: tether-actor --channel-fd N --parent PID [--cgroup PROCS] TARGET\n"                \
    "       tether-actor --channel-stdio [--end-token TOKEN] TARGET\n"                                              \
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

/* --channel-stdio: the actor's end of the channel, in the actor process */
#define CHANNEL_FD 3

/* ---- --channel-stdio ------------------------------------------------------- */

struct pump {
    int from, to;
    int shut_to; /* at end of `from`: shutdown(to, SHUT_WR) instead of close */
};

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* One direction. Blocking reads and writes: each direction has its own
 * thread, so a full pipe on one side never stalls the other. Ends at end
 * of `from` or at an error on either side (the step then ends with the
 * actor, or Slurm kills it). */
static void *pump_main(void *arg)
{
    struct pump *p = arg;
    char buf[65536];
    for (;;) {
        ssize_t r = read(p->from, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || write_all(p->to, buf, (size_t)r) != 0)
            break;
    }
    if (p->shut_to)
        shutdown(p->to, SHUT_WR); /* end of channel: the actor cancels itself */
    else
        close(p->to);
    return NULL;
}

/* The subreaper's sweep once the actor has ended: kill every child, reap,
 * again, until none is left (killing a parent hands its children to us),
 * as the fork backend's keeper does. Returns how many it killed. Bounded:
 * one second, then it gives up (Slurm's step teardown kills the rest). */
static int sweep_descendants(void)
{
    int killed = 0;
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char path[64];
    /* orphans are handed to the thread group leader (alive: it is us) */
    snprintf(path, sizeof path, "/proc/self/task/%d/children", (int)getpid());
    for (;;) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        char buf[4096];
        ssize_t got = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
        if (fd >= 0)
            close(fd);
        buf[got > 0 ? got : 0] = '\0';
        for (char *p = buf, *end; *p; p = end) {
            long kid = strtol(p, &end, 10);
            if (end == p)
                break;
            if (kid > 0)
                kill((pid_t)kid, SIGKILL);
        }
        int st;
        pid_t p;
        while ((p = waitpid(-1, &st, WNOHANG)) > 0)
            if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
                killed++;
        if (p < 0 && errno == ECHILD)
            break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - t0.tv_sec) * 1000000000L + (now.tv_nsec - t0.tv_nsec) > 1000000000L)
            break;
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    return killed;
}

/* Processes below us now (not counting us), walking the
 * /proc/PID/task/TID/children lists breadth first. At most 4096. */
static int count_below(void)
{
    enum { MAX = 4096 };
    static pid_t todo[MAX];
    size_t n = 0, head = 0;
    todo[n++] = getpid();
    while (head < n) {
        pid_t p = todo[head++];
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/task", (int)p);
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (e->d_name[0] == '.')
                continue;
            char cp[96], buf[4096];
            snprintf(cp, sizeof cp, "/proc/%d/task/%.40s/children", (int)p, e->d_name);
            int fd = open(cp, O_RDONLY | O_CLOEXEC);
            ssize_t got = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
            if (fd >= 0)
                close(fd);
            buf[got > 0 ? got : 0] = '\0';
            for (char *q = buf, *end; *q && n < MAX; q = end) {
                long kid = strtol(q, &end, 10);
                if (end == q)
                    break;
                todo[n++] = (pid_t)kid;
            }
        }
        if (d)
            closedir(d);
    }
    return (int)n - 1;
}

/* The end record, or (kind 'd') how many descendants the actor has now:
 * one write (< PIPE_BUF), so that it reaches srun in one piece. */
static void record(const char *token, char kind, int value, int descendants)
{
    if (!token)
        return;
    char rec[256];
    int n = snprintf(rec, sizeof rec, "\036tether-step-end %s %c %d %d\n", token, kind, value,
                     descendants);
    if (n > 0 && (size_t)n < sizeof rec && write(2, rec, (size_t)n) != n)
        perror("tether-actor: the end record");
}

/* Wait for the actor's end, or for SIGUSR2 (the backend's hard kill,
 * forwarded by srun), SIGTERM, SIGINT or SIGHUP (the helper's own end):
 * then SIGKILL it, and its end follows. *killed says
 * which. Orphans reparented to us that end meanwhile are reaped here.
 * With a token, the number of the actor's descendants is reported when it
 * changed, looked at 100 ms after the start, then at doubling intervals up
 * to one second: the backend's count of what the step's end
 * killed when it must kill srun before we can report (under load).
 * Ends: the actor is our child, SIGKILLed at a kill request. */
static int wait_actor(pid_t actor, const sigset_t *want, int *killed, const char *token)
{
    int reported = 0;
    long period_ms = 100; /* doubled after each look, up to 1 s: a long-lived
                           * actor costs one look a second */
    for (;;) {
        siginfo_t si;
        struct timespec period = {period_ms / 1000, (period_ms % 1000) * 1000000L};
        int sig = token ? sigtimedwait(want, &si, &period) : sigwaitinfo(want, &si);
        if (sig > 0 && sig != SIGCHLD && !*killed) { /* SIGUSR2, or the helper's own end */
            *killed = 1;
            kill(actor, SIGKILL);
        }
        int s;
        pid_t p;
        while ((p = waitpid(-1, &s, WNOHANG)) > 0)
            if (p == actor)
                return s;
        if (sig < 0 && !*killed) {
            period_ms = period_ms < 500 ? 2 * period_ms : 1000;
            int now = count_below() - 1; /* the actor is not its own descendant */
            if (now != reported && now >= 0) {
                record(token, 'd', 0, now);
                reported = now;
            }
        }
    }
}

/* The actor, in the forked child: the channel as fd 3, stdin from
 * /dev/null, stdout to stderr; dies with the helper. */
static void stdio_actor(pid_t helper, int chan, const char *target) __attribute__((noreturn));
static void stdio_actor(pid_t helper, int chan, const char *target)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != helper)
        _exit(70);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL); /* the helper's mask is not the actor's */
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null >= 0)
        dup2(null, 0);
    dup2(2, 1);
    dup3(chan, CHANNEL_FD, O_CLOEXEC);
    close_range(CHANNEL_FD + 1, ~0U, 0);
    int orphaned = 0;
    int status = tether_actor_main(CHANNEL_FD, target, &orphaned);
    fflush(NULL);
    _exit(status & 0xff);
}

static int channel_stdio(const char *target, const char *token)
{
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) {
        perror("tether-actor: socketpair");
        return 70;
    }
    /* stdin and stdout carry the channel: keep them out of the actor */
    int in = fcntl(0, F_DUPFD_CLOEXEC, CHANNEL_FD + 1);
    int out = fcntl(1, F_DUPFD_CLOEXEC, CHANNEL_FD + 1);
    if (in < 0 || out < 0) {
        perror("tether-actor: stdio");
        return 70;
    }
    if (isatty(out)) {
        /* srun -u gives the task a pty as stdout: make it pass bytes as
         * they are (no \n -> \r\n) */
        struct termios t;
        if (tcgetattr(out, &t) == 0) {
            cfmakeraw(&t);
            tcsetattr(out, TCSANOW, &t);
        }
    }
    /* SIGCHLD and SIGUSR2 (the hard kill) are taken synchronously; the
     * pumps inherit the mask, so only wait_actor sees them. So are SIGTERM,
     * SIGINT and SIGHUP (scancel, a time limit, a Ctrl-C): as SIGUSR2, the
     * actor is killed and its descendants swept. Left to their default,
     * they killed the helper alone, and a descendant that had detached
     * (own session, deaf to signals) lived on with ppid 1 wherever no
     * cgroup tracking kills the step's processes. */
    sigset_t want;
    sigemptyset(&want);
    sigaddset(&want, SIGCHLD);
    sigaddset(&want, SIGUSR2);
    sigaddset(&want, SIGTERM);
    sigaddset(&want, SIGINT);
    sigaddset(&want, SIGHUP);
    sigprocmask(SIG_BLOCK, &want, NULL);
    /* every descendant that detaches comes back to us when its parent dies */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    pid_t helper = getpid();
    pid_t pid = fork(); /* single-threaded so far: a plain fork is safe */
    if (pid < 0) {
        perror("tether-actor: fork");
        return 70;
    }
    if (pid == 0)
        stdio_actor(helper, sp[1], target);
    close(sp[1]);
    /* a pump writing to a socket whose actor has ended, or to a stdout srun
     * has closed, gets EPIPE and stops; SIGPIPE would kill the helper before
     * the actor's last frames (its stopped message) are passed on */
    signal(SIGPIPE, SIG_IGN);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        close(null);
    }
    int sock_out = dup(sp[0]); /* each pump owns the fd it closes */
    struct pump down = {.from = in, .to = sp[0], .shut_to = 1};
    struct pump up = {.from = sock_out, .to = out, .shut_to = 0};
    pthread_t td, tu;
    int have_down = pthread_create(&td, NULL, pump_main, &down) == 0;
    int have_up = sock_out >= 0 && pthread_create(&tu, NULL, pump_main, &up) == 0;
    /* the down pump may sit in a read of stdin until srun closes it: it is
     * never joined (the helper ends with _exit, and `down` lives in this
     * frame, which never returns), so it is detached, not leaked */
    if (have_down)
        pthread_detach(td);
    int killed = 0;
    if (!have_down || !have_up) {
        fprintf(stderr, "tether-actor: cannot start the channel pumps\n");
        kill(pid, SIGKILL);
    }
    int st = wait_actor(pid, &want, &killed, token);
    /* pass on what the actor wrote last (its stopped message), at most 2 s:
     * a grandchild that kept the channel open must not hold the step */
    if (have_up && !killed) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 2;
        if (pthread_timedjoin_np(tu, NULL, &ts) == 0)
            have_up = 0;
    }
    if (have_up)
        pthread_detach(tu); /* still pumping, or not waited for: _exit ends it */
    int descendants = sweep_descendants();
    int sig = killed ? SIGKILL : WIFSIGNALED(st) ? WTERMSIG(st) : 0;
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : 70;
    record(token, sig ? 's' : 'x', sig ? sig : code, descendants);
    _exit(sig ? 128 + sig : code);
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--channel-stdio"))
        return channel_stdio(argv[2], NULL);
    if (argc == 5 && !strcmp(argv[1], "--channel-stdio") && !strcmp(argv[2], "--end-token")) {
        if (!*argv[3] || strpbrk(argv[3], " \t\n")) {
            fprintf(stderr, "tether-actor: --end-token: '%s' is empty or has a space\n" USAGE, argv[3]);
            return 2;
        }
        return channel_stdio(argv[4], argv[3]);
    }
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
