/* tether/backend.h - the plugin ABI. The one header a backend author needs.
 *
 * A backend is a shared object exporting one symbol, tether_backend_v1(),
 * that returns a pointer to a constant vtable. Write it with
 * TETHER_BACKEND_DEFINE(vtable) and build with
 *   cc -shared -fPIC $(pkg-config --cflags tether) mybackend.c -o mybackend.so
 *
 * Division of labour. The core owns each actor's channel (an AF_UNIX
 * socketpair), sends the CANCEL message itself, runs the clock and the
 * teardown state machine, and aborts its own end of every channel after a
 * hard kill whatever the backend did. A backend does only what the core
 * cannot: start the actor, add a backend-specific nudge on soft cancel,
 * force it on hard kill, and collect its exit.
 *
 * Threading. The core calls every member from its own threads, never two at
 * once for the same child, and never from a signal handler. No member may
 * wait for anything unbounded: soft_cancel, hard_kill and abort_channels
 * return promptly; reap honours its deadline to within a few milliseconds.
 * spawn() runs WITHOUT any supervisor lock, on the program thread that
 * called tether_spawn (that thread may exit later). soft_cancel, hard_kill,
 * abort_channels, reap, release and abandoned_count run on the supervisor's
 * engine thread (or the thread closing the supervisor) WITH the
 * supervisor's internal lock held: they must not block and must not call
 * back into the supervisor API (tether/tether.h). The teardown they serve
 * is the table in docs/teardown.md.
 *
 * Stability (the SQLite iVersion rule): `abi` and `size` come first; members
 * are only ever appended. The loader reads a member only when `size` covers
 * it.
 */
#ifndef TETHER_BACKEND_H
#define TETHER_BACKEND_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <tether/common.h>

/* The cancel flag is an atomic int (below). C++ has no _Atomic before
 * C++23: there it is std::atomic<int>, which has the same size, alignment
 * and lock-free representation on every compiler tether supports (checked
 * where it is declared). Included before extern "C": <atomic> is C++. */
#ifdef __cplusplus
#include <atomic>
#else
#include <stdatomic.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

struct tether_actor; /* the actor side of a channel (tether/actor.h) */

#define TETHER_BACKEND_ABI 1

/* Capability bits (struct tether_backend.caps). The conformance suite skips
 * the scenarios a backend cannot honour according to these. */
#define TETHER_CAP_OUT_OF_PROCESS (1u << 0) /* actors run in another process */
#define TETHER_CAP_SURVIVES_CRASH (1u << 1) /* an actor crash does not take the supervisor */
#define TETHER_CAP_CAN_KILL (1u << 2)       /* hard_kill always stops the actor (never abandons) */
#define TETHER_CAP_NESTED (1u << 3)         /* actors may open their own supervisor */
/* Bit 31 is reserved (it was TETHER_CAP_NO_SPAWN, a placeholder no backend
 * ever set: spawn is mandatory). */

/* The clock of every deadline in this header: CLOCK_MONOTONIC in
 * nanoseconds, the same clock as tether_now_ns() (usable without linking
 * libtether). These helpers need POSIX clocks: they are declared only where
 * <time.h> offers CLOCK_MONOTONIC (glibc: not under a strict -std=c11
 * without _POSIX_C_SOURCE >= 199309L; use -std=gnu11 or define it). */
#ifdef CLOCK_MONOTONIC
static inline int64_t tether_backend_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A deadline as a poll() timeout: milliseconds from now, rounded up (a
 * poll never returns before the deadline), 0 once it has passed, at most
 * INT_MAX; TETHER_NEVER gives INT_MAX (a wait with no deadline is a bug:
 * the caller bounds it otherwise). */
static inline int tether_backend_poll_ms(int64_t deadline_ns)
{
    int64_t left = deadline_ns - tether_backend_now_ns();
    if (left <= 0)
        return 0;
    if (left > (int64_t)INT_MAX * 1000000)
        return INT_MAX;
    return (int)((left + 999999) / 1000000);
}
#endif /* CLOCK_MONOTONIC */

