/* core/wire.h - frames and messages on a channel.
 *
 * A frame is a 4-byte big-endian length followed by one MessagePack array
 * whose first element is the message kind. An announced length above the
 * maximum, a zero length, or a body that does not decode is a protocol
 * error; the announced size is never allocated before it is checked. */
#ifndef TETHER_WIRE_H
#define TETHER_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <tether/common.h>

enum tether__msg_kind {
    TETHER__MSG_READY = 1,   /* actor -> sup: [1, pid] */
    TETHER__MSG_CALL = 2,    /* sup -> actor: [2, id, func, sig, [args]] */
    TETHER__MSG_RETURN = 3,  /* actor -> sup: [3, id, type, value] */
    TETHER__MSG_ERROR = 4,   /* actor -> sup: [4, id, code, text] */
    TETHER__MSG_MESSAGE = 5, /* both ways:    [5, bin] */
    TETHER__MSG_CANCEL = 6,  /* sup -> actor: [6] */
    TETHER__MSG_STOPPED = 7  /* actor -> sup: [7, outcome kind, code, text|nil] */
};

#define TETHER__MAX_ARGS TETHER_CALL_MAX_ARGS
/* max_frame when the configuration does not set it (config.c, the actor side) */
#define TETHER__DEFAULT_MAX_FRAME (16u * 1024u * 1024u)

/* A decoded message. Strings and data point into `mem`, owned by the message. */
struct tether__msg {
    int kind;
    uint64_t id;
    int64_t pid;
    const char *func;
    const char *sig;
    struct tether_value args[TETHER__MAX_ARGS];
    size_t nargs;
    struct tether_value ret;
    int code;
    int outcome;
    const char *text;
    const void *data;
    size_t len;
    void *mem;
};

/* An encoded frame (header included), malloc'ed. */
struct tether__frame {
    uint8_t *buf;
    size_t len;
};

int tether__encode_ready(struct tether__frame *f, int64_t pid);
int tether__encode_call(struct tether__frame *f, uint64_t id, const char *func, const char *sig,
                        const struct tether_value *args, size_t nargs);
int tether__encode_return(struct tether__frame *f, uint64_t id, const struct tether_value *ret);
int tether__encode_error(struct tether__frame *f, uint64_t id, int code, const char *text);
int tether__encode_message(struct tether__frame *f, const void *data, size_t len);
int tether__encode_cancel(struct tether__frame *f);
int tether__encode_stopped(struct tether__frame *f, int outcome, int code, const char *text);
void tether__frame_free(struct tether__frame *f);

/* Decode one frame body. Returns 0 or TETHER_EPROTO with `why`. On success
 * free with tether__msg_free. */
int tether__msg_decode(const uint8_t *body, size_t len, struct tether__msg *m, char *why,
                       size_t whylen);
void tether__msg_free(struct tether__msg *m);

/* One frame to write: `head` (a MESSAGE frame's header, built here) then
 * `data` (the caller's bytes, or a whole encoded frame), written with one
 * sendmsg and no copy. `owned` (an encoded frame) is freed by out_free. */
struct tether__out {
    uint8_t head[12];
    size_t head_len;
    const uint8_t *data;
    size_t data_len;
    uint8_t *owned;
};
/* Body size of the MESSAGE frame for `len` bytes of data (what max_frame
 * is checked against). */
uint64_t tether__message_body_len(size_t len);
void tether__out_message(struct tether__out *o, const void *data, size_t len);
void tether__out_frame(struct tether__out *o, struct tether__frame *f); /* takes f over */
void tether__out_free(struct tether__out *o);
static inline size_t tether__out_len(const struct tether__out *o)
{
    return o->head_len + o->data_len;
}
/* sendmsg(MSG_NOSIGNAL | MSG_DONTWAIT) of what is left past `off`. */
ssize_t tether__out_send(int fd, const struct tether__out *o, size_t off);

/* Incremental frame reader: push any split of the byte stream; whole frame
 * bodies come out through on_frame (body valid during the callback only).
 * With `on_data` set, a MESSAGE frame's data is read straight into a
 * buffer of its final size, whose ownership on_data takes (it must free it
 * even when it fails); on_frame sees every other frame. */
typedef int (*tether__frame_cb)(void *ctx, const uint8_t *body, size_t len);
typedef int (*tether__data_cb)(void *ctx, void *data, size_t len);
struct tether__reader {
    uint64_t max;
    tether__data_cb on_data;
    uint8_t hdr[4];
    size_t hdr_got;
    uint8_t pre[8]; /* a body's first bytes: is it a MESSAGE? */
    size_t pre_got, pre_want;
    uint8_t *body; /* the body, or a MESSAGE's data */
    size_t body_len;
    size_t body_got;
    int is_data; /* body is a MESSAGE's data */
    int big;     /* the last frame was large: read headers in small bites */
};
void tether__reader_init(struct tether__reader *r, uint64_t max_frame);
void tether__reader_reset(struct tether__reader *r);
/* Returns 0, TETHER_EPROTO with why (oversized / empty frame), or whatever
 * non-zero on_frame / on_data returned (which stops the push). */
int tether__reader_push(struct tether__reader *r, const uint8_t *p, size_t n,
                        tether__frame_cb on_frame, void *ctx, char *why, size_t whylen);
/* One recvmsg(MSG_DONTWAIT) on fd: the rest of a large body lands in place,
 * what follows is pushed. Returns what recvmsg returned (errno set when
 * < 0); *rc is the push's result when it returned > 0. */
ssize_t tether__reader_recv(struct tether__reader *r, int fd, tether__frame_cb on_frame,
                            void *ctx, int *rc, char *why, size_t whylen);

#endif
