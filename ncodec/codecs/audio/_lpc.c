/*
 * Integer linear prediction for the lossless audio codec: the encoder's residual and
 * the decoder's inverse, with the same 64-bit arithmetic so they agree bit for bit.
 *
 * prediction[i] = floor((sum_j coefs[j] * x[i - 1 - j]) / 2^shift), residual = x - prediction.
 * Samples before the block come from `history` (oldest first, length = order).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

static inline int64_t
floor_shift(int64_t v, int shift)
{
    return v >= 0 ? (v >> shift) : -(((-v) - 1) >> shift) - 1;
}

static int
get_args(PyObject *args, Py_buffer *in, Py_buffer *hist, Py_buffer *coefs, int *shift, Py_buffer *out)
{
    if (!PyArg_ParseTuple(args, "y*y*y*iw*", in, hist, coefs, shift, out)) return -1;
    const Py_buffer *all[4] = {in, hist, coefs, out};
    for (int k = 0; k < 4; ++k) {
        if (all[k]->itemsize != 4 || !PyBuffer_IsContiguous(all[k], 'C')) {
            PyErr_SetString(PyExc_TypeError, "all arrays must be C-contiguous int32");
            return -1;
        }
    }
    if (hist->len != coefs->len || out->len != in->len || *shift < 0 || *shift > 62 || coefs->len / 4 > 64) {
        PyErr_SetString(PyExc_ValueError, "history and coefs need the same length (<= 64), out the input's; shift 0..62");
        return -1;
    }
    return 0;
}

/* mode 0: out = x - pred(x); mode 1: out = r + pred(out), i.e. the inverse. */
static PyObject *
run(PyObject *args, int restore)
{
    Py_buffer in = {0}, hist = {0}, coefs = {0}, out = {0};
    int shift;
    if (get_args(args, &in, &hist, &coefs, &shift, &out)) {
        PyBuffer_Release(&in); PyBuffer_Release(&hist); PyBuffer_Release(&coefs); PyBuffer_Release(&out);
        return NULL;
    }
    const Py_ssize_t n = in.len / 4, order = coefs.len / 4;
    const int32_t *x = (const int32_t *)in.buf, *h = (const int32_t *)hist.buf, *c = (const int32_t *)coefs.buf;
    int32_t *y = (int32_t *)out.buf;
    const int32_t *sig = restore ? y : x; /* the signal the predictor reads */
    int overflow = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; ++i) {
        int64_t acc = 0;
        for (Py_ssize_t j = 0; j < order; ++j) {
            const Py_ssize_t t = i - 1 - j;
            acc += (int64_t)c[j] * (t >= 0 ? sig[t] : h[order + t]);
        }
        const int64_t v = restore ? (int64_t)x[i] + floor_shift(acc, shift) : (int64_t)x[i] - floor_shift(acc, shift);
        if (v < INT32_MIN || v > INT32_MAX) { overflow = 1; break; }
        y[i] = (int32_t)v;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&in); PyBuffer_Release(&hist); PyBuffer_Release(&coefs); PyBuffer_Release(&out);
    if (overflow) {
        PyErr_SetString(PyExc_ValueError, "linear prediction overflowed 32 bits");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *residual(PyObject *self, PyObject *args) { return run(args, 0); }
static PyObject *restore(PyObject *self, PyObject *args) { return run(args, 1); }

static PyMethodDef methods[] = {
    {"residual", residual, METH_VARARGS, "residual(x, history, coefs, shift, out): out = x - prediction"},
    {"restore", restore, METH_VARARGS, "restore(r, history, coefs, shift, out): out = r + prediction(out)"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_lpc", "Integer LPC filters.", -1, methods};

PyMODINIT_FUNC PyInit__lpc(void) { return PyModule_Create(&module); }
