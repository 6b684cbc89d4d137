/* core/wire.c - MessagePack framing (msgpack-c). */
#include "config.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "wire.h"

/* ---- encoding ----------------------------------------------------------- */

static int begin(msgpack_sbuffer *sb, msgpack_packer *pk, int kind, size_t n)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
    static const char zero[4] = {0, 0, 0, 0};
    if (msgpack_sbuffer_write(sb, zero, 4) != 0)
        return -1;
    if (msgpack_pack_array(pk, n) != 0 || msgpack_pack_int(pk, kind) != 0)
        return -1;
    return 0;
}

static int finish(msgpack_sbuffer *sb, struct tether__frame *f, int failed)
{
    if (failed || !sb->data) {
        msgpack_sbuffer_destroy(sb);
        f->buf = NULL;
        f->len = 0;
        return TETHER_ENOMEM;
    }
    uint32_t body = (uint32_t)(sb->size - 4);
    uint8_t *p = (uint8_t *)sb->data;
    p[0] = (uint8_t)(body >> 24);
    p[1] = (uint8_t)(body >> 16);
    p[2] = (uint8_t)(body >> 8);
    p[3] = (uint8_t)body;
    f->buf = p;
    f->len = sb->size;
    return 0;
}

static int pack_str(msgpack_packer *pk, const char *s)
{
    if (!s)
        return msgpack_pack_nil(pk);
    size_t n = strlen(s);
    if (msgpack_pack_str(pk, n) != 0)
        return -1;
    return msgpack_pack_str_body(pk, s, n);
}

static int pack_value(msgpack_packer *pk, char type, const struct tether_value *v)
{
    switch (type) {
    case 'i':
    case 'l': return msgpack_pack_int64(pk, v->v.i);
    case 'u':
    case 'U': return msgpack_pack_uint64(pk, v->v.u);
    case 'd':
    case 'f': return msgpack_pack_double(pk, v->v.d);
    case 's': return pack_str(pk, v->v.s);
    case 'v': return msgpack_pack_nil(pk);
    default: return -1;
    }
}

int tether__encode_ready(struct tether__frame *f, int64_t pid)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int bad = begin(&sb, &pk, TETHER__MSG_READY, 2) || msgpack_pack_int64(&pk, pid);
    return finish(&sb, f, bad);
}

int tether__encode_call(struct tether__frame *f, uint64_t id, const char *func, const char *sig,
                        const struct tether_value *args, size_t nargs)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int bad = begin(&sb, &pk, TETHER__MSG_CALL, 5) || msgpack_pack_uint64(&pk, id) ||
              pack_str(&pk, func) || pack_str(&pk, sig) || msgpack_pack_array(&pk, nargs);
    for (size_t i = 0; !bad && i < nargs; i++)
        bad = pack_value(&pk, args[i].type, &args[i]);
    return finish(&sb, f, bad);
}

int tether__encode_return(struct tether__frame *f, uint64_t id, const struct tether_value *ret)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int bad = begin(&sb, &pk, TETHER__MSG_RETURN, 4) || msgpack_pack_uint64(&pk, id) ||
              msgpack_pack_int(&pk, ret->type) || pack_value(&pk, ret->type, ret);
    return finish(&sb, f, bad);
}

int tether__encode_error(struct tether__frame *f, uint64_t id, int code, const char *text)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int bad = begin(&sb, &pk, TETHER__MSG_ERROR, 4) || msgpack_pack_uint64(&pk, id) ||
              msgpack_pack_int(&pk, code) || pack_str(&pk, text);
    return finish(&sb, f, bad);
}

int tether__encode_message(struct tether__frame *f, const void *data, size_t len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int bad = begin(&sb, &pk, TETHER__MSG_MESSAGE, 2) || msgpack_pack_bin(&pk, len) ||
              msgpack_pack_bin_body(&pk, data, len);
    return finish(&sb, f, bad);
}

