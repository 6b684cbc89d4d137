/* python/tether.c - the `tether` Python package: supervise actors from Python.
 *
 * A CPython extension over libtether's public API (tether/tether.h only).
 * Multi-phase initialised, heap types and per-module state, so it loads in
 * sub-interpreters too.
 *
 * Blocking and the GIL. Every call that can wait releases the GIL. A wait
 * that libtether lets us repeat (wait, recv, the spawn's ready handshake)
 * runs in slices of SLICE_NS, and between slices PyErr_CheckSignals runs the
 * main thread's signal handlers, so Ctrl-C raises KeyboardInterrupt
 * promptly. call and send cannot be cut into slices (a timed-out call
 * forgets its reply; a send cut mid-frame ends the channel), so from the
 * main thread they run on a short-lived helper thread while the caller
 * waits for it in slices; on Ctrl-C the caller returns and the helper
 * finishes on its own (bounded by the call's deadline and by the actor's
 * teardown), then frees what it used.
 *
 * Lifetimes. An actor handle is shared by the Actor object and every
 * thread still inside a call on it (struct hbox, an atomic count), so
 * Actor.release() while another thread waits is safe: the last user
 * releases the handle. The Supervisor object counts the threads inside its
 * own calls (`inflight`, changed only with the GIL held) and close() lets
 * them leave before libtether frees the supervisor.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tether/tether.h>

#define SLICE_NS (50 * 1000000LL)
/* slack of teardown bounds, as libtether's (100 ms + a little) */
#define SLACK_NS (200 * 1000000LL)
#define MAX_ARGS 16
/* more than a frame's header and message envelope take (length, array, kind, ids) */
#define FRAME_OVERHEAD 64

/* Inside a subint actor, the actor's `tether` module loads this extension
 * for its supervisor API and binds it to the actor with _bind_actor(hook,
 * Cancelled): a capsule named HOOK_NAME holding this struct (the subint
 * backend's module.c declares the same; a new member gets a new name).
 * `cancelled(ctx)` says, on the actor's own thread with the GIL held,
 * whether the actor was asked to cancel (and records that it noticed). */
#define HOOK_NAME "tether.actor_hook.v1"
struct actor_hook {
    void *ctx;
    int (*cancelled)(void *ctx);
    unsigned long thread; /* PyThread_get_thread_ident() of the actor's thread */
};

struct SupObject_;

typedef struct {
    PyObject *Error, *ConfigError, *LoadError, *SpawnError, *CallError, *Aborted, *Cancelled;
    PyTypeObject *SupervisorType, *ActorType, *OutcomeType, *CloseReportType;
    unsigned long main_ident; /* the thread that runs signal handlers (0: none) */
    /* bound to an actor (subint): its hook and its tether.Cancelled */
    struct actor_hook hook;
    PyObject *ActorCancelled;
    struct SupObject_ *open; /* supervisors not closed yet (GIL), for _actor_done */
} modstate;

static PyModuleDef tether_def;

static modstate *state_of_type(PyTypeObject *t)
{
    PyObject *m = PyType_GetModuleByDef(t, &tether_def);
    return m ? PyModule_GetState(m) : NULL;
}
#define STATE(self) state_of_type(Py_TYPE(self))

/* ---- errors ---------------------------------------------------------------- */

static PyObject *error_class(modstate *st, int code)
{
    switch (code) {
    case TETHER_ETIMEDOUT: return PyExc_TimeoutError;
    case TETHER_ENOMEM: return PyExc_MemoryError;
    case TETHER_ECONFIG: return st->ConfigError;
    case TETHER_ELOAD: return st->LoadError;
    case TETHER_ESPAWN:
    case TETHER_ENOENT: return st->SpawnError;
    case TETHER_EBADCALL:
    case TETHER_EREMOTE: return st->CallError;
    case TETHER_ECANCELLED: return st->Cancelled;
    case TETHER_EABORTED:
    case TETHER_EPROTO: /* the channel was ended for it */
    case TETHER_ELOST:
    case TETHER_ECLOSED: return st->Aborted;
    default: return st->Error;
    }
}

/* Raise the exception for `code` with `msg` (or the code's description);
 * tether.Error and its subclasses carry .code and .name. Returns NULL. */
static PyObject *raise_as(modstate *st, PyObject *cls, int code, const char *msg)
{
    if (!msg || !*msg)
        msg = tether_strerror(code);
    /* messages may quote paths or remote text that is not UTF-8 */
    PyObject *text = PyUnicode_DecodeUTF8(msg, (Py_ssize_t)strlen(msg), "replace");
    PyObject *exc = text ? PyObject_CallOneArg(cls, text) : NULL;
    Py_XDECREF(text);
    if (!exc)
        return NULL;
    if (PyObject_IsSubclass(cls, st->Error) == 1) {
        PyObject *c = PyLong_FromLong(code);
        PyObject *n = PyUnicode_FromString(tether_err_name(code));
        if (!c || !n || PyObject_SetAttrString(exc, "code", c) < 0 ||
            PyObject_SetAttrString(exc, "name", n) < 0) {
            Py_XDECREF(c);
            Py_XDECREF(n);
            Py_DECREF(exc);
            return NULL;
        }
        Py_DECREF(c);
        Py_DECREF(n);
    }
    PyErr_SetObject(cls, exc);
    Py_DECREF(exc);
    return NULL;
}

static PyObject *raise_code(modstate *st, int code, const char *msg)
{
    return raise_as(st, error_class(st, code), code, msg);
}

static PyObject *raise_err(modstate *st, int code, const struct tether_error *err)
{
    return raise_code(st, code, err && err->code == code ? err->msg : NULL);
}

/* timeout argument: None -> TETHER_NEVER, else a non-negative number of seconds. */
static int parse_deadline(PyObject *timeout, int64_t *deadline)
{
    if (!timeout || timeout == Py_None) {
        *deadline = TETHER_NEVER;
        return 0;
    }
    double s = PyFloat_AsDouble(timeout);
    if (s == -1.0 && PyErr_Occurred()) {
        PyErr_Format(PyExc_TypeError, "timeout must be a number of seconds or None, not %.100s",
                     Py_TYPE(timeout)->tp_name);
        return -1;
    }
    if (!(s >= 0)) {
        PyErr_Format(PyExc_ValueError, "timeout must be >= 0, not %R", timeout);
        return -1;
    }
    int64_t now = tether_now_ns();
    *deadline = s > 1e9 ? TETHER_NEVER : now + (int64_t)(s * 1e9);
    return 0;
}

static int64_t next_slice(int64_t deadline)
{
    int64_t s = tether_now_ns() + SLICE_NS;
    return s < deadline ? s : deadline;
}

/* Between slices: the main thread's signal handlers (Ctrl-C), and inside
 * a subint actor its own cancel: a supervisor call of a cancelled actor
 * raises the actor's tether.Cancelled, so that a tree comes down level by
 * level without waiting for any wait's timeout. 0, or -1 with an
 * exception. */
static int check_interrupts(modstate *st)
{
    if (PyErr_CheckSignals() < 0)
        return -1;
    if (st->hook.cancelled && PyThread_get_thread_ident() == st->hook.thread &&
        st->hook.cancelled(st->hook.ctx)) {
        PyErr_SetString(st->ActorCancelled, "the supervisor cancelled this actor");
        return -1;
    }
    return 0;
}

