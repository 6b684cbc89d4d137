/* backends/fork/contain.c - the fork backend's containment mechanisms:
 * what takes down every process an actor started, however it detached
 * (see fork.c for the overview and fork.h for the shared state).
 *
 *   pidns      a new PID namespace per actor, with an init (our child) as
 *              its PID 1 and the actor as the init's child: on x86-64 a
 *              91-byte program exec'd by a vfork child that forked the
 *              actor first, elsewhere a fork of this process (init_main);
 *   cgroup     a cgroup v2 directory per actor, cgroup.kill at teardown;
 *   subreaper  a keeper process (child subreaper) between us and the actor;
 *   group      the process group only.
 *
 * Here: starting the actor inside its containment (on the spawner
 * thread), choosing the mechanism at open, counting and sweeping what a
 * containment still holds when the actor ends or is killed.
 */
#define _GNU_SOURCE
#include "fork.h"

const char *const contain_names[] = {"pidns", "cgroup", "subreaper", "group", "auto"};

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

int cgroup_write(const char *dir, const char *file, const char *text)
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

/* ---- the exec'd PID 1 (x86-64) ---------------------------------------------------- */

/* A forked init is a second copy of this process's address space per
 * actor (page tables copied at the fork, copy-on-write faults after,
 * torn down at its end): on a virtual machine that traps page-table
 * updates it made a pidns spawn ~1.6x a plain one, its teardown ~2-4x.
 * So where we can, PID 1 is this program instead: a 91-byte static ELF
 * with no libc, written once into a memfd and exec'd by a vfork child
 * (which first forks the actor: one copy, as without containment). Its
 * whole source (x86-64, Linux system call numbers):
 *
 *   _start:  mov rax,[rsp]; cmp rax,1; jg probe   ; any argument: exit 0
 *            sub rsp,16
 *   loop:    wait4(-1, rsp, __WALL, NULL)          ; reap anything, blocking
 *            cmp rax,2; jne other                  ; PID 2 is the actor:
 *            write(3, rsp, 4); jmp loop            ;   report its status
 *   other:   cmp rax,-ECHILD; jne loop
 *            pause(); jmp loop                     ; nothing left: wait for SIGKILL
 *   probe:   exit(0)
 *
 * It inherits from its vfork parent: every signal blocked, SIGCHLD at
 * SIG_DFL, the parent-death SIGKILL (kept across exec), its own process
 * group, the report pipe as fd 3 and no other fd. Its waits have no
 * deadline for the reason init_main's has none. */
#if defined(__x86_64__)
static const unsigned char tiny_init_code[] = {
    0x48, 0x8b, 0x04, 0x24, 0x48, 0x83, 0xf8, 0x01, 0x7f, 0x48, 0x48, 0x83, 0xec, 0x10, 0xb8,
    0x3d, 0x00, 0x00, 0x00, 0x48, 0xc7, 0xc7, 0xff, 0xff, 0xff, 0xff, 0x48, 0x89, 0xe6, 0xba,
    0x00, 0x00, 0x00, 0x40, 0x45, 0x31, 0xd2, 0x0f, 0x05, 0x48, 0x83, 0xf8, 0x02, 0x75, 0x16,
    0xb8, 0x01, 0x00, 0x00, 0x00, 0xbf, 0x03, 0x00, 0x00, 0x00, 0x48, 0x89, 0xe6, 0xba, 0x04,
    0x00, 0x00, 0x00, 0x0f, 0x05, 0xeb, 0xcb, 0x48, 0x83, 0xf8, 0xf6, 0x75, 0xc5, 0xb8, 0x22,
    0x00, 0x00, 0x00, 0x0f, 0x05, 0xeb, 0xbc, 0xb8, 0x3c, 0x00, 0x00, 0x00, 0x31, 0xff, 0x0f,
    0x05};

/* The ELF file: header, one loadable segment (all of it, at 0x400000),
 * the code. */
