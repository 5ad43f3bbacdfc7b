/*
 * Native lane-interleaved rANS coder for ncodec.
 *
 * The stream format is specified in the docstring of ncodec/entropy/rans.py;
 * this file is the reference CPU implementation of that contract. Everything read from a stream is bounds-checked: a corrupt
 * or hostile stream makes a call raise ValueError, never read or write out of
 * bounds, and never allocate more than the stream's own size justifies.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define RANS_L ((uint64_t)1 << 32) /* lower bound of the 64-bit state interval */
#define HEADER_BYTES 16            /* magic(2) version(1) precision(1) lanes(4) n(8) */
#define LANE_BYTES 12              /* u64 state + u32 word count */
#define FORMAT_VERSION 1
#define ESC_LEN_BITS 6             /* bit length of an escaped value */
#define MAX_ESCAPE_BITS 34         /* |v - offset| < 2^32, so raw < 2^34 */
#define MAX_LANES (1u << 24)
#define MAX_LUT_ENTRIES (1u << 22)  /* per decoder, over all tables */

/* ------------------------------------------------------------------ tables */

typedef struct {
    const int32_t *cdf;   /* [ntables, stride], cdf[t][0]=0, cdf[t][size+1]=1<<precision */
    const int32_t *sizes; /* in-support symbol count per table; symbol `size` is the escape */
    const int32_t *offsets;
    Py_ssize_t stride;
    Py_ssize_t ntables;
    int precision;
} tables_t;

static int
check_int32_buffer(Py_buffer *b, const char *what)
{
    if (b->itemsize != 4 || !PyBuffer_IsContiguous(b, 'C')) {
        PyErr_Format(PyExc_TypeError, "%s must be a C-contiguous 32-bit integer buffer", what);
        return -1;
    }
    return 0;
}

/* Validate the tables once per call: every later access is then in bounds. */
static int
validate_tables(const tables_t *t)
{
    if (t->precision < 1 || t->precision > 16) {
        PyErr_Format(PyExc_ValueError, "precision must be in 1..16, got %d", t->precision);
        return -1;
    }
    if (t->ntables < 1) {
        PyErr_SetString(PyExc_ValueError, "at least one CDF table is required");
        return -1;
    }
    const int64_t total = (int64_t)1 << t->precision;
    for (Py_ssize_t k = 0; k < t->ntables; ++k) {
        const int64_t n = t->sizes[k];
        if (n < 1 || n + 2 > t->stride || n + 1 > total) {
            PyErr_Format(PyExc_ValueError, "table %zd: size %lld does not fit stride %zd / precision %d",
                         k, (long long)n, t->stride, t->precision);
            return -1;
        }
        const int32_t *c = t->cdf + k * t->stride;
        if (c[0] != 0 || c[n + 1] != total) {
            PyErr_Format(PyExc_ValueError, "table %zd: CDF must start at 0 and end at %lld", k, (long long)total);
            return -1;
        }
        for (int64_t s = 0; s <= n; ++s) {
            if (c[s + 1] <= c[s]) {
                PyErr_Format(PyExc_ValueError, "table %zd: symbol %lld has zero frequency", k, (long long)s);
                return -1;
            }
        }
    }
    return 0;
}

/* -------------------------------------------------------------- encoding */

/* Push one symbol of frequency `freq` at `start` (out of 1<<precision). Words go backwards. */
static inline uint64_t
enc_put(uint64_t x, uint32_t **ptr, uint32_t start, uint32_t freq, int precision)
{
    if (x >= ((uint64_t)freq << (64 - precision))) {
        *--(*ptr) = (uint32_t)x;
        x >>= 32;
    }
    return ((x / freq) << precision) + (x % freq) + start;
}

/* Push `bits` (1..16) raw bits: a uniform symbol of precision `bits`. */
static inline uint64_t
enc_bits(uint64_t x, uint32_t **ptr, uint32_t value, int bits)
{
    if (x >= ((uint64_t)1 << (64 - bits))) {
        *--(*ptr) = (uint32_t)x;
        x >>= 32;
    }
    return (x << bits) | value;
}

/* Map an out-of-support offset symbol u (u < 0 or u >= n; |u| < 2^32) to its escape payload. */
static inline uint64_t
escape_raw(int64_t u, int64_t n)
{
    return u < 0 ? (uint64_t)(2 * (-(u + 1)) + 1) : (uint64_t)(2 * (u - n));
}

