/* backends/subint/module.c - the built-in `tether` module and the running of
 * one Python actor inside its sub-interpreter (everything here runs on the
 * actor's driver thread, with the GIL held by a thread state of that
 * sub-interpreter).
 *
 * The module is created per sub-interpreter with the multi-phase API
 * (PyModule_FromDefAndSpec + PyModule_ExecDef, state in the module object,
 * no static Python objects), so every interpreter has its own
 * tether.Cancelled, and registered as sys.modules["tether"]:
 *
 *   checkpoint()            raise Cancelled once a cancel was requested
 *   cancelled()             True once a cancel was requested
 *   sleep(seconds)          sleep, raising Cancelled early on cancel
 *   send(obj) / recv(timeout=None)
 *                           one message, as MessagePack (None, bool, int,
 *                           float, str, bytes, list, dict)
 *   send_bytes(b) / recv_bytes(timeout=None)
 *                           one message as raw bytes (what a C peer sees)
 *   serve()                 serve calls by function name until cancelled
 *   fail(message)           the outcome is `failed` with this message
 *   Cancelled               BaseException subclass: raised by the calls
 *                           above, and injected asynchronously on cancel
 *   _channel_fd()           the channel's fd (protocol tests only)
 *   Supervisor, Actor, Outcome, CloseReport, Error and its subclasses
 *                           the supervisor API of the tether extension
 *                           (python/tether.c), loaded from sys.path on
 *                           first use (module __getattr__: actors that
 *                           never supervise pay nothing) and bound to this
 *                           actor: its waits raise this tether.Cancelled
 *                           once the actor is cancelled, and every
 *                           supervisor it left open is closed before its
 *                           outcome (a tree comes down under one bound)
 *
 * Every call that can wait releases the GIL around the host's runtime call.
 * A cancel seen by these calls marks the actor as having noticed it and
 * drops any tether.Cancelled still pending for its thread: the
 * asynchronous injection is for code that never looks. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "subint.h"

struct mstate {
    struct subint_run *run;
    PyObject *cancelled; /* the Cancelled type */
};

static struct mstate *mstate(PyObject *mod)
{
    return (struct mstate *)PyModule_GetState(mod);
}

/* Release the GIL around one host call (which may wait). */
#define BLOCKING(stmt)                                 \
    do {                                               \
        PyThreadState *ts_ = PyEval_SaveThread();      \
        stmt;                                          \
        subint_gil_take(ts_);                          \
    } while (0)

static struct subint_run *get_run(PyObject *mod, const char *fn)
{
    struct mstate *st = mstate(mod);
    struct subint_run *r = st ? st->run : NULL;
    if (!r || !r->a) {
        PyErr_Format(PyExc_RuntimeError, "tether.%s: not inside a tether actor", fn);
        return NULL;
    }
    if (PyThread_get_thread_ident() != r->py_tid) {
        PyErr_Format(PyExc_RuntimeError,
                     "tether.%s may only be called from the actor's own thread", fn);
        return NULL;
    }
    return r;
}

static PyObject *raise_cancelled(struct subint_run *r)
{
    r->observed = 1;
    /* the actor noticed by itself: drop an injected Cancelled still pending */
    PyThreadState_SetAsyncExc(r->py_tid, NULL);
    PyErr_SetString(r->cancelled_type, "the supervisor cancelled this actor");
    return NULL;
}

/* Turn a host return code into a Python exception. */
static PyObject *raise_rc(struct subint_run *r, const char *fn, int rc, double seconds)
{
    switch (rc) {
    case TETHER_ECANCELLED:
    case TETHER_ECLOSED: return raise_cancelled(r);
    case TETHER_ETIMEDOUT:
        PyErr_Format(PyExc_TimeoutError, "tether.%s: nothing within %.3gs", fn, seconds);
        return NULL;
    case TETHER_ENOMEM: return PyErr_NoMemory();
    default:
        PyErr_Format(PyExc_RuntimeError, "tether.%s failed (error %d)", fn, rc);
        return NULL;
    }
}

static int timeout_arg(PyObject *o, double *out)
{
    if (o == NULL || o == Py_None) {
        *out = -1;
        return 0;
    }
    double t = PyFloat_AsDouble(o);
    if (t == -1 && PyErr_Occurred())
        return -1;
    if (!(t >= 0)) {
        PyErr_SetString(PyExc_ValueError, "timeout must be None or >= 0");
        return -1;
    }
    *out = t;
    return 0;
}

/* ---- the module's functions ------------------------------------------------- */

static PyObject *m_checkpoint(PyObject *mod, PyObject *unused)
{
    (void)unused;
    struct subint_run *r = get_run(mod, "checkpoint");
    if (!r)
        return NULL;
    if (r->host->actor_checkpoint(r->a))
        return raise_cancelled(r);
    Py_RETURN_NONE;
}

