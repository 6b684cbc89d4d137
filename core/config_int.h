/* core/config_int.h - plugins.yaml's reader, shared by its rooms:
 *   config_tree.c         the text into a tree (libyaml), its errors
 *   config.c              the schema, the public entry points
 *   config_supervision.c  the supervision: section (restarts)
 * Never installed. */
#ifndef TETHER_CONFIG_INT_H
#define TETHER_CONFIG_INT_H

#include <yaml.h>

#include "internal.h"

#define UNSET_TIMEOUT (-1.0) /* a per-backend timeout the file does not override */
#define KEY_MAX 256

enum node_type { N_SCALAR, N_MAP, N_SEQ };

struct node {
    enum node_type type;
    int line, col; /* 1-based */
    char *str;     /* scalar text, NUL-terminated; len counts embedded NULs */
    size_t len;
    int plain;          /* plain style and untagged: may be a number or null */
    struct node **kids; /* mapping: key, value, key, value...; sequence: items */
    size_t n;
};

struct ctx {
    const char *name; /* for messages */
    const char *dir;
    const char *text;
    size_t len;
    struct tether_error *err;
    yaml_parser_t parser;
    char path[KEY_MAX]; /* dotted key path of the node being built */
    /* Filled while walking the tree. */
    struct tether_config *cfg;
    struct tether_backend_config *bk; /* cfg->backends, writable */
    const struct node *root, *backends, *backend;
    const struct node *sv_period, *sv_node; /* the global supervision's period key, section */
    const struct node **bk_sv_period, **bk_sv_node; /* the same per backend */
};

/* "NAME:LINE:COL: KEY: reason" at node `nd`; returns TETHER_ECONFIG. */
__attribute__((format(printf, 4, 5))) int tether__cfg_fail(struct ctx *c, const struct node *nd,
                                                            const char *key, const char *fmt, ...);
/* config_tree.c */
/* Sets "NAME: out of memory" and returns TETHER_ENOMEM. */
int tether__cfg_oom(struct ctx *c);
void tether__cfg_node_free(struct node *nd);
/* A key path that filled `size` bytes: its end becomes "..." (messages only). */
void tether__cfg_mark_cut(char *buf, size_t size);
/* A plain scalar spelled as YAML's null (or empty). */
int tether__cfg_is_null(const struct node *nd);
/* The document's root (NULL for an empty document): 0, or an error set. */
int tether__cfg_build_document(struct ctx *c, struct node **root);

int tether__cfg_key_is(const struct node *key, const char *name);
/* "prefix.key" in buf (KEY_MAX bytes); returns buf. */
const char *tether__cfg_join_key(char *buf, const char *prefix, const char *key);
/* A YAML number (decimal, .inf, .nan): 0, or -1 if it is not one. */
int tether__cfg_parse_number(const struct node *nd, double *out);
/* A finite number >= 0 of seconds. */
int tether__cfg_get_timeout(struct ctx *c, const struct node *nd, const char *key, double *out);
int tether__cfg_expect_map(struct ctx *c, const struct node *nd, const char *key);

/* config_supervision.c */
extern const struct tether_supervision tether__cfg_unset_supervision;
/* `prefix`: "supervision" or "backends.NAME.supervision". Only keys present are set. */
int tether__cfg_load_supervision(struct ctx *c, const struct node *nd, const char *prefix,
                                 struct tether_supervision *sv, const struct node **period_node);
int tether__cfg_merge_supervision(struct ctx *c);

#endif
