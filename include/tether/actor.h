/* tether/actor.h - the API for C actor code.
 *
 * An actor is a function `int NAME(tether_actor *self)` in a shared object,
 * named by its target "path/module.so:NAME". It runs on a thread (thread
 * backend) or in a child process (fork backend). Its return value is its
 * exit status; tether_fail() reports an error instead.
 *
 * Cancellation is cooperative first: a cancel request is seen at
 * checkpoints (tether_checkpoint, tether_sleep, tether_wait_fd, tether_recv,
 * tether_serve all return TETHER_ECANCELLED). An actor that ignores it is
 * hard-killed or abandoned when the soft deadline passes.
 *
 * Callable functions: a module that wants to be called exports
 *   const struct tether_function tether_functions[] = {
 *       { "add", "ii:i", TETHER_FN(add) },
 *       { NULL, NULL, NULL }
 *   };
 * and its actor function calls tether_serve(self).
 */
#ifndef TETHER_ACTOR_H
#define TETHER_ACTOR_H

#include <stddef.h>
#include <stdint.h>

#include <tether/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tether_actor tether_actor;

struct tether_function {
    const char *name;
    const char *signature; /* "ARGS:RET", letters as in struct tether_value */
    void (*fn)(void);
};
#define TETHER_FN(f) ((void (*)(void))(f))
#define TETHER_FUNCTIONS_SYMBOL "tether_functions"

/* 0, or TETHER_ECANCELLED once a cancel was requested (or the supervisor's
 * end of the channel is gone). Cheap: one non-blocking poll. */
int tether_checkpoint(tether_actor *self);
/* Nonzero once a cancel was requested. No system call. */
int tether_cancelled(tether_actor *self);
/* Sleep `seconds`, returning early with TETHER_ECANCELLED on cancel. */
int tether_sleep(tether_actor *self, double seconds);
/* Wait until `fd` polls for `events` (POLLIN...) or `seconds` pass (< 0:
 * no time limit, a cancel still interrupts). Returns the revents (> 0),
 * 0 on timeout, TETHER_ECANCELLED on cancel. */
int tether_wait_fd(tether_actor *self, int fd, short events, double seconds);

/* Send one message to the supervisor (its tether_recv). */
int tether_send_msg(tether_actor *self, const void *buf, size_t len);
/* Receive one message from the supervisor; *buf malloc'ed, caller frees.
 * `seconds` < 0: no limit (a cancel still interrupts). */
int tether_recv_msg(tether_actor *self, void **buf, size_t *len, double seconds);

/* Serve calls from tether_functions until cancelled. Returns
 * TETHER_ECANCELLED on cancel (return it from the actor function: the
 * outcome is then `cancelled`). */
int tether_serve(tether_actor *self);

/* Record a failure. The actor function should return right after; its
 * outcome is `failed` with this message (even during cancellation). */
int tether_fail(tether_actor *self, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Run the C actor runtime on the calling thread: load TARGET
 * ("path/module.so:function"), greet the supervisor on `channel_fd`, run the
 * function, report how it ended, close `channel_fd`. Returns the actor's
 * exit status. If `orphaned` is not NULL it is set to 1 when the
 * supervisor's end was gone before the actor's end could be reported (the
 * supervisor died): a process hosting the actor should then make sure none
 * of its own children outlive it. For executables that host one actor
 * (tether-actor, custom backends that exec); backends get the same through
 * their host table. */
int tether_actor_main(int channel_fd, const char *target, int *orphaned);

/* The channel's file descriptor, for tests and protocol tooling. Writing
 * to it outside this API breaks the protocol (the supervisor then treats
 * the actor as lost); never close it. */
int tether_actor_fd(tether_actor *self);

#ifdef __cplusplus
}
#endif
#endif
