/* backends/subint/subint.h - what the parts of the subint backend share
 * (never installed). Include after <Python.h>. */
#ifndef TETHER_SUBINT_H
#define TETHER_SUBINT_H

#include <tether/backend.h>

/* What the `tether` module of one sub-interpreter needs to know about its
 * actor. Owned by the driver thread; fields marked (GIL) are only read or
 * written with the GIL held by a thread state of that interpreter. */
struct subint_run {
    const struct tether_backend_host *host;
    void *backend_child;      /* the driver's struct schild */
    struct tether_actor *a;
    unsigned long py_tid;     /* PyThread_get_thread_ident() of the driver */
    int observed;             /* (GIL) the actor code saw its cancel request */
    char *fail;               /* (GIL) text of tether.fail(), malloc'ed, or NULL */
    PyObject *target;         /* (GIL) the actor's module (strong), for serve() */
    PyObject *cancelled_type; /* (GIL) tether.Cancelled of this interpreter (strong) */
    int finished;             /* (GIL) the actor code is done: inject nothing more */
    PyObject *ext;            /* (GIL) the tether extension, once loaded for its
                                 supervisor API (strong), or NULL */
    PyMethodDef *code_of;     /* the loader's source of compiled actor modules
                                 (codecache.h), or NULL: compiled each time */
};

/* module.c: create the `tether` module in the current (sub-)interpreter,
 * bound to `run`, and register it as sys.modules["tether"]. Returns a new
 * reference, or NULL with an exception set. Sets run->cancelled_type. */
PyObject *subint_module_install(struct subint_run *run);

/* module.c: import TARGET ("path/file.py:FUNC" or "package.module:FUNC"),
 * greet the supervisor, call FUNC(tether), and say how it ended: the
 * outcome kind, its code and a malloc'ed text (traceback) or NULL. A failure
 * before the greeting makes the spawn fail with that text. */
void subint_run_target(struct subint_run *run, const char *target, int *outcome, int *code,
                       char **text);
/* module.c: in a pooled interpreter made ahead (its thread state current,
 * the GIL held), the imports every actor's loader makes first. */
void subint_preload(void);
/* module.c: flush the interpreter's stdout/stderr and drop run's references
 * (before the interpreter is ended). */
void subint_run_clear(struct subint_run *run);

/* nest.c: the extension's attribute `name` (Supervisor, Actor, Error...),
 * the extension loaded and bound to `run` on first use; a new reference, or
 * NULL with AttributeError (not one of its names; not inside an actor) or
 * ImportError (no tether extension on sys.path). */
PyObject *subint_ext_attr(struct subint_run *run, PyObject *name);
/* nest.c: the actor's code has ended: close every supervisor it left open
 * (each bounded by its teardown), keeping a pending exception. */
void subint_ext_done(struct subint_run *run);
/* nest.c: unbind and drop the extension (subint_run_clear). */
void subint_ext_unbind(struct subint_run *run);

/* pack.c: Python value <-> one MessagePack value (None, bool, int, float,
 * str, bytes, list/tuple, dict). Both return NULL with an exception set
 * (TypeError for an object that cannot cross, ValueError for bytes that are
 * not exactly one value). */
PyObject *subint_pack(PyObject *obj);                  /* -> bytes */
PyObject *subint_unpack(const char *buf, size_t len); /* -> object */

/* subint.c: take the GIL with `ts`, as a registered waiter: on CPython 3.11
 * a sub-interpreter spinning on the CPU never hears a GIL request made from
 * another interpreter, so while one lasts a monitor forwards it to the
 * holder's interpreter (gil311.c). Release with PyEval_SaveThread() as
 * usual. */
void subint_gil_take(PyThreadState *ts);
/* subint.c: the actor has greeted the supervisor (it no longer needs the
 * monitor's help to start). */
void subint_started(struct subint_run *run);

#if PY_VERSION_HEX < 0x030C0000
/* gil311.c: if the GIL's holder belongs to one interpreter and a thread of
 * another waits for it (its drop request is set), set the holder
 * interpreter's drop request. Returns 1 when it forwarded one. Never waits:
 * a busy lock makes it return 0 (the caller tries again later). */
int subint_gil_forward(void);
#endif

#endif
