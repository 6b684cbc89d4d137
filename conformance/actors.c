/* conformance/actors.c - the C scenario actors of the conformance
 * suite (conformance_actors.so). Each function behaves as SCENARIOS.md
 * describes; the Python actors (actors.py) behave the same. */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <tether/actor.h>
#include <tether/tether.h>

extern char **environ;

/* ---- callable functions ---------------------------------------------------- */

static int32_t ping(void)
{
    return 1;
}

/* Blocks 10 s in nanosleep: no checkpoint (cancel.in-flight-call). */
static int32_t block10(void)
{
    struct timespec ts = {10, 0};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return 0;
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Spins `secs` seconds without a system call or cancellation point
 * (clock_gettime is served by the vDSO), then replies (orphan.late-reply). */
static int32_t late(double secs)
{
    double end = mono() + secs;
    while (mono() < end)
        ;
    return 2;
}

const struct tether_function tether_functions[] = {
    {"ping", ":i", TETHER_FN(ping)},
    {"block10", ":i", TETHER_FN(block10)},
    {"late", "d:i", TETHER_FN(late)},
    {NULL, NULL, NULL},
};

/* ---- helpers ---------------------------------------------------------------- */

static void timed_wait_forever(void)
{
    for (;;) {
        struct timespec ts = {1, 0};
        nanosleep(&ts, NULL);
    }
}

static int wait_for_cancel(tether_actor *self)
{
    while (tether_sleep(self, 3600) == 0)
        ;
    return TETHER_ECANCELLED;
}

/* posix_spawn a program; returns its pid or -1. */
static pid_t start(char *const argv[], int out_fd)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (out_fd >= 0)
        posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    return rc == 0 ? pid : -1;
}

/* ---- CANCEL ------------------------------------------------------------------- */

int cooperative(tether_actor *self);
int cooperative(tether_actor *self)
{
    for (;;) {
        int rc = tether_checkpoint(self);
        if (!rc)
            rc = tether_sleep(self, 0.010);
        if (rc)
            return rc;
    }
}

int idle_serving(tether_actor *self);
int idle_serving(tether_actor *self)
{
    return tether_serve(self);
}

int idle(tether_actor *self);
int idle(tether_actor *self)
{
    return wait_for_cancel(self);
}

int timed_waits(tether_actor *self);
int timed_waits(tether_actor *self)
{
    (void)self;
    timed_wait_forever();
    return 0;
}

/* A relaxed atomic: several busy actors spin at once (a plain shared counter
 * is a data race, which the TSan build reports), and not _Thread_local: the
 * thread-local storage of a dlopen'ed module crashed LeakSanitizer's exit-time tracer
 * when the thread spinning on it is abandoned (gcc 12 libasan). */
static _Atomic uint64_t spin_sink;

int busy_loop(tether_actor *self);
int busy_loop(tether_actor *self)
{
    (void)self;
    for (;;)
        atomic_fetch_add_explicit(&spin_sink, 1, memory_order_relaxed);
    return 0;
}

static void close_pipe(void *arg)
{
    int *p = arg;
    close(p[0]);
    close(p[1]);
}

int blocked_syscall(tether_actor *self);
int blocked_syscall(tether_actor *self)
{
    (void)self;
    static __thread int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return 1;
    char c;
    ssize_t r;
    /* on a thread, a hard kill unwinds through here: close the pipe then */
    pthread_cleanup_push(close_pipe, p);
    r = read(p[0], &c, 1); /* nobody writes */
    pthread_cleanup_pop(1);
    return (int)r;
}

int ignores_signals(tether_actor *self);
int ignores_signals(tether_actor *self)
{
    (void)self;
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    timed_wait_forever();
    return 0;
}

/* Returns after a random 0-2 ms (cancel.race-with-exit). */
int race_exit(tether_actor *self);
int race_exit(tether_actor *self)
{
    (void)self;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    unsigned seed = (unsigned)now.tv_nsec ^ (unsigned)getpid();
    struct timespec ts = {0, (long)(rand_r(&seed) % 2000001)};
    nanosleep(&ts, NULL);
    return 0;
}

/* A node of cancel.tree: opens its own supervisor (same config, from
 * TETHER_CONFIG) and spawns two children one level down; tells its parent
 * when its whole subtree is ready; on cancel closes its supervisor. */
