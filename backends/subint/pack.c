/* backends/subint/pack.c - Python values to MessagePack and back (msgpack-c).
 *
 * What crosses: None, bool, int (int64 or uint64 range), float, str (UTF-8),
 * bytes/bytearray, list/tuple (as arrays; they come back as lists) and dict
 * (keys of those types). Anything else (a socket, a lambda) is a TypeError
 * raised in the actor, never a crash. Nesting is limited so that a
 * self-referencing list is an error too. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <msgpack.h>

#include "subint.h"

#define MAX_DEPTH 64

static int pack_obj(msgpack_packer *pk, PyObject *o, int depth);

static int pack_fail(int rc)
{
    if (rc != 0 && !PyErr_Occurred())
        PyErr_NoMemory();
    return rc != 0 ? -1 : 0;
}

static int pack_int(msgpack_packer *pk, PyObject *o)
{
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (!overflow)
        return pack_fail(msgpack_pack_int64(pk, v));
    if (overflow > 0) {
        unsigned long long u = PyLong_AsUnsignedLongLong(o);
        if (!PyErr_Occurred())
            return pack_fail(msgpack_pack_uint64(pk, u));
    }
    PyErr_Clear();
    PyErr_SetString(PyExc_OverflowError, "tether: int out of the 64-bit range cannot be sent");
    return -1;
}

static int pack_seq(msgpack_packer *pk, PyObject *o, int depth)
{
    PyObject *fast = PySequence_Fast(o, "sequence");
    if (!fast)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    int rc = pack_fail(msgpack_pack_array(pk, (size_t)n));
    for (Py_ssize_t i = 0; rc == 0 && i < n; i++)
        rc = pack_obj(pk, PySequence_Fast_GET_ITEM(fast, i), depth + 1);
    Py_DECREF(fast);
    return rc;
}

static int pack_dict(msgpack_packer *pk, PyObject *o, int depth)
{
    if (pack_fail(msgpack_pack_map(pk, (size_t)PyDict_Size(o))))
        return -1;
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (PyDict_Next(o, &pos, &k, &v))
        if (pack_obj(pk, k, depth + 1) || pack_obj(pk, v, depth + 1))
            return -1;
    return 0;
}

static int pack_obj(msgpack_packer *pk, PyObject *o, int depth)
{
    if (depth > MAX_DEPTH) {
        PyErr_SetString(PyExc_ValueError, "tether: value nested too deeply to send");
        return -1;
    }
    if (o == Py_None)
        return pack_fail(msgpack_pack_nil(pk));
    if (PyBool_Check(o))
        return pack_fail(o == Py_True ? msgpack_pack_true(pk) : msgpack_pack_false(pk));
    if (PyLong_Check(o))
        return pack_int(pk, o);
    if (PyFloat_Check(o))
        return pack_fail(msgpack_pack_double(pk, PyFloat_AS_DOUBLE(o)));
    if (PyUnicode_Check(o)) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(o, &n);
        if (!s)
            return -1;
        return pack_fail(msgpack_pack_str(pk, (size_t)n) || msgpack_pack_str_body(pk, s, (size_t)n));
    }
    if (PyBytes_Check(o) || PyByteArray_Check(o)) {
        char *s = PyBytes_Check(o) ? PyBytes_AS_STRING(o) : PyByteArray_AS_STRING(o);
        size_t n = (size_t)(PyBytes_Check(o) ? PyBytes_GET_SIZE(o) : PyByteArray_GET_SIZE(o));
        return pack_fail(msgpack_pack_bin(pk, n) || msgpack_pack_bin_body(pk, s, n));
    }
    if (PyList_Check(o) || PyTuple_Check(o))
        return pack_seq(pk, o, depth);
    if (PyDict_Check(o))
        return pack_dict(pk, o, depth);
    PyErr_Format(PyExc_TypeError,
                 "tether: cannot send an object of type '%.100s' (only None, bool, int, float, "
                 "str, bytes, list, tuple and dict cross the channel)",
                 Py_TYPE(o)->tp_name);
    return -1;
}

PyObject *subint_pack(PyObject *obj)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    PyObject *out = NULL;
    if (pack_obj(&pk, obj, 0) == 0)
        out = PyBytes_FromStringAndSize(sb.data ? sb.data : "", (Py_ssize_t)sb.size);
    msgpack_sbuffer_destroy(&sb);
    return out;
}

static PyObject *to_py(const msgpack_object *o, int depth)
{
    if (depth > MAX_DEPTH) {
        PyErr_SetString(PyExc_ValueError, "tether: received value nested too deeply");
        return NULL;
    }
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: Py_RETURN_NONE;
    case MSGPACK_OBJECT_BOOLEAN: return PyBool_FromLong(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER: return PyLong_FromUnsignedLongLong(o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return PyLong_FromLongLong(o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return PyFloat_FromDouble(o->via.f64);
    case MSGPACK_OBJECT_STR:
        return PyUnicode_DecodeUTF8(o->via.str.ptr, (Py_ssize_t)o->via.str.size, "surrogateescape");
    case MSGPACK_OBJECT_BIN:
        return PyBytes_FromStringAndSize(o->via.bin.ptr, (Py_ssize_t)o->via.bin.size);
    case MSGPACK_OBJECT_ARRAY: {
        PyObject *l = PyList_New((Py_ssize_t)o->via.array.size);
        for (uint32_t i = 0; l && i < o->via.array.size; i++) {
            PyObject *v = to_py(&o->via.array.ptr[i], depth + 1);
            if (!v) {
                Py_CLEAR(l);
                break;
            }
            PyList_SET_ITEM(l, (Py_ssize_t)i, v);
        }
        return l;
    }
    case MSGPACK_OBJECT_MAP: {
        PyObject *d = PyDict_New();
        for (uint32_t i = 0; d && i < o->via.map.size; i++) {
            PyObject *k = to_py(&o->via.map.ptr[i].key, depth + 1);
            PyObject *v = k ? to_py(&o->via.map.ptr[i].val, depth + 1) : NULL;
            if (!v || PyDict_SetItem(d, k, v) != 0)
                Py_CLEAR(d);
            Py_XDECREF(k);
            Py_XDECREF(v);
        }
        return d;
    }
    default:
        PyErr_SetString(PyExc_ValueError, "tether: received a msgpack extension type");
        return NULL;
    }
}

PyObject *subint_unpack(const char *buf, size_t len)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    PyObject *out = NULL;
    msgpack_unpack_return r = msgpack_unpack_next(&u, buf, len, &off);
    if (r == MSGPACK_UNPACK_SUCCESS && off == len)
        out = to_py(&u.data, 0);
    else if (r == MSGPACK_UNPACK_NOMEM_ERROR)
        PyErr_NoMemory();
    else
        PyErr_Format(PyExc_ValueError,
                     "tether: the message (%zu bytes) is not exactly one msgpack value "
                     "(use recv_bytes() for raw bytes)", len);
    msgpack_unpacked_destroy(&u);
    return out;
}
