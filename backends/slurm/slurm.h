/* backends/slurm/slurm.h - what the slurm backend's files share (private):
 * its state, a child, and the watcher (watch.c), which learns how each
 * actor ended.
 *
 * How an actor's end is learned: srun's stderr is a pipe to the watcher
 * thread. The helper on the node (tether-actor --channel-stdio --end-token
 * TOKEN) writes one record there as its last act, once the actor has
 * ended and its descendants are swept: "\036tether-step-end TOKEN x|s
 * VALUE DESCENDANTS\n". The watcher takes the record out of the stream
 * (everything else goes on to the supervisor's stderr), notes the outcome
 * and makes the child's exit_fd (an eventfd) readable. While the actor
 * runs, the helper also reports the number of its descendants when it
 * changes (kind 'd'; looked at after 100 ms, then up to every 1 s): what a hard kill (SIGKILL of
 * srun, which leaves the helper no time to report) killed. srun itself exits
 * only once Slurm has completed the job (a round trip to the controller,
 * 0.1-0.3 s when many end at once): the watcher reaps it then, the actor's
 * outcome does not wait for it. Without a record (srun killed, the step
 * never started, a helper of another version) the outcome is srun's exit
 * status, as srun reports it. */
#ifndef TETHER_BACKENDS_SLURM_H
#define TETHER_BACKENDS_SLURM_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <tether/backend.h>

#include "../spawner.h"

#define SLURM_MAX_ARGS 64
#define SLURM_RECORD_MARK "\036tether-step-end "
/* bound of every Slurm command the backend runs (scontrol ping, squeue,
 * scancel): Slurm's own MessageTimeout defaults to 10 s */
#define SLURM_CMD_TIMEOUT_NS (10 * (int64_t)1000000000)
/* hard kill: how long srun has, after SIGTERM, to kill the step and exit
 * (measured 65-75 ms on a quiet machine) before the backend runs
 * `scancel --signal=KILL JOB.0` (srun then still completes the job
 * itself), and before srun is SIGKILLed, the last resort (its shepherd
 * completes the job with the step alive: the node stays COMPLETING 2-3 s,
 * slurm.c, s_hard_kill). The outcome waits for neither. */
#define SLURM_TERM_GRACE_NS (300 * (int64_t)1000000)
#define SLURM_KILL_GRACE_NS (3 * (int64_t)1000000000)

struct sstate {
    const struct tether_backend_host *host;
    char srun[4096], scancel[4096], squeue[4096];
    char *helper, *partition, *account, *time_limit, *prefix;
    char *extra[SLURM_MAX_ARGS];
    int n_extra;
    char owner[256]; /* HOST:PID:STARTTIME */
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC; broadcast at every change below */
    int stop;
    /* the spawner thread (forks srun; backends/spawner.h) */
    struct spawner spawner;
    /* the killer thread (scancel JOB.STEP of job names queued) */
    pthread_t killer;
    char **kills;
    size_t n_kills, cap_kills;
    pid_t killer_cmd; /* the command the killer runs now, or 0 */
    /* the watcher thread: every child whose srun is not reaped yet */
    pthread_t watcher;
    int wake_fd; /* eventfd: the watcher's list or a deadline changed */
    struct schild *children;
};

struct schild {
    struct tether_child pub; /* exit_fd: an eventfd the watcher makes readable */
    struct sstate *st;
    pid_t pid;  /* srun's */
    int pidfd;  /* srun's pidfd */
    int errfd;  /* srun's stderr, read end (watcher only); -1 after its end */
    char token[40];
    char name[320]; /* the job name */
    char msg[160];
    /* under st->lock */
    int srun_done, srun_code, srun_status; /* srun reaped: si_code, si_status */
    int rec, rec_sig, rec_code, rec_desc;  /* the helper's end record */
    int desc_seen; /* descendants the helper last reported alive */
    int kill_asked;
    /* hard kill under way (watch.c, term_overdue): at term_deadline,
     * scancel JOB.0 if srun is still there; at kill_deadline, SIGKILL
     * srun (0: none) */
    int64_t term_deadline, kill_deadline;
    int reaped, released;
    struct schild *next;
    /* watcher only: the tail of srun's stderr that may begin a record */
    char hold[192];
    size_t n_hold;
};

int64_t slurm_mono_ns(void);

/* cmd.c: the executable NAME in $PATH, into out. 0 or -1. */
int slurm_find_in_path(const char *name, char *out, size_t n);
/* cmd.c: run argv with stdout and stderr into `out` (NUL-terminated,
 * truncated), stdin from /dev/null, at most SLURM_CMD_TIMEOUT_NS (then
 * SIGKILL). Returns the wait status, or -1 (could not start, or timed
 * out: *timed_out set). `running`, if not NULL, holds the pid while it
 * runs (under st->lock) so that close() can end it early. */
int slurm_run_cmd(struct sstate *st, pid_t *running, char *const argv[], char *out, size_t n,
                  int *timed_out);
/* cmd.c: the killer thread. Idle wait as the spawner's; each batch is
 * bounded by SLURM_CMD_TIMEOUT_NS per command; close() ends one early. */
void *slurm_killer_main(void *arg);
/* Queue `name` for `scancel --signal=KILL JOB.0`. Caller holds st->lock. */
void slurm_queue_scancel(struct sstate *st, const char *name);
/* Wake the watcher (its list or a deadline changed). */
void slurm_wake(struct sstate *st);
/* The watcher thread (watch.c). Ends after close() set st->stop once the
 * sruns of actors that ended by themselves are reaped, or at most 100 ms
 * later (watch.c, STOP_GRACE_NS). */
void *slurm_watcher_main(void *arg);
/* watch.c: after every thread has ended, reap the sruns left (the
 * spawner's end SIGKILLed them; at most 0.5 s) and free every child. */
void slurm_reap_rest(struct sstate *st);

#endif
