/* core/events.c - the JSON-lines lifecycle log (one object a transition). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

struct tether__events {
    FILE *fp;
    pthread_mutex_t lock;
};

struct tether__events *tether__events_open(const char *path, struct tether_error *err)
{
    FILE *fp = fopen(path, "ae");
    if (!fp) {
        tether_error_set(err, TETHER_ESYS, "%s: cannot open event log: %s", path, strerror(errno));
        return NULL;
    }
    /* Never block the engine on the log (a FIFO with a stalled reader):
     * a line that does not fit now is dropped. */
    fcntl(fileno(fp), F_SETFL, fcntl(fileno(fp), F_GETFL) | O_NONBLOCK);
    struct tether__events *ev = calloc(1, sizeof *ev);
    if (!ev) {
        fclose(fp);
        tether_error_set(err, TETHER_ENOMEM, "out of memory");
        return NULL;
    }
    ev->fp = fp;
    pthread_mutex_init(&ev->lock, NULL);
    return ev;
}

void tether__events_close(struct tether__events *ev)
{
    if (!ev)
        return;
    fclose(ev->fp);
    pthread_mutex_destroy(&ev->lock);
    free(ev);
}

static void put_json_string(FILE *fp, const char *s)
{
    fputc('"', fp);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(fp, "\\%c", c);
        else if (c < 0x20)
            fprintf(fp, "\\u%04x", c);
        else
            fputc(c, fp);
    }
    fputc('"', fp);
}

void tether__event(struct tether__events *ev, uint64_t actor, const char *backend, int64_t pid,
                   uint64_t tid, const char *phase, const char *reason, const char *fmt, ...)
{
    if (!ev)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    pthread_mutex_lock(&ev->lock);
    fprintf(ev->fp, "{\"time\":%lld.%06ld,\"mono_ns\":%lld,\"actor\":%llu,\"backend\":",
            (long long)ts.tv_sec, ts.tv_nsec / 1000, (long long)tether_now_ns(),
            (unsigned long long)actor);
    put_json_string(ev->fp, backend);
    fprintf(ev->fp, ",\"pid\":%lld,\"thread\":%llu,\"phase\":", (long long)pid,
            (unsigned long long)tid);
    put_json_string(ev->fp, phase);
    if (reason) {
        fputs(",\"reason\":", ev->fp);
        put_json_string(ev->fp, reason);
    }
    if (fmt) {
        fputc(',', ev->fp);
        va_list ap;
        va_start(ap, fmt);
        vfprintf(ev->fp, fmt, ap);
        va_end(ap);
    }
    fputs("}\n", ev->fp);
    fflush(ev->fp);
    pthread_mutex_unlock(&ev->lock);
}
