/* backends/slurm - actors as Slurm job steps.
 *
 * Each actor is one `srun -u -N1 -n1` running the exec helper
 * (tether-actor --channel-stdio TARGET) on a node. The actor's channel is
 * carried over srun's stdin and stdout: the core's socketpair end is given
 * to srun as both (srun -u passes bytes unchanged both ways), so nothing in
 * the supervisor pumps bytes. The exit fd is srun's pidfd.
 *
 * Teardown, mapped onto Slurm's own guarantees:
 *   soft cancel  the core's CANCEL frame (nothing to add);
 *   hard kill    SIGKILL of srun: srun's own helper process (its
 *                "shepherd") then SIGKILLs the step, in ~0.1 s; and, from
 *                the backend's killer thread, `scancel --signal=KILL
 *                JOB.STEP` for a step whose shepherd cannot do it (JOB.STEP
 *                is immediate; `scancel JOB` is graceful, takes KillWait).
 *                The actor is reaped when srun is: its step's processes
 *                end within ~0.1 s after that, not before.
 * Slurm's cgroup process tracking (ProctrackType=proctrack/cgroup) kills
 * every process of the step, however it detached.
 *
 * Orphans: srun is started in a session of its own (a group kill of the
 * supervisor does not take the shepherd too) with a parent-death SIGKILL,
 * from one long-lived spawner thread per backend state (the signal fires
 * when the *thread* that forked exits). Slurm's InactiveLimit is the
 * backstop when srun and its shepherd both die; `tether reap -b slurm`
 * finds what is left: every job name says which supervisor owns it
 * (PREFIX:HOST:PID:STARTTIME:ACTOR, STARTTIME from /proc/PID/stat).
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
/* bound of every Slurm command the backend runs (scontrol ping, squeue,
 * scancel): Slurm's own MessageTimeout defaults to 10 s */
#define CMD_TIMEOUT_NS (10 * (int64_t)1000000000)

extern char **environ;