static int tiny_init_write(int fd)
{
    enum { EH = 64, PH = 56, BASE = 0x400000 };
    unsigned char f[EH + PH + sizeof tiny_init_code];
    memset(f, 0, sizeof f);
    uint64_t size = sizeof f, entry = BASE + EH + PH, base = BASE;
    memcpy(f, "\177ELF\2\1\1", 7);            /* 64-bit, little-endian, version 1 */
    f[16] = 2;                                /* ET_EXEC */
    f[18] = 62;                               /* EM_X86_64 */
    f[20] = 1;                                /* EV_CURRENT */
    memcpy(f + 24, &entry, 8);                /* e_entry */
    f[32] = EH;                               /* e_phoff */
    f[52] = EH;                               /* e_ehsize */
    f[54] = PH;                               /* e_phentsize */
    f[56] = 1;                                /* e_phnum */
    unsigned char *ph = f + EH;
    ph[0] = 1;                                /* PT_LOAD */
    ph[4] = 5;                                /* PF_R | PF_X */
    memcpy(ph + 16, &base, 8);                /* p_vaddr */
    memcpy(ph + 24, &base, 8);                /* p_paddr */
    memcpy(ph + 32, &size, 8);                /* p_filesz */
    memcpy(ph + 40, &size, 8);                /* p_memsz */
    ph[49] = 0x10;                            /* p_align 0x1000 */
    memcpy(f + EH + PH, tiny_init_code, sizeof tiny_init_code);
    return write(fd, f, sizeof f) == (ssize_t)sizeof f ? 0 : -1;
}

/* Exec the tiny init with an argument: 0 when it ran and exited 0. */
static int __attribute__((noinline)) tiny_init_probe(int fd)
{
    char *argv[] = {"tether-pidns-init", "probe", NULL}, *envp[] = {NULL};
    int status = -1;
    pid_t pid = vfork();
    if (pid == 0) {
        syscall(SYS_execveat, fd, "", argv, envp, AT_EMPTY_PATH);
        _exit(127);
    }
    if (pid > 0) /* it has exec'd or exited: a 91-byte program exits at once */
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
    return pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* The memfd of the tiny init, tried once (exec'd with an argument: it
 * exits 0), or -1 with `why` said: then the init is forked (init_main). */
static int tiny_init_open(char *why, size_t wn)
{
#if defined(__SANITIZE_THREAD__)
    /* ThreadSanitizer turns vfork into fork (its interceptor says so): the
     * init's writes to *actor and *r would then land in a copy, and the
     * spawner would wait for an init that lives on. The forked init is the
     * same containment without the vfork contract. */
    snprintf(why, wn, "vfork is a fork under ThreadSanitizer");
    return -1;
#endif
#ifndef MFD_EXEC
#define MFD_EXEC 0x10U
#endif
    int fd = (int)syscall(SYS_memfd_create, "tether-pidns-init", MFD_CLOEXEC | MFD_EXEC);
    if (fd < 0 && errno == EINVAL) /* before Linux 6.3: no MFD_EXEC, executable by default */
        fd = (int)syscall(SYS_memfd_create, "tether-pidns-init", MFD_CLOEXEC);
    if (fd < 0 || tiny_init_write(fd)) {
        snprintf(why, wn, "memfd for the init: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (tiny_init_probe(fd)) {
        snprintf(why, wn, "the init program did not run (exec of a memfd refused?)");
        close(fd);
        return -1;
    }
    return fd;
}

/* The vfork child, PID 1 of the new namespace: it runs on the spawner
 * thread's stack and TLS while that thread is suspended (as posix_spawn's
 * child does), so it may fork: the actor is then the child of PID 1, and
 * a copy of this process as the spawner thread sees it. It writes the
 * actor's pid (our view) into *actor and execs the tiny init, which ends
 * our suspension. */
static void __attribute__((noinline, noreturn))
vfork_init(struct fstate *st, struct request *r, int wr, volatile pid_t *actor)
{
    setpgid(0, 0); /* terminal signals to the host's group are not for it */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa); /* SIG_DFL, not inherited SIG_IGN: it must see the actor end */
    sigaction(SIGCHLD, &sa, NULL);
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL); /* kept across exec; the actor resets its own */
    prctl(PR_SET_PDEATHSIG, SIGKILL);     /* kept across exec */
    struct pollfd p = {.fd = st->self_pidfd, .events = POLLIN};
    if (poll(&p, 1, 0) > 0) /* this process died before prctl */
        _exit(CONTAIN_FAILED);
    pid_t a = start_actor(st, r, 1); /* returns in the actor only at its end: _exit */
    *actor = a > 0 ? first_child() : -1;
    if (*actor <= 0)
        _exit(CONTAIN_FAILED);
    if (wr != 3 && dup2(wr, 3) != 3) /* dup2 clears close-on-exec */
        _exit(CONTAIN_FAILED);
    if (wr == 3)
        fcntl(3, F_SETFD, 0);
    syscall(SYS_close_range, 0, 2, 0);                      /* not the host's stdio */
    syscall(SYS_close_range, 4, ~0U, CLOSE_RANGE_CLOEXEC); /* nor anything else */
    char *argv[] = {"tether-pidns-init", NULL}, *envp[] = {NULL};
    syscall(SYS_execveat, st->init_fd, "", argv, envp, AT_EMPTY_PATH);
    r->err = errno; /* our memory is the spawner's: it reads these once we exit */
    r->what = "exec of the namespace init";
    *actor = -1;    /* our exit kills the namespace, the actor with it */
    _exit(CONTAIN_FAILED);
}

