/* core/error.c - error table, error context, clock helpers. */
#include "config.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "internal.h"

const char *tether_strerror(int code)
{
    switch (code) {
    case 0: return "success";
#define XX(name, val, msg) case TETHER_##name: return msg;
    TETHER_ERRNO_MAP(XX)
#undef XX
    default: return "unknown error";
    }
}

const char *tether_err_name(int code)
{
    switch (code) {
    case 0: return "0";
#define XX(name, val, msg) case TETHER_##name: return "TETHER_" #name;
    TETHER_ERRNO_MAP(XX)
#undef XX
    default: return "TETHER_E?";
    }
}

int tether__error_vset(struct tether_error *err, int code, const char *fmt, va_list ap)
{
    if (err) {
        err->code = code;
        if (fmt)
            vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        else
            tether__strlcpy(err->msg, tether_strerror(code), sizeof err->msg);
    }
    return code;
}

int tether_error_set(struct tether_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tether__error_vset(err, code, fmt, ap);
    va_end(ap);
    return code;
}

void tether__strlcpy(char *dst, const char *src, size_t n)
{
    size_t len = strlen(src);
    if (len >= n)
        len = n - 1;
    memcpy(dst, src, len);
    dst[len] = '\0';
}

const char *tether_outcome_name(int kind)
{
    static const char *const names[] = {"none", "exited", "failed", "cancelled",
                                        "killed", "abandoned", "lost"};
    if (kind < 0 || kind > TETHER_OUTCOME_LOST)
        return "unknown";
    return names[kind];
}

int64_t tether_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * TETHER_NS_PER_SEC + ts.tv_nsec;
}

int64_t tether__deadline_after(double seconds)
{
    int64_t now = tether_now_ns();
    if (!(seconds > 0))
        return now;
    if (seconds > 1e9)
        return TETHER_NEVER;
    return now + (int64_t)(seconds * 1e9);
}

void tether__ns_to_timespec(int64_t ns, struct timespec *ts)
{
    ts->tv_sec = (time_t)(ns / TETHER_NS_PER_SEC);
    ts->tv_nsec = (long)(ns % TETHER_NS_PER_SEC);
}

int tether__poll_ms(int64_t deadline_ns)
{
    int64_t left = deadline_ns - tether_now_ns();
    if (left <= 0)
        return 0;
    /* round up so that poll does not return just before the deadline */
    int64_t ms = (left + 999999) / 1000000;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}