/* Waits of this thread run on a helper, in slices (op_execute). */
static int sliced_thread(modstate *st)
{
    unsigned long me = PyThread_get_thread_ident();
    return me == st->main_ident || (st->hook.cancelled && me == st->hook.thread);
}


/* ---- the shared handle --------------------------------------------------------- */

struct hbox {
    tether_handle *h;
    int refs; /* atomic */
};

static void hbox_ref(struct hbox *b)
{
    __atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
}

/* May be called without the GIL. */
static void hbox_unref(struct hbox *b)
{
    if (__atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        tether_handle_release(b->h);
        free(b);
    }
}

/* ---- helper thread for call and send ---------------------------------------------- */

enum { OP_CALL, OP_SEND };

struct op {
    int kind;
    struct hbox *box;
    int64_t deadline;
    /* call */
    char *func, *sig;
    struct tether_value args[MAX_ARGS];
    char *strs[MAX_ARGS];
    size_t nargs;
    struct tether_value ret;
    struct tether_error err;
    /* send */
    void *buf;
    size_t len;
    int rc;
    /* completion */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    int users; /* caller + helper; the last one frees */
};

static struct op *op_new(int kind)
{
    struct op *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    o->kind = kind;
    pthread_mutex_init(&o->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&o->cv, &ca);
    pthread_condattr_destroy(&ca);
    return o;
}

static void op_free(struct op *o)
{
    if (o->kind == OP_CALL && o->rc == 0 && o->ret.type == 's')
        free((char *)o->ret.v.s);
    free(o->func);
    free(o->sig);
    for (size_t i = 0; i < MAX_ARGS; i++)
        free(o->strs[i]);
    free(o->buf);
    pthread_cond_destroy(&o->cv);
    pthread_mutex_destroy(&o->mu);
    free(o);
}

static void op_run(struct op *o)
{
    memset(&o->err, 0, sizeof o->err);
    if (o->kind == OP_CALL)
        o->rc = tether_call(o->box->h, o->func, o->sig, o->args, o->nargs, &o->ret, o->deadline,
                            &o->err);
    else
        o->rc = tether_send(o->box->h, o->buf, o->len, o->deadline);
}

static void op_put(struct op *o)
{
    pthread_mutex_lock(&o->mu);
    int last = --o->users == 0;
    pthread_mutex_unlock(&o->mu);
    if (last) {
        hbox_unref(o->box);
        op_free(o);
    }
}

static void *op_thread(void *arg)
{
    struct op *o = arg;
    op_run(o);
    pthread_mutex_lock(&o->mu);
    o->done = 1;
    pthread_cond_broadcast(&o->cv);
    pthread_mutex_unlock(&o->mu);
    op_put(o);
    return NULL;
}

/* Run `o` (which holds a reference on its box) and wait for it, releasing the
 * GIL. From the main thread, on a helper thread so that signals are seen.
 * Returns 0 with o->rc set (the caller then calls op_put), or -1 with a
 * Python exception set (a signal handler raised; the op is already put). */
static int op_execute(modstate *st, struct op *o)
{
    o->users = 1;
    o->done = 0;
    int threaded = 0;
    if (sliced_thread(st)) {
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        pthread_t t;
        /* block signals in the helper: they are the main thread's to handle */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        o->users = 2;
        if (pthread_create(&t, &at, op_thread, o) == 0)
            threaded = 1;
        else
            o->users = 1;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_attr_destroy(&at);
    }
    if (!threaded) {
        Py_BEGIN_ALLOW_THREADS
        op_run(o);
        Py_END_ALLOW_THREADS
        return 0;
    }
    for (;;) {
        int done;
        Py_BEGIN_ALLOW_THREADS
        pthread_mutex_lock(&o->mu);
        if (!o->done) {
            struct timespec ts;
            int64_t until = tether_now_ns() + SLICE_NS;
            ts.tv_sec = (time_t)(until / TETHER_NS_PER_SEC);
            ts.tv_nsec = (long)(until % TETHER_NS_PER_SEC);
            /* bounded: one slice */
            pthread_cond_timedwait(&o->cv, &o->mu, &ts);
        }
        done = o->done;
        pthread_mutex_unlock(&o->mu);
        Py_END_ALLOW_THREADS
        if (done)
            return 0;
        if (check_interrupts(st) < 0) {
            op_put(o); /* the helper frees it when it is done */
            return -1;
        }
    }
}

/* ---- Outcome and CloseReport ---------------------------------------------------- */

static PyStructSequence_Field outcome_fields[] = {
    {"kind", "how the actor ended: exited, failed, cancelled, killed, abandoned or lost"},
    {"code", "exit status (exited)"},
    {"signal", "terminating signal, 0 if none"},
    {"message", "failure text, traceback or loss reason, or None"},
    {"phases", "seconds spent in each phase: {'run', 'soft_cancel', 'hard_kill'}"},
    {"exception", "for a Python actor that raised: 'Type: message', else None"},
    {"traceback", "for a Python actor that raised: the traceback text, else None"},
    {NULL, NULL},
};
static PyStructSequence_Desc outcome_desc = {"tether.Outcome", "How an actor ended.",
                                             outcome_fields, 7};

static PyStructSequence_Field report_fields[] = {
    {"actors", "actors torn down by the close"},
    {"abandoned", "actors abandoned over the supervisor's life"},
    {"elapsed", "seconds the close took"},
    {NULL, NULL},
};
static PyStructSequence_Desc report_desc = {"tether.CloseReport",
                                            "What Supervisor.close() did.", report_fields, 3};

static PyObject *make_outcome(modstate *st, const struct tether_outcome *o)
{
    PyObject *r = PyStructSequence_New(st->OutcomeType);
    if (!r)
        return NULL;
    PyObject *exc = Py_None, *tb = Py_None;
    Py_INCREF(exc);
    Py_INCREF(tb);
    const char *m = o->message;
    const char *nl = m ? strchr(m, '\n') : NULL;
    if (o->kind == TETHER_OUTCOME_FAILED && nl && strncmp(nl + 1, "Traceback", 9) == 0) {
        Py_DECREF(exc);
        Py_DECREF(tb);
        exc = PyUnicode_DecodeUTF8(m, nl - m, "replace");
        tb = PyUnicode_DecodeUTF8(nl + 1, (Py_ssize_t)strlen(nl + 1), "replace");
    }
    PyObject *phases = Py_BuildValue("{s:d,s:d,s:d}", "run", o->run_ns / 1e9, "soft_cancel",
                                     o->soft_cancel_ns / 1e9, "hard_kill", o->hard_kill_ns / 1e9);
    PyObject *msg = m ? PyUnicode_DecodeUTF8(m, (Py_ssize_t)strlen(m), "replace") : Py_NewRef(Py_None);
    PyObject *items[7] = {PyUnicode_FromString(tether_outcome_name(o->kind)), PyLong_FromLong(o->code),
                          PyLong_FromLong(o->signal), msg, phases, exc, tb};
    int bad = 0;
    for (int i = 0; i < 7; i++) {
        if (!items[i])
            bad = 1;
        PyStructSequence_SetItem(r, i, items[i] ? items[i] : Py_NewRef(Py_None));
    }
    if (bad) {
        Py_DECREF(r);
        return NULL;
    }
    return r;
}

/* ---- Supervisor ------------------------------------------------------------------- */

