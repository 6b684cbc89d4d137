/* conformance/ctor.c - actor modules whose loading misbehaves (the
 * constructor runs while the actor is being spawned, before ready):
 *   CTOR_SLOW   takes 10 s to load     (cancel.during-spawn)
 *   CTOR_HANGS  never finishes loading (orphan.spawn-hangs)
 *   CTOR_DIES   _exit(3) while loading (orphan.spawn-dies)
 *   CTOR_SEGV   segfaults while loading (fork backend unit tests) */
#include <time.h>
#include <unistd.h>

#include <tether/actor.h>

__attribute__((unused)) static void sleep_for(time_t secs)
{
    struct timespec ts = {secs, 0};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

#if defined(CTOR_SEGV)
#include <signal.h>
/* A real fault, and a death by SIGSEGV even in a sanitizer build: the
 * runtime's SEGV handler (which would exit 1) is put back to the default
 * first, and UBSan is told that the null store is the point. */
__attribute__((no_sanitize("undefined")))
#endif
__attribute__((constructor)) static void on_load(void)
{
#if defined(CTOR_SLOW)
    sleep_for(10);
#elif defined(CTOR_HANGS)
    sleep_for(1000);
#elif defined(CTOR_DIES)
    _exit(3);
#elif defined(CTOR_SEGV)
    signal(SIGSEGV, SIG_DFL);
    volatile int *volatile p = NULL;
    *p = 1;
#endif
}

int actor(tether_actor *self);
int actor(tether_actor *self)
{
    while (tether_sleep(self, 3600) == 0)
        ;
    return TETHER_ECANCELLED;
}