/* What the core hands to open(). Valid until close() returns. */
struct tether_options {
    const struct tether_option *items;
    size_t count;
    double spawn_timeout;       /* seconds: spawn -> ready */
    double soft_cancel_timeout; /* seconds: cancel -> stopped by itself */
    double hard_kill_timeout;   /* seconds: hard kill -> reaped, past it abandoned */
    const char *config_dir;     /* folder of the config file, for relative paths */
};

/* ---- The cancel flag: shared by a backend and the actor runtime -------------------
 *
 * A backend that runs actors through the host runtime (run_c_actor,
 * actor_attach) may pass a flag that the runtime reads at every
 * checkpoint. It crosses threads (the engine thread sets it while the
 * actor's thread reads it), so it is an atomic int: set and read it only
 * with tether_cancel_flag_set/get (release/acquire), never as a plain
 * int. Its values: */
enum tether_cancel_state {
    TETHER_CANCEL_NONE = 0,      /* nothing asked (initialise the flag to it) */
    TETHER_CANCEL_REQUESTED = 1, /* the backend asks for a soft cancel */
    TETHER_CANCEL_ORPHANED = 2   /* set by the runtime on its way out: the
                                  * supervisor's end was gone before it heard
                                  * how the actor ended (it died or aborted
                                  * the channel); a process backend then makes
                                  * sure nothing of the actor outlives it */
};

#ifdef __cplusplus
typedef std::atomic<int> tether_cancel_flag;
static_assert(sizeof(tether_cancel_flag) == sizeof(int) &&
                  alignof(tether_cancel_flag) == alignof(int) && ATOMIC_INT_LOCK_FREE == 2,
              "tether_cancel_flag must have the layout of C's atomic_int");
#else
typedef atomic_int tether_cancel_flag;
#endif

static inline void tether_cancel_flag_set(tether_cancel_flag *flag, enum tether_cancel_state v)
{
#ifdef __cplusplus
    flag->store((int)v, std::memory_order_release);
#else
    atomic_store_explicit(flag, (int)v, memory_order_release);
#endif
}

static inline enum tether_cancel_state tether_cancel_flag_get(tether_cancel_flag *flag)
{
#ifdef __cplusplus
    return (enum tether_cancel_state)flag->load(std::memory_order_acquire);
#else
    return (enum tether_cancel_state)atomic_load_explicit(flag, memory_order_acquire);
#endif
}
/* ---- end of the cancel flag ------------------------------------------------------- */

/* The parent-death signal (prctl PR_SET_PDEATHSIG) of an actor process of
 * the fork backend, in both modes: the forked child and the exec helper
 * (tether-actor) install the same handler for it, which kills the actor's
 * process group. A real-time signal no library uses by default. Expands to
 * a call in glibc: include <signal.h> where it is used. */
#define TETHER_PARENT_DEATH_SIGNAL (SIGRTMIN + 3)

/* Services the core offers to backends. Valid from open() until close().
 * Every function pointer is non-NULL. */
struct tether_backend_host {
    uint32_t abi;  /* TETHER_BACKEND_ABI of the core */
    uint32_t size; /* sizeof(struct tether_backend_host) of the core */

    /* Run the C actor runtime on the calling thread: load TARGET
     * ("path/module.so:function"), greet the supervisor on `channel_fd`, run
     * the function, report how it ended, close `channel_fd`. Returns the
     * actor's exit status. `cancel_flag`, if not NULL, is read at every
     * checkpoint (set it to TETHER_CANCEL_REQUESTED for a soft cancel); on
     * return it is TETHER_CANCEL_ORPHANED if the supervisor's end was gone
     * before the actor's end could be reported (the supervisor died or
     * aborted the channel). Safe to cancel with deferred pthread_cancel:
     * cleanup handlers close the channel. */
    int (*run_c_actor)(int channel_fd, const char *target, tether_cancel_flag *cancel_flag);

