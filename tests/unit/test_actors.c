/* tests/unit/test_actors.c - actor functions the unit tests spawn. */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <tether/actor.h>

static int32_t add_i(int32_t a, int32_t b) { return a + b; }
static int64_t add_l(int64_t a, int64_t b) { return a + b; }
static uint32_t add_u(uint32_t a, uint32_t b) { return a + b; }
static uint64_t add_U(uint64_t a, uint64_t b) { return a + b; }
static double add_d(double a, double b) { return a + b; }
static float add_f(float a, float b) { return a + b; }
static const char *echo_s(const char *s) { return s; }
static size_t len_s(const char *s) { return strlen(s); }
static int calls;
static void bump(void) { calls++; }
static int32_t count(void) { return calls; }
static double mix(int32_t a, int64_t b, uint32_t c, uint64_t d, double e, float f, const char *s)
{
    return a + (double)b + c + (double)d + e + f + (double)strlen(s);
}

const struct tether_function tether_functions[] = {
    {"add_i", "ii:i", TETHER_FN(add_i)},
    {"add_l", "ll:l", TETHER_FN(add_l)},
    {"add_u", "uu:u", TETHER_FN(add_u)},
    {"add_U", "UU:U", TETHER_FN(add_U)},
    {"add_d", "dd:d", TETHER_FN(add_d)},
    {"add_f", "ff:f", TETHER_FN(add_f)},
    {"echo_s", "s:s", TETHER_FN(echo_s)},
    {"len_s", "s:U", TETHER_FN(len_s)},
    {"bump", ":v", TETHER_FN(bump)},
    {"count", ":i", TETHER_FN(count)},
    {"mix", "iluUdfs:d", TETHER_FN(mix)},
    {NULL, NULL, NULL},
};

int serve(tether_actor *self);
int cooperative(tether_actor *self);
int timed_waits(tether_actor *self);
int busy_loop(tether_actor *self);
int blocked_read(tether_actor *self);
int exit_7(tether_actor *self);
int fails(tether_actor *self);
int echo_messages(tether_actor *self);
int chatter(tether_actor *self);
int flood_then_serve(tether_actor *self);
int vanish(tether_actor *self);
int garbage(tether_actor *self);
int oversized(tether_actor *self);
int never_reads(tether_actor *self);

int serve(tether_actor *self) { return tether_serve(self); }

int cooperative(tether_actor *self)
{
    for (;;) {
        int rc = tether_sleep(self, 0.010);
        if (rc)
            return rc;
    }
}

int timed_waits(tether_actor *self)
{
    (void)self;
    for (;;) {
        struct timespec ts = {1, 0};
        nanosleep(&ts, NULL);
    }
}

/* A relaxed atomic: several busy actors spin at once (a plain shared counter
 * is a data race, which the TSan build reports), and not _Thread_local: the
 * thread-local storage of a dlopen'ed module crashed LeakSanitizer's exit-time tracer
 * when the thread spinning on it is abandoned (gcc 12 libasan). */
static _Atomic uint64_t spin_sink;

int busy_loop(tether_actor *self)
{
    (void)self;
    for (;;)
        atomic_fetch_add_explicit(&spin_sink, 1, memory_order_relaxed);
}

int blocked_read(tether_actor *self)
{
    (void)self;
    int p[2];
    if (pipe(p))
        return 1;
    char c;
    ssize_t r = read(p[0], &c, 1); /* nobody writes: blocks until cancelled */
    close(p[0]);
    close(p[1]);
    return (int)r;
}

int exit_7(tether_actor *self) { (void)self; return 7; }

int fails(tether_actor *self) { return tether_fail(self, "deliberate failure %d", 42); }

int echo_messages(tether_actor *self)
{
    for (;;) {
        void *buf;
        size_t len;
        int rc = tether_recv_msg(self, &buf, &len, -1);
        if (rc)
            return rc;
        tether_send_msg(self, buf, len);
        free(buf);
    }
}

/* Eight 64 KiB messages (past the supervisor's read-ahead), then calls. */
int flood_then_serve(tether_actor *self)
{
    static char block[65536];
    for (int i = 0; i < 8; i++) {
        memset(block, 'a' + i, sizeof block);
        int rc = tether_send_msg(self, block, sizeof block);
        if (rc)
            return rc;
    }
    return tether_serve(self);
}

int chatter(tether_actor *self)
{
    for (int i = 0; i < 3; i++)
        tether_send_msg(self, "tick", 4);
    return tether_sleep(self, 30) ? TETHER_ECANCELLED : 0;
}

