/* backends/fork - actors in child processes: orphan-proof, zombie-free,
 * and nothing an actor started outlives its teardown.
 *
 * Each actor is a child process in a process group of its own. Its exit is
 * observed through a pidfd (pollable exit fd, waitid(P_PIDFD)): no SIGCHLD
 * handler, no waitpid on "any child" -- the host owns those.
 *
 * Two modes (plugins.yaml: options: { mode: fork | exec, helper: PATH }):
 *   fork  the child runs the actor in the forked copy of the supervisor;
 *   exec  the child execs a small helper (tether-actor) that loads the
 *         actor module in a fresh process: robust when the host program
 *         has many threads and locks.
 *
 * Containment (options: { containment: auto | pidns | cgroup | subreaper |
 * group }): what takes down every process the actor started, however it
 * detached (setsid, setpgid, double fork). `auto` picks the strongest that
 * works at open; one asked for by name that does not work is an error.
 *   pidns      a PID namespace per actor. Its PID 1 is a tiny init (our
 *              child) that starts the actor as its own child, reaps it and
 *              whatever reparents to it, and reports the actor's pid and
 *              wait status through a pipe. Killing the init kills
 *              everything inside; the init dies with the spawner thread
 *              (parent-death SIGKILL) or when it sees this process gone (a
 *              pidfd of it). (An actor forked into the namespace as *our*
 *              child would leave the dying init waiting for our reaper,
 *              the host's init after a SIGKILL, to collect it.)
 *   cgroup     a cgroup v2 directory per actor under a tether-owned one;
 *              `cgroup.kill` at teardown, removed after.
 *   subreaper  a keeper process (child subreaper, own process group) forks
 *              the actor, collects every orphaned descendant, and at the
 *              actor's end, at teardown (SIGTERM) or at its parent's death
 *              kills them all, then ends as the actor ended.
 *   group      the process group only: a descendant that leaves it survives.
 *
 * Orphan guarantee. The child asks for a parent-death signal whose handler
 * kills the child's whole process group, and re-checks its parent against
 * the race at set-up; the actor runtime also cancels itself at end of
 * channel; the containment's keeper (init, keeper) dies or sweeps with it.
 * A parent-death signal fires when the *thread* that forked exits, so
 * children are forked by one long-lived spawner thread per backend state,
 * never by the caller's thread.
 *
 * fd hygiene: the child keeps stdio and its channel (moved to fd 3) only.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <tether/backend.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

#define CHANNEL_FD 3
/* exit status of a child that could not enter its containment */
#define CONTAIN_FAILED 125

extern char **environ;

enum mode { MODE_FORK, MODE_EXEC };

/* strongest first: `auto` tries them in this order */
enum contain { CT_PIDNS, CT_CGROUP, CT_SUBREAPER, CT_GROUP, CT_AUTO };
static const char *const contain_names[] = {"pidns", "cgroup", "subreaper", "group", "auto"};

struct request {
    const struct tether_spawn_spec *spec;
    struct request *next; /* queued after this one */
    const char *cg_procs; /* cgroup: the actor's cgroup.procs */
    int cg_fd;            /* cgroup, fork mode: the same, open for the child */
    pid_t pid;            /* the actor (subreaper: the keeper) */
    pid_t keeper;         /* pidns: the namespace's init; 0 otherwise */
    int keeper_rd;        /* subreaper: read end of the keeper's report pipe */
    int err;              /* errno of the failed step, or 0 */
    const char *what;     /* the failed step */
    int taken;            /* the spawner has started it */
    int done;
};

struct fstate {
    const struct tether_backend_host *host;
    enum mode mode;
    enum contain contain; /* in force */
    char *helper;
    char detail[640]; /* the containment in force and why; for `tether backends` */
    pid_t self_pid;
    int self_pidfd; /* this process: the children's parent-death race check */
    int own_ns_fd;  /* pidns: the spawner thread's own pid namespace */
    char *cg_base;  /* cgroup: the tether-owned directory */
    /* the spawner thread */
    pthread_t spawner;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
    struct request *req; /* queue of requests not yet taken, oldest first:
                          * several program threads may spawn at once */
    int stop;
    int probe;      /* 1: the spawner must try pidns first; 2: it did */
    char probe_why[200]; /* empty when pidns works */
    /* abandoned children (SIGKILL had not ended them by the deadline):
     * their pidfds are kept and polled, so that they are reaped, not left
     * as zombies, once they do end. Under `lock`. */
    int *late;
    size_t n_late, cap_late;
    /* cgroup directories not yet empty when their actor was released */
    char **late_cg;
    size_t n_late_cg, cap_late_cg;
};

struct fchild {
    struct tether_child pub; /* exit_fd = pidfd of the actor (subreaper: of the keeper) */
    struct fstate *st;
    pid_t pid;       /* the actor */
    pid_t keeper;    /* pidns: the namespace's init; subreaper: the keeper; else 0 */
    int keeper_fd;   /* pidfd of the keeper (our child), or -1 */
    int actor_fd;    /* pidfd of the actor when it is the keeper's child, or -1 */
    int report_fd;   /* the keeper's report pipe (pidns: also exit_fd), or -1 */
    int have_status; /* pidns: the init reported the actor's wait status */
    int status;
    char *cg;        /* cgroup: the actor's directory */
    int reaped;
    int killed;
    int swept;       /* the containment was killed after the actor ended */
    int a_reaped;    /* the process behind exit_fd is collected; its status in `si` */
    siginfo_t si;
    int counted;     /* `descendants` is known */
    int descendants; /* killed besides the actor */
    /* the outcome's text; not a __thread buffer: lazy TLS allocation in a
     * dlopen'ed module aborts the process when malloc fails */
    char msg[128];
};

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int set_error(struct tether_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int set_error(struct tether_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->code = code;
    return code;
}

static int pidfd_signal(int pidfd, int sig)
{
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

/* ---- counting and killing what a containment holds ------------------------------- */

/* Number of descendants of `root` (not counting it), walking the
 * /proc/PID/task/TID/children lists. Bounded by the process table; reads
 * only. Returns -1 if the kernel has no children lists. */
static int count_tree(pid_t root)
{
    enum { MAX = 4096 };
    pid_t *todo = malloc(MAX * sizeof *todo);
    if (!todo)
        return -1;
    size_t n = 0, head = 0;
    todo[n++] = root;
    int count = -1;
    while (head < n) {
        pid_t p = todo[head++];
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/task", (int)p);
        DIR *d = opendir(path);
        if (!d)
            continue; /* gone already */
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.')
                continue;
            char cp[96], buf[4096];
            snprintf(cp, sizeof cp, "/proc/%d/task/%.40s/children", (int)p, e->d_name);
            int fd = open(cp, O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                continue;
            if (count < 0)
                count = 0;
            ssize_t got = read(fd, buf, sizeof buf - 1);
            close(fd);
            if (got <= 0)
                continue;
            buf[got] = '\0';
            for (char *s = buf, *end; *s; s = end) {
                long kid = strtol(s, &end, 10);
                if (end == s)
                    break;
                count++;
                if (kid > 0 && n < MAX)
                    todo[n++] = (pid_t)kid;
            }
        }
        closedir(d);
    }
    free(todo);
    return count < 0 ? -1 : count;
}

/* Lines of a cgroup's cgroup.procs other than `except`: its processes. */
static int cgroup_count(const char *dir, pid_t except)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/cgroup.procs", dir);
    FILE *fp = fopen(path, "re");
    if (!fp)
        return -1;
    int n = 0;
    long pid;
    while (fscanf(fp, "%ld", &pid) == 1)
        if (pid != except)
            n++;
    fclose(fp);
    return n;
}

static int cgroup_write(const char *dir, const char *file, const char *text)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t w = write(fd, text, strlen(text));
    int e = w < 0 ? -errno : 0;
    close(fd);
    return e;
}

