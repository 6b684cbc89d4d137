/* backends/slurm - actors as Slurm job steps.
 *
 * Each actor is one `srun -u -N1 -n1` running the exec helper
 * (tether-actor --channel-stdio --end-token TOKEN TARGET) on a node. The
 * actor's channel is carried over srun's stdin and stdout: the core's
 * socketpair end is given to srun as both (srun -u passes bytes unchanged
 * both ways), so nothing in the supervisor pumps bytes. srun's stderr is
 * a pipe to the watcher thread (watch.c), which learns from the helper's
 * end record how the actor ended without waiting for srun, which exits
 * only once Slurm has completed the job (slurm.h). The exit fd is an
 * eventfd the watcher sets.
 *
 * Teardown, mapped onto Slurm's own guarantees:
 *   soft cancel  the core's CANCEL frame (nothing to add);
 *   hard kill    SIGKILL of srun: its "shepherd" process then SIGKILLs
 *                the step, ~0.1 s later; and `scancel --signal=KILL
 *                JOB.0` from the killer thread (cmd.c; JOB.STEP is
 *                immediate, `scancel JOB` graceful). The descendants
 *                counted are those the helper last reported alive (it
 *                reports their number when it changes, looked at after
 *                100 ms, then at doubling intervals up to 1 s).
 * Slurm's cgroup process tracking (ProctrackType=proctrack/cgroup) kills
 * every process of the step, however it detached, when the step ends.
 *
 * Orphans: srun is started in a session of its own (a group kill of the
 * supervisor does not take the shepherd too) with a parent-death SIGKILL,
 * from one long-lived spawner thread per backend state (backends/
 * spawner.h: the signal fires when the *thread* that forked exits). Slurm's
 * InactiveLimit is the backstop when srun and its shepherd both die;
 * `tether reap -b slurm` finds what is left: every job name says which
 * supervisor owns it (PREFIX:HOST:PID:STARTTIME:ACTOR, STARTTIME from
 * /proc/PID/stat).
 *
 * Options (plugins.yaml): partition, account, time_limit, srun_args,
 * helper, job_name. Checked at open: srun, scancel, squeue and scontrol in
 * PATH, a controller that answers `scontrol ping`, the partition.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <tether/backend.h>

#include "slurm.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

#define MAX_ARGS SLURM_MAX_ARGS

/* a spawner request: fork srun with these */
struct srun_req {
    struct spawner_req base; /* first */
    char *const *argv;
    int channel_fd, err_fd;
    pid_t pid;
    int err; /* errno of a failed fork, or 0 */
};

int64_t slurm_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

__attribute__((format(printf, 3, 4))) static int set_error(struct tether_error *err, int code,
                                                           const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->code = code;
    return code;
}

/* ---- the spawner thread ----------------------------------------------------------------- */

/* fork + exec srun: own session, parent-death SIGKILL, the channel as
 * stdin and stdout, err_fd (the watcher's pipe) as stderr. In the child
 * only async-signal-safe calls (we are a fork of a threaded process). */
static pid_t fork_srun(char *const argv[], int channel_fd, int err_fd, int *err)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        *err = errno;
        return -1;
    }
    if (pid == 0) {
        setsid();
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) /* the supervisor died before prctl */
            _exit(127);
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        for (int sig = 1; sig < NSIG; sig++)
            if (sig != SIGKILL && sig != SIGSTOP)
                sigaction(sig, &sa, NULL); /* SIG_DFL */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        dup2(channel_fd, 0);
        dup2(channel_fd, 1);
        dup2(err_fd, 2);
        syscall(SYS_close_range, 3, ~0U, 0);
        execv(argv[0], argv);
        _exit(127);
    }
    *err = 0;
    return pid;
}

/* The spawner's work, on its thread. */
static void run_srun(void *ctx, struct spawner_req *base)
{
    (void)ctx;
    struct srun_req *r = (struct srun_req *)base;
    r->pid = fork_srun(r->argv, r->channel_fd, r->err_fd, &r->err);
}

/* ---- options and checks ------------------------------------------------------------------------ */

