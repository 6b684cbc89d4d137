/* tests/fault/fault.c - fault injection for tests (LD_PRELOAD=libfault.so).
 *
 * Interposes the calls that spawn and teardown depend on and makes the Nth
 * one (counted from tether_fault_arm) fail, or misbehave for send():
 *   malloc calloc realloc   return NULL (ENOMEM)
 *   pthread_create          returns EAGAIN
 *   fork                    returns -1 (EAGAIN)
 *   socketpair eventfd      return -1 (EMFILE)
 *   send:drop               pretends the whole buffer was sent
 *   send:delay              sleeps 50 ms first
 *   send:halfclose          shuts the socket for writing first
 * Nothing of this is in the library: production builds carry no hook. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum site { S_NONE, S_MALLOC, S_CALLOC, S_REALLOC, S_PTHREAD_CREATE, S_FORK, S_SOCKETPAIR,
            S_EVENTFD, S_SEND };
enum action { A_FAIL, A_DROP, A_DELAY, A_HALFCLOSE };

static _Atomic int armed_site = S_NONE;
static _Atomic long countdown;
static int action;
static _Atomic int fired;

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);

/* Arm: the `n`th call (1-based) of `site` ("malloc", "send:drop", ...)
 * misbehaves. Returns 0, or -1 for an unknown site. */
int tether_fault_arm(const char *site, long n);
int tether_fault_arm(const char *site, long n)
{
    static const struct {
        const char *name;
        int site, action;
    } table[] = {
        {"malloc", S_MALLOC, A_FAIL},
        {"calloc", S_CALLOC, A_FAIL},
        {"realloc", S_REALLOC, A_FAIL},
        {"pthread_create", S_PTHREAD_CREATE, A_FAIL},
        {"fork", S_FORK, A_FAIL},
        {"socketpair", S_SOCKETPAIR, A_FAIL},
        {"eventfd", S_EVENTFD, A_FAIL},
        {"send:drop", S_SEND, A_DROP},
        {"send:delay", S_SEND, A_DELAY},
        {"send:halfclose", S_SEND, A_HALFCLOSE},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (!strcmp(site, table[i].name)) {
            atomic_store(&fired, 0);
            action = table[i].action;
            atomic_store(&countdown, n);
            atomic_store(&armed_site, table[i].site);
            return 0;
        }
    return -1;
}

/* Disarm; returns whether the fault fired. */
int tether_fault_disarm(void);
int tether_fault_disarm(void)
{
    atomic_store(&armed_site, S_NONE);
    return atomic_load(&fired);
}

/* Faults apply to the process that armed them, not to children it forks
 * (a forked actor is the code under supervision, not the supervisor). */
static void child_disarm(void)
{
    atomic_store(&armed_site, S_NONE);
}
__attribute__((constructor)) static void init(void)
{
    pthread_atfork(NULL, NULL, child_disarm);
}

static int hit(int site)
{
    if (atomic_load(&armed_site) != site)
        return 0;
    if (atomic_fetch_sub(&countdown, 1) != 1)
        return 0;
    atomic_store(&fired, 1);
    return 1;
}

void *malloc(size_t n)
{
    if (hit(S_MALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_malloc(n);
}

void *calloc(size_t a, size_t b)
{
    if (hit(S_CALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
    if (hit(S_REALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_realloc(p, n);
}

#define NEXT(type, name) ((type)dlsym(RTLD_NEXT, name))

int pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg)
{
    if (hit(S_PTHREAD_CREATE))
        return EAGAIN;
    return NEXT(int (*)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *),
                "pthread_create")(t, a, fn, arg);
}

pid_t fork(void)
{
    if (hit(S_FORK)) {
        errno = EAGAIN;
        return -1;
    }
    return NEXT(pid_t (*)(void), "fork")();
}

int socketpair(int d, int t, int p, int sv[2])
{
    if (hit(S_SOCKETPAIR)) {
        errno = EMFILE;
        return -1;
    }
    return NEXT(int (*)(int, int, int, int *), "socketpair")(d, t, p, sv);
}

int eventfd(unsigned int v, int flags)
{
    if (hit(S_EVENTFD)) {
        errno = EMFILE;
        return -1;
    }
    return NEXT(int (*)(unsigned int, int), "eventfd")(v, flags);
}

ssize_t send(int fd, const void *buf, size_t len, int flags)
{
    if (hit(S_SEND)) {
        if (action == A_DROP)
            return (ssize_t)len;
        if (action == A_DELAY) {
            struct timespec ts = {0, 50 * 1000000L};
            nanosleep(&ts, NULL);
        } else if (action == A_HALFCLOSE) {
            shutdown(fd, SHUT_WR);
        }
    }
    return NEXT(ssize_t (*)(int, const void *, size_t, int), "send")(fd, buf, len, flags);
}
