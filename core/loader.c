/* core/loader.c - load backend plugins and refuse the bad ones.
 *
 * Every refusal is one line naming the file and the reason. A plugin stays
 * loaded while a supervisor uses it; a plugin that started an actor which
 * was abandoned (its code may still run) is pinned and never unloaded.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"

/* The vtable prefix this loader needs: everything up to `release`. */
#define NEED_SIZE (offsetof(struct tether_backend, release) + sizeof(void (*)(void)))

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tether__plugin *registry;

/* A forked actor may open a supervisor of its own: the registry lock must
 * not be inherited held by a thread that does not exist in the child. */
static void prepare_fork(void)
{
    pthread_mutex_lock(&registry_lock);
}
static void after_fork(void)
{
    pthread_mutex_unlock(&registry_lock);
}
__attribute__((constructor)) static void register_fork_handlers(void)
{
    pthread_atfork(prepare_fork, after_fork, after_fork);
}

/* "PATH: reason" into err; returns TETHER_ELOAD. */
static int refuse(struct tether_error *err, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int refuse(struct tether_error *err, const char *path, const char *fmt, ...)
{
    if (!err)
        return TETHER_ELOAD;
    err->code = TETHER_ELOAD;
    int n = snprintf(err->msg, sizeof err->msg, "%s: ", path);
    if (n < 0 || (size_t)n >= sizeof err->msg)
        return TETHER_ELOAD;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg + n, sizeof err->msg - (size_t)n, fmt, ap);
    va_end(ap);
    return TETHER_ELOAD;
}

/* Refuse a file that others can write, or one below any folder others can
 * write (without the sticky bit, which stops them from replacing entries
 * they do not own): anyone could then put code into this process. `real`
 * is the resolved path, so symbolic links cannot route around the check.
 * (A rename between this check and dlopen needs one of these folders to be
 * writable by the attacker, which is exactly what is refused.) */
static int check_permissions(const char *path, const char *real, struct tether_error *err)
{
    struct stat st;
    if (stat(real, &st) != 0)
        return refuse(err, path, "cannot open plugin: %s", strerror(errno));
    if (!S_ISREG(st.st_mode))
        return refuse(err, path, "not a regular file");
    if (st.st_mode & S_IWOTH)
        return refuse(err, path, "refusing a plugin file writable by others");
    char dir[PATH_MAX];
    tether__strlcpy(dir, real, sizeof dir);
    for (;;) {
        char *slash = strrchr(dir, '/');
        if (!slash)
            break;
        if (slash == dir)
            slash[1] = '\0'; /* the root folder itself */
        else
            *slash = '\0';
        if (stat(dir, &st) == 0 && (st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX))
            return refuse(err, path, "refusing a plugin below a folder writable by others (%s)",
                          dir);
        if (strcmp(dir, "/") == 0)
            break;
    }
    return 0;
}

const char *tether__languages(const struct tether_backend *vt)
{
    if (vt->size >= offsetof(struct tether_backend, languages) + sizeof vt->languages &&
        vt->languages)
        return vt->languages;
    return vt->language;
}

static int check_vtable(const char *path, const struct tether_backend *vt, struct tether_error *err)
{
    if (!vt)
        return refuse(err, path, "%s() returned NULL", TETHER_BACKEND_ENTRY);
    if (vt->abi != TETHER_BACKEND_ABI)
        return refuse(err, path, "ABI mismatch: plugin built for ABI %u, this tether speaks ABI %d",
                      vt->abi, TETHER_BACKEND_ABI);
    if (vt->size < NEED_SIZE)
        return refuse(err, path, "vtable too small: size %u, need at least %zu", vt->size,
                      (size_t)NEED_SIZE);
    const struct {
        const char *name;
        const void *p;
    } need[] = {
        {"name", vt->name},
        {"language", vt->language},
        {"open", (const void *)vt->open},
        {"close", (const void *)vt->close},
        {"spawn", (const void *)vt->spawn},
        {"soft_cancel", (const void *)vt->soft_cancel},
        {"hard_kill", (const void *)vt->hard_kill},
        {"abort_channels", (const void *)vt->abort_channels},
        {"reap", (const void *)vt->reap},
        {"release", (const void *)vt->release},
    };
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
        if (!need[i].p)
            return refuse(err, path, "mandatory vtable member '%s' is NULL", need[i].name);
    if (!vt->name[0] || strlen(vt->name) >= 64)
        return refuse(err, path, "backend name must be 1 to 63 characters");
    if (strcmp(vt->language, "c") != 0 && strcmp(vt->language, "python") != 0)
        return refuse(err, path, "unknown language '%s' (expected \"c\" or \"python\")",
                      vt->language);
    const char *all = tether__languages(vt);
    if (strcmp(all, "c") && strcmp(all, "python") && strcmp(all, "c,python") &&
        strcmp(all, "python,c"))
        return refuse(err, path, "unknown languages '%s' (expected \"c\", \"python\" or "
                      "\"c,python\")", all);
    if (strncmp(all, vt->language, strlen(vt->language)) != 0)
        return refuse(err, path, "languages '%s' does not start with language '%s'", all,
                      vt->language);
    return 0;
}

/* Under registry_lock. */
static struct tether__plugin *find_path(const char *real)
{
    for (struct tether__plugin *q = registry; q; q = q->next)
        if (strcmp(q->path, real) == 0)
            return q;
    return NULL;
}

