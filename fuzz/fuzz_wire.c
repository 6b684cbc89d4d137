/* fuzz/fuzz_wire.c - libFuzzer target: the frame reader and the MessagePack
 * message decoder (core/wire.c), i.e. everything a hostile peer controls.
 *
 * Input: byte 0 picks how the stream is split into pushes (the reader must
 * yield the same frames whatever the split); bytes 1-2 pick the maximum
 * frame size; the rest is the byte stream. Every frame body goes through
 * tether__msg_decode; a message that decodes is re-encoded and decoded
 * again, and must come back the same. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same_value(char type, const struct tether_value *a, const struct tether_value *b)
{
    switch (type) {
    case 'i': case 'l': return a->v.i == b->v.i;
    case 'u': case 'U': return a->v.u == b->v.u;
    case 'd': case 'f': return memcmp(&a->v.d, &b->v.d, sizeof a->v.d) == 0;
    case 's': return (!a->v.s && !b->v.s) || (a->v.s && b->v.s && !strcmp(a->v.s, b->v.s));
    default: return 1;
    }
}

static int reencode(const struct tether__msg *m, struct tether__frame *f)
{
    switch (m->kind) {
    case TETHER__MSG_READY: return tether__encode_ready(f, m->pid);
    case TETHER__MSG_CALL: return tether__encode_call(f, m->id, m->func, m->sig, m->args, m->nargs);
    case TETHER__MSG_RETURN: return tether__encode_return(f, m->id, &m->ret);
    case TETHER__MSG_ERROR: return tether__encode_error(f, m->id, m->code, m->text);
    case TETHER__MSG_MESSAGE: return tether__encode_message(f, m->data, m->len);
    case TETHER__MSG_CANCEL: return tether__encode_cancel(f);
    case TETHER__MSG_STOPPED: return tether__encode_stopped(f, m->outcome, m->code, m->text);
    }
    abort();
}

static int on_frame(void *ctx, const uint8_t *body, size_t len)
{
    unsigned *frames = ctx;
    (*frames)++;
    struct tether__msg m, m2;
    char why[256];
    if (tether__msg_decode(body, len, &m, why, sizeof why) != 0) {
        if (!memchr(why, '\0', sizeof why) || !why[0])
            abort();
        return 0;
    }
    struct tether__frame f;
    if (reencode(&m, &f) == 0) {
        if (f.len < 4 || tether__msg_decode(f.buf + 4, f.len - 4, &m2, why, sizeof why) != 0)
            abort(); /* what we decoded, we can encode and decode again */
        if (m2.kind != m.kind)
            abort();
        switch (m.kind) {
        case TETHER__MSG_CALL:
            if (m2.id != m.id || strcmp(m2.func, m.func) || strcmp(m2.sig, m.sig) ||
                m2.nargs != m.nargs)
                abort();
            for (size_t i = 0; i < m.nargs; i++)
                if (m2.args[i].type != m.args[i].type ||
                    !same_value(m.args[i].type, &m.args[i], &m2.args[i]))
                    abort();
            break;
        case TETHER__MSG_MESSAGE:
            if (m2.len != m.len || (m.len && memcmp(m2.data, m.data, m.len)))
                abort();
            break;
        case TETHER__MSG_READY:
            if (m2.pid != m.pid)
                abort();
            break;
        }
        tether__msg_free(&m2);
        tether__frame_free(&f);
    }
    tether__msg_free(&m);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    unsigned split = data[0];
    uint64_t max = 1 + ((uint64_t)data[1] << 8 | data[2]) * 4; /* 1 B .. 256 KiB */
    data += 3;
    size -= 3;

    /* once in one push, once in pieces: same frames, same result */
    struct tether__reader r;
    char why[256];
    unsigned whole = 0, pieces = 0;
    tether__reader_init(&r, max);
    int rc1 = tether__reader_push(&r, data, size, on_frame, &whole, why, sizeof why);
    tether__reader_reset(&r);

    tether__reader_init(&r, max);
    int rc2 = 0;
    size_t off = 0, step = 1 + split % 17;
    while (off < size && rc2 == 0) {
        size_t n = size - off < step ? size - off : step;
        rc2 = tether__reader_push(&r, data + off, n, on_frame, &pieces, why, sizeof why);
        off += n;
        step = 1 + (step * 7 + split) % 23;
    }
    tether__reader_reset(&r);
    if (rc1 != rc2 || whole != pieces)
        abort();
    return 0;
}
