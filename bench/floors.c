/* bench/floors.c - the floor: the cheapest the kernel allows for each step
 * tether takes, with the same handshake (one byte on a socketpair for
 * "ready", a 4-byte big-endian length + body for frames). Times in µs. */
#include "floors.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static int pidfd_open_(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int pidfd_kill(int pidfd, int sig)
{
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

static int pidfd_reap(int pidfd)
{
    siginfo_t si;
    int rc;
    do
        rc = waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED);
    while (rc < 0 && errno == EINTR);
    close(pidfd);
    return rc;
}

static int read_full(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

static int write_full(int fd, const void *buf, size_t n)
{
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, (const char *)buf + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        off += (size_t)w;
    }
    return 0;
}

/* One frame: 4-byte big-endian length, then the body. */
static int write_frame(int fd, const void *body, uint32_t len)
{
    static __thread uint8_t *buf;
    static __thread size_t cap;
    if (cap < len + 4u) {
        free(buf);
        cap = len + 4u;
        buf = malloc(cap);
        if (!buf)
            abort();
    }
    buf[0] = (uint8_t)(len >> 24);
    buf[1] = (uint8_t)(len >> 16);
    buf[2] = (uint8_t)(len >> 8);
    buf[3] = (uint8_t)len;
    memcpy(buf + 4, body, len);
    return write_full(fd, buf, len + 4u); /* one write, as tether sends a frame */
}

/* Reads one frame into buf (cap bytes); returns its length or -1. */
static long read_frame(int fd, void *buf, size_t cap)
{
    uint8_t h[4];
    if (read_full(fd, h, 4))
        return -1;
    uint32_t len = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    if (len > cap)
        return -1;
    if (read_full(fd, buf, len))
        return -1;
    return (long)len;
}

static int pair(int sv[2])
{
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
}

static int make_thread(pthread_t *t, void *(*fn)(void *), void *arg, int cpu)
{
    pthread_attr_t at;
    pthread_attr_init(&at);
    if (cpu >= 0) {
        cpu_set_t s;
        cpuset_one(&s, cpu);
        pthread_attr_setaffinity_np(&at, sizeof s, &s);
    }
    int rc = pthread_create(t, &at, fn, arg);
    pthread_attr_destroy(&at);
    return rc;
}

static void move_pid(pid_t pid, int cpu)
{
    if (cpu >= 0) {
        cpu_set_t s;
        cpuset_one(&s, cpu);
        sched_setaffinity(pid, sizeof s, &s);
    }
}

/* ---- spawn + ready + exit + reap -------------------------------------------- */

static void *ready_and_exit(void *arg)
{
    char c = 'r';
    ssize_t w = write((int)(intptr_t)arg, &c, 1);
    (void)w;
    return NULL;
}

int floor_thread_spawn(int cpu, double *ready_us, double *cycle_us)
{
    int64_t t0 = bnow();
    int sv[2];
    if (pair(sv))
        return -1;
    pthread_t t;
    if (make_thread(&t, ready_and_exit, (void *)(intptr_t)sv[1], cpu))
        return -1;
    char c;
    if (read_full(sv[0], &c, 1))
        return -1;
    int64_t t1 = bnow();
    pthread_join(t, NULL);
    close(sv[0]);
    close(sv[1]);
    int64_t t2 = bnow();
    *ready_us = (t1 - t0) / 1e3;
    *cycle_us = (t2 - t0) / 1e3;
    return 0;
}

int floor_fork_spawn(double *ready_us, double *cycle_us)
{
    int64_t t0 = bnow();
    int sv[2];
    if (pair(sv))
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        char c = 'r';
        ssize_t w = write(sv[1], &c, 1);
        (void)w;
        _exit(0);
    }
    int pfd = pidfd_open_(pid);
    close(sv[1]);
    char c;
    if (read_full(sv[0], &c, 1))
        return -1;
    int64_t t1 = bnow();
    pidfd_reap(pfd);
    close(sv[0]);
    int64_t t2 = bnow();
    *ready_us = (t1 - t0) / 1e3;
    *cycle_us = (t2 - t0) / 1e3;
    return 0;
}

/* ---- a reader parked in read(), and ways to end it ---------------------------- */

/* The thread says ready, then blocks reading one frame (the cancel). */
static void *blocked_reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char c = 'r';
    if (write(fd, &c, 1) != 1)
        return NULL;
    uint8_t buf[64];
    read_frame(fd, buf, sizeof buf);
    return NULL;
}

static const uint8_t cancel_body[] = {0x91, 0x06}; /* a 2-byte msgpack-sized body */

