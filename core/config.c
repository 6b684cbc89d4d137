/* core/config.c - plugins.yaml: read, check against the schema, resolve.
 *
 * libyaml's event parser feeds a small tree of our own, so that every node
 * keeps its line and column for messages. Anchors and aliases are refused
 * while the tree is built: an alias bomb is never expanded. The tree is
 * then walked against the schema while the config is filled in; any error
 * frees the half-built config, so a caller never sees one.
 */
#include "config.h"

/* strtod_l: numbers must not depend on the host program's LC_NUMERIC. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yaml.h>

#include "config_int.h"
#include "wire.h"

#define DEFAULT_SPAWN 5.0
#define DEFAULT_SOFT_CANCEL 2.0
#define DEFAULT_HARD_KILL 1.0
#define MIN_MAX_FRAME UINT64_C(64)
#define MAX_MAX_FRAME (UINT64_C(1) << 30)
#define MAX_FILE (16 << 20)  /* no config is that big; /dev/zero is */

/* ---- scalars ----------------------------------------------------------- */

int tether__cfg_key_is(const struct node *key, const char *name)
{
    return key->len == strlen(name) && !memcmp(key->str, name, key->len);
}

const char *tether__cfg_join_key(char *buf, const char *prefix, const char *key)
{
    if (snprintf(buf, KEY_MAX, "%s.%s", prefix, key) >= KEY_MAX)
        tether__cfg_mark_cut(buf, KEY_MAX);
    return buf;
}

static double c_strtod(const char *s, char **end)
{
    locale_t cl = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (!cl)
        return strtod(s, end);
    double d = strtod_l(s, end, cl);
    freelocale(cl);
    return d;
}

/* A YAML number: decimal, with YAML's own spellings of infinity and NaN.
 * strtod's extras (0x1p3, inf, nan, infinity) are not YAML numbers. */
int tether__cfg_parse_number(const struct node *nd, double *out)
{
    static const char *const infs[] = {".inf", ".Inf", ".INF"};
    static const char *const nans[] = {".nan", ".NaN", ".NAN"};
    if (nd->type != N_SCALAR || !nd->plain || nd->len != strlen(nd->str))
        return -1;
    const char *s = nd->str, *digits = s + (*s == '+' || *s == '-');
    for (int i = 0; i < 3; i++) {
        if (!strcmp(digits, infs[i])) {
            *out = *s == '-' ? -INFINITY : INFINITY;
            return 0;
        }
        if (!strcmp(s, nans[i])) {
            *out = NAN;
            return 0;
        }
    }
    if (strspn(s, "0123456789+-.eE") != nd->len || !strpbrk(s, "0123456789"))
        return -1;
    char *end;
    double d = c_strtod(s, &end); /* overflow gives +-HUGE_VAL: caught as infinite */
    if (end != s + nd->len)
        return -1;
    *out = d;
    return 0;
}

int tether__cfg_get_timeout(struct ctx *c, const struct node *nd, const char *key, double *out)
{
    double d;
    if (tether__cfg_parse_number(nd, &d))
        return tether__cfg_fail(c, nd, key, "expected a number");
    if (!isfinite(d) || d < 0)
        return tether__cfg_fail(c, nd, key, "must be a finite number >= 0");
    *out = d + 0.0; /* -0 reads as 0 */
    return 0;
}

/* Any non-null scalar, as text (a backend may be called 1). */
static int get_string(struct ctx *c, const struct node *nd, const char *key, const char **out)
{
    if (nd->type != N_SCALAR || tether__cfg_is_null(nd))
        return tether__cfg_fail(c, nd, key, "expected a string");
    if (nd->len != strlen(nd->str))
        return tether__cfg_fail(c, nd, key, "must not contain a NUL byte");
    if (nd->len == 0)
        return tether__cfg_fail(c, nd, key, "must not be empty");
    *out = nd->str;
    return 0;
}

