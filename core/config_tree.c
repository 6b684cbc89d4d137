/* core/config_tree.c - plugins.yaml's text into a tree of our own: libyaml's
 * event parser feeds it, so that every node keeps its line and column for
 * messages, and every error names NAME:LINE:COL and the key path. Anchors
 * and aliases are refused while the tree is built: an alias bomb is never
 * expanded. Depth is bounded (MAX_DEPTH), duplicate keys are refused.
 * config.c walks the tree against the schema.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "config_int.h"

#define MAX_DEPTH 32 /* the schema needs 4; the bound keeps recursion shallow */

/* ---- errors ------------------------------------------------------------ */

__attribute__((format(printf, 5, 0))) static int vfail(struct ctx *c, int line, int col,
                                                      const char *key, const char *fmt,
                                                      va_list ap)
{
    char why[TETHER_ERROR_MSG_MAX];
    vsnprintf(why, sizeof why, fmt, ap);
    return tether_error_set(c->err, TETHER_ECONFIG, "%s:%d:%d: %s: %s", c->name, line, col, key,
                            why);
}

/* "NAME:LINE:COL: KEY: reason" at node `nd`. */
__attribute__((format(printf, 4, 5))) int tether__cfg_fail(struct ctx *c, const struct node *nd,
                                                     const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vfail(c, nd->line, nd->col, key, fmt, ap);
    va_end(ap);
    return rc;
}

__attribute__((format(printf, 4, 5))) static int fail_mark(struct ctx *c, yaml_mark_t mark,
                                                          const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vfail(c, (int)mark.line + 1, (int)mark.column + 1, key, fmt, ap);
    va_end(ap);
    return rc;
}

int tether__cfg_oom(struct ctx *c)
{
    return tether_error_set(c->err, TETHER_ENOMEM, "%s: out of memory", c->name);
}

/* The key path for messages about the node being built. */
static const char *here(struct ctx *c)
{
    return c->path[0] ? c->path : "top level";
}

/* Reader errors (bad encoding) carry a byte offset, not a mark. */
static void offset_to_mark(struct ctx *c, size_t offset, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < offset && i < c->len; i++) {
        if (c->text[i] == '\n') {
            ++*line;
            *col = 1;
        } else {
            ++*col;
        }
    }
}

static int syntax_error(struct ctx *c)
{
    const yaml_parser_t *p = &c->parser;
    const char *problem = p->problem ? p->problem : "not valid YAML";
    int line = (int)p->problem_mark.line + 1, col = (int)p->problem_mark.column + 1;

    if (p->error == YAML_MEMORY_ERROR)
        return tether__cfg_oom(c);
    if (p->error == YAML_READER_ERROR) {
        offset_to_mark(c, p->problem_offset, &line, &col);
        if (p->problem_value != -1)
            return tether_error_set(c->err, TETHER_ECONFIG, "%s:%d:%d: syntax error: %s (byte 0x%02x)",
                                    c->name, line, col, problem, (unsigned)p->problem_value);
    }
    if (p->context)
        return tether_error_set(c->err, TETHER_ECONFIG,
                                "%s:%d:%d: syntax error: %s (%s at line %d)", c->name, line, col,
                                problem, p->context, (int)p->context_mark.line + 1);
    return tether_error_set(c->err, TETHER_ECONFIG, "%s:%d:%d: syntax error: %s", c->name, line,
                            col, problem);
}

/* ---- the tree ------------------------------------------------------------ */

void tether__cfg_node_free(struct node *nd)
{
    if (!nd)
        return;
    for (size_t i = 0; i < nd->n; i++)
        tether__cfg_node_free(nd->kids[i]);
    free(nd->kids);
    free(nd->str);
    free(nd);
}

static int next_event(struct ctx *c, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&c->parser, ev))
        return syntax_error(c);
    return 0;
}

/* Key paths only serve messages: a long one is cut and ends in "...". */
void tether__cfg_mark_cut(char *buf, size_t size)
{
    memcpy(buf + size - 4, "...", 4);
}