static PyObject *m_cancelled(PyObject *mod, PyObject *unused)
{
    (void)unused;
    struct subint_run *r = get_run(mod, "cancelled");
    if (!r)
        return NULL;
    return PyBool_FromLong(r->host->actor_cancelled(r->a) != 0);
}

static PyObject *m_sleep(PyObject *mod, PyObject *arg)
{
    struct subint_run *r = get_run(mod, "sleep");
    if (!r)
        return NULL;
    double s = PyFloat_AsDouble(arg);
    if (s == -1 && PyErr_Occurred())
        return NULL;
    if (!(s >= 0)) {
        PyErr_SetString(PyExc_ValueError, "tether.sleep: seconds must be >= 0");
        return NULL;
    }
    int rc;
    BLOCKING(rc = r->host->actor_sleep(r->a, s));
    if (rc)
        return raise_rc(r, "sleep", rc, s);
    Py_RETURN_NONE;
}

static PyObject *send_buf(struct subint_run *r, const char *fn, const void *buf, size_t len)
{
    int rc;
    BLOCKING(rc = r->host->actor_send_msg(r->a, buf, len));
    if (rc)
        return raise_rc(r, fn, rc, 0);
    Py_RETURN_NONE;
}

static PyObject *m_send(PyObject *mod, PyObject *obj)
{
    struct subint_run *r = get_run(mod, "send");
    if (!r)
        return NULL;
    PyObject *packed = subint_pack(obj);
    if (!packed)
        return NULL;
    PyObject *res = send_buf(r, "send", PyBytes_AS_STRING(packed), (size_t)PyBytes_GET_SIZE(packed));
    Py_DECREF(packed);
    return res;
}

static PyObject *m_send_bytes(PyObject *mod, PyObject *args)
{
    struct subint_run *r = get_run(mod, "send_bytes");
    if (!r)
        return NULL;
    Py_buffer b;
    if (!PyArg_ParseTuple(args, "y*:send_bytes", &b))
        return NULL;
    /* the exported buffer cannot be resized while the GIL is released */
    PyObject *res = send_buf(r, "send_bytes", b.buf, (size_t)b.len);
    PyBuffer_Release(&b);
    return res;
}

static PyObject *recv_common(PyObject *mod, PyObject *args, PyObject *kw, const char *fn, int raw)
{
    static char *kwlist[] = {"timeout", NULL};
    PyObject *to = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, raw ? "|O:recv_bytes" : "|O:recv", kwlist, &to))
        return NULL;
    struct subint_run *r = get_run(mod, fn);
    double t;
    if (!r || timeout_arg(to, &t))
        return NULL;
    void *buf = NULL;
    size_t len = 0;
    int rc;
    BLOCKING(rc = r->host->actor_recv_msg(r->a, &buf, &len, t));
    if (rc)
        return raise_rc(r, fn, rc, t);
    PyObject *res = raw ? PyBytes_FromStringAndSize(buf, (Py_ssize_t)len) : subint_unpack(buf, len);
    free(buf);
    return res;
}

static PyObject *m_recv(PyObject *mod, PyObject *args, PyObject *kw)
{
    return recv_common(mod, args, kw, "recv", 0);
}

static PyObject *m_recv_bytes(PyObject *mod, PyObject *args, PyObject *kw)
{
    return recv_common(mod, args, kw, "recv_bytes", 1);
}

static PyObject *m_fail(PyObject *mod, PyObject *arg)
{
    struct subint_run *r = get_run(mod, "fail");
    if (!r)
        return NULL;
    PyObject *s = PyObject_Str(arg);
    if (!s)
        return NULL;
    const char *text = PyUnicode_AsUTF8(s);
    char *copy = text ? strdup(text) : NULL;
    Py_DECREF(s);
    if (!copy)
        return text ? PyErr_NoMemory() : NULL;
    free(r->fail);
    r->fail = copy;
    Py_RETURN_NONE;
}

static PyObject *m_channel_fd(PyObject *mod, PyObject *unused)
{
    (void)unused;
    struct subint_run *r = get_run(mod, "_channel_fd");
    if (!r)
        return NULL;
    return PyLong_FromLong(r->host->actor_fd(r->a));
}

/* ---- serving calls ------------------------------------------------------------ */

/* Failure texts are formatted here, in C, as the `traceback` module would
 * (format_exception_only, format_exception with its chained exceptions):
 * importing `traceback` costs a fresh interpreter ~47 ms on CPython 3.14
 * (it pulls _colorize, dataclasses, inspect), ~10 ms on 3.11, and failures
 * (a bad call, a failing actor, each of 16 siblings failing at once) would
 * pay it in every interpreter, inside the soft-cancel slack. Only `io`
 * (imported at start-up) and PyTraceBack_Print are used. */

