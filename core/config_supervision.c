/* core/config_supervision.c - the supervision: section of plugins.yaml
 * (global, and per backend as an override): strategy, restart type,
 * restart intensity, backoff. Errors name FILE:LINE:COL and the key, as
 * the rest of the file (config.c). See plugins.yaml(5). */
#include "config.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "config_int.h"

/* OTP's defaults (the configuration starts from them; restart.c checks). */
void tether_supervision_defaults(struct tether_supervision *sv)
{
    memset(sv, 0, sizeof *sv);
    sv->strategy = TETHER_ONE_FOR_ALL;
    sv->max_restarts = 1; /* OTP's intensity: 1 in 5 s */
    sv->period = 5;
    sv->restart = TETHER_RESTART_TEMPORARY;
    sv->backoff = 0;
    sv->backoff_max = 30;
}

#define UNSET_INT (-1)
#define UNSET_MAX UINT_MAX

const struct tether_supervision tether__cfg_unset_supervision = {
    UNSET_INT, UNSET_MAX, UNSET_TIMEOUT, UNSET_INT, UNSET_TIMEOUT, UNSET_TIMEOUT};

static int get_word(struct ctx *c, const struct node *nd, const char *key,
                    const char *const *words, int n, int *out)
{
    if (nd->type == N_SCALAR && nd->len == strlen(nd->str))
        for (int i = 0; i < n; i++)
            if (!strcmp(nd->str, words[i])) {
                *out = i;
                return 0;
            }
    char list[128] = "";
    for (int i = 0; i < n; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", words[i]);
    return tether__cfg_fail(c, nd, key, "unknown value '%s' (one of: %s)",
                nd->type == N_SCALAR ? nd->str : "(not a scalar)", list);
}

static int get_count(struct ctx *c, const struct node *nd, const char *key, unsigned *out)
{
    double d;
    if (tether__cfg_parse_number(nd, &d))
        return tether__cfg_fail(c, nd, key, "expected a whole number");
    if (!isfinite(d) || d < 0 || d != (double)(unsigned long long)d)
        return tether__cfg_fail(c, nd, key, "must be a whole number >= 0");
    if (d > TETHER_MAX_RESTARTS_LIMIT)
        return tether__cfg_fail(c, nd, key, "must be at most %u", TETHER_MAX_RESTARTS_LIMIT);
    *out = (unsigned)d;
    return 0;
}

/* `prefix`: "supervision" or "backends.NAME.supervision". Only keys present are set. */
int tether__cfg_load_supervision(struct ctx *c, const struct node *nd, const char *prefix,
                            struct tether_supervision *sv, const struct node **period_node)
{
    static const char *const strategies[] = {"one_for_all", "one_for_one", "rest_for_one"};
    static const char *const types[] = {"temporary", "transient", "permanent"};
    char key[KEY_MAX];
    int rc = tether__cfg_expect_map(c, nd, prefix);
    for (size_t i = 0; !rc && i < nd->n; i += 2) {
        const struct node *k = nd->kids[i], *v = nd->kids[i + 1];
        tether__cfg_join_key(key, prefix, k->str);
        if (tether__cfg_key_is(k, "strategy")) {
            rc = get_word(c, v, key, strategies, 3, &sv->strategy);
        } else if (tether__cfg_key_is(k, "restart")) {
            rc = get_word(c, v, key, types, 3, &sv->restart);
            sv->restart += TETHER_RESTART_TEMPORARY;
        } else if (tether__cfg_key_is(k, "max_restarts")) {
            rc = get_count(c, v, key, &sv->max_restarts);
        } else if (tether__cfg_key_is(k, "period")) {
            rc = tether__cfg_get_timeout(c, v, key, &sv->period);
            *period_node = v;
        } else if (tether__cfg_key_is(k, "backoff")) {
            rc = tether__cfg_get_timeout(c, v, key, &sv->backoff);
        } else if (tether__cfg_key_is(k, "backoff_max")) {
            rc = tether__cfg_get_timeout(c, v, key, &sv->backoff_max);
        } else {
            rc = tether__cfg_fail(c, k, key, "unknown key");
        }
    }
    return rc;
}

/* Fields a backend's section leaves unset take the global ones; then the
 * whole is checked (a period of 0 with restarts allowed counts nothing). */
int tether__cfg_merge_supervision(struct ctx *c)
{
    struct tether_supervision *g = &c->cfg->supervision;
    char key[KEY_MAX];
    if (g->period == 0 && g->max_restarts > 0)
        return tether__cfg_fail(c, c->sv_period ? c->sv_period : c->sv_node, "supervision.period",
                    "0 with max_restarts %u: no restart could be counted (max_restarts: 0 "
                    "never restarts)",
                    g->max_restarts);
    for (size_t i = 0; i < c->cfg->n_backends; i++) {
        struct tether_supervision *b = &c->bk[i].supervision;
        if (b->strategy == UNSET_INT)
            b->strategy = g->strategy;
        if (b->restart == UNSET_INT)
            b->restart = g->restart;
        if (b->max_restarts == UNSET_MAX)
            b->max_restarts = g->max_restarts;
        if (b->period < 0)
            b->period = g->period;
        if (b->backoff < 0)
            b->backoff = g->backoff;
        if (b->backoff_max < 0)
            b->backoff_max = g->backoff_max;
        if (b->period == 0 && b->max_restarts > 0) {
            const struct node *at = c->bk_sv_period[i]   ? c->bk_sv_period[i]
                                    : c->bk_sv_node[i]   ? c->bk_sv_node[i]
                                    : c->sv_period       ? c->sv_period
                                                         : c->sv_node;
            char bkey[KEY_MAX];
            tether__cfg_join_key(bkey, "backends", c->bk[i].name);
            return tether__cfg_fail(c, at, tether__cfg_join_key(key, bkey, "supervision.period"),
                        "0 with max_restarts %u: no restart could be counted (max_restarts: 0 "
                        "never restarts)",
                        b->max_restarts);
        }
    }
    return 0;
}
