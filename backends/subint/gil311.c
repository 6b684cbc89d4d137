/* backends/subint/gil311.c - CPython 3.11 only: forward a starved GIL
 * request to the interpreter that holds the GIL.
 *
 * Why. On 3.11 every interpreter shares one GIL, but the "please drop it"
 * request is per interpreter: a thread that waits longer than the switch
 * interval sets the drop request of ITS OWN interpreter
 * (SET_GIL_DROP_REQUEST(tstate->interp) in Python/ceval_gil.h), and the
 * holder only ever reads ITS OWN interpreter's request. A thread of another
 * interpreter spinning on the CPU therefore never hears it: a busy actor
 * held a sibling's spawn for seconds. CPython 3.12+ fixed this by itself
 * (the note in ../shared/notes/cpython-3.13-3.14.md).
 *
 * What. subint_gil_forward() looks, with the GIL's own mutex held, at who
 * holds the GIL and whether a thread of another interpreter has asked for
 * it; if so it sets the holder's interpreter's drop request, exactly as a
 * waiter of that interpreter would. The holder then drops the GIL at its
 * next bytecode boundary, and (FORCE_SWITCHING) waits until a waiter has
 * taken it.
 *
 * A request must only be forwarded while its waiter waits: a holder told to
 * drop waits, without a time limit, for somebody to take the GIL. Only a
 * waiter sets its interpreter's request, after each interval it waited in
 * vain, and it clears it (under gil->mutex, which we hold) when it gets the
 * GIL: so a request seen set is a waiter still waiting, with one exception,
 * our own. A request we forwarded stays set when the holder leaves without
 * reading it (a thread state deleted with the GIL held); forwarding it on
 * stalled spawns for seconds (error.many-fail caught it). So an interpreter
 * we forwarded to is remembered until its request is read; if its request
 * is still set once it no longer holds the GIL, it is cleared instead of
 * forwarded (a real waiter there sets it again an interval later).
 *
 * This is the only file of tether built with Py_BUILD_CORE: it reads
 * CPython 3.11's internal structures, from the headers of the very Python it
 * is compiled against (python3.11-dev ships them). It takes two locks and
 * never waits for either: the interpreter list's lock with a 1 ms limit,
 * the GIL's mutex with trylock (both are held by CPython only for a few
 * instructions); a busy lock means "try again at the next sample". */
#include <patchlevel.h> /* PY_VERSION_HEX, before Python.h decides what it declares */

#if PY_VERSION_HEX < 0x030C0000

#define Py_BUILD_CORE 1
#include <Python.h>
#include <internal/pycore_interp.h>
#include <internal/pycore_runtime.h>
#include <pthread.h>

#include "subint.h"

/* Interpreters we forwarded a request to whose request may still be set
 * (by id: ids are never reused). Only the monitor thread touches this (one
 * monitor at a time, handed over under the backend's g_lock). */
#define FWD_MAX 64
static int64_t fwd[FWD_MAX];
static int nfwd;

static int fwd_find(int64_t id)
{
    for (int i = 0; i < nfwd; i++)
        if (fwd[i] == id)
            return i;
    return -1;
}

static void fwd_drop(int i)
{
    fwd[i] = fwd[--nfwd];
}

/* The live interpreter that owns the thread state `holder`, found by
 * comparing addresses along the thread lists, never by reading *holder:
 * Py_EndInterpreter frees its own thread state while its thread still holds
 * the GIL, so last_holder can point at freed memory (ASan saw it in
 * restart.hundred). A thread state is unlinked under interpreters.mutex
 * (held by our caller) before it is freed, so one still linked is live. */
static PyInterpreterState *owner_of(_PyRuntimeState *rt, const PyThreadState *holder)
{
    for (PyInterpreterState *i = rt->interpreters.head; i; i = i->next)
        for (PyThreadState *t = i->threads.head; t; t = t->next)
            if (t == holder)
                return i;
    return NULL;
}

int subint_gil_forward(void)
{
    _PyRuntimeState *rt = &_PyRuntime;
    /* the interpreter list: interpreters are unlinked (and then freed) under
     * this lock, so the walk below sees only live ones */
    if (PyThread_acquire_lock_timed(rt->interpreters.mutex, 1000, 0) != PY_LOCK_ACQUIRED)
        return 0;
    int forwarded = 0;
    struct _gil_runtime_state *gil = &rt->ceval.gil;
    if (pthread_mutex_trylock(&gil->mutex) == 0) {
        /* With gil->mutex held nobody takes or drops the GIL: while it is
         * locked, last_holder is the holder's thread state -- which may
         * already be freed (see owner_of), so it is only compared. */
        PyThreadState *holder = NULL;
        if (_Py_atomic_load_relaxed(&gil->locked) > 0)
            holder = (PyThreadState *)_Py_atomic_load_relaxed(&gil->last_holder);
        PyInterpreterState *h = holder ? owner_of(rt, holder) : NULL;
        int starved = 0;
        for (PyInterpreterState *i = rt->interpreters.head; i; i = i->next) {
            int set = _Py_atomic_load_relaxed(&i->ceval.gil_drop_request) != 0;
            int k = fwd_find(i->id);
            if (k >= 0 && !set)
                fwd_drop(k); /* our forwarded request was read */
            if (!set || i == h)
                continue;
            if (k >= 0) {
                /* Maybe ours, left unread by a holder that went away (a
                 * thread state deleted with the GIL held): clear it. If a
                 * waiter of that interpreter set it too, it sets it again
                 * after its next interval, and then it is forwarded. */
                _Py_atomic_store_relaxed(&i->ceval.gil_drop_request, 0);
                fwd_drop(k);
                continue;
            }
            /* Only a waiter sets it, and with gil->mutex held a waiter that
             * set it is still waiting (it clears it, under this mutex, when
             * it gets the GIL). */
            starved = 1;
        }
        if (h && starved && !_Py_atomic_load_relaxed(&h->ceval.gil_drop_request) &&
            (fwd_find(h->id) >= 0 || nfwd < FWD_MAX)) {
            if (fwd_find(h->id) < 0)
                fwd[nfwd++] = h->id;
            _Py_atomic_store_relaxed(&h->ceval.gil_drop_request, 1);
            _Py_atomic_store_relaxed(&h->ceval.eval_breaker, 1);
            forwarded = 1;
        }
        /* forget interpreters that are gone */
        for (int k = 0; k < nfwd;) {
            PyInterpreterState *i = rt->interpreters.head;
            while (i && i->id != fwd[k])
                i = i->next;
            if (i)
                k++;
            else
                fwd_drop(k);
        }
        pthread_mutex_unlock(&gil->mutex);
    }
    PyThread_release_lock(rt->interpreters.mutex);
    return forwarded;
}

#else
typedef int subint_gil311_unused; /* an empty file is not valid C */
#endif
