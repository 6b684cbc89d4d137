/* tether/tether.h - the API for programs that supervise actors.
 *
 *   struct tether_config *cfg;
 *   tether_config_load(NULL, &cfg, &err);              // plugins.yaml
 *   tether_supervisor *sup;
 *   tether_supervisor_open(cfg, NULL, &sup, &err);     // default backend
 *   tether_handle *h;
 *   tether_spawn(sup, "examples/demo_actors.so:worker", 0, &h, &err);
 *   tether_cancel(h);
 *   tether_wait(h, tether_now_ns() + 5 * TETHER_NS_PER_SEC, &outcome);
 *   tether_handle_release(h);
 *   tether_supervisor_close(sup, NULL);
 *
 * Every blocking call takes an absolute deadline (tether_now_ns() clock).
 * Teardown is bounded by the configured timeouts whatever the actor does,
 * and every thread blocked on an actor (recv, send, call, wait) returns
 * when the actor is torn down, aborted or lost.
 */
#ifndef TETHER_TETHER_H
#define TETHER_TETHER_H

#include <stdio.h>

#include <tether/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Configuration (plugins.yaml) ------------------------------------ */

struct tether_timeouts {
    double spawn;       /* seconds: spawn -> ready handshake */
    double soft_cancel; /* seconds: cancel -> stopped by itself; 0 skips the phase */
    double hard_kill;   /* seconds: hard kill -> reaped; past it abandoned; 0 skips */
};

/* Supervision: what a supervisor does when an actor ends (the
 * `supervision:` section of plugins.yaml; plugins.yaml(5)). */
enum { TETHER_ONE_FOR_ALL = 0, TETHER_ONE_FOR_ONE = 1, TETHER_REST_FOR_ONE = 2 };
enum {
    TETHER_RESTART_DEFAULT = 0,   /* in spawn options: the supervisor's `restart` */
    TETHER_RESTART_TEMPORARY = 1, /* never restarted (the default) */
    TETHER_RESTART_TRANSIENT = 2, /* restarted after a failure, crash or loss only */
    TETHER_RESTART_PERMANENT = 3  /* always restarted */
};
struct tether_supervision {
    int strategy;          /* TETHER_ONE_FOR_ALL (default), _ONE_FOR_ONE, _REST_FOR_ONE */
    unsigned max_restarts; /* restart intensity: at most this many restarts ... */
    double period;         /* ... within this many seconds (default 1 in 5 s, as OTP) */
    int restart;           /* TETHER_RESTART_*: the type of a spawn that does not say */
    double backoff;        /* seconds from a death to the respawn (0: none); doubles ... */
    double backoff_max;    /* ... up to this cap; back to `backoff` after `period` healthy */
};
#define TETHER_MAX_RESTARTS_LIMIT 1000000u /* the largest max_restarts accepted */
/* The defaults above, for a struct the program fills itself. */
void tether_supervision_defaults(struct tether_supervision *sv);

struct tether_backend_config {
    const char *name;
    const char *path; /* absolute, or resolved against the config file's folder */
    struct tether_timeouts timeouts; /* effective (global merged with overrides) */
    struct tether_supervision supervision; /* effective (global merged with overrides) */
    const struct tether_option *options;
    size_t n_options;
    int line; /* line of its entry in the file */
};

struct tether_config {
    const char *path;           /* file it was read from */
    const char *dir;            /* that file's folder */
    const char *backend;        /* default backend name (after TETHER_BACKEND) */
    struct tether_timeouts timeouts;
    struct tether_supervision supervision;
    const char *events;         /* JSON-lines event log path, or NULL */
    uint64_t max_frame;         /* largest accepted frame, bytes */
    const struct tether_backend_config *backends;
    size_t n_backends;
};

/* Load and validate a configuration. `path` NULL means $TETHER_CONFIG, else
 * ./plugins.yaml. $TETHER_BACKEND overrides the default backend. On error
 * returns TETHER_ECONFIG and err->msg reads "FILE:LINE:COL: KEY: reason";
 * nothing is allocated. On success the caller owns *out (tether_config_free). */
int tether_config_load(const char *path, struct tether_config **out, struct tether_error *err);
/* Parse from memory; `name` is used in messages and `dir` resolves paths. */
int tether_config_parse(const char *text, size_t len, const char *name, const char *dir,
                        struct tether_config **out, struct tether_error *err);
