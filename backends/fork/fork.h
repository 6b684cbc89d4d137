/* backends/fork/fork.h - private to the fork backend: the state shared by
 * fork.c (the spawner thread, the actor process, the vtable) and contain.c
 * (the containment mechanisms: PID namespace, cgroup, subreaper keeper).
 * Not installed; nothing outside backends/fork includes it. */
#ifndef TETHER_BACKENDS_FORK_H
#define TETHER_BACKENDS_FORK_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
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
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define CHANNEL_FD 3
/* exit status of a child that could not enter its containment */
#define CONTAIN_FAILED 125

extern char **environ;

enum mode { MODE_FORK, MODE_EXEC };

/* strongest first: `auto` tries them in this order */
enum contain { CT_PIDNS, CT_CGROUP, CT_SUBREAPER, CT_GROUP, CT_AUTO };
extern const char *const contain_names[]; /* indexed by enum contain */

struct request {
    const struct tether_spawn_spec *spec;
    struct request *next; /* queued after this one */
    const char *cg_procs; /* cgroup: the actor's cgroup.procs */
    int cg_fd;            /* cgroup, fork mode: the same, open for the child */
    pid_t pid;            /* the actor (subreaper: the keeper) */
    pid_t keeper;         /* pidns: the namespace's init; 0 otherwise */
    int keeper_rd;        /* read end of the keeper's (pidns: the init's) report pipe */
    pid_t actor;          /* pidns with the exec'd init: the actor, known at once */
    int err;              /* errno of the failed step, or 0 */
    const char *what;     /* the failed step */
    int taken;            /* the spawner has started it */
    int done;
};

struct fstate {
    const struct tether_backend_host *host;
    enum mode mode;
    enum contain contain; /* in force */
    char *helper;
    char *py_helper; /* tether-pyactor, for path/file.py:FUNC targets (any mode), or NULL */
    int py_errno;    /* why py_helper cannot be run (a Python target is refused), or 0 */
    char detail[640]; /* the containment in force and why; for `tether backends` */
    pid_t self_pid;
    int self_pidfd; /* this process: the children's parent-death race check */
    int own_ns_fd;  /* pidns: the spawner thread's own pid namespace */
    int init_fd;    /* pidns: the tiny init program (a memfd), or -1: forked init */
    char *cg_base;  /* cgroup: the tether-owned directory */
    /* the spawner thread */
    pthread_t spawner;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
    struct request *req; /* queue of requests not yet taken, oldest first:
                          * several program threads may spawn at once */
    int stop;
    int probe;      /* 1: the spawner must try pidns first; 2: it did */
    char probe_why[200]; /* empty when pidns works */
    /* abandoned children (SIGKILL had not ended them by the deadline):
     * their pidfds are kept and polled, so that they are reaped, not left
     * as zombies, once they do end. Under `lock`. */
    int *late;
    size_t n_late, cap_late;
    /* cgroup directories not yet empty when their actor was released */
    char **late_cg;
    size_t n_late_cg, cap_late_cg;
};

struct fchild {
    struct tether_child pub; /* exit_fd = pidfd of the actor (subreaper: of the keeper) */
    struct fstate *st;
    pid_t pid;       /* the actor */
    pid_t keeper;    /* pidns: the namespace's init; subreaper: the keeper; else 0 */
    int keeper_fd;   /* pidfd of the keeper (our child), or -1 */
    int actor_fd;    /* pidfd of the actor when it is the keeper's child, or -1 */
    int report_fd;   /* the keeper's report pipe (pidns: also exit_fd), or -1 */
    int have_status; /* pidns: the init reported the actor's wait status */
    int status;
    char *cg;        /* cgroup: the actor's directory */
    int reaped;
    int killed;
    int swept;       /* the containment was killed after the actor ended */
    int a_reaped;    /* the process behind exit_fd is collected; its status in `si` */
    siginfo_t si;
    int counted;     /* `descendants` is known */
    int descendants; /* killed besides the actor */
    /* the outcome's text; not a __thread buffer: lazy TLS allocation in a
     * dlopen'ed module aborts the process when malloc fails */
    char msg[128];
};

static inline int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int pidfd_signal(int pidfd, int sig)
{
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

/* fork.c */
int set_error(struct tether_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Start the actor process (fork, or vfork + exec of the helper); `parent`
 * is the starting process's pid as the child will see it. */
pid_t start_actor(struct fstate *st, struct request *r, pid_t parent);
/* TARGET names a Python actor: its module part ends in ".py". */
int python_target(const char *target);

/* contain.c */
int cgroup_write(const char *dir, const char *file, const char *text);
/* On the spawner thread: start the actor in the containment in force. */
pid_t do_spawn(struct fstate *st, struct request *r);
/* On the spawner thread, at its start: can it make PID namespaces (and
 * exec the tiny init)? */
void probe_pidns(struct fstate *st);
int choose_containment(struct fstate *st, struct tether_error *err);
void count_descendants(struct fchild *c);
int sweep_containment(struct fchild *c);

#endif