static inline int
bit_length(uint64_t v)
{
    int nb = 0;
    while (v) { ++nb; v >>= 1; }
    return nb;
}

static void
put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}

static uint32_t
get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

enum { ENC_OK = 0, ENC_BAD_INDEX, ENC_OVER_BUDGET };

/*
 * Encode backwards; symbol i belongs to lane i % L. Lane j's words are written downwards
 * from words + lane_end[j]; its region holds one word per symbol plus 4 per escape in
 * `esc_left[j]` escapes. Returns ENC_OVER_BUDGET when a lane meets more escapes than that.
 */
static int
encode_lanes(const tables_t *t, const int32_t *S, const int32_t *I, Py_ssize_t n, uint32_t L,
             uint64_t *state, uint32_t **ptr, int64_t *esc_left, Py_ssize_t *bad_at)
{
    const int P = t->precision;
    uint32_t j = n > 0 ? (uint32_t)((n - 1) % L) : 0;
    for (Py_ssize_t i = n - 1; i >= 0; --i) {
        const int32_t k = I[i];
        if ((uint64_t)(uint32_t)k >= (uint64_t)t->ntables) { *bad_at = i; return ENC_BAD_INDEX; }
        const int32_t *c = t->cdf + (Py_ssize_t)k * t->stride;
        const int64_t size = t->sizes[k];
        const int64_t v = (int64_t)S[i] - t->offsets[k];
        uint64_t x = state[j];
        if (v >= 0 && v < size) {
            x = enc_put(x, &ptr[j], (uint32_t)c[v], (uint32_t)(c[v + 1] - c[v]), P);
        } else {
            if (--esc_left[j] < 0) return ENC_OVER_BUDGET;
            const uint64_t raw = escape_raw(v, size);
            const int nb = bit_length(raw);
            /* raw's bits below its top bit, as 16-bit chunks from low to high in decode order */
            for (int pos = ((nb - 2) / 16) * 16; nb > 1 && pos >= 0; pos -= 16) {
                const int width = nb - 1 - pos > 16 ? 16 : nb - 1 - pos;
                x = enc_bits(x, &ptr[j], (uint32_t)(raw >> pos) & ((1u << width) - 1), width);
            }
            x = enc_bits(x, &ptr[j], (uint32_t)nb, ESC_LEN_BITS);
            x = enc_put(x, &ptr[j], (uint32_t)c[size], (uint32_t)(c[size + 1] - c[size]), P);
        }
        state[j] = x;
        j = j ? j - 1 : L - 1;
    }
    return ENC_OK;
}

/* Lay out lane regions for `escapes[j]` escapes per lane; returns the word buffer. */
static uint32_t *
alloc_lanes(Py_ssize_t n, uint32_t L, const int64_t *escapes, int64_t *lane_end, int64_t *esc_left,
            uint64_t *state, uint32_t **ptr)
{
    int64_t total = 0;
    for (uint32_t j = 0; j < L; ++j) {
        total += n / L + ((Py_ssize_t)j < n % L) + 4 * escapes[j];
        lane_end[j] = total;
        esc_left[j] = escapes[j];
    }
    uint32_t *words = (uint32_t *)malloc((size_t)(total > 0 ? total : 1) * sizeof(uint32_t));
    if (words)
        for (uint32_t j = 0; j < L; ++j) { state[j] = RANS_L; ptr[j] = words + lane_end[j]; }
    return words;
}