/* 1 while any process is in the cgroup (cgroup.events "populated"). */
static int cgroup_populated(const char *dir)
{
    char path[4200], line[64];
    snprintf(path, sizeof path, "%s/cgroup.events", dir);
    FILE *fp = fopen(path, "re");
    if (!fp)
        return 0; /* gone */
    int pop = 0;
    while (fgets(line, sizeof line, fp))
        if (!strncmp(line, "populated ", 10))
            pop = atoi(line + 10);
    fclose(fp);
    return pop;
}

/* ---- in the child ------------------------------------------------------------- */

/* cgroup containment: the actor's cgroup.kill, for the parent-death
 * handler (set in the child before the actor runs) */
static char death_cgroup_kill[4096];

static void on_parent_death(int sig)
{
    (void)sig;
    if (death_cgroup_kill[0]) { /* every process of the actor's cgroup, escaped ones too */
        int fd = open(death_cgroup_kill, O_WRONLY | O_CLOEXEC);
        if (fd >= 0 && write(fd, "1", 1) == 1)
            close(fd);
    }
    kill(0, SIGKILL); /* the whole group: the actor and its grandchildren */
}

/* Set up the child before the actor runs: own process group, containment,
 * parent-death signal, default signal dispositions, only stdio and the
 * channel. `parent` is the parent's pid as the child sees it (0 in a PID
 * namespace of its own). Async-signal-safe calls only (we are in a fork of
 * a threaded process). */
static void child_setup(pid_t parent, int channel_fd, int cg_fd, const char *cg_procs)
{
    setpgid(0, 0);
    if (cg_fd >= 0 && write(cg_fd, "0", 1) != 1)
        _exit(CONTAIN_FAILED); /* never run the actor uncontained */
    if (cg_fd >= 0) { /* ".../cgroup.procs" -> ".../cgroup.kill" */
        size_t n = strlen(cg_procs);
        if (n > 5 && n < sizeof death_cgroup_kill) {
            memcpy(death_cgroup_kill, cg_procs, n - 5);
            memcpy(death_cgroup_kill + n - 5, "kill", 5);
        }
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &sa, NULL); /* SIG_DFL */
    sa.sa_handler = on_parent_death;
    sigaction(TETHER_PARENT_DEATH_SIGNAL, &sa, NULL); /* the exec helper's too */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    prctl(PR_SET_PDEATHSIG, TETHER_PARENT_DEATH_SIGNAL);
    if (getppid() != parent) /* the parent died before prctl */
        on_parent_death(0);
    /* keep it close-on-exec: a program the actor runs must not get it */
    if (channel_fd != CHANNEL_FD)
        dup3(channel_fd, CHANNEL_FD, O_CLOEXEC);
    syscall(SYS_close_range, CHANNEL_FD + 1, ~0U, 0);
}

/* ---- starting the actor process ------------------------------------------------ */

/* Start the actor: fork (fork mode) or vfork + exec of the helper. `parent`
 * is this process's pid as the child will see it. */
static pid_t start_actor(struct fstate *st, struct request *r, pid_t parent)
{
    const struct tether_spawn_spec *spec = r->spec;
    if (st->mode == MODE_EXEC) {
        /* vfork + exec: the helper does the rest of child_setup itself */
        char ppid[32];
        snprintf(ppid, sizeof ppid, "%d", (int)parent);
        char *argv[] = {st->helper, "--channel-fd", "3", "--parent", ppid, (char *)spec->target,
                        NULL, NULL, NULL};
        if (r->cg_procs) { /* the helper enters the cgroup before it loads anything */
            argv[5] = "--cgroup";
            argv[6] = (char *)r->cg_procs;
            argv[7] = (char *)spec->target;
        }
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t at;
        posix_spawn_file_actions_init(&fa);
        posix_spawnattr_init(&at);
        posix_spawn_file_actions_adddup2(&fa, spec->channel_fd, CHANNEL_FD);
        posix_spawn_file_actions_addclosefrom_np(&fa, CHANNEL_FD + 1);
        sigset_t none, all;
        sigemptyset(&none);
        sigfillset(&all);
        posix_spawnattr_setsigmask(&at, &none);
        posix_spawnattr_setsigdefault(&at, &all);
        posix_spawnattr_setpgroup(&at, 0);
        posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                          POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_USEVFORK);
        pid_t pid;
        int rc = posix_spawn(&pid, st->helper, &fa, &at, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&at);
        if (rc) {
            r->err = rc;
            r->what = st->helper;
        }
        return rc ? -1 : pid;
    }
    pid_t pid = fork();
    if (pid < 0) {
        r->err = errno;
        r->what = "fork";
        return -1;
    }
    if (pid == 0) {
        child_setup(parent, spec->channel_fd, r->cg_fd, r->cg_procs);
        tether_cancel_flag flag = TETHER_CANCEL_NONE;
        int status = st->host->run_c_actor(CHANNEL_FD, spec->target, &flag);
        if (tether_cancel_flag_get(&flag) == TETHER_CANCEL_ORPHANED) {
            /* Orphaned: the supervisor's end closed before it heard how the
             * actor ended. If it is dying, its parent-death signal may not
             * be sent yet: wait for the reparenting (a few ms at most), then
             * take the whole group down, so that no grandchild survives. A
             * supervisor that only aborted the channel stays our parent. */
            for (int i = 0; i < 50 && getppid() == parent; i++)
                usleep(1000);
            if (getppid() != parent)
                on_parent_death(0);
        }
        _exit(status & 0xff); /* not exit(): the parent's atexit handlers are not ours */
    }
    setpgid(pid, pid); /* also here, against the race with the child's own call */
    return pid;
}

/* The subreaper keeper: kill every child, reap, again, until none is left
 * (killing a parent hands its children to us). Returns how many it killed.
 * Bounded: one second, then it gives up (a process stuck in the kernel). */
static int keeper_sweep(void)
{
    int killed = 0;
    int64_t deadline = mono_ns() + 1000000000;
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/children", (int)getpid());
    for (;;) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        char buf[4096];
        ssize_t got = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
        if (fd >= 0)
            close(fd);
        buf[got > 0 ? got : 0] = '\0';
        for (char *s = buf, *end; *s; s = end) {
            long kid = strtol(s, &end, 10);
            if (end == s)
                break;
            if (kid > 0)
                kill((pid_t)kid, SIGKILL);
        }
        int status;
        pid_t p;
        while ((p = waitpid(-1, &status, WNOHANG)) > 0)
            if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
                killed++;
        if (p < 0 && errno == ECHILD)
            break;
        if (mono_ns() > deadline)
            break;
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    return killed;
}