int tether__encode_cancel(struct tether__frame *f)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int bad = begin(&sb, &pk, TETHER__MSG_CANCEL, 1);
    return finish(&sb, f, bad);
}

int tether__encode_stopped(struct tether__frame *f, int outcome, int code, const char *text)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int bad = begin(&sb, &pk, TETHER__MSG_STOPPED, 4) || msgpack_pack_int(&pk, outcome) ||
              msgpack_pack_int(&pk, code) || pack_str(&pk, text);
    return finish(&sb, f, bad);
}

void tether__frame_free(struct tether__frame *f)
{
    free(f->buf);
    f->buf = NULL;
    f->len = 0;
}

/* ---- decoding ----------------------------------------------------------- */

/* Strings are copied NUL-terminated into one arena the message owns. */
struct arena {
    char *base;
    size_t used, cap;
};

static const char *arena_str(struct arena *a, const char *p, size_t n)
{
    if (a->used + n + 1 > a->cap)
        return NULL;
    char *d = a->base + a->used;
    if (n) /* msgpack-c gives a NULL pointer for an empty string */
        memcpy(d, p, n);
    d[n] = '\0';
    a->used += n + 1;
    return d;
}

#define BAD(...)                                                                                 \
    do {                                                                                         \
        snprintf(why, whylen, __VA_ARGS__);                                                      \
        return TETHER_EPROTO;                                                                    \
    } while (0)

static int get_int(const msgpack_object *o, int64_t *out)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 > INT64_MAX)
            return -1;
        *out = (int64_t)o->via.u64;
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = o->via.i64;
        return 0;
    }
    return -1;
}

static int get_str(const msgpack_object *o, struct arena *a, const char **out, int nil_ok)
{
    if (o->type == MSGPACK_OBJECT_NIL && nil_ok) {
        *out = NULL;
        return 0;
    }
    if (o->type != MSGPACK_OBJECT_STR)
        return -1;
    *out = arena_str(a, o->via.str.ptr, o->via.str.size);
    return *out ? 0 : -1;
}

/* Decode one typed value. Checks only the wire type; the C type check is
 * the actor's (against its function table). */
static int get_value(const msgpack_object *o, struct arena *a, struct tether_value *v)
{
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        v->type = 'U';
        v->v.u = o->via.u64;
        return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        v->type = 'l';
        v->v.i = o->via.i64;
        return 0;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        v->type = 'd';
        v->v.d = o->via.f64;
        return 0;
    case MSGPACK_OBJECT_STR:
        v->type = 's';
        v->v.s = arena_str(a, o->via.str.ptr, o->via.str.size);
        return v->v.s ? 0 : -1;
    case MSGPACK_OBJECT_NIL:
        v->type = 'v';
        v->v.u = 0;
        return 0;
    default: return -1;
    }
}

/* Does a RETURN's value have its type letter's wire form and range? */
static int ret_fits(int64_t t, const msgpack_object *o)
{
    int pos = o->type == MSGPACK_OBJECT_POSITIVE_INTEGER;
    int neg = o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
    switch (t) {
    case 'i': return (pos && o->via.u64 <= INT32_MAX) || (neg && o->via.i64 >= INT32_MIN);
    case 'l': return (pos && o->via.u64 <= INT64_MAX) || neg;
    case 'u': return pos && o->via.u64 <= UINT32_MAX;
    case 'U': return pos;
    case 'd':
    case 'f': return o->type == MSGPACK_OBJECT_FLOAT64 || o->type == MSGPACK_OBJECT_FLOAT32;
    case 's': return o->type == MSGPACK_OBJECT_STR || o->type == MSGPACK_OBJECT_NIL;
    case 'v': return o->type == MSGPACK_OBJECT_NIL;
    default: return 0;
    }
}

