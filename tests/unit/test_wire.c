/* tests/unit/test_wire.c - framing and messages on a channel (core/wire.c).
 *
 * Pins: every message kind survives encode -> decode; the incremental
 * reader yields the same frames whatever the split of the byte stream;
 * bodies that are not tether messages are TETHER_EPROTO with a reason;
 * announced sizes are checked before anything is allocated for them; a
 * non-zero on_frame stops the push. */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "wire.h"

/* ---- helpers ---------------------------------------------------------------- */

static char why[256];

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Check the frame's header against its size, decode its body, free it. */
static void decode_frame(struct tether__frame *f, struct tether__msg *m)
{
    ck_assert_ptr_nonnull(f->buf);
    ck_assert_uint_ge(f->len, 5);
    ck_assert_uint_eq(be32(f->buf), f->len - 4);
    why[0] = '\0';
    int rc = tether__msg_decode(f->buf + 4, f->len - 4, m, why, sizeof why);
    ck_assert_msg(rc == 0, "decode failed (%d): %s", rc, why);
    tether__frame_free(f);
    ck_assert_ptr_null(f->buf);
    ck_assert_uint_eq(f->len, 0);
}

/* Decode a hand-made body that must be refused; `want` is in the reason. */
static void expect_eproto(const char *what, const uint8_t *body, size_t len, const char *want)
{
    struct tether__msg m;
    snprintf(why, sizeof why, "(unset)");
    int rc = tether__msg_decode(body, len, &m, why, sizeof why);
    if (rc == 0)
        tether__msg_free(&m); /* accepted: free before failing */
    ck_assert_msg(rc == TETHER_EPROTO, "%s: rc %d (why \"%s\"), expected TETHER_EPROTO", what, rc,
                  why);
    ck_assert_msg(strstr(why, want) != NULL, "%s: reason \"%s\" does not contain \"%s\"", what, why,
                  want);
    ck_assert_ptr_null(m.mem);
}

static struct tether_value ival(char t, int64_t i)
{
    struct tether_value v = {.type = t};
    v.v.i = i;
    return v;
}

static struct tether_value uval(char t, uint64_t u)
{
    struct tether_value v = {.type = t};
    v.v.u = u;
    return v;
}

static struct tether_value dval(char t, double d)
{
    struct tether_value v = {.type = t};
    v.v.d = d;
    return v;
}

static struct tether_value sval(const char *s)
{
    struct tether_value v = {.type = 's'};
    v.v.s = s;
    return v;
}

/* ---- every kind round-trips -------------------------------------------------- */

START_TEST(ready_round_trips_its_pid)
{
    static const int64_t pids[] = {0, 1, 12345, -1, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof pids / sizeof pids[0]; i++) {
        struct tether__frame f;
        ck_assert_int_eq(tether__encode_ready(&f, pids[i]), 0);
        struct tether__msg m;
        decode_frame(&f, &m);
        ck_assert_int_eq(m.kind, TETHER__MSG_READY);
        ck_assert_int_eq(m.pid, pids[i]);
        tether__msg_free(&m);
        ck_assert_ptr_null(m.mem);
    }
}
END_TEST

START_TEST(call_round_trips_id_names_and_every_value_type)
{
    const char *utf8 = "h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac";
    struct tether_value args[] = {
        ival('i', INT32_MIN), ival('i', INT32_MAX), ival('l', INT64_MIN), ival('l', INT64_MAX),
        ival('l', -1),        uval('u', UINT32_MAX), uval('U', UINT64_MAX), uval('U', 0),
        dval('d', -2.5),      dval('d', 0.1),        dval('f', 1.5),        sval(""),
        sval(utf8),           sval(NULL),
    };
    size_t n = sizeof args / sizeof args[0];
    struct tether__frame f;
    ck_assert_int_eq(tether__encode_call(&f, UINT64_MAX, "mix", "iillluUUddfsss:d", args, n), 0);
    struct tether__msg m;
    decode_frame(&f, &m);
    ck_assert_int_eq(m.kind, TETHER__MSG_CALL);
    ck_assert_uint_eq(m.id, UINT64_MAX);
    ck_assert_str_eq(m.func, "mix");
    ck_assert_str_eq(m.sig, "iillluUUddfsss:d");
    ck_assert_uint_eq(m.nargs, n);
    /* On the wire, integers are non-negative ('U') or negative ('l'), reals
     * are doubles ('d'); the C type check is the actor's. */
    ck_assert_int_eq(m.args[0].type, 'l');
    ck_assert_int_eq(m.args[0].v.i, INT32_MIN);
    ck_assert_int_eq(m.args[1].type, 'U');
    ck_assert_uint_eq(m.args[1].v.u, INT32_MAX);
    ck_assert_int_eq(m.args[2].type, 'l');
    ck_assert_int_eq(m.args[2].v.i, INT64_MIN);
    ck_assert_int_eq(m.args[3].type, 'U');
    ck_assert_uint_eq(m.args[3].v.u, (uint64_t)INT64_MAX);
    ck_assert_int_eq(m.args[4].type, 'l');
    ck_assert_int_eq(m.args[4].v.i, -1);
    ck_assert_int_eq(m.args[5].type, 'U');
    ck_assert_uint_eq(m.args[5].v.u, UINT32_MAX);
    ck_assert_int_eq(m.args[6].type, 'U');
    ck_assert_uint_eq(m.args[6].v.u, UINT64_MAX);
    ck_assert_int_eq(m.args[7].type, 'U');
    ck_assert_uint_eq(m.args[7].v.u, 0);
    ck_assert_int_eq(m.args[8].type, 'd');
    ck_assert_double_eq(m.args[8].v.d, -2.5);
    ck_assert_int_eq(m.args[9].type, 'd');
    ck_assert_double_eq(m.args[9].v.d, 0.1);
    ck_assert_int_eq(m.args[10].type, 'd');
    ck_assert_double_eq(m.args[10].v.d, 1.5);
    ck_assert_int_eq(m.args[11].type, 's');
    ck_assert_str_eq(m.args[11].v.s, "");
    ck_assert_int_eq(m.args[12].type, 's');
    ck_assert_str_eq(m.args[12].v.s, utf8);
    /* A NULL string travels as nil and arrives as 'v' (the actor refuses it). */
    ck_assert_int_eq(m.args[13].type, 'v');
    tether__msg_free(&m);
}
END_TEST

