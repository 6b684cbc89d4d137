/* template.c - a minimal, correct tether backend, built against the
 * installed package only:  make  (see Makefile; needs pkg-config tether).
 *
 * Actors run as processes started with posix_spawn: each is the installed
 * exec helper, tether-actor(1), loading the C actor module named by the
 * target, in a process group of its own. Copy this file and change what
 * your backend does differently; keep the contracts in tether_backend(3):
 * soft_cancel, hard_kill, abort_channels, reap and release never block
 * (the core calls them with its lock held); spawn owns channel_fd on
 * success and on failure.
 *
 * Why a spawner thread. tether-actor arms a parent-death signal
 * (PR_SET_PDEATHSIG), and Linux sends it when the *thread* that created the
 * child exits, not when the process does. spawn() runs on whatever program
 * thread called tether_spawn(); if that thread later exits, an actor it had
 * created directly would be killed though nobody asked (scenario
 * spawn.thread-exits). So every child is created by one long-lived spawner
 * thread per backend state, which lives until close(): the core calls
 * close() only after every child was released (killed or reaped).
 *
 * Containment: a keeper per actor. A process group is not enough: a
 * descendant that calls setsid() or setpgid() (a daemon's double fork)
 * leaves the actor's group and would survive the group kill (scenarios
 * orphan.escaped-descendant, orphan.escaped-parent-dies). So the spawner
 * forks a small keeper process per actor, which the helper runs under:
 *
 *   supervisor --fork--> keeper (child subreaper, own group) --spawn--> tether-actor
 *
 * PR_SET_CHILD_SUBREAPER makes every orphaned descendant of the actor the
 * keeper's child, escaped or not. The keeper ends when the actor ends, at
 * teardown (our SIGTERM) or when the supervisor dies (its parent-death
 * signal is SIGTERM): it kills the actor's group, then kills and reaps its
 * children until none is left, reports the actor's wait status, and
 * exits. The supervisor watches the keeper (its pidfd is exit_fd). It
 * needs no privilege; a PID namespace or a cgroup (what the fork backend
 * uses when it can, see tether(1)) also holds a process that escapes on
 * purpose, but needs root or a delegated cgroup.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <tether/backend.h>

#ifndef TETHER_ACTOR_HELPER /* from pkg-config --variable=actorhelper tether */
#error "build with -DTETHER_ACTOR_HELPER=\"$(pkg-config --variable=actorhelper tether)\""
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

extern char **environ;

/* One spawn request, on the stack of the thread inside spawn(). */
struct request {
    const struct tether_spawn_spec *spec;
    struct request *next;
    int taken; /* the spawner has started it */
    int done;  /* ...and finished: pid or err is set */
    pid_t pid; /* the keeper */
    int report; /* read end of the keeper's report pipe */
    int err;    /* fork's or pipe's error number, or 0 */
};

struct state {
    pthread_t spawner;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* on CLOCK_MONOTONIC, the clock of the deadlines */
    struct request *queue; /* requests not yet taken, oldest first */
    int stop;
};

struct child {
    struct tether_child pub; /* first: the core sees only this; exit_fd: the keeper's pidfd */
    pid_t pid;    /* the actor (pub.pid) */
    int report;   /* the keeper's pipe: the actor's wait status comes last */
    int reaped;
    char msg[64]; /* the outcome's text */
};

static int64_t now_ns(void) /* CLOCK_MONOTONIC: the clock of tether_now_ns() */
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Start the helper: `tether-actor --channel-fd 3 --parent PID TARGET`, its
 * channel as fd 3 (not close-on-exec), stdio, nothing else. */
