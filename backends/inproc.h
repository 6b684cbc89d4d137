/* backends/inproc.h - what the backends whose actors run on a thread of the
 * supervisor's process (thread, subint) share, so that a fix lands in both:
 * a child with its exit eventfd, and the thread's part of reap (never wait
 * for a running thread, never join one that still runs its exit).
 *
 * Private to backends/ (static inline; built into each plugin). Includes
 * only <tether/backend.h> and system headers; the includer defines
 * _GNU_SOURCE (pthread_tryjoin_np). */
#ifndef TETHER_BACKENDS_INPROC_H
#define TETHER_BACKENDS_INPROC_H

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <tether/backend.h>

/* Allocate a zeroed child of `size` bytes, whose first member is its
 * struct tether_child, with an exit eventfd (nonblocking: the thread's
 * last act writes it, reap polls it) and a copy of spec->target in
 * *target. On failure: close spec->channel_fd (spawn owns it in every
 * case), fill `err` and return NULL. */
static inline void *inproc_child_new(size_t size, const struct tether_spawn_spec *spec,
                                     char **target, struct tether_error *err)
{
    struct tether_child *pub = calloc(1, size);
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    char *t = pub ? strdup(spec->target) : NULL;
    if (!pub || efd < 0 || !t) {
        snprintf(err->msg, sizeof err->msg, "cannot allocate an actor: %s", strerror(errno));
        err->code = TETHER_ENOMEM;
        if (efd >= 0)
            close(efd);
        free(t);
        free(pub);
        close(spec->channel_fd);
        return NULL;
    }
    pub->exit_fd = efd;
    *target = t;
    return pub;
}

/* The thread's part of reap. `done` is set by the thread as its last act
 * (then it writes exit_fd). Returns 0 once the thread is done and joined
 * (*joined set); TETHER_ETIMEDOUT while it runs, after waiting on exit_fd
 * until deadline_ns at most (a deadline in the past: no wait), or while it
 * still runs its exit (TLS destructors, actor code): never waited for, the
 * core polls again. */
static inline int inproc_reap_thread(atomic_int *done, int exit_fd, pthread_t thread, int *joined,
                                     int64_t deadline_ns)
{
    if (!atomic_load(done)) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        int64_t left = deadline_ns - ((int64_t)now.tv_sec * 1000000000 + now.tv_nsec);
        if (left > 0) {
            struct pollfd p = {.fd = exit_fd, .events = POLLIN};
            poll(&p, 1, (int)((left + 999999) / 1000000)); /* bounded by the deadline */
        }
        if (!atomic_load(done))
            return TETHER_ETIMEDOUT;
    }
    if (!*joined) {
        if (pthread_tryjoin_np(thread, NULL) != 0)
            return TETHER_ETIMEDOUT;
        *joined = 1;
    }
    return 0;
}

#endif