/* Relative paths resolve against the config's folder (no folder: as is). */
static char *join_path(const char *dir, const char *path)
{
    if (path[0] == '/' || !dir || !dir[0])
        return strdup(path);
    size_t dl = strlen(dir), pl = strlen(path);
    int slash = dir[dl - 1] != '/';
    char *p = malloc(dl + slash + pl + 1);
    if (!p)
        return NULL;
    memcpy(p, dir, dl);
    if (slash)
        p[dl] = '/';
    memcpy(p + dl + slash, path, pl + 1);
    return p;
}

static int set_path(struct ctx *c, const struct node *nd, const char *key, const char **dst)
{
    const char *s;
    int rc = get_string(c, nd, key, &s);
    if (rc)
        return rc;
    if (!(*dst = join_path(c->dir, s)))
        return tether__cfg_oom(c);
    return 0;
}

/* ---- the schema ---------------------------------------------------------- */

int tether__cfg_expect_map(struct ctx *c, const struct node *nd, const char *key)
{
    if (nd->type != N_MAP)
        return tether__cfg_fail(c, nd, key, "expected a mapping");
    return 0;
}

/* `prefix`: "timeouts" or "backends.NAME.timeouts". Only keys present are set. */
static int load_timeouts(struct ctx *c, const struct node *nd, const char *prefix,
                         struct tether_timeouts *t)
{
    char key[KEY_MAX];
    int rc = tether__cfg_expect_map(c, nd, prefix);
    if (rc)
        return rc;
    for (size_t i = 0; i < nd->n; i += 2) {
        const struct node *k = nd->kids[i], *v = nd->kids[i + 1];
        double *slot = tether__cfg_key_is(k, "spawn")         ? &t->spawn
                       : tether__cfg_key_is(k, "soft_cancel") ? &t->soft_cancel
                       : tether__cfg_key_is(k, "hard_kill")   ? &t->hard_kill
                                                  : NULL;
        tether__cfg_join_key(key, prefix, k->str);
        if (!slot)
            return tether__cfg_fail(c, k, key, "unknown key");
        if ((rc = tether__cfg_get_timeout(c, v, key, slot)))
            return rc;
        /* 0 skips a teardown phase; there is no spawn without a wait */
        if (slot == &t->spawn && *slot == 0)
            return tether__cfg_fail(c, v, key, "must be > 0 (a spawn needs time to become ready)");
    }
    return 0;
}

static int load_max_frame(struct ctx *c, const struct node *nd)
{
    if (nd->type != N_SCALAR || !nd->plain || nd->len != strlen(nd->str))
        return tether__cfg_fail(c, nd, "max_frame", "expected an integer");
    const char *s = nd->str, *digits = s + (*s == '+' || *s == '-');
    if (!*digits || strspn(digits, "0123456789") != strlen(digits))
        return tether__cfg_fail(c, nd, "max_frame", "expected an integer");
    errno = 0;
    unsigned long long v = strtoull(digits, NULL, 10);
    if (*s == '-' || errno == ERANGE || v < MIN_MAX_FRAME || v > MAX_MAX_FRAME)
        return tether__cfg_fail(c, nd, "max_frame", "must be between %llu and %llu bytes",
                    (unsigned long long)MIN_MAX_FRAME, (unsigned long long)MAX_MAX_FRAME);
    c->cfg->max_frame = v;
    return 0;
}

static int load_events(struct ctx *c, const struct node *nd)
{
    /* null, ~ and an empty value all mean no event log */
    if (tether__cfg_is_null(nd) || (nd->type == N_SCALAR && nd->len == 0))
        return 0;
    if (nd->type != N_SCALAR)
        return tether__cfg_fail(c, nd, "events", "expected a string or null");
    return set_path(c, nd, "events", &c->cfg->events);
}