/* "module.Type: message" (builtins without module) plus its __notes__, as
 * traceback.format_exception_only; a new str, or NULL with an exception. */
static PyObject *exc_summary(PyObject *value)
{
    PyObject *type = (PyObject *)Py_TYPE(value);
    PyObject *qual = PyObject_GetAttrString(type, "__qualname__");
    PyObject *modn = PyObject_GetAttrString(type, "__module__");
    PyErr_Clear();
    PyObject *name;
    if (qual && modn && PyUnicode_Check(modn) &&
        PyUnicode_CompareWithASCIIString(modn, "builtins") != 0 &&
        PyUnicode_CompareWithASCIIString(modn, "__main__") != 0)
        name = PyUnicode_FromFormat("%U.%S", modn, qual);
    else if (qual)
        name = PyObject_Str(qual);
    else
        name = PyUnicode_FromString(Py_TYPE(value)->tp_name);
    Py_XDECREF(qual);
    Py_XDECREF(modn);
    if (!name)
        return NULL;
    PyObject *msg = PyObject_Str(value);
    if (!msg) {
        PyErr_Clear();
        msg = PyUnicode_FromString("<exception str() failed>");
    }
    PyObject *out = msg && PyUnicode_GET_LENGTH(msg) ? PyUnicode_FromFormat("%U: %U", name, msg)
                    : msg                            ? Py_NewRef(name)
                                                     : NULL;
    Py_XDECREF(msg);
    Py_DECREF(name);
    PyObject *notes = out ? PyObject_GetAttrString(value, "__notes__") : NULL;
    PyErr_Clear();
    if (notes && PyList_Check(notes)) {
        for (Py_ssize_t i = 0; out && i < PyList_GET_SIZE(notes); i++) {
            PyObject *note = PyObject_Str(PyList_GET_ITEM(notes, i));
            PyObject *longer = note ? PyUnicode_FromFormat("%U\n%U", out, note) : NULL;
            Py_XDECREF(note);
            Py_SETREF(out, longer);
        }
    }
    Py_XDECREF(notes);
    return out;
}

/* Write exc's chain, oldest first, then exc: each traceback (Python's own
 * C printer) and summary. `seen` guards against cycles and bounds depth. */
#define CHAIN_MAX 32
static void write_chain(PyObject *buf, PyObject *exc, PyObject **seen, int *nseen)
{
    seen[(*nseen)++] = exc;
    PyObject *cause = PyException_GetCause(exc);
    PyObject *ctx = PyException_GetContext(exc);
    PyObject *sup = PyObject_GetAttrString(exc, "__suppress_context__");
    int suppress = sup && PyObject_IsTrue(sup) == 1;
    Py_XDECREF(sup);
    PyErr_Clear();
    PyObject *prev = NULL;
    const char *sep = NULL;
    if (cause && PyExceptionInstance_Check(cause)) {
        prev = cause;
        sep = "\nThe above exception was the direct cause of the following exception:\n\n";
    } else if (ctx && !suppress && PyExceptionInstance_Check(ctx)) {
        prev = ctx;
        sep = "\nDuring handling of the above exception, another exception occurred:\n\n";
    }
    for (int i = 0; prev && i < *nseen; i++)
        if (seen[i] == prev)
            prev = NULL;
    if (prev && *nseen < CHAIN_MAX) {
        write_chain(buf, prev, seen, nseen);
        PyFile_WriteString(sep, buf);
    }
    Py_XDECREF(cause);
    Py_XDECREF(ctx);
    PyObject *tb = PyException_GetTraceback(exc);
    if (tb && PyTraceBack_Check(tb))
        PyTraceBack_Print(tb, buf);
    Py_XDECREF(tb);
    PyObject *sum = exc_summary(exc);
    if (sum) {
        PyFile_WriteObject(sum, buf, Py_PRINT_RAW);
        PyFile_WriteString("\n", buf);
    }
    Py_XDECREF(sum);
    PyErr_Clear();
}

/* "Type: message" of the current exception (fetched and cleared), or with
 * the traceback after it. malloc'ed; never NULL unless out of memory. */
