/* urunc.host._linux: the Linux calls Python 3.11's os module lacks.
 *
 * setns, unshare, mount, prctl, a seccomp filter and openat2, each a thin wrapper that
 * raises OSError(errno) on failure. It exists for start-up time: the same
 * calls through ctypes cost ~4.5 ms of imports in every container init,
 * this module ~0.1 ms. urunc.host.syscalls falls back to ctypes when it is
 * not built (a source checkout), so behaviour is the same either way.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static PyObject *fail(void) { return PyErr_SetFromErrno(PyExc_OSError); }

static PyObject *do_setns(PyObject *self, PyObject *args) {
    int fd, nstype, rc;
    if (!PyArg_ParseTuple(args, "ii:setns", &fd, &nstype)) return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = setns(fd, nstype);
    Py_END_ALLOW_THREADS
    if (rc != 0) return fail();
    Py_RETURN_NONE;
}

static PyObject *do_unshare(PyObject *self, PyObject *args) {
    int flags, rc;
    if (!PyArg_ParseTuple(args, "i:unshare", &flags)) return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = unshare(flags);
    Py_END_ALLOW_THREADS
    if (rc != 0) return fail();
    Py_RETURN_NONE;
}

/* mount(source or None, target, fstype or None, flags, data or None) */
static PyObject *do_mount(PyObject *self, PyObject *args) {
    const char *source, *target, *fstype, *data;
    unsigned long flags;
    int rc;
    if (!PyArg_ParseTuple(args, "zszkz:mount", &source, &target, &fstype, &flags, &data)) return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = mount(source, target, fstype, flags, data);
    Py_END_ALLOW_THREADS
    if (rc != 0) return fail();
    Py_RETURN_NONE;
}

/* prctl(option, arg2): the options urunc uses take one integer argument. */
static PyObject *do_prctl(PyObject *self, PyObject *args) {
    int option;
    unsigned long arg;
    if (!PyArg_ParseTuple(args, "ik:prctl", &option, &arg)) return NULL;
    if (prctl(option, arg, 0UL, 0UL, 0UL) != 0) return fail();
    Py_RETURN_NONE;
}

/* seccomp_filter(program): PROGRAM is the bytes of a struct sock_filter array. */
static PyObject *do_seccomp_filter(PyObject *self, PyObject *args) {
    Py_buffer program;
    struct sock_fprog fprog;
    int rc;
    if (!PyArg_ParseTuple(args, "y*:seccomp_filter", &program)) return NULL;
    if (program.len == 0 || program.len % sizeof(struct sock_filter) != 0 ||
        program.len / sizeof(struct sock_filter) > BPF_MAXINSNS) {
        PyBuffer_Release(&program);
        PyErr_Format(PyExc_ValueError, "seccomp program of %zd bytes is not 1 to %d instructions",
                     program.len, BPF_MAXINSNS);
        return NULL;
    }
    fprog.len = (unsigned short)(program.len / sizeof(struct sock_filter));
    fprog.filter = (struct sock_filter *)program.buf;
    rc = prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog, 0UL, 0UL);
    PyBuffer_Release(&program);
    if (rc != 0) return fail();
    Py_RETURN_NONE;
}

/* openat2(dirfd, path, flags, resolve): an fd, or OSError. glibc 2.36 has no wrapper. */
static PyObject *do_openat2(PyObject *self, PyObject *args) {
    int dirfd, flags;
    unsigned long long resolve;
    PyObject *path;
    struct open_how how = {0};
    long fd;
    if (!PyArg_ParseTuple(args, "iO&iK:openat2", &dirfd, PyUnicode_FSConverter, &path, &flags, &resolve))
        return NULL;
    how.flags = (unsigned long long)(unsigned int)flags;
    how.resolve = resolve;
    Py_BEGIN_ALLOW_THREADS
    fd = syscall(SYS_openat2, dirfd, PyBytes_AS_STRING(path), &how, sizeof(how));
    Py_END_ALLOW_THREADS
    Py_DECREF(path);
    if (fd < 0) return fail();
    return PyLong_FromLong(fd);
}

static PyMethodDef methods[] = {
    {"setns", do_setns, METH_VARARGS, "setns(fd, nstype)"},
    {"unshare", do_unshare, METH_VARARGS, "unshare(flags)"},
    {"mount", do_mount, METH_VARARGS, "mount(source, target, fstype, flags, data)"},
    {"prctl", do_prctl, METH_VARARGS, "prctl(option, arg2)"},
    {"seccomp_filter", do_seccomp_filter, METH_VARARGS, "seccomp_filter(program: bytes)"},
    {"openat2", do_openat2, METH_VARARGS, "openat2(dirfd, path, flags, resolve) -> fd"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_linux", "Linux calls Python's os module lacks.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__linux(void) { return PyModule_Create(&module); }