static int start_helper(const struct tether_spawn_spec *spec, pid_t *pid)
{
    char parent[32]; /* the keeper, the helper's parent */
    snprintf(parent, sizeof parent, "%d", (int)getpid());
    char *argv[] = {TETHER_ACTOR_HELPER, "--channel-fd", "3", "--parent", parent,
                    (char *)spec->target, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawn_file_actions_adddup2(&fa, spec->channel_fd, 3); /* dup2 clears close-on-exec */
    posix_spawn_file_actions_addclosefrom_np(&fa, 4);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setpgroup(&at, 0); /* its own group: hard kill takes grandchildren */
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_USEVFORK);
    int rc = posix_spawn(pid, argv[0], &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    return rc;
}

/* Kill and reap every child of the keeper until none is left: killing one
 * hands its own children to us (we are their subreaper). Bounded: 1 s,
 * then a process stuck in the kernel is left to init. Needs /proc's
 * children lists (CONFIG_PROC_CHILDREN, on in the common distributions). */
static int keeper_sweep(void)
{
    int killed = 0;
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/children", (int)getpid());
    for (int round = 0; round < 1000; round++) { /* 1000 x 1 ms */
        char buf[4096];
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t got = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
        if (fd >= 0)
            close(fd);
        buf[got > 0 ? got : 0] = '\0';
        for (char *s = buf, *end; *s; s = end) {
            long kid = strtol(s, &end, 10);
            if (end == s)
                break;
            kill((pid_t)kid, SIGKILL);
        }
        int st;
        pid_t p;
        while ((p = waitpid(-1, &st, WNOHANG)) > 0)
            killed += WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
        if (p < 0 && errno == ECHILD)
            return killed; /* no child left */
        usleep(1000);
    }
    return killed;
}

/* The keeper's life (a forked child of a threaded process: async-signal-
 * safe calls only, plus posix_spawn, which is a vfork + exec). Reports the
 * actor's pid, then, when it has ended, its wait status and how many
 * other processes it killed. */
static void keeper_main(const struct tether_spawn_spec *spec, int report, pid_t supervisor)
{
    setpgid(0, 0);                    /* not in the actor's group: its group kill is not ours */
    prctl(PR_SET_CHILD_SUBREAPER, 1); /* the actor's orphaned descendants come to us */
    sigset_t all, want;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL); /* SIGCHLD and SIGTERM are taken below */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl); /* SIG_DFL: an inherited SIG_IGN for SIGCHLD would reap for us */
    sigaction(SIGCHLD, &dfl, NULL);
    sigaction(SIGTERM, &dfl, NULL);
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* the supervisor's death is a teardown */
    pid_t actor = -1;
    int rc = getppid() == supervisor ? start_helper(spec, &actor) : ESRCH; /* else it died first */
    int32_t v = rc ? -rc : (int32_t)actor;
    ssize_t w = write(report, &v, sizeof v);
    /* keep only the report pipe: not the actor's channel, not the
     * supervisor's other fds (another actor's channel held here would
     * never see end of file) */
    dup2(report, 3);
    syscall(SYS_close_range, 4, ~0U, 0);
    int status = 0, ended = actor <= 0;
    sigemptyset(&want);
    sigaddset(&want, SIGCHLD);
    sigaddset(&want, SIGTERM);
    while (!ended) {
        /* No deadline on purpose: the keeper lives as long as the actor.
         * SIGCHLD (the actor ended) or SIGTERM (teardown, or the
         * supervisor died) ends the wait; after SIGTERM the actor is
         * SIGKILLed and the next SIGCHLD ends the loop. */
        if (sigwaitinfo(&want, NULL) == SIGTERM) {
            kill(-actor, SIGKILL);
            kill(actor, SIGKILL);
        }
        int s;
        pid_t p;
        while ((p = waitpid(-1, &s, WNOHANG)) > 0)
            if (p == actor) {
                status = s;
                ended = 1;
            }
    }
    int32_t end[2] = {actor > 0 ? status : 0, keeper_sweep()};
    w = write(3, end, sizeof end);
    (void)w;
    _exit(0);
}

/* On the spawner thread: fork the keeper, which starts the helper. */
static void start_keeper(struct request *r)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC)) {
        r->err = errno;
        return;
    }
    pid_t supervisor = getpid();
    r->pid = fork();
    if (r->pid == 0) {
        close(p[0]);
        keeper_main(r->spec, p[1], supervisor);
    }
    r->err = r->pid < 0 ? errno : 0;
    close(p[1]);
    if (r->pid < 0)
        close(p[0]);
    else
        r->report = p[0];
}

/* The spawner thread. Its wait has no deadline on purpose: it is the idle
 * wait of a service thread, not a wait anybody is blocked on. It ends
 * because spawn() and close() change the predicate under the lock and
 * broadcast, and close() sets `stop` before joining. */