/* The subreaper keeper's life: start the actor, report its pid, wait for
 * its end (or for SIGTERM: teardown, or our parent's death), kill every
 * descendant, report how many, end as the actor ended. */
static void keeper_main(struct fstate *st, struct request *r, int wr) __attribute__((noreturn));
static void keeper_main(struct fstate *st, struct request *r, int wr)
{
    setpgid(0, 0); /* outside the actor's group: its group kill is not ours */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL); /* taken synchronously below */
    /* Blocked, the others are never delivered; these two are waited for
     * and must not be ignored (SIGCHLD ignored would reap for us). One
     * call each, not one per signal: this is on the spawn path. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa); /* SIG_DFL */
    sigaction(SIGCHLD, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    pid_t a = -1;
    if (getppid() == st->self_pid) /* else our parent died before prctl */
        a = start_actor(st, r, getpid());
    int32_t v = a > 0 ? (int32_t)a : -(int32_t)(r->err ? r->err : ESRCH);
    ssize_t w = write(wr, &v, sizeof v);
    /* keep only the report pipe: not the actor's channel (its end of
     * stream), not the supervisor's other fds */
    if (wr > 0)
        syscall(SYS_close_range, 0, wr - 1, 0);
    syscall(SYS_close_range, wr + 1, ~0U, 0);
    int status = 0, have = 0;
    sigset_t want;
    sigemptyset(&want);
    sigaddset(&want, SIGCHLD);
    sigaddset(&want, SIGTERM);
    /* Ends at the actor's exit (SIGCHLD), or at SIGTERM (teardown, our
     * parent's death): then the actor is killed and the next SIGCHLD ends it. */
    while (a > 0 && !have) {
        siginfo_t si;
        int sig = sigwaitinfo(&want, &si);
        if (sig == SIGTERM) {
            kill(-a, SIGKILL);
            kill(a, SIGKILL);
        }
        int s;
        pid_t p;
        while ((p = waitpid(-1, &s, WNOHANG)) > 0)
            if (p == a) {
                status = s;
                have = 1;
            }
    }
    int32_t n = keeper_sweep();
    w = write(wr, &n, sizeof n);
    (void)w;
    if (!have || WIFEXITED(status))
        _exit(have ? WEXITSTATUS(status) : CONTAIN_FAILED);
    /* end by the actor's signal, so the supervisor sees what the actor saw */
    int sig = WTERMSIG(status);
    struct rlimit none = {0, 0};
    setrlimit(RLIMIT_CORE, &none);
    sa.sa_handler = SIG_DFL;
    sigaction(sig, &sa, NULL);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    sigprocmask(SIG_UNBLOCK, &one, NULL);
    kill(getpid(), sig);
    _exit(128 + sig);
}

/* Close every fd but the n in `keep` (sorted here; -1 entries ignored). */
static void close_all_but(int *keep, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
            int t = keep[j];
            keep[j] = keep[j - 1];
            keep[j - 1] = t;
        }
    unsigned from = 0;
    for (int i = 0; i < n; i++) {
        if (keep[i] < 0 || (unsigned)keep[i] < from)
            continue;
        if ((unsigned)keep[i] > from)
            syscall(SYS_close_range, from, (unsigned)keep[i] - 1, 0);
        from = (unsigned)keep[i] + 1;
    }
    syscall(SYS_close_range, from, ~0U, 0);
}

/* The first of our children in /proc/thread-self/children (/proc's pid
 * numbers: the supervisor's view), or -1. */
static pid_t first_child(void)
{
    char buf[64];
    int fd = open("/proc/thread-self/children", O_RDONLY | O_CLOEXEC);
    ssize_t got = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (got <= 0)
        return -1;
    buf[got] = '\0';
    return (pid_t)atoi(buf);
}

/* PID 1 of an actor's namespace: starts the actor as its own child,
 * reports its pid (as the supervisor sees it), reaps it and whatever
 * reparents here, and reports the actor's wait status when it ends. Its
 * own death (our SIGKILL at teardown, or the parent-death SIGKILL when the
 * spawner thread dies) makes the kernel kill every process inside; it
 * also ends when it sees this process gone (its pidfd polls readable:
 * covers the race before prctl). As PID 1 it gets no signal it has no
 * handler for from inside; all are ignored but SIGCHLD (blocked, read
 * through a signalfd). The actor being its child, not ours, nothing in the
 * namespace ever waits for a reaper outside it. */
static void init_main(struct fstate *st, struct request *r, int wr) __attribute__((noreturn));
static void init_main(struct fstate *st, struct request *r, int wr)
{
    setpgid(0, 0); /* terminal signals to the host's group are not for it */
    /* Every signal blocked (one call, not one per signal: this is on the
     * spawn path): none is ever delivered to the init, SIGCHLD is read
     * through a signalfd. The actor resets its own mask and dispositions. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL; /* not SIG_IGN or SA_NOCLDWAIT: we reap and report */
    sigaction(SIGCHLD, &sa, NULL);
    sigset_t all, chld;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    struct pollfd p[2] = {{.fd = st->self_pidfd, .events = POLLIN},
                          {.fd = signalfd(-1, &chld, SFD_CLOEXEC), .events = POLLIN}};
    if (poll(p, 1, 0) > 0) /* this process died before prctl */
        _exit(CONTAIN_FAILED);
    pid_t a = start_actor(st, r, 1);
    int32_t v = a > 0 ? (int32_t)first_child() : -(int32_t)(r->err ? r->err : ESRCH);
    if (a > 0 && v <= 0)
        v = -ESRCH;
    ssize_t w = write(wr, &v, sizeof v);
    if (a <= 0 || v <= 0)
        _exit(CONTAIN_FAILED);
    /* keep the pipe, the pidfd and the signalfd only (close_range between
     * them: a close per fd number is a thousand system calls) */
    int keep[3] = {wr, p[0].fd, p[1].fd};
    close_all_but(keep, 3);
    int reported = 0;
    /* The namespace's lifetime: ends at our SIGKILL (no wait needed), or
     * when the supervising process is gone. */
    for (;;) {
        int status;
        pid_t q;
        while ((q = waitpid(-1, &status, WNOHANG)) > 0)
            if (q == a && !reported) {
                int32_t s32 = status;
                w = write(wr, &s32, sizeof s32);
                reported = 1;
            }
        /* No timeout on purpose: this process is the namespace's init and
         * its only job is to live exactly as long as the namespace. It ends
         * at our SIGKILL (teardown), or when p[0] (the supervisor's side)
         * reports the supervisor gone; every child it must reap raises
         * SIGCHLD on the signalfd p[1]. Not a supervisor thread. */
        if (poll(p, 2, -1) > 0) {
            if (p[0].revents)
                _exit(0);
            struct signalfd_siginfo si;
            if (p[1].revents)
                w = read(p[1].fd, &si, sizeof si);
        }
        (void)w;
    }
}

/* ---- the spawner thread ----------------------------------------------------------- */

/* Reap a child we just SIGKILLed, waiting at most 1 s (a process stuck in
 * the kernel may take longer: it is then left as a zombie for the host). */