START_TEST(call_round_trips_with_no_arguments_and_with_the_most)
{
    struct tether__frame f;
    struct tether__msg m;
    ck_assert_int_eq(tether__encode_call(&f, 0, "bump", ":v", NULL, 0), 0);
    decode_frame(&f, &m);
    ck_assert_int_eq(m.kind, TETHER__MSG_CALL);
    ck_assert_uint_eq(m.id, 0);
    ck_assert_str_eq(m.func, "bump");
    ck_assert_str_eq(m.sig, ":v");
    ck_assert_uint_eq(m.nargs, 0);
    tether__msg_free(&m);

    struct tether_value args[TETHER__MAX_ARGS + 1];
    for (int i = 0; i <= TETHER__MAX_ARGS; i++)
        args[i] = sval("sixteen strings fill the arena");
    ck_assert_int_eq(tether__encode_call(&f, 7, "f", "ssssssssssssssss:v", args, TETHER__MAX_ARGS),
                     0);
    decode_frame(&f, &m);
    ck_assert_uint_eq(m.nargs, TETHER__MAX_ARGS);
    for (int i = 0; i < TETHER__MAX_ARGS; i++)
        ck_assert_str_eq(m.args[i].v.s, "sixteen strings fill the arena");
    tether__msg_free(&m);

    /* One more than the decoder holds is refused, not overflowed. */
    ck_assert_int_eq(
        tether__encode_call(&f, 8, "f", "sssssssssssssssss:v", args, TETHER__MAX_ARGS + 1), 0);
    expect_eproto("17 arguments", f.buf + 4, f.len - 4, "call with 17 arguments (at most 16)");
    tether__frame_free(&f);
}
END_TEST

START_TEST(return_round_trips_each_type)
{
    const char *utf8 = "\xe2\x9c\x93 ok";
    struct {
        struct tether_value v;
    } cases[] = {
        {ival('i', INT32_MIN)}, {ival('i', INT32_MAX)}, {ival('i', 0)},
        {ival('l', INT64_MIN)}, {ival('l', INT64_MAX)}, {uval('u', UINT32_MAX)},
        {uval('U', UINT64_MAX)}, {uval('U', 0)},       {dval('d', -1234.0625)},
        {dval('d', 1e-300)},    {dval('f', -0.5)},     {sval("")},
        {sval(utf8)},           {uval('v', 0)},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct tether_value *v = &cases[i].v;
        struct tether__frame f;
        ck_assert_int_eq(tether__encode_return(&f, 1000 + i, v), 0);
        struct tether__msg m;
        decode_frame(&f, &m);
        ck_assert_int_eq(m.kind, TETHER__MSG_RETURN);
        ck_assert_uint_eq(m.id, 1000 + i);
        ck_assert_msg(m.ret.type == v->type, "case %zu: type '%c', sent '%c'", i, m.ret.type,
                      v->type);
        switch (v->type) {
        case 'i':
        case 'l': ck_assert_int_eq(m.ret.v.i, v->v.i); break;
        case 'u':
        case 'U': ck_assert_uint_eq(m.ret.v.u, v->v.u); break;
        case 'd':
        case 'f': ck_assert_double_eq(m.ret.v.d, v->v.d); break;
        case 's': ck_assert_str_eq(m.ret.v.s, v->v.s); break;
        default: break;
        }
        tether__msg_free(&m);
    }
}
END_TEST

START_TEST(error_round_trips_code_and_text)
{
    struct tether__frame f;
    struct tether__msg m;
    ck_assert_int_eq(tether__encode_error(&f, 42, TETHER_EBADCALL, "no function 'nope'"), 0);
    decode_frame(&f, &m);
    ck_assert_int_eq(m.kind, TETHER__MSG_ERROR);
    ck_assert_uint_eq(m.id, 42);
    ck_assert_int_eq(m.code, TETHER_EBADCALL);
    ck_assert_str_eq(m.text, "no function 'nope'");
    tether__msg_free(&m);

    ck_assert_int_eq(tether__encode_error(&f, UINT64_MAX, 7, NULL), 0);
    decode_frame(&f, &m);
    ck_assert_uint_eq(m.id, UINT64_MAX);
    ck_assert_int_eq(m.code, 7);
    ck_assert_ptr_null(m.text);
    tether__msg_free(&m);

    ck_assert_int_eq(tether__encode_error(&f, 1, 0, ""), 0);
    decode_frame(&f, &m);
    ck_assert_str_eq(m.text, "");
    tether__msg_free(&m);
}
END_TEST

