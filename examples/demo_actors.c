/* examples/demo_actors.c - the actors `tether demo` and the README use.
 *
 *   serve    serves calls (add, mul, greet) until cancelled
 *   worker   cooperative: works in 10 ms steps, checkpointing each
 *   stuck    never checkpoints: loops on 1 s timed waits (nanosleep)
 *   spin     never checkpoints and never makes a system call
 *   hello    sends one message and exits 0
 *   fail     fails at once with a message
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <tether/actor.h>

static int add(int a, int b)
{
    return a + b;
}

static double mul(double a, double b)
{
    return a * b;
}

static const char *greet(const char *who)
{
    static __thread char buf[128];
    snprintf(buf, sizeof buf, "hello, %s", who);
    return buf;
}

const struct tether_function tether_functions[] = {
    {"add", "ii:i", TETHER_FN(add)},
    {"mul", "dd:d", TETHER_FN(mul)},
    {"greet", "s:s", TETHER_FN(greet)},
    {NULL, NULL, NULL},
};

int serve(tether_actor *self);
int worker(tether_actor *self);
int stuck(tether_actor *self);
int spin(tether_actor *self);
int hello(tether_actor *self);
int fail(tether_actor *self);

int serve(tether_actor *self)
{
    return tether_serve(self);
}

int worker(tether_actor *self)
{
    for (;;) {
        int rc = tether_sleep(self, 0.010);
        if (rc)
            return rc;
    }
}

int stuck(tether_actor *self)
{
    (void)self;
    for (;;) {
        struct timespec ts = {1, 0};
        nanosleep(&ts, NULL);
    }
}

/* A relaxed atomic: several busy actors spin at once (a plain shared counter
 * is a data race, which the TSan build reports), and not _Thread_local: the
 * thread-local storage of a dlopen'ed module crashed LeakSanitizer's exit-time tracer
 * when the thread spinning on it is abandoned (gcc 12 libasan). */
static _Atomic unsigned long spin_sink;

int spin(tether_actor *self)
{
    (void)self;
    for (;;)
        atomic_fetch_add_explicit(&spin_sink, 1, memory_order_relaxed);
}

int hello(tether_actor *self)
{
    const char msg[] = "hello from an actor";
    tether_send_msg(self, msg, sizeof msg - 1);
    return 0;
}

int fail(tether_actor *self)
{
    return tether_fail(self, "the demo actor failed on purpose");
}