static char *exc_text(int with_traceback)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value && tb)
        PyException_SetTraceback(value, tb);
    char *out = NULL;
    int exc = value && PyExceptionInstance_Check(value);
    PyObject *a = exc ? exc_summary(value) : NULL;
    PyErr_Clear();
    PyObject *b = NULL;
    if (exc && with_traceback) {
        PyObject *io = PyImport_ImportModule("io"); /* imported at start-up */
        PyObject *buf = io ? PyObject_CallMethod(io, "StringIO", NULL) : NULL;
        if (buf) {
            PyObject *seen[CHAIN_MAX];
            int nseen = 0;
            write_chain(buf, value, seen, &nseen);
            b = PyObject_CallMethod(buf, "getvalue", NULL);
        }
        Py_XDECREF(buf);
        Py_XDECREF(io);
        PyErr_Clear();
    }
    const char *sa = a ? PyUnicode_AsUTF8(a) : NULL;
    const char *sb = b && PyUnicode_Check(b) ? PyUnicode_AsUTF8(b) : NULL;
    if (!sa) {
        PyErr_Clear();
        sa = type ? ((PyTypeObject *)type)->tp_name : "unknown error";
    }
    if (!sb)
        PyErr_Clear();
    /* summary first (it survives truncation), then the traceback; a long
     * traceback keeps its last 8 KiB, where the failing frames are */
    size_t la = strlen(sa), lb = sb ? strlen(sb) : 0;
    if (lb > 8192) {
        sb += lb - 8192;
        lb = 8192;
    }
    while (la && sa[la - 1] == '\n')
        la--;
    out = malloc(la + lb + 2);
    if (out) {
        memcpy(out, sa, la);
        out[la] = '\0';
        if (sb) {
            out[la] = '\n';
            memcpy(out + la + 1, sb, lb);
            out[la + 1 + lb] = '\0';
            while (lb && out[la + lb] == '\n')
                out[la + lb--] = '\0';
        }
    }
    PyErr_Clear();
    Py_XDECREF(a);
    Py_XDECREF(b);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return out;
}