/* srun options that would break the channel or the one-task step, or
 * that the backend sets itself. A short option is matched by its letter
 * (-oFILE too), a long one also when abbreviated (srun accepts that). */
static const char *const refused_short = "oielunNJ";
static const char *const refused_long[] = {
    "output", "input", "error", "pty", "label", "unbuffered", "ntasks", "nodes",
    "job-name", "open-mode", "ntasks-per-node", "multi-prog", "het-group", NULL};

static const char *refused_arg(const char *a)
{
    static char why[96];
    if (a[0] == '-' && a[1] && a[1] != '-') {
        if (strchr(refused_short, a[1])) {
            snprintf(why, sizeof why, "-%c", a[1]);
            return why;
        }
        return NULL;
    }
    if (a[0] == '-' && a[1] == '-' && a[2]) {
        size_t len = strcspn(a + 2, "=");
        for (int i = 0; refused_long[i]; i++)
            if (len >= 3 && len <= strlen(refused_long[i]) && !strncmp(a + 2, refused_long[i], len)) {
                snprintf(why, sizeof why, "--%s", refused_long[i]);
                return why;
            }
    }
    return NULL;
}

static int check_name(const char *key, const char *v, struct tether_error *err)
{
    if (!*v)
        return set_error(err, TETHER_ECONFIG, "option %s: empty", key);
    for (const char *p = v; *p; p++)
        if (isspace((unsigned char)*p) || *p == ':' || *p == ',' || !isprint((unsigned char)*p))
            return set_error(err, TETHER_ECONFIG,
                             "option %s: '%s' contains a space, ':', ',' or a control character", key, v);
    return 0;
}

/* HOST:PID:STARTTIME of this process (the ledger's owner). */
static int owner_tag(char *out, size_t n)
{
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0)
        return -1;
    host[strcspn(host, ".")] = '\0';
    FILE *fp = fopen("/proc/self/stat", "re");
    if (!fp)
        return -1;
    char buf[1024];
    size_t got = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[got] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long long start = 0;
    /* after "pid (comm)": state is field 3, starttime field 22 */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d "
                            "%*d %*d %llu", &start) != 1)
        return -1;
    snprintf(out, n, "%s:%d:%llu", host, (int)getpid(), start);
    return 0;
}

static void free_state(struct sstate *st)
{
    free(st->helper);
    free(st->partition);
    free(st->account);
    free(st->time_limit);
    free(st->prefix);
    for (int i = 0; i < st->n_extra; i++)
        free(st->extra[i]);
    free(st);
}

static int parse_options(struct sstate *st, const struct tether_options *opts, struct tether_error *err)
{
    const char *helper = NULL;
    for (size_t i = 0; i < opts->count; i++) {
        const char *k = opts->items[i].key, *v = opts->items[i].value;
        if (!strcmp(k, "partition")) {
            if (check_name(k, v, err))
                return err->code;
            st->partition = strdup(v);
        } else if (!strcmp(k, "account")) {
            if (check_name(k, v, err))
                return err->code;
            st->account = strdup(v);
        } else if (!strcmp(k, "job_name")) {
            if (check_name(k, v, err))
                return err->code;
            free(st->prefix);
            st->prefix = strdup(v);
        } else if (!strcmp(k, "time_limit")) {
            if (!*v || strspn(v, "0123456789:-") != strlen(v))
                return set_error(err, TETHER_ECONFIG,
                                 "option time_limit: '%s' is not a Slurm time (MINUTES, "
                                 "[HH:]MM:SS or D-HH[:MM[:SS]])", v);
            st->time_limit = strdup(v);
        } else if (!strcmp(k, "srun_args")) {
            char *copy = strdup(v);
            if (!copy)
                return set_error(err, TETHER_ENOMEM, "out of memory");
            for (char *save = NULL, *a = strtok_r(copy, " \t", &save); a;
                 a = strtok_r(NULL, " \t", &save)) {
                const char *bad = refused_arg(a);
                if (bad) {
                    set_error(err, TETHER_ECONFIG,
                              "option srun_args: '%s' is refused (%s would break the actor's "
                              "channel over one task's stdin/stdout, or is set by the backend)",
                              a, bad);
                    free(copy);
                    return err->code;
                }
                if (st->n_extra == MAX_ARGS - 16) {
                    free(copy);
                    return set_error(err, TETHER_ECONFIG, "option srun_args: more than %d arguments",
                                     MAX_ARGS - 16);
                }
                st->extra[st->n_extra++] = strdup(a);
            }
            free(copy);
        } else if (!strcmp(k, "helper")) {
            helper = v;
        } else {
            return set_error(err, TETHER_ECONFIG,
                             "unknown option '%s' (the slurm backend takes partition, account, "
                             "time_limit, srun_args, helper, job_name)", k);
        }
    }
    if (!st->prefix)
        st->prefix = strdup("tether");
    if (!helper)
        helper = getenv("TETHER_ACTOR_HELPER");
    if (!helper)
        return set_error(err, TETHER_ECONFIG, "option helper: the path of tether-actor on the nodes is not set");
    char buf[4096];
    if (helper[0] != '/' && opts->config_dir)
        snprintf(buf, sizeof buf, "%s/%s", opts->config_dir, helper);
    else
        snprintf(buf, sizeof buf, "%s", helper);
    st->helper = strdup(buf);
    /* The helper runs on the nodes: on this host it may be missing (a
     * login node without it), so only say so. */
    if (access(buf, X_OK) != 0)
        st->host->log("slurm", "helper %s is not executable here (%s); it must be on every node",
                      buf, strerror(errno));
    return 0;
}

