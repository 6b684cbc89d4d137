/* core/handle_fd.c - a pollable file descriptor per actor handle, for event
 * loops (tether_handle_fd).
 *
 * An eventfd, created on first request, kept readable exactly while the
 * handle has a message waiting or has ended (a recv or a wait would return at
 * once). The supervisor calls tether__hfd_sync under its lock wherever either
 * condition can change (TETHER__HFD_SYNC in engine.h): a message
 * queued, a state change, a message taken. Nobody but this file reads or
 * writes the eventfd, so its counter is 0 or 1 and `signalled` mirrors it.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "handle_fd.h"

void tether__hfd_init(struct tether__hfd *f)
{
    f->fd = -1;
    f->signalled = 0;
}

void tether__hfd_sync(struct tether__hfd *f, int readable)
{
    if (f->fd < 0 || !readable == !f->signalled)
        return;
    uint64_t v = 1;
    ssize_t n;
    if (readable)
        n = write(f->fd, &v, sizeof v); /* counter 0 -> 1: never blocks */
    else
        n = read(f->fd, &v, sizeof v); /* 1 -> 0; non-blocking fd */
    if (n == (ssize_t)sizeof v)
        f->signalled = readable;
}

int tether__hfd_get(struct tether__hfd *f, int readable)
{
    if (f->fd < 0) {
        f->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (f->fd < 0)
            return TETHER_ESYS;
        f->signalled = 0;
    }
    tether__hfd_sync(f, readable);
    return f->fd;
}

void tether__hfd_close(struct tether__hfd *f)
{
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    f->signalled = 0;
}