START_TEST(message_round_trips_empty_small_and_one_mebibyte_binaries)
{
    struct tether__frame f;
    struct tether__msg m;

    ck_assert_int_eq(tether__encode_message(&f, NULL, 0), 0);
    decode_frame(&f, &m);
    ck_assert_int_eq(m.kind, TETHER__MSG_MESSAGE);
    ck_assert_uint_eq(m.len, 0);
    tether__msg_free(&m);

    static const uint8_t nuls[] = {0, 1, 0, 0xff, 0};
    ck_assert_int_eq(tether__encode_message(&f, nuls, sizeof nuls), 0);
    decode_frame(&f, &m);
    ck_assert_uint_eq(m.len, sizeof nuls);
    ck_assert_int_eq(memcmp(m.data, nuls, sizeof nuls), 0);
    tether__msg_free(&m);

    size_t big = 1u << 20;
    uint8_t *data = malloc(big);
    ck_assert_ptr_nonnull(data);
    uint32_t x = 2463534242u; /* xorshift32, fixed seed */
    for (size_t i = 0; i < big; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        data[i] = (uint8_t)x;
    }
    ck_assert_int_eq(tether__encode_message(&f, data, big), 0);
    ck_assert_uint_gt(f.len, big);
    decode_frame(&f, &m);
    ck_assert_int_eq(m.kind, TETHER__MSG_MESSAGE);
    ck_assert_uint_eq(m.len, big);
    ck_assert_int_eq(memcmp(m.data, data, big), 0);
    tether__msg_free(&m);
    free(data);
}
END_TEST

START_TEST(cancel_round_trips)
{
    struct tether__frame f;
    struct tether__msg m;
    ck_assert_int_eq(tether__encode_cancel(&f), 0);
    ck_assert_uint_eq(f.len, 6); /* header + fixarray(1) + fixint */
    decode_frame(&f, &m);
    ck_assert_int_eq(m.kind, TETHER__MSG_CANCEL);
    tether__msg_free(&m);
}
END_TEST

START_TEST(stopped_round_trips_every_outcome_with_and_without_text)
{
    for (int k = TETHER_OUTCOME_EXITED; k <= TETHER_OUTCOME_LOST; k++) {
        struct tether__frame f;
        struct tether__msg m;
        ck_assert_int_eq(tether__encode_stopped(&f, k, -k, "deliberate failure 42"), 0);
        decode_frame(&f, &m);
        ck_assert_int_eq(m.kind, TETHER__MSG_STOPPED);
        ck_assert_int_eq(m.outcome, k);
        ck_assert_int_eq(m.code, -k);
        ck_assert_str_eq(m.text, "deliberate failure 42");
        tether__msg_free(&m);

        ck_assert_int_eq(tether__encode_stopped(&f, k, 127, NULL), 0);
        decode_frame(&f, &m);
        ck_assert_int_eq(m.outcome, k);
        ck_assert_int_eq(m.code, 127);
        ck_assert_ptr_null(m.text);
        tether__msg_free(&m);
    }
}
END_TEST

/* ---- the incremental reader ---------------------------------------------------- */

/* A stream of frames of every kind, and what the reader hands back. */
struct stream {
    uint8_t *buf;
    size_t len;
    size_t nframes;
    size_t starts[16]; /* offset of each frame's body */
    size_t lens[16];
};

struct seen {
    size_t n;
    size_t lens[16];
    uint8_t *bodies[16];
    int stop_at; /* return 99 from this callback (1-based), 0: never */
};

static void append(struct stream *s, struct tether__frame *f)
{
    ck_assert_int_eq(f->buf != NULL, 1);
    s->buf = realloc(s->buf, s->len + f->len);
    ck_assert_ptr_nonnull(s->buf);
    memcpy(s->buf + s->len, f->buf, f->len);
    s->starts[s->nframes] = s->len + 4;
    s->lens[s->nframes] = f->len - 4;
    s->nframes++;
    s->len += f->len;
    tether__frame_free(f);
}

static void make_stream(struct stream *s)
{
    memset(s, 0, sizeof *s);
    struct tether__frame f;
    struct tether_value args[] = {ival('i', -7), sval("two"), dval('d', 3.25)};
    static uint8_t blob[70000]; /* spans several reads of the supervisor's 64 KiB buffer */
    for (size_t i = 0; i < sizeof blob; i++)
        blob[i] = (uint8_t)(i * 31u);
    struct tether_value r = ival('l', -99);

    tether__encode_ready(&f, 4242);
    append(s, &f);
    tether__encode_call(&f, 1, "f", "isd:l", args, 3);
    append(s, &f);
    tether__encode_return(&f, 1, &r);
    append(s, &f);
    tether__encode_message(&f, blob, sizeof blob);
    append(s, &f);
    tether__encode_message(&f, "", 0);
    append(s, &f);
    tether__encode_error(&f, 2, TETHER_EBADCALL, "signature mismatch");
    append(s, &f);
    tether__encode_cancel(&f);
    append(s, &f);
    tether__encode_stopped(&f, TETHER_OUTCOME_CANCELLED, 0, NULL);
    append(s, &f);
}

static int collect(void *ctx, const uint8_t *body, size_t len)
{
    struct seen *w = ctx;
    ck_assert_uint_lt(w->n, 16);
    w->bodies[w->n] = malloc(len);
    ck_assert_ptr_nonnull(w->bodies[w->n]);
    memcpy(w->bodies[w->n], body, len);
    w->lens[w->n] = len;
    w->n++;
    return w->stop_at && (int)w->n == w->stop_at ? 99 : 0;
}

static void check_seen(const struct stream *s, struct seen *w)
{
    ck_assert_uint_eq(w->n, s->nframes);
    for (size_t i = 0; i < w->n; i++) {
        ck_assert_uint_eq(w->lens[i], s->lens[i]);
        ck_assert_msg(memcmp(w->bodies[i], s->buf + s->starts[i], s->lens[i]) == 0,
                      "frame %zu differs", i);
        struct tether__msg m;
        ck_assert_int_eq(tether__msg_decode(w->bodies[i], w->lens[i], &m, why, sizeof why), 0);
        tether__msg_free(&m);
        free(w->bodies[i]);
    }
    memset(w, 0, sizeof *w);
}

