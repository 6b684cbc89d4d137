/* backends/subint/codecache.c - the actor modules' code, compiled once per
 * process (issue #17).
 *
 * A pooled spawn spent ~2.5 ms of its ~4 ms compiling the actor's module
 * from source (the fresh interpreter has no code of it, and there is no
 * __pycache__ under PYTHONDONTWRITEBYTECODE). The loader (module.c) now asks
 * code_of(path) instead of exec_module: the first spawn of a file compiles
 * it and keeps marshal.dumps() of the code here, in plain C memory (no
 * interpreter's object: interpreters must not share objects); later spawns,
 * in any interpreter, only unmarshal it. Each gets a new code object and
 * runs it in a module object of its own, so nothing an actor does to its
 * module is seen by the next.
 *
 * The key is the path and the file's device, inode, size and mtime (ns),
 * read with fstat from the descriptor the source is read from: an edited
 * file (rewritten in place, or replaced by rename) is compiled again. This
 * is what importlib trusts a .pyc for, with a finer mtime (it keeps whole
 * seconds): an in-place rewrite of the same size within one tick of the
 * file system's clock is not seen, by either.
 *
 * The lock is held for a lookup, a copy or an insertion only, never across
 * a Python call or a wait: interpreters with their own GIL (3.12+) call in
 * parallel. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <marshal.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codecache.h"
#include "subint.h"

struct key {
    dev_t dev;
    ino_t ino;
    off_t size;
    int64_t mtime_ns;
};

struct entry {
    struct key key;
    uint64_t used; /* cache.clock at its last use: the least recent goes first */
    size_t len;    /* bytes of marshalled code at data */
    char *path;    /* NUL-terminated, in data after the code */
    char data[];
};

static struct {
    pthread_mutex_t m;
    unsigned holders; /* open backend states (codecache_hold) */
    uint64_t clock;
    size_t bytes; /* sum of the entries' len */
    unsigned n;
    struct entry *e[CODECACHE_MAX]; /* in no order */
} cache = {.m = PTHREAD_MUTEX_INITIALIZER};

static void key_of(const struct stat *sb, struct key *k)
{
    k->dev = sb->st_dev;
    k->ino = sb->st_ino;
    k->size = sb->st_size;
    k->mtime_ns = (int64_t)sb->st_mtim.tv_sec * 1000000000 + sb->st_mtim.tv_nsec;
}

static int key_eq(const struct key *a, const struct key *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime_ns == b->mtime_ns;
}

/* ---- the table (cache.m held) ------------------------------------------------------------ */

static void drop_locked(unsigned i)
{
    cache.bytes -= cache.e[i]->len;
    free(cache.e[i]);
    cache.e[i] = cache.e[--cache.n];
}

static int find_locked(const char *path)
{
    for (unsigned i = 0; i < cache.n; i++)
        if (strcmp(cache.e[i]->path, path) == 0)
            return (int)i;
    return -1;
}

static void drop_oldest_locked(void)
{
    unsigned old = 0;
    for (unsigned i = 1; i < cache.n; i++)
        if (cache.e[i]->used < cache.e[old]->used)
            old = i;
    drop_locked(old);
}

void codecache_hold(void)
{
    pthread_mutex_lock(&cache.m);
    cache.holders++;
    pthread_mutex_unlock(&cache.m);
}

void codecache_release(void)
{
    pthread_mutex_lock(&cache.m);
    if (--cache.holders == 0)
        while (cache.n)
            drop_locked(cache.n - 1);
    pthread_mutex_unlock(&cache.m);
}

/* A malloc'ed copy of the code kept for (path, key) into *code, *len: 1; 0
 * if none (an entry of an older version of the file is dropped). */
static int lookup(const char *path, const struct key *k, char **code, size_t *len)
{
    int hit = 0;
    pthread_mutex_lock(&cache.m);
    int i = find_locked(path);
    if (i >= 0 && !key_eq(&cache.e[i]->key, k)) {
        drop_locked((unsigned)i);
    } else if (i >= 0 && (*code = malloc(cache.e[i]->len))) {
        /* copied: once the lock is let go, the entry may be dropped */
        memcpy(*code, cache.e[i]->data, cache.e[i]->len);
        *len = cache.e[i]->len;
        cache.e[i]->used = ++cache.clock;
        hit = 1;
    }
    pthread_mutex_unlock(&cache.m);
    return hit;
}

/* Keep a copy of `code` for (path, key), in place of any entry of the path.
 * Nothing is kept when no backend state holds the cache (nobody would free
 * it), nor code bigger than the whole cache. */
static void store(const char *path, const struct key *k, const char *code, size_t len)
{
    size_t plen = strlen(path) + 1;
    if (len > CODECACHE_BYTES)
        return;
    struct entry *e = malloc(sizeof *e + len + plen);
    if (!e)
        return; /* the next spawn compiles again */
    e->key = *k;
    e->len = len;
    e->path = e->data + len;
    memcpy(e->data, code, len);
    memcpy(e->path, path, plen);
    pthread_mutex_lock(&cache.m);
    if (cache.holders == 0) {
        pthread_mutex_unlock(&cache.m);
        free(e);
        return;
    }
    int i = find_locked(path); /* another interpreter compiled it meanwhile */
    if (i >= 0)
        drop_locked((unsigned)i);
    while (cache.n == CODECACHE_MAX || cache.bytes + len > CODECACHE_BYTES)
        drop_oldest_locked();
    e->used = ++cache.clock;
    cache.e[cache.n++] = e;
    cache.bytes += len;
    pthread_mutex_unlock(&cache.m);
}

