/* core/handle_fd.h - the pollable fd behind tether_handle_fd (handle_fd.c).
 * Every function is called with the supervisor's lock held. */
#ifndef TETHER_HANDLE_FD_H
#define TETHER_HANDLE_FD_H

#include "internal.h"

struct tether__hfd {
    int fd;        /* eventfd, or -1 until someone asks for it */
    int signalled; /* its counter is 1 */
};

void tether__hfd_init(struct tether__hfd *f);
/* Make the fd readable or not; a no-op until the fd exists. */
void tether__hfd_sync(struct tether__hfd *f, int readable);
/* Create the fd on first use, sync it; returns the fd or TETHER_ESYS. */
int tether__hfd_get(struct tether__hfd *f, int readable);
void tether__hfd_close(struct tether__hfd *f);

#endif
