/* core/ffi_call.c - typed calls into C actor functions through libffi.
 *
 * The caller's signature is checked against the actor's table before the
 * call (in actor_rt.c); here every argument is converted to the exact C
 * type its signature letter names, with range checks, so that a mismatch
 * is an error reply and never undefined behaviour. */
#include "config.h"

#include <ffi.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

static ffi_type *letter_type(char c)
{
    switch (c) {
    case 'i': return &ffi_type_sint32;
    case 'l': return &ffi_type_sint64;
    case 'u': return &ffi_type_uint32;
    case 'U': return &ffi_type_uint64;
    case 'd': return &ffi_type_double;
    case 'f': return &ffi_type_float;
    case 's': return &ffi_type_pointer;
    case 'v': return &ffi_type_void;
    default: return NULL;
    }
}

int tether__sig_parse(const char *sig, size_t *nargs, char *ret, char *why, size_t whylen)
{
    const char *colon = sig ? strchr(sig, ':') : NULL;
    if (!colon || colon[1] == '\0' || colon[2] != '\0') {
        snprintf(why, whylen, "malformed signature '%s' (expected ARGS:RET, e.g. \"ii:i\")",
                 sig ? sig : "(null)");
        return TETHER_EBADCALL;
    }
    size_t n = (size_t)(colon - sig);
    if (n > TETHER_CALL_MAX_ARGS) {
        snprintf(why, whylen, "signature '%s' has %zu arguments (at most %d)", sig, n,
                 TETHER_CALL_MAX_ARGS);
        return TETHER_EBADCALL;
    }
    for (size_t i = 0; i < n; i++)
        if (!letter_type(sig[i]) || sig[i] == 'v') {
            snprintf(why, whylen, "signature '%s': argument type '%c' is not one of i l u U d f s",
                     sig, sig[i]);
            return TETHER_EBADCALL;
        }
    if (!letter_type(colon[1])) {
        snprintf(why, whylen, "signature '%s': return type '%c' is not one of i l u U d f s v", sig,
                 colon[1]);
        return TETHER_EBADCALL;
    }
    *nargs = n;
    *ret = colon[1];
    return 0;
}

union slot {
    int32_t i32;
    int64_t i64;
    uint32_t u32;
    uint64_t u64;
    double d;
    float f;
    const char *s;
};

/* Convert a wire value (integers arrive as 'U' or 'l', reals as 'd') to
 * the C type `want`, refusing anything that would not fit. */
static int convert(char want, const struct tether_value *v, union slot *out, size_t idx, char *why,
                   size_t whylen)
{
    int is_int = v->type == 'U' || v->type == 'u' || v->type == 'l' || v->type == 'i';
    int neg = (v->type == 'l' || v->type == 'i') && v->v.i < 0;
    uint64_t mag = neg ? 0 : v->v.u;
    switch (want) {
    case 'i':
        if (is_int && (neg ? v->v.i >= INT32_MIN : mag <= INT32_MAX)) {
            out->i32 = (int32_t)(neg ? v->v.i : (int64_t)mag);
            return 0;
        }
        break;
    case 'l':
        if (is_int && (neg || mag <= INT64_MAX)) {
            out->i64 = neg ? v->v.i : (int64_t)mag;
            return 0;
        }
        break;
    case 'u':
        if (is_int && !neg && mag <= UINT32_MAX) {
            out->u32 = (uint32_t)mag;
            return 0;
        }
        break;
    case 'U':
        if (is_int && !neg) {
            out->u64 = mag;
            return 0;
        }
        break;
    case 'd':
        if (v->type == 'd' || v->type == 'f') {
            out->d = v->v.d;
            return 0;
        }
        break;
    case 'f':
        if (v->type == 'd' || v->type == 'f') {
            out->f = (float)v->v.d;
            return 0;
        }
        break;
    case 's':
        if (v->type == 's' && v->v.s) {
            out->s = v->v.s;
            return 0;
        }
        break;
    }
    snprintf(why, whylen, "argument %zu does not fit type '%c'", idx + 1, want);
    return TETHER_EBADCALL;
}

int tether__ffi_invoke(void (*fn)(void), const char *sig, const struct tether_value *args,
                       size_t nargs, struct tether_value *ret, char *why, size_t whylen)
{
    size_t want;
    char rtype;
    int rc = tether__sig_parse(sig, &want, &rtype, why, whylen);
    if (rc)
        return rc;
    if (nargs != want) {
        snprintf(why, whylen, "wrong argument count: got %zu, signature '%s' takes %zu", nargs, sig,
                 want);
        return TETHER_EBADCALL;
    }
    ffi_type *types[TETHER_CALL_MAX_ARGS];
    union slot slots[TETHER_CALL_MAX_ARGS];
    void *ptrs[TETHER_CALL_MAX_ARGS];
    for (size_t i = 0; i < nargs; i++) {
        types[i] = letter_type(sig[i]);
        rc = convert(sig[i], &args[i], &slots[i], i, why, whylen);
        if (rc)
            return rc;
        ptrs[i] = &slots[i];
    }
    ffi_cif cif;
    if (ffi_prep_cif(&cif, FFI_DEFAULT_ABI, (unsigned)nargs, letter_type(rtype), types) != FFI_OK) {
        snprintf(why, whylen, "libffi cannot prepare a call of signature '%s'", sig);
        return TETHER_EBADCALL;
    }
    /* libffi widens small integer returns to a full register (ffi_arg). */
    union {
        ffi_arg a;
        ffi_sarg sa;
        int64_t i64;
        uint64_t u64;
        double d;
        float f;
        const char *s;
    } r;
    memset(&r, 0, sizeof r);
    ffi_call(&cif, fn, &r, nargs ? ptrs : NULL);
    ret->type = rtype;
    switch (rtype) {
    case 'i': ret->v.i = (int32_t)r.sa; break;
    case 'l': ret->v.i = r.i64; break;
    case 'u': ret->v.u = (uint32_t)r.a; break;
    case 'U': ret->v.u = r.u64; break;
    case 'd': ret->v.d = r.d; break;
    case 'f': ret->v.d = r.f; break;
    case 's': ret->v.s = r.s; break;
    default: ret->v.u = 0; break;
    }
    return 0;
}