static void *spawner_main(void *arg)
{
    struct state *st = arg;
    pthread_mutex_lock(&st->lock);
    while (!st->stop) {
        struct request *r = st->queue;
        if (!r) {
            pthread_cond_wait(&st->cond, &st->lock); /* idle: proof above */
            continue;
        }
        st->queue = r->next;
        r->taken = 1;
        pthread_mutex_unlock(&st->lock);
        start_keeper(r); /* fork: a bounded kernel call */
        pthread_mutex_lock(&st->lock);
        r->done = 1;
        pthread_cond_broadcast(&st->cond);
    }
    pthread_mutex_unlock(&st->lock);
    return NULL;
}

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
    struct state *st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(err->msg, sizeof err->msg, "out of memory");
        return TETHER_ENOMEM;
    }
    pthread_mutex_init(&st->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&st->cond, &ca);
    pthread_condattr_destroy(&ca);
    int rc = pthread_create(&st->spawner, NULL, spawner_main, st);
    if (rc) {
        pthread_cond_destroy(&st->cond);
        pthread_mutex_destroy(&st->lock);
        free(st);
        snprintf(err->msg, sizeof err->msg, "cannot start the spawner thread: %s", strerror(rc));
        return TETHER_ESYS;
    }
    *state = st;
    return 0;
}

/* Called once, after every child was released: no request is pending. */
static void tpl_close(void *state)
{
    struct state *st = state;
    pthread_mutex_lock(&st->lock);
    st->stop = 1;
    pthread_cond_broadcast(&st->cond);
    pthread_mutex_unlock(&st->lock);
    pthread_join(st->spawner, NULL); /* bounded: the spawner is idle (no request pending) */
    pthread_cond_destroy(&st->cond);
    pthread_mutex_destroy(&st->lock);
    free(st);
}

/* After the keeper started (r->pid, r->report): its report of the
 * actor's pid (or -errno), at once after its posix_spawn, waited for until
 * the spawn deadline; then the child the core tracks. */
static int track_keeper(const struct tether_spawn_spec *spec, struct request *r,
                        struct tether_child **out, struct tether_error *err)
{
    /* the keeper reports the actor's pid (or -errno) at once after its
     * posix_spawn: waited for until the spawn deadline */
    int32_t v = 0;
    int64_t left = spec->spawn_deadline_ns - now_ns();
    struct pollfd rp = {.fd = r->report, .events = POLLIN};
    int got = poll(&rp, 1, left > 0 ? (int)(left / 1000000) + 1 : 0) > 0 &&
              read(r->report, &v, sizeof v) == (ssize_t)sizeof v;
    int pidfd = got && v > 0 ? (int)syscall(SYS_pidfd_open, r->pid, 0) : -1;
    struct child *c = pidfd >= 0 ? calloc(1, sizeof *c) : NULL;
    if (!c) {
        int e = !got ? ETIMEDOUT : v <= 0 ? -v : errno;
        if (got && v > 0)
            kill(-v, SIGKILL); /* the actor's group */
        kill(r->pid, SIGKILL);
        waitpid(r->pid, NULL, 0); /* a SIGKILLed child of ours: returns at once */
        close(r->report);
        if (pidfd >= 0)
            close(pidfd);
        snprintf(err->msg, sizeof err->msg, "cannot start %s: %s", TETHER_ACTOR_HELPER, strerror(e));
        return TETHER_ESPAWN;
    }
    c->pid = (pid_t)v;
    c->report = r->report;
    c->pub.exit_fd = pidfd; /* the core polls it: readable once the keeper exited */
    c->pub.pid = c->pid;
    *out = &c->pub;
    return 0;
}

/* Called without the supervisor's lock, on the program thread inside
 * tether_spawn(): hands the work to the spawner and waits for it, at most
 * until the spawn deadline while the request is queued. */
static int tpl_spawn(void *state, const struct tether_spawn_spec *spec, struct tether_child **out,
                     struct tether_error *err)
{
    struct state *st = state;
    struct request r = {.spec = spec, .pid = -1, .report = -1};
    pthread_mutex_lock(&st->lock);
    struct request **tail = &st->queue;
    while (*tail)
        tail = &(*tail)->next;
    *tail = &r;
    pthread_cond_broadcast(&st->cond);
    struct timespec ts = {(time_t)(spec->spawn_deadline_ns / 1000000000),
                          (long)(spec->spawn_deadline_ns % 1000000000)};
    while (!r.done) {
        int rc = pthread_cond_timedwait(&st->cond, &st->lock, &ts);
        if (rc == ETIMEDOUT && !r.taken) { /* never started: withdraw it */
            for (struct request **p = &st->queue; *p; p = &(*p)->next)
                if (*p == &r) {
                    *p = r.next;
                    break;
                }
            break;
        }
        if (rc == ETIMEDOUT) {
            /* Taken: only the fork in hand remains, a kernel call that
             * completes by itself; `r` must live until then. */
            int64_t later = now_ns() + 1000000;
            ts.tv_sec = (time_t)(later / 1000000000);
            ts.tv_nsec = (long)(later % 1000000000);
        }
    }
    pthread_mutex_unlock(&st->lock);
    close(spec->channel_fd); /* ours to close, success or not: the child has its copy */
    if (!r.done || r.err) {
        snprintf(err->msg, sizeof err->msg, "cannot start the keeper: %s",
                 r.done ? strerror(r.err) : "the spawner did not answer before the spawn deadline");
        return TETHER_ESPAWN;
    }
    return track_keeper(spec, &r, out, err);
}

