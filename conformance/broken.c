/* conformance/broken.c - deliberately broken backends, built only from
 * <tether/backend.h>, to prove the conformance suite catches them:
 *   BROKEN_NOKILL  hard_kill does nothing (while claiming it can kill)
 *   BROKEN_REAP    reap ignores its deadline (joins the actor thread)
 *   BROKEN_SPAWN   spawn never returns
 * Otherwise a plain thread backend: actors on pthreads, run by the host. */
#define _GNU_SOURCE
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

struct bchild {
    struct tether_child pub;
    const struct tether_backend_host *host;
    pthread_t thread;
    char *target;
    int fd;
    tether_cancel_flag flag;
    atomic_int done;
    int cancelled, joined, status;
};

static void on_cancel(void *arg)
{
    struct bchild *c = arg;
    c->cancelled = 1;
    atomic_store(&c->done, 1);
}

static void *run(void *arg)
{
    struct bchild *c = arg;
    pthread_cleanup_push(on_cancel, c);
    c->status = c->host->run_c_actor(c->fd, c->target, &c->flag);
    pthread_cleanup_pop(0);
    atomic_store(&c->done, 1);
    return NULL;
}

static void *exit_now(void *arg)
{
    (void)arg;
    pthread_exit(NULL);
}

static int b_open(const struct tether_backend_host *host, const struct tether_options *opts,
                  void **state, struct tether_error *err)
{
    (void)opts, (void)err;
    pthread_t t; /* load the unwinder now (see backends/thread) */
    if (pthread_create(&t, NULL, exit_now, NULL) == 0)
        pthread_join(t, NULL);
    *state = (void *)host;
    return 0;
}

static void b_close(void *state)
{
    (void)state;
}

static int b_spawn(void *state, const struct tether_spawn_spec *spec, struct tether_child **out,
                   struct tether_error *err)
{
#ifdef BROKEN_SPAWN
    (void)state, (void)out, (void)err;
    for (;;)
        pause(); /* BROKEN: never returns */
#endif
    struct bchild *c = calloc(1, sizeof *c);
    if (!c || !(c->target = strdup(spec->target))) {
        free(c);
        close(spec->channel_fd);
        return TETHER_ENOMEM;
    }
    c->host = state;
    c->fd = spec->channel_fd;
    c->pub.exit_fd = -1; /* the core polls reap */
    if (pthread_create(&c->thread, NULL, run, c) != 0) {
        snprintf(err->msg, sizeof err->msg, "pthread_create failed");
        close(c->fd);
        free(c->target);
        free(c);
        return TETHER_ESPAWN;
    }
    *out = &c->pub;
    return 0;
}

static int b_soft_cancel(struct tether_child *child)
{
    tether_cancel_flag_set(&((struct bchild *)child)->flag, TETHER_CANCEL_REQUESTED);
    return 0;
}

static int b_hard_kill(struct tether_child *child)
{
#ifdef BROKEN_NOKILL
    (void)child; /* BROKEN: does nothing */
#else
    struct bchild *c = (struct bchild *)child;
    if (!atomic_load(&c->done))
        pthread_cancel(c->thread);
#endif
    return 0;
}

static int b_abort_channels(struct tether_child *child)
{
    (void)child;
    return 0;
}

static int b_reap(struct tether_child *child, int64_t deadline_ns, struct tether_outcome *out)
{
    struct bchild *c = (struct bchild *)child;
#ifdef BROKEN_REAP
    (void)deadline_ns; /* BROKEN: waits for the thread, however long it takes */
    pthread_join(c->thread, NULL);
    c->joined = 1;
#else
    (void)deadline_ns;
    if (!atomic_load(&c->done))
        return TETHER_ETIMEDOUT;
#endif
    if (!c->joined) {
        pthread_join(c->thread, NULL);
        c->joined = 1;
    }
    memset(out, 0, sizeof *out);
    out->kind = c->cancelled ? TETHER_OUTCOME_KILLED : TETHER_OUTCOME_EXITED;
    out->code = c->status;
    return 0;
}

static void b_release(struct tether_child *child)
{
    struct bchild *c = (struct bchild *)child;
    if (!c->joined) {
        pthread_detach(c->thread); /* abandoned: its memory is kept for it */
        return;
    }
    free(c->target);
    free(c);
}

static const struct tether_backend vt = {
    .abi = TETHER_BACKEND_ABI,
    .size = sizeof(struct tether_backend),
    .name = BROKEN_NAME,
    .language = "c",
    /* claims it can kill: then an actor it leaves running is a failure */
    .caps = TETHER_CAP_CAN_KILL,
    .open = b_open,
    .close = b_close,
    .spawn = b_spawn,
    .soft_cancel = b_soft_cancel,
    .hard_kill = b_hard_kill,
    .abort_channels = b_abort_channels,
    .reap = b_reap,
    .release = b_release,
};

TETHER_BACKEND_DEFINE(vt)