static void reap_killed(pid_t pid)
{
    int64_t deadline = mono_ns() + 1000000000;
    while (waitpid(pid, NULL, WNOHANG) == 0 && mono_ns() < deadline)
        usleep(1000);
}

static pid_t do_spawn(struct fstate *st, struct request *r)
{
    r->err = 0;
    switch (st->contain) {
    case CT_PIDNS: {
        int p[2];
        if (pipe2(p, O_CLOEXEC)) {
            r->err = errno;
            r->what = "pipe";
            return -1;
        }
        if (unshare(CLONE_NEWPID)) {
            r->err = errno;
            r->what = "unshare(CLONE_NEWPID)";
            close(p[0]);
            close(p[1]);
            return -1;
        }
        /* the first child is PID 1 of the new namespace */
        pid_t init = fork();
        if (init == 0) {
            close(p[0]);
            init_main(st, r, p[1]);
        }
        int e = errno;
        close(p[1]);
        /* back to our own namespace for the next spawn */
        if (setns(st->own_ns_fd, CLONE_NEWPID))
            st->host->log("fork", "setns back to the own PID namespace: %s", strerror(errno));
        if (init < 0) {
            r->err = e;
            r->what = "fork (namespace init)";
            close(p[0]);
            return -1;
        }
        r->keeper_rd = p[0];
        return init;
    }
    case CT_SUBREAPER: {
        int p[2];
        if (pipe2(p, O_CLOEXEC)) {
            r->err = errno;
            r->what = "pipe";
            return -1;
        }
        pid_t k = fork();
        if (k == 0) {
            close(p[0]);
            keeper_main(st, r, p[1]);
        }
        close(p[1]);
        if (k < 0) {
            r->err = errno;
            r->what = "fork (keeper)";
            close(p[0]);
            return -1;
        }
        r->keeper_rd = p[0];
        return k;
    }
    default: return start_actor(st, r, st->self_pid);
    }
}

/* Can this thread make PID namespaces? Tried on the spawner thread only:
 * unshare(CLONE_NEWPID) changes where the calling thread's children go,
 * and setns back undoes it. */
static void probe_pidns(struct fstate *st)
{
    st->own_ns_fd = open("/proc/thread-self/ns/pid", O_RDONLY | O_CLOEXEC);
    if (st->own_ns_fd < 0) {
        snprintf(st->probe_why, sizeof st->probe_why, "open /proc/thread-self/ns/pid: %s",
                 strerror(errno));
        return;
    }
    if (unshare(CLONE_NEWPID)) {
        int e = errno;
        snprintf(st->probe_why, sizeof st->probe_why, "unshare(CLONE_NEWPID): %s%s", strerror(e),
                 e == EPERM ? " (needs CAP_SYS_ADMIN: run as root)" : "");
    } else if (setns(st->own_ns_fd, CLONE_NEWPID)) {
        /* cannot undo: this thread's children would land in the new one */
        snprintf(st->probe_why, sizeof st->probe_why, "setns back to the own PID namespace: %s",
                 strerror(errno));
    } else {
        return;
    }
    close(st->own_ns_fd);
    st->own_ns_fd = -1;
}

/* The spawner thread. Its one wait below has no deadline on purpose: it is
 * the idle wait of a service thread, not a wait anybody is blocked on.
 * Proof that it ends: every request (f_spawn) and close() set the predicate
 * under st->lock and broadcast; f_close sets `stop` before joining, so the
 * join in f_close returns once the fork in hand (a kernel call) is done. */
static void *spawner_main(void *arg)
{
    struct fstate *st = arg;
    if (st->probe == 1)
        probe_pidns(st);
    pthread_mutex_lock(&st->lock);
    st->probe = 2;
    pthread_cond_broadcast(&st->cond);
    for (;;) {
        while (!st->req && !st->stop)
            pthread_cond_wait(&st->cond, &st->lock); /* idle wait: proof above */
        if (st->stop)
            break;
        struct request *r = st->req;
        st->req = r->next;
        r->taken = 1;
        pthread_mutex_unlock(&st->lock);
        r->pid = do_spawn(st, r);
        pthread_mutex_lock(&st->lock);
        r->done = 1;
        pthread_cond_broadcast(&st->cond);
    }
    pthread_mutex_unlock(&st->lock);
    return NULL;
}

static void late_cg_push(struct fstate *st, char *dir)
{
    if (st->n_late_cg == st->cap_late_cg) {
        size_t cap = st->cap_late_cg ? 2 * st->cap_late_cg : 8;
        char **p = realloc(st->late_cg, cap * sizeof *p);
        if (!p) {
            st->host->log("fork", "cgroup %s left behind (out of memory)", dir);
            free(dir);
            return;
        }
        st->late_cg = p;
        st->cap_late_cg = cap;
    }
    st->late_cg[st->n_late_cg++] = dir;
}

/* Reap abandoned children that have ended since, and remove cgroups that
 * have emptied. Never blocks (WNOHANG). */
static void reap_late(struct fstate *st)
{
    pthread_mutex_lock(&st->lock);
    for (size_t i = 0; i < st->n_late;) {
        siginfo_t si;
        memset(&si, 0, sizeof si);
        if (waitid((idtype_t)P_PIDFD, (id_t)st->late[i], &si, WEXITED | WNOHANG) == 0 &&
            si.si_pid != 0) {
            st->host->log("fork", "abandoned child %d ended late and was reaped", (int)si.si_pid);
            close(st->late[i]);
            st->late[i] = st->late[st->n_late - 1];
            __atomic_store_n(&st->n_late, st->n_late - 1, __ATOMIC_RELAXED);
        } else {
            i++;
        }
    }
    for (size_t i = 0; i < st->n_late_cg;) {
        cgroup_write(st->late_cg[i], "cgroup.kill", "1");
        if (rmdir(st->late_cg[i]) == 0 || errno == ENOENT) {
            free(st->late_cg[i]);
            st->late_cg[i] = st->late_cg[--st->n_late_cg];
        } else {
            i++;
        }
    }
    pthread_mutex_unlock(&st->lock);
}

/* ---- opening: options and the containment ----------------------------------------- */

/* The cgroup v2 directory this process is in, under the cgroup2 mount. */
static int cgroup_self_dir(char *out, size_t n, char *why, size_t wn)
{
    char mnt[4096] = "", line[4096];
    FILE *fp = fopen("/proc/self/mountinfo", "re");
    while (fp && fgets(line, sizeof line, fp)) {
        char *sep = strstr(line, " - cgroup2 ");
        char mp[4096];
        if (sep && sscanf(line, "%*s %*s %*s %*s %4095s", mp) == 1) {
            snprintf(mnt, sizeof mnt, "%.4000s", mp);
            break;
        }
    }
    if (fp)
        fclose(fp);
    if (!mnt[0]) {
        snprintf(why, wn, "no cgroup2 file system is mounted (/proc/self/mountinfo)");
        return -1;
    }
    char own[4096] = "";
    fp = fopen("/proc/self/cgroup", "re");
    while (fp && fgets(line, sizeof line, fp))
        if (!strncmp(line, "0::", 3)) {
            snprintf(own, sizeof own, "%s", line + 3);
            own[strcspn(own, "\n")] = '\0';
        }
    if (fp)
        fclose(fp);
    if (!own[0]) {
        snprintf(why, wn, "this process is in no cgroup v2 group (/proc/self/cgroup has no 0:: line)");
        return -1;
    }
    snprintf(out, n, "%s%s", mnt, strcmp(own, "/") ? own : "");
    return 0;
}