static int reply_error(struct subint_run *r, uint64_t id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int reply_error(struct subint_run *r, uint64_t id, const char *fmt, ...)
{
    char why[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    BLOCKING(r->host->actor_reply_error(r->a, id, why));
    return 0;
}

/* The function `name` of the actor's module, checked against the caller's
 * signature. A module that declares `tether_functions = {"name": "ARGS:RET"}`
 * exposes exactly those, with exact signature checks (as a C module's
 * table); otherwise any public callable, with an argument count check.
 * Returns a new reference, or NULL after replying with the reason. */
static PyObject *find_function(struct subint_run *r, uint64_t id, const char *name,
                               const char *sig, size_t nargs)
{
    PyObject *modname = PyObject_GetAttrString(r->target, "__name__");
    const char *where = modname && PyUnicode_Check(modname) ? PyUnicode_AsUTF8(modname) : NULL;
    if (!where)
        where = "the actor's module";
    PyErr_Clear();
    PyObject *fn = NULL;
    PyObject *table = PyObject_GetAttrString(r->target, "tether_functions");
    PyErr_Clear();
    if (table && PyDict_Check(table)) {
        PyObject *decl = PyDict_GetItemString(table, name); /* borrowed */
        const char *d = decl && PyUnicode_Check(decl) ? PyUnicode_AsUTF8(decl) : NULL;
        if (!decl) {
            reply_error(r, id, "no function '%s' in %s", name, where);
        } else if (!d || strcmp(d, sig) != 0) {
            reply_error(r, id, "signature mismatch for '%s': called as \"%s\", declared \"%s\"",
                        name, sig, d ? d : "(not a string)");
        } else if (!(fn = PyObject_GetAttrString(r->target, name)) || !PyCallable_Check(fn)) {
            Py_CLEAR(fn);
            reply_error(r, id, "no function '%s' in %s (declared but not defined)", name, where);
        }
    } else if (name[0] == '_' || !(fn = PyObject_GetAttrString(r->target, name)) ||
               !PyCallable_Check(fn)) {
        Py_CLEAR(fn);
        reply_error(r, id, "no function '%s' in %s", name, where);
    } else if (PyFunction_Check(fn)) {
        PyCodeObject *code = (PyCodeObject *)PyFunction_GetCode(fn);
        PyObject *defs = PyFunction_GetDefaults(fn);
        size_t max = (size_t)code->co_argcount;
        size_t min = max - (defs ? (size_t)PyTuple_GET_SIZE(defs) : 0);
        if (!(code->co_flags & CO_VARARGS) && (nargs < min || nargs > max)) {
            reply_error(r, id,
                        "signature mismatch for '%s': called as \"%s\" with %zu argument(s), "
                        "the function takes %zu",
                        name, sig, nargs, max);
            Py_CLEAR(fn);
        }
    }
    PyErr_Clear();
    Py_XDECREF(table);
    Py_XDECREF(modname);
    return fn;
}

static PyObject *value_to_py(const struct tether_value *v)
{
    switch (v->type) {
    case 'i':
    case 'l': return PyLong_FromLongLong(v->v.i);
    case 'u':
    case 'U': return PyLong_FromUnsignedLongLong(v->v.u);
    case 'd':
    case 'f': return PyFloat_FromDouble(v->v.d);
    case 's':
        if (!v->v.s)
            Py_RETURN_NONE;
        return PyUnicode_DecodeUTF8(v->v.s, (Py_ssize_t)strlen(v->v.s), "surrogateescape");
    default: Py_RETURN_NONE;
    }
}

/* The result as the signature's return letter wants it, or 0 with `why`. */
static int py_to_value(PyObject *res, char t, struct tether_value *v, char *why, size_t n)
{
    v->type = t;
    const char *tname = Py_TYPE(res)->tp_name;
    switch (t) {
    case 'v': return 1;
    case 'i':
    case 'l':
        if (PyLong_Check(res) && !PyBool_Check(res)) {
            int of = 0;
            long long x = PyLong_AsLongLongAndOverflow(res, &of);
            PyErr_Clear();
            if (!of && (t == 'l' || (x >= INT32_MIN && x <= INT32_MAX))) {
                v->v.i = x;
                return 1;
            }
            snprintf(why, n, "returned an int out of range for '%c'", t);
            return 0;
        }
        break;
    case 'u':
    case 'U':
        if (PyLong_Check(res) && !PyBool_Check(res)) {
            unsigned long long x = PyLong_AsUnsignedLongLong(res);
            if (!PyErr_Occurred() && (t == 'U' || x <= UINT32_MAX)) {
                v->v.u = x;
                return 1;
            }
            PyErr_Clear();
            snprintf(why, n, "returned an int out of range for '%c'", t);
            return 0;
        }
        break;
    case 'd':
    case 'f':
        if (PyFloat_Check(res) || (PyLong_Check(res) && !PyBool_Check(res))) {
            v->v.d = PyFloat_AsDouble(res);
            if (!PyErr_Occurred())
                return 1;
            PyErr_Clear();
        }
        break;
    case 's':
        if (res == Py_None) {
            v->v.s = NULL;
            return 1;
        }
        if (PyUnicode_Check(res) && (v->v.s = PyUnicode_AsUTF8(res)))
            return 1;
        PyErr_Clear();
        break;
    }
    snprintf(why, n, "returned %.100s, the signature wants '%c'", tname, t);
    return 0;
}

/* Serve one call. Returns 0 to go on serving, -1 with the exception set
 * when it must leave serve() (Cancelled, SystemExit...). */
static int serve_call(struct subint_run *r, uint64_t id, const char *func, const char *sig,
                      const struct tether_value *args, size_t nargs)
{
    PyObject *fn = find_function(r, id, func, sig, nargs);
    if (!fn)
        return 0;
    PyObject *tuple = PyTuple_New((Py_ssize_t)nargs);
    for (size_t i = 0; tuple && i < nargs; i++) {
        PyObject *a = value_to_py(&args[i]);
        if (!a) {
            Py_CLEAR(tuple);
            break;
        }
        PyTuple_SET_ITEM(tuple, (Py_ssize_t)i, a);
    }
    PyObject *res = tuple ? PyObject_Call(fn, tuple, NULL) : NULL;
    Py_XDECREF(tuple);
    Py_DECREF(fn);
    if (!res) {
        if (!PyErr_ExceptionMatches(PyExc_Exception)) {
            /* Cancelled, SystemExit, KeyboardInterrupt: the call fails and
             * the exception leaves serve() */
            PyObject *t, *v, *tb;
            PyErr_Fetch(&t, &v, &tb);
            reply_error(r, id, "%s: %s", func,
                        t == r->cancelled_type ? "the actor was cancelled during the call"
                                               : ((PyTypeObject *)t)->tp_name);
            PyErr_Restore(t, v, tb);
            return -1;
        }
        char *text = exc_text(0);
        reply_error(r, id, "%s: %s", func, text ? text : "error");
        free(text);
        return 0;
    }
    struct tether_value v;
    char why[256];
    const char *colon = strchr(sig, ':');
    if (!py_to_value(res, colon ? colon[1] : 'v', &v, why, sizeof why))
        reply_error(r, id, "%s: %s", func, why);
    else
        BLOCKING(r->host->actor_reply(r->a, id, &v)); /* `res` keeps v.v.s alive */
    Py_DECREF(res);
    return 0;
}

static PyObject *m_serve(PyObject *mod, PyObject *unused)
{
    (void)unused;
    struct subint_run *r = get_run(mod, "serve");
    if (!r)
        return NULL;
    if (!r->target) {
        PyErr_SetString(PyExc_RuntimeError, "tether.serve: no actor module to serve");
        return NULL;
    }
    for (;;) {
        const char *func, *sig;
        const struct tether_value *args;
        size_t nargs;
        uint64_t id;
        int rc;
        /* no time limit: a cancel (CANCEL frame, end of stream, the flag)
         * ends the wait */
        BLOCKING(rc = r->host->actor_next_call(r->a, -1, &func, &sig, &args, &nargs, &id));
        if (rc)
            return raise_rc(r, "serve", rc, 0);
        if (serve_call(r, id, func, sig, args, nargs))
            return NULL;
    }
}

/* PEP 562: tether.Supervisor and the rest of the extension's API (nest.c). */
static PyObject *m_getattr(PyObject *mod, PyObject *name)
{
    struct mstate *st = mstate(mod);
    PyObject *v = subint_ext_attr(st ? st->run : NULL, name);
    /* later lookups find it in the module's dict */
    if (v && PyObject_SetAttr(mod, name, v) < 0)
        Py_CLEAR(v);
    return v;
}

/* ---- the module ------------------------------------------------------------------ */

static PyMethodDef methods[] = {
    {"checkpoint", m_checkpoint, METH_NOARGS,
     "checkpoint()\n--\n\nRaise tether.Cancelled once a cancel was requested."},
    {"cancelled", m_cancelled, METH_NOARGS,
     "cancelled()\n--\n\nTrue once a cancel was requested."},
    {"sleep", m_sleep, METH_O,
     "sleep(seconds)\n--\n\nSleep; raise tether.Cancelled early on cancel."},
    {"send", m_send, METH_O,
     "send(obj)\n--\n\nSend one message (MessagePack: None, bool, int, float, str, bytes, list, "
     "dict)."},
    {"send_bytes", m_send_bytes, METH_VARARGS,
     "send_bytes(data)\n--\n\nSend one message of raw bytes."},
    {"recv", (PyCFunction)(void (*)(void))m_recv, METH_VARARGS | METH_KEYWORDS,
     "recv(timeout=None)\n--\n\nReceive one MessagePack message; TimeoutError after `timeout`."},
    {"recv_bytes", (PyCFunction)(void (*)(void))m_recv_bytes, METH_VARARGS | METH_KEYWORDS,
     "recv_bytes(timeout=None)\n--\n\nReceive one message as raw bytes."},
    {"serve", m_serve, METH_NOARGS,
     "serve()\n--\n\nServe calls by function name from the actor's module until cancelled."},
    {"fail", m_fail, METH_O,
     "fail(message)\n--\n\nRecord a failure: the actor's outcome is `failed` with message."},
    {"_channel_fd", m_channel_fd, METH_NOARGS, "The channel's fd (protocol tests only)."},
    {"__getattr__", m_getattr, METH_O, "The supervisor API, loaded on first use."},
    {NULL, NULL, 0, NULL},
};

static int m_exec(PyObject *mod)
{
    struct mstate *st = mstate(mod);
    st->cancelled = PyErr_NewExceptionWithDoc(
        "tether.Cancelled",
        "The supervisor cancelled this actor. Raised by tether calls, and injected "
        "asynchronously into code that never calls them. Let it propagate: the outcome is "
        "then `cancelled`.",
        PyExc_BaseException, NULL);
    if (!st->cancelled)
        return -1;
    Py_INCREF(st->cancelled);
    if (PyModule_AddObject(mod, "Cancelled", st->cancelled) != 0) {
        Py_DECREF(st->cancelled);
        return -1;
    }
    return 0;
}

/* The state is NULL until the module is executed. */
static int m_traverse(PyObject *mod, visitproc visit, void *arg)
{
    struct mstate *st = mstate(mod);
    if (st)
        Py_VISIT(st->cancelled);
    return 0;
}

static int m_clear(PyObject *mod)
{
    struct mstate *st = mstate(mod);
    if (st)
        Py_CLEAR(st->cancelled);
    return 0;
}

static void m_free(void *mod)
{
    m_clear((PyObject *)mod);
}

/* Per-interpreter state only (the module object's, no static Python
 * objects; the C state it points to is the driver's): safe in a
 * sub-interpreter with its own GIL (PEP 684). Without this slot an own-GIL
 * interpreter refuses the module. */
static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, m_exec},
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
    {0, NULL},
};