/* Never reads its channel and never checkpoints: the supervisor's sends
 * fill the socket and block. */
int never_reads(tether_actor *self)
{
    return timed_waits(self);
}

/* Shuts its channel and stops without a stopped message. */
int vanish(tether_actor *self)
{
    shutdown(tether_actor_fd(self), SHUT_RDWR);
    return 0;
}

/* Writes bytes that are not a frame (a valid length, then junk). */
int garbage(tether_actor *self)
{
    static const unsigned char junk[] = {0, 0, 0, 4, 0xc1, 0xc1, 0xc1, 0xc1};
    ssize_t w = write(tether_actor_fd(self), junk, sizeof junk);
    (void)w;
    return tether_sleep(self, 30) ? TETHER_ECANCELLED : 0;
}

/* Announces a 1 GiB frame and sends nothing more. */
int oversized(tether_actor *self)
{
    static const unsigned char hdr[] = {0x40, 0, 0, 0};
    ssize_t w = write(tether_actor_fd(self), hdr, sizeof hdr);
    (void)w;
    return tether_sleep(self, 30) ? TETHER_ECANCELLED : 0;
}

/* Sends 1 KiB messages as fast as it can until cancelled. */
int flood(tether_actor *self);
int flood(tether_actor *self)
{
    static char buf[1024];
    while (tether_send_msg(self, buf, sizeof buf) == 0)
        ;
    return TETHER_ECANCELLED;
}

/* Sends 65,600 numbered messages (past the supervisor's inbox bound of
 * 65,536) and exits 7 while nobody receives. */
int flood_numbered(tether_actor *self);
int flood_numbered(tether_actor *self)
{
    for (int i = 0; i < 65600; i++) {
        char buf[16];
        int n = snprintf(buf, sizeof buf, "%d", i);
        if (tether_send_msg(self, buf, (size_t)n))
            return 1;
    }
    return 7;
}

/* Exits at once, but its thread's TLS destructor then sleeps 2 s. */
#include <pthread.h>
static pthread_key_t slow_key;
static pthread_once_t slow_once = PTHREAD_ONCE_INIT;
static void slow_dtor(void *p)
{
    (void)p;
    struct timespec ts = {2, 0};
    nanosleep(&ts, NULL);
}
static void slow_key_init(void)
{
    pthread_key_create(&slow_key, slow_dtor);
}
int slow_tls_exit(tether_actor *self);
int slow_tls_exit(tether_actor *self)
{
    (void)self;
    pthread_once(&slow_once, slow_key_init);
    pthread_setspecific(slow_key, &slow_once);
    return 0;
}

/* ---- containment: descendants that try to escape (test_fork) ------------------ */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/wait.h>

enum escape_how { ESC_SETSID, ESC_UNSHARE, ESC_CGROUP, ESC_TRACED };

/* This process's pid as /proc names it (the supervisor's view). */
static pid_t proc_pid(void)
{
    char buf[32];
    ssize_t n = readlink("/proc/self", buf, sizeof buf - 1);
    if (n <= 0)
        return getpid();
    buf[n] = '\0';
    return (pid_t)atoi(buf);
}

/* Move the calling process to the cgroup2 root (hostile: as root it may). */
static void leave_cgroup(void)
{
    char line[4096], mnt[1024] = "";
    FILE *fp = fopen("/proc/self/mountinfo", "re");
    while (fp && fgets(line, sizeof line, fp))
        if (strstr(line, " - cgroup2 ") && sscanf(line, "%*s %*s %*s %*s %1000s", mnt) == 1)
            break;
    if (fp)
        fclose(fp);
    char path[1100];
    snprintf(path, sizeof path, "%s/cgroup.procs", mnt);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t w = write(fd, "0", 1);
        (void)w;
        close(fd);
    }
}

/* The grandchild's life: own session, every catchable signal ignored,
 * reports its pid, lets go of every fd, waits forever. */
static void escaped_life(int wr, enum escape_how how) __attribute__((noreturn));
static void escaped_life(int wr, enum escape_how how)
{
    setsid();
    if (how == ESC_CGROUP)
        leave_cgroup();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &sa, NULL);
    int32_t me = (int32_t)proc_pid();
    ssize_t w = write(wr, &me, sizeof me);
    (void)w;
    close_range(3, ~0U, 0);
    for (;;)
        pause();
}