static int load_options(struct ctx *c, const struct node *nd, const char *prefix,
                        struct tether_backend_config *b)
{
    char key[KEY_MAX];
    int rc = tether__cfg_expect_map(c, nd, prefix);
    if (rc || nd->n == 0)
        return rc;
    struct tether_option *opts = calloc(nd->n / 2, sizeof *opts);
    if (!opts)
        return tether__cfg_oom(c);
    b->options = opts;
    for (size_t i = 0; i < nd->n; i += 2) {
        const struct node *k = nd->kids[i], *v = nd->kids[i + 1];
        const char *ks;
        tether__cfg_join_key(key, prefix, k->str);
        if ((rc = get_string(c, k, key, &ks)))
            return rc;
        if (v->type != N_SCALAR)
            return tether__cfg_fail(c, v, key, "expected a scalar");
        if (v->len != strlen(v->str))
            return tether__cfg_fail(c, v, key, "must not contain a NUL byte");
        /* counted before filled, so that a failure frees what was copied */
        struct tether_option *o = &opts[b->n_options++];
        if (!(o->key = strdup(ks)) || !(o->value = strdup(v->str)))
            return tether__cfg_oom(c);
    }
    return 0;
}

static int load_backend(struct ctx *c, const struct node *k, const struct node *v,
                        struct tether_backend_config *b)
{
    char prefix[KEY_MAX], key[KEY_MAX];
    const char *name;
    int rc = get_string(c, k, "backends", &name);
    if (rc)
        return rc;
    if (!(b->name = strdup(name)))
        return tether__cfg_oom(c);
    b->line = k->line;
    b->timeouts = (struct tether_timeouts){UNSET_TIMEOUT, UNSET_TIMEOUT, UNSET_TIMEOUT};
    b->supervision = tether__cfg_unset_supervision;
    tether__cfg_join_key(prefix, "backends", name);
    if ((rc = tether__cfg_expect_map(c, v, prefix)))
        return rc;
    for (size_t i = 0; i < v->n; i += 2) {
        const struct node *ek = v->kids[i], *ev = v->kids[i + 1];
        tether__cfg_join_key(key, prefix, ek->str);
        if (tether__cfg_key_is(ek, "path"))
            rc = set_path(c, ev, key, &b->path);
        else if (tether__cfg_key_is(ek, "options"))
            rc = load_options(c, ev, key, b);
        else if (tether__cfg_key_is(ek, "timeouts"))
            rc = load_timeouts(c, ev, key, &b->timeouts);
        else if (tether__cfg_key_is(ek, "supervision")) {
            size_t at = (size_t)(b - c->bk);
            c->bk_sv_node[at] = ev;
            rc = tether__cfg_load_supervision(c, ev, key, &b->supervision, &c->bk_sv_period[at]);
        } else
            rc = tether__cfg_fail(c, ek, key, "unknown key");
        if (rc)
            return rc;
    }
    if (!b->path)
        return tether__cfg_fail(c, v, tether__cfg_join_key(key, prefix, "path"),
                                "missing (the plugin file is required)");
    return 0;
}

static int load_backends(struct ctx *c, const struct node *nd)
{
    int rc = tether__cfg_expect_map(c, nd, "backends");
    if (rc)
        return rc;
    if (nd->n == 0)
        return tether__cfg_fail(c, nd, "backends", "must name at least one backend");
    c->backends = nd;
    c->bk = calloc(nd->n / 2, sizeof *c->bk);
    if (!c->bk)
        return tether__cfg_oom(c);
    c->bk_sv_period = calloc(nd->n / 2, sizeof *c->bk_sv_period);
    c->bk_sv_node = calloc(nd->n / 2, sizeof *c->bk_sv_node);
    if (!c->bk_sv_period || !c->bk_sv_node) {
        c->cfg->backends = c->bk;
        return tether__cfg_oom(c);
    }
    c->cfg->backends = c->bk;
    for (size_t i = 0; i < nd->n; i += 2) {
        /* counted before filled, so that a failure frees what was copied */
        struct tether_backend_config *b = &c->bk[c->cfg->n_backends++];
        if ((rc = load_backend(c, nd->kids[i], nd->kids[i + 1], b)))
            return rc;
    }
    return 0;
}

