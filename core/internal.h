/* core/internal.h - declarations shared between core files (tether__ prefix).
 * Never installed; backends and the CLI do not see it. */
#ifndef TETHER_INTERNAL_H
#define TETHER_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <tether/backend.h>
#include <tether/tether.h>

#define TETHER__UNUSED(x) ((void)(x))

/* error.c */
int tether__error_vset(struct tether_error *err, int code, const char *fmt, va_list ap);
/* Copy with truncation, always NUL-terminated (n > 0). */
void tether__strlcpy(char *dst, const char *src, size_t n);
/* Deadline helpers: now + seconds, clamped; timespec for CLOCK_MONOTONIC waits. */
int64_t tether__deadline_after(double seconds);
struct timespec;
void tether__ns_to_timespec(int64_t ns, struct timespec *ts);
/* Milliseconds until deadline for poll(): 0 if past, capped at INT_MAX. */
int tether__poll_ms(int64_t deadline_ns);

/* loader.c: a loaded, checked plugin. Shared by reference count. */
struct tether__plugin {
    void *dl;
    char *path;
    const struct tether_backend *vt;
    unsigned refs;
    int pinned; /* never unload: something it started may still run */
    struct tether__plugin *next;
};
int tether__plugin_load(const char *path, struct tether__plugin **out, struct tether_error *err);
/* Drop a reference; unloads at zero unless pinned. */
void tether__plugin_unref(struct tether__plugin *p);
/* The languages a backend runs: its `languages` member when its size covers
 * it and it is set, else its `language` ("c,python" or "c"...). */
const char *tether__languages(const struct tether_backend *vt);
void tether__plugin_pin(struct tether__plugin *p);

/* actor_rt.c: the C actor runtime (host service run_c_actor), and the same
 * runtime offered to foreign-language backends (host services actor_*; the
 * contracts are in tether/backend.h). */
int tether__run_c_actor(int channel_fd, const char *target, tether_cancel_flag *cancel_flag);
struct tether_actor *tether__actor_attach(int channel_fd, tether_cancel_flag *cancel_flag);
int tether__actor_ready(struct tether_actor *a);
int tether__actor_checkpoint(struct tether_actor *a);
int tether__actor_cancelled(struct tether_actor *a);
int tether__actor_sleep(struct tether_actor *a, double seconds);
int tether__actor_send_msg(struct tether_actor *a, const void *buf, size_t len);
int tether__actor_recv_msg(struct tether_actor *a, void **buf, size_t *len, double seconds);
int tether__actor_next_call(struct tether_actor *a, double seconds, const char **func,
                            const char **sig, const struct tether_value **args, size_t *nargs,
                            uint64_t *id);
int tether__actor_reply(struct tether_actor *a, uint64_t id, const struct tether_value *ret);
int tether__actor_reply_error(struct tether_actor *a, uint64_t id, const char *text);
int tether__actor_fd(struct tether_actor *a);
void tether__actor_finish(struct tether_actor *a, int outcome, int code, const char *message);

/* events.c: JSON-lines lifecycle log. */
struct tether__events;
struct tether__events *tether__events_open(const char *path, struct tether_error *err);
void tether__events_close(struct tether__events *ev);
/* Write one event. `fmt` formats extra JSON members (without braces), may be NULL. */
void tether__event(struct tether__events *ev, uint64_t actor, const char *backend, int64_t pid,
                   uint64_t tid, const char *phase, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));

/* ffi_call.c */
/* Validate "ARGS:RET" and count arguments; returns 0 or TETHER_EBADCALL with msg. */
int tether__sig_parse(const char *sig, size_t *nargs, char *ret, char *why, size_t whylen);
/* Call fn with args per sig through libffi; on error returns TETHER_EBADCALL with why. */
int tether__ffi_invoke(void (*fn)(void), const char *sig, const struct tether_value *args,
                       size_t nargs, struct tether_value *ret, char *why, size_t whylen);

#endif