/* Each check at open names itself in its error. */
static int check_cluster(struct sstate *st, struct tether_error *err)
{
    static const struct {
        const char *name;
        size_t off;
    } tools[] = {
        {"srun", offsetof(struct sstate, srun)},
        {"scancel", offsetof(struct sstate, scancel)},
        {"squeue", offsetof(struct sstate, squeue)},
    };
    for (size_t i = 0; i < sizeof tools / sizeof tools[0]; i++)
        if (slurm_find_in_path(tools[i].name, (char *)st + tools[i].off, 4096) != 0)
            return set_error(err, TETHER_ECONFIG,
                             "check 'slurm installed': %s not found in PATH (install the Slurm "
                             "client commands, e.g. Debian's slurm-client)", tools[i].name);
    char scontrol[4096], out[2048];
    if (slurm_find_in_path("scontrol", scontrol, sizeof scontrol) != 0)
        return set_error(err, TETHER_ECONFIG,
                         "check 'slurm installed': scontrol not found in PATH (install the Slurm "
                         "client commands, e.g. Debian's slurm-client)");
    int timed_out;
    char *ping[] = {scontrol, "ping", NULL};
    int status = slurm_run_cmd(st, NULL, ping, out, sizeof out, &timed_out);
    out[strcspn(out, "\n")] = '\0';
    if (timed_out)
        return set_error(err, TETHER_ECONFIG,
                         "check 'controller reachable': scontrol ping did not answer within %d s",
                         (int)(SLURM_CMD_TIMEOUT_NS / 1000000000));
    if (status != 0 || !strstr(out, "is UP"))
        return set_error(err, TETHER_ECONFIG,
                         "check 'controller reachable': scontrol ping: %s%s", out[0] ? out : "no answer",
                         getenv("SLURM_CONF") ? "" : " (SLURM_CONF is not set)");
    if (st->partition) {
        char *show[] = {scontrol, "-o", "show", "partition", st->partition, NULL};
        status = slurm_run_cmd(st, NULL, show, out, sizeof out, &timed_out);
        out[strcspn(out, "\n")] = '\0';
        if (status != 0 || strncmp(out, "PartitionName=", 14) != 0)
            return set_error(err, TETHER_ECONFIG,
                             "check 'partition exists': partition '%s': %s", st->partition,
                             timed_out ? "scontrol did not answer" : out);
    }
    return 0;
}

/* ---- the vtable ------------------------------------------------------------------------------------ */

/* Stop and join the threads started so far (spawner, killer, watcher:
 * each is 0 when not started). Bounded: the spawner finishes the fork in
 * hand, the killer the command in hand (SIGKILLed here), the watcher
 * waits at most ~3 s for the sruns still completing their jobs. */