static int load_top_key(struct ctx *c, const struct node *k, const struct node *v)
{
    const char *name;
    if (tether__cfg_key_is(k, "backend")) {
        c->backend = v; /* looked up once every backend is known */
        return get_string(c, v, "backend", &name);
    }
    if (tether__cfg_key_is(k, "timeouts"))
        return load_timeouts(c, v, "timeouts", &c->cfg->timeouts);
    if (tether__cfg_key_is(k, "supervision")) {
        c->sv_node = v;
        return tether__cfg_load_supervision(c, v, "supervision", &c->cfg->supervision,
                                            &c->sv_period);
    }
    if (tether__cfg_key_is(k, "max_frame"))
        return load_max_frame(c, v);
    if (tether__cfg_key_is(k, "events"))
        return load_events(c, v);
    if (tether__cfg_key_is(k, "backends"))
        return load_backends(c, v);
    return tether__cfg_fail(c, k, k->str[0] ? k->str : "\"\"", "unknown key");
}

/* Per-backend timeouts left unset take the global ones, wherever in the
 * file those were given. */
static void merge_timeouts(struct ctx *c)
{
    const struct tether_timeouts *g = &c->cfg->timeouts;
    for (size_t i = 0; i < c->cfg->n_backends; i++) {
        struct tether_timeouts *t = &c->bk[i].timeouts;
        if (t->spawn < 0)
            t->spawn = g->spawn;
        if (t->soft_cancel < 0)
            t->soft_cancel = g->soft_cancel;
        if (t->hard_kill < 0)
            t->hard_kill = g->hard_kill;
    }
}

static int choose_default(struct ctx *c)
{
    const char *name = NULL, *env = getenv("TETHER_BACKEND");

    if (c->backend) {
        name = c->backend->str;
        if (!tether_config_find(c->cfg, name))
            return tether__cfg_fail(c, c->backend, "backend",
                                    "no backend named '%s' in backends", name);
    }
    if (env && *env) {
        if (!tether_config_find(c->cfg, env))
            return tether__cfg_fail(c, c->backends, "backend",
                        "no backend named '%s' in backends (from TETHER_BACKEND)", env);
        name = env;
    } else if (!name) {
        if (c->cfg->n_backends != 1)
            return tether__cfg_fail(c, c->root, "backend", "missing default backend");
        name = c->bk[0].name;
    }
    if (!(c->cfg->backend = strdup(name)))
        return tether__cfg_oom(c);
    return 0;
}

static int load_root(struct ctx *c, const struct node *root)
{
    int rc;
    c->root = root;
    if (root->type != N_MAP)
        return tether__cfg_fail(c, root, "top level", "expected a mapping");
    for (size_t i = 0; i < root->n; i += 2) {
        if ((rc = load_top_key(c, root->kids[i], root->kids[i + 1])))
            return rc;
    }
    if (!c->backends)
        return tether__cfg_fail(c, root, "backends", "missing (at least one backend is required)");
    merge_timeouts(c);
    if ((rc = tether__cfg_merge_supervision(c)))
        return rc;
    return choose_default(c);
}

/* ---- public ---------------------------------------------------------------- */

int tether_config_parse(const char *text, size_t len, const char *name, const char *dir,
                        struct tether_config **out, struct tether_error *err)
{
    struct ctx c = {.name = name ? name : "(config)", .dir = dir, .text = text, .len = len,
                    .err = err};
    struct node *root = NULL;
    int rc;

    if (!out)
        return tether_error_set(err, TETHER_EINVAL, "tether_config_parse: out is NULL");
    *out = NULL;
    if (!text && len)
        return tether_error_set(err, TETHER_EINVAL, "tether_config_parse: text is NULL");
    if (!yaml_parser_initialize(&c.parser))
        return tether__cfg_oom(&c);
    yaml_parser_set_input_string(&c.parser, (const unsigned char *)(text ? text : ""), len);
    if ((rc = tether__cfg_build_document(&c, &root)))
        goto out;