typedef struct SupObject_ {
    PyObject_HEAD
    struct SupObject_ *next, **pprev; /* in modstate.open while not closed */
    tether_supervisor *sup;
    struct tether_config *cfg;
    int closing;  /* no new calls */
    int closed;   /* libtether's supervisor is gone (or never opened) */
    int inflight; /* threads inside a call on sup (GIL held to change) */
    PyObject *backend;
    PyObject *timeouts;
    PyObject *failure; /* cached at close */
    PyObject *report;  /* the close report, once closed */
} SupObject;

typedef struct {
    PyObject_HEAD
    SupObject *sup;
    struct hbox *box; /* NULL once released */
    PyObject *target;
    unsigned long long id;
} ActorObject;

static int sup_enter(SupObject *self)
{
    if (self->closing || !self->sup) {
        raise_code(STATE(self), TETHER_ESTATE, "the supervisor is closed");
        return -1;
    }
    self->inflight++;
    return 0;
}

static void sup_leave(SupObject *self)
{
    self->inflight--;
}

static void sup_link(modstate *st, SupObject *self)
{
    self->next = st->open;
    if (st->open)
        st->open->pprev = &self->next;
    self->pprev = &st->open;
    st->open = self;
}

static void sup_unlink(SupObject *self)
{
    if (!self->pprev)
        return;
    *self->pprev = self->next;
    if (self->next)
        self->next->pprev = self->pprev;
    self->next = NULL;
    self->pprev = NULL;
}

static int Sup_init(SupObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"backend", "config", "strategy", "max_restarts", "period", "backoff",
                             NULL};
    const char *backend = NULL, *strategy = "one_for_all";
    PyObject *config = Py_None;
    long max_restarts = -1; /* < 0: the configuration's supervision */
    double period = -1, backoff = -1;
    if (self->sup || self->cfg) {
        PyErr_SetString(PyExc_RuntimeError, "Supervisor.__init__ called twice");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|zOs$ldd:Supervisor", kwlist, &backend, &config,
                                     &strategy, &max_restarts, &period, &backoff))
        return -1;
    int strat;
    if (strcmp(strategy, "one_for_all") == 0)
        strat = TETHER_ONE_FOR_ALL;
    else if (strcmp(strategy, "one_for_one") == 0)
        strat = TETHER_ONE_FOR_ONE;
    else if (strcmp(strategy, "rest_for_one") == 0)
        strat = TETHER_REST_FOR_ONE;
    else {
        PyErr_Format(PyExc_ValueError,
                     "unknown strategy '%s' (expected 'one_for_all', 'one_for_one' or "
                     "'rest_for_one')",
                     strategy);
        return -1;
    }
    PyObject *path = NULL;
    if (config != Py_None && !PyUnicode_FSConverter(config, &path))
        return -1;
    modstate *st = STATE(self);
    struct tether_error err = {0, ""};
    struct tether_config *cfg = NULL;
    tether_supervisor *sup = NULL;
    int rc;
    const char *p = path ? PyBytes_AS_STRING(path) : NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = tether_config_load(p, &cfg, &err);
    if (rc == 0) {
        rc = tether_supervisor_open(cfg, backend, &sup, &err);
        if (rc) {
            tether_config_free(cfg);
            cfg = NULL;
        }
    }
    Py_END_ALLOW_THREADS
    Py_XDECREF(path);
    if (rc) {
        raise_err(st, rc, &err);
        return -1;
    }
    struct tether_supervision sv;
    tether_supervisor_supervision(sup, &sv);
    sv.strategy = strat;
    /* -1 (the default) keeps the configuration's; any other bad value is
     * refused by tether_supervisor_set_supervision below */
    if (max_restarts != -1)
        sv.max_restarts = max_restarts < 0 || max_restarts > (long)TETHER_MAX_RESTARTS_LIMIT
                              ? TETHER_MAX_RESTARTS_LIMIT + 1
                              : (unsigned)max_restarts;
    if (period != -1)
        sv.period = period;
    if (backoff != -1)
        sv.backoff = backoff;
    if (tether_supervisor_set_supervision(sup, &sv, &err)) {
        tether_supervisor_close(sup, NULL);
        tether_config_free(cfg);
        PyErr_Format(PyExc_ValueError, "Supervisor: %s", err.msg);
        return -1;
    }
    self->sup = sup;
    self->cfg = cfg;
    self->closed = 0;
    sup_link(st, self);
    self->backend = PyUnicode_FromString(tether_supervisor_backend(sup));
    const struct tether_timeouts *to = tether_supervisor_timeouts(sup);
    self->timeouts = Py_BuildValue("{s:d,s:d,s:d}", "spawn", to->spawn, "soft_cancel",
                                   to->soft_cancel, "hard_kill", to->hard_kill);
    if (!self->backend || !self->timeouts)
        return -1;
    return 0;
}

/* The bound of everything a close waits for: a spawn in flight, then a teardown. */
static int64_t close_bound_ns(SupObject *self)
{
    const struct tether_timeouts *to = tether_supervisor_timeouts(self->sup);
    double s = to->spawn + to->soft_cancel + to->hard_kill;
    return (int64_t)(s * 1e9) + SLACK_NS;
}

static PyObject *sup_do_close(SupObject *self)
{
    modstate *st = STATE(self);
    if (self->report)
        return Py_NewRef(self->report);
    if (!self->sup) {
        raise_code(st, TETHER_ESTATE, "the supervisor was never opened");
        return NULL;
    }
    if (self->closing) {
        raise_code(st, TETHER_ESTATE, "the supervisor is being closed by another thread");
        return NULL;
    }
    self->closing = 1;
    tether_supervisor *sup = self->sup;
    /* Threads of ours inside spawn/dump: cancel first so that they return
     * (never blocks). Otherwise close cancels by itself, and its report
     * then counts the actors it tore down (a cancel_all first let quick
     * actors end before close saw them: a report of 0 actors). */
    if (self->inflight > 0)
        tether_supervisor_cancel_all(sup);
    /* Let threads inside spawn/dump leave before libtether frees the
     * supervisor. Bounded: after cancel_all each returns within spawn +
     * soft_cancel + hard_kill + slack; past that bound everything is
     * hard-killed, and again the hard_kill bound applies. */
    int64_t deadline = tether_now_ns() + close_bound_ns(self);
    int killed = 0;
    while (self->inflight > 0) {
        if (!killed && tether_now_ns() >= deadline) {
            tether_supervisor_kill_all(sup);
            killed = 1;
        }
        Py_BEGIN_ALLOW_THREADS
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
        Py_END_ALLOW_THREADS
    }
    const char *f = tether_supervisor_failure(sup);
    self->failure = f ? PyUnicode_DecodeUTF8(f, (Py_ssize_t)strlen(f), "replace")
                      : Py_NewRef(Py_None);
    struct tether_close_report rep = {0, 0, 0};
    /* Not interrupted: it is the teardown itself, and bounded by it. */
    Py_BEGIN_ALLOW_THREADS
    tether_supervisor_close(sup, &rep);
    Py_END_ALLOW_THREADS
    self->sup = NULL; /* libtether frees it with its last handle */
    self->closed = 1;
    sup_unlink(self);
    PyObject *r = PyStructSequence_New(st->CloseReportType);
    if (!r)
        return NULL;
    PyStructSequence_SetItem(r, 0, PyLong_FromUnsignedLong(rep.actors));
    PyStructSequence_SetItem(r, 1, PyLong_FromUnsignedLong(rep.abandoned));
    PyStructSequence_SetItem(r, 2, PyFloat_FromDouble(rep.elapsed_ns / 1e9));
    if (PyErr_Occurred()) {
        Py_DECREF(r);
        return NULL;
    }
    self->report = r;
    return Py_NewRef(r);
}