/* Remove the (empty) tether.PID.N directories of supervising processes
 * that died without closing (SIGKILL): their actors' cgroups were killed
 * by the actors' parent-death handlers. */
static void cgroup_remove_stale(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        int pid = 0;
        if (sscanf(e->d_name, "tether.%d.", &pid) != 1 || pid <= 0 ||
            (kill(pid, 0) == 0 || errno != ESRCH))
            continue;
        char base[8400];
        snprintf(base, sizeof base, "%.4000s/%.200s", dir, e->d_name);
        DIR *sub = opendir(base);
        struct dirent *a;
        while (sub && (a = readdir(sub))) {
            char leaf[8700];
            snprintf(leaf, sizeof leaf, "%s/%.200s", base, a->d_name);
            if (a->d_name[0] == 'a' && rmdir(leaf) && errno == EBUSY) {
                cgroup_write(leaf, "cgroup.kill", "1"); /* still populated: finish the job */
                rmdir(leaf);
            }
        }
        if (sub)
            closedir(sub);
        rmdir(base);
    }
    closedir(d);
}

/* Make the tether-owned cgroup directory, or say why not. */
static int probe_cgroup(struct fstate *st, char *why, size_t wn)
{
    char dir[8192];
    if (cgroup_self_dir(dir, sizeof dir, why, wn))
        return -1;
    cgroup_remove_stale(dir);
    static unsigned seq;
    char base[8400];
    snprintf(base, sizeof base, "%s/tether.%d.%u", dir, (int)getpid(),
             __atomic_fetch_add(&seq, 1, __ATOMIC_RELAXED));
    char probe[8500];
    snprintf(probe, sizeof probe, "%s/cgroup.procs", dir);
    if (access(probe, W_OK)) {
        snprintf(why, wn, "%.200s: %s (cannot move processes)", probe, strerror(errno));
        return -1;
    }
    if (mkdir(base, 0755)) {
        snprintf(why, wn, "mkdir %.200s: %s", base, strerror(errno));
        return -1;
    }
    snprintf(probe, sizeof probe, "%s/cgroup.kill", base);
    if (access(probe, W_OK)) {
        snprintf(why, wn, "%.200s: %s (cgroup.kill needs Linux 5.14)", probe, strerror(errno));
        rmdir(base);
        return -1;
    }
    st->cg_base = strdup(base);
    if (!st->cg_base) {
        rmdir(base);
        snprintf(why, wn, "out of memory");
        return -1;
    }
    return 0;
}

static const char *const contain_what[] = {
    "a PID namespace per actor: its init reaps orphans, its death kills every process inside",
    "a cgroup v2 group per actor, killed with cgroup.kill at teardown",
    "a subreaper keeper per actor: it collects every orphaned descendant and kills them all at "
    "teardown",
    "the process group only: a descendant that leaves it (setsid, setpgid) survives the teardown",
};

/* Decide the containment (st->contain on entry: the option). Returns 0, or
 * TETHER_ECONFIG naming the option for a mechanism asked for by name that
 * this machine does not offer. */
static int choose_containment(struct fstate *st, struct tether_error *err)
{
    enum contain want = st->contain;
    char why[4][300];
    memset(why, 0, sizeof why);
    if (st->probe_why[0])
        snprintf(why[CT_PIDNS], sizeof why[0], "%s", st->probe_why);
    int ok_pidns = !st->probe_why[0];
    if (want == CT_PIDNS && !ok_pidns)
        return set_error(err, TETHER_ECONFIG, "option containment: pidns is not available here: %s",
                         why[CT_PIDNS]);
    if (want == CT_CGROUP || (want == CT_AUTO && !ok_pidns)) {
        if (probe_cgroup(st, why[CT_CGROUP], sizeof why[0])) {
            if (want == CT_CGROUP)
                return set_error(err, TETHER_ECONFIG,
                                 "option containment: cgroup is not available here: %s",
                                 why[CT_CGROUP]);
        }
    }
    if (want != CT_AUTO) {
        st->contain = want;
        snprintf(st->detail, sizeof st->detail, "containment: %s (as configured): %s",
                 contain_names[want], contain_what[want]);
    } else {
        st->contain = ok_pidns ? CT_PIDNS : st->cg_base ? CT_CGROUP : CT_SUBREAPER;
        int used = snprintf(st->detail, sizeof st->detail, "containment: %s (auto): %s",
                            contain_names[st->contain], contain_what[st->contain]);
        for (int m = CT_PIDNS; m < (int)st->contain; m++) {
            st->host->log("fork", "containment auto: %s not available (%s); trying the next",
                          contain_names[m], why[m]);
            if (used >= 0 && (size_t)used < sizeof st->detail)
                used += snprintf(st->detail + used, sizeof st->detail - (size_t)used,
                                 "; not %s: %s", contain_names[m], why[m]);
        }
    }
    if (st->contain == CT_GROUP)
        st->host->log("fork", "warning: containment group: %s", contain_what[CT_GROUP]);
    if (st->contain != CT_PIDNS && st->own_ns_fd >= 0) {
        close(st->own_ns_fd);
        st->own_ns_fd = -1;
    }
    if (st->contain != CT_CGROUP && st->cg_base) {
        rmdir(st->cg_base);
        free(st->cg_base);
        st->cg_base = NULL;
    }
    return 0;
}

static void free_state(struct fstate *st)
{
    if (st->own_ns_fd >= 0)
        close(st->own_ns_fd);
    if (st->self_pidfd >= 0)
        close(st->self_pidfd);
    if (st->cg_base) {
        rmdir(st->cg_base);
        free(st->cg_base);
    }
    free(st->helper);
    free(st);
}

static void stop_spawner(struct fstate *st)
{
    pthread_mutex_lock(&st->lock);
    st->stop = 1;
    pthread_cond_broadcast(&st->cond);
    pthread_mutex_unlock(&st->lock);
    /* Bounded: the spawner finishes the fork in hand (if any) and exits. */
    pthread_join(st->spawner, NULL);
}

/* ---- the vtable ---------------------------------------------------------------------- */