/* Append ".seg" (or "seg" at the top) to the key path; returns the old
 * length to restore. */
static size_t path_push(struct ctx *c, const char *seg)
{
    size_t old = strlen(c->path), room = sizeof c->path - old;
    if ((size_t)snprintf(c->path + old, room, "%s%s", old ? "." : "", seg) >= room)
        tether__cfg_mark_cut(c->path, sizeof c->path);
    return old;
}

static size_t path_push_index(struct ctx *c, size_t i)
{
    size_t old = strlen(c->path), room = sizeof c->path - old;
    if ((size_t)snprintf(c->path + old, room, "[%zu]", i) >= room)
        tether__cfg_mark_cut(c->path, sizeof c->path);
    return old;
}

static int same_key(const struct node *a, const struct node *b)
{
    return a->len == b->len && memcmp(a->str, b->str, a->len) == 0;
}

/* A key was just added to mapping `nd`: it must be a string, and new. */
static int check_key(struct ctx *c, const struct node *nd)
{
    const struct node *key = nd->kids[nd->n - 1];
    if (key->type != N_SCALAR)
        return tether__cfg_fail(c, key, here(c), "keys must be strings");
    for (size_t i = 0; i + 1 < nd->n; i += 2) {
        if (same_key(nd->kids[i], key)) {
            path_push(c, key->str);
            return tether__cfg_fail(c, key, c->path, "duplicate key");
        }
    }
    return 0;
}

static int add_kid(struct ctx *c, struct node *nd, struct node *kid, size_t *cap)
{
    if (nd->n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        struct node **kids = realloc(nd->kids, ncap * sizeof *kids);
        if (!kids)
            return tether__cfg_oom(c);
        nd->kids = kids;
        *cap = ncap;
    }
    nd->kids[nd->n++] = kid;
    return 0;
}

static int build(struct ctx *c, yaml_event_t *ev, int depth, struct node **out);

/* Read the children of a mapping or sequence up to its end event. */
static int build_kids(struct ctx *c, struct node *nd, int depth)
{
    yaml_event_type_t end = nd->type == N_MAP ? YAML_MAPPING_END_EVENT : YAML_SEQUENCE_END_EVENT;
    size_t cap = 0, saved = 0;

    for (;;) {
        yaml_event_t ev;
        struct node *kid;
        int rc = next_event(c, &ev);
        if (rc)
            return rc;
        if (ev.type == end) {
            yaml_event_delete(&ev);
            return 0;
        }
        if (nd->type == N_SEQ)
            saved = path_push_index(c, nd->n);
        rc = build(c, &ev, depth + 1, &kid);
        yaml_event_delete(&ev);
        if (rc)
            return rc;
        if (nd->type == N_SEQ)
            c->path[saved] = '\0';
        if ((rc = add_kid(c, nd, kid, &cap))) {
            tether__cfg_node_free(kid);
            return rc;
        }
        if (nd->type != N_MAP)
            continue;
        if (nd->n % 2) {
            if ((rc = check_key(c, nd)))
                return rc;
            saved = path_push(c, kid->str); /* the value's path */
        } else {
            c->path[saved] = '\0';
        }
    }
}

static int fill_scalar(struct ctx *c, const yaml_event_t *ev, struct node *nd)
{
    size_t len = ev->data.scalar.length;
    nd->type = N_SCALAR;
    nd->str = malloc(len + 1);
    if (!nd->str)
        return tether__cfg_oom(c);
    memcpy(nd->str, ev->data.scalar.value, len);
    nd->str[len] = '\0';
    nd->len = len;
    /* A tag (!!str 2) makes it text, like quotes do. */
    nd->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && ev->data.scalar.plain_implicit;
    return 0;
}