START_TEST(reader_yields_the_same_frames_fed_one_byte_at_a_time)
{
    struct stream s;
    make_stream(&s);
    struct tether__reader r;
    tether__reader_init(&r, 0);
    ck_assert_uint_eq(r.max, TETHER__DEFAULT_MAX_FRAME);
    struct seen w;
    memset(&w, 0, sizeof w);
    for (size_t i = 0; i < s.len; i++)
        ck_assert_int_eq(tether__reader_push(&r, s.buf + i, 1, collect, &w, why, sizeof why), 0);
    ck_assert_ptr_null(r.body);
    ck_assert_uint_eq(r.hdr_got, 0);
    check_seen(&s, &w);
    tether__reader_reset(&r);
    free(s.buf);
}
END_TEST

START_TEST(reader_yields_the_same_frames_fed_in_random_chunks)
{
    struct stream s;
    make_stream(&s);
    struct tether__reader r;
    tether__reader_init(&r, 1u << 20);
    struct seen w;
    memset(&w, 0, sizeof w);
    uint32_t x = 0x9e3779b9u; /* fixed seed: the same splits every run */
    for (int round = 0; round < 50; round++) {
        size_t off = 0;
        while (off < s.len) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            /* mostly small chunks (split headers), sometimes big ones */
            size_t n = x % 8 == 0 ? 1 + x % 100000 : 1 + x % 9;
            if (n > s.len - off)
                n = s.len - off;
            ck_assert_int_eq(tether__reader_push(&r, s.buf + off, n, collect, &w, why, sizeof why),
                             0);
            off += n;
        }
        check_seen(&s, &w);
    }
    /* and the whole stream in one push */
    ck_assert_int_eq(tether__reader_push(&r, s.buf, s.len, collect, &w, why, sizeof why), 0);
    check_seen(&s, &w);
    /* a partial frame is freed by reset */
    ck_assert_int_eq(
        tether__reader_push(&r, s.buf, s.starts[1] + 2, collect, &w, why, sizeof why), 0);
    ck_assert_uint_eq(w.n, 1);
    free(w.bodies[0]);
    memset(&w, 0, sizeof w);
    ck_assert_ptr_nonnull(r.body);
    tether__reader_reset(&r);
    ck_assert_ptr_null(r.body);
    ck_assert_uint_eq(r.max, 1u << 20);
    ck_assert_int_eq(tether__reader_push(&r, s.buf, s.len, collect, &w, why, sizeof why), 0);
    check_seen(&s, &w);
    tether__reader_reset(&r);
    free(s.buf);
}
END_TEST

START_TEST(nonzero_on_frame_stops_the_push_and_is_returned)
{
    struct stream s;
    make_stream(&s);
    struct tether__reader r;
    tether__reader_init(&r, 0);
    struct seen w;
    memset(&w, 0, sizeof w);
    w.stop_at = 2;
    ck_assert_int_eq(tether__reader_push(&r, s.buf, s.len, collect, &w, why, sizeof why), 99);
    ck_assert_uint_eq(w.n, 2); /* nothing after the frame that said stop */
    ck_assert_ptr_null(r.body);
    for (size_t i = 0; i < w.n; i++)
        free(w.bodies[i]);
    tether__reader_reset(&r);
    free(s.buf);
}
END_TEST

static int must_not_be_called(void *ctx, const uint8_t *body, size_t len)
{
    ck_abort_msg("on_frame called for a refused frame (%zu bytes)", len);
    return 0;
}

START_TEST(frame_of_max_plus_one_is_refused_from_its_header_alone)
{
    struct tether__reader r;
    tether__reader_init(&r, 64);
    const uint8_t hdr[4] = {0, 0, 0, 65};
    /* Three header bytes: still waiting. The fourth decides, with no body
     * byte pushed and nothing allocated. */
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(tether__reader_push(&r, hdr + i, 1, must_not_be_called, NULL, why,
                                             sizeof why),
                         0);
    why[0] = '\0';
    ck_assert_int_eq(tether__reader_push(&r, hdr + 3, 1, must_not_be_called, NULL, why, sizeof why),
                     TETHER_EPROTO);
    ck_assert_msg(strstr(why, "exceeds the maximum") != NULL, "why: %s", why);
    ck_assert_msg(strstr(why, "65") && strstr(why, "64"), "why names both sizes: %s", why);
    ck_assert_ptr_null(r.body);
    tether__reader_reset(&r);

    /* exactly max is accepted */
    struct tether__frame f;
    uint8_t blob[64 - 4]; /* + fixarray, kind, bin8 header */
    memset(blob, 'x', sizeof blob);
    ck_assert_int_eq(tether__encode_message(&f, blob, sizeof blob), 0);
    ck_assert_uint_eq(f.len - 4, 64);
    struct seen w;
    memset(&w, 0, sizeof w);
    ck_assert_int_eq(tether__reader_push(&r, f.buf, f.len, collect, &w, why, sizeof why), 0);
    ck_assert_uint_eq(w.n, 1);
    ck_assert_uint_eq(w.lens[0], 64);
    free(w.bodies[0]);
    tether__frame_free(&f);
    tether__reader_reset(&r);
}
END_TEST

/* ---- MESSAGE frames without a copy ------------------------------------------------ */

/* What on_data receives: each MESSAGE's data, owned. */
struct owned {
    size_t n;
    void *data[16];
    size_t lens[16];
};

static int take_data(void *ctx, void *data, size_t len)
{
    struct owned *o = ctx;
    ck_assert_uint_lt(o->n, 16);
    o->data[o->n] = data;
    o->lens[o->n] = len;
    o->n++;
    return 0;
}

/* Both callbacks share one context here: frames go to `w`, data to `d`. */
struct both {
    struct seen w;
    struct owned d;
};

static int both_frame(void *ctx, const uint8_t *body, size_t len)
{
    return collect(&((struct both *)ctx)->w, body, len);
}