static PyObject *
rans_encode(PyObject *self, PyObject *args)
{
    Py_buffer sym = {0}, idx = {0}, cdf = {0}, sizes = {0}, offs = {0};
    Py_ssize_t stride, lanes_arg;
    int precision;
    PyObject *result = NULL;
    uint64_t *state = NULL;
    uint32_t **ptr = NULL, *words = NULL;
    int64_t *lane_end = NULL, *esc_left = NULL, *escapes = NULL;

    if (!PyArg_ParseTuple(args, "y*y*y*y*y*nin", &sym, &idx, &cdf, &sizes, &offs, &stride, &precision, &lanes_arg))
        return NULL;
    if (check_int32_buffer(&sym, "symbols") || check_int32_buffer(&idx, "table_index") ||
        check_int32_buffer(&cdf, "cdf") || check_int32_buffer(&sizes, "sizes") || check_int32_buffer(&offs, "offsets"))
        goto done;
    const Py_ssize_t n = sym.len / 4;
    if (idx.len / 4 != n) {
        PyErr_SetString(PyExc_ValueError, "symbols and table_index must have the same length");
        goto done;
    }
    tables_t t = {(const int32_t *)cdf.buf, (const int32_t *)sizes.buf, (const int32_t *)offs.buf,
                  stride, sizes.len / 4, precision};
    if (stride < 3 || offs.len != sizes.len || cdf.len / 4 != t.ntables * stride) {
        PyErr_SetString(PyExc_ValueError, "cdf must be [ntables, stride] with one size and offset per table");
        goto done;
    }
    if (validate_tables(&t)) goto done;
    if (lanes_arg < 1 || (uint64_t)lanes_arg > MAX_LANES || (n > 0 && lanes_arg > n) || (n == 0 && lanes_arg != 1)) {
        PyErr_Format(PyExc_ValueError, "lanes must be in 1..min(n, 2^24), got %zd", lanes_arg);
        goto done;
    }
    const uint32_t L = (uint32_t)lanes_arg;
    const int32_t *S = (const int32_t *)sym.buf, *I = (const int32_t *)idx.buf;
    lane_end = (int64_t *)malloc(L * sizeof(int64_t));
    esc_left = (int64_t *)malloc(L * sizeof(int64_t));
    escapes = (int64_t *)calloc(L, sizeof(int64_t));
    state = (uint64_t *)malloc(L * sizeof(uint64_t));
    ptr = (uint32_t **)malloc(L * sizeof(uint32_t *));
    if (!lane_end || !esc_left || !escapes || !state || !ptr) { PyErr_NoMemory(); goto done; }

    /* First try: room for one escape in 32 symbols per lane (escapes are rare tails). */
    for (uint32_t j = 0; j < L; ++j) escapes[j] = (n / L) / 32 + 2;
    if (!(words = alloc_lanes(n, L, escapes, lane_end, esc_left, state, ptr))) { PyErr_NoMemory(); goto done; }
    int status;
    Py_ssize_t bad_at = -1;
    Py_BEGIN_ALLOW_THREADS
    status = encode_lanes(&t, S, I, n, L, state, ptr, esc_left, &bad_at);
    Py_END_ALLOW_THREADS
    if (status == ENC_OVER_BUDGET) {
        /* Many escapes: count them exactly, then encode again. */
        free(words);
        memset(escapes, 0, L * sizeof(int64_t));
        uint32_t j = 0;
        for (Py_ssize_t i = 0; i < n; ++i) {
            const int32_t k = I[i];
            if ((uint64_t)(uint32_t)k < (uint64_t)t.ntables) {
                const int64_t v = (int64_t)S[i] - t.offsets[k];
                escapes[j] += !(v >= 0 && v < t.sizes[k]);
            }
            j = (j + 1 == L) ? 0 : j + 1;
        }
        if (!(words = alloc_lanes(n, L, escapes, lane_end, esc_left, state, ptr))) { PyErr_NoMemory(); goto done; }
        Py_BEGIN_ALLOW_THREADS
        status = encode_lanes(&t, S, I, n, L, state, ptr, esc_left, &bad_at);
        Py_END_ALLOW_THREADS
    }
    if (status == ENC_BAD_INDEX) {
        PyErr_Format(PyExc_ValueError, "table_index[%zd] = %d is outside 0..%zd", bad_at, I[bad_at], t.ntables - 1);
        goto done;
    }

    /* Layout: header, states[L], counts[L], then each lane's words in decode order. */
    {
        int64_t total_words = 0;
        for (uint32_t j = 0; j < L; ++j) total_words += lane_end[j] - (ptr[j] - words);
        const int64_t nbytes = HEADER_BYTES + LANE_BYTES * (int64_t)L + 4 * total_words;
        result = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)nbytes);
        if (!result) goto done;
        uint8_t *out = (uint8_t *)PyBytes_AS_STRING(result);
        out[0] = 'N'; out[1] = 'R'; out[2] = FORMAT_VERSION; out[3] = (uint8_t)precision;
        put_le32(out + 4, L);
        put_le32(out + 8, (uint32_t)((uint64_t)n & 0xFFFFFFFFu));
        put_le32(out + 12, (uint32_t)((uint64_t)n >> 32));
        uint8_t *st = out + HEADER_BYTES, *cnt = st + 8 * (size_t)L, *w = cnt + 4 * (size_t)L;
        for (uint32_t j = 0; j < L; ++j) {
            const uint32_t *begin = ptr[j], *end = words + lane_end[j];
            put_le32(st + 8 * (size_t)j, (uint32_t)state[j]);
            put_le32(st + 8 * (size_t)j + 4, (uint32_t)(state[j] >> 32));
            put_le32(cnt + 4 * (size_t)j, (uint32_t)(end - begin));
            for (const uint32_t *p = begin; p < end; ++p, w += 4) put_le32(w, *p);
        }
    }