static int f_open(const struct tether_backend_host *host, const struct tether_options *opts,
                  void **state, struct tether_error *err)
{
    enum mode mode = MODE_FORK;
    enum contain contain = CT_AUTO;
    const char *helper = NULL;
    for (size_t i = 0; i < opts->count; i++) {
        const char *k = opts->items[i].key, *v = opts->items[i].value;
        if (!strcmp(k, "mode") && !strcmp(v, "fork"))
            mode = MODE_FORK;
        else if (!strcmp(k, "mode") && !strcmp(v, "exec"))
            mode = MODE_EXEC;
        else if (!strcmp(k, "mode"))
            return set_error(err, TETHER_ECONFIG, "option mode: '%s' is not 'fork' or 'exec'", v);
        else if (!strcmp(k, "helper"))
            helper = v;
        else if (!strcmp(k, "containment")) {
            int found = -1;
            for (int m = 0; m <= CT_AUTO; m++)
                if (!strcmp(v, contain_names[m]))
                    found = m;
            if (found < 0)
                return set_error(err, TETHER_ECONFIG,
                                 "option containment: '%s' is not auto, pidns, cgroup, subreaper "
                                 "or group",
                                 v);
            contain = (enum contain)found;
        } else
            return set_error(err, TETHER_ECONFIG,
                             "unknown option '%s' (the fork backend takes mode, helper, containment)",
                             k);
    }
    struct fstate *st = calloc(1, sizeof *st);
    if (!st)
        return set_error(err, TETHER_ENOMEM, "out of memory");
    st->host = host;
    st->mode = mode;
    st->contain = contain;
    st->own_ns_fd = -1;
    st->self_pid = getpid();
    st->self_pidfd = (int)syscall(SYS_pidfd_open, st->self_pid, 0); /* close-on-exec */
    if (st->self_pidfd < 0) {
        int e = errno;
        free_state(st);
        return set_error(err, TETHER_ESYS, "pidfd_open of this process: %s", strerror(e));
    }
    if (mode == MODE_EXEC) {
        if (!helper)
            helper = getenv("TETHER_ACTOR_HELPER");
        if (!helper) {
            free_state(st);
            return set_error(err, TETHER_ECONFIG, "mode exec needs option helper: PATH of tether-actor");
        }
        char buf[4096];
        if (helper[0] != '/' && opts->config_dir)
            snprintf(buf, sizeof buf, "%s/%s", opts->config_dir, helper);
        else
            snprintf(buf, sizeof buf, "%s", helper);
        if (access(buf, X_OK) != 0) {
            int e = errno;
            free_state(st);
            return set_error(err, TETHER_ECONFIG, "exec helper %s: %s", buf, strerror(e));
        }
        st->helper = strdup(buf);
    }
    pthread_mutex_init(&st->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&st->cond, &ca);
    pthread_condattr_destroy(&ca);
    st->probe = (contain == CT_AUTO || contain == CT_PIDNS) ? 1 : 0;
    int rc = pthread_create(&st->spawner, NULL, spawner_main, st);
    if (rc) {
        free_state(st);
        return set_error(err, TETHER_ESYS, "cannot start the spawner thread: %s", strerror(rc));
    }
    /* the spawner's probe is two system calls: waited for with a deadline
     * all the same */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += 5;
    pthread_mutex_lock(&st->lock);
    while (st->probe != 2)
        if (pthread_cond_timedwait(&st->cond, &st->lock, &ts) == ETIMEDOUT)
            break;
    int probed = st->probe == 2;
    pthread_mutex_unlock(&st->lock);
    rc = probed ? choose_containment(st, err)
                : set_error(err, TETHER_ESYS, "the spawner thread did not start within 5 s");
    if (rc) {
        stop_spawner(st);
        pthread_cond_destroy(&st->cond);
        pthread_mutex_destroy(&st->lock);
        free_state(st);
        return rc;
    }
    *state = st;
    return 0;
}

static void f_close(void *state)
{
    struct fstate *st = state;
    stop_spawner(st);
    reap_late(st);
    for (size_t i = 0; i < st->n_late; i++)
        close(st->late[i]); /* still running: left to the host (or init) */
    for (size_t i = 0; i < st->n_late_cg; i++) {
        st->host->log("fork", "cgroup %s not empty at close: left behind", st->late_cg[i]);
        free(st->late_cg[i]);
    }
    free(st->late_cg);
    free(st->late);
    pthread_cond_destroy(&st->cond);
    pthread_mutex_destroy(&st->lock);
    free_state(st);
}

static const char *f_detail(void *state)
{
    return ((struct fstate *)state)->detail;
}

/* Kill what is left of a spawn that failed after the fork. */
static void undo_spawn(struct fstate *st, struct request *r, const char *cg)
{
    if (r->pid > 0) {
        kill(-r->pid, SIGKILL);
        kill(r->pid, SIGKILL);
        reap_killed(r->pid);
    }
    if (r->keeper > 0) {
        kill(r->keeper, SIGKILL);
        reap_killed(r->keeper);
    }
    if (r->keeper_rd >= 0)
        close(r->keeper_rd);
    if (cg) {
        cgroup_write(cg, "cgroup.kill", "1");
        if (rmdir(cg) && errno != ENOENT) {
            char *d = strdup(cg);
            if (d) {
                pthread_mutex_lock(&st->lock);
                late_cg_push(st, d);
                pthread_mutex_unlock(&st->lock);
            }
        }
    }
}