    c.cfg = calloc(1, sizeof *c.cfg);
    if (!c.cfg) {
        rc = tether__cfg_oom(&c);
        goto out;
    }
    c.cfg->timeouts = (struct tether_timeouts){DEFAULT_SPAWN, DEFAULT_SOFT_CANCEL, DEFAULT_HARD_KILL};
    c.cfg->max_frame = TETHER__DEFAULT_MAX_FRAME;
    tether_supervision_defaults(&c.cfg->supervision);
    if (!(c.cfg->path = strdup(c.name)) || (dir && !(c.cfg->dir = strdup(dir)))) {
        rc = tether__cfg_oom(&c);
        goto out;
    }
    rc = load_root(&c, root);
out:
    if (rc) {
        tether_config_free(c.cfg);
    } else {
        *out = c.cfg;
    }
    tether__cfg_node_free(root);
    free(c.bk_sv_period);
    free(c.bk_sv_node);
    yaml_parser_delete(&c.parser);
    return rc;
}

/* Read a whole file; *buf is malloc'ed (NUL-terminated for convenience). */
static int read_file(const char *path, char **buf, size_t *len)
{
    size_t cap = 4096, n = 0;
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    char *b = malloc(cap);
    if (!b) {
        rc = ENOMEM;
        goto out;
    }
    for (;;) {
        if (cap - n < 2) {
            char *nb = realloc(b, cap *= 2);
            if (!nb) {
                rc = ENOMEM;
                goto out;
            }
            b = nb;
        }
        ssize_t got = read(fd, b + n, cap - n - 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            rc = errno;
            goto out;
        }
        if (got == 0)
            break;
        n += (size_t)got;
        if (n > MAX_FILE) {
            rc = EFBIG;
            goto out;
        }
    }
    b[n] = '\0';
out:
    close(fd);
    if (rc) {
        free(b);
        return rc;
    }
    *buf = b;
    *len = n;
    return 0;
}

/* The absolute folder holding `path`. */
static char *folder_of(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return NULL;
    char *dir = realpath(dirname(copy), NULL);
    free(copy);
    return dir;
}

int tether_config_load(const char *path, struct tether_config **out, struct tether_error *err)
{
    const char *env = getenv("TETHER_CONFIG");
    const char *from = "";
    char *text = NULL, *dir = NULL;
    size_t len = 0;
    int rc;

    if (!out)
        return tether_error_set(err, TETHER_EINVAL, "tether_config_load: out is NULL");
    *out = NULL;
    if (!path && env && *env) {
        path = env;
        from = " (named by TETHER_CONFIG)";
    } else if (!path) {
        path = "plugins.yaml";
    }
    if ((rc = read_file(path, &text, &len)))
        return tether_error_set(err, TETHER_ECONFIG, "%s%s: cannot read: %s", path, from,
                                strerror(rc));
    if (!(dir = folder_of(path))) {
        rc = tether_error_set(err, TETHER_ECONFIG, "%s%s: cannot resolve its folder: %s", path,
                              from, strerror(errno));
        goto out;
    }
    rc = tether_config_parse(text, len, path, dir, out, err);
out:
    free(dir);
    free(text);
    return rc;
}

void tether_config_free(struct tether_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n_backends; i++) {
        const struct tether_backend_config *b = &cfg->backends[i];
        for (size_t j = 0; j < b->n_options; j++) {
            free((void *)b->options[j].key);
            free((void *)b->options[j].value);
        }
        free((void *)b->options);
        free((void *)b->name);
        free((void *)b->path);
    }
    free((void *)cfg->backends);
    free((void *)cfg->path);
    free((void *)cfg->dir);
    free((void *)cfg->backend);
    free((void *)cfg->events);
    free(cfg);
}

const struct tether_backend_config *tether_config_find(const struct tether_config *cfg,
                                                       const char *name)
{
    if (!cfg || !name)
        return NULL;
    for (size_t i = 0; i < cfg->n_backends; i++) {
        if (cfg->backends[i].name && !strcmp(cfg->backends[i].name, name))
            return &cfg->backends[i];
    }
    return NULL;
}
