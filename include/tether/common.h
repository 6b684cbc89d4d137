/* tether/common.h - types shared by the program API, the actor API and the
 * backend ABI: outcomes, typed values, the clock. */
#ifndef TETHER_COMMON_H
#define TETHER_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include <tether/error.h>

#ifdef __cplusplus
extern "C" {
#endif

/* How an actor ended. Values are stable ABI. */
enum tether_outcome_kind {
    TETHER_OUTCOME_NONE = 0,  /* not ended yet */
    TETHER_OUTCOME_EXITED,    /* returned by itself; `code` is its status */
    TETHER_OUTCOME_FAILED,    /* reported an error; `message` says which */
    TETHER_OUTCOME_CANCELLED, /* stopped itself after a cancel request */
    TETHER_OUTCOME_KILLED,    /* forced by hard kill; `signal` when a process */
    TETHER_OUTCOME_ABANDONED, /* could not be stopped; cut loose, never waited for again */
    TETHER_OUTCOME_LOST       /* died without a word (crash, external kill, vanished) */
};

/* The outcome of one actor. `message` is owned by whoever filled the struct
 * (the supervisor: valid until the actor handle is released). */
struct tether_outcome {
    int kind;            /* enum tether_outcome_kind */
    int code;            /* exit status (EXITED) */
    int signal;          /* terminating signal, 0 if none */
    const char *message; /* failure text, traceback or loss reason; may be NULL */
    /* Time spent in each phase, in nanoseconds (0 when the phase did not happen). */
    int64_t run_ns;         /* ready -> cancel requested (or -> exit) */
    int64_t soft_cancel_ns; /* cancel requested -> stopped or soft deadline */
    int64_t hard_kill_ns;   /* hard kill -> reaped or abandoned */
};

/* Static lower-case name of an outcome kind ("cancelled"); never NULL. */
const char *tether_outcome_name(int kind);

/* A typed value for calls through libffi. Signatures use one letter a type:
 *   i int32   l int64   u uint32   U uint64   d double   f float
 *   s const char * (NUL-terminated, copied)   v void (return only)
 * and read "ARGS:RET", e.g. "ii:i" or "sd:v". */
struct tether_value {
    char type;
    union {
        int64_t i;
        uint64_t u;
        double d;
        const char *s;
    } v;
};

/* One key/value pair of a backend's `options:` mapping in plugins.yaml. */
struct tether_option {
    const char *key;
    const char *value;
};

/* CLOCK_MONOTONIC in nanoseconds. Deadlines throughout tether are absolute
 * values of this clock; TETHER_NEVER is refused where a deadline is required. */
int64_t tether_now_ns(void);
#define TETHER_NEVER INT64_MAX
#define TETHER_NS_PER_SEC INT64_C(1000000000)

/* The slack of the teardown bound: from a cancel request (or a close) to
 * the outcome of N actors takes at most soft_cancel + hard_kill + slack(N).
 * The supervisor waits this long in close; the conformance suite checks it. */
#define TETHER_SLACK_BASE_NS (100 * INT64_C(1000000))
#define TETHER_SLACK_PER_ACTOR_NS (2 * INT64_C(1000000))
#define TETHER_SLACK_NS(n) (TETHER_SLACK_BASE_NS + TETHER_SLACK_PER_ACTOR_NS * (int64_t)(n))

/* Most arguments a call (tether_call, an actor's callable) takes. */
#define TETHER_CALL_MAX_ARGS 16

#ifdef __cplusplus
}
#endif
#endif
