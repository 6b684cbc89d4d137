/* backends/slurm/cmd.c - the Slurm client commands the backend runs
 * (scontrol, squeue, scancel), each in a process of its own under a
 * deadline, and the killer thread that runs the hard kill's fallback
 * `scancel --signal=KILL JOB.0` off the caller's thread. */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "slurm.h"

#define MAX_ARGS SLURM_MAX_ARGS

extern char **environ;

/* ---- running Slurm commands ----------------------------------------------------------- */

/* The executable NAME in $PATH, into out. 0 or -1. */
int slurm_find_in_path(const char *name, char *out, size_t n)
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
 * stdin from /dev/null, at most SLURM_CMD_TIMEOUT_NS (then SIGKILL). Returns the
 * wait status, or -1 (could not start, or timed out: *timed_out set).
 * `running`, if not NULL, holds the pid while it runs (under st->lock) so
 * that close() can end it early. */
int slurm_run_cmd(struct sstate *st, pid_t *running, char *const argv[], char *out, size_t n,
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
    int64_t deadline = slurm_mono_ns() + SLURM_CMD_TIMEOUT_NS;
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

/* close() has begun (it ends the killer's command early) */
static int stopping(struct sstate *st)
{
    pthread_mutex_lock(&st->lock);
    int stop = st->stop;
    pthread_mutex_unlock(&st->lock);
    return stop;
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
    int status = slurm_run_cmd(st, &st->killer_cmd, qargv, out, sizeof out, &timed_out);
    if (status != 0) {
        if (!stopping(st)) /* close() SIGKILLs the command in hand: not news */
            st->host->log("slurm", "squeue for the steps to kill %s: %s",
                          timed_out ? "timed out" : "failed", out);
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
    status = slurm_run_cmd(st, &st->killer_cmd, cargv, out, sizeof out, &timed_out);
    /* a step that ended between squeue and scancel is what we wanted */
    if (status != 0 && !stopping(st) && !strstr(out, "Invalid job id specified"))
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
 * spawner's (same proof); each batch is bounded by SLURM_CMD_TIMEOUT_NS per
 * command, and close() ends a running command early. */
void *slurm_killer_main(void *arg)
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