static void stop_threads(struct sstate *st, int spawner, int killer, int watcher)
{
    pthread_mutex_lock(&st->lock);
    st->stop = 1;
    if (st->killer_cmd > 0)
        kill(st->killer_cmd, SIGKILL);
    pthread_cond_broadcast(&st->cond);
    pthread_mutex_unlock(&st->lock);
    slurm_wake(st);
    if (spawner)
        spawner_stop(&st->spawner);
    /* Bounded: the killer's only waits are its idle condition wait (woken
     * by the broadcast above, with stop set) and its command, SIGKILLed
     * above; the watcher's one wait is a poll that includes the wake
     * eventfd, written by slurm_wake above, and it reads stop each round. */
    if (killer)
        pthread_join(st->killer, NULL);
    if (watcher)
        pthread_join(st->watcher, NULL);
}

static void destroy_state(struct sstate *st)
{
    for (size_t i = 0; i < st->n_kills; i++)
        free(st->kills[i]);
    free(st->kills);
    if (st->wake_fd >= 0)
        close(st->wake_fd);
    pthread_cond_destroy(&st->cond);
    pthread_mutex_destroy(&st->lock);
    free_state(st);
}

static int start_threads(struct sstate *st, struct tether_error *err)
{
    int rc;
    st->spawner = (struct spawner){.lock = &st->lock, .cond = &st->cond, .run = run_srun, .ctx = st};
    if ((rc = spawner_start(&st->spawner)) != 0)
        return set_error(err, TETHER_ESYS, "cannot start the spawner thread: %s", strerror(rc));
    if ((rc = pthread_create(&st->killer, NULL, slurm_killer_main, st)) != 0) {
        stop_threads(st, 1, 0, 0);
        return set_error(err, TETHER_ESYS, "cannot start the killer thread: %s", strerror(rc));
    }
    if ((rc = pthread_create(&st->watcher, NULL, slurm_watcher_main, st)) != 0) {
        stop_threads(st, 1, 1, 0);
        return set_error(err, TETHER_ESYS, "cannot start the watcher thread: %s", strerror(rc));
    }
    return 0;
}

static int s_open(const struct tether_backend_host *host, const struct tether_options *opts,
                  void **state, struct tether_error *err)
{
    struct sstate *st = calloc(1, sizeof *st);
    if (!st)
        return set_error(err, TETHER_ENOMEM, "out of memory");
    st->host = host;
    pthread_mutex_init(&st->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&st->cond, &ca);
    pthread_condattr_destroy(&ca);
    st->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int rc = st->wake_fd < 0 ? set_error(err, TETHER_ESYS, "eventfd: %s", strerror(errno)) : 0;
    if (!rc)
        rc = parse_options(st, opts, err);
    if (!rc)
        rc = check_cluster(st, err);
    if (!rc && owner_tag(st->owner, sizeof st->owner) != 0)
        rc = set_error(err, TETHER_ESYS, "cannot read this process's start time (/proc/self/stat)");
    if (!rc)
        rc = start_threads(st, err);
    if (rc) {
        destroy_state(st);
        return rc;
    }
    *state = st;
    return 0;
}

static void s_close(void *state)
{
    struct sstate *st = state;
    /* Every child is released by now. The watcher first reaps the sruns
     * of actors that ended by themselves while they complete their jobs
     * (at most 100 ms: watch.c, stopping), and only then does the spawner
     * thread end: its end sends every srun it started its parent-death
     * signal (SIGKILL), which turns a normal end into a kill that Slurm
     * records CANCELLED and that holds the node COMPLETING for seconds.
     * Then the sruns it killed are reaped (bounded: slurm_reap_rest). */
    stop_threads(st, 0, 1, 1);
    stop_threads(st, 1, 0, 0);
    slurm_reap_rest(st);
    destroy_state(st);
}

/* srun's command line for one actor, into argv (room for MAX_ARGS + 16);
 * `buf` holds the formatted options. */