static PyObject *Sup_close(SupObject *self, PyObject *unused)
{
    return sup_do_close(self);
}

static PyObject *Sup_enter(SupObject *self, PyObject *unused)
{
    if (self->closing || !self->sup)
        return raise_code(STATE(self), TETHER_ESTATE, "the supervisor is closed");
    return Py_NewRef(self);
}

static PyObject *Sup_exit(SupObject *self, PyObject *args)
{
    /* Whether the block ended by an exception or not, every actor is torn
     * down within the bound; an exception then propagates unchanged. */
    if (self->closing && !self->report)
        Py_RETURN_FALSE; /* another thread is closing it */
    PyObject *r = sup_do_close(self);
    if (!r)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_FALSE;
}

static void Sup_dealloc(SupObject *self)
{
    PyObject_GC_UnTrack(self);
    if (self->sup && !self->closing) {
        PyObject *exc_t, *exc_v, *exc_tb;
        PyErr_Fetch(&exc_t, &exc_v, &exc_tb);
        PyObject *r = sup_do_close(self);
        if (!r)
            PyErr_WriteUnraisable((PyObject *)self);
        Py_XDECREF(r);
        PyErr_Restore(exc_t, exc_v, exc_tb);
    }
    sup_unlink(self);
    if (self->cfg && !self->sup)
        tether_config_free(self->cfg);
    /* else: a close that never finished (cannot happen: close is bounded)
     * would leave the config to the supervisor */
    Py_CLEAR(self->backend);
    Py_CLEAR(self->timeouts);
    Py_CLEAR(self->failure);
    Py_CLEAR(self->report);
    PyTypeObject *tp = Py_TYPE(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static int Sup_traverse(SupObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static PyObject *new_actor(SupObject *sup, tether_handle *h, const char *target)
{
    modstate *st = STATE(sup);
    ActorObject *a = PyObject_GC_New(ActorObject, st->ActorType);
    struct hbox *b = malloc(sizeof *b);
    if (!a || !b) {
        free(b);
        Py_XDECREF(a);
        tether_handle_release(h);
        return PyErr_NoMemory();
    }
    b->h = h;
    b->refs = 1;
    a->box = b;
    a->sup = (SupObject *)Py_NewRef(sup);
    a->id = (unsigned long long)tether_handle_id(h);
    a->target = PyUnicode_FromString(target);
    PyObject_GC_Track(a);
    if (!a->target) {
        Py_DECREF(a);
        return NULL;
    }
    return (PyObject *)a;
}

/* Wait for the ready handshake in slices. 0, or -1 with an exception. */
static int wait_ready_sliced(modstate *st, struct hbox *b, int64_t deadline)
{
    for (;;) {
        struct tether_error err = {0, ""};
        int64_t until = next_slice(deadline);
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = tether_wait_ready(b->h, until, &err);
        Py_END_ALLOW_THREADS
        /* a slice ran out while the actor is still starting (a spawn
         * timeout has ended it: tether_wait then answers at once) */
        if (rc == TETHER_ETIMEDOUT && until < deadline && tether_wait(b->h, 0, NULL) != 0) {
            if (check_interrupts(st) < 0)
                return -1;
            continue;
        }
        if (rc) {
            raise_err(st, rc, &err);
            return -1;
        }
        return 0;
    }
}

static PyObject *Sup_spawn(SupObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"target", "wait", "restart", NULL};
    PyObject *target_o;
    int wait = 1;
    const char *restart = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|p$z:spawn", kwlist, PyUnicode_FSConverter,
                                     &target_o, &wait, &restart))
        return NULL;
    struct tether_spawn_opts so = {.flags = TETHER_SPAWN_NOWAIT};
    if (restart) {
        static const char *const types[] = {"temporary", "transient", "permanent"};
        for (int i = 0; i < 3; i++)
            if (!strcmp(restart, types[i]))
                so.restart = TETHER_RESTART_TEMPORARY + i;
        if (!so.restart) {
            Py_DECREF(target_o);
            PyErr_Format(PyExc_ValueError,
                         "unknown restart type '%s' (expected 'temporary', 'transient' or "
                         "'permanent')",
                         restart);
            return NULL;
        }
    }
    modstate *st = STATE(self);
    if (sup_enter(self) < 0) {
        Py_DECREF(target_o);
        return NULL;
    }
    const char *target = PyBytes_AS_STRING(target_o);
    tether_handle *h = NULL;
    struct tether_error err = {0, ""};
    int rc;
    tether_supervisor *sup = self->sup;
    /* The backend's spawn is bounded by the spawn timeout; the ready
     * handshake is waited for below, in slices. */
    Py_BEGIN_ALLOW_THREADS
    rc = tether_spawn_ex(sup, target, &so, &h, &err);
    Py_END_ALLOW_THREADS
    PyObject *actor = NULL;
    if (rc) {
        if (h)
            tether_handle_release(h);
        if (rc == TETHER_EINVAL) /* a malformed target: still a spawn that failed */
            raise_as(st, st->SpawnError, rc, err.msg);
        else
            raise_err(st, rc, &err);
        goto out;
    }
    actor = new_actor(self, h, target);
    if (!actor || !wait)
        goto out;
    const struct tether_timeouts *to = tether_supervisor_timeouts(sup);
    int64_t deadline = tether_now_ns() +
                       (int64_t)((to->spawn + to->soft_cancel + to->hard_kill) * 1e9) + SLACK_NS;
    struct hbox *b = ((ActorObject *)actor)->box;
    if (wait_ready_sliced(st, b, deadline) < 0) {
        tether_cancel(b->h); /* interrupted or failed: it must not run on */
        Py_CLEAR(actor);
    }
out:
    sup_leave(self);
    Py_DECREF(target_o);
    return actor;
}

static PyObject *Sup_cancel_all(SupObject *self, PyObject *unused)
{
    if (sup_enter(self) < 0)
        return NULL;
    tether_supervisor_cancel_all(self->sup); /* never blocks */
    sup_leave(self);
    Py_RETURN_NONE;
}

static PyObject *Sup_kill_all(SupObject *self, PyObject *unused)
{
    if (sup_enter(self) < 0)
        return NULL;
    tether_supervisor_kill_all(self->sup);
    sup_leave(self);
    Py_RETURN_NONE;
}

static PyObject *Sup_dump(SupObject *self, PyObject *unused)
{
    if (sup_enter(self) < 0)
        return NULL;
    char *text = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&text, &len);
    if (!fp) {
        sup_leave(self);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    tether_supervisor *sup = self->sup;
    Py_BEGIN_ALLOW_THREADS
    tether_supervisor_dump(sup, fp); /* bounded: it gives up on the lock after 1 s */
    fclose(fp);
    Py_END_ALLOW_THREADS
    sup_leave(self);
    PyObject *r = PyUnicode_DecodeUTF8(text ? text : "", (Py_ssize_t)len, "replace");
    free(text);
    return r;
}