static int both_data(void *ctx, void *data, size_t len)
{
    return take_data(&((struct both *)ctx)->d, data, len);
}

/* The frame a MESSAGE is written as (header + caller's data, no copy) is
 * byte for byte the one tether__encode_message builds, at every bin width. */
START_TEST(message_written_from_the_callers_buffer_is_the_encoded_frame)
{
    static const size_t sizes[] = {0, 1, 255, 256, 65535, 65536, 70000};
    static uint8_t blob[70000];
    for (size_t i = 0; i < sizeof blob; i++)
        blob[i] = (uint8_t)(i * 7u);
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        struct tether__frame f;
        ck_assert_int_eq(tether__encode_message(&f, blob, sizes[k]), 0);
        struct tether__out o;
        tether__out_message(&o, blob, sizes[k]);
        ck_assert_uint_eq(tether__out_len(&o), f.len);
        ck_assert_uint_eq(tether__message_body_len(sizes[k]), f.len - 4);
        ck_assert(memcmp(o.head, f.buf, o.head_len) == 0);
        ck_assert_ptr_eq(o.data, blob);
        ck_assert(memcmp(o.data, f.buf + o.head_len, o.data_len) == 0);
        tether__out_free(&o); /* nothing owned: the caller's buffer stays */
        tether__frame_free(&f);
    }
}
END_TEST

/* With on_data set, each MESSAGE's data comes out in a buffer of its own
 * (exactly its size, owned by the receiver) whatever the split; the other
 * frames still come out through on_frame, in order. */
START_TEST(reader_hands_message_data_over_whatever_the_split)
{
    struct stream s;
    make_stream(&s);
    uint32_t x = 0x12345678u;
    for (int round = 0; round < 30; round++) {
        struct tether__reader r;
        tether__reader_init(&r, 0);
        r.on_data = both_data;
        struct both b;
        memset(&b, 0, sizeof b);
        size_t off = 0;
        while (off < s.len) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            size_t n = round == 0 ? s.len : x % 8 == 0 ? 1 + x % 100000 : 1 + x % 9;
            if (n > s.len - off)
                n = s.len - off;
            ck_assert_int_eq(tether__reader_push(&r, s.buf + off, n, both_frame, &b, why, sizeof why),
                             0);
            off += n;
        }
        ck_assert_uint_eq(b.d.n, 2); /* the 70000-byte message and the empty one */
        ck_assert_uint_eq(b.d.lens[0], 70000);
        ck_assert_uint_eq(b.d.lens[1], 0);
        for (size_t i = 0; i < 70000; i++)
            if (((uint8_t *)b.d.data[0])[i] != (uint8_t)(i * 31u))
                ck_abort_msg("data byte %zu differs", i);
        free(b.d.data[0]);
        free(b.d.data[1]);
        ck_assert_uint_eq(b.w.n, s.nframes - 2);
        for (size_t i = 0; i < b.w.n; i++) {
            struct tether__msg m;
            ck_assert_int_eq(tether__msg_decode(b.w.bodies[i], b.w.lens[i], &m, why, sizeof why), 0);
            ck_assert_int_ne(m.kind, TETHER__MSG_MESSAGE);
            tether__msg_free(&m);
            free(b.w.bodies[i]);
        }
        ck_assert_ptr_null(r.body);
        tether__reader_reset(&r);
    }
    free(s.buf);
}
END_TEST

/* A MESSAGE whose bin does not fill the frame is not taken by the fast
 * path: it reaches on_frame whole, and decoding it is the protocol error. */
START_TEST(message_with_trailing_bytes_is_left_to_the_decoder)
{
    static const uint8_t frame[] = {0, 0, 0, 6, 0x92, 0x05, 0xc4, 0x01, 'x', 'y'};
    struct tether__reader r;
    tether__reader_init(&r, 0);
    r.on_data = both_data;
    struct both b;
    memset(&b, 0, sizeof b);
    ck_assert_int_eq(tether__reader_push(&r, frame, sizeof frame, both_frame, &b, why, sizeof why), 0);
    ck_assert_uint_eq(b.d.n, 0);
    ck_assert_uint_eq(b.w.n, 1);
    struct tether__msg m;
    ck_assert_int_eq(tether__msg_decode(b.w.bodies[0], b.w.lens[0], &m, why, sizeof why),
                     TETHER_EPROTO);
    free(b.w.bodies[0]);
    tether__reader_reset(&r);
}
END_TEST

/* The socket path: a large body is received in place, what follows it is
 * pushed; a stream written in one go comes back whole. */
START_TEST(reader_recv_reads_a_stream_from_a_socket)
{
    struct stream s;
    make_stream(&s);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int big = 1 << 20;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    struct tether__reader r;
    tether__reader_init(&r, 0);
    r.on_data = both_data;
    struct both b;
    memset(&b, 0, sizeof b);
    size_t off = 0;
    while (off < s.len || b.w.n + b.d.n < s.nframes) {
        if (off < s.len) {
            ssize_t w = send(sv[0], s.buf + off, s.len - off > 5000 ? 5000 : s.len - off,
                             MSG_DONTWAIT);
            if (w > 0)
                off += (size_t)w;
        }
        int rc = 0;
        ssize_t got = tether__reader_recv(&r, sv[1], both_frame, &b, &rc, why, sizeof why);
        ck_assert_int_eq(rc, 0);
        ck_assert(got > 0 || (got < 0 && errno == EAGAIN));
    }
    ck_assert_uint_eq(b.d.n, 2);
    ck_assert_uint_eq(b.d.lens[0], 70000);
    ck_assert(memcmp(b.d.data[0], s.buf + s.starts[3] + 7, 70000) == 0);
    free(b.d.data[0]);
    free(b.d.data[1]);
    ck_assert_uint_eq(b.w.n, s.nframes - 2);
    for (size_t i = 0; i < b.w.n; i++)
        free(b.w.bodies[i]);
    tether__reader_reset(&r);
    close(sv[0]);
    close(sv[1]);
    free(s.buf);
}
END_TEST