static int decode_fields(const msgpack_object_array *arr, struct arena *a, struct tether__msg *m,
                         char *why, size_t whylen)
{
    const msgpack_object *e = arr->ptr;
    int64_t x;
    size_t n = arr->size;
    switch (m->kind) {
    case TETHER__MSG_READY:
        if (n != 2 || get_int(&e[1], &m->pid))
            BAD("malformed ready message");
        return 0;
    case TETHER__MSG_CALL:
        if (n != 5 || e[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || get_str(&e[2], a, &m->func, 0) ||
            get_str(&e[3], a, &m->sig, 0) || e[4].type != MSGPACK_OBJECT_ARRAY)
            BAD("malformed call message");
        m->id = e[1].via.u64;
        if (e[4].via.array.size > TETHER__MAX_ARGS)
            BAD("call with %u arguments (at most %d)", e[4].via.array.size, TETHER__MAX_ARGS);
        m->nargs = e[4].via.array.size;
        for (size_t i = 0; i < m->nargs; i++)
            if (get_value(&e[4].via.array.ptr[i], a, &m->args[i]))
                BAD("call argument %zu has an unsupported type", i + 1);
        return 0;
    case TETHER__MSG_RETURN:
        if (n != 4 || e[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || get_int(&e[2], &x) ||
            get_value(&e[3], a, &m->ret))
            BAD("malformed return message");
        m->id = e[1].via.u64;
        if (!ret_fits(x, &e[3]))
            BAD("malformed return value (type '%c' with a %s)", x > 32 && x < 127 ? (char)x : '?',
                e[3].type == MSGPACK_OBJECT_STR ? "string" : "value that does not fit");
        m->ret.type = (char)x;
        return 0;
    case TETHER__MSG_ERROR:
        if (n != 4 || e[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || get_int(&e[2], &x) ||
            get_str(&e[3], a, &m->text, 1))
            BAD("malformed error message");
        m->id = e[1].via.u64;
        m->code = (int)x;
        return 0;
    case TETHER__MSG_MESSAGE:
        if (n != 2 || e[1].type != MSGPACK_OBJECT_BIN)
            BAD("malformed data message");
        m->len = e[1].via.bin.size;
        if (a->used + m->len > a->cap)
            BAD("malformed data message");
        if (m->len) /* NULL pointer for empty data */
            memcpy(a->base + a->used, e[1].via.bin.ptr, m->len);
        m->data = a->base + a->used;
        a->used += m->len;
        return 0;
    case TETHER__MSG_CANCEL:
        if (n != 1)
            BAD("malformed cancel message");
        return 0;
    case TETHER__MSG_STOPPED:
        if (n != 4 || get_int(&e[1], &x) || x < TETHER_OUTCOME_EXITED || x > TETHER_OUTCOME_LOST)
            BAD("malformed stopped message");
        m->outcome = (int)x;
        if (get_int(&e[2], &x) || get_str(&e[3], a, &m->text, 1))
            BAD("malformed stopped message");
        m->code = (int)x;
        return 0;
    default: BAD("unknown message kind %d", m->kind);
    }
}

/* msgpack-c reserves count * sizeof(msgpack_object) as soon as it reads an
 * array or map header. Every announced element needs at least one byte of
 * the body: refuse counts the rest of the body cannot hold, before unpacking. */
static int counts_fit(const uint8_t *p, size_t n)
{
    size_t off = 0;
    uint64_t pending = 1;
    while (pending > 0) {
        if (off >= n)
            return 1; /* truncated: msgpack reports it */
        uint8_t b = p[off++];
        pending--;
        uint64_t count = 0, skip = 0;
        size_t w = 0; /* width of a length field */
        int kind = 0; /* 0 scalar/skip, 1 array, 2 map */
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
            ;
        else if (b >= 0x80 && b <= 0x8f)
            kind = 2, count = b & 0x0f;
        else if (b >= 0x90 && b <= 0x9f)
            kind = 1, count = b & 0x0f;
        else if (b >= 0xa0 && b <= 0xbf)
            skip = b & 0x1f;
        else
            switch (b) {
            case 0xc4: case 0xd9: w = 1; break;
            case 0xc5: case 0xda: w = 2; break;
            case 0xc6: case 0xdb: w = 4; break;
            case 0xc7: w = 1; skip = 1; break;
            case 0xc8: w = 2; skip = 1; break;
            case 0xc9: w = 4; skip = 1; break;
            case 0xcc: case 0xd0: skip = 1; break;
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xca: case 0xce: case 0xd2: skip = 4; break;
            case 0xcb: case 0xcf: case 0xd3: skip = 8; break;
            case 0xd4: skip = 2; break;
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xdc: kind = 1; w = 2; break;
            case 0xdd: kind = 1; w = 4; break;
            case 0xde: kind = 2; w = 2; break;
            case 0xdf: kind = 2; w = 4; break;
            default: return 1; /* 0xc1: msgpack reports it */
            }
        if (w) {
            if (n - off < w)
                return 1;
            uint64_t v = 0;
            for (size_t i = 0; i < w; i++)
                v = v << 8 | p[off + i];
            off += w;
            if (kind)
                count = v;
            else
                skip += v;
        }
        if (kind) {
            pending += kind == 2 ? 2 * count : count;
            if (pending > n - off)
                return 0;
        } else {
            if (skip > n - off)
                return 1;
            off += skip;
        }
    }
    return 1;
}

int tether__msg_decode(const uint8_t *body, size_t len, struct tether__msg *m, char *why,
                       size_t whylen)
{
    memset(m, 0, sizeof *m);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    int rc = TETHER_EPROTO;
    if (!counts_fit(body, len)) {
        snprintf(why, whylen, "frame of %zu bytes does not decode as MessagePack (it announces more elements than it holds)", len);
        goto out;
    }
    msgpack_unpack_return ur = msgpack_unpack_next(&up, (const char *)body, len, &off);
    if (ur != MSGPACK_UNPACK_SUCCESS) {
        snprintf(why, whylen, "frame of %zu bytes does not decode as MessagePack", len);
        goto out;
    }
    if (off != len) {
        snprintf(why, whylen, "frame has %zu trailing bytes", len - off);
        goto out;
    }
    const msgpack_object *o = &up.data;
    int64_t kind;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 1 ||
        get_int(&o->via.array.ptr[0], &kind)) {
        snprintf(why, whylen, "frame is not a tether message");
        goto out;
    }
    if (kind < TETHER__MSG_READY || kind > TETHER__MSG_STOPPED) {
        snprintf(why, whylen, "unknown message kind %lld", (long long)kind);
        goto out;
    }
    if (kind < TETHER__MSG_READY || kind > TETHER__MSG_STOPPED) {
        snprintf(why, whylen, "unknown message kind %lld", (long long)kind);
        goto out;
    }
    m->kind = (int)kind;
    /* Everything copied out is at most the frame's size plus a NUL a string. */
    struct arena a = {malloc(len + TETHER__MAX_ARGS + 8), 0, len + TETHER__MAX_ARGS + 8};
    if (!a.base) {
        rc = TETHER_ENOMEM;
        snprintf(why, whylen, "out of memory");
        goto out;
    }
    m->mem = a.base;
    rc = decode_fields(&o->via.array, &a, m, why, whylen);
    if (rc) {
        free(m->mem);
        m->mem = NULL;
    }
out:
    msgpack_unpacked_destroy(&up);
    return rc;
}

void tether__msg_free(struct tether__msg *m)
{
    free(m->mem);
    m->mem = NULL;
}

/* ---- writing without a copy ------------------------------------------------ */

/* A MESSAGE body is [5, bin]: fixarray(2), 5, then the bin header. */
static size_t bin_head(uint8_t *p, size_t len)
{
    p[0] = 0x92;
    p[1] = TETHER__MSG_MESSAGE;
    if (len < 256) {
        p[2] = 0xc4;
        p[3] = (uint8_t)len;
        return 4;
    }
    if (len < 65536) {
        p[2] = 0xc5;
        p[3] = (uint8_t)(len >> 8);
        p[4] = (uint8_t)len;
        return 5;
    }
    p[2] = 0xc6;
    for (int i = 0; i < 4; i++)
        p[3 + i] = (uint8_t)(len >> (24 - 8 * i));
    return 7;
}

uint64_t tether__message_body_len(size_t len)
{
    uint8_t tmp[8];
    return (uint64_t)len + bin_head(tmp, len > UINT32_MAX ? UINT32_MAX : len);
}

void tether__out_message(struct tether__out *o, const void *data, size_t len)
{
    size_t pre = bin_head(o->head + 4, len);
    uint32_t body = (uint32_t)(pre + len); /* the caller checked max_frame */
    for (int i = 0; i < 4; i++)
        o->head[i] = (uint8_t)(body >> (24 - 8 * i));
    o->head_len = 4 + pre;
    o->data = data;
    o->data_len = len;
    o->owned = NULL;
}

void tether__out_frame(struct tether__out *o, struct tether__frame *f)
{
    o->head_len = 0;
    o->data = f->buf;
    o->data_len = f->len;
    o->owned = f->buf;
    f->buf = NULL;
    f->len = 0;
}

void tether__out_free(struct tether__out *o)
{
    free(o->owned);
    o->owned = NULL;
    o->data = NULL;
    o->data_len = 0;
}

ssize_t tether__out_send(int fd, const struct tether__out *o, size_t off)
{
    struct iovec iov[2];
    int n = 0;
    if (off < o->head_len)
        iov[n++] = (struct iovec){(void *)(o->head + off), o->head_len - off};
    size_t doff = off > o->head_len ? off - o->head_len : 0;
    if (doff < o->data_len)
        iov[n++] = (struct iovec){(void *)(o->data + doff), o->data_len - doff};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
    return sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* ---- incremental reader ---------------------------------------------------- */

void tether__reader_init(struct tether__reader *r, uint64_t max_frame)
{
    memset(r, 0, sizeof *r);
    r->max = max_frame ? max_frame : TETHER__DEFAULT_MAX_FRAME;
}

void tether__reader_reset(struct tether__reader *r)
{
    free(r->body);
    uint64_t max = r->max;
    tether__data_cb on_data = r->on_data;
    tether__reader_init(r, max);
    r->on_data = on_data;
}

/* A frame of `len` bytes is wholly read: hand it on. */
static int deliver(struct tether__reader *r, tether__frame_cb on_frame, void *ctx)
{
    uint8_t *body = r->body;
    size_t len = r->body_len;
    int is_data = r->is_data;
    r->big = len >= 16384;
    r->body = NULL;
    r->hdr_got = r->pre_got = r->pre_want = 0;
    r->body_len = r->body_got = 0;
    r->is_data = 0;
    if (is_data)
        return r->on_data(ctx, body, len); /* it owns the data now */
    int rc = on_frame(ctx, body, len);
    free(body);
    return rc;
}

/* Start reading a body: the whole body, or (with `data`) the data only. */
static int start_body(struct tether__reader *r, size_t len, int data, char *why, size_t whylen)
{
    r->body = malloc(len ? len : 1);
    if (!r->body)
        BAD("out of memory for a frame of %zu bytes", len);
    r->body_len = len;
    r->body_got = 0;
    r->is_data = data;
    return 0;
}

/* The first bytes of a body are in r->pre: a MESSAGE whose bin fills the
 * frame reads its data into its own buffer; anything else the whole body.
 * Returns 1 while more of the prefix is needed. */
static int classify(struct tether__reader *r, size_t frame, char *why, size_t whylen)
{
    const uint8_t *p = r->pre;
    if (r->pre_got == 3 && p[0] == 0x92 && p[1] == TETHER__MSG_MESSAGE && p[2] >= 0xc4 &&
        p[2] <= 0xc6) {
        size_t want = 3 + (p[2] == 0xc4 ? 1 : p[2] == 0xc5 ? 2 : 4);
        if (want <= frame && want > r->pre_want) {
            r->pre_want = want;
            return 1;
        }
    }
    if (r->pre_got > 3 && r->pre_got == r->pre_want) {
        uint64_t n = 0;
        for (size_t i = 3; i < r->pre_got; i++)
            n = n << 8 | p[i];
        if (n == frame - r->pre_got)
            return start_body(r, (size_t)n, 1, why, whylen);
    }
    /* not the fast path: the whole body, the prefix first */
    int rc = start_body(r, frame, 0, why, whylen);
    if (rc)
        return rc;
    memcpy(r->body, r->pre, r->pre_got);
    r->body_got = r->pre_got;
    return 0;
}

static uint32_t frame_len(const struct tether__reader *r)
{
    return (uint32_t)r->hdr[0] << 24 | (uint32_t)r->hdr[1] << 16 | (uint32_t)r->hdr[2] << 8 |
           r->hdr[3];
}

/* The 4-byte header is complete: check the length before any allocation
 * (a hostile length costs nothing). */
static int start_frame(struct tether__reader *r, char *why, size_t whylen)
{
    uint32_t len = frame_len(r);
    if (len == 0)
        BAD("empty frame");
    if (len > r->max)
        BAD("frame of %u bytes exceeds the maximum of %llu", len, (unsigned long long)r->max);
    if (r->on_data && len >= 3) {
        r->pre_want = 3;
        return 0;
    }
    return start_body(r, len, 0, why, whylen);
}

int tether__reader_push(struct tether__reader *r, const uint8_t *p, size_t n,
                        tether__frame_cb on_frame, void *ctx, char *why, size_t whylen)
{
    while (n > 0) {
        if (r->hdr_got < 4) {
            size_t take = 4 - r->hdr_got < n ? 4 - r->hdr_got : n;
            memcpy(r->hdr + r->hdr_got, p, take);
            r->hdr_got += take;
            p += take;
            n -= take;
            if (r->hdr_got < 4)
                return 0;
            int rc = start_frame(r, why, whylen);
            if (rc)
                return rc;
            continue;
        }
        if (!r->body) { /* reading a body's prefix */
            size_t take = r->pre_want - r->pre_got < n ? r->pre_want - r->pre_got : n;
            memcpy(r->pre + r->pre_got, p, take);
            r->pre_got += take;
            p += take;
            n -= take;
            if (r->pre_got < r->pre_want)
                return 0;
            int rc = classify(r, frame_len(r), why, whylen);
            if (rc == 1)
                continue;
            if (rc)
                return rc;
        }
        size_t want = r->body_len - r->body_got;
        size_t take = want < n ? want : n;
        if (take)
            memcpy(r->body + r->body_got, p, take);
        r->body_got += take;
        p += take;
        n -= take;
        if (r->body_got < r->body_len)
            return 0;
        int rc = deliver(r, on_frame, ctx);
        if (rc)
            return rc;
    }
    return 0;
}

ssize_t tether__reader_recv(struct tether__reader *r, int fd, tether__frame_cb on_frame,
                            void *ctx, int *rc, char *why, size_t whylen)
{
    uint8_t stage[65536];
    struct iovec iov[2];
    int n = 0;
    size_t direct = 0;
    *rc = 0;
    if (r->body && r->body_len - r->body_got >= 1024) {
        direct = r->body_len - r->body_got;
        iov[n++] = (struct iovec){r->body + r->body_got, direct};
    }
    /* after a large body, the next header in a small bite: the body that
     * follows it is then read in place, not copied from here */
    iov[n++] = (struct iovec){stage, direct || r->big ? 512 : sizeof stage};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
    ssize_t got = recvmsg(fd, &mh, MSG_DONTWAIT);
    if (got <= 0)
        return got;
    size_t in_place = (size_t)got < direct ? (size_t)got : direct;
    r->body_got += in_place;
    if (direct && r->body_got == r->body_len)
        *rc = deliver(r, on_frame, ctx);
    if (!*rc && (size_t)got > in_place)
        *rc = tether__reader_push(r, stage, (size_t)got - in_place, on_frame, ctx, why, whylen);
    return got;
}