static PyObject *Sup_get_failure(SupObject *self, void *c)
{
    if (self->failure)
        return Py_NewRef(self->failure);
    if (!self->sup || self->closing)
        Py_RETURN_NONE;
    const char *f = tether_supervisor_failure(self->sup);
    if (!f)
        Py_RETURN_NONE;
    return PyUnicode_DecodeUTF8(f, (Py_ssize_t)strlen(f), "replace");
}

static PyObject *Sup_get_backend(SupObject *self, void *c)
{
    return self->backend ? Py_NewRef(self->backend) : Py_NewRef(Py_None);
}

static PyObject *Sup_get_timeouts(SupObject *self, void *c)
{
    return self->timeouts ? PyDict_Copy(self->timeouts) : Py_NewRef(Py_None);
}

static PyObject *Sup_get_abandoned(SupObject *self, void *c)
{
    if (self->report)
        return Py_NewRef(PyStructSequence_GetItem(self->report, 1));
    if (!self->sup || self->closing)
        return PyLong_FromLong(0);
    return PyLong_FromUnsignedLong(tether_supervisor_abandoned(self->sup));
}

static PyObject *Sup_get_closed(SupObject *self, void *c)
{
    return PyBool_FromLong(self->closed);
}

static PyObject *Sup_repr(SupObject *self)
{
    return PyUnicode_FromFormat("<tether.Supervisor backend=%R%s>",
                                self->backend ? self->backend : Py_None,
                                self->closed ? " closed" : "");
}

static PyMethodDef Sup_methods[] = {
    {"spawn", (PyCFunction)(void (*)(void))Sup_spawn, METH_VARARGS | METH_KEYWORDS,
     "spawn(target, wait=True) -> Actor\n\nStart 'path/module.so:function' (or "
     "'file.py:function' on a Python backend); with wait, block until it is ready."},
    {"close", (PyCFunction)Sup_close, METH_NOARGS,
     "close() -> CloseReport\n\nCancel every actor and tear all down within "
     "soft_cancel + hard_kill + slack. Idempotent."},
    {"cancel_all", (PyCFunction)Sup_cancel_all, METH_NOARGS, "Cancel every actor (never blocks)."},
    {"kill_all", (PyCFunction)Sup_kill_all, METH_NOARGS, "Hard-kill every actor now (never blocks)."},
    {"dump", (PyCFunction)Sup_dump, METH_NOARGS, "dump() -> str: the hang dump."},
    {"__enter__", (PyCFunction)Sup_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)Sup_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Sup_getset[] = {
    {"failure", (getter)Sup_get_failure, NULL, "the first failure of an actor, or None", NULL},
    {"backend", (getter)Sup_get_backend, NULL, "the backend's name", NULL},
    {"timeouts", (getter)Sup_get_timeouts, NULL, "{'spawn', 'soft_cancel', 'hard_kill'} in seconds", NULL},
    {"abandoned", (getter)Sup_get_abandoned, NULL, "actors abandoned so far", NULL},
    {"closed", (getter)Sup_get_closed, NULL, "True once closed", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Sup_slots[] = {
    {Py_tp_doc, "Supervisor(backend=None, config=None, strategy='one_for_all')\n\n"
                "Owns actors and their teardown. A context manager: leaving the block "
                "closes it (every actor torn down within the configured bound)."},
    {Py_tp_init, Sup_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, Sup_dealloc},
    {Py_tp_traverse, Sup_traverse},
    {Py_tp_methods, Sup_methods},
    {Py_tp_getset, Sup_getset},
    {Py_tp_repr, Sup_repr},
    {0, NULL},
};

static PyType_Spec Sup_spec = {"tether.Supervisor", sizeof(SupObject), 0,
                               Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
                               Sup_slots};

/* ---- Actor ---------------------------------------------------------------------- */

/* The handle, referenced for a call; NULL with an exception once released. */
static struct hbox *actor_box(ActorObject *self)
{
    if (!self->box) {
        PyErr_Format(STATE(self)->Error, "actor %llu (%U) was released", self->id, self->target);
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);
        PyErr_NormalizeException(&t, &v, &tb);
        PyObject *c = PyLong_FromLong(TETHER_ESTATE);
        if (c && v) {
            PyObject_SetAttrString(v, "code", c);
            PyObject *n = PyUnicode_FromString(tether_err_name(TETHER_ESTATE));
            if (n)
                PyObject_SetAttrString(v, "name", n);
            Py_XDECREF(n);
        }
        Py_XDECREF(c);
        PyErr_Restore(t, v, tb);
        return NULL;
    }
    hbox_ref(self->box);
    return self->box;
}

static PyObject *Actor_call(ActorObject *self, PyObject *args, PyObject *kw)
{
    modstate *st = STATE(self);
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    if (n < 2)
        return PyErr_Format(PyExc_TypeError, "call(func, sig, *args, timeout=None): "
                                             "func and sig are required");
    PyObject *timeout = NULL;
    if (kw) {
        Py_ssize_t pos = 0;
        PyObject *k, *v;
        while (PyDict_Next(kw, &pos, &k, &v)) {
            if (PyUnicode_Check(k) && PyUnicode_CompareWithASCIIString(k, "timeout") == 0)
                timeout = v;
            else
                return PyErr_Format(PyExc_TypeError, "call() got an unexpected keyword argument %R", k);
        }
    }
    PyObject *fo = PyTuple_GET_ITEM(args, 0), *so = PyTuple_GET_ITEM(args, 1);
    if (!PyUnicode_Check(fo) || !PyUnicode_Check(so))
        return PyErr_Format(PyExc_TypeError, "call(): func and sig must be str, not %.50s and %.50s",
                            Py_TYPE(fo)->tp_name, Py_TYPE(so)->tp_name);
    const char *func = PyUnicode_AsUTF8(fo), *sig = PyUnicode_AsUTF8(so);
    if (!func || !sig)
        return NULL;
    size_t nargs = (size_t)(n - 2);
    if (nargs > MAX_ARGS)
        return raise_code(st, TETHER_EBADCALL, "too many arguments (at most 16)");
    int64_t deadline;
    if (parse_deadline(timeout, &deadline) < 0)
        return NULL;
    struct op *o = op_new(OP_CALL);
    if (!o)
        return PyErr_NoMemory();
    o->deadline = deadline;
    o->func = strdup(func);
    o->sig = strdup(sig);
    if (!o->func || !o->sig)
        goto nomem;
    const char *colon = strchr(sig, ':');
    size_t want = colon ? (size_t)(colon - sig) : strlen(sig);
    for (size_t i = 0; i < nargs; i++) {
        PyObject *v = PyTuple_GET_ITEM(args, (Py_ssize_t)i + 2);
        char t = i < want ? sig[i] : '?';
        struct tether_value *tv = &o->args[i];
        tv->type = t;
        o->nargs = i + 1;
        switch (t) {
        case 'i':
        case 'l': {
            if (!PyLong_Check(v))
                goto badtype;
            long long x = PyLong_AsLongLong(v);
            if (x == -1 && PyErr_Occurred())
                goto range;
            if (t == 'i' && (x < INT32_MIN || x > INT32_MAX))
                goto range;
            tv->v.i = x;
            break;
        }
        case 'u':
        case 'U': {
            if (!PyLong_Check(v))
                goto badtype;
            unsigned long long x = PyLong_AsUnsignedLongLong(v);
            if (x == (unsigned long long)-1 && PyErr_Occurred())
                goto range;
            if (t == 'u' && x > UINT32_MAX)
                goto range;
            tv->v.u = x;
            break;
        }
        case 'd':
        case 'f':
            if (!PyFloat_Check(v) && !PyLong_Check(v))
                goto badtype;
            tv->v.d = PyFloat_AsDouble(v);
            if (tv->v.d == -1.0 && PyErr_Occurred())
                goto range;
            break;
        case 's': {
            if (!PyUnicode_Check(v))
                goto badtype;
            Py_ssize_t len;
            const char *s = PyUnicode_AsUTF8AndSize(v, &len);
            if (!s)
                goto fail;
            if ((Py_ssize_t)strlen(s) != len) {
                PyErr_Format(PyExc_ValueError, "call %s: argument %zu contains a NUL character",
                             func, i + 1);
                goto fail;
            }
            if (!(o->strs[i] = strdup(s)))
                goto nomem;
            tv->v.s = o->strs[i];
            break;
        }
        default:
            /* not a type letter (or past the signature's arguments): libtether
             * refuses the call and says why */
            tv->v.i = 0;
            break;
        }
        continue;
    badtype:
        PyErr_Format(PyExc_TypeError, "call %s: argument %zu must be %s for '%c' in signature '%s', not %.50s",
                     func, i + 1, t == 's' ? "str" : (t == 'd' || t == 'f') ? "a number" : "int",
                     t, sig, Py_TYPE(v)->tp_name);
        goto fail;
    range:
        PyErr_Clear();
        PyErr_Format(PyExc_OverflowError, "call %s: argument %zu (%R) is out of range for '%c'",
                     func, i + 1, v, t);
        goto fail;
    }
    o->nargs = nargs;
    uint64_t max = self->sup->cfg ? self->sup->cfg->max_frame : 0;
    size_t total = strlen(func) + strlen(sig) + FRAME_OVERHEAD;
    for (size_t i = 0; i < nargs; i++)
        total += o->strs[i] ? strlen(o->strs[i]) + 16 : 16;
    if (max && total > max) {
        PyErr_Format(PyExc_ValueError,
                     "call %s: the arguments (%zu bytes) do not fit in a frame (max_frame is %llu bytes)",
                     func, total, (unsigned long long)max);
        goto fail;
    }
    if (!(o->box = actor_box(self)))
        goto fail;
    if (op_execute(st, o) < 0)
        return NULL;
    PyObject *r = NULL;
    if (o->rc) {
        raise_err(st, o->rc, &o->err);
    } else {
        switch (o->ret.type) {
        case 'v': r = Py_NewRef(Py_None); break;
        case 'i':
        case 'l': r = PyLong_FromLongLong(o->ret.v.i); break;
        case 'u':
        case 'U': r = PyLong_FromUnsignedLongLong(o->ret.v.u); break;
        case 'd':
        case 'f': r = PyFloat_FromDouble(o->ret.v.d); break;
        case 's':
            r = o->ret.v.s ? PyUnicode_DecodeUTF8(o->ret.v.s, (Py_ssize_t)strlen(o->ret.v.s), "replace")
                           : Py_NewRef(Py_None);
            break;
        default:
            raise_code(st, TETHER_EPROTO, "the reply has an unknown type");
        }
    }
    op_put(o);
    return r;
nomem:
    PyErr_NoMemory();
fail:
    if (o->box)
        hbox_unref(o->box);
    op_free(o);
    return NULL;
}

static PyObject *Actor_send(ActorObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"data", "timeout", NULL};
    Py_buffer view;
    PyObject *timeout = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "y*|O:send", kwlist, &view, &timeout))
        return NULL;
    int64_t deadline;
    if (parse_deadline(timeout, &deadline) < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    struct op *o = op_new(OP_SEND);
    void *copy = malloc(view.len ? (size_t)view.len : 1);
    if (!o || !copy) {
        if (o)
            op_free(o);
        free(copy);
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    memcpy(copy, view.buf, (size_t)view.len);
    uint64_t max = self->sup->cfg ? self->sup->cfg->max_frame : 0;
    if (max && (uint64_t)view.len + FRAME_OVERHEAD > max) {
        PyErr_Format(PyExc_ValueError,
                     "send: a message of %zd bytes does not fit in a frame (max_frame is %llu bytes)",
                     view.len, (unsigned long long)max);
        PyBuffer_Release(&view);
        op_free(o);
        free(copy);
        return NULL;
    }
    o->buf = copy;
    o->len = (size_t)view.len;
    o->deadline = deadline;
    PyBuffer_Release(&view);
    if (!(o->box = actor_box(self))) {
        op_free(o);
        return NULL;
    }
    if (op_execute(STATE(self), o) < 0)
        return NULL;
    int rc = o->rc;
    op_put(o);
    if (rc)
        return raise_code(STATE(self), rc, NULL);
    Py_RETURN_NONE;
}

static PyObject *Actor_recv(ActorObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"timeout", NULL};
    PyObject *timeout = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:recv", kwlist, &timeout))
        return NULL;
    int64_t deadline;
    if (parse_deadline(timeout, &deadline) < 0)
        return NULL;
    struct hbox *b = actor_box(self);
    if (!b)
        return NULL;
    void *buf = NULL;
    size_t len = 0;
    int rc;
    for (;;) {
        int64_t until = next_slice(deadline);
        Py_BEGIN_ALLOW_THREADS
        rc = tether_recv(b->h, &buf, &len, until);
        Py_END_ALLOW_THREADS
        if (rc != TETHER_ETIMEDOUT || until >= deadline)
            break;
        if (check_interrupts(STATE(self)) < 0) {
            hbox_unref(b);
            return NULL;
        }
    }
    hbox_unref(b);
    if (rc)
        return raise_code(STATE(self), rc,
                          rc == TETHER_ETIMEDOUT ? "recv: no message within the timeout" : NULL);
    PyObject *r = PyBytes_FromStringAndSize(buf, (Py_ssize_t)len);
    free(buf);
    return r;
}

