/* backends/fork - actors in child processes: orphan-proof, zombie-free.
 *
 * Each actor is a child process in a process group of its own, so that a
 * hard kill (SIGKILL to the group) takes its grandchildren too. Its exit
 * is observed through a pidfd (pollable exit fd, waitid(P_PIDFD)): no
 * SIGCHLD handler, no waitpid on "any child" -- the host owns those.
 *
 * Two modes (plugins.yaml: options: { mode: fork | exec, helper: PATH }):
 *   fork  the child runs the actor in the forked copy of the supervisor;
 *   exec  the child execs a small helper (tether-actor) that loads the
 *         actor module in a fresh process: robust when the host program
 *         has many threads and locks.
 *
 * Orphan guarantee. The child asks for a parent-death signal whose handler
 * kills the child's whole process group, and re-checks getppid() against
 * the race at set-up; the actor runtime also cancels itself at end of
 * channel. A parent-death signal fires when the *thread* that forked
 * exits, so children are forked by one long-lived spawner thread per
 * backend state, never by the caller's thread.
 *
 * fd hygiene: the child keeps stdio and its channel (moved to fd 3) only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
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
/* the parent-death signal; its handler kills the actor's process group */
#define DEATH_SIGNAL (SIGRTMIN + 3)

extern char **environ;

enum mode { MODE_FORK, MODE_EXEC };

struct request {
    const struct tether_spawn_spec *spec;
    struct request *next; /* queued after this one */
    pid_t pid;
    int err; /* errno of a failed fork, or 0 */
    int taken; /* the spawner has started it */
    int done;
};

struct fstate {
    const struct tether_backend_host *host;
    enum mode mode;
    char *helper;
    /* the spawner thread */
    pthread_t spawner;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
    struct request *req; /* queue of requests not yet taken, oldest first:
                          * several program threads may spawn at once */
    int stop;
    unsigned live;
    /* abandoned children (SIGKILL had not ended them by the deadline):
     * their pidfds are kept and polled, so that they are reaped, not left
     * as zombies, once they do end. Under `lock`. */
    int *late;
    size_t n_late, cap_late;
};