int floor_thread_cancel_msg(int cpu, unsigned *seed, double *us)
{
    int sv[2];
    if (pair(sv))
        return -1;
    pthread_t t;
    if (make_thread(&t, blocked_reader, (void *)(intptr_t)sv[1], cpu))
        return -1;
    char c;
    read_full(sv[0], &c, 1);
    settle(seed);
    int64_t t0 = bnow();
    write_frame(sv[0], cancel_body, sizeof cancel_body);
    pthread_join(t, NULL);
    int64_t t1 = bnow();
    close(sv[0]);
    close(sv[1]);
    *us = (t1 - t0) / 1e3;
    return 0;
}

int floor_thread_pcancel(int cpu, unsigned *seed, double *us)
{
    int sv[2];
    if (pair(sv))
        return -1;
    pthread_t t;
    if (make_thread(&t, blocked_reader, (void *)(intptr_t)sv[1], cpu))
        return -1;
    char c;
    read_full(sv[0], &c, 1);
    settle(seed);
    int64_t t0 = bnow();
    pthread_cancel(t);
    pthread_join(t, NULL);
    int64_t t1 = bnow();
    close(sv[0]);
    close(sv[1]);
    *us = (t1 - t0) / 1e3;
    return 0;
}

static pid_t fork_reader(int sv[2], int *pidfd, int cpu)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        close(sv[0]);
        blocked_reader((void *)(intptr_t)sv[1]);
        _exit(0);
    }
    close(sv[1]);
    *pidfd = pidfd_open_(pid);
    char c;
    read_full(sv[0], &c, 1);
    move_pid(pid, cpu);
    return pid;
}

int floor_proc_cancel_msg(int cpu, unsigned *seed, double *us)
{
    int sv[2], pfd;
    if (pair(sv) || fork_reader(sv, &pfd, cpu) < 0)
        return -1;
    settle(seed);
    int64_t t0 = bnow();
    write_frame(sv[0], cancel_body, sizeof cancel_body);
    pidfd_reap(pfd);
    int64_t t1 = bnow();
    close(sv[0]);
    *us = (t1 - t0) / 1e3;
    return 0;
}

int floor_proc_sigkill(int cpu, unsigned *seed, double *us)
{
    int sv[2], pfd;
    if (pair(sv) || fork_reader(sv, &pfd, cpu) < 0)
        return -1;
    settle(seed);
    int64_t t0 = bnow();
    pidfd_kill(pfd, SIGKILL);
    pidfd_reap(pfd);
    int64_t t1 = bnow();
    close(sv[0]);
    *us = (t1 - t0) / 1e3;
    return 0;
}

/* ---- a framed peer: echo, source, sink ----------------------------------------- */

/* Bodies: 'E'... echo it back; "S count size" send count frames of size;
 * 'D'... consume; 'A' reply "k"; 'Q' quit. */
static void peer_loop(int fd)
{
    static uint8_t buf[1 << 17];
    uint8_t *out = NULL;
    for (;;) {
        long n = read_frame(fd, buf, sizeof buf);
        if (n <= 0)
            break;
        if (buf[0] == 'E') {
            write_frame(fd, buf, (uint32_t)n);
        } else if (buf[0] == 'S') {
            unsigned count = 0, size = 0;
            buf[n < (long)sizeof buf ? n : n - 1] = 0;
            sscanf((char *)buf + 1, "%u %u", &count, &size);
            out = realloc(out, size ? size : 1);
            memset(out, 'x', size);
            for (unsigned i = 0; i < count; i++)
                write_frame(fd, out, size);
        } else if (buf[0] == 'A') {
            write_frame(fd, "k", 1);
        } else if (buf[0] == 'Q') {
            break;
        }
    }
    free(out);
}

static void *peer_thread(void *arg)
{
    peer_loop((int)(intptr_t)arg);
    return NULL;
}

int peer_open(struct peer *p, int process, int cpu)
{
    memset(p, 0, sizeof *p);
    int sv[2];
    if (pair(sv))
        return -1;
    p->process = process;
    p->fd = sv[0];
    p->other = sv[1];
    if (process) {
        pid_t pid = fork();
        if (pid < 0)
            return -1;
        if (pid == 0) {
            close(sv[0]);
            peer_loop(sv[1]);
            _exit(0);
        }
        close(sv[1]);
        p->other = -1;
        p->pidfd = pidfd_open_(pid);
        move_pid(pid, cpu);
    } else if (make_thread(&p->thread, peer_thread, (void *)(intptr_t)sv[1], cpu)) {
        return -1;
    }
    p->buf = malloc(1 << 17);
    return p->buf ? 0 : -1;
}

void peer_close(struct peer *p)
{
    write_frame(p->fd, "Q", 1);
    if (p->process)
        pidfd_reap(p->pidfd);
    else
        pthread_join(p->thread, NULL);
    close(p->fd);
    if (p->other >= 0)
        close(p->other);
    free(p->buf);
}

