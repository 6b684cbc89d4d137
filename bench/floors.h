/* bench/floors.h - raw-primitive floors (see floors.c). */
#ifndef TETHER_BENCH_FLOORS_H
#define TETHER_BENCH_FLOORS_H
#include "bench.h"

int floor_thread_spawn(int cpu, double *ready_us, double *cycle_us);
int floor_fork_spawn(double *ready_us, double *cycle_us);
int floor_thread_cancel_msg(int cpu, unsigned *seed, double *us);
int floor_thread_pcancel(int cpu, unsigned *seed, double *us);
int floor_proc_cancel_msg(int cpu, unsigned *seed, double *us);
int floor_proc_sigkill(int cpu, unsigned *seed, double *us);

struct peer {
    int process, fd, other, pidfd;
    pthread_t thread;
    uint8_t *buf;
};
int peer_open(struct peer *p, int process, int cpu);
void peer_close(struct peer *p);
int peer_rtt(struct peer *p, size_t len, double *us);
int peer_source(struct peer *p, unsigned count, unsigned size, double *secs);
int peer_sink(struct peer *p, unsigned count, unsigned size, double *secs);

int floor_many(int process, int n, double *ready_ms, double *down_ms, void (*at_ready)(void *),
               void *arg);
#endif
