/* bench/bench_actors.c - C actors only the benchmark needs (bench_actors.so).
 *
 *   noop   returns 0 at once (spawn + exit + reap cycle)
 *   pump   the framed peer of the floor: a message "S<count> <size>" makes
 *          it send count messages of size bytes; "A" makes it reply "k";
 *          anything else is consumed. Ends on cancel.
 *   spin   a busy loop: no checkpoint, no system call, no cancellation
 *          point (like the conformance busy_loop), but the benchmark can
 *          release it once it has been abandoned (bench_spin_generation),
 *          so hundreds of iterations do not leave hundreds of spinning
 *          threads behind.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tether/actor.h>

int noop(tether_actor *self);
int pump(tether_actor *self);
int spin(tether_actor *self);
extern volatile unsigned bench_spin_generation;
volatile unsigned bench_spin_generation;

int noop(tether_actor *self)
{
    (void)self;
    return 0;
}

int pump(tether_actor *self)
{
    char *out = NULL;
    for (;;) {
        void *buf;
        size_t len;
        int rc = tether_recv_msg(self, &buf, &len, -1);
        if (rc) {
            free(out);
            return rc;
        }
        const char *b = buf;
        if (len > 0 && b[0] == 'S') {
            char cmd[64];
            snprintf(cmd, sizeof cmd, "%.*s", (int)(len < 63 ? len : 63), b);
            unsigned count = 0, size = 0;
            sscanf(cmd + 1, "%u %u", &count, &size);
            char *n = realloc(out, size ? size : 1);
            if (n) {
                out = n;
                memset(out, 'x', size);
                for (unsigned i = 0; i < count; i++)
                    if (tether_send_msg(self, out, size))
                        break;
            }
        } else if (len == 1 && b[0] == 'A') {
            tether_send_msg(self, "k", 1);
        }
        free(buf);
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
    unsigned gen = bench_spin_generation;
    while (bench_spin_generation == gen)
        atomic_fetch_add_explicit(&spin_sink, 1, memory_order_relaxed);
    return 0;
}