done:
    free(state); free(ptr); free(words); free(lane_end); free(esc_left); free(escapes);
    PyBuffer_Release(&sym); PyBuffer_Release(&idx); PyBuffer_Release(&cdf);
    PyBuffer_Release(&sizes); PyBuffer_Release(&offs);
    return result;
}

/* -------------------------------------------------------------- decoding */

typedef struct {
    PyObject_HEAD
    /* owned copies of the tables */
    int32_t *cdf, *sizes, *offsets;
    Py_ssize_t stride, ntables;
    int precision;
    uint16_t *lut;        /* [ntables, 1 << lut_bits]: first candidate symbol per slot bucket */
    int lut_bits;
    /* owned copy of the lane payload */
    uint8_t *payload;
    uint32_t lanes;
    uint64_t *state;
    int64_t *pos, *end;   /* word positions per lane, in units of 32-bit words */
    int64_t n, next;      /* symbols in the stream, symbols decoded so far */
    uint32_t lane;        /* lane of symbol `next` */
} DecoderObject;

static void
decoder_free_buffers(DecoderObject *d)
{
    free(d->cdf); free(d->sizes); free(d->offsets); free(d->lut);
    free(d->payload); free(d->state); free(d->pos); free(d->end);
    d->cdf = d->sizes = d->offsets = NULL; d->lut = NULL; d->payload = NULL;
    d->state = NULL; d->pos = d->end = NULL;
}

static void
decoder_dealloc(DecoderObject *d)
{
    decoder_free_buffers(d);
    Py_TYPE(d)->tp_free((PyObject *)d);
}

static int
build_lut(DecoderObject *d)
{
    int bits = d->precision < 10 ? d->precision : 10;
    while (bits > 0 && (uint64_t)d->ntables << bits > MAX_LUT_ENTRIES) --bits;
    d->lut_bits = bits;
    const int64_t buckets = (int64_t)1 << bits;
    d->lut = (uint16_t *)malloc((size_t)(d->ntables * buckets) * sizeof(uint16_t));
    if (!d->lut) { PyErr_NoMemory(); return -1; }
    const int shift = d->precision - bits;
    for (Py_ssize_t k = 0; k < d->ntables; ++k) {
        const int32_t *c = d->cdf + k * d->stride;
        uint16_t *row = d->lut + k * buckets;
        int32_t s = 0;
        for (int64_t b = 0; b < buckets; ++b) {
            const int64_t slot = b << shift;
            while (c[s + 1] <= slot) ++s;
            row[b] = (uint16_t)s;
        }
    }
    return 0;
}