/* One framed round trip with a `len`-byte body. */
int peer_rtt(struct peer *p, size_t len, double *us)
{
    uint8_t body[256];
    memset(body, 'E', sizeof body);
    int64_t t0 = bnow();
    if (write_frame(p->fd, body, (uint32_t)len) || read_frame(p->fd, p->buf, 1 << 17) < 0)
        return -1;
    *us = (bnow() - t0) / 1e3;
    return 0;
}

/* Peer -> us: `count` frames of `size`; returns seconds. Reads in bulk
 * (64 KiB at a time) and walks the frame boundaries, as tether's engine
 * does. */
int peer_source(struct peer *p, unsigned count, unsigned size, double *secs)
{
    char cmd[64];
    int n = snprintf(cmd, sizeof cmd, "S%u %u", count, size);
    int64_t t0 = bnow();
    if (write_frame(p->fd, cmd, (uint32_t)n))
        return -1;
    size_t want = (size_t)count * (size + 4u), got = 0;
    uint8_t *buf = p->buf;
    size_t frame_left = 0; /* bytes until the next header */
    unsigned frames = 0;
    uint8_t hdr[4];
    size_t hdr_have = 0;
    while (got < want) {
        ssize_t r = read(p->fd, buf, 65536);
        if (r <= 0)
            return -1;
        got += (size_t)r;
        for (size_t i = 0; i < (size_t)r;) {
            if (frame_left) {
                size_t take = (size_t)r - i < frame_left ? (size_t)r - i : frame_left;
                frame_left -= take;
                i += take;
                continue;
            }
            hdr[hdr_have++] = buf[i++];
            if (hdr_have == 4) {
                frame_left = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
                hdr_have = 0;
                frames++;
            }
        }
    }
    *secs = (bnow() - t0) / 1e9;
    return frames == count ? 0 : -1;
}

/* us -> peer: `count` frames of `size`, then an ack round trip. */
int peer_sink(struct peer *p, unsigned count, unsigned size, double *secs)
{
    uint8_t *body = malloc(size ? size : 1);
    if (!body)
        return -1;
    memset(body, 'D', size);
    int64_t t0 = bnow();
    for (unsigned i = 0; i < count; i++)
        if (write_frame(p->fd, body, size))
            return -1;
    if (write_frame(p->fd, "A", 1) || read_frame(p->fd, p->buf, 1 << 17) < 0)
        return -1;
    *secs = (bnow() - t0) / 1e9;
    free(body);
    return 0;
}

/* ---- N at once ------------------------------------------------------------------- */

int floor_many(int process, int n, double *ready_ms, double *down_ms, void (*at_ready)(void *),
               void *arg)
{
    int *fds = malloc(sizeof(int) * (size_t)n);
    int *pfds = malloc(sizeof(int) * (size_t)n);
    pthread_t *ts = malloc(sizeof(pthread_t) * (size_t)n);
    if (!fds || !pfds || !ts)
        return -1;
    int64_t t0 = bnow();
    for (int i = 0; i < n; i++) {
        int sv[2];
        if (pair(sv))
            return -1;
        fds[i] = sv[0];
        if (process) {
            pid_t pid = fork();
            if (pid < 0)
                return -1;
            if (pid == 0) {
                /* keep only our channel, as a forked actor must */
                if (sv[1] != 3) {
                    dup2(sv[1], 3);
                }
                syscall(SYS_close_range, 4, ~0U, 0);
                blocked_reader((void *)(intptr_t)3);
                _exit(0);
            }
            close(sv[1]);
            pfds[i] = pidfd_open_(pid);
        } else {
            pfds[i] = sv[1];
            if (make_thread(&ts[i], blocked_reader, (void *)(intptr_t)sv[1], -1))
                return -1;
        }
    }
    for (int i = 0; i < n; i++) {
        char c;
        if (read_full(fds[i], &c, 1))
            return -1;
    }
    int64_t t1 = bnow();
    if (at_ready) {
        at_ready(arg);
        t1 = bnow();
    }
    for (int i = 0; i < n; i++)
        write_frame(fds[i], cancel_body, sizeof cancel_body);
    for (int i = 0; i < n; i++) {
        if (process) {
            pidfd_reap(pfds[i]);
        } else {
            pthread_join(ts[i], NULL);
            close(pfds[i]);
        }
        close(fds[i]);
    }
    int64_t t2 = bnow();
    *ready_ms = (t1 - t0) / 1e6;
    *down_ms = (t2 - t1) / 1e6;
    free(fds);
    free(pfds);
    free(ts);
    return 0;
}