/* ---- the file (no GIL) ------------------------------------------------------------------- */

struct fetch {
    struct key key;
    char *code;   /* a copy of the cached marshalled code (malloc'ed), or NULL */
    size_t len;
    char *source; /* else the file's bytes (malloc'ed) */
    size_t slen;
    int stable; /* the file did not change while it was read: its code may be kept */
};

/* Read the whole file from `fd` (a regular file: bounded by its size). */
static int read_all(int fd, size_t hint, char **out, size_t *len)
{
    size_t cap = hint + 1, n = 0; /* +1: EOF is seen without growing */
    char *buf = malloc(cap);
    if (!buf)
        return ENOMEM;
    for (;;) {
        if (n == cap) {
            char *more = realloc(buf, cap *= 2);
            if (!more) {
                free(buf);
                return ENOMEM;
            }
            buf = more;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            return e;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    *out = buf;
    *len = n;
    return 0;
}

/* The cached code of `path`, or else its source. 0 or an errno value. */
static int fetch(const char *path, struct fetch *f)
{
    /* O_NONBLOCK: the open of a FIFO named as an actor module must not
     * wait for a writer (it is refused below; a regular file ignores it) */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return errno;
    struct stat sb;
    int rc = 0;
    if (fstat(fd, &sb) != 0) {
        rc = errno;
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        rc = S_ISDIR(sb.st_mode) ? EISDIR : EINVAL; /* read_all's bound is the size */
        goto out;
    }
    key_of(&sb, &f->key);
    if (lookup(path, &f->key, &f->code, &f->len))
        goto out;
    rc = read_all(fd, (size_t)sb.st_size, &f->source, &f->slen);
    if (rc == 0 && fstat(fd, &sb) == 0) {
        struct key after;
        key_of(&sb, &after);
        f->stable = key_eq(&after, &f->key) && f->slen == (size_t)f->key.size;
    }
out:
    close(fd);
    return rc;
}

/* ---- code_of(path) (the GIL held) -------------------------------------------------------- */

/* compile(source, path, "exec", dont_inherit=True), as importlib's
 * source_to_code calls it, so errors (SyntaxError, null bytes, a bad
 * coding cookie) read as they did. A new reference, or NULL. */
static PyObject *compile_source(const char *source, size_t len, PyObject *path)
{
    PyObject *compile = PyDict_GetItemString(PyEval_GetBuiltins(), "compile"); /* borrowed */
    if (!compile) {
        PyErr_SetString(PyExc_RuntimeError, "tether: no builtins.compile");
        return NULL;
    }
    PyObject *src = PyBytes_FromStringAndSize(source, (Py_ssize_t)len);
    /* flags 0, dont_inherit True: passed by position */
    PyObject *code = src ? PyObject_CallFunction(compile, "OOsiO", src, path, "exec", 0, Py_True)
                         : NULL;
    Py_XDECREF(src);
    return code;
}

static PyObject *code_of(PyObject *self, PyObject *path)
{
    (void)self;
    PyObject *fspath = NULL; /* bytes, in the file system's encoding */
    if (!PyUnicode_Check(path)) {
        PyErr_SetString(PyExc_TypeError, "code_of: path must be a str");
        return NULL;
    }
    if (!PyUnicode_FSConverter(path, &fspath))
        return NULL;
    const char *p = PyBytes_AS_STRING(fspath);
    struct fetch f = {.code = NULL};
    /* without the GIL: a slow file system stalls this actor only */
    PyThreadState *ts = PyEval_SaveThread();
    int rc = fetch(p, &f);
    subint_gil_take(ts);
    PyObject *code = NULL;
    if (rc) {
        errno = rc;
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
    } else if (f.code) {
        code = PyMarshal_ReadObjectFromString(f.code, (Py_ssize_t)f.len);
        if (code && !PyCode_Check(code)) { /* can't happen: only code is stored */
            Py_CLEAR(code);
            PyErr_SetString(PyExc_SystemError, "tether: cached code is not a code object");
        }
    } else if ((code = compile_source(f.source, f.slen, path)) && f.stable) {
        PyObject *m = PyMarshal_WriteObjectToString(code, Py_MARSHAL_VERSION);
        if (m)
            store(p, &f.key, PyBytes_AS_STRING(m), (size_t)PyBytes_GET_SIZE(m));
        else
            PyErr_Clear(); /* not kept: the next spawn compiles again */
        Py_XDECREF(m);
    }
    free(f.code);
    free(f.source);
    Py_DECREF(fspath);
    return code;
}

PyMethodDef codecache_code_of = {
    "code_of", code_of, METH_O,
    "code_of(path): the code of the actor module at path, compiled once per process."};