/* Address space in use now, bytes (from /proc/self/statm). */
static size_t vm_size(void)
{
    FILE *fp = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (fp) {
        if (fscanf(fp, "%lu", &pages) != 1)
            pages = 0;
        fclose(fp);
    }
    return (size_t)pages * (size_t)sysconf(_SC_PAGESIZE);
}

/* Run `fn` in a child whose address space is capped at its current size
 * plus 64 MiB: an allocation of an announced size (4 GiB) would fail there,
 * whatever the overcommit policy. Forks by itself so that it also holds
 * with CK_FORK=no (valgrind). The child reports a failure on the pipe. */
static void run_capped(void (*fn)(int fd))
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(p[0]);
        struct rlimit rl;
        size_t cap = vm_size() + (64u << 20);
        rl.rlim_cur = rl.rlim_max = cap;
        if (setrlimit(RLIMIT_AS, &rl) != 0) {
            dprintf(p[1], "setrlimit: %s", strerror(errno));
            _exit(2);
        }
        fn(p[1]);
        _exit(0);
    }
    close(p[1]);
    char msg[512] = "";
    ssize_t got = 0, r;
    while ((r = read(p[0], msg + got, sizeof msg - 1 - (size_t)got)) > 0)
        got += r;
    msg[got > 0 ? got : 0] = '\0';
    close(p[0]);
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "capped child failed (status %#x): %s",
                  st, msg);
}

#define CHILD_CHECK(fd, cond, ...)                                                               \
    do {                                                                                         \
        if (!(cond)) {                                                                           \
            dprintf(fd, __VA_ARGS__);                                                            \
            _exit(1);                                                                            \
        }                                                                                        \
    } while (0)

static void huge_header_child(int fd)
{
    /* The cap has teeth: the announced size cannot be allocated here. */
    void *volatile probe = malloc(0xFFFFFFFFu);
    CHILD_CHECK(fd, probe == NULL, "the address-space cap does not stop a 4 GiB malloc");
    free(probe);
    struct tether__reader r;
    tether__reader_init(&r, 4096);
    static const uint8_t hdr[] = {0xff, 0xff, 0xff, 0xff, 0x93};
    char w[256] = "";
    int rc = tether__reader_push(&r, hdr, sizeof hdr, must_not_be_called, NULL, w, sizeof w);
    CHILD_CHECK(fd, rc == TETHER_EPROTO, "rc %d (%s)", rc, w);
    /* "exceeds the maximum", not "out of memory": refused before malloc */
    CHILD_CHECK(fd, strstr(w, "exceeds the maximum") != NULL, "why: %s", w);
    CHILD_CHECK(fd, strstr(w, "4294967295") != NULL, "why does not name the size: %s", w);
    CHILD_CHECK(fd, r.body == NULL, "a body buffer was allocated");
    tether__reader_reset(&r);
}

START_TEST(huge_announced_length_is_refused_without_allocating_it)
{
    /* In this process too: no body buffer exists after the refusal. */
    struct tether__reader r;
    tether__reader_init(&r, 4096);
    static const uint8_t hdr[] = {0xff, 0xff, 0xff, 0xff};
    ck_assert_int_eq(
        tether__reader_push(&r, hdr, sizeof hdr, must_not_be_called, NULL, why, sizeof why),
        TETHER_EPROTO);
    ck_assert_msg(strstr(why, "exceeds the maximum") != NULL, "why: %s", why);
    ck_assert_ptr_null(r.body);
    tether__reader_reset(&r);
    run_capped(huge_header_child);
}
END_TEST

START_TEST(empty_frame_is_a_protocol_error)
{
    struct tether__reader r;
    tether__reader_init(&r, 0);
    static const uint8_t hdr[] = {0, 0, 0, 0, 0x91, 0x06};
    ck_assert_int_eq(
        tether__reader_push(&r, hdr, sizeof hdr, must_not_be_called, NULL, why, sizeof why),
        TETHER_EPROTO);
    ck_assert_msg(strstr(why, "empty frame") != NULL, "why: %s", why);
    ck_assert_ptr_null(r.body);
    tether__reader_reset(&r);
}
END_TEST

/* ---- bodies that are not tether messages ----------------------------------------- */

#define BODY(...) ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})

START_TEST(body_that_is_not_messagepack_is_refused)
{
    /* 0xc1 is never used by MessagePack */
    expect_eproto("0xc1", BODY(0xc1, 0xc1, 0xc1, 0xc1), "does not decode as MessagePack");
    /* truncated: an array of 3 holding one element */
    expect_eproto("truncated", BODY(0x93, 0x01), "does not decode as MessagePack");
    /* a string header announcing more bytes than the body has */
    expect_eproto("short str", BODY(0xd9, 0x20, 'a'), "does not decode as MessagePack");
    ck_assert_msg(strstr(why, "3 bytes") != NULL, "why names the size: %s", why);
}
END_TEST