/* Build the node that `ev` starts (the caller deletes `ev`). */
static int build(struct ctx *c, yaml_event_t *ev, int depth, struct node **out)
{
    const yaml_char_t *anchor = NULL;
    *out = NULL;

    switch (ev->type) {
    case YAML_SCALAR_EVENT: anchor = ev->data.scalar.anchor; break;
    case YAML_MAPPING_START_EVENT: anchor = ev->data.mapping_start.anchor; break;
    case YAML_SEQUENCE_START_EVENT: anchor = ev->data.sequence_start.anchor; break;
    case YAML_ALIAS_EVENT:
        return fail_mark(c, ev->start_mark, here(c), "aliases and anchors are not allowed");
    default: /* libyaml never sends another event where a node goes */
        return fail_mark(c, ev->start_mark, here(c), "unexpected YAML event %d", (int)ev->type);
    }
    /* Refuse anchors too, not just aliases: nothing in the schema needs them. */
    if (anchor)
        return fail_mark(c, ev->start_mark, here(c), "aliases and anchors are not allowed");
    if (depth > MAX_DEPTH)
        return fail_mark(c, ev->start_mark, here(c), "nested too deeply");

    struct node *nd = calloc(1, sizeof *nd);
    if (!nd)
        return tether__cfg_oom(c);
    nd->line = (int)ev->start_mark.line + 1;
    nd->col = (int)ev->start_mark.column + 1;
    int rc;
    if (ev->type == YAML_SCALAR_EVENT) {
        rc = fill_scalar(c, ev, nd);
    } else {
        nd->type = ev->type == YAML_MAPPING_START_EVENT ? N_MAP : N_SEQ;
        rc = build_kids(c, nd, depth);
    }
    if (rc) {
        tether__cfg_node_free(nd);
        return rc;
    }
    *out = nd;
    return 0;
}

/* Skip events of kind `type` (stream start, document end); anything else
 * cannot come from libyaml there. */
static int expect_event(struct ctx *c, yaml_event_type_t type)
{
    yaml_event_t ev;
    int rc = next_event(c, &ev);
    if (rc)
        return rc;
    if (ev.type != type)
        rc = fail_mark(c, ev.start_mark, "top level", "unexpected YAML event %d", (int)ev.type);
    yaml_event_delete(&ev);
    return rc;
}

static int empty_config(struct ctx *c)
{
    return tether_error_set(c->err, TETHER_ECONFIG, "%s:1:1: empty configuration", c->name);
}

int tether__cfg_is_null(const struct node *nd)
{
    if (nd->type != N_SCALAR || !nd->plain)
        return 0;
    return nd->len == 0 || !strcmp(nd->str, "~") || !strcmp(nd->str, "null") ||
           !strcmp(nd->str, "Null") || !strcmp(nd->str, "NULL");
}

/* The stream must hold exactly one document. */
int tether__cfg_build_document(struct ctx *c, struct node **root)
{
    yaml_event_t ev;
    int rc;
    *root = NULL;

    if ((rc = expect_event(c, YAML_STREAM_START_EVENT)))
        return rc;
    if ((rc = next_event(c, &ev)))
        return rc;
    int empty = ev.type == YAML_STREAM_END_EVENT;
    yaml_event_delete(&ev);
    if (empty)
        return empty_config(c);
    if ((rc = next_event(c, &ev)))
        return rc;
    rc = build(c, &ev, 0, root);
    yaml_event_delete(&ev);
    if (rc)
        return rc;
    if ((rc = expect_event(c, YAML_DOCUMENT_END_EVENT)))
        goto out;
    if ((rc = next_event(c, &ev)))
        goto out;
    if (ev.type == YAML_DOCUMENT_START_EVENT)
        rc = fail_mark(c, ev.start_mark, "top level", "more than one document");
    yaml_event_delete(&ev);
    if (!rc && tether__cfg_is_null(*root))
        rc = empty_config(c); /* a lone "---" */
out:
    if (rc) {
        tether__cfg_node_free(*root);
        *root = NULL;
    }
    return rc;
}