static int tree(tether_actor *self, const char *child)
{
    struct tether_config *cfg = NULL;
    tether_supervisor *sup = NULL;
    tether_handle *kids[2] = {NULL, NULL};
    struct tether_error err;
    int rc = 0;
    if (child) {
        if (tether_config_load(NULL, &cfg, &err) || tether_supervisor_open(cfg, NULL, &sup, &err))
            return tether_fail(self, "tree: %s", err.msg);
        char target[4096];
        snprintf(target, sizeof target, "%s:%s", getenv("TETHER_CONFORMANCE_ACTORS"), child);
        for (int i = 0; i < 2; i++)
            if (tether_spawn(sup, target, 0, &kids[i], &err)) {
                rc = tether_fail(self, "tree: %s", err.msg);
                goto out;
            }
        /* each child reports its subtree ready */
        for (int i = 0; i < 2; i++) {
            void *buf;
            size_t len;
            if (tether_recv(kids[i], &buf, &len, tether_now_ns() + 20 * TETHER_NS_PER_SEC)) {
                rc = tether_fail(self, "tree: a child did not report ready");
                goto out;
            }
            free(buf);
        }
    }
    tether_send_msg(self, "up", 2);
    rc = wait_for_cancel(self);
out:
    for (int i = 0; i < 2; i++)
        tether_handle_release(kids[i]);
    if (sup)
        tether_supervisor_close(sup, NULL);
    tether_config_free(cfg);
    return rc;
}

int tree1(tether_actor *self);
int tree2(tether_actor *self);
int tree3(tether_actor *self);
int tree1(tether_actor *self)
{
    return tree(self, NULL);
}
int tree2(tether_actor *self)
{
    return tree(self, "tree1");
}
int tree3(tether_actor *self)
{
    return tree(self, "tree2");
}

/* cancel.sigint-after-abandon: abandons 16 actors of its own, then idles
 * cooperatively until cancelled. */
int abandon16(tether_actor *self);
int abandon16(tether_actor *self)
{
    struct tether_config *cfg = NULL;
    tether_supervisor *sup = NULL;
    struct tether_error err;
    tether_handle *h[16] = {NULL};
    if (tether_config_load(NULL, &cfg, &err) || tether_supervisor_open(cfg, NULL, &sup, &err))
        return tether_fail(self, "abandon16: %s", err.msg);
    char target[4096];
    for (int i = 0; i < 16; i++) {
        snprintf(target, sizeof target, "%s:%s", getenv("TETHER_CONFORMANCE_ACTORS"),
                 i % 2 ? "busy_loop" : "blocked_syscall");
        tether_spawn(sup, target, 0, &h[i], &err);
    }
    for (int i = 0; i < 16; i++)
        if (h[i])
            tether_cancel(h[i]);
    for (int i = 0; i < 16; i++) {
        struct tether_outcome o;
        if (h[i])
            tether_wait(h[i], tether_now_ns() + 30 * TETHER_NS_PER_SEC, &o);
    }
    tether_send_msg(self, "abandoned", 9);
    /* and on stdout: under `tether run` (cancel.sigint-after-abandon) the
     * suite reads it from the CLI's stdout to know when to send SIGINT */
    ssize_t w = write(1, "abandoned\n", 10);
    (void)w;
    int rc = wait_for_cancel(self);
    for (int i = 0; i < 16; i++)
        tether_handle_release(h[i]);
    tether_supervisor_close(sup, NULL);
    tether_config_free(cfg);
    return rc;
}

/* ---- ORPHAN -------------------------------------------------------------------- */

int vanish(tether_actor *self);
int vanish(tether_actor *self)
{
    shutdown(tether_actor_fd(self), SHUT_RDWR);
    return 0;
}

int crash(tether_actor *self);
int crash(tether_actor *self)
{
    tether_sleep(self, 0.050);
    abort();
}

/* The pid of our child `local` as /proc (the supervisor) names it: they
 * differ when the actor has a PID namespace of its own. Our children
 * lists hold /proc's numbers; NSpid's last field is ours. */