struct slurm_request {
    char *const *argv;
    int channel_fd, err_fd;
    pid_t pid;
    int err; /* errno of a failed fork, or 0 */
    int done;
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

/* ---- running Slurm commands ----------------------------------------------------------- */

/* The executable NAME in $PATH, into out. 0 or -1. */
static int find_in_path(const char *name, char *out, size_t n)
{
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    for (const char *p = path; *p;) {
        const char *colon = strchr(p, ':');
        size_t len = colon ? (size_t)(colon - p) : strlen(p);
        snprintf(out, n, "%.*s/%s", (int)len, len ? p : ".", name);
        struct stat sb;
        if (stat(out, &sb) == 0 && S_ISREG(sb.st_mode) && access(out, X_OK) == 0)
            return 0;
        p += len + (colon ? 1 : 0);
    }
    return -1;
}

/* Run argv with stdout and stderr into `out` (NUL-terminated, truncated),
 * stdin from /dev/null, at most CMD_TIMEOUT_NS (then SIGKILL). Returns the
 * wait status, or -1 (could not start, or timed out: *timed_out set).
 * `running`, if not NULL, holds the pid while it runs (under st->lock) so
 * that close() can end it early. */
static int run_cmd(struct sstate *st, pid_t *running, char *const argv[], char *out, size_t n,
                   int *timed_out)
{
    int p[2];
    *timed_out = 0;
    if (out && n)
        out[0] = '\0';
    if (pipe2(p, O_CLOEXEC) != 0)
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_adddup2(&fa, p[1], 2);
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(p[1]);
    if (rc) {
        close(p[0]);
        if (out)
            snprintf(out, n, "%s: %s", argv[0], strerror(rc));
        return -1;
    }
    if (running) {
        pthread_mutex_lock(&st->lock);
        *running = pid;
        pthread_mutex_unlock(&st->lock);
    }
    size_t got = 0;
    char sink[512];
    int64_t deadline = slurm_mono_ns() + CMD_TIMEOUT_NS;
    for (;;) {
        int64_t left = deadline - slurm_mono_ns();
        if (left <= 0) {
            *timed_out = 1;
            kill(pid, SIGKILL);
            break;
        }
        struct pollfd pf = {.fd = p[0], .events = POLLIN};
        if (poll(&pf, 1, (int)(left / 1000000) + 1) <= 0)
            continue;
        char *dst = out && got + 1 < n ? out + got : sink;
        size_t room = out && got + 1 < n ? n - 1 - got : sizeof sink;
        ssize_t r = read(p[0], dst, room);
        if (r <= 0)
            break; /* end of output: the command is exiting */
        if (dst != sink)
            got += (size_t)r;
    }
    if (out && n)
        out[got < n ? got : n - 1] = '\0';
    close(p[0]);
    int status = -1;
    /* Bounded: the command closed its output (it is exiting) or was
     * SIGKILLed above; a grandchild holding the pipe cannot hold us, the
     * wait is for our own child only, polled for at most 2 s. */
    int64_t reap_deadline = slurm_mono_ns() + 2 * (int64_t)1000000000;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (slurm_mono_ns() > reap_deadline) {
            kill(pid, SIGKILL);
            reap_deadline = slurm_mono_ns() + 1000000000;
        }
        usleep(1000);
    }
    if (running) {
        pthread_mutex_lock(&st->lock);
        *running = 0;
        pthread_mutex_unlock(&st->lock);
    }
    return *timed_out ? -1 : status;
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

/* The spawner thread. Its one wait has no deadline on purpose: it is the
 * idle wait of a service thread, nobody is blocked on it. Proof that it
 * ends: every request (s_spawn) and close() set the predicate under
 * st->lock and broadcast; close() sets `stop` before joining. */
static void *spawner_main(void *arg)
{
    struct sstate *st = arg;
    pthread_mutex_lock(&st->lock);
    for (;;) {
        while (!st->req && !st->stop)
            pthread_cond_wait(&st->cond, &st->lock); /* idle wait: proof above */
        if (st->stop)
            break;
        struct slurm_request *r = st->req;
        st->req = NULL;
        pthread_mutex_unlock(&st->lock);
        r->pid = fork_srun(r->argv, r->channel_fd, r->err_fd, &r->err);
        pthread_mutex_lock(&st->lock);
        r->done = 1;
        pthread_cond_broadcast(&st->cond);
    }
    pthread_mutex_unlock(&st->lock);
    return NULL;
}

/* ---- the killer thread -------------------------------------------------------------------- */

/* One batch: the job ids of the queued names still known to the
 * controller (one squeue), then one `scancel --signal=KILL JOB.0 ...`. */
static void kill_batch(struct sstate *st, char **names, size_t n)
{
    char list[8192];
    size_t used = 0;
    for (size_t i = 0; i < n && used < sizeof list - 1; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? "," : "", names[i]);
    char *qargv[] = {st->squeue, "-h", "-o", "%i", "-n", list, NULL};
    char out[8192];
    int timed_out;
    int status = run_cmd(st, &st->killer_cmd, qargv, out, sizeof out, &timed_out);
    if (status != 0) {
        st->host->log("slurm", "squeue for the steps to kill %s: %s", timed_out ? "timed out" : "failed",
                      out);
        return;
    }
    char *cargv[MAX_ARGS + 4];
    char steps[MAX_ARGS][32];
    int k = 0;
    cargv[k++] = st->scancel;
    cargv[k++] = "--signal=KILL";
    int first = k;
    for (char *save = NULL, *tok = strtok_r(out, " \n", &save); tok && k - first < MAX_ARGS;
         tok = strtok_r(NULL, " \n", &save)) {
        if (!isdigit((unsigned char)tok[0]))
            continue;
        snprintf(steps[k - first], sizeof steps[0], "%s.0", tok);
        cargv[k] = steps[k - first];
        k++;
    }
    if (k == first)
        return; /* every one ended already */
    cargv[k] = NULL;
    status = run_cmd(st, &st->killer_cmd, cargv, out, sizeof out, &timed_out);
    if (status != 0)
        st->host->log("slurm", "scancel --signal=KILL: %s", timed_out ? "timed out" : out);
}

void slurm_queue_scancel(struct sstate *st, const char *name)
{
    char *copy = strdup(name);
    if (copy && st->n_kills == st->cap_kills) {
        size_t cap = st->cap_kills ? 2 * st->cap_kills : 16;
        char **p = realloc(st->kills, cap * sizeof *p);
        if (p) {
            st->kills = p;
            st->cap_kills = cap;
        }
    }
    if (copy && st->n_kills < st->cap_kills) {
        st->kills[st->n_kills++] = copy;
        pthread_cond_broadcast(&st->cond);
        return;
    }
    free(copy); /* out of memory: srun's shepherd still kills the step */
}

void slurm_wake(struct sstate *st)
{
    uint64_t one = 1;
    ssize_t w = write(st->wake_fd, &one, sizeof one);
    (void)w; /* an eventfd: fails only at 2^64-1 */
}

/* The killer thread: runs what the watcher queued. Idle wait as the
 * spawner's (same proof); each batch is bounded by CMD_TIMEOUT_NS per
 * command, and close() ends a running command early. */
static void *killer_main(void *arg)
{
    struct sstate *st = arg;
    pthread_mutex_lock(&st->lock);
    for (;;) {
        while (!st->n_kills && !st->stop)
            pthread_cond_wait(&st->cond, &st->lock); /* idle wait: proof above */
        if (st->stop)
            break;
        char **names = st->kills;
        size_t n = st->n_kills;
        st->kills = NULL;
        st->n_kills = st->cap_kills = 0;
        pthread_mutex_unlock(&st->lock);
        kill_batch(st, names, n);
        for (size_t i = 0; i < n; i++)
            free(names[i]);
        free(names);
        pthread_mutex_lock(&st->lock);
    }
    pthread_mutex_unlock(&st->lock);
    return NULL;
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
        if (find_in_path(tools[i].name, (char *)st + tools[i].off, 4096) != 0)
            return set_error(err, TETHER_ECONFIG,
                             "check 'slurm installed': %s not found in PATH (install the Slurm "
                             "client commands, e.g. Debian's slurm-client)", tools[i].name);
    char scontrol[4096], out[2048];
    if (find_in_path("scontrol", scontrol, sizeof scontrol) != 0)
        return set_error(err, TETHER_ECONFIG,
                         "check 'slurm installed': scontrol not found in PATH (install the Slurm "
                         "client commands, e.g. Debian's slurm-client)");
    int timed_out;
    char *ping[] = {scontrol, "ping", NULL};
    int status = run_cmd(st, NULL, ping, out, sizeof out, &timed_out);
    out[strcspn(out, "\n")] = '\0';
    if (timed_out)
        return set_error(err, TETHER_ECONFIG,
                         "check 'controller reachable': scontrol ping did not answer within %d s",
                         (int)(CMD_TIMEOUT_NS / 1000000000));
    if (status != 0 || !strstr(out, "is UP"))
        return set_error(err, TETHER_ECONFIG,
                         "check 'controller reachable': scontrol ping: %s%s", out[0] ? out : "no answer",
                         getenv("SLURM_CONF") ? "" : " (SLURM_CONF is not set)");
    if (st->partition) {
        char *show[] = {scontrol, "-o", "show", "partition", st->partition, NULL};
        status = run_cmd(st, NULL, show, out, sizeof out, &timed_out);
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
        pthread_join(st->spawner, NULL);
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
    if ((rc = pthread_create(&st->spawner, NULL, spawner_main, st)) != 0)
        return set_error(err, TETHER_ESYS, "cannot start the spawner thread: %s", strerror(rc));
    if ((rc = pthread_create(&st->killer, NULL, killer_main, st)) != 0) {
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
    /* every child is released by now; the watcher reaps the sruns still
     * completing their jobs (bounded, see stop_threads) */
    stop_threads(st, 1, 1, 1);
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

/* Hand the request to the spawner thread and wait for the fork. Bounded
 * by the spawn deadline while the request waits its turn; once the
 * spawner has taken it, only the fork in hand remains (a kernel call),
 * and `r` lives on this stack until then. Returns 1 if it was done. */
static int run_request(struct sstate *st, struct slurm_request *r, int64_t deadline_ns)
{
    pthread_mutex_lock(&st->lock);
    /* one request at a time (s_spawn may be called from several threads) */
    struct timespec ts = {(time_t)(deadline_ns / 1000000000), (long)(deadline_ns % 1000000000)};
    while (st->req && !st->stop)
        if (pthread_cond_timedwait(&st->cond, &st->lock, &ts) == ETIMEDOUT)
            break;
    int queued = 0;
    if (!st->req && !st->stop) {
        st->req = r;
        queued = 1;
        pthread_cond_broadcast(&st->cond);
    }
    while (queued && !r->done) {
        int rc = pthread_cond_timedwait(&st->cond, &st->lock, &ts);
        if (rc == ETIMEDOUT && st->req == r) {
            st->req = NULL; /* never started: withdraw it */
            break;
        }
        if (rc == ETIMEDOUT) {
            int64_t later = slurm_mono_ns() + 1000000;
            ts.tv_sec = (time_t)(later / 1000000000);
            ts.tv_nsec = (long)(later % 1000000000);
        }
    }
    pthread_mutex_unlock(&st->lock);
    return r->done;
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
    struct slurm_request r = {.argv = line.argv, .channel_fd = spec->channel_fd, .err_fd = ep[1],
                              .pid = -1};
    int done = run_request(st, &r, spec->spawn_deadline_ns);
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
    pthread_mutex_lock(&st->lock);
    if (!c->kill_asked && !c->rec && !c->srun_done) {
        /* SIGUSR2 to srun, which passes it to the helper: it SIGKILLs the
         * actor, sweeps its descendants and reports them (~10 ms). Not
         * SIGKILL of srun first: the helper would die uncounted. The
         * watcher falls back to that after SLURM_KILL_FALLBACK_NS. */
        c->kill_asked = 1;
        syscall(SYS_pidfd_send_signal, c->pidfd, SIGUSR2, NULL, 0);
        c->kill_at = slurm_mono_ns() + SLURM_KILL_FALLBACK_NS;
        slurm_wake(st);
    }
    pthread_mutex_unlock(&st->lock);
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
        out->kind = TETHER_OUTCOME_EXITED; /* the message: only what the teardown adds */
        out->code = c->rec_code;
    } else if (c->kill_asked) {
        /* killed before its helper could report: srun was SIGKILLed, or
         * the SIGUSR2 came before the step ran (srun then gives up the
         * job and exits 1), or the helper died of it before taking it */
        out->kind = TETHER_OUTCOME_KILLED;
        out->signal = SIGKILL;
        used = snprintf(c->msg, sizeof c->msg, "step killed (hard kill; srun %s %d)",
                        c->srun_code == CLD_EXITED ? "exited with status" : "killed by signal",
                        c->srun_status);
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
    if (c->rec && c->rec_desc > 0 && used >= 0 && (size_t)used < sizeof c->msg)
        snprintf(c->msg + used, sizeof c->msg - (size_t)used, "%s%d descendant%s killed (slurm step)",
                 used ? "; " : "", c->rec_desc, c->rec_desc == 1 ? "" : "s");
    out->message = c->msg[0] ? c->msg : NULL;
}

static int s_reap(struct tether_child *child, int64_t deadline_ns, struct tether_outcome *out)
{
    struct schild *c = (struct schild *)child;
    struct sstate *st = c->st;
    pthread_mutex_lock(&st->lock);
    struct timespec ts = {(time_t)(deadline_ns / 1000000000), (long)(deadline_ns % 1000000000)};
    /* bounded by the deadline (the core's is now: no wait) */
    while (!c->rec && !c->srun_done && slurm_mono_ns() < deadline_ns)
        if (pthread_cond_timedwait(&st->cond, &st->lock, &ts) == ETIMEDOUT)
            break;
    int rc = TETHER_ETIMEDOUT;
    if (c->rec || c->srun_done) {
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
    if (!c->rec && !c->srun_done) {
        /* Abandoned: no end within hard_kill. SIGKILL of srun: its shepherd
         * kills the step; scancel and InactiveLimit are the backstops. */
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