START_TEST(messagepack_that_is_not_an_array_with_a_kind_is_refused)
{
    expect_eproto("int", BODY(0x05), "not a tether message");
    expect_eproto("string", BODY(0xa3, 'a', 'b', 'c'), "not a tether message");
    expect_eproto("map", BODY(0x81, 0x01, 0x02), "not a tether message");
    expect_eproto("nil", BODY(0xc0), "not a tether message");
    expect_eproto("empty array", BODY(0x90), "not a tether message");
    expect_eproto("kind is a string", BODY(0x91, 0xa1, 'x'), "not a tether message");
    expect_eproto("kind is a float", BODY(0x91, 0xca, 0x40, 0x00, 0x00, 0x00),
                  "not a tether message");
    expect_eproto("kind beyond int64",
                  BODY(0x91, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
                  "not a tether message");
}
END_TEST

START_TEST(unknown_kind_is_refused)
{
    expect_eproto("kind 0", BODY(0x91, 0x00), "unknown message kind 0");
    expect_eproto("kind 8", BODY(0x91, 0x08), "unknown message kind 8");
    expect_eproto("kind 99", BODY(0x92, 0x63, 0x01), "unknown message kind 99");
    expect_eproto("kind -1", BODY(0x91, 0xff), "unknown message kind -1");
}
END_TEST

/* FAILS until fixed: the kind is read as int64 and truncated to int, so
 * 2^32 + 3 is taken for RETURN (3). */
START_TEST(kind_beyond_int_range_is_unknown_not_truncated)
{
    expect_eproto("kind 2^32+3",
                  BODY(0x94, 0xcf, 0, 0, 0, 1, 0, 0, 0, 3, 0x01, 'i', 0x05),
                  "unknown message kind");
    expect_eproto("kind 2^32+6", BODY(0x91, 0xcf, 0, 0, 0, 1, 0, 0, 0, 6), "unknown message kind");
}
END_TEST

START_TEST(wrong_field_count_is_refused_for_every_kind)
{
    expect_eproto("ready/1", BODY(0x91, 0x01), "malformed ready message");
    expect_eproto("ready/3", BODY(0x93, 0x01, 0x05, 0x05), "malformed ready message");
    expect_eproto("call/4", BODY(0x94, 0x02, 0x01, 0xa1, 'f', 0xa3, ':', 'v', 'v'),
                  "malformed call message");
    expect_eproto("call/6", BODY(0x96, 0x02, 0x01, 0xa1, 'f', 0xa2, ':', 'v', 0x90, 0xc0),
                  "malformed call message");
    expect_eproto("return/3", BODY(0x93, 0x03, 0x01, 'i'), "malformed return message");
    expect_eproto("return/5", BODY(0x95, 0x03, 0x01, 'i', 0x05, 0x05), "malformed return message");
    expect_eproto("error/3", BODY(0x93, 0x04, 0x01, 0xf0), "malformed error message");
    expect_eproto("error/5", BODY(0x95, 0x04, 0x01, 0xf0, 0xc0, 0xc0), "malformed error message");
    expect_eproto("message/1", BODY(0x91, 0x05), "malformed data message");
    expect_eproto("message/3", BODY(0x93, 0x05, 0xc4, 0x00, 0xc4, 0x00), "malformed data message");
    expect_eproto("cancel/2", BODY(0x92, 0x06, 0x00), "malformed cancel message");
    expect_eproto("stopped/3", BODY(0x93, 0x07, 0x03, 0x00), "malformed stopped message");
    expect_eproto("stopped/5", BODY(0x95, 0x07, 0x03, 0x00, 0xc0, 0xc0),
                  "malformed stopped message");
}
END_TEST

START_TEST(wrong_field_types_are_refused)
{
    /* ready: pid a string */
    expect_eproto("ready pid", BODY(0x92, 0x01, 0xa1, 'x'), "malformed ready message");
    /* call: negative id, nil func, int sig, args not an array */
    expect_eproto("call id<0", BODY(0x95, 0x02, 0xff, 0xa1, 'f', 0xa2, ':', 'v', 0x90),
                  "malformed call message");
    expect_eproto("call func nil", BODY(0x95, 0x02, 0x01, 0xc0, 0xa2, ':', 'v', 0x90),
                  "malformed call message");
    expect_eproto("call sig int", BODY(0x95, 0x02, 0x01, 0xa1, 'f', 0x05, 0x90),
                  "malformed call message");
    expect_eproto("call args map", BODY(0x95, 0x02, 0x01, 0xa1, 'f', 0xa2, ':', 'v', 0x80),
                  "malformed call message");
    /* call: an argument that is not a value type (bool, bin, array, map) */
    expect_eproto("arg bool", BODY(0x95, 0x02, 0x01, 0xa1, 'f', 0xa3, 'i', ':', 'v', 0x91, 0xc3),
                  "call argument 1 has an unsupported type");
    expect_eproto("arg array",
                  BODY(0x95, 0x02, 0x01, 0xa1, 'f', 0xa4, 'i', 'i', ':', 'v', 0x92, 0x01, 0x90),
                  "call argument 2 has an unsupported type");
    /* return: a real type carrying an integer */
    expect_eproto("return d=int", BODY(0x94, 0x03, 0x01, 'd', 0x05), "malformed return value");
    /* error: text an int */
    expect_eproto("error text", BODY(0x94, 0x04, 0x01, 0xf0, 0x05), "malformed error message");
    /* message: a string, not bin */
    expect_eproto("message str", BODY(0x92, 0x05, 0xa1, 'x'), "malformed data message");
    /* stopped: outcome out of range (0: none, 7: past lost) */
    expect_eproto("stopped 0", BODY(0x94, 0x07, 0x00, 0x00, 0xc0), "malformed stopped message");
    expect_eproto("stopped 7", BODY(0x94, 0x07, 0x07, 0x00, 0xc0), "malformed stopped message");
    expect_eproto("stopped text", BODY(0x94, 0x07, 0x02, 0x00, 0x05), "malformed stopped message");
}
END_TEST

/* FAILS until fixed: a RETURN's value is not checked against its type
 * letter (only 'd'/'f' are). [3, id, 's', 5] decodes with ret.v.s == (char *)5,
 * which the supervisor's on_frame then strdup()s: one bad frame from an
 * actor process crashes the supervisor. */
START_TEST(return_value_must_match_its_type_letter)
{
    expect_eproto("s=int", BODY(0x94, 0x03, 0x01, 's', 0x05), "malformed return");
    expect_eproto("s=double",
                  BODY(0x94, 0x03, 0x01, 's', 0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0),
                  "malformed return");
    expect_eproto("i=str", BODY(0x94, 0x03, 0x01, 'i', 0xa1, 'x'), "malformed return");
    expect_eproto("U=str", BODY(0x94, 0x03, 0x01, 'U', 0xa1, 'x'), "malformed return");
    expect_eproto("u=-1", BODY(0x94, 0x03, 0x01, 'u', 0xff), "malformed return");
    expect_eproto("i=2^40", BODY(0x94, 0x03, 0x01, 'i', 0xcf, 0, 0, 1, 0, 0, 0, 0, 0),
                  "malformed return");
    expect_eproto("v=int", BODY(0x94, 0x03, 0x01, 'v', 0x05), "malformed return");
    expect_eproto("type x", BODY(0x94, 0x03, 0x01, 'x', 0x05), "malformed return");
}
END_TEST

START_TEST(trailing_bytes_after_the_message_are_refused)
{
    expect_eproto("cancel+1", BODY(0x91, 0x06, 0x00), "frame has 1 trailing bytes");
    expect_eproto("cancel+cancel", BODY(0x91, 0x06, 0x91, 0x06), "frame has 2 trailing bytes");
}
END_TEST

static void nested_count_child(int fd)
{
    /* An array32 header announcing 16 Mi elements, and nothing else: 5
     * bytes that must not make the decoder reserve 16 Mi objects (512 MiB). */
    static const uint8_t body[] = {0xdd, 0x01, 0x00, 0x00, 0x00};
    struct tether__msg m;
    char w[256] = "";
    errno = 0;
    int rc = tether__msg_decode(body, sizeof body, &m, w, sizeof w);
    int e = errno;
    CHILD_CHECK(fd, rc == TETHER_EPROTO, "rc %d (%s)", rc, w);
    CHILD_CHECK(fd, e != ENOMEM,
                "decoding a 5-byte body tried to allocate for its announced element count "
                "(malloc failed with ENOMEM under the address-space cap)");
    /* the same, nested as a call's argument list */
    static const uint8_t call[] = {0x95, 0x02, 0x01, 0xa1, 'f', 0xa2, ':', 'v',
                                   0xdd, 0x01, 0x00, 0x00, 0x00};
    errno = 0;
    rc = tether__msg_decode(call, sizeof call, &m, w, sizeof w);
    e = errno;
    CHILD_CHECK(fd, rc == TETHER_EPROTO, "nested: rc %d (%s)", rc, w);
    CHILD_CHECK(fd, e != ENOMEM, "nested: decoding tried to allocate for the announced count");
}

/* FAILS until fixed: msgpack_unpack_next reserves count * sizeof(msgpack_object)
 * when it reads an array/map header, before the elements arrive, so a
 * 5-byte body can demand up to 2^32 * 32 bytes. */
START_TEST(announced_element_count_is_not_allocated_before_the_elements_arrive)
{
    run_capped(nested_count_child);
}
END_TEST

static Suite *wire_suite(void)
{
    Suite *s = suite_create("wire");
    TCase *tc = tcase_create("round-trip");
    tcase_add_test(tc, ready_round_trips_its_pid);
    tcase_add_test(tc, call_round_trips_id_names_and_every_value_type);
    tcase_add_test(tc, call_round_trips_with_no_arguments_and_with_the_most);
    tcase_add_test(tc, return_round_trips_each_type);
    tcase_add_test(tc, error_round_trips_code_and_text);
    tcase_add_test(tc, message_round_trips_empty_small_and_one_mebibyte_binaries);
    tcase_add_test(tc, cancel_round_trips);
    tcase_add_test(tc, stopped_round_trips_every_outcome_with_and_without_text);
    suite_add_tcase(s, tc);

    tc = tcase_create("reader");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, reader_yields_the_same_frames_fed_one_byte_at_a_time);
    tcase_add_test(tc, reader_yields_the_same_frames_fed_in_random_chunks);
    tcase_add_test(tc, nonzero_on_frame_stops_the_push_and_is_returned);
    tcase_add_test(tc, frame_of_max_plus_one_is_refused_from_its_header_alone);
    tcase_add_test(tc, message_written_from_the_callers_buffer_is_the_encoded_frame);
    tcase_add_test(tc, reader_hands_message_data_over_whatever_the_split);
    tcase_add_test(tc, message_with_trailing_bytes_is_left_to_the_decoder);
    tcase_add_test(tc, reader_recv_reads_a_stream_from_a_socket);
    tcase_add_test(tc, huge_announced_length_is_refused_without_allocating_it);
    tcase_add_test(tc, empty_frame_is_a_protocol_error);
    suite_add_tcase(s, tc);

    tc = tcase_create("garbage");
    tcase_add_test(tc, body_that_is_not_messagepack_is_refused);
    tcase_add_test(tc, messagepack_that_is_not_an_array_with_a_kind_is_refused);
    tcase_add_test(tc, unknown_kind_is_refused);
    tcase_add_test(tc, kind_beyond_int_range_is_unknown_not_truncated);
    tcase_add_test(tc, wrong_field_count_is_refused_for_every_kind);
    tcase_add_test(tc, wrong_field_types_are_refused);
    tcase_add_test(tc, return_value_must_match_its_type_letter);
    tcase_add_test(tc, trailing_bytes_after_the_message_are_refused);
    tcase_add_test(tc, announced_element_count_is_not_allocated_before_the_elements_arrive);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(wire_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