struct srun_line {
    char jobname[sizeof((struct schild *)0)->name + 16];
    char part[300], acct[300], tl[300];
    char *argv[MAX_ARGS + 16];
};

static void srun_argv(struct sstate *st, struct schild *c, const char *target, struct srun_line *l)
{
    snprintf(l->jobname, sizeof l->jobname, "--job-name=%s", c->name);
    int k = 0;
    l->argv[k++] = st->srun;
    l->argv[k++] = "--unbuffered";
    l->argv[k++] = "--quiet";
    l->argv[k++] = "--nodes=1";
    l->argv[k++] = "--ntasks=1";
    l->argv[k++] = l->jobname;
    if (st->partition) {
        snprintf(l->part, sizeof l->part, "--partition=%s", st->partition);
        l->argv[k++] = l->part;
    }
    if (st->account) {
        snprintf(l->acct, sizeof l->acct, "--account=%s", st->account);
        l->argv[k++] = l->acct;
    }
    if (st->time_limit) {
        snprintf(l->tl, sizeof l->tl, "--time=%s", st->time_limit);
        l->argv[k++] = l->tl;
    }
    for (int i = 0; i < st->n_extra; i++)
        l->argv[k++] = st->extra[i];
    l->argv[k++] = st->helper;
    l->argv[k++] = "--channel-stdio";
    l->argv[k++] = "--end-token";
    l->argv[k++] = c->token;
    l->argv[k++] = (char *)target;
    l->argv[k] = NULL;
}

/* A new child: its job name, end token, exit eventfd and stderr pipe
 * (err[0] for the watcher, nonblocking; err[1] for srun). */
static struct schild *child_new(struct sstate *st, const struct tether_spawn_spec *spec, int err[2])
{
    struct schild *c = calloc(1, sizeof *c);
    unsigned char rnd[16];
    if (!c || getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        free(c);
        return NULL;
    }
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(c->token + 2 * i, 3, "%02x", rnd[i]);
    snprintf(c->name, sizeof c->name, "%s:%s:%llu", st->prefix, st->owner,
             (unsigned long long)spec->actor_id);
    c->st = st;
    c->errfd = c->pidfd = -1;
    c->pub.exit_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->pub.exit_fd < 0 || pipe2(err, O_CLOEXEC) != 0) {
        if (c->pub.exit_fd >= 0)
            close(c->pub.exit_fd);
        free(c);
        return NULL;
    }
    fcntl(err[0], F_SETFL, O_NONBLOCK);
    return c;
}

static int s_spawn(void *state, const struct tether_spawn_spec *spec, struct tether_child **out,
                   struct tether_error *err)
{
    struct sstate *st = state;
    int ep[2];
    struct schild *c = child_new(st, spec, ep);
    if (!c) {
        close(spec->channel_fd);
        return set_error(err, TETHER_ENOMEM, "cannot allocate an actor: %s", strerror(errno));
    }
    struct srun_line line;
    srun_argv(st, c, spec->target, &line);
    struct srun_req r = {.argv = line.argv, .channel_fd = spec->channel_fd, .err_fd = ep[1], .pid = -1};
    /* bounded by the spawn deadline while it waits its turn; then only the
     * fork in hand remains (backends/spawner.h) */
    int done = spawner_submit(&st->spawner, &r.base, spec->spawn_deadline_ns);
    close(spec->channel_fd); /* srun has its copies */
    close(ep[1]);
    c->errfd = ep[0];
    int pidfd = done && r.pid > 0 ? (int)syscall(SYS_pidfd_open, r.pid, 0) : -1;
    if (pidfd < 0) {
        int e = errno;
        if (done && r.pid > 0) {
            kill(r.pid, SIGKILL);
            /* SIGKILLed: ends at once; bounded poll of 1 s all the same */
            for (int i = 0; i < 1000 && waitpid(r.pid, NULL, WNOHANG) == 0; i++)
                usleep(1000);
        }
        close(c->errfd);
        close(c->pub.exit_fd);
        free(c);
        return set_error(err, TETHER_ESPAWN, "cannot start %s: %s", st->srun,
                         !done ? "the spawner did not answer in time"
                               : strerror(r.pid < 0 ? r.err : e));
    }
    fcntl(pidfd, F_SETFD, FD_CLOEXEC);
    c->pid = r.pid;
    c->pidfd = pidfd;
    c->pub.pid = r.pid;
    pthread_mutex_lock(&st->lock);
    c->next = st->children;
    st->children = c;
    pthread_mutex_unlock(&st->lock);
    slurm_wake(st);
    *out = &c->pub;
    return 0;
}