static int
decoder_init(DecoderObject *d, PyObject *args, PyObject *kw)
{
    Py_buffer data = {0}, cdf = {0}, sizes = {0}, offs = {0};
    Py_ssize_t stride;
    int ret = -1;
    static char *kwlist[] = {"data", "cdf", "sizes", "offsets", "stride", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "y*y*y*y*n", kwlist, &data, &cdf, &sizes, &offs, &stride))
        return -1;
    decoder_free_buffers(d);
    if (check_int32_buffer(&cdf, "cdf") || check_int32_buffer(&sizes, "sizes") || check_int32_buffer(&offs, "offsets"))
        goto done;
    const uint8_t *p = (const uint8_t *)data.buf;
    if (data.len < HEADER_BYTES || p[0] != 'N' || p[1] != 'R') {
        PyErr_SetString(PyExc_ValueError, "not an ncodec rANS stream (bad magic or shorter than its header)");
        goto done;
    }
    if (p[2] != FORMAT_VERSION) {
        PyErr_Format(PyExc_ValueError, "unsupported rANS stream version %d (this build reads %d)", p[2], FORMAT_VERSION);
        goto done;
    }
    d->precision = p[3];
    d->lanes = get_le32(p + 4);
    d->n = (int64_t)((uint64_t)get_le32(p + 8) | ((uint64_t)get_le32(p + 12) << 32));
    d->stride = stride;
    d->ntables = sizes.len / 4;
    if (stride < 3 || offs.len != sizes.len || cdf.len / 4 != d->ntables * stride) {
        PyErr_SetString(PyExc_ValueError, "cdf must be [ntables, stride] with one size and offset per table");
        goto done;
    }
    tables_t t = {(const int32_t *)cdf.buf, (const int32_t *)sizes.buf, (const int32_t *)offs.buf,
                  stride, d->ntables, d->precision};
    if (validate_tables(&t)) goto done;
    if (d->lanes < 1 || d->lanes > MAX_LANES || d->n < 0 || (d->n > 0 && (int64_t)d->lanes > d->n)) {
        PyErr_Format(PyExc_ValueError, "corrupt rANS header: %u lanes for %lld symbols", d->lanes, (long long)d->n);
        goto done;
    }
    const int64_t table_bytes = LANE_BYTES * (int64_t)d->lanes;
    if (data.len - HEADER_BYTES < table_bytes) {
        PyErr_SetString(PyExc_ValueError, "truncated rANS stream: lane table is cut off");
        goto done;
    }
    const int64_t payload_bytes = data.len - HEADER_BYTES - table_bytes;
    d->state = (uint64_t *)malloc(d->lanes * sizeof(uint64_t));
    d->pos = (int64_t *)malloc(d->lanes * sizeof(int64_t));
    d->end = (int64_t *)malloc(d->lanes * sizeof(int64_t));
    d->cdf = (int32_t *)malloc((size_t)cdf.len);
    d->sizes = (int32_t *)malloc((size_t)sizes.len);
    d->offsets = (int32_t *)malloc((size_t)offs.len);
    d->payload = (uint8_t *)malloc((size_t)(payload_bytes > 0 ? payload_bytes : 1));
    if (!d->state || !d->pos || !d->end || !d->cdf || !d->sizes || !d->offsets || !d->payload) {
        PyErr_NoMemory(); goto done;
    }
    memcpy(d->cdf, cdf.buf, (size_t)cdf.len);
    memcpy(d->sizes, sizes.buf, (size_t)sizes.len);
    memcpy(d->offsets, offs.buf, (size_t)offs.len);
    memcpy(d->payload, p + HEADER_BYTES + table_bytes, (size_t)payload_bytes);
    int64_t acc = 0;
    for (uint32_t j = 0; j < d->lanes; ++j) {
        const uint8_t *sp = p + HEADER_BYTES + 8 * (size_t)j;
        d->state[j] = (uint64_t)get_le32(sp) | ((uint64_t)get_le32(sp + 4) << 32);
        if (d->state[j] < RANS_L) {
            PyErr_Format(PyExc_ValueError, "corrupt rANS stream: lane %u starts in an invalid state", j);
            goto done;
        }
        d->pos[j] = acc;
        acc += get_le32(p + HEADER_BYTES + 8 * (size_t)d->lanes + 4 * (size_t)j);
        d->end[j] = acc;
    }
    if (4 * acc != payload_bytes) {
        PyErr_Format(PyExc_ValueError, "corrupt rANS stream: lanes announce %lld payload bytes, stream holds %lld",
                     (long long)(4 * acc), (long long)payload_bytes);
        goto done;
    }
    if (build_lut(d)) goto done;
    d->next = 0;
    d->lane = 0;
    ret = 0;
done:
    if (ret) decoder_free_buffers(d);
    PyBuffer_Release(&data); PyBuffer_Release(&cdf); PyBuffer_Release(&sizes); PyBuffer_Release(&offs);
    return ret;
}

/* Error codes of the decode loop (set outside the GIL-free region). */
enum { DEC_OK = 0, DEC_BAD_INDEX, DEC_UNDERFLOW, DEC_BAD_ESCAPE };

static inline int
dec_refill(DecoderObject *d, uint32_t j, uint64_t *x)
{
    if (*x < RANS_L) {
        if (d->pos[j] >= d->end[j]) return DEC_UNDERFLOW;
        *x = (*x << 32) | get_le32(d->payload + 4 * d->pos[j]++);
    }
    return DEC_OK;
}