/* Starts a descendant that escapes as `how` says, sends its pid (as /proc
 * names it), then never checkpoints. */
static int escape(tether_actor *self, enum escape_how how)
{
    int p[2];
    if (pipe(p))
        return tether_fail(self, "pipe: %s", strerror(errno));
    if (how == ESC_UNSHARE && unshare(CLONE_NEWPID)) /* our children: a namespace of their own */
        return tether_fail(self, "unshare: %s", strerror(errno));
    pid_t mid = fork();
    if (mid == 0) {
        if (how == ESC_TRACED || how == ESC_UNSHARE)
            escaped_life(p[1], how); /* our child: traced below, or PID 1 of its own namespace */
        if (fork() == 0)
            escaped_life(p[1], how);
        _exit(0);
    }
    if (mid < 0)
        return tether_fail(self, "fork: %s", strerror(errno));
    if (how == ESC_TRACED)
        ptrace(PTRACE_SEIZE, mid, NULL, NULL);
    else if (how != ESC_UNSHARE)
        waitpid(mid, NULL, 0); /* exits at once */
    int32_t gc = 0;
    ssize_t got = read(p[0], &gc, sizeof gc); /* written at once */
    close(p[0]);
    close(p[1]);
    if (got != (ssize_t)sizeof gc)
        return tether_fail(self, "the escaped descendant did not report");
    char msg[32];
    int n = snprintf(msg, sizeof msg, "%d", (int)gc);
    tether_send_msg(self, msg, (size_t)n);
    for (;;) {
        struct timespec ts = {1, 0};
        nanosleep(&ts, NULL);
    }
}

int escaper(tether_actor *self);
int escaper(tether_actor *self) { return escape(self, ESC_SETSID); }
int escaper_unshare(tether_actor *self);
int escaper_unshare(tether_actor *self) { return escape(self, ESC_UNSHARE); }
int escaper_cgroup(tether_actor *self);
int escaper_cgroup(tether_actor *self) { return escape(self, ESC_CGROUP); }
int escaper_traced(tether_actor *self);
int escaper_traced(tether_actor *self) { return escape(self, ESC_TRACED); }

/* ---- restarts (test_restart.c) ---- */

static int fail_twice_calls; /* in process: the thread backend's instances share it */

/* Fails its first two instances, then exits 0 (restart.transient-crash). */
int fail_twice(tether_actor *self);
int fail_twice(tether_actor *self)
{
    if (__atomic_fetch_add(&fail_twice_calls, 1, __ATOMIC_RELAXED) < 2)
        return tether_fail(self, "failure number %d", fail_twice_calls);
    return 0;
}

static int policy_calls;

/* Fails its first instance; the next one (a restart, spawned by the
 * engine) exits with its scheduling policy as the code: 0 is SCHED_OTHER. */
int fail_then_report_policy(tether_actor *self);
int fail_then_report_policy(tether_actor *self)
{
    if (__atomic_fetch_add(&policy_calls, 1, __ATOMIC_RELAXED) < 1)
        return tether_fail(self, "first instance");
    return sched_getscheduler(0);
}

/* Fails when it receives the message "fail"; cooperative otherwise. */
int fail_on_msg(tether_actor *self);
int fail_on_msg(tether_actor *self)
{
    for (;;) {
        void *buf;
        size_t len;
        int rc = tether_recv_msg(self, &buf, &len, -1);
        if (rc)
            return rc;
        int fail = len == 4 && !memcmp(buf, "fail", 4);
        free(buf);
        if (fail)
            return tether_fail(self, "told to fail");
    }
}

/* test_pool: what one actor could leave on its thread for the next. It
 * reports what it finds (thread-local counter, SIGUSR2 blocked, cancel
 * state, thread id), then dirties all of it: a pooled actor that ran on a
 * reused thread would find the dirt. */
int leave_marks(tether_actor *self);
static __thread int marks;
int leave_marks(tether_actor *self)
{
    sigset_t mask;
    pthread_sigmask(SIG_BLOCK, NULL, &mask);
    int old_state;
    pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old_state);
    char text[128];
    int n = snprintf(text, sizeof text, "tls=%d usr2=%d cancel=%s tid=%ld", marks,
                     sigismember(&mask, SIGUSR2), old_state == PTHREAD_CANCEL_ENABLE ? "on" : "off",
                     (long)gettid());
    marks++;
    sigaddset(&mask, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    int rc = tether_send_msg(self, text, (size_t)n);
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
    return rc;
}
