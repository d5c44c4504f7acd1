#ifndef SAAT_CPYTHON_SHIM_H
#define SAAT_CPYTHON_SHIM_H
/* glibc headers first: Python.h's feature macros would otherwise change fd_set & co.
   inside this clang module only and clash with Dispatch/XCTest: glibc first, Python.h after. */
#include <stdio.h>
#include <sys/types.h>
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* What Swift cannot import from Python.h: brace macros, address-of macros, C mutable globals. */
static inline PyModuleDef_Base saat_moduledef_head_init(void) { PyModuleDef_Base b = PyModuleDef_HEAD_INIT; return b; }
static inline PyObject *saat_none(void) { Py_INCREF(Py_None); return Py_None; }
static inline PyObject *saat_true(void) { Py_INCREF(Py_True); return Py_True; }
static inline PyObject *saat_false(void) { Py_INCREF(Py_False); return Py_False; }
static inline int saat_is_none(PyObject *o) { return o == Py_None; }
static inline void saat_incref(PyObject *o) { Py_INCREF(o); }
static inline void saat_decref(PyObject *o) { Py_DECREF(o); }
static inline void saat_xdecref(PyObject *o) { Py_XDECREF(o); }
static inline PyObject *saat_exc_value_error(void) { return PyExc_ValueError; }
static inline PyObject *saat_exc_type_error(void) { return PyExc_TypeError; }
static inline PyObject *saat_exc_runtime_error(void) { return PyExc_RuntimeError; }
static inline PyObject *saat_exc_memory_error(void) { return PyExc_MemoryError; }
static inline PyObject *saat_exc_keyboard_interrupt(void) { return PyExc_KeyboardInterrupt; }
static inline PyObject *saat_exc_os_error(void) { return PyExc_OSError; }
static inline int saat_is_unicode(PyObject *o) { return PyUnicode_Check(o); }
static inline int saat_is_long(PyObject *o) { return PyLong_Check(o); }
static inline int saat_is_float(PyObject *o) { return PyFloat_Check(o); }
static inline int saat_is_bool(PyObject *o) { return PyBool_Check(o); }
static inline int saat_is_callable(PyObject *o) { return PyCallable_Check(o); }
static inline int saat_is_tuple(PyObject *o) { return PyTuple_Check(o); }
static inline int saat_is_dict(PyObject *o) { return PyDict_Check(o); }
static inline int saat_is_complex(PyObject *o) { return PyComplex_Check(o); }
static inline int saat_is_index(PyObject *o) { return PyIndex_Check(o); }
static inline char *saat_bytearray_data(PyObject *o) { return PyByteArray_AS_STRING(o); }
static inline PyObject *saat_false_borrowed(void) { return Py_False; }
static inline Py_ssize_t saat_tuple_size(PyObject *o) { return PyTuple_GET_SIZE(o); }
static inline PyObject *saat_tuple_item(PyObject *o, Py_ssize_t i) { return PyTuple_GET_ITEM(o, i); }
#endif