/* pidns with the exec'd init: vfork into the new namespace (no copy of
 * the address space), the vfork child forks the actor and execs. */
static pid_t spawn_with_tiny_init(struct fstate *st, struct request *r, int wr)
{
    volatile pid_t actor = -1;
    pid_t init = vfork();
    if (init == 0)
        vfork_init(st, r, wr, &actor);
    if (init < 0) {
        r->err = errno;
        r->what = "vfork (namespace init)";
        return -1;
    }
    if (actor <= 0) {
        /* Bounded: vfork returns here only once the init has exec'd or
         * exited, and it execs only after setting actor > 0 (a failed exec
         * sets it back to -1 and _exits): so it has exited, and this reaps
         * a zombie at once. Then say why. */
        waitpid(init, NULL, 0);
        if (!r->err) {
            r->err = ESRCH;
            r->what = "namespace init";
        }
        return -1;
    }
    r->actor = actor;
    return init;
}
#else
static int tiny_init_open(char *why, size_t wn)
{
    snprintf(why, wn, "no exec'd init on this architecture");
    return -1;
}
static pid_t spawn_with_tiny_init(struct fstate *st, struct request *r, int wr)
{
    (void)st, (void)r, (void)wr;
    return -1;
}
#endif

/* ---- starting an actor in its containment -------------------------------------- */

pid_t do_spawn(struct fstate *st, struct request *r)
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
        pid_t init;
        int e = 0;
        if (st->init_fd >= 0) {
            init = spawn_with_tiny_init(st, r, p[1]);
        } else if ((init = fork()) == 0) {
            close(p[0]);
            init_main(st, r, p[1]);
        } else if (init < 0) {
            e = errno;
        }
        close(p[1]);
        /* back to our own namespace for the next spawn */
        if (setns(st->own_ns_fd, CLONE_NEWPID))
            st->host->log("fork", "setns back to the own PID namespace: %s", strerror(errno));
        if (init < 0) {
            if (e) {
                r->err = e;
                r->what = "fork (namespace init)";
            }
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
void probe_pidns(struct fstate *st)
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
        char why[200];
        st->init_fd = tiny_init_open(why, sizeof why);
        if (st->init_fd < 0)
            st->host->log("fork", "pidns: the namespace init is forked (%s)", why);
        return;
    }
    close(st->own_ns_fd);
    st->own_ns_fd = -1;
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
int choose_containment(struct fstate *st, struct tether_error *err)
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
    if (st->contain != CT_PIDNS && st->init_fd >= 0) {
        close(st->init_fd);
        st->init_fd = -1;
    }
    if (st->contain != CT_CGROUP && st->cg_base) {
        rmdir(st->cg_base);
        free(st->cg_base);
        st->cg_base = NULL;
    }
    return 0;
}

/* Count what the containment holds besides the actor, once (before the
 * kill that ends it). Reads /proc or the cgroup: no wait. */
void count_descendants(struct fchild *c)
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

/* The actor has ended (exit_fd readable). Kill whatever its containment
 * still holds, once; collect our child (the actor, or its keeper), and
 * return 1 when the containment is empty, 0 while it is still emptying
 * (reap is asked again). */
int sweep_containment(struct fchild *c)
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

