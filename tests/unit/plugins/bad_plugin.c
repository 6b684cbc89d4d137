/* tests/unit/plugins/bad_plugin.c - one source, built as several plugins
 * that each break one loader rule (selected by a -D flag), plus a good one. */
#include <stddef.h>

#include <tether/backend.h>

static int p_open(const struct tether_backend_host *h, const struct tether_options *o, void **s,
                  struct tether_error *e)
{
    (void)h, (void)o, (void)e;
    *s = NULL;
    return 0;
}
static void p_close(void *s)
{
    (void)s;
}
static int p_spawn(void *s, const struct tether_spawn_spec *spec, struct tether_child **c,
                   struct tether_error *e)
{
    (void)s, (void)spec, (void)c, (void)e;
    return TETHER_ENOTSUP;
}
static int p_verb(struct tether_child *c)
{
    (void)c;
    return 0;
}
static int p_reap(struct tether_child *c, int64_t d, struct tether_outcome *o)
{
    (void)c, (void)d, (void)o;
    return TETHER_ETIMEDOUT;
}
static void p_release(struct tether_child *c)
{
    (void)c;
}

#ifdef BAD_LONG_NAME /* 64 characters: one more than the loader allows */
#define PLUGIN_NAME "n123456789n123456789n123456789n123456789n123456789n123456789nnnn"
#endif
#ifndef PLUGIN_NAME
#define PLUGIN_NAME "testgood"
#endif
#ifdef BAD_LANGUAGE
#define PLUGIN_LANGUAGE "cobol"
#else
#define PLUGIN_LANGUAGE "c"
#endif

static const struct tether_backend vt = {
#ifdef BAD_ABI
    .abi = TETHER_BACKEND_ABI + 41,
#else
    .abi = TETHER_BACKEND_ABI,
#endif
#ifdef BAD_SIZE
    .size = 16,
#else
    .size = sizeof(struct tether_backend),
#endif
    .name = PLUGIN_NAME,
    .language = PLUGIN_LANGUAGE,
    .caps = 0,
    .open = p_open,
    .close = p_close,
    .spawn = p_spawn,
    .soft_cancel = p_verb,
#ifdef BAD_NULL_MEMBER
    .hard_kill = NULL,
#else
    .hard_kill = p_verb,
#endif
    .abort_channels = p_verb,
    .reap = p_reap,
    .release = p_release,
#ifdef BAD_LANGUAGES
    .languages = "python,c", /* does not start with its language "c" */
#endif
};

#ifdef BAD_NO_ENTRY
const struct tether_backend *not_the_entry(void);
const struct tether_backend *not_the_entry(void)
{
    return &vt;
}
#elif defined BAD_NULL_VTABLE
__attribute__((visibility("default"))) const struct tether_backend *tether_backend_v1(void);
__attribute__((visibility("default"))) const struct tether_backend *tether_backend_v1(void)
{
    return (void)vt, NULL;
}
#else
TETHER_BACKEND_DEFINE(vt)
#endif