static PyObject *Actor_wait(ActorObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"timeout", NULL};
    PyObject *timeout = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:wait", kwlist, &timeout))
        return NULL;
    int64_t deadline;
    if (parse_deadline(timeout, &deadline) < 0)
        return NULL;
    struct hbox *b = actor_box(self);
    if (!b)
        return NULL;
    struct tether_outcome out;
    int rc;
    for (;;) {
        int64_t until = next_slice(deadline);
        Py_BEGIN_ALLOW_THREADS
        rc = tether_wait(b->h, until, &out);
        Py_END_ALLOW_THREADS
        if (rc != TETHER_ETIMEDOUT || until >= deadline)
            break;
        if (check_interrupts(STATE(self)) < 0) {
            hbox_unref(b);
            return NULL;
        }
    }
    PyObject *r = rc ? raise_code(STATE(self), rc, rc == TETHER_ETIMEDOUT
                                                       ? "wait: the actor has not ended within the timeout"
                                                       : NULL)
                     : make_outcome(STATE(self), &out); /* message valid: we hold the handle */
    hbox_unref(b);
    return r;
}

static PyObject *Actor_wait_ready(ActorObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"timeout", NULL};
    PyObject *timeout = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:wait_ready", kwlist, &timeout))
        return NULL;
    int64_t deadline;
    if (parse_deadline(timeout, &deadline) < 0)
        return NULL;
    struct hbox *b = actor_box(self);
    if (!b)
        return NULL;
    int rc = wait_ready_sliced(STATE(self), b, deadline);
    hbox_unref(b);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Actor_cancel(ActorObject *self, PyObject *unused)
{
    struct hbox *b = actor_box(self);
    if (!b)
        return NULL;
    tether_cancel(b->h); /* never blocks */
    hbox_unref(b);
    Py_RETURN_NONE;
}