static pid_t visible_pid(pid_t local)
{
    char buf[4096];
    int fd = open("/proc/thread-self/children", O_RDONLY | O_CLOEXEC);
    ssize_t got = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0)
        close(fd);
    buf[got > 0 ? got : 0] = '\0';
    for (char *s = buf, *end; *s; s = end) {
        long kid = strtol(s, &end, 10);
        if (end == s)
            break;
        char st[64], line[256];
        snprintf(st, sizeof st, "/proc/%ld/status", kid);
        FILE *fp = fopen(st, "re");
        while (fp && fgets(line, sizeof line, fp))
            if (!strncmp(line, "NSpid:", 6)) {
                char *last = strrchr(line, '\t');
                if (last && atoi(last + 1) == (int)local) {
                    fclose(fp);
                    return (pid_t)kid;
                }
            }
        if (fp)
            fclose(fp);
    }
    return local;
}

static pid_t grandchild_pid;
static void kill_grandchild(void *arg)
{
    (void)arg;
    if (grandchild_pid > 0) {
        kill(grandchild_pid, SIGKILL);
        waitpid(grandchild_pid, NULL, 0); /* SIGKILLed: returns at once */
    }
}

/* Starts `sleep 1000` and never checkpoints. In a process, the process
 * group kill takes the grandchild; on a thread, this cleanup handler does
 * (it runs when the thread is cancelled). */
int grandchild(tether_actor *self);
int grandchild(tether_actor *self)
{
    char *argv[] = {"/bin/sleep", "1000", NULL};
    grandchild_pid = start(argv, -1);
    char msg[32];
    int n = snprintf(msg, sizeof msg, "%d", (int)visible_pid(grandchild_pid));
    tether_send_msg(self, msg, (size_t)n);
    pthread_cleanup_push(kill_grandchild, NULL);
    timed_wait_forever();
    pthread_cleanup_pop(1);
    return 0;
}

/* orphan.parent-dies: a grandchild too, then idle. */
int parent_dies_idle(tether_actor *self);
int parent_dies_idle(tether_actor *self)
{
    char *argv[] = {"/bin/sleep", "1000", NULL};
    pid_t pid = start(argv, -1);
    char msg[32];
    int n = snprintf(msg, sizeof msg, "%d", (int)pid);
    tether_send_msg(self, msg, (size_t)n);
    return wait_for_cancel(self);
}

/* orphan.late-reply: serves calls (late() spins past the teardown); once
 * its serve loop ends it still sends messages. */
int late_actor(tether_actor *self);
int late_actor(tether_actor *self)
{
    int rc = tether_serve(self);
    for (int i = 0; i < 3; i++)
        tether_send_msg(self, "late", 4);
    return rc;
}

static void list_fds(const char *dirpath, int skip_a, int skip_b, char *out, size_t n)
{
    out[0] = '\0';
    DIR *d = opendir(dirpath);
    if (!d) {
        snprintf(out, n, "cannot list %s", dirpath);
        return;
    }
    size_t used = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        int fd = atoi(e->d_name);
        if (fd <= 2 || fd == skip_a || fd == skip_b || fd == dirfd(d))
            continue;
        int w = snprintf(out + used, n - used, "%s%d", used ? "," : "", fd);
        if (w < 0 || (size_t)w >= n - used)
            break;
        used += (size_t)w;
    }
    closedir(d);
}

/* orphan.fd-hygiene: reports the fds beyond stdio and its channel, its own
 * (when it is a process of its own) and a grandchild's. */
int fd_report(tether_actor *self);
int fd_report(tether_actor *self)
{
    char msg[4200], extra[4096];
    const char *in_process = getenv("TETHER_CONFORMANCE_IN_PROCESS");
    if (in_process && *in_process == '1') {
        snprintf(msg, sizeof msg, "self:in-process");
    } else {
        list_fds("/proc/self/fd", tether_actor_fd(self), -1, extra, sizeof extra);
        snprintf(msg, sizeof msg, "self:%s", extra);
    }
    tether_send_msg(self, msg, strlen(msg));
    /* the grandchild lists its own fds (ls holds one for the listing) */
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return 1;
    char *argv[] = {"/bin/ls", "-1", "/proc/self/fd", NULL};
    pid_t pid = start(argv, p[1]);
    close(p[1]);
    char buf[4096];
    size_t got = 0;
    ssize_t r;
    while (got < sizeof buf - 1 && (r = read(p[0], buf + got, sizeof buf - 1 - got)) > 0)
        got += (size_t)r;
    buf[got] = '\0';
    close(p[0]);
    if (pid > 0)
        waitpid(pid, NULL, 0); /* ls exits by itself once it has listed */
    size_t used = 0;
    extra[0] = '\0';
    for (char *tok = strtok(buf, "\n"); tok; tok = strtok(NULL, "\n")) {
        int fd = atoi(tok);
        if (fd <= 3)
            continue;
        used += (size_t)snprintf(extra + used, sizeof extra - used, "%s%d", used ? "," : "", fd);
    }
    snprintf(msg, sizeof msg, "grandchild:%s", extra);
    tether_send_msg(self, msg, strlen(msg));
    return wait_for_cancel(self);
}