void tether_config_free(struct tether_config *cfg);
/* The backend entry named `name`, or NULL. */
const struct tether_backend_config *tether_config_find(const struct tether_config *cfg,
                                                       const char *name);

/* ---- Plugins ----------------------------------------------------------- */

/* A description of one loadable backend, filled by tether_plugin_probe. */
struct tether_plugin_info {
    char name[64];
    char language[16];
    uint32_t abi;
    uint32_t caps;
    char note[256]; /* the backend's note, or "" */
};
/* Load the plugin at `path` with every loader check, describe it, unload it.
 * On refusal returns TETHER_ELOAD and err->msg names the file and reason. */
int tether_plugin_probe(const char *path, struct tether_plugin_info *info,
                        struct tether_error *err);
/* Capability bits as text ("out-of-process,can-kill"); writes at most n bytes. */
void tether_caps_format(uint32_t caps, char *buf, size_t n);

/* ---- Supervisor --------------------------------------------------------- */

typedef struct tether_supervisor tether_supervisor;
typedef struct tether_handle tether_handle;

/* Open a supervisor on backend `backend` (NULL: the config's default).
 * The config must outlive the supervisor. Owner: caller; end with
 * tether_supervisor_close. */
int tether_supervisor_open(const struct tether_config *cfg, const char *backend,
                           tether_supervisor **out, struct tether_error *err);
/* Same, for a plugin file not named in the config (timeouts from `cfg`). */
int tether_supervisor_open_plugin(const struct tether_config *cfg, const char *plugin_path,
                                  tether_supervisor **out, struct tether_error *err);

/* Report of a supervisor close. */
struct tether_close_report {
    unsigned actors;    /* actors torn down by the close */
    unsigned abandoned; /* abandoned over the supervisor's life */
    int64_t elapsed_ns;
};

/* Cancel everything, wait within soft_cancel + hard_kill + slack, release
 * all handles' resources (handles themselves stay valid until released),
 * and free the supervisor. Abandoned actors are cut loose and counted. */
int tether_supervisor_close(tether_supervisor *sup, struct tether_close_report *report);

/* Write the hang dump: every actor, state and time in it, open channels,
 * parked waiters. Safe from any thread (not from a signal handler). */
void tether_supervisor_dump(tether_supervisor *sup, FILE *fp);
/* Write the teardown engine's state x event -> action table (markdown), as
 * the engine runs it (docs/teardown.md explains each cell). */
void tether_teardown_table(FILE *fp);
/* Cancel every actor (non-blocking). */
void tether_supervisor_cancel_all(tether_supervisor *sup);
/* Hard-kill every actor now, skipping the rest of the soft phase. */
void tether_supervisor_kill_all(tether_supervisor *sup);
/* Abandoned actors so far. */
unsigned tether_supervisor_abandoned(tether_supervisor *sup);
/* The first failure reported by any actor (one-for-all), or NULL. Valid
 * until close. */
const char *tether_supervisor_failure(tether_supervisor *sup);
/* Backend name and timeouts in force. */
const char *tether_supervisor_backend(tether_supervisor *sup);
const struct tether_timeouts *tether_supervisor_timeouts(tether_supervisor *sup);
/* The backend's own line on how it works here (e.g. the fork backend's
 * containment in force), or NULL. Valid until the supervisor is closed. */
const char *tether_supervisor_backend_detail(tether_supervisor *sup);

/* Supervision strategy: one-for-all (default) cancels the siblings of an
 * actor that failed (restarts them all when it restarts); one-for-one
 * leaves them running; rest-for-one restarts the actors started after it. */
void tether_supervisor_set_strategy(tether_supervisor *sup, int strategy);
/* Set the whole supervision (strategy, intensity, default restart type,
 * backoff) of a supervisor (opened with its backend's from the config).
 * TETHER_EINVAL if a value is out of range (as the config's checks). */
int tether_supervisor_set_supervision(tether_supervisor *sup, const struct tether_supervision *sv,
                                      struct tether_error *err);
void tether_supervisor_supervision(tether_supervisor *sup, struct tether_supervision *out);
/* Check a supervision: 0, or TETHER_EINVAL with err naming the field. */
int tether_supervision_check(const struct tether_supervision *sv, struct tether_error *err);
/* Restarts the supervisor made so far (all actors). */
unsigned tether_supervisor_restarts(tether_supervisor *sup);

/* ---- Actors ------------------------------------------------------------ */

#define TETHER_SPAWN_NOWAIT 1u /* return once started; wait with tether_wait_ready */