static int f_spawn(void *state, const struct tether_spawn_spec *spec, struct tether_child **out,
                   struct tether_error *err)
{
    struct fstate *st = state;
    struct request r = {.spec = spec, .pid = -1, .cg_fd = -1, .keeper_rd = -1};
    if (__atomic_load_n(&st->n_late, __ATOMIC_RELAXED) || st->n_late_cg) /* hints; reap_late locks */
        reap_late(st);
    char cg[8600], procs[8700];
    int have_cg = 0;
    if (st->contain == CT_CGROUP) {
        snprintf(cg, sizeof cg, "%s/a%llu", st->cg_base, (unsigned long long)spec->actor_id);
        snprintf(procs, sizeof procs, "%s/cgroup.procs", cg);
        if (mkdir(cg, 0755) && errno != EEXIST) {
            int e = errno;
            close(spec->channel_fd);
            return set_error(err, TETHER_ESPAWN, "containment cgroup: mkdir %s: %s", cg, strerror(e));
        }
        have_cg = 1;
        r.cg_procs = procs;
        if (st->mode == MODE_FORK && (r.cg_fd = open(procs, O_WRONLY | O_CLOEXEC)) < 0) {
            int e = errno;
            rmdir(cg);
            close(spec->channel_fd);
            return set_error(err, TETHER_ESPAWN, "containment cgroup: %s: %s", procs, strerror(e));
        }
    }
    pthread_mutex_lock(&st->lock);
    struct request **tail = &st->req;
    while (*tail)
        tail = &(*tail)->next;
    *tail = &r;
    pthread_cond_broadcast(&st->cond);
    /* Bounded by the spawn deadline while the request waits its turn; once
     * the spawner has taken it, only the fork (or vfork + exec) in hand
     * remains, a kernel call that completes by itself, and `r` lives on
     * this stack until then. */
    struct timespec ts = {(time_t)(spec->spawn_deadline_ns / 1000000000),
                          (long)(spec->spawn_deadline_ns % 1000000000)};
    while (!r.done) {
        int rc = pthread_cond_timedwait(&st->cond, &st->lock, &ts);
        if (rc == ETIMEDOUT && !r.taken) { /* never started: withdraw it */
            for (struct request **p = &st->req; *p; p = &(*p)->next)
                if (*p == &r) {
                    *p = r.next;
                    break;
                }
            break;
        }
        if (rc == ETIMEDOUT) {
            int64_t later = mono_ns() + 1000000;
            ts.tv_sec = (time_t)(later / 1000000000);
            ts.tv_nsec = (long)(later % 1000000000);
        }
    }
    pthread_mutex_unlock(&st->lock);
    close(spec->channel_fd); /* the child has its copy */
    if (r.cg_fd >= 0)
        close(r.cg_fd);
    if (!r.done || r.pid < 0) {
        if (have_cg)
            rmdir(cg);
        if (!r.done)
            return set_error(err, TETHER_ESPAWN, "fork: the spawner did not answer in time");
        if (r.what == st->helper && st->helper)
            return set_error(err, TETHER_ESPAWN, "cannot start %s: %s", st->helper, strerror(r.err));
        if (!r.what || !strcmp(r.what, "fork"))
            return set_error(err, TETHER_ESPAWN, "fork: %s", strerror(r.err));
        return set_error(err, TETHER_ESPAWN, "containment %s: %s: %s", contain_names[st->contain],
                         r.what, strerror(r.err));
    }
    /* pidfd of our direct child: the actor, or (subreaper) its keeper */
    int pidfd = (int)syscall(SYS_pidfd_open, r.pid, 0);
    if (pidfd < 0) {
        int e = errno;
        undo_spawn(st, &r, have_cg ? cg : NULL);
        return set_error(err, TETHER_ESPAWN, "pidfd_open: %s", strerror(e));
    }
    struct fchild *c = calloc(1, sizeof *c);
    if (!c) {
        close(pidfd);
        undo_spawn(st, &r, have_cg ? cg : NULL);
        return set_error(err, TETHER_ENOMEM, "out of memory");
    }
    c->st = st;
    c->pid = r.pid;
    c->keeper_fd = -1;
    c->actor_fd = -1;
    c->report_fd = -1;
    c->pub.exit_fd = pidfd;
    if (r.keeper_rd >= 0) {
        /* a keeper (pidns init, subreaper) reports the actor's pid first
         * (at once, after a fork) */
        int32_t v = 0;
        struct pollfd p = {.fd = r.keeper_rd, .events = POLLIN};
        int64_t left = spec->spawn_deadline_ns - mono_ns();
        int got = 0;
        if (poll(&p, 1, left > 0 ? (int)(left / 1000000) + 1 : 0) > 0) /* bounded: spawn deadline */
            got = (int)read(r.keeper_rd, &v, sizeof v) == (int)sizeof v;
        if (!got || v <= 0) {
            int e = got ? -v : ETIMEDOUT;
            free(c);
            close(pidfd);
            undo_spawn(st, &r, NULL);
            return set_error(err, TETHER_ESPAWN, "containment %s: the %s %s: %s",
                             contain_names[st->contain],
                             st->contain == CT_PIDNS ? "namespace init" : "keeper",
                             got ? "could not start the actor" : "did not report the actor",
                             strerror(e));
        }
        c->keeper = r.pid;
        c->keeper_fd = pidfd;
        c->pid = (pid_t)v;
        c->report_fd = r.keeper_rd;
        /* the actor, for signals that never hit a recycled pid */
        c->actor_fd = (int)syscall(SYS_pidfd_open, c->pid, 0);
        /* pidns: the report (the actor's status, or end of file when the
         * init is gone) says the actor ended; subreaper: the keeper's end */
        c->pub.exit_fd = st->contain == CT_PIDNS ? r.keeper_rd : pidfd;
    }
    if (have_cg)
        c->cg = strdup(cg);
    c->pub.pid = c->pid;
    *out = &c->pub;
    return 0;
}

static int f_soft_cancel(struct tether_child *child)
{
    /* The core's CANCEL message is the request; a signal would kill an
     * actor that is about to stop by itself. */
    (void)child;
    return 0;
}

/* Count what the containment holds besides the actor, once (before the
 * kill that ends it). Reads /proc or the cgroup: no wait. */
static void count_descendants(struct fchild *c)
{
    if (c->counted)
        return;
    int n = -1;
    switch (c->st->contain) {
    case CT_PIDNS: /* everything under the init but the actor */
        n = c->keeper > 0 ? count_tree(c->keeper) : -1;
        if (n > 0 && c->actor_fd >= 0) {
            struct pollfd p = {.fd = c->actor_fd, .events = POLLIN};
            if (poll(&p, 1, 0) == 0) /* still running (or not yet reaped by the init) */
                n--;
        }
        break;
    case CT_CGROUP: n = c->cg ? cgroup_count(c->cg, c->pid) : -1; break;
    default: return; /* subreaper: the keeper reports; group: unknown */
    }
    c->counted = 1;
    c->descendants = n > 0 ? n : 0;
}

static int f_hard_kill(struct tether_child *child)
{
    struct fchild *c = (struct fchild *)child;
    if (c->reaped || c->a_reaped)
        return 0; /* ended (the rest of its containment is being swept) */
    c->killed = 1;
    int actor_fd = c->actor_fd >= 0 ? c->actor_fd : c->pub.exit_fd;
    switch (c->st->contain) {
    case CT_PIDNS:
        count_descendants(c);
        if (c->keeper_fd >= 0) /* the init: the kernel kills the whole namespace */
            pidfd_signal(c->keeper_fd, SIGKILL);
        break;
    case CT_CGROUP:
        count_descendants(c);
        if (c->cg)
            cgroup_write(c->cg, "cgroup.kill", "1");
        break;
    case CT_SUBREAPER:
        /* the keeper kills the actor too, sweeps, and ends as the actor did */
        if (c->keeper_fd >= 0)
            pidfd_signal(c->keeper_fd, SIGTERM);
        break;
    default: break;
    }
    /* the group first (grandchildren), then the actor through its pidfd,
     * which cannot hit a recycled pid */
    kill(-c->pid, SIGKILL);
    if (actor_fd >= 0)
        pidfd_signal(actor_fd, SIGKILL);
    return 0;
}

static int f_abort_channels(struct tether_child *child)
{
    /* The parent keeps no end of the child's channel (closed at spawn); the
     * core shuts its own. */
    (void)child;
    return 0;
}

static const char *signame(int sig)
{
    const char *s = sigabbrev_np(sig);
    return s ? s : "?";
}

/* The actor has ended (exit_fd readable). Kill whatever its containment
 * still holds, once; collect our child (the actor, or its keeper), and
 * return 1 when the containment is empty, 0 while it is still emptying
 * (reap is asked again). */
static int sweep_containment(struct fchild *c)
{
    struct fstate *st = c->st;
    if (!c->swept) {
        if (st->contain == CT_PIDNS && c->report_fd >= 0) {
            int32_t v;
            if (read(c->report_fd, &v, sizeof v) == (ssize_t)sizeof v) {
                c->status = v;
                c->have_status = 1;
            }
        }
        if (!c->a_reaped) /* still a zombie: its pid and group id are not reused yet */
            kill(-c->pid, SIGKILL); /* whatever is left of its group */
        if (st->contain == CT_PIDNS || st->contain == CT_CGROUP)
            count_descendants(c);
        if (st->contain == CT_PIDNS && c->keeper_fd >= 0)
            pidfd_signal(c->keeper_fd, SIGKILL);
        if (st->contain == CT_CGROUP && c->cg)
            cgroup_write(c->cg, "cgroup.kill", "1");
        c->swept = 1;
    }
    /* our child: the actor, or its keeper (pidns init, subreaper keeper) */
    int child_fd = c->keeper_fd >= 0 ? c->keeper_fd : c->pub.exit_fd;
    if (!c->a_reaped) {
        if (st->contain == CT_PIDNS) {
            /* the init ends once every process inside has: give it a moment */
            struct pollfd p = {.fd = child_fd, .events = POLLIN};
            if (poll(&p, 1, 1) <= 0) /* bounded: 1 ms, then reap is asked again */
                return 0;
        }
        memset(&c->si, 0, sizeof c->si);
        if (waitid((idtype_t)P_PIDFD, (id_t)child_fd, &c->si, WEXITED | WNOHANG) != 0 ||
            c->si.si_pid == 0)
            return 0;
        c->a_reaped = 1;
    }
    if (st->contain == CT_CGROUP && c->cg && cgroup_populated(c->cg))
        return 0;
    return 1;
}