static int tpl_soft_cancel(struct tether_child *child)
{
    (void)child; /* the core's CANCEL message is enough for C actors */
    return 0;
}

/* SIGTERM to the keeper, through its pidfd (which cannot hit a recycled
 * pid): it SIGKILLs the actor's process group (grandchildren too), then
 * whatever escaped the group, then exits. Not the group from here: the
 * actor is the keeper's child, and once the keeper has reaped it its
 * group id may be reused. A failure other than "already gone" is
 * returned: the core logs it (the clock drives the teardown). */
static int tpl_hard_kill(struct tether_child *child)
{
    struct child *c = (struct child *)child;
    if (c->reaped)
        return 0;
    if (syscall(SYS_pidfd_send_signal, c->pub.exit_fd, SIGTERM, NULL, 0) != 0 && errno != ESRCH)
        return TETHER_ESYS;
    return 0;
}

static int tpl_abort_channels(struct tether_child *child)
{
    (void)child; /* this backend holds no channel end: the core shuts its own */
    return 0;
}

/* The core calls reap as a poll (deadline_ns = now) when exit_fd polls
 * readable; a backend still honours any deadline it is given. */
static int tpl_reap(struct tether_child *child, int64_t deadline_ns, struct tether_outcome *out)
{
    struct child *c = (struct child *)child;
    int64_t left = deadline_ns - now_ns();
    struct pollfd p = {.fd = c->pub.exit_fd, .events = POLLIN};
    if (poll(&p, 1, left > 0 ? (int)((left + 999999) / 1000000) : 0) <= 0)
        return TETHER_ETIMEDOUT; /* bounded by the deadline */
    /* the keeper has swept the actor's processes and exited */
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid((idtype_t)P_PIDFD, (id_t)c->pub.exit_fd, &si, WEXITED | WNOHANG) != 0 ||
        si.si_pid == 0)
        return TETHER_ETIMEDOUT;
    c->reaped = 1;
    /* the actor's wait status and the number of descendants the keeper
     * killed, written before it exited; none if the keeper itself was
     * killed (then that is the outcome) */
    int32_t end[2] = {0, 0};
    memset(out, 0, sizeof *out);
    if (read(c->report, end, sizeof end) != (ssize_t)sizeof end) {
        out->kind = TETHER_OUTCOME_KILLED;
        out->signal = si.si_code == CLD_EXITED ? SIGKILL : si.si_status;
    } else if (WIFEXITED(end[0])) {
        out->kind = TETHER_OUTCOME_EXITED;
        out->code = WEXITSTATUS(end[0]);
    } else {
        out->kind = TETHER_OUTCOME_KILLED;
        out->signal = WTERMSIG(end[0]);
    }
    /* NULL: the core says what it saw; for an exit, a message is only
     * what the teardown adds (the core appends it to the actor's word) */
    int n = end[1];
    if (n > 0 && out->kind == TETHER_OUTCOME_EXITED)
        snprintf(c->msg, sizeof c->msg, "%d descendant%s killed", n, n == 1 ? "" : "s");
    else if (n > 0)
        snprintf(c->msg, sizeof c->msg, "killed by signal %d; %d descendant%s killed", out->signal,
                 n, n == 1 ? "" : "s");
    out->message = n > 0 ? c->msg : NULL;
    return 0;
}

/* After a reap, or when the core abandons the child: never blocks. An
 * unreaped keeper gets SIGTERM again (it kills the actor's group and
 * sweeps) and is left to the host (or init) to reap. */
static void tpl_release(struct tether_child *child)
{
    struct child *c = (struct child *)child;
    if (!c->reaped)
        syscall(SYS_pidfd_send_signal, c->pub.exit_fd, SIGTERM, NULL, 0);
    close(c->report);
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