static PyObject *Actor_kill(ActorObject *self, PyObject *unused)
{
    struct hbox *b = actor_box(self);
    if (!b)
        return NULL;
    tether_kill(b->h); /* never blocks */
    hbox_unref(b);
    Py_RETURN_NONE;
}

static PyObject *Actor_release(ActorObject *self, PyObject *unused)
{
    struct hbox *b = self->box;
    self->box = NULL;
    if (b)
        hbox_unref(b); /* threads still inside a call keep the handle */
    Py_RETURN_NONE;
}

static PyObject *Actor_fileno(ActorObject *self, PyObject *unused)
{
    struct hbox *b = actor_box(self);
    if (!b)
        return NULL;
    int fd = tether_handle_fd(b->h);
    hbox_unref(b);
    if (fd < 0)
        return raise_code(STATE(self), fd, "no file descriptor for the actor (eventfd failed)");
    return PyLong_FromLong(fd);
}

static PyObject *Actor_get_outcome(ActorObject *self, void *c)
{
    struct hbox *b = actor_box(self);
    if (!b)
        return NULL;
    struct tether_outcome out;
    int rc = tether_wait(b->h, 0, &out); /* a past deadline: never blocks */
    PyObject *r = rc ? Py_NewRef(Py_None) : make_outcome(STATE(self), &out);
    hbox_unref(b);
    return r;
}

static PyObject *Actor_get_id(ActorObject *self, void *c)
{
    return PyLong_FromUnsignedLongLong(self->id);
}

static PyObject *Actor_get_target(ActorObject *self, void *c)
{
    return Py_NewRef(self->target);
}

static PyObject *Actor_get_pid(ActorObject *self, void *c)
{
    struct hbox *b = actor_box(self);
    if (!b)
        return NULL;
    long long pid = (long long)tether_handle_pid(b->h);
    hbox_unref(b);
    return PyLong_FromLongLong(pid);
}

static PyObject *Actor_get_state(ActorObject *self, void *c)
{
    struct hbox *b = actor_box(self);
    if (!b)
        return NULL;
    PyObject *r = PyUnicode_FromString(tether_handle_state(b->h));
    hbox_unref(b);
    return r;
}

static PyObject *Actor_get_restarts(ActorObject *self, void *c)
{
    struct hbox *b = actor_box(self);
    if (!b)
        return NULL;
    unsigned n = tether_handle_restarts(b->h);
    hbox_unref(b);
    return PyLong_FromUnsignedLong(n);
}

static PyObject *Actor_get_supervisor(ActorObject *self, void *c)
{
    return Py_NewRef(self->sup);
}

static PyObject *Actor_repr(ActorObject *self)
{
    return PyUnicode_FromFormat("<tether.Actor %llu %R%s>", self->id, self->target,
                                self->box ? "" : " released");
}