    /* Log one line at the core's discretion (to the events stream / stderr). */
    void (*log)(const char *backend, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

    /* Members above are valid for host ABI 1; below: appended for
     * foreign-language actors. A backend checks that `size` covers every
     * member it uses (offsetof + sizeof) and refuses to open otherwise.
     *
     * The actor side of a channel, for a backend that runs actor code the
     * core cannot load itself (Python). Same runtime and same semantics as
     * tether/actor.h: a CANCEL frame, end of stream on the channel, or
     * a `*cancel_flag` other than TETHER_CANCEL_NONE is a cancel request.
     * One `struct tether_actor` is used by one thread at a time (the backend serialises). Every wait
     * below ends at a cancel request, at end of stream (the core's bounded
     * teardown always shuts its end), or at its own time limit; none of
     * them takes or needs any lock of the backend's. Return codes are 0 or
     * a negative TETHER_E*. */

    /* Take ownership of `channel_fd` (also on failure: closed) and return
     * an actor handle, or NULL when out of memory. `cancel_flag` may be
     * NULL; it must stay valid until actor_finish. Never blocks. */
    struct tether_actor *(*actor_attach)(int channel_fd, tether_cancel_flag *cancel_flag);
    /* Greet the supervisor (READY). Blocks only while the channel is full. */
    int (*actor_ready)(struct tether_actor *a);
    /* tether_checkpoint: 0 or TETHER_ECANCELLED. One non-blocking poll. */
    int (*actor_checkpoint)(struct tether_actor *a);
    /* tether_cancelled: nonzero once a cancel was requested. No system call. */
    int (*actor_cancelled)(struct tether_actor *a);
    /* tether_sleep: 0 after `seconds`, TETHER_ECANCELLED earlier on cancel. */
    int (*actor_sleep)(struct tether_actor *a, double seconds);
    /* tether_send_msg: one MESSAGE frame (opaque bytes). Blocks only while
     * the channel is full; TETHER_ECLOSED once the supervisor's end is gone. */
    int (*actor_send_msg)(struct tether_actor *a, const void *buf, size_t len);
    /* tether_recv_msg: *buf is malloc'ed (caller frees with free()).
     * `seconds` < 0: no time limit (a cancel still ends it). Returns 0,
     * TETHER_ETIMEDOUT or TETHER_ECANCELLED. */
    int (*actor_recv_msg)(struct tether_actor *a, void **buf, size_t *len, double seconds);
    /* Wait for the next CALL frame, at most `seconds` (< 0: no limit; a
     * cancel still ends it). On 0, *func, *sig and *args (*nargs of them,
     * typed per the signature's letters, already range-checked by the
     * wire) describe the call; they stay valid until the next
     * actor_next_call or actor_finish. Reply to *id with actor_reply or
     * actor_reply_error (one reply per call). Returns 0, TETHER_ETIMEDOUT
     * or TETHER_ECANCELLED. */
    int (*actor_next_call)(struct tether_actor *a, double seconds, const char **func,
                           const char **sig, const struct tether_value **args, size_t *nargs,
                           uint64_t *id);
    /* RETURN frame for call `id`: `ret->type` is the signature's return
     * letter; an 's' value is copied. Blocks only while the channel is full. */
    int (*actor_reply)(struct tether_actor *a, uint64_t id, const struct tether_value *ret);
    /* ERROR frame for call `id` (the caller gets TETHER_EBADCALL and `text`). */
    int (*actor_reply_error)(struct tether_actor *a, uint64_t id, const char *text);
    /* The channel's fd, for protocol tests (tether_actor_fd). */
    int (*actor_fd)(struct tether_actor *a);
    /* Report how the actor ended (STOPPED: `outcome` is a
     * TETHER_OUTCOME_* kind, `code` its status, `message` may be NULL),
     * close the channel and free `a`. Sending blocks only while the channel
     * is full (ends when the supervisor reads or shuts its end). Before
     * actor_ready, a FAILED outcome makes the spawn fail with `message`. */
    void (*actor_finish)(struct tether_actor *a, int outcome, int code, const char *message);
};
/* Members above are valid for host ABI 1 when `size` covers them (see
 * the comment at `log`). */

/* What to start. Owned by the core; valid only during spawn(). */
struct tether_spawn_spec {
    const char *target;        /* "path/module.so:function" (or backend-specific) */
    int channel_fd;            /* actor's end of the channel, O_CLOEXEC. spawn() takes
                                * ownership on success AND on failure (closes it). */
    uint64_t actor_id;         /* unique in the process; for logs and markers */
    int64_t spawn_deadline_ns; /* tether_now_ns() deadline for becoming ready */
};

/* A started actor, as the backend sees it. The backend allocates it (usually
 * as the first member of its own struct) and fills the public fields in
 * spawn(); the core only reads them. It stays valid until release(). */
struct tether_child {
    int exit_fd;        /* fd that polls readable once reap() would succeed
                         * without waiting, or -1 (the core then polls reap()
                         * every few milliseconds once the actor's channel
                         * ended or its teardown began). Owned by the backend. */
    int64_t pid;        /* process id, or 0 for an in-process actor */
    uint64_t thread_id; /* OS thread id (gettid) for dumps, or 0 */
};

struct tether_backend {
    uint32_t abi;         /* TETHER_BACKEND_ABI the plugin was built with */
    uint32_t size;        /* sizeof(struct tether_backend) at build time */
    const char *name;     /* unique among loaded backends: "thread", "fork", ... */
    const char *language; /* targets it runs: "c" or "python" */
    uint32_t caps;        /* TETHER_CAP_* bits */

