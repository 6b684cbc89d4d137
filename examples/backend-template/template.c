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
#include <string.h>
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
    pid_t pid;
    int err; /* posix_spawn's error number, or 0 */
};

struct state {
    pthread_t spawner;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* on CLOCK_MONOTONIC, the clock of the deadlines */
    struct request *queue; /* requests not yet taken, oldest first */
    int stop;
};

struct child {
    struct tether_child pub; /* first: the core sees only this; exit_fd is a pidfd */
    pid_t pid;
    int reaped;
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
    char parent[32];
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
        r->err = start_helper(r->spec, &r->pid); /* vfork + exec: a bounded kernel call */
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

/* Called without the supervisor's lock, on the program thread inside
 * tether_spawn(): hands the work to the spawner and waits for it, at most
 * until the spawn deadline while the request is queued. */
static int tpl_spawn(void *state, const struct tether_spawn_spec *spec, struct tether_child **out,
                     struct tether_error *err)
{
    struct state *st = state;
    struct request r = {.spec = spec, .pid = -1};
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
            /* Taken: only the vfork + exec in hand remains, a kernel call
             * that completes by itself; `r` must live until then. */
            int64_t later = now_ns() + 1000000;
            ts.tv_sec = (time_t)(later / 1000000000);
            ts.tv_nsec = (long)(later % 1000000000);
        }
    }
    pthread_mutex_unlock(&st->lock);
    close(spec->channel_fd); /* ours to close, success or not: the child has its copy */
    if (!r.done || r.err) {
        snprintf(err->msg, sizeof err->msg, "cannot start %s: %s", TETHER_ACTOR_HELPER,
                 r.done ? strerror(r.err) : "the spawner did not answer before the spawn deadline");
        return TETHER_ESPAWN;
    }
    int pidfd = (int)syscall(SYS_pidfd_open, r.pid, 0);
    struct child *c = pidfd >= 0 ? calloc(1, sizeof *c) : NULL;
    if (!c) {
        int e = errno;
        kill(-r.pid, SIGKILL);
        kill(r.pid, SIGKILL);
        waitpid(r.pid, NULL, 0); /* a SIGKILLed child of ours: returns at once */
        if (pidfd >= 0)
            close(pidfd);
        snprintf(err->msg, sizeof err->msg, "cannot track the child: %s", strerror(e));
        return TETHER_ESPAWN;
    }
    fcntl(pidfd, F_SETFD, FD_CLOEXEC);
    c->pid = r.pid;
    c->pub.exit_fd = pidfd; /* the core polls it: readable once the child exited */
    c->pub.pid = r.pid;
    *out = &c->pub;
    return 0;
}

static int tpl_soft_cancel(struct tether_child *child)
{
    (void)child; /* the core's CANCEL message is enough for C actors */
    return 0;
}

/* The whole process group (grandchildren too), and the child itself through
 * its pidfd, which cannot hit a recycled pid. A failure other than "already
 * gone" is returned: the core logs it (the clock drives the teardown). */
static int tpl_hard_kill(struct tether_child *child)
{
    struct child *c = (struct child *)child;
    if (c->reaped)
        return 0;
    int rc = 0;
    if (kill(-c->pid, SIGKILL) != 0 && errno != ESRCH)
        rc = TETHER_ESYS;
    if (syscall(SYS_pidfd_send_signal, c->pub.exit_fd, SIGKILL, NULL, 0) != 0 && errno != ESRCH)
        rc = TETHER_ESYS;
    return rc;
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
    kill(-c->pid, SIGKILL); /* leftovers of its group; the zombie pins the group id */
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid((idtype_t)P_PIDFD, (id_t)c->pub.exit_fd, &si, WEXITED | WNOHANG) != 0 ||
        si.si_pid == 0)
        return TETHER_ETIMEDOUT;
    c->reaped = 1;
    memset(out, 0, sizeof *out);
    if (si.si_code == CLD_EXITED) {
        out->kind = TETHER_OUTCOME_EXITED;
        out->code = si.si_status;
    } else {
        out->kind = TETHER_OUTCOME_KILLED;
        out->signal = si.si_status;
    }
    return 0; /* out->message stays NULL: the core says what it saw */
}

/* After a reap, or when the core abandons the child: never blocks. An
 * unreaped child gets SIGKILL again and is left to the host (or init). */
static void tpl_release(struct tether_child *child)
{
    struct child *c = (struct child *)child;
    if (!c->reaped)
        kill(-c->pid, SIGKILL);
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
