/* fuzz/fuzz_ffi.c - libFuzzer target: the call-signature parser and the
 * typed libffi call (core/ffi_call.c).
 *
 * Input: byte 0 picks the mode. Mode 0: the rest is a signature string for
 * tether__sig_parse, whose verdict is checked against a reference parser.
 * Otherwise: byte 1 picks one of the real C functions below (each with its
 * declared signature, as an actor's function table gives it), byte 2 an
 * argument count (0-17), then each argument is a wire type letter and 8
 * bytes of value (strings: a length byte and the bytes). The call must be
 * refused with a message, or made with exactly the values the arguments
 * name (each function records what it received). */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* what the last called function received, as 64-bit patterns */
static uint64_t got[16];
static int got_n;

static int32_t f_add(int32_t a, int32_t b) { got[0] = (uint64_t)(int64_t)a; got[1] = (uint64_t)(int64_t)b; got_n = 2; return (int32_t)((uint32_t)a + (uint32_t)b); }
static int64_t f_mix(int64_t a, uint32_t b, uint64_t c, double d, float e)
{
    got[0] = (uint64_t)a; got[1] = b; got[2] = c;
    memcpy(&got[3], &d, 8);
    double de = e;
    memcpy(&got[4], &de, 8);
    got_n = 5;
    return a ^ (int64_t)c;
}
static size_t f_len_sum(const char *a, const char *b) { got_n = 2; return strlen(a) + strlen(b); }
static const char *f_pick(const char *a, int32_t which, const char *b) { got[1] = (uint64_t)(int64_t)which; got_n = 3; return which ? b : a; }
static void f_void(void) { got_n = 0; }
static double f_sixteen(double a0, int64_t a1, double a2, int64_t a3, double a4, int64_t a5, double a6,
                        int64_t a7, double a8, int64_t a9, double a10, int64_t a11, double a12,
                        int64_t a13, double a14, int64_t a15)
{
    int64_t ints[8] = {a1, a3, a5, a7, a9, a11, a13, a15};
    double dbl[8] = {a0, a2, a4, a6, a8, a10, a12, a14};
    for (int i = 0; i < 8; i++) {
        memcpy(&got[2 * i], &dbl[i], 8);
        got[2 * i + 1] = (uint64_t)ints[i];
    }
    got_n = 16;
    return a0 + (double)a15;
}
static uint32_t f_u(uint32_t a) { got[0] = a; got_n = 1; return a; }
static float f_f(float a) { double d = a; memcpy(&got[0], &d, 8); got_n = 1; return a; }

static const struct {
    void (*fn)(void);
    const char *sig;
} table[] = {
    {(void (*)(void))f_add, "ii:i"},
    {(void (*)(void))f_mix, "luUdf:l"},
    {(void (*)(void))f_len_sum, "ss:U"},
    {(void (*)(void))f_pick, "sis:s"},
    {(void (*)(void))f_void, ":v"},
    {(void (*)(void))f_sixteen, "dldldldldldldldl:d"},
    {(void (*)(void))f_u, "u:u"},
    {(void (*)(void))f_f, "f:f"},
};

/* Reference: "A...:R", A in "ilUudfs" (at most 16), R in "ilUudfsv". */
static int sig_ok(const char *s)
{
    const char *colon = strchr(s, ':');
    if (!colon || (size_t)(colon - s) > 16 || strlen(colon) != 2)
        return 0;
    for (const char *p = s; p < colon; p++)
        if (!strchr("ilUudfs", *p) || !*p)
            return 0;
    return colon[1] && strchr("ilUudfsv", colon[1]) != NULL;
}

static void fuzz_sig(const uint8_t *data, size_t size)
{
    char sig[64];
    size_t n = size < sizeof sig - 1 ? size : sizeof sig - 1;
    memcpy(sig, data, n);
    sig[n] = '\0';
    size_t nargs = 99;
    char ret = 0, why[256] = "";
    int rc = tether__sig_parse(sig, &nargs, &ret, why, sizeof why);
    if ((rc == 0) != sig_ok(sig))
        abort();
    if (rc == 0 && (nargs > 16 || nargs != (size_t)(strchr(sig, ':') - sig) || ret != strchr(sig, ':')[1]))
        abort();
    if (rc != 0 && (rc != TETHER_EBADCALL || !why[0]))
        abort();
}