    /* Mandatory. Called once per supervisor before any spawn. On success set
     * *state (opaque to the core). On failure return a negative code and fill
     * `err`; close() is then not called. May block briefly (initialising a
     * runtime), never unboundedly. */
    int (*open)(const struct tether_backend_host *host, const struct tether_options *opts,
                void **state, struct tether_error *err);

    /* Mandatory. Called once, after release() was called for every child of
     * this state, abandoned ones included (the core closes a state even when
     * some of its actors were abandoned). Must not wait for abandoned actors,
     * and must keep alive whatever an abandoned actor still uses (release cut
     * it loose). The one case the core does not call close: a spawn() that
     * never returned (that call still uses the state). */
    void (*close)(void *state);

    /* Mandatory. Start one actor and return at once (do not wait for it to be
     * ready: the core waits for its greeting on the channel under the spawn
     * deadline). Takes ownership of spec->channel_fd in every case. On
     * success set *child. May return TETHER_ENOTSUP. */
    int (*spawn)(void *state, const struct tether_spawn_spec *spec, struct tether_child **child,
                 struct tether_error *err);

    /* Mandatory. Add the backend's own nudge to the core's CANCEL message
     * (a flag, an async exception, SIGTERM). Never blocks. Idempotent.
     *
     * Returns (soft_cancel, hard_kill, abort_channels): 0, or a negative
     * TETHER_E* when the backend could not do its part (e.g. kill failed with
     * EPERM). The core never changes course on it -- the clock drives the
     * teardown either way -- but logs it (event "backend-error" naming the
     * member and the code) and counts it (the hang dump shows the count). */
    int (*soft_cancel)(struct tether_child *child);

    /* Mandatory. Force the actor to stop (SIGKILL, pthread_cancel, abandon).
     * Never blocks, never joins. Idempotent. */
    int (*hard_kill)(struct tether_child *child);

    /* Mandatory. Shut down every channel end the backend itself created or
     * holds for this child, so that every waiter on it returns now. Never
     * blocks. The core aborts its own end independently. */
    int (*abort_channels)(struct tether_child *child);