/* orphan.stdout-flood: 1 MiB to a stdout nobody drains, then timed waits. */
int stdout_flood(tether_actor *self);
int stdout_flood(tether_actor *self)
{
    (void)self;
    static char chunk[65536];
    memset(chunk, 'x', sizeof chunk);
    for (int i = 0; i < 16; i++) {
        ssize_t w = write(1, chunk, sizeof chunk);
        (void)w;
    }
    timed_wait_forever();
    return 0;
}

/* ---- ERRORS ------------------------------------------------------------------- */

int fails(tether_actor *self);
int fails(tether_actor *self)
{
    return tether_fail(self, "remote failure: the actor gave up");
}

/* error.many-fail: waits for an absolute CLOCK_MONOTONIC time (in a
 * message, as "SEC NSEC"), then fails: all at once, none cancelled first. */
int fail_at(tether_actor *self);
int fail_at(tether_actor *self)
{
    void *buf;
    size_t len;
    int rc = tether_recv_msg(self, &buf, &len, 30);
    if (rc)
        return rc;
    char text[64];
    snprintf(text, sizeof text, "%.*s", (int)len, (char *)buf);
    free(buf);
    struct timespec at = {0, 0};
    sscanf(text, "%ld %ld", &at.tv_sec, &at.tv_nsec);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL) == EINTR)
        ;
    return tether_fail(self, "failed at once (pid %d)", (int)getpid());
}

int fail_in_cancel(tether_actor *self);
int fail_in_cancel(tether_actor *self)
{
    while (tether_sleep(self, 0.010) == 0)
        ;
    return tether_fail(self, "failed while handling its cancellation");
}

/* ---- PROTOCOL ----------------------------------------------------------------- */

int garbage(tether_actor *self);
int garbage(tether_actor *self)
{
    static const unsigned char junk[] = {0, 0, 0, 4, 0xc1, 0xc1, 0xc1, 0xc1};
    ssize_t w = write(tether_actor_fd(self), junk, sizeof junk);
    (void)w;
    return wait_for_cancel(self);
}

int oversized(tether_actor *self);
int oversized(tether_actor *self)
{
    static const unsigned char hdr[] = {0x7f, 0xff, 0xff, 0xff};
    ssize_t w = write(tether_actor_fd(self), hdr, sizeof hdr);
    (void)w;
    return wait_for_cancel(self);
}

/* ---- orphan.escaped-descendant, orphan.escaped-parent-dies, orphan.fork-storm ---- */

/* This process's pid as /proc names it: the supervisor's view, also from
 * inside a PID namespace of the actor's own (where getpid() differs). */
static pid_t proc_pid(void)
{
    char buf[32];
    ssize_t n = readlink("/proc/self", buf, sizeof buf - 1);
    if (n <= 0)
        return getpid();
    buf[n] = '\0';
    return (pid_t)atoi(buf);
}

/* Starts a grandchild that leaves the process group and the session (double
 * fork + setsid), closes every fd beyond stdio and ignores every catchable
 * signal; reports its pid (as the supervisor sees it); never checkpoints. */
