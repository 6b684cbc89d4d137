/* backends/subint/nest.c - the supervisor API inside a Python actor: the
 * tether extension (python/tether.c), loaded from sys.path on the first use
 * of one of its names (module.c's __getattr__: an actor that never
 * supervises pays nothing) and bound to the actor, so that
 *   - its waits (spawn, recv, call, send, wait) raise the actor's own
 *     tether.Cancelled once the actor is cancelled (hook_cancelled, asked
 *     between the extension's wait slices): a node of a tree leaves its
 *     `with` block at once and closes its supervisor;
 *   - every supervisor the actor left open is closed before its outcome
 *     (subint_ext_done): no actor of a tree outlives its parent's outcome.
 * Used by the subint backend and by tether-pyactor (the fork backend's
 * Python helper). Runs on the actor's thread with the GIL held. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdlib.h>
#include <string.h>

#include "subint.h"

/* As python/tether.c declares it (HOOK_NAME there). */
#define HOOK_NAME "tether.actor_hook.v1"
struct actor_hook {
    void *ctx;
    int (*cancelled)(void *ctx);
    unsigned long thread;
};

/* The extension's waits ask this between slices, on the actor's thread
 * with the GIL held: the actor was asked to cancel (it noticed: no
 * asynchronous Cancelled is needed any more). */
static int hook_cancelled(void *ctx)
{
    struct subint_run *r = ctx;
    if (!r->a || r->finished || !r->host->actor_checkpoint(r->a))
        return 0;
    r->observed = 1;
    PyThreadState_SetAsyncExc(r->py_tid, NULL);
    return 1;
}

/* The tether extension from sys.path, never sys.modules["tether"] (this
 * module is that): only an extension file named tether, so that a
 * tether.py or a folder on the path cannot stand in for it. */
static const char ext_src[] =
    "def load():\n"
    "    import sys, importlib.machinery as m, importlib.util as u\n"
    "    for d in sys.path:\n"
    "        f = m.FileFinder(d or '.', (m.ExtensionFileLoader, m.EXTENSION_SUFFIXES))\n"
    "        spec = f.find_spec('tether')\n"
    "        if spec is not None and isinstance(spec.loader, m.ExtensionFileLoader):\n"
    "            mod = u.module_from_spec(spec)\n"
    "            spec.loader.exec_module(mod)\n"
    "            return mod\n"
    "    raise ImportError('tether: the supervisor API needs the tether extension "
    "(tether*.so, installed by make install where Python imports from), and no folder of "
    "sys.path has it', name='tether')\n";

static PyObject *load_ext(struct subint_run *r)
{
    if (r->ext)
        return r->ext;
    PyObject *globals = PyDict_New();
    PyObject *ext = NULL;
    if (globals && PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins()) == 0) {
        PyObject *res = PyRun_String(ext_src, Py_file_input, globals, globals);
        PyObject *load = res ? PyDict_GetItemString(globals, "load") : NULL; /* borrowed */
        Py_XDECREF(res);
        if (load)
            ext = PyObject_CallNoArgs(load);
    }
    Py_XDECREF(globals);
    if (!ext)
        return NULL;
    static struct actor_hook proto = {NULL, hook_cancelled, 0};
    struct actor_hook *h = malloc(sizeof *h);
    PyObject *cap = NULL, *res = NULL;
    if (h) {
        *h = proto;
        h->ctx = r;
        h->thread = r->py_tid;
        /* the extension copies it: the capsule frees it */
        cap = PyCapsule_New(h, HOOK_NAME, NULL);
        if (!cap)
            free(h);
    }
    if (cap)
        res = PyObject_CallMethod(ext, "_bind_actor", "OO", cap, r->cancelled_type);
    Py_XDECREF(cap);
    if (!res) {
        if (!h)
            PyErr_NoMemory();
        Py_DECREF(ext);
        return NULL;
    }
    Py_DECREF(res);
    r->ext = ext;
    return ext;
}

static const char *const ext_names[] = {"Supervisor", "Actor",     "Outcome",   "CloseReport",
                                        "Error",      "ConfigError", "LoadError", "SpawnError",
                                        "CallError",  "Aborted",   NULL};

PyObject *subint_ext_attr(struct subint_run *r, PyObject *name)
{
    const char *n = PyUnicode_Check(name) ? PyUnicode_AsUTF8(name) : NULL;
    int known = 0;
    for (int i = 0; n && ext_names[i]; i++)
        known |= strcmp(n, ext_names[i]) == 0;
    if (!known) {
        PyErr_Format(PyExc_AttributeError, "module 'tether' has no attribute %R", name);
        return NULL;
    }
    if (!r) {
        PyErr_Format(PyExc_AttributeError, "tether.%s: not inside a tether actor", n);
        return NULL;
    }
    PyObject *ext = load_ext(r);
    return ext ? PyObject_GetAttr(ext, name) : NULL;
}

/* The actor's code has ended: close what it left open, before its outcome. */
void subint_ext_done(struct subint_run *r)
{
    if (!r->ext)
        return;
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyObject *res = PyObject_CallMethod(r->ext, "_actor_done", NULL);
    if (!res)
        PyErr_WriteUnraisable(r->ext);
    Py_XDECREF(res);
    PyErr_Restore(t, v, tb);
}

void subint_ext_unbind(struct subint_run *r)
{
    if (r->ext) {
        PyObject *res = PyObject_CallMethod(r->ext, "_bind_actor", "OO", Py_None, Py_None);
        Py_XDECREF(res);
        PyErr_Clear();
    }
    Py_CLEAR(r->ext);
}
