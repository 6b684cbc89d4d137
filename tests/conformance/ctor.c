/* tests/conformance/ctor.c - actor modules whose loading misbehaves (the
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

__attribute__((constructor)) static void on_load(void)
{
#if defined(CTOR_SLOW)
    sleep_for(10);
#elif defined(CTOR_HANGS)
    sleep_for(1000);
#elif defined(CTOR_DIES)
    _exit(3);
#elif defined(CTOR_SEGV)
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