int escaped_descendant(tether_actor *self);
int escaped_descendant(tether_actor *self)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC))
        return tether_fail(self, "pipe: %s", strerror(errno));
    pid_t mid = fork();
    if (mid == 0) {
        if (fork() == 0) {
            setsid();
            struct sigaction sa;
            memset(&sa, 0, sizeof sa);
            sa.sa_handler = SIG_IGN;
            for (int sig = 1; sig < NSIG; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                    sigaction(sig, &sa, NULL);
            int32_t me = (int32_t)proc_pid();
            ssize_t w = write(p[1], &me, sizeof me);
            (void)w;
            close_range(3, ~0U, 0); /* a daemon lets go of everything */
            for (;;)
                pause();
        }
        _exit(0); /* the middle process: its child is orphaned at once */
    }
    close(p[1]);
    if (mid > 0)
        waitpid(mid, NULL, 0); /* exits at once */
    int32_t gc = 0;
    ssize_t got = read(p[0], &gc, sizeof gc); /* written at once, or EOF if it died */
    close(p[0]);
    if (got != (ssize_t)sizeof gc)
        return tether_fail(self, "the escaped grandchild did not report");
    char msg[32];
    int n = snprintf(msg, sizeof msg, "%d", (int)gc);
    tether_send_msg(self, msg, (size_t)n);
    timed_wait_forever();
    return 0;
}

/* Forks short-lived children (each exits after ~1 ms) in a tight loop.
 * Out of process it never checkpoints: the teardown must kill it and every
 * child born meanwhile. In the supervising process (a thread cannot be
 * killed) it stops at cancel and reaps its children itself. */
int fork_storm(tether_actor *self);
int fork_storm(tether_actor *self)
{
    const char *mark = getenv("TETHER_CONFORMANCE_MARK");
    int in_process = mark && atoi(mark) == (int)proc_pid();
    enum { LIVE = 64 };
    pid_t kids[LIVE];
    int n = 0, said = 0;
    for (;;) {
        if (n == LIVE) { /* at most LIVE at once: wait for the oldest (~1 ms) */
            waitpid(kids[0], NULL, 0);
            memmove(kids, kids + 1, (LIVE - 1) * sizeof *kids);
            n--;
        }
        pid_t c = fork();
        if (c == 0) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
            _exit(0);
        }
        if (c > 0)
            kids[n++] = c;
        for (int i = 0; i < n;)
            if (waitpid(kids[i], NULL, WNOHANG) == kids[i])
                kids[i] = kids[--n];
            else
                i++;
        if (!said && c > 0) {
            tether_send_msg(self, "storming", 8);
            said = 1;
        }
        if (in_process && tether_cancelled(self))
            break;
    }
    for (int i = 0; i < n; i++)
        waitpid(kids[i], NULL, 0); /* each exits within ~1 ms */
    return TETHER_ECANCELLED;
}

/* ---- RESTART -------------------------------------------------------------------- */

/* The instance number (0, 1, ...) of an actor whose instances share the
 * file named by $TETHER_RESTART_COUNTER (the scenario sets it): every
 * backend's instances see it, in process or not. -1 if there is none. */
static int next_instance(void)
{
    const char *path = getenv("TETHER_RESTART_COUNTER");
    if (!path)
        return -1;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    int n = -1;
    if (lockf(fd, F_LOCK, 0) == 0) {
        char buf[32] = "";
        ssize_t got = pread(fd, buf, sizeof buf - 1, 0);
        n = got > 0 ? atoi(buf) : 0;
        int len = snprintf(buf, sizeof buf, "%d\n", n + 1);
        if (pwrite(fd, buf, (size_t)len, 0) != len)
            n = -1;
        lockf(fd, F_ULOCK, 0);
    }
    close(fd);
    return n;
}

/* restart.transient-crash: its first two instances fail, the third exits 0. */
int fail_twice(tether_actor *self);
int fail_twice(tether_actor *self)
{
    int n = next_instance();
    if (n < 0)
        return tether_fail(self, "no TETHER_RESTART_COUNTER");
    if (n < 2)
        return tether_fail(self, "instance %d fails", n);
    return 0;
}

/* restart.permanent-exit: exits 0 at once. */
int exits_at_once(tether_actor *self);
int exits_at_once(tether_actor *self)
{
    (void)self;
    return 0;
}

/* restart.rest-for-one, restart.abandoned-instance: fails when it receives
 * "fail"; waits for its cancellation otherwise. */
int fail_on_msg(tether_actor *self);
int fail_on_msg(tether_actor *self)
{
    for (;;) {
        void *buf;
        size_t len;
        int rc = tether_recv_msg(self, &buf, &len, 3600);
        if (rc)
            return rc;
        int fail = len == 4 && !memcmp(buf, "fail", 4);
        free(buf);
        if (fail)
            return tether_fail(self, "told to fail (pid %d)", (int)getpid());
    }
}