static inline int
dec_bits(DecoderObject *d, uint32_t j, uint64_t *x, int bits, uint32_t *value)
{
    *value = (uint32_t)(*x & ((1u << bits) - 1));
    *x >>= bits;
    return dec_refill(d, j, x);
}

static int
decode_run(DecoderObject *d, const int32_t *I, int32_t *out, int64_t count, int64_t *fail_at)
{
    const int P = d->precision;
    const uint32_t mask = (1u << P) - 1;
    const int shift = P - d->lut_bits;
    const int64_t buckets = (int64_t)1 << d->lut_bits;
    uint32_t j = d->lane;
    for (int64_t i = 0; i < count; ++i) {
        const int32_t k = I[i];
        if (k < 0 || k >= d->ntables) { *fail_at = i; return DEC_BAD_INDEX; }
        const int32_t *c = d->cdf + (Py_ssize_t)k * d->stride;
        const int32_t size = d->sizes[k];
        uint64_t x = d->state[j];
        const uint32_t slot = (uint32_t)(x & mask);
        const int64_t b = slot >> shift;
        int32_t lo = d->lut[(int64_t)k * buckets + b];
        int32_t hi = b + 1 < buckets ? d->lut[(int64_t)k * buckets + b + 1] : size;
        while (lo < hi) {
            const int32_t mid = (lo + hi + 1) >> 1;
            if ((uint32_t)c[mid] <= slot) lo = mid; else hi = mid - 1;
        }
        const uint32_t start = (uint32_t)c[lo], freq = (uint32_t)(c[lo + 1] - c[lo]);
        x = (uint64_t)freq * (x >> P) + slot - start;
        int err = dec_refill(d, j, &x);
        if (err) { *fail_at = i; return err; }
        int64_t v;
        if (lo < size) {
            v = lo;
        } else {
            uint32_t nb, chunk;
            if ((err = dec_bits(d, j, &x, ESC_LEN_BITS, &nb))) { *fail_at = i; return err; }
            if (nb > MAX_ESCAPE_BITS) { *fail_at = i; return DEC_BAD_ESCAPE; }
            uint64_t raw = 0;
            if (nb > 0) {
                raw = (uint64_t)1 << (nb - 1);
                for (int pos = 0; pos < (int)nb - 1; pos += 16) {
                    const int width = (int)nb - 1 - pos > 16 ? 16 : (int)nb - 1 - pos;
                    if ((err = dec_bits(d, j, &x, width, &chunk))) { *fail_at = i; return err; }
                    raw |= (uint64_t)chunk << pos;
                }
            }
            v = (raw & 1) ? -(int64_t)((raw - 1) / 2) - 1 : (int64_t)(raw / 2) + size;
        }
        v += d->offsets[k];
        if (v < INT32_MIN || v > INT32_MAX) { *fail_at = i; return DEC_BAD_ESCAPE; }
        out[i] = (int32_t)v;
        d->state[j] = x;
        j = (j + 1 == d->lanes) ? 0 : j + 1;
    }
    d->lane = j;
    return DEC_OK;
}

static PyObject *
decoder_decode(DecoderObject *d, PyObject *args)
{
    Py_buffer idx = {0}, out = {0};
    if (!d->state) { PyErr_SetString(PyExc_ValueError, "decoder is not initialised"); return NULL; }
    if (!PyArg_ParseTuple(args, "y*w*", &idx, &out)) return NULL;
    PyObject *ret = NULL;
    if (check_int32_buffer(&idx, "table_index") || check_int32_buffer(&out, "out")) goto done;
    const int64_t count = idx.len / 4;
    if (out.len / 4 != count) { PyErr_SetString(PyExc_ValueError, "out must have the length of table_index"); goto done; }
    if (count > d->n - d->next) {
        PyErr_Format(PyExc_ValueError, "asked for %lld more symbols but the stream holds only %lld more",
                     (long long)count, (long long)(d->n - d->next));
        goto done;
    }
    int err;
    int64_t fail_at = -1;
    Py_BEGIN_ALLOW_THREADS
    err = decode_run(d, (const int32_t *)idx.buf, (int32_t *)out.buf, count, &fail_at);
    Py_END_ALLOW_THREADS
    if (err == DEC_BAD_INDEX) {
        PyErr_Format(PyExc_ValueError, "table_index[%lld] is outside 0..%zd", (long long)fail_at, d->ntables - 1);
    } else if (err == DEC_UNDERFLOW) {
        PyErr_Format(PyExc_ValueError, "corrupt rANS stream: a lane ran out of words at symbol %lld",
                     (long long)(d->next + fail_at));
    } else if (err == DEC_BAD_ESCAPE) {
        PyErr_Format(PyExc_ValueError, "corrupt rANS stream: invalid escape at symbol %lld", (long long)(d->next + fail_at));
    } else {
        d->next += count;
        ret = Py_None; Py_INCREF(ret);
    }
    if (err) { decoder_free_buffers(d); }
done:
    PyBuffer_Release(&idx); PyBuffer_Release(&out);
    return ret;
}