    /* Mandatory. Collect the outcome, waiting at most until `deadline_ns`
     * (tether_now_ns() clock; a deadline in the past means "poll").
     * Returns 0 and fills `out` (kind, code, signal; message may be NULL, a
     * static string, or memory owned by the child that stays valid until
     * release(child): the core copies it before release) when the actor has
     * ended and its resources are collected (process reaped, thread joined);
     * TETHER_ETIMEDOUT when it has not ended by the deadline. The core
     * decides abandonment, then calls release(). For an EXITED outcome, a
     * message is what the teardown adds (e.g. descendants killed): the core
     * appends it to the actor's own word.
     *
     * How the core calls it: only from the engine thread (or the closing
     * thread), and it never waits in it: `deadline_ns` is tether_now_ns() at
     * the call, a poll. It calls reap when `exit_fd` polls readable, and
     * every few milliseconds (a timer) when exit_fd is -1 (once the actor is
     * past running: its channel ended or a teardown began); when a reap
     * said TETHER_ETIMEDOUT after exit_fd fired (e.g. a thread still running
     * its TLS destructors), on a timer of 20 us doubling to 2 ms, and the
     * events log says `reap-retry`. So record the end first, then make
     * exit_fd readable. A backend must still honour any deadline it is
     * given, to within a few milliseconds: the deadline stays in the ABI. */
    int (*reap)(struct tether_child *child, int64_t deadline_ns, struct tether_outcome *out);

    /* Mandatory. The core is done with `child`: after a successful reap, or
     * when it abandons the actor. Never blocks; an abandoned actor that is
     * still running must be cut loose (detached) and its memory kept alive
     * until it really ends, if it ever does. */
    void (*release)(struct tether_child *child);

    /* Optional (may be NULL). Number of actors this state abandoned that are
     * still running. The core calls it when it writes the hang dump and
     * when it closes a supervisor that abandoned actors (event
     * "supervisor-closed", member still_running), with the lock held. */
    unsigned (*abandoned_count)(void *state);

    /* Members above are valid for ABI 1; below: appended, each read only
     * when `size` covers it. */

    /* Optional (may be NULL). One line a user should know before choosing
     * this backend (`tether backends` prints it), e.g. a runtime limit. */
    const char *note;

    /* Optional (may be NULL). How this opened state works on this machine,
     * in one line (the fork backend: the containment in force, and why the
     * stronger ones are not), for `tether backends` and `tether config
     * explain`. Owned by the backend; valid until close(). */
    const char *(*detail)(void *state);

    /* Optional (may be NULL). Every language whose targets this backend
     * runs, comma-separated, when it runs more than one: "c,python" (the
     * fork backend runs path/file.py:FUNC targets in a Python helper
     * process). `language` stays the first of them (a core that predates
     * this member sees only that one). */
    const char *languages;
};
/* The loader requires `size` to cover every member up to `release`; it
 * reads a later member only when `size` covers it. */

/* The core's host table, the one every backend gets at open, for a
 * program that runs the actor side of a channel for a language the core
 * cannot load itself, in a process of its own (tether-pyactor, the fork
 * backend's Python helper). Never NULL; valid for the life of the process. */
const struct tether_backend_host *tether_backend_host(void);

/* The exported entry point's name and type. */
#define TETHER_BACKEND_ENTRY "tether_backend_v1"
typedef const struct tether_backend *(*tether_backend_entry_fn)(void);

/* Define the entry point of a plugin. Use once per plugin, at file scope. */
#define TETHER_BACKEND_DEFINE(vtable)                                                           \
    __attribute__((visibility("default"))) const struct tether_backend *tether_backend_v1(void); \
    __attribute__((visibility("default"))) const struct tether_backend *tether_backend_v1(void) \
    {                                                                                           \
        return &(vtable);                                                                       \
    }

#ifdef __cplusplus
}
#endif
#endif
