/* bench/bench.h - helpers shared by the benchmark programs: the clock,
 * sample buffers, CPU placement, and the one-line JSON records the driver
 * (bench/run.py) reads from stdout. Progress goes to stderr. */
#ifndef TETHER_BENCH_H
#define TETHER_BENCH_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline int64_t bnow(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A growable array of samples (doubles, in the unit the record names). */
struct samples {
    double *v;
    size_t n, cap;
};

static inline void spush(struct samples *s, double x)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 256;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        if (!s->v)
            abort();
    }
    s->v[s->n++] = x;
}

/* One record: {"figure":..,"who":..,"mode":..,"unit":..,"samples":[..]}. */
static inline void emit(const char *figure, const char *who, const char *mode, const char *unit,
                        const struct samples *s)
{
    printf("R {\"figure\":\"%s\",\"who\":\"%s\",\"mode\":\"%s\",\"unit\":\"%s\",\"samples\":[",
           figure, who, mode, unit);
    for (size_t i = 0; i < s->n; i++)
        printf("%s%.4f", i ? "," : "", s->v[i]);
    printf("]}\n");
    fflush(stdout);
}

/* A free-form fact: {"figure":..,"who":..,"mode":..,"value":..,"unit":..}. */
static inline void emit_value(const char *figure, const char *who, const char *mode,
                              const char *unit, double value)
{
    printf("R {\"figure\":\"%s\",\"who\":\"%s\",\"mode\":\"%s\",\"unit\":\"%s\",\"value\":%.4f}\n",
           figure, who, mode, unit, value);
    fflush(stdout);
}

static inline void emit_note(const char *figure, const char *who, const char *mode,
                             const char *note)
{
    printf("R {\"figure\":\"%s\",\"who\":\"%s\",\"mode\":\"%s\",\"note\":\"", figure, who, mode);
    for (const char *p = note; *p; p++) {
        if (*p == '"' || *p == '\\')
            putchar('\\');
        putchar(*p == '\n' ? ' ' : *p);
    }
    printf("\"}\n");
    fflush(stdout);
}

static inline void cpuset_one(cpu_set_t *s, int cpu)
{
    CPU_ZERO(s);
    CPU_SET(cpu, s);
}

/* Pin the calling thread (threads it creates later inherit it). */
static inline int pin_self(int cpu)
{
    cpu_set_t s;
    cpuset_one(&s, cpu);
    return sched_setaffinity(0, sizeof s, &s);
}

/* From now on, threads created without explicit attributes (the backend's
 * actor or driver threads) start on `cpu`. */
static inline int default_thread_cpu(int cpu)
{
    pthread_attr_t at;
    cpu_set_t s;
    cpuset_one(&s, cpu);
    pthread_attr_init(&at);
    int rc = pthread_attr_setaffinity_np(&at, sizeof s, &s);
    if (!rc)
        rc = pthread_setattr_default_np(&at);
    pthread_attr_destroy(&at);
    return rc;
}

/* Loop control: stop at `iters` or when `budget_s` has elapsed (at least
 * `min_iters` unless something is badly wrong: twice the budget). */
struct budget {
    long iters, min_iters;
    int64_t start, soft_end, hard_end;
};

static inline void budget_init(struct budget *b, long iters, long min_iters, double budget_s)
{
    b->iters = iters;
    b->min_iters = min_iters < iters ? min_iters : iters;
    b->start = bnow();
    b->soft_end = b->start + (int64_t)(budget_s * 1e9);
    b->hard_end = b->start + (int64_t)(2 * budget_s * 1e9);
}

static inline int budget_more(const struct budget *b, long done)
{
    if (done >= b->iters)
        return 0;
    int64_t t = bnow();
    if (done < b->min_iters)
        return t < b->hard_end;
    return t < b->soft_end;
}

static inline void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#include <stdarg.h>
static inline void progress(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Short random pause (0.2-0.7 ms) so an actor is parked in its wait when a
 * cancel arrives, the same for the floor and for tether. */
static inline void settle(unsigned *seed)
{
    struct timespec ts = {0, 200000 + (long)(rand_r(seed) % 500000)};
    nanosleep(&ts, NULL);
}

#endif
