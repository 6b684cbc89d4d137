/* tether/error.h - error codes shared by every tether API.
 *
 * Functions return 0 on success or a negative TETHER_E* code. When a
 * caller passes a struct tether_error, it receives the code again plus a
 * one-line context message (file:line:column, dlerror() text, remote
 * traceback). The caller owns the struct; tether only writes into it.
 */
#ifndef TETHER_ERROR_H
#define TETHER_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

/* X-macro: name, value, message. Values are stable ABI: append only. */
#define TETHER_ERRNO_MAP(XX)                                                 \
    XX(EINVAL, -1, "invalid argument")                                       \
    XX(ENOMEM, -2, "out of memory")                                          \
    XX(ENOTSUP, -3, "not supported by this backend")                         \
    XX(ETIMEDOUT, -4, "deadline expired")                                    \
    XX(EABORTED, -5, "channel aborted")                                      \
    XX(ELOST, -6, "actor lost")                                              \
    XX(ECANCELLED, -7, "cancelled")                                          \
    XX(EPROTO, -8, "protocol error")                                         \
    XX(ECONFIG, -9, "invalid configuration")                                 \
    XX(ELOAD, -10, "plugin refused")                                         \
    XX(ENOENT, -11, "no such target")                                        \
    XX(ESYS, -12, "system call failed")                                      \
    XX(EREMOTE, -13, "remote error")                                         \
    XX(ECLOSED, -14, "closed")                                               \
    XX(ESPAWN, -15, "spawn failed")                                          \
    XX(EBADCALL, -16, "bad call")                                            \
    XX(ESTATE, -17, "operation not valid in this state")                     \
    XX(ETOOBIG, -18, "message larger than the largest frame (max_frame)")

enum {
#define TETHER__ERR_ENUM(name, val, msg) TETHER_##name = (val),
    TETHER_ERRNO_MAP(TETHER__ERR_ENUM)
#undef TETHER__ERR_ENUM
};

#define TETHER_ERROR_MSG_MAX 1024

/* Error context. `code` repeats the return value; `msg` is a NUL-terminated
 * one-line description that names the input at fault. */
struct tether_error {
    int code;
    char msg[TETHER_ERROR_MSG_MAX];
};

/* Static description of a code ("channel aborted"); never NULL. */
const char *tether_strerror(int code);
/* Static name of a code ("TETHER_EABORTED"); never NULL. */
const char *tether_err_name(int code);

/* Fill `err` (may be NULL) with code and a printf-formatted message; return code. */
int tether_error_set(struct tether_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#ifdef __cplusplus
}
#endif
#endif