static struct PyModuleDef moddef = {
    PyModuleDef_HEAD_INIT,
    .m_name = "tether",
    .m_doc = "The actor side of a tether channel (see `tether` in the subint backend).",
    .m_size = sizeof(struct mstate),
    .m_methods = methods,
    .m_slots = slots,
    .m_traverse = m_traverse,
    .m_clear = m_clear,
    .m_free = m_free,
};

/* Where a pooled interpreter keeps what it made ahead (subint_preload):
 * its own per-interpreter dict, which Python code never sees. */
#define MODULE_KEY "tether.module" /* bound to its actor by subint_module_install */
#define LOADER_KEY "tether.loader" /* the compiled loader (load_target) */

/* What the interpreter made ahead under `key` (taken: one use), else
 * make(). A new reference, or NULL with an exception set. */
static PyObject *made_ahead(const char *key, PyObject *(*make)(void))
{
    PyObject *idict = PyInterpreterState_GetDict(PyInterpreterState_Get());
    PyObject *obj = idict ? PyDict_GetItemString(idict, key) : NULL; /* borrowed */
    if (!obj)
        return make();
    Py_INCREF(obj);
    PyDict_DelItemString(idict, key);
    return obj;
}

static PyObject *module_make(void)
{
    PyObject *machinery = PyImport_ImportModule("importlib.machinery");
    PyObject *spec = machinery ? PyObject_CallMethod(machinery, "ModuleSpec", "sO", "tether",
                                                     Py_None)
                               : NULL;
    Py_XDECREF(machinery);
    PyObject *mod = spec ? PyModule_FromDefAndSpec(&moddef, spec) : NULL;
    Py_XDECREF(spec);
    if (!mod)
        return NULL;
    /* the state exists once the module is executed */
    if (PyModule_ExecDef(mod, &moddef) != 0 ||
        PyDict_SetItemString(PyImport_GetModuleDict(), "tether", mod) != 0) {
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}

PyObject *subint_module_install(struct subint_run *run)
{
    PyObject *mod = made_ahead(MODULE_KEY, module_make);
    if (!mod)
        return NULL;
    mstate(mod)->run = run;
    run->cancelled_type = mstate(mod)->cancelled;
    Py_INCREF(run->cancelled_type);
    return mod;
}

/* ---- running the actor -------------------------------------------------------------- */

/* Loads "path/file.py:FUNC" (the file's folder goes first on sys.path) or
 * "package.module:FUNC" (the current folder goes on sys.path, as `python
 * -m` does). Python code: the import machinery is Python's anyway. A file's
 * module is made as importlib makes it (spec, module, sys.modules entry);
 * its code comes from `code_of` when given (the backend's cache of compiled
 * modules, codecache.h), else from the spec's loader (tether-pyactor). */
static const char loader_src[] =
    "def load(target=None, code_of=None):\n"
    "    import importlib, importlib.util, os, sys\n"
    "    if target is None:\n" /* a pooled interpreter's warm-up: the imports only */
    "        return None\n"
    "    where, sep, func = target.rpartition(':')\n"
    "    if not sep or not where or not func:\n"
    "        raise ValueError(f'target {target!r} is not of the form path/file.py:FUNC or "
    "package.module:FUNC')\n"
    "    if where.endswith('.py') or '/' in where:\n"
    "        path = os.path.abspath(where)\n"
    "        if not os.path.isfile(path):\n"
    "            raise ModuleNotFoundError(f'no actor module {path}', path=path)\n"
    "        name = os.path.splitext(os.path.basename(path))[0]\n"
    "        sys.path.insert(0, os.path.dirname(path))\n"
    "        spec = importlib.util.spec_from_file_location(name, path)\n"
    "        mod = importlib.util.module_from_spec(spec)\n"
    "        sys.modules[name] = mod\n"
    "        if code_of is None:\n"
    "            spec.loader.exec_module(mod)\n"
    "        else:\n"
    "            exec(code_of(path), mod.__dict__)\n"
    "    else:\n"
    "        sys.path.insert(0, os.getcwd())\n"
    "        mod = importlib.import_module(where)\n"
    "    fn = getattr(mod, func, None)\n"
    "    if not callable(fn):\n"
    "        raise AttributeError(f'actor module {where} has no function {func!r}')\n"
    "    return mod, fn\n";

/* The loader's `load` function, compiled in the current interpreter: a new
 * reference, or NULL with an exception set. */
static PyObject *compile_loader(void)
{
    PyObject *globals = PyDict_New();
    if (!globals)
        return NULL;
    PyObject *load = NULL;
    if (PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins()) == 0) {
        PyObject *r = PyRun_String(loader_src, Py_file_input, globals, globals);
        load = r ? PyDict_GetItemString(globals, "load") : NULL; /* borrowed */
        Py_XINCREF(load);
        Py_XDECREF(r);
    }
    Py_DECREF(globals);
    return load;
}

