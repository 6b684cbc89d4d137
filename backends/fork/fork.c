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
 * Python targets (path/file.py:FUNC) run in either mode in an exec'd
 * tether-pyactor (options: { python_helper: PATH }), the same command line
 * as tether-actor: Python is never initialised in a fork of the host.
 *
 * Containment (options: { containment: auto | pidns | cgroup | subreaper |
 * group }): what takes down every process the actor started, however it
 * detached (setsid, setpgid, double fork). `auto` picks the strongest that
 * works at open; one asked for by name that does not work is an error.
 *   pidns      a PID namespace per actor. Its PID 1 is a tiny init (our
 *              child) whose child is the actor; it reaps the actor and
 *              whatever reparents to it, and reports the actor's wait
 *              status through a pipe (contain.c: how it starts). Killing the init kills
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
 *
 * Here: the actor process, the spawner thread and the vtable. The
 * containment mechanisms are in contain.c; fork.h has the shared state.
 */
#define _GNU_SOURCE
#include "fork.h"

int set_error(struct tether_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->code = code;
    return code;
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

int python_target(const char *target)
{
    const char *colon = strrchr(target, ':');
    return colon && colon - target >= 3 && !memcmp(colon - 3, ".py", 3);
}

/* Start the actor: fork (fork mode) or vfork + exec of the helper (see
 * fork.h); a Python target: vfork + exec of tether-pyactor in either mode. */
pid_t start_actor(struct fstate *st, struct request *r, pid_t parent)
{
    const struct tether_spawn_spec *spec = r->spec;
    int py = python_target(spec->target);
    if (st->mode == MODE_EXEC || py) {
        /* vfork + exec: the helper does the rest of child_setup itself */
        char *exe = py ? st->py_helper : st->helper;
        char ppid[32];
        snprintf(ppid, sizeof ppid, "%d", (int)parent);
        char *argv[] = {exe, "--channel-fd", "3", "--parent", ppid, (char *)spec->target,
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
        int rc = posix_spawn(&pid, exe, &fa, &at, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&at);
        if (rc) {
            r->err = rc;
            r->what = exe;
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
             * supervisor that only aborted the channel (or an actor that shut
             * its own end) stays our parent: the wait then runs out (50 ms).
             * Not when our parent is PID 1, a namespace's init (the pidns
             * containment's, which dies with the supervisor): its death
             * kills every process of the namespace, grandchildren included,
             * and the 50 ms made every such end 50 ms late (peer-vanishes
             * took 55 ms of its 102 ms bound, 140 ms under load). */
            for (int i = 0; parent != 1 && i < 50 && getppid() == parent; i++)
                usleep(1000);
            if (getppid() != parent)
                on_parent_death(0);
        }
        _exit(status & 0xff); /* not exit(): the parent's atexit handlers are not ours */
    }
    setpgid(pid, pid); /* also here, against the race with the child's own call */
    return pid;
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

static void free_state(struct fstate *st)
{
    if (st->own_ns_fd >= 0)
        close(st->own_ns_fd);
    if (st->init_fd >= 0)
        close(st->init_fd);
    if (st->self_pidfd >= 0)
        close(st->self_pidfd);
    if (st->cg_base) {
        rmdir(st->cg_base);
        free(st->cg_base);
    }
    free(st->helper);
    free(st->py_helper);
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
    const char *helper = NULL, *py_helper = NULL;
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
        else if (!strcmp(k, "python_helper"))
            py_helper = v;
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
                             "unknown option '%s' (the fork backend takes mode, helper, python_helper, "
                             "containment)",
                             k);
    }
    struct fstate *st = calloc(1, sizeof *st);
    if (!st)
        return set_error(err, TETHER_ENOMEM, "out of memory");
    st->host = host;
    st->mode = mode;
    st->contain = contain;
    st->own_ns_fd = -1;
    st->init_fd = -1;
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
    if (!py_helper)
        py_helper = getenv("TETHER_PYACTOR_HELPER");
    if (py_helper && *py_helper) {
        /* Optional: C actors do not need it (a build without the subint
         * backend has no tether-pyactor); a Python target is refused at
         * spawn with the reason, naming the path. */
        char buf[4096];
        if (py_helper[0] != '/' && opts->config_dir)
            snprintf(buf, sizeof buf, "%s/%s", opts->config_dir, py_helper);
        else
            snprintf(buf, sizeof buf, "%s", py_helper);
        st->py_errno = access(buf, X_OK) != 0 ? errno : 0;
        st->py_helper = strdup(buf);
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
    int py = python_target(spec->target);
    if (py && st->py_helper && st->py_errno) {
        close(spec->channel_fd);
        return set_error(err, TETHER_ESPAWN, "%s: a Python target: option python_helper: %s: %s",
                         spec->target, st->py_helper, strerror(st->py_errno));
    }
    if (py && !st->py_helper) {
        close(spec->channel_fd);
        return set_error(err, TETHER_ESPAWN,
                         "%s: a Python target, and the fork backend has no python_helper "
                         "(option python_helper: PATH of tether-pyactor, or "
                         "TETHER_PYACTOR_HELPER; built with the subint backend)",
                         spec->target);
    }
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
        if (st->mode == MODE_FORK && !py && (r.cg_fd = open(procs, O_WRONLY | O_CLOEXEC)) < 0) {
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
        /* a keeper (forked pidns init, subreaper) reports the actor's pid
         * first (at once, after a fork); the exec'd pidns init's vfork
         * child has told us already */
        int32_t v = r.actor;
        struct pollfd p = {.fd = r.keeper_rd, .events = POLLIN};
        int64_t left = spec->spawn_deadline_ns - mono_ns();
        int got = v > 0;
        if (!got && poll(&p, 1, left > 0 ? (int)(left / 1000000) + 1 : 0) > 0) /* bounded: spawn deadline */
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
    .languages = "c,python", /* Python targets: tether-pyactor (option python_helper) */
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
