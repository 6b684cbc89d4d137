/* tests/unit/live_tasks.h - count the threads of this process that can
 * still run code of ours, for the tests that prove a pool or a close
 * leaves no thread behind.
 *
 * /proc/self/task is not that count. pthread_join returns when the kernel
 * clears the thread's tid (in exit_mm, through CLONE_CHILD_CLEARTID), and
 * the thread leaves /proc/self/task later, in exit_notify: a thread joined
 * a moment ago can still be listed, and under load (make distcheck runs
 * the tests two at a time) the window is wide enough that a strict count
 * failed one CI run in three. Such a thread has PF_EXITING in the flags
 * of /proc/self/task/TID/stat (set by exit_signals, first thing in
 * do_exit, before the tid is cleared), so it is not counted: it can no
 * longer return into a plugin's code. A worker that was detached instead
 * of joined and is still returning through the plugin does not have it,
 * and is counted, which is what these tests are for.
 *
 * A sanitizer runtime starts a helper thread of its own with the first
 * thread a process creates (TSan's background thread): live_tasks() makes
 * it exist before the first count, or it would count as one of ours. */
#ifndef TETHER_TESTS_LIVE_TASKS_H
#define TETHER_TESTS_LIVE_TASKS_H

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIVE_TASKS_PF_EXITING 0x00000004UL /* include/linux/sched.h */

static void *live_tasks_noop(void *arg)
{
    return arg;
}

/* 1 if thread tid is alive and not exiting; 0 if it is exiting or gone. */
static int live_task(const char *tid)
{
    char path[300], line[512];
    snprintf(path, sizeof path, "/proc/self/task/%s/stat", tid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0; /* reaped meanwhile */
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = 0;
    /* "tid (comm) S ppid pgrp session tty_nr tpgid flags ...": comm may
     * hold spaces and parentheses, so count from the last ')'. */
    const char *p = strrchr(line, ')');
    unsigned long flags = 0;
    if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %lu", &flags) != 1)
        return 1; /* unreadable: count it, never hide a thread */
    return !(flags & LIVE_TASKS_PF_EXITING);
}

/* The threads of this process that are not exiting, into tids (at most
 * max; NULL for none); their count. With comm non-NULL, only the threads
 * of that name ("tether-pool"). */
static int live_tasks(long *tids, int max, const char *comm)
{
    static int settled;
    if (!settled) {
        pthread_t t;
        if (pthread_create(&t, NULL, live_tasks_noop, NULL) == 0)
            pthread_join(t, NULL);
        settled = 1;
    }
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) && n < max;) {
        if (e->d_name[0] == '.' || !live_task(e->d_name))
            continue;
        if (comm) {
            char path[300], name[32] = "";
            snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
            FILE *f = fopen(path, "r");
            if (!f)
                continue; /* ended meanwhile */
            if (!fgets(name, sizeof name, f))
                name[0] = 0;
            fclose(f);
            name[strcspn(name, "\n")] = 0;
            if (strcmp(name, comm) != 0)
                continue;
        }
        if (tids)
            tids[n] = atol(e->d_name);
        n++;
    }
    closedir(d);
    return n;
}

#endif