/* Start `target` ("path/module.so:function"; relative paths resolve against
 * the current folder). Blocks until the actor is ready, or fails: the spawn
 * deadline expired (TETHER_ETIMEDOUT, after the actor was torn down), the
 * actor died while starting (TETHER_ESPAWN with its reason), it was
 * cancelled meanwhile (TETHER_ECANCELLED). On failure *out is still set when
 * a handle was created (release it); otherwise NULL. */
int tether_spawn(tether_supervisor *sup, const char *target, unsigned flags, tether_handle **out,
                 struct tether_error *err);
/* Spawn options (zeroed: tether_spawn's behaviour). */
struct tether_spawn_opts {
    unsigned flags;  /* TETHER_SPAWN_* */
    int restart;     /* TETHER_RESTART_*; _DEFAULT: the supervisor's */
    double backoff;  /* seconds; 0: the supervisor's */
    double backoff_max; /* seconds; 0: the supervisor's */
};
/* tether_spawn with options. An actor that restarts keeps its handle: the
 * handle follows it from instance to instance (tether_handle_restarts),
 * waiters on an instance that ended get TETHER_EABORTED (or the end's
 * error) at once, and its outcome is the last instance's. The first
 * instance failing before it is ready is not restarted (the spawn fails). */
int tether_spawn_ex(tether_supervisor *sup, const char *target, const struct tether_spawn_opts *opts,
                    tether_handle **out, struct tether_error *err);
int tether_wait_ready(tether_handle *h, int64_t deadline_ns, struct tether_error *err);

/* Request cancellation. Never blocks; idempotent; a no-op once ended. */
int tether_cancel(tether_handle *h);
/* Skip the soft phase: hard-kill now. Never blocks. */
int tether_kill(tether_handle *h);
/* Shut the channel now, as the supervisor's side (the actor sees end of
 * stream and should stop); waiters return TETHER_EABORTED. Never blocks. */
int tether_abort(tether_handle *h);

/* Wait for the outcome until `deadline_ns`. Returns 0 and fills `out`
 * (message valid until the handle is released), or TETHER_ETIMEDOUT. */
int tether_wait(tether_handle *h, int64_t deadline_ns, struct tether_outcome *out);

/* Messages. send blocks only while the channel is full; recv until a
 * message arrives. Both return TETHER_EABORTED / TETHER_ELOST /
 * TETHER_ECANCELLED once the actor is torn down, TETHER_ETIMEDOUT at the
 * deadline. send: a message whose frame exceeds max_frame (or the actor
 * runtime's 16 MiB) is refused with TETHER_ETOOBIG before anything is
 * sent; the data is written from buf itself, with no copy. recv: *buf is
 * malloc'ed (the buffer the data was read into), the caller frees it. */
int tether_send(tether_handle *h, const void *buf, size_t len, int64_t deadline_ns);
int tether_recv(tether_handle *h, void **buf, size_t *len, int64_t deadline_ns);

/* Call `func` in the actor with signature `sig` ("ii:i"). The actor checks
 * the signature against its table; a mismatch is TETHER_EBADCALL with the
 * actor's reason in err. Returned strings are malloc'ed (ret->v.s; the
 * caller frees it). */
int tether_call(tether_handle *h, const char *func, const char *sig,
                const struct tether_value *args, size_t nargs, struct tether_value *ret,
                int64_t deadline_ns, struct tether_error *err);

uint64_t tether_handle_id(tether_handle *h);
/* Times the actor was restarted (instances started after the first). */
unsigned tether_handle_restarts(tether_handle *h);
int64_t tether_handle_pid(tether_handle *h);
/* A file descriptor for event loops: it polls readable (POLLIN) while the
 * actor has a message waiting (tether_recv would return one at once) or has
 * ended (tether_wait would return at once), and not otherwise. Only poll it:
 * never read, write or close it. Created on first call (later calls return
 * the same fd); owned by the handle and closed by tether_handle_release.
 * Returns the fd, or TETHER_ESYS when no fd could be created. */
int tether_handle_fd(tether_handle *h);
/* Current state name ("running", "soft-cancel", ...). Static string. */
const char *tether_handle_state(tether_handle *h);

/* Drop the caller's reference. Does not cancel: a released running actor is
 * still owned (and torn down) by its supervisor. */
void tether_handle_release(tether_handle *h);

#ifdef __cplusplus
}
#endif
#endif