static void Actor_dealloc(ActorObject *self)
{
    PyObject_GC_UnTrack(self);
    if (self->box)
        hbox_unref(self->box); /* does not cancel: the supervisor still owns the actor */
    self->box = NULL;
    Py_CLEAR(self->target);
    Py_CLEAR(self->sup);
    PyTypeObject *tp = Py_TYPE(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static int Actor_traverse(ActorObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->sup);
    return 0;
}

static PyObject *Actor_new(PyTypeObject *t, PyObject *a, PyObject *k)
{
    PyErr_SetString(PyExc_TypeError, "actors are made by Supervisor.spawn()");
    return NULL;
}

static PyMethodDef Actor_methods[] = {
    {"call", (PyCFunction)(void (*)(void))Actor_call, METH_VARARGS | METH_KEYWORDS,
     "call(func, sig, *args, timeout=None)\n\nCall `func` in the actor with signature `sig` "
     "('ii:i'). CallError names a mismatch; TimeoutError at the timeout."},
    {"send", (PyCFunction)(void (*)(void))Actor_send, METH_VARARGS | METH_KEYWORDS,
     "send(data, timeout=None)\n\nSend one message (bytes-like); blocks only while the channel is full."},
    {"recv", (PyCFunction)(void (*)(void))Actor_recv, METH_VARARGS | METH_KEYWORDS,
     "recv(timeout=None) -> bytes\n\nReceive one message; TimeoutError at the timeout, Aborted "
     "(or Cancelled) once the actor is gone."},
    {"wait", (PyCFunction)(void (*)(void))Actor_wait, METH_VARARGS | METH_KEYWORDS,
     "wait(timeout=None) -> Outcome"},
    {"wait_ready", (PyCFunction)(void (*)(void))Actor_wait_ready, METH_VARARGS | METH_KEYWORDS,
     "wait_ready(timeout=None)\n\nAfter spawn(wait=False): block until the actor is ready."},
    {"cancel", (PyCFunction)Actor_cancel, METH_NOARGS, "Request cancellation (never blocks)."},
    {"kill", (PyCFunction)Actor_kill, METH_NOARGS, "Hard-kill now, skipping the soft phase (never blocks)."},
    {"release", (PyCFunction)Actor_release, METH_NOARGS,
     "Drop this object's handle (does not cancel); later use raises tether.Error."},
    {"fileno", (PyCFunction)Actor_fileno, METH_NOARGS,
     "A file descriptor that polls readable while a message waits or once the actor has "
     "ended. Poll it only; it is closed by release()."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Actor_getset[] = {
    {"outcome", (getter)Actor_get_outcome, NULL, "the Outcome, or None while running", NULL},
    {"id", (getter)Actor_get_id, NULL, "the actor's id", NULL},
    {"target", (getter)Actor_get_target, NULL, "the target it was spawned from", NULL},
    {"pid", (getter)Actor_get_pid, NULL, "its process id (0 for in-process backends)", NULL},
    {"state", (getter)Actor_get_state, NULL, "its state ('running', 'soft-cancel', ...)", NULL},
    {"supervisor", (getter)Actor_get_supervisor, NULL, "the Supervisor that owns it", NULL},
    {"restarts", (getter)Actor_get_restarts, NULL,
     "how many times it was restarted (the handle follows it)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Actor_slots[] = {
    {Py_tp_doc, "An actor started by Supervisor.spawn()."},
    {Py_tp_new, Actor_new},
    {Py_tp_dealloc, Actor_dealloc},
    {Py_tp_traverse, Actor_traverse},
    {Py_tp_methods, Actor_methods},
    {Py_tp_getset, Actor_getset},
    {Py_tp_repr, Actor_repr},
    {0, NULL},
};

static PyType_Spec Actor_spec = {"tether.Actor", sizeof(ActorObject), 0,
                                 Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
                                 Actor_slots};

/* ---- module ------------------------------------------------------------------------ */

static int add_exc(PyObject *m, PyObject **slot, const char *name, PyObject *base, const char *doc)
{
    char full[64];
    snprintf(full, sizeof full, "tether.%s", name);
    *slot = PyErr_NewExceptionWithDoc(full, doc, base, NULL);
    if (!*slot)
        return -1;
    return PyModule_AddObjectRef(m, name, *slot);
}

static int tether_exec(PyObject *m)
{
    modstate *st = PyModule_GetState(m);
    PyObject *threading = PyImport_ImportModule("threading");
    PyObject *mt = threading ? PyObject_CallMethod(threading, "main_thread", NULL) : NULL;
    PyObject *ident = mt ? PyObject_GetAttrString(mt, "ident") : NULL;
    st->main_ident = ident ? PyLong_AsUnsignedLong(ident) : 0;
    /* a sub-interpreter's "main thread" runs no signal handlers */
    if (PyInterpreterState_Get() != PyInterpreterState_Main())
        st->main_ident = 0;
    Py_XDECREF(ident);
    Py_XDECREF(mt);
    Py_XDECREF(threading);
    if (PyErr_Occurred())
        return -1;
    if (add_exc(m, &st->Error, "Error", PyExc_Exception,
                "A tether error; .code is the TETHER_E* value, .name its name.") < 0 ||
        add_exc(m, &st->ConfigError, "ConfigError", st->Error,
                "The configuration is invalid (the message names file:line:col and key).") < 0 ||
        add_exc(m, &st->LoadError, "LoadError", st->Error, "A backend plugin was refused.") < 0 ||
        add_exc(m, &st->SpawnError, "SpawnError", st->Error, "An actor could not be started.") < 0 ||
        add_exc(m, &st->CallError, "CallError", st->Error,
                "A call was refused (unknown function, signature mismatch, bad signature).") < 0 ||
        add_exc(m, &st->Aborted, "Aborted", st->Error,
                "The actor is gone: what a waiter gets when the actor is torn down.") < 0 ||
        add_exc(m, &st->Cancelled, "Cancelled", st->Aborted,
                "The actor was cancelled (an Aborted: the actor is gone).") < 0)
        return -1;
    st->SupervisorType = (PyTypeObject *)PyType_FromModuleAndSpec(m, &Sup_spec, NULL);
    if (!st->SupervisorType || PyModule_AddType(m, st->SupervisorType) < 0)
        return -1;
    st->ActorType = (PyTypeObject *)PyType_FromModuleAndSpec(m, &Actor_spec, NULL);
    if (!st->ActorType || PyModule_AddType(m, st->ActorType) < 0)
        return -1;
    st->OutcomeType = PyStructSequence_NewType(&outcome_desc);
    if (!st->OutcomeType || PyModule_AddObjectRef(m, "Outcome", (PyObject *)st->OutcomeType) < 0)
        return -1;
    st->CloseReportType = PyStructSequence_NewType(&report_desc);
    if (!st->CloseReportType ||
        PyModule_AddObjectRef(m, "CloseReport", (PyObject *)st->CloseReportType) < 0)
        return -1;
    return 0;
}

/* _bind_actor(hook, Cancelled) / _bind_actor(None, None): see struct
 * actor_hook. Private: the subint backend's actor module calls it. */
static PyObject *m_bind_actor(PyObject *m, PyObject *args)
{
    PyObject *cap, *cancelled;
    if (!PyArg_ParseTuple(args, "OO:_bind_actor", &cap, &cancelled))
        return NULL;
    modstate *st = PyModule_GetState(m);
    if (cap == Py_None) {
        memset(&st->hook, 0, sizeof st->hook);
        Py_CLEAR(st->ActorCancelled);
        Py_RETURN_NONE;
    }
    struct actor_hook *h = PyCapsule_GetPointer(cap, HOOK_NAME);
    if (!h)
        return NULL;
    if (!PyExceptionClass_Check(cancelled)) {
        PyErr_SetString(PyExc_TypeError, "_bind_actor: Cancelled must be an exception class");
        return NULL;
    }
    st->hook = *h;
    Py_XSETREF(st->ActorCancelled, Py_NewRef(cancelled));
    Py_RETURN_NONE;
}

/* _actor_done(): the actor's code has ended; close every supervisor it
 * left open (each bounded by its teardown), so that no actor of the tree
 * outlives its parent's outcome, and unbind. Returns how many it closed. */
static PyObject *m_actor_done(PyObject *m, PyObject *unused)
{
    modstate *st = PyModule_GetState(m);
    memset(&st->hook, 0, sizeof st->hook);
    long n = 0;
    /* each close unlinks its supervisor; one closing in another thread
     * (closing set) is skipped, and unlinked so that the loop ends */
    while (st->open) {
        SupObject *s = (SupObject *)Py_NewRef(st->open);
        PyObject *r = s->closing ? NULL : sup_do_close(s);
        if (r)
            n++;
        else if (PyErr_Occurred())
            PyErr_WriteUnraisable((PyObject *)s);
        Py_XDECREF(r);
        sup_unlink(s);
        Py_DECREF(s);
    }
    return PyLong_FromLong(n);
}

static PyMethodDef tether_methods[] = {
    {"_bind_actor", m_bind_actor, METH_VARARGS, "Private: see the subint backend."},
    {"_actor_done", m_actor_done, METH_NOARGS, "Private: see the subint backend."},
    {NULL, NULL, 0, NULL},
};

static int tether_traverse(PyObject *m, visitproc visit, void *arg)
{
    modstate *st = PyModule_GetState(m);
    if (!st)
        return 0;
    Py_VISIT(st->Error);
    Py_VISIT(st->ConfigError);
    Py_VISIT(st->LoadError);
    Py_VISIT(st->SpawnError);
    Py_VISIT(st->CallError);
    Py_VISIT(st->Aborted);
    Py_VISIT(st->Cancelled);
    Py_VISIT(st->SupervisorType);
    Py_VISIT(st->ActorType);
    Py_VISIT(st->OutcomeType);
    Py_VISIT(st->CloseReportType);
    Py_VISIT(st->ActorCancelled);
    return 0;
}

static int tether_clear(PyObject *m)
{
    modstate *st = PyModule_GetState(m);
    if (!st)
        return 0;
    Py_CLEAR(st->Error);
    Py_CLEAR(st->ConfigError);
    Py_CLEAR(st->LoadError);
    Py_CLEAR(st->SpawnError);
    Py_CLEAR(st->CallError);
    Py_CLEAR(st->Aborted);
    Py_CLEAR(st->Cancelled);
    Py_CLEAR(st->SupervisorType);
    Py_CLEAR(st->ActorType);
    Py_CLEAR(st->OutcomeType);
    Py_CLEAR(st->CloseReportType);
    Py_CLEAR(st->ActorCancelled);
    memset(&st->hook, 0, sizeof st->hook);
    return 0;
}

static void tether_free(void *m)
{
    tether_clear(m);
}

/* Per-module state only (no static Python objects): it loads in
 * sub-interpreters with their own GIL (PEP 684), where subint actors
 * import it for their own supervisors. */
static PyModuleDef_Slot tether_slots[] = {
    {Py_mod_exec, tether_exec},
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
    {0, NULL},
};

static PyModuleDef tether_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "tether",
    .m_doc = "Supervise actors with bounded teardown (libtether). See docs/python.md.",
    .m_size = sizeof(modstate),
    .m_methods = tether_methods,
    .m_slots = tether_slots,
    .m_traverse = tether_traverse,
    .m_clear = tether_clear,
    .m_free = tether_free,
};

PyMODINIT_FUNC PyInit_tether(void);
PyMODINIT_FUNC PyInit_tether(void)
{
    return PyModuleDef_Init(&tether_def);
}
