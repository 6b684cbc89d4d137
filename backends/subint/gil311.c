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
 * next bytecode boundary, and (FORCE_SWITCHING) waits until the waiter has
 * taken it. A request is only ever forwarded while a waiter is waiting: with
 * gil->mutex held, a set request means its waiter is still in take_gil (the
 * waiter clears it, under that mutex, when it gets the GIL), so the holder's
 * forced switch always finds someone to switch to.
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
         * locked, last_holder is the holder, and its thread state cannot be
         * freed (a thread state is freed only after its thread dropped the
         * GIL, which needs this mutex). */
        if (_Py_atomic_load_relaxed(&gil->locked) > 0) {
            PyThreadState *holder = (PyThreadState *)_Py_atomic_load_relaxed(&gil->last_holder);
            PyInterpreterState *h = holder ? holder->interp : NULL;
            int starved = 0;
            for (PyInterpreterState *i = rt->interpreters.head; i && h; i = i->next)
                if (i != h && _Py_atomic_load_relaxed(&i->ceval.gil_drop_request))
                    starved = 1;
            if (starved && !_Py_atomic_load_relaxed(&h->ceval.gil_drop_request)) {
                _Py_atomic_store_relaxed(&h->ceval.gil_drop_request, 1);
                _Py_atomic_store_relaxed(&h->ceval.eval_breaker, 1);
                forwarded = 1;
            }
        }
        pthread_mutex_unlock(&gil->mutex);
    }
    PyThread_release_lock(rt->interpreters.mutex);
    return forwarded;
}

#else
typedef int subint_gil311_unused; /* an empty file is not valid C */
#endif