/* Under registry_lock. */
static int register_plugin(struct tether__plugin *p, struct tether_error *err)
{
    for (struct tether__plugin *q = registry; q; q = q->next)
        if (strcmp(q->vt->name, p->vt->name) == 0)
            return refuse(err, p->path, "backend name '%s' is already taken by %s", p->vt->name,
                          q->path);
    p->next = registry;
    registry = p;
    return 0;
}

int tether__plugin_load(const char *path, struct tether__plugin **out, struct tether_error *err)
{
    *out = NULL;
    if (!path || !*path)
        return tether_error_set(err, TETHER_ELOAD, "plugin path is empty");
    char real[PATH_MAX];
    if (!realpath(path, real))
        return refuse(err, path, "cannot open plugin: %s", strerror(errno));
    int rc = check_permissions(path, real, err);
    if (rc)
        return rc;

    pthread_mutex_lock(&registry_lock);
    struct tether__plugin *known = find_path(real);
    if (known) {
        known->refs++;
        *out = known;
        pthread_mutex_unlock(&registry_lock);
        return 0;
    }
    pthread_mutex_unlock(&registry_lock);

    /* dlopen runs the plugin's constructors and waits for the loader lock,
     * which an actor may hold for long (a slow module constructor): never
     * while holding registry_lock, which supervisors and fork take. */
    struct tether__plugin *p = NULL;
    dlerror();
    void *dl = dlopen(real, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        const char *why = dlerror();
        rc = refuse(err, path, "not a loadable shared object: %s", why ? why : "dlopen failed");
        goto out;
    }
    dlerror();
    void *sym = dlsym(dl, TETHER_BACKEND_ENTRY);
    if (!sym) {
        rc = refuse(err, path, "missing entry symbol %s()", TETHER_BACKEND_ENTRY);
        goto out;
    }
    tether_backend_entry_fn entry;
    memcpy(&entry, &sym, sizeof entry);
    const struct tether_backend *vt = entry();
    rc = check_vtable(path, vt, err);
    if (rc)
        goto out;
    p = calloc(1, sizeof *p);
    if (!p || !(p->path = strdup(real))) {
        rc = tether_error_set(err, TETHER_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    p->dl = dl;
    p->vt = vt;
    p->refs = 1;
    pthread_mutex_lock(&registry_lock);
    known = find_path(real);
    if (known) {
        /* another thread loaded the same file meanwhile: share that one
         * (our dlopen only took a reference on the same handle) */
        known->refs++;
        *out = known;
        pthread_mutex_unlock(&registry_lock);
        goto out;
    }
    rc = register_plugin(p, err);
    pthread_mutex_unlock(&registry_lock);
    if (rc)
        goto out;
    *out = p;
    dl = NULL;
    p = NULL;
out:
    if (p) {
        free(p->path);
        free(p);
    }
    if (dl)
        dlclose(dl);
    return rc;
}

/* Lock-free: called with a supervisor's lock held, it must not wait for
 * registry_lock. */
void tether__plugin_pin(struct tether__plugin *p)
{
    __atomic_store_n(&p->pinned, 1, __ATOMIC_RELEASE);
}

void tether__plugin_unref(struct tether__plugin *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&registry_lock);
    if (--p->refs > 0 || __atomic_load_n(&p->pinned, __ATOMIC_ACQUIRE)) {
        pthread_mutex_unlock(&registry_lock);
        return;
    }
    for (struct tether__plugin **pp = &registry; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    pthread_mutex_unlock(&registry_lock);
    dlclose(p->dl);
    free(p->path);
    free(p);
}

int tether_plugin_probe(const char *path, struct tether_plugin_info *info, struct tether_error *err)
{
    struct tether__plugin *p;
    int rc = tether__plugin_load(path, &p, err);
    if (rc)
        return rc;
    if (info) {
        tether__strlcpy(info->name, p->vt->name, sizeof info->name);
        /* every language it runs: "c,python" for the fork backend */
        tether__strlcpy(info->language, tether__languages(p->vt), sizeof info->language);
        info->abi = p->vt->abi;
        info->caps = p->vt->caps;
        info->note[0] = '\0';
        if (p->vt->size >= offsetof(struct tether_backend, note) + sizeof p->vt->note && p->vt->note)
            tether__strlcpy(info->note, p->vt->note, sizeof info->note);
    }
    tether__plugin_unref(p);
    return 0;
}

void tether_caps_format(uint32_t caps, char *buf, size_t n)
{
    static const struct {
        uint32_t bit;
        const char *name;
    } names[] = {
        {TETHER_CAP_OUT_OF_PROCESS, "out-of-process"},
        {TETHER_CAP_SURVIVES_CRASH, "survives-crash"},
        {TETHER_CAP_CAN_KILL, "can-kill"},
        {TETHER_CAP_NESTED, "nested"},
    };
    size_t used = 0;
    if (n == 0)
        return;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!(caps & names[i].bit))
            continue;
        int w = snprintf(buf + used, n - used, "%s%s", used ? "," : "", names[i].name);
        if (w < 0 || (size_t)w >= n - used)
            return;
        used += (size_t)w;
    }
    if (!used)
        snprintf(buf, n, "-");
}