struct fchild {
    struct tether_child pub; /* exit_fd = pidfd */
    struct fstate *st;
    pid_t pid;
    int reaped;
    int killed;
    /* the outcome's text; not a __thread buffer: lazy TLS allocation in a
     * dlopen'ed module aborts the process when malloc fails */
    char msg[64];
};

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int set_error(struct tether_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#include <stdarg.h>
static int set_error(struct tether_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->code = code;
    return code;
}

/* ---- in the child ------------------------------------------------------------- */

static void on_parent_death(int sig)
{
    (void)sig;
    kill(0, SIGKILL); /* the whole group: the actor and its grandchildren */
}

/* Set up the child before the actor runs: own process group, parent-death
 * signal, default signal dispositions, only stdio and the channel.
 * Async-signal-safe calls only (we are in a fork of a threaded process). */
static void child_setup(pid_t parent, int channel_fd)
{
    setpgid(0, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &sa, NULL); /* SIG_DFL */
    sa.sa_handler = on_parent_death;
    sigaction(DEATH_SIGNAL, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    prctl(PR_SET_PDEATHSIG, DEATH_SIGNAL);
    if (getppid() != parent) /* the parent died before prctl */
        kill(0, SIGKILL);
    /* keep it close-on-exec: a program the actor runs must not get it */
    if (channel_fd != CHANNEL_FD)
        dup3(channel_fd, CHANNEL_FD, O_CLOEXEC);
    syscall(SYS_close_range, CHANNEL_FD + 1, ~0U, 0);
}

/* ---- the spawner thread ----------------------------------------------------------- */

static pid_t do_fork(struct fstate *st, const struct tether_spawn_spec *spec, int *err)
{
    pid_t parent = getpid();
    if (st->mode == MODE_EXEC) {
        /* vfork + exec: the helper does the rest of child_setup itself */
        char ppid[32];
        snprintf(ppid, sizeof ppid, "%d", (int)parent);
        char *argv[] = {st->helper, "--channel-fd", "3", "--parent", ppid, (char *)spec->target, NULL};
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
        *err = rc;
        return rc ? -1 : pid;
    }
    pid_t pid = fork();
    if (pid < 0) {
        *err = errno;
        return -1;
    }
    if (pid == 0) {
        child_setup(parent, spec->channel_fd);
        volatile int flag = 0;
        int status = st->host->run_c_actor(CHANNEL_FD, spec->target, &flag);
        if (flag == 2) {
            /* Orphaned: the supervisor's end closed before it heard how the
             * actor ended. If it is dying, its parent-death signal may not
             * be sent yet: wait for the reparenting (a few ms at most), then
             * take the whole group down, so that no grandchild survives. A
             * supervisor that only aborted the channel stays our parent. */
            for (int i = 0; i < 50 && getppid() == parent; i++)
                usleep(1000);
            if (getppid() != parent)
                kill(0, SIGKILL);
        }
        _exit(status & 0xff); /* not exit(): the parent's atexit handlers are not ours */
    }
    setpgid(pid, pid); /* also here, against the race with the child's own call */
    *err = 0;
    return pid;
}

/* The spawner thread. Its one wait below has no deadline on purpose: it is
 * the idle wait of a service thread, not a wait anybody is blocked on.
 * Proof that it ends: every request (f_spawn) and close() set the predicate
 * under st->lock and broadcast; f_close sets `stop` before joining, so the
 * join in f_close returns once the fork in hand (a kernel call) is done. */
static void *spawner_main(void *arg)
{
    struct fstate *st = arg;
    pthread_mutex_lock(&st->lock);
    for (;;) {
        while (!st->req && !st->stop)
            pthread_cond_wait(&st->cond, &st->lock); /* idle wait: proof above */
        if (st->stop)
            break;
        struct request *r = st->req;
        st->req = r->next;
        r->taken = 1;
        pthread_mutex_unlock(&st->lock);
        r->pid = do_fork(st, r->spec, &r->err);
        pthread_mutex_lock(&st->lock);
        r->done = 1;
        pthread_cond_broadcast(&st->cond);
    }
    pthread_mutex_unlock(&st->lock);
    return NULL;
}

/* Reap abandoned children that have ended since. Never blocks (WNOHANG). */
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
    pthread_mutex_unlock(&st->lock);
}

/* Reap a child we just SIGKILLed, waiting at most 1 s (a process stuck in
 * the kernel may take longer: it is then left as a zombie for the host). */
static void reap_killed(pid_t pid)
{
    int64_t deadline = mono_ns() + 1000000000;
    while (waitpid(pid, NULL, WNOHANG) == 0 && mono_ns() < deadline)
        usleep(1000);
}

/* ---- the vtable ---------------------------------------------------------------------- */

static int f_open(const struct tether_backend_host *host, const struct tether_options *opts,
                  void **state, struct tether_error *err)
{
    enum mode mode = MODE_FORK;
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
        else
            return set_error(err, TETHER_ECONFIG,
                             "unknown option '%s' (the fork backend takes mode, helper)", k);
    }
    struct fstate *st = calloc(1, sizeof *st);
    if (!st)
        return set_error(err, TETHER_ENOMEM, "out of memory");
    st->host = host;
    st->mode = mode;
    if (mode == MODE_EXEC) {
        if (!helper)
            helper = getenv("TETHER_ACTOR_HELPER");
        if (!helper) {
            free(st);
            return set_error(err, TETHER_ECONFIG, "mode exec needs option helper: PATH of tether-actor");
        }
        char buf[4096];
        if (helper[0] != '/' && opts->config_dir)
            snprintf(buf, sizeof buf, "%s/%s", opts->config_dir, helper);
        else
            snprintf(buf, sizeof buf, "%s", helper);
        if (access(buf, X_OK) != 0) {
            int e = errno;
            free(st);
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
    int rc = pthread_create(&st->spawner, NULL, spawner_main, st);
    if (rc) {
        free(st->helper);
        free(st);
        return set_error(err, TETHER_ESYS, "cannot start the spawner thread: %s", strerror(rc));
    }
    *state = st;
    return 0;
}

static void f_close(void *state)
{
    struct fstate *st = state;
    pthread_mutex_lock(&st->lock);
    st->stop = 1;
    pthread_cond_broadcast(&st->cond);
    pthread_mutex_unlock(&st->lock);
    /* Bounded: the spawner finishes the fork in hand (if any) and exits. */
    pthread_join(st->spawner, NULL);
    reap_late(st);
    for (size_t i = 0; i < st->n_late; i++)
        close(st->late[i]); /* still running: left to the host (or init) */
    free(st->late);
    pthread_cond_destroy(&st->cond);
    pthread_mutex_destroy(&st->lock);
    free(st->helper);
    free(st);
}

static int f_spawn(void *state, const struct tether_spawn_spec *spec, struct tether_child **out,
                   struct tether_error *err)
{
    struct fstate *st = state;
    struct request r = {.spec = spec, .pid = -1};
    if (__atomic_load_n(&st->n_late, __ATOMIC_RELAXED)) /* a hint; reap_late locks */
        reap_late(st);
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
    if (!r.done || r.pid < 0) {
        const char *why = r.done ? strerror(r.err) : "the spawner did not answer in time";
        if (r.done && st->mode == MODE_EXEC)
            return set_error(err, TETHER_ESPAWN, "cannot start %s: %s", st->helper, why);
        return set_error(err, TETHER_ESPAWN, "fork: %s", why);
    }
    int pidfd = (int)syscall(SYS_pidfd_open, r.pid, 0);
    if (pidfd < 0) {
        int e = errno;
        kill(-r.pid, SIGKILL);
        kill(r.pid, SIGKILL);
        reap_killed(r.pid);
        return set_error(err, TETHER_ESPAWN, "pidfd_open: %s", strerror(e));
    }
    fcntl(pidfd, F_SETFD, FD_CLOEXEC);
    struct fchild *c = calloc(1, sizeof *c);
    if (!c) {
        kill(-r.pid, SIGKILL);
        close(pidfd);
        reap_killed(r.pid);
        return set_error(err, TETHER_ENOMEM, "out of memory");
    }
    c->st = st;
    c->pid = r.pid;
    c->pub.exit_fd = pidfd;
    c->pub.pid = r.pid;
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

static int f_hard_kill(struct tether_child *child)
{
    struct fchild *c = (struct fchild *)child;
    if (c->reaped)
        return 0;
    c->killed = 1;
    /* the group first (grandchildren), then the actor through its pidfd,
     * which cannot hit a recycled pid */
    kill(-c->pid, SIGKILL);
    syscall(SYS_pidfd_send_signal, c->pub.exit_fd, SIGKILL, NULL, 0);
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

static int f_reap(struct tether_child *child, int64_t deadline_ns, struct tether_outcome *out)
{
    struct fchild *c = (struct fchild *)child;
    if (__atomic_load_n(&c->st->n_late, __ATOMIC_RELAXED)) /* a hint; reap_late locks */
        reap_late(c->st);
    int64_t left = deadline_ns - mono_ns();
    struct pollfd p = {.fd = c->pub.exit_fd, .events = POLLIN};
    if (poll(&p, 1, left > 0 ? (int)((left + 999999) / 1000000) : 0) <= 0)
        return TETHER_ETIMEDOUT; /* bounded by the deadline */
    /* The actor is a zombie: its pid (and so its group id) cannot be reused
     * yet. Take whatever is left of its group before reaping it. */
    kill(-c->pid, SIGKILL);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid((idtype_t)P_PIDFD, (id_t)c->pub.exit_fd, &si, WEXITED | WNOHANG) != 0 ||
        si.si_pid == 0)
        return TETHER_ETIMEDOUT;
    c->reaped = 1;
    memset(out, 0, sizeof *out);
    char *msg = c->msg;
    if (si.si_code == CLD_EXITED) {
        out->kind = TETHER_OUTCOME_EXITED;
        out->code = si.si_status;
        snprintf(msg, sizeof c->msg, "exited with status %d", si.si_status);
    } else {
        out->kind = TETHER_OUTCOME_KILLED;
        out->signal = si.si_status;
        snprintf(msg, sizeof c->msg, "killed by signal %d (SIG%s)%s", si.si_status,
                 signame(si.si_status), si.si_code == CLD_DUMPED ? ", core dumped" : "");
    }
    out->message = msg;
    return 0;
}

static void f_release(struct tether_child *child)
{
    struct fchild *c = (struct fchild *)child;
    if (!c->reaped) {
        /* Abandoned (a process that SIGKILL did not end in time: stuck in
         * the kernel, or a machine too busy to run its exit). Kill again
         * and keep its pidfd, so that it is reaped once it ends. */
        kill(-c->pid, SIGKILL);
        syscall(SYS_pidfd_send_signal, c->pub.exit_fd, SIGKILL, NULL, 0);
        struct fstate *st = c->st;
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
            st->late[st->n_late] = c->pub.exit_fd;
            __atomic_store_n(&st->n_late, st->n_late + 1, __ATOMIC_RELAXED);
            c->pub.exit_fd = -1;
        }
        pthread_mutex_unlock(&st->lock);
    }
    if (c->pub.exit_fd >= 0)
        close(c->pub.exit_fd);
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
};

TETHER_BACKEND_DEFINE(fork_backend)