/* What a pooled interpreter does ahead: compile the loader, and make the
 * imports every actor's loader makes first (so the state an actor's module
 * finds is the same, pooled or cold). Errors are dropped: the loader then
 * meets them again, as a cold one would. */
void subint_preload(void)
{
    PyObject *load = compile_loader();
    PyObject *idict = PyInterpreterState_GetDict(PyInterpreterState_Get());
    if (load && idict && PyDict_SetItemString(idict, LOADER_KEY, load) == 0) {
        PyObject *r = PyObject_CallFunction(load, NULL); /* load(): the imports only */
        Py_XDECREF(r);
    }
    Py_XDECREF(load);
    PyErr_Clear();
    /* the `tether` module too, in sys.modules as a cold actor finds it;
     * bound to the actor when it comes (subint_module_install) */
    PyObject *mod = idict ? module_make() : NULL;
    if (mod)
        PyDict_SetItemString(idict, MODULE_KEY, mod);
    Py_XDECREF(mod);
    PyErr_Clear();
}

static PyObject *load_target(struct subint_run *r, const char *target)
{
    PyObject *load = made_ahead(LOADER_KEY, compile_loader);
    if (!load)
        return NULL;
    PyObject *code_of = r->code_of ? PyCFunction_New(r->code_of, NULL) : Py_NewRef(Py_None);
    PyObject *res = code_of ? PyObject_CallFunction(load, "sO", target, code_of) : NULL;
    Py_XDECREF(code_of);
    Py_DECREF(load);
    return res;
}