static int s_soft_cancel(struct tether_child *child)
{
    /* The core's CANCEL frame is the request. */
    (void)child;
    return 0;
}

static int s_hard_kill(struct tether_child *child)
{
    struct schild *c = (struct schild *)child;
    struct sstate *st = c->st;
    int wake = 0;
    pthread_mutex_lock(&st->lock);
    if (!c->kill_asked && !c->rec && !c->srun_done) {
        /* SIGTERM of srun (not of its process group): srun forwards
         * SIGKILL to the step (Slurm's cgroup tracking kills every process
         * in it), waits for the step's end, then completes the job itself
         * (65-75 ms, measured). For an srun still there
         * SLURM_TERM_GRACE_NS later the watcher queues scancel
         * --signal=KILL JOB.0, and SIGKILLs it SLURM_KILL_GRACE_NS after
         * that (its shepherd then kills the step). The outcome
         * (killed) is known now: the kill is under way and nothing can
         * stop it; waiting for srun would wait for the controller (64 at
         * once: up to 0.5 s under load, beyond H).
         * Not SIGKILL at once: srun's shepherd then kills the step and
         * completes the job at the same moment, slurmd finds the step
         * still running and polls it once a second, and the node stays
         * COMPLETING 2-3 s, during which Slurm starts no new job on it (a
         * restarted actor waited PENDING (Resources), measured). Not
         * SIGUSR2 (the helper's counted kill): 64 forwarded signals at
         * once took srun longer than H (measured). */
        c->kill_asked = 1;
        c->term_deadline = slurm_mono_ns() + SLURM_TERM_GRACE_NS;
        syscall(SYS_pidfd_send_signal, c->pidfd, SIGTERM, NULL, 0);
        uint64_t one = 1;
        ssize_t w = write(c->pub.exit_fd, &one, sizeof one);
        (void)w; /* an eventfd: fails only at 2^64-1 */
        pthread_cond_broadcast(&st->cond);
        wake = 1;
    }
    pthread_mutex_unlock(&st->lock);
    if (wake)
        slurm_wake(st); /* the watcher's deadline changed */
    return 0;
}

static int s_abort_channels(struct tether_child *child)
{
    /* The supervisor keeps no end of the actor's channel (srun has it);
     * the core shuts its own. */
    (void)child;
    return 0;
}

static const char *sig_name(int sig)
{
    const char *n = sig > 0 && sig < 65 ? sigabbrev_np(sig) : NULL;
    return n ? n : "?";
}