static PyObject *
decoder_finish(DecoderObject *d, PyObject *Py_UNUSED(ignored))
{
    if (!d->state) { PyErr_SetString(PyExc_ValueError, "decoder is not initialised"); return NULL; }
    if (d->next != d->n) {
        PyErr_Format(PyExc_ValueError, "stream holds %lld symbols, %lld were decoded", (long long)d->n, (long long)d->next);
        return NULL;
    }
    for (uint32_t j = 0; j < d->lanes; ++j) {
        if (d->state[j] != RANS_L || d->pos[j] != d->end[j]) {
            PyErr_Format(PyExc_ValueError, "corrupt rANS stream: lane %u does not end where its encoder began", j);
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

static PyObject *
decoder_get(DecoderObject *d, void *which)
{
    if ((intptr_t)which == 0) return PyLong_FromLongLong(d->n);
    if ((intptr_t)which == 1) return PyLong_FromLongLong(d->next);
    if ((intptr_t)which == 2) return PyLong_FromUnsignedLong(d->lanes);
    return PyLong_FromLong(d->precision);
}

static PyMethodDef decoder_methods[] = {
    {"decode", (PyCFunction)decoder_decode, METH_VARARGS,
     "decode(table_index, out): decode the next len(table_index) symbols into the int32 buffer out."},
    {"finish", (PyCFunction)decoder_finish, METH_NOARGS,
     "finish(): check that every symbol and word was consumed and every lane ended in its initial state."},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef decoder_getset[] = {
    {"n", (getter)decoder_get, NULL, "symbols in the stream", (void *)0},
    {"position", (getter)decoder_get, NULL, "symbols decoded so far", (void *)1},
    {"lanes", (getter)decoder_get, NULL, "interleaved lanes", (void *)2},
    {"precision", (getter)decoder_get, NULL, "CDF precision in bits", (void *)3},
    {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject DecoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ncodec.entropy._rans.Decoder",
    .tp_basicsize = sizeof(DecoderObject),
    .tp_dealloc = (destructor)decoder_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Decoder(data, cdf, sizes, offsets, stride): incremental decoder of one rANS stream.",
    .tp_methods = decoder_methods,
    .tp_getset = decoder_getset,
    .tp_init = (initproc)decoder_init,
    .tp_new = PyType_GenericNew,
};

static PyMethodDef module_methods[] = {
    {"encode", rans_encode, METH_VARARGS,
     "encode(symbols, table_index, cdf, sizes, offsets, stride, precision, lanes) -> bytes"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef rans_module = {
    PyModuleDef_HEAD_INIT, "_rans", "Native lane-interleaved rANS coder (see ncodec.entropy.rans).", -1, module_methods};

PyMODINIT_FUNC
PyInit__rans(void)
{
    if (PyType_Ready(&DecoderType) < 0) return NULL;
    PyObject *m = PyModule_Create(&rans_module);
    if (!m) return NULL;
    Py_INCREF(&DecoderType);
    if (PyModule_AddObject(m, "Decoder", (PyObject *)&DecoderType) < 0) {
        Py_DECREF(&DecoderType); Py_DECREF(m); return NULL;
    }
    PyModule_AddIntConstant(m, "FORMAT_VERSION", FORMAT_VERSION);
    PyModule_AddIntConstant(m, "HEADER_BYTES", HEADER_BYTES);
    PyModule_AddIntConstant(m, "LANE_BYTES", LANE_BYTES);
    PyModule_AddIntConstant(m, "ESC_LEN_BITS", ESC_LEN_BITS);
    PyModule_AddIntConstant(m, "MAX_LANES", MAX_LANES);
    return m;
}