void subint_run_target(struct subint_run *r, const char *target, int *outcome, int *code,
                       char **text)
{
    *outcome = TETHER_OUTCOME_FAILED;
    *code = 0;
    *text = NULL;
    PyObject *mod = subint_module_install(r);
    PyObject *loaded = NULL;
    if (!mod) {
        *text = exc_text(1);
        return;
    }
    /* nothing injected before the actor existed may leak into it */
    PyThreadState_SetAsyncExc(r->py_tid, NULL);
    if (r->host->actor_checkpoint(r->a)) {
        *outcome = TETHER_OUTCOME_CANCELLED;
        goto out;
    }
    loaded = load_target(r, target);
    if (!loaded) {
        /* before ready: the spawn fails with this text */
        if (PyErr_ExceptionMatches(r->cancelled_type)) {
            PyErr_Clear();
            *outcome = TETHER_OUTCOME_CANCELLED;
        } else {
            *text = exc_text(1);
        }
        goto out;
    }
    r->target = PyTuple_GET_ITEM(loaded, 0);
    Py_INCREF(r->target);
    PyObject *fn = PyTuple_GET_ITEM(loaded, 1);
    int rc;
    BLOCKING(rc = r->host->actor_ready(r->a));
    (void)rc; /* a dead channel shows at the first wait; the core knows already */
    subint_started(r);
    PyObject *res = PyObject_CallOneArg(fn, mod);
    if (res) {
        *outcome = TETHER_OUTCOME_EXITED;
        if (PyLong_Check(res)) {
            *code = (int)PyLong_AsLong(res);
            PyErr_Clear();
        }
        Py_DECREF(res);
    } else if (PyErr_ExceptionMatches(r->cancelled_type)) {
        PyErr_Clear();
        *outcome = TETHER_OUTCOME_CANCELLED;
    } else if (PyErr_ExceptionMatches(PyExc_SystemExit)) {
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);
        PyErr_NormalizeException(&t, &v, &tb);
        PyObject *c = v ? PyObject_GetAttrString(v, "code") : NULL;
        *outcome = TETHER_OUTCOME_EXITED;
        *code = c == NULL || c == Py_None ? 0 : PyLong_Check(c) ? (int)PyLong_AsLong(c) : 1;
        PyErr_Clear();
        Py_XDECREF(c);
        Py_XDECREF(t);
        Py_XDECREF(v);
        Py_XDECREF(tb);
    } else {
        *text = exc_text(1);
    }
out:
    subint_ext_done(r);
    if (r->fail) {
        /* tether.fail() wins, as tether_fail() does for a C actor */
        *outcome = TETHER_OUTCOME_FAILED;
        free(*text);
        *text = strdup(r->fail);
    }
    Py_XDECREF(loaded);
    Py_DECREF(mod);
}

void subint_run_clear(struct subint_run *r)
{
    PyObject *stdio[2] = {PySys_GetObject("stdout"), PySys_GetObject("stderr")}; /* borrowed */
    for (int i = 0; i < 2; i++)
        if (stdio[i] && stdio[i] != Py_None) {
            PyObject *res = PyObject_CallMethod(stdio[i], "flush", NULL);
            Py_XDECREF(res);
        }
    PyErr_Clear();
    subint_ext_unbind(r);
    Py_CLEAR(r->target);
    Py_CLEAR(r->cancelled_type);
    free(r->fail);
    r->fail = NULL;
}