static int f_reap(struct tether_child *child, int64_t deadline_ns, struct tether_outcome *out)
{
    struct fchild *c = (struct fchild *)child;
    struct fstate *st = c->st;
    if (__atomic_load_n(&st->n_late, __ATOMIC_RELAXED)) /* a hint; reap_late locks */
        reap_late(st);
    int64_t left = deadline_ns - mono_ns();
    struct pollfd p = {.fd = c->pub.exit_fd, .events = POLLIN};
    if (!c->swept && poll(&p, 1, left > 0 ? (int)((left + 999999) / 1000000) : 0) <= 0)
        return TETHER_ETIMEDOUT; /* bounded by the deadline */
    if (!sweep_containment(c))
        return TETHER_ETIMEDOUT;
    c->reaped = 1;
    if (st->contain == CT_SUBREAPER && c->report_fd >= 0) {
        /* the keeper's count, written before it ended */
        int32_t n = 0;
        if (read(c->report_fd, &n, sizeof n) == (ssize_t)sizeof n && n > 0) {
            c->descendants = n;
            c->counted = 1;
        }
    }
    if (c->cg && rmdir(c->cg) && errno != ENOENT) {
        pthread_mutex_lock(&st->lock);
        late_cg_push(st, c->cg);
        pthread_mutex_unlock(&st->lock);
        c->cg = NULL;
    }
    /* how the actor ended: its own status (pidns: as its init reported
     * it), else that of the process we collected */
    int exited, code, sig, dumped;
    if (c->have_status) {
        exited = WIFEXITED(c->status);
        code = exited ? WEXITSTATUS(c->status) : 0;
        sig = exited ? 0 : WTERMSIG(c->status);
        dumped = !exited && WCOREDUMP(c->status);
    } else {
        exited = c->si.si_code == CLD_EXITED;
        code = exited ? c->si.si_status : 0;
        sig = exited ? 0 : c->si.si_status;
        dumped = c->si.si_code == CLD_DUMPED;
    }
    memset(out, 0, sizeof *out);
    char *msg = c->msg;
    int used = 0;
    if (exited) {
        out->kind = TETHER_OUTCOME_EXITED;
        out->code = code;
        /* no text unless there is something to add (the core appends it to
         * the actor's own word) */
        if (c->descendants)
            used = snprintf(msg, sizeof c->msg, "exited with status %d", code);
    } else {
        out->kind = TETHER_OUTCOME_KILLED;
        out->signal = sig;
        used = snprintf(msg, sizeof c->msg, "killed by signal %d (SIG%s)%s", sig, signame(sig),
                        dumped ? ", core dumped" : "");
    }
    if (c->descendants && used >= 0 && (size_t)used < sizeof c->msg)
        snprintf(msg + used, sizeof c->msg - (size_t)used, "; %d descendant%s killed (%s)",
                 c->descendants, c->descendants == 1 ? "" : "s", contain_names[st->contain]);
    out->message = used ? msg : NULL;
    return 0;
}

static void keep_late(struct fstate *st, int fd)
{
    pthread_mutex_lock(&st->lock);
    if (st->n_late == st->cap_late) {
        size_t cap = st->cap_late ? 2 * st->cap_late : 16;
        int *p = realloc(st->late, cap * sizeof *p);
        if (p) {
            st->late = p;
            st->cap_late = cap;
        }
    }
    if (st->n_late < st->cap_late) {
        st->late[st->n_late] = fd;
        __atomic_store_n(&st->n_late, st->n_late + 1, __ATOMIC_RELAXED);
    } else {
        close(fd);
    }
    pthread_mutex_unlock(&st->lock);
}

static void f_release(struct tether_child *child)
{
    struct fchild *c = (struct fchild *)child;
    struct fstate *st = c->st;
    int child_fd = c->keeper_fd >= 0 ? c->keeper_fd : c->pub.exit_fd;
    if (!c->a_reaped) {
        /* Abandoned (a process that SIGKILL did not end in time: stuck in
         * the kernel, or a machine too busy to run its exit). Kill again
         * and keep our child's pidfd, so that it is reaped once it ends. */
        kill(-c->pid, SIGKILL);
        if (c->actor_fd >= 0)
            pidfd_signal(c->actor_fd, SIGKILL);
        if (c->cg)
            cgroup_write(c->cg, "cgroup.kill", "1");
        /* a subreaper keeper sweeps on SIGTERM; anything else dies now */
        pidfd_signal(child_fd, st->contain == CT_SUBREAPER ? SIGTERM : SIGKILL);
        keep_late(st, child_fd);
        if (child_fd == c->keeper_fd)
            c->keeper_fd = -1;
        if (child_fd == c->pub.exit_fd) /* subreaper: the same fd */
            c->pub.exit_fd = -1;
    }
    if (c->cg && !c->a_reaped) {
        pthread_mutex_lock(&st->lock);
        late_cg_push(st, c->cg);
        pthread_mutex_unlock(&st->lock);
        c->cg = NULL;
    }
    if (c->pub.exit_fd >= 0 && c->pub.exit_fd != c->keeper_fd && c->pub.exit_fd != c->report_fd)
        close(c->pub.exit_fd);
    if (c->keeper_fd >= 0)
        close(c->keeper_fd);
    if (c->report_fd >= 0)
        close(c->report_fd);
    if (c->actor_fd >= 0)
        close(c->actor_fd);
    free(c->cg);
    free(c);
}

static const struct tether_backend fork_backend = {
    .abi = TETHER_BACKEND_ABI,
    .size = sizeof(struct tether_backend),
    .name = "fork",
    .language = "c",
    .caps = TETHER_CAP_OUT_OF_PROCESS | TETHER_CAP_SURVIVES_CRASH | TETHER_CAP_CAN_KILL |
            TETHER_CAP_NESTED,
    .open = f_open,
    .close = f_close,
    .spawn = f_spawn,
    .soft_cancel = f_soft_cancel,
    .hard_kill = f_hard_kill,
    .abort_channels = f_abort_channels,
    .reap = f_reap,
    .release = f_release,
    .note = "containment (option containment: auto | pidns | cgroup | subreaper | group) "
            "kills every process an actor started; `tether config explain` says which is in force",
    .detail = f_detail,
};

TETHER_BACKEND_DEFINE(fork_backend)