/* The outcome of a child whose end is known. Caller holds st->lock. */
static void fill_outcome(struct schild *c, struct tether_outcome *out)
{
    memset(out, 0, sizeof *out);
    int used = 0;
    if (c->rec && c->rec_sig) { /* the helper's record: what it saw */
        out->kind = TETHER_OUTCOME_KILLED;
        out->signal = c->rec_sig;
        used = snprintf(c->msg, sizeof c->msg, "step killed by signal %d (SIG%s)", c->rec_sig,
                        sig_name(c->rec_sig));
    } else if (c->rec) {
        out->kind = TETHER_OUTCOME_EXITED;
        out->code = c->rec_code;
        /* the status in words: the core shows it when the actor said
         * nothing (an actor that died while starting) */
        used = snprintf(c->msg, sizeof c->msg, "exited with status %d", c->rec_code);
    } else if (c->kill_asked) {
        /* the hard kill is under way (s_hard_kill): the helper will not
         * report */
        out->kind = TETHER_OUTCOME_KILLED;
        out->signal = SIGKILL;
        used = snprintf(c->msg, sizeof c->msg, "step killed (hard kill: SIGKILL through srun)");
    } else if (c->srun_code == CLD_EXITED && c->srun_status > 128 && c->srun_status < 128 + 65) {
        /* srun's status for a task killed by a signal: 128 + the signal */
        out->kind = TETHER_OUTCOME_KILLED;
        out->signal = c->srun_status - 128;
        used = snprintf(c->msg, sizeof c->msg, "step killed by signal %d (SIG%s)", out->signal,
                        sig_name(out->signal));
    } else if (c->srun_code == CLD_EXITED) {
        out->kind = TETHER_OUTCOME_EXITED;
        out->code = c->srun_status;
        used = snprintf(c->msg, sizeof c->msg, "exited with status %d", c->srun_status);
    } else {
        out->kind = TETHER_OUTCOME_KILLED;
        out->signal = c->srun_status;
        used = snprintf(c->msg, sizeof c->msg, "srun killed by signal %d (SIG%s)", c->srun_status,
                        sig_name(c->srun_status));
    }
    /* the helper's sweep; or, killed before it could report, what it last
     * saw alive (looked at up to 1 s before): the step's end killed those */
    int desc = c->rec ? c->rec_desc : c->kill_asked ? c->desc_seen : 0;
    if (desc > 0 && used >= 0 && (size_t)used < sizeof c->msg)
        snprintf(c->msg + used, sizeof c->msg - (size_t)used, "%s%d descendant%s killed (slurm step)",
                 used ? "; " : "", desc, desc == 1 ? "" : "s");
    out->message = c->msg[0] ? c->msg : NULL;
}

static int s_reap(struct tether_child *child, int64_t deadline_ns, struct tether_outcome *out)
{
    struct schild *c = (struct schild *)child;
    struct sstate *st = c->st;
    pthread_mutex_lock(&st->lock);
    struct timespec ts = {(time_t)(deadline_ns / 1000000000), (long)(deadline_ns % 1000000000)};
    /* bounded by the deadline (the core's is now: no wait) */
    while (!c->rec && !c->srun_done && !c->kill_asked && slurm_mono_ns() < deadline_ns)
        if (pthread_cond_timedwait(&st->cond, &st->lock, &ts) == ETIMEDOUT)
            break;
    int rc = TETHER_ETIMEDOUT;
    if (c->rec || c->srun_done || c->kill_asked) {
        c->reaped = 1;
        fill_outcome(c, out);
        rc = 0;
    }
    pthread_mutex_unlock(&st->lock);
    return rc;
}

static void s_release(struct tether_child *child)
{
    struct schild *c = (struct schild *)child;
    struct sstate *st = c->st;
    pthread_mutex_lock(&st->lock);
    if (!c->rec && !c->srun_done && !c->kill_asked) {
        /* Abandoned: no end within hard_kill. SIGKILL of srun: its shepherd
         * kills the step; scancel and InactiveLimit are the backstops. (A
         * hard kill under way is the watcher's: see term_overdue.) */
        syscall(SYS_pidfd_send_signal, c->pidfd, SIGKILL, NULL, 0);
        slurm_queue_scancel(st, c->name);
    }
    /* the watcher frees it once srun is reaped (srun may still be
     * completing the job after the helper's record) */
    c->released = 1;
    pthread_mutex_unlock(&st->lock);
    slurm_wake(st);
}

static const struct tether_backend slurm_backend = {
    .abi = TETHER_BACKEND_ABI,
    .size = sizeof(struct tether_backend),
    .name = "slurm",
    .language = "c",
    .caps = TETHER_CAP_OUT_OF_PROCESS | TETHER_CAP_SURVIVES_CRASH | TETHER_CAP_CAN_KILL,
    .open = s_open,
    .close = s_close,
    .spawn = s_spawn,
    .soft_cancel = s_soft_cancel,
    .hard_kill = s_hard_kill,
    .abort_channels = s_abort_channels,
    .reap = s_reap,
    .release = s_release,
    .note = "actors are Slurm job steps (srun): a spawn takes a few hundred ms; needs a "
            "reachable controller and tether-actor on every node",
};

TETHER_BACKEND_DEFINE(slurm_backend)