/* Would the reference accept value v for C type want, and what would the
 * callee receive (as a 64-bit pattern)? */
static int fits(char want, const struct tether_value *v, uint64_t *bits)
{
    int is_int = strchr("iluU", v->type) != NULL;
    int neg = (v->type == 'l' || v->type == 'i') && v->v.i < 0;
    switch (want) {
    case 'i':
        if (!is_int || (neg ? v->v.i < INT32_MIN : v->v.u > INT32_MAX))
            return 0;
        *bits = (uint64_t)(int64_t)(int32_t)v->v.i;
        return 1;
    case 'l':
        if (!is_int || (!neg && v->v.u > INT64_MAX))
            return 0;
        *bits = v->v.u;
        return 1;
    case 'u':
        if (!is_int || neg || v->v.u > UINT32_MAX)
            return 0;
        *bits = v->v.u;
        return 1;
    case 'U':
        if (!is_int || neg)
            return 0;
        *bits = v->v.u;
        return 1;
    case 'd':
    case 'f': {
        if (v->type != 'd' && v->type != 'f')
            return 0;
        double d = want == 'f' ? (double)(float)v->v.d : v->v.d;
        memcpy(bits, &d, 8);
        return 1;
    }
    case 's':
        *bits = 0;
        return v->type == 's' && v->v.s;
    }
    return 0;
}

static void fuzz_call(const uint8_t *data, size_t size)
{
    if (size < 2)
        return;
    size_t which = data[0] % (sizeof table / sizeof table[0]);
    size_t nargs = data[1] % 18;
    data += 2;
    size -= 2;
    struct tether_value args[17];
    char strings[17][256];
    for (size_t i = 0; i < nargs; i++) {
        memset(&args[i], 0, sizeof args[i]);
        if (size < 1)
            return;
        static const char letters[] = "iluUdfsv?";
        args[i].type = letters[data[0] % (sizeof letters - 1)];
        data++;
        size--;
        if (args[i].type == 's') {
            /* a length byte (0xff: a NULL string), then the bytes */
            size_t n = size ? data[0] : 0;
            int null = size && data[0] == 0xff;
            if (size)
                data++, size--;
            if (null)
                n = 0;
            if (n > size)
                n = size;
            memcpy(strings[i], data, n);
            strings[i][n] = '\0';
            args[i].v.s = null ? NULL : strings[i];
            data += n;
            size -= n;
        } else {
            uint64_t u = 0;
            size_t n = size < 8 ? size : 8;
            memcpy(&u, data, n);
            data += n;
            size -= n;
            args[i].v.u = u;
        }
    }
    const char *sig = table[which].sig;
    size_t want = (size_t)(strchr(sig, ':') - sig);
    int expect_ok = nargs == want;
    uint64_t bits[17];
    for (size_t i = 0; expect_ok && i < nargs; i++)
        expect_ok = fits(sig[i], &args[i], &bits[i]);
    struct tether_value ret;
    char why[256] = "";
    got_n = -1;
    int rc = tether__ffi_invoke(table[which].fn, sig, args, nargs, &ret, why, sizeof why);
    if ((rc == 0) != expect_ok)
        abort(); /* refused a good call, or made a bad one */
    if (rc) {
        if (rc != TETHER_EBADCALL || !why[0] || got_n != -1)
            abort(); /* refused with a reason, before the call */
        return;
    }
    if (ret.type != strchr(sig, ':')[1] || got_n < 0)
        abort();
    for (size_t i = 0; i < nargs; i++)
        if (sig[i] != 's' && (int)i < got_n && got[i] != bits[i])
            abort(); /* the callee received another value */
    if (which == 2 && ret.v.u != strlen(args[0].v.s) + strlen(args[1].v.s))
        abort();
    if (which == 3 && ret.v.s != (got[1] ? args[2].v.s : args[0].v.s))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] % 2 == 0)
        fuzz_sig(data + 1, size - 1);
    else
        fuzz_call(data + 1, size - 1);
    return 0;
}
