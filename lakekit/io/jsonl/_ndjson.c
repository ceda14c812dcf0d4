/*
 * lakekit.io.jsonl._ndjson: a strict JSON Lines parser for flat schemas, straight into
 * Arrow buffers.
 *
 * parse(data, rows, names, kinds) parses a block of whole lines under an explicit schema
 * of null / bool / int / float64 / string columns and returns, per column, the buffers of
 * an Arrow array (validity bitmap or None, data, and offsets for strings) plus the null
 * count. It accepts a strict subset of what pyarrow.json accepts under the same schema
 * and returns the same values for it; for anything else (a bad line, and also rare but
 * valid constructs: escaped keys, NaN / Infinity, \u0000, a number it cannot round
 * exactly, nesting deeper than 64) it returns None and the caller parses the block with
 * pyarrow.json, which names the bad line. Rules: docs/loaders.md, "How JSONL lines are
 * accepted".
 *
 * The GIL is released while a block is parsed, so blocks parse in parallel on threads.
 * Everything is bounded by the block: no recursion deeper than MAX_DEPTH, no buffer
 * beyond the block's size per string column.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <locale.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64
#define MAX_NUMBER 63

enum {
    K_NULL = 0, K_BOOL = 1,
    K_I8 = 2, K_I16 = 3, K_I32 = 4, K_I64 = 5,
    K_U8 = 6, K_U16 = 7, K_U32 = 8, K_U64 = 9,
    K_F64 = 10, K_STR = 11, K_LAST = 11
};

/* parse outcomes */
enum { OK = 0, FALLBACK = 1, NOMEM = 2 };

typedef struct {
    const char *name;
    Py_ssize_t nlen;
    int kind;
    int width;              /* bytes per value of fixed-width kinds */
    int64_t min;            /* signed range */
    uint64_t max;           /* unsigned magnitude bound */
    uint8_t *valid;         /* validity bitmap, 1 = valid */
    uint8_t *data;          /* values (bool: a bitmap; string: the bytes) */
    size_t dlen, dcap;      /* string bytes used / allocated */
    int32_t *offs;          /* string offsets, rows + 1 */
    int64_t nulls;
    int64_t seen;           /* the last row that set this column */
} Col;

typedef struct {
    const uint8_t *p, *end;
    Col *cols;
    int ncols;
    int64_t row, rows;
    int hint;               /* the column after the last matched key */
    int32_t *table;         /* key hash table: column index or -1 */
    uint32_t mask;
} P;

static locale_t c_locale;

static const double POW10[] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/* bytes that end a run of plain string characters: '"', '\\' and controls */
static uint8_t STR_STOP[256];

static inline uint32_t hash_key(const uint8_t *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 16777619u;
    }
    return h;
}

static inline int is_ws(uint8_t c) { return c == ' ' || c == '\t' || c == '\r'; }

static inline void skip_ws(P *ps) {
    while (ps->p < ps->end && is_ws(*ps->p)) ps->p++;
}

static inline void set_null(Col *c, int64_t row) {
    c->valid[row >> 3] &= (uint8_t)~(1u << (row & 7));
    c->nulls++;
    if (c->kind == K_STR) c->offs[row + 1] = (int32_t)c->dlen;
}

static int find_col(P *ps, const uint8_t *key, size_t n) {
    int h = ps->hint;
    if (h < ps->ncols) {
        Col *c = &ps->cols[h];
        if ((size_t)c->nlen == n && memcmp(c->name, key, n) == 0) return h;
    }
    uint32_t i = hash_key(key, n) & ps->mask;
    for (;;) {
        int32_t j = ps->table[i];
        if (j < 0) return -1;
        Col *c = &ps->cols[j];
        if ((size_t)c->nlen == n && memcmp(c->name, key, n) == 0) return j;
        i = (i + 1) & ps->mask;
    }
}

static inline int hexval(uint8_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int read_hex4(const uint8_t *s, const uint8_t *end, uint32_t *out) {
    if (end - s < 4) return 0;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(s[i]);
        if (h < 0) return 0;
        v = (v << 4) | (uint32_t)h;
    }
    *out = v;
    return 1;
}

/* Scan a string whose opening quote is at ps->p. On OK, start and stop bound its raw
 * bytes, escaped says whether it holds a backslash, and ps->p is past the closing quote.
 * Escapes are checked here: a bad one, a lone surrogate, \u0000 or a control byte is a
 * FALLBACK. */
static int scan_string(P *ps, const uint8_t **start, const uint8_t **stop, int *escaped) {
    const uint8_t *s = ps->p + 1, *end = ps->end;
    *start = s;
    *escaped = 0;
    for (;;) {
        while (s < end && !STR_STOP[*s]) s++;
        if (s >= end) return FALLBACK;
        uint8_t c = *s;
        if (c == '"') break;
        if (c < 0x20) return FALLBACK;
        /* a backslash */
        *escaped = 1;
        if (s + 1 >= end) return FALLBACK;
        uint8_t e = s[1];
        if (e == 'u') {
            uint32_t u;
            if (!read_hex4(s + 2, end, &u) || u == 0) return FALLBACK;
            s += 6;
            if (u >= 0xD800 && u <= 0xDBFF) {
                uint32_t lo;
                if (end - s < 6 || s[0] != '\\' || s[1] != 'u' || !read_hex4(s + 2, end, &lo) ||
                    lo < 0xDC00 || lo > 0xDFFF)
                    return FALLBACK;
                s += 6;
            } else if (u >= 0xDC00 && u <= 0xDFFF) {
                return FALLBACK;
            }
            continue;
        }
        if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' ||
            e == 't') {
            s += 2;
            continue;
        }
        return FALLBACK;
    }
    *stop = s;
    ps->p = s + 1;
    return OK;
}

/* Decode the escapes of a scanned string into out (room for stop - s bytes); returns the
 * decoded length. The escapes were validated by scan_string. */
static size_t unescape(const uint8_t *s, const uint8_t *stop, uint8_t *out) {
    uint8_t *o = out;
    while (s < stop) {
        if (*s != '\\') {
            *o++ = *s++;
            continue;
        }
        uint8_t e = s[1];
        s += 2;
        switch (e) {
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            uint32_t u = 0;
            read_hex4(s, stop, &u);
            s += 4;
            if (u >= 0xD800 && u <= 0xDBFF) {
                uint32_t lo = 0xDC00;
                read_hex4(s + 2, stop, &lo);
                s += 6;
                u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (u < 0x80) {
                *o++ = (uint8_t)u;
            } else if (u < 0x800) {
                *o++ = (uint8_t)(0xC0 | (u >> 6));
                *o++ = (uint8_t)(0x80 | (u & 0x3F));
            } else if (u < 0x10000) {
                *o++ = (uint8_t)(0xE0 | (u >> 12));
                *o++ = (uint8_t)(0x80 | ((u >> 6) & 0x3F));
                *o++ = (uint8_t)(0x80 | (u & 0x3F));
            } else {
                *o++ = (uint8_t)(0xF0 | (u >> 18));
                *o++ = (uint8_t)(0x80 | ((u >> 12) & 0x3F));
                *o++ = (uint8_t)(0x80 | ((u >> 6) & 0x3F));
                *o++ = (uint8_t)(0x80 | (u & 0x3F));
            }
            break;
        }
        default: *o++ = e; break;  /* " \ / */
        }
    }
    return (size_t)(o - out);
}

typedef struct {
    const uint8_t *start, *stop;
    int neg;
    int is_int;             /* no fraction, no exponent */
    uint64_t mant;          /* significant digits, if they fit (mant_ok) */
    int mant_ok;
    int digits;             /* significant digits */
    int64_t exp10;          /* value = mant * 10^exp10 */
} Num;

/* Scan a JSON number at ps->p (grammar checked); NaN / Infinity are FALLBACK. */
static int scan_number(P *ps, Num *n) {
    const uint8_t *s = ps->p, *end = ps->end;
    n->start = s;
    n->neg = 0;
    n->is_int = 1;
    n->mant = 0;
    n->mant_ok = 1;
    n->digits = 0;
    int64_t frac_digits = 0;
    if (*s == '-') {
        n->neg = 1;
        s++;
    }
    if (s >= end || *s < '0' || *s > '9') return FALLBACK;
    if (*s == '0') {
        s++;
        if (s < end && *s >= '0' && *s <= '9') return FALLBACK;  /* a leading zero */
    } else {
        while (s < end && *s >= '0' && *s <= '9') {
            if (n->digits < 19) n->mant = n->mant * 10 + (uint64_t)(*s - '0');
            else n->mant_ok = 0;
            n->digits++;
            s++;
        }
    }
    if (s < end && *s == '.') {
        n->is_int = 0;
        s++;
        if (s >= end || *s < '0' || *s > '9') return FALLBACK;
        while (s < end && *s >= '0' && *s <= '9') {
            if (n->digits == 0 && *s == '0') {
                frac_digits++;        /* leading zeros of 0.000123 are not significant */
            } else if (n->digits < 19) {
                n->mant = n->mant * 10 + (uint64_t)(*s - '0');
                n->digits++;
                frac_digits++;
            } else {
                n->mant_ok = 0;
                n->digits++;
            }
            s++;
        }
    }
    int64_t e = 0;
    if (s < end && (*s == 'e' || *s == 'E')) {
        n->is_int = 0;
        s++;
        int eneg = 0;
        if (s < end && (*s == '+' || *s == '-')) {
            eneg = *s == '-';
            s++;
        }
        if (s >= end || *s < '0' || *s > '9') return FALLBACK;
        while (s < end && *s >= '0' && *s <= '9') {
            if (e < 100000) e = e * 10 + (*s - '0');
            s++;
        }
        /* RapidJSON (pyarrow's tokenizer) rejects a positive exponent above 308 - (the
         * fraction digits), even on 0E400 and in fields outside the schema */
        if (!eneg && e > 308) return FALLBACK;
        if (eneg) e = -e;
    }
    /* RapidJSON also rejects integers above ~1.8e307 written out in digits */
    if (s - n->start > MAX_NUMBER) return FALLBACK;
    n->exp10 = e - frac_digits;
    n->stop = s;
    ps->p = s;
    return OK;
}

static int number_to_double(const Num *n, double *out) {
    if (n->mant_ok && n->mant <= (1ull << 53) && n->exp10 >= -22 && n->exp10 <= 22) {
        double d = (double)n->mant;         /* exact: Clinger's fast path */
        d = n->exp10 < 0 ? d / POW10[-n->exp10] : d * POW10[n->exp10];
        *out = n->neg ? -d : d;
        return OK;
    }
    size_t len = (size_t)(n->stop - n->start);
    if (len > MAX_NUMBER) return FALLBACK;
    char buf[MAX_NUMBER + 1];
    memcpy(buf, n->start, len);
    buf[len] = 0;
    char *endp;
    errno = 0;
    double d = strtod_l(buf, &endp, c_locale);  /* correctly rounded, as pyarrow's */
    if (endp != buf + len || errno == ERANGE) return FALLBACK;
    *out = d;
    return OK;
}

/* The low c->width bytes of bits at row (a signed value in range has the same bytes as
 * its two's complement truncated to the width). */
static void store_bits(Col *c, int64_t row, uint64_t bits) {
    switch (c->width) {
    case 1: ((uint8_t *)c->data)[row] = (uint8_t)bits; break;
    case 2: ((uint16_t *)c->data)[row] = (uint16_t)bits; break;
    case 4: ((uint32_t *)c->data)[row] = (uint32_t)bits; break;
    default: ((uint64_t *)c->data)[row] = bits; break;
    }
}

static int store_int(Col *c, int64_t row, const Num *n) {
    if (!n->is_int || !n->mant_ok) return FALLBACK;
    uint64_t m = n->mant;
    if (c->kind >= K_U8) {
        if (n->neg) return FALLBACK;        /* pyarrow rejects even -0 there */
        if (m > c->max) return FALLBACK;
        store_bits(c, row, m);
        return OK;
    }
    int64_t v;
    if (n->neg) {
        if (m > (uint64_t)INT64_MAX + 1) return FALLBACK;
        v = m == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)m;
    } else {
        if (m > (uint64_t)INT64_MAX) return FALLBACK;
        v = (int64_t)m;
    }
    if (v < c->min || (v > 0 && (uint64_t)v > c->max)) return FALLBACK;
    store_bits(c, row, (uint64_t)v);
    return OK;
}

static int store_string(Col *c, int64_t row, const uint8_t *s, const uint8_t *stop,
                        int escaped) {
    size_t n = (size_t)(stop - s);
    if (c->dlen + n > c->dcap) {
        size_t cap = c->dcap ? c->dcap : 4096;
        while (cap < c->dlen + n) cap *= 2;
        if (cap > INT32_MAX) return FALLBACK;
        uint8_t *d = realloc(c->data, cap);
        if (!d) return NOMEM;
        c->data = d;
        c->dcap = cap;
    }
    if (escaped) {
        c->dlen += unescape(s, stop, c->data + c->dlen);
    } else if (n) {
        memcpy(c->data + c->dlen, s, n);
        c->dlen += n;
    }
    c->offs[row + 1] = (int32_t)c->dlen;
    return OK;
}

static int skip_value(P *ps, int depth);

static int expect_lit(P *ps, const char *lit, size_t n) {
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, lit, n) != 0) return FALLBACK;
    ps->p += n;
    return OK;
}

/* After a member or element: skip ',' (*closed = 0) or the closing byte (*closed = 1). */
static int next_member(P *ps, uint8_t close, int *closed) {
    skip_ws(ps);
    if (ps->p >= ps->end) return FALLBACK;
    if (*ps->p == ',') {
        ps->p++;
        skip_ws(ps);
        *closed = 0;
        return OK;
    }
    if (*ps->p == close) {
        ps->p++;
        *closed = 1;
        return OK;
    }
    return FALLBACK;
}

/* A key and its colon: on OK, key / key_end bound the key's raw bytes, ps->p is at the
 * value. */
static int read_key(P *ps, const uint8_t **key, const uint8_t **key_end, int *escaped) {
    int r;
    if (ps->p >= ps->end || *ps->p != '"') return FALLBACK;
    if ((r = scan_string(ps, key, key_end, escaped)) != OK) return r;
    skip_ws(ps);
    if (ps->p >= ps->end || *ps->p != ':') return FALLBACK;
    ps->p++;
    skip_ws(ps);
    return ps->p < ps->end ? OK : FALLBACK;
}

static int skip_value(P *ps, int depth) {
    if (ps->p >= ps->end) return FALLBACK;
    const uint8_t *a, *b;
    int esc, r;
    Num num;
    switch (*ps->p) {
    case '"':
        return scan_string(ps, &a, &b, &esc);
    case 't': return expect_lit(ps, "true", 4);
    case 'f': return expect_lit(ps, "false", 5);
    case 'n': return expect_lit(ps, "null", 4);
    case '{':
    case '[': {
        if (depth >= MAX_DEPTH) return FALLBACK;
        int obj = *ps->p == '{';
        uint8_t close = obj ? '}' : ']';
        ps->p++;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == close) {
            ps->p++;
            return OK;
        }
        int closed = 0;
        while (!closed) {
            if (obj && (r = read_key(ps, &a, &b, &esc)) != OK) return r;
            if ((r = skip_value(ps, depth + 1)) != OK) return r;
            if ((r = next_member(ps, close, &closed)) != OK) return r;
        }
        return OK;
    }
    default:
        if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9')) return scan_number(ps, &num);
        return FALLBACK;
    }
}

static int parse_value(P *ps, Col *c) {
    int64_t row = ps->row;
    uint8_t ch = *ps->p;
    int r;
    if (ch == 'n') {
        if ((r = expect_lit(ps, "null", 4)) != OK) return r;
        set_null(c, row);
        return OK;
    }
    switch (c->kind) {
    case K_STR: {
        if (ch != '"') return FALLBACK;
        const uint8_t *a, *b;
        int esc;
        if ((r = scan_string(ps, &a, &b, &esc)) != OK) return r;
        return store_string(c, row, a, b, esc);
    }
    case K_BOOL:
        if (ch == 't') {
            if ((r = expect_lit(ps, "true", 4)) != OK) return r;
            c->data[row >> 3] |= (uint8_t)(1u << (row & 7));
            return OK;
        }
        if (ch == 'f') return expect_lit(ps, "false", 5);
        return FALLBACK;
    case K_F64: {
        if (ch != '-' && (ch < '0' || ch > '9')) return FALLBACK;
        Num n;
        if ((r = scan_number(ps, &n)) != OK) return r;
        return number_to_double(&n, &((double *)c->data)[row]);
    }
    case K_NULL:
        return FALLBACK;
    default: {  /* ints */
        if (ch != '-' && (ch < '0' || ch > '9')) return FALLBACK;
        Num n;
        if ((r = scan_number(ps, &n)) != OK) return r;
        return store_int(c, row, &n);
    }
    }
}

/* One line: ps->p at its first byte. On OK, ps->p is past its newline (or at the end). */
static int parse_line(P *ps, int *blank) {
    int r;
    skip_ws(ps);
    *blank = 0;
    if (ps->p >= ps->end || *ps->p == '\n') {
        *blank = 1;
        if (ps->p < ps->end) ps->p++;
        return OK;
    }
    if (*ps->p != '{') return FALLBACK;
    if (ps->row >= ps->rows) return FALLBACK;
    int64_t row = ps->row;
    ps->p++;
    skip_ws(ps);
    int matched = 0;
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
    } else {
        int closed = 0;
        while (!closed) {
            const uint8_t *a, *b;
            int esc;
            if ((r = read_key(ps, &a, &b, &esc)) != OK) return r;
            if (esc) return FALLBACK;          /* escaped keys: pyarrow's path */
            int j = find_col(ps, a, (size_t)(b - a));
            if (j < 0) {
                if ((r = skip_value(ps, 1)) != OK) return r;
            } else {
                Col *c = &ps->cols[j];
                if (c->seen == row) return FALLBACK;   /* a duplicate key */
                c->seen = row;
                matched++;
                ps->hint = j + 1;
                if ((r = parse_value(ps, c)) != OK) return r;
            }
            if ((r = next_member(ps, '}', &closed)) != OK) return r;
        }
    }
    skip_ws(ps);
    if (ps->p < ps->end) {
        if (*ps->p != '\n') return FALLBACK;   /* more after the object */
        ps->p++;
    }
    if (matched != ps->ncols) {
        for (int j = 0; j < ps->ncols; j++) {
            Col *c = &ps->cols[j];
            if (c->seen != row) set_null(c, row);
        }
    }
    ps->hint = 0;
    ps->row++;
    return OK;
}

static void free_cols(Col *cols, int n) {
    for (int i = 0; i < n; i++) {
        free(cols[i].valid);
        free(cols[i].data);
        free(cols[i].offs);
    }
    free(cols);
}

static int init_col(Col *c, int kind, int64_t rows) {
    static const int widths[] = {0, 0, 1, 2, 4, 8, 1, 2, 4, 8, 8, 0};
    c->kind = kind;
    c->width = widths[kind];
    c->seen = -1;
    c->min = 0;
    c->max = 0;
    switch (kind) {
    case K_I8: c->min = INT8_MIN; c->max = INT8_MAX; break;
    case K_I16: c->min = INT16_MIN; c->max = INT16_MAX; break;
    case K_I32: c->min = INT32_MIN; c->max = INT32_MAX; break;
    case K_I64: c->min = INT64_MIN; c->max = INT64_MAX; break;
    case K_U8: c->max = UINT8_MAX; break;
    case K_U16: c->max = UINT16_MAX; break;
    case K_U32: c->max = UINT32_MAX; break;
    case K_U64: c->max = UINT64_MAX; break;
    default: break;
    }
    size_t bitmap = (size_t)(rows + 7) / 8 + 1;
    c->valid = malloc(bitmap);
    if (!c->valid) return NOMEM;
    memset(c->valid, 0xFF, bitmap);
    if (kind == K_STR) {
        c->offs = calloc((size_t)rows + 1, sizeof(int32_t));
        if (!c->offs) return NOMEM;
    } else if (kind == K_BOOL) {
        c->data = calloc(bitmap, 1);
        if (!c->data) return NOMEM;
    } else if (c->width) {
        c->data = calloc((size_t)rows + 1, (size_t)c->width);
        if (!c->data) return NOMEM;
    }
    return OK;
}

static PyObject *bytes_of(const void *p, size_t n) {
    return PyBytes_FromStringAndSize(n ? (const char *)p : "", (Py_ssize_t)n);
}

PyDoc_STRVAR(parse_doc,
"parse(data, rows, names, kinds) -> (rows, [(validity, data, offsets, nulls), ...]) | None\n\n"
"Parse a block of whole JSON Lines under a flat schema: ``names`` (str) and ``kinds``\n"
"(type codes) per column. ``validity`` is None without nulls; ``offsets`` is None but\n"
"for strings. None: the block needs pyarrow.json (a bad line, or a construct this\n"
"parser leaves to it).");

static PyObject *py_parse(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t rows;
    PyObject *names, *kinds;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*nO!O!", &view, &rows, &PyTuple_Type, &names, &PyTuple_Type,
                          &kinds))
        return NULL;
    PyObject *result = NULL;
    Col *cols = NULL;
    int32_t *table = NULL;
    Py_ssize_t ncols = PyTuple_GET_SIZE(names);
    if (PyTuple_GET_SIZE(kinds) != ncols || rows < 0 || ncols > 1000000) {
        PyErr_SetString(PyExc_ValueError, "names and kinds must be tuples of one length");
        goto done;
    }
    cols = calloc((size_t)ncols + 1, sizeof(Col));
    uint32_t size = 8;
    while (size < 2 * (uint32_t)ncols + 2) size *= 2;
    table = malloc(size * sizeof(int32_t));
    if (!cols || !table) {
        PyErr_NoMemory();
        goto done;
    }
    for (uint32_t i = 0; i < size; i++) table[i] = -1;
    for (Py_ssize_t i = 0; i < ncols; i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i);
        long kind = PyLong_AsLong(PyTuple_GET_ITEM(kinds, i));
        if (!PyUnicode_Check(name) || kind < 0 || kind > K_LAST) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "a name is not a str or a kind is unknown");
            goto done;
        }
        cols[i].name = PyUnicode_AsUTF8AndSize(name, &cols[i].nlen);
        if (!cols[i].name) goto done;
        if (init_col(&cols[i], (int)kind, rows) != OK) {
            PyErr_NoMemory();
            goto done;
        }
        uint32_t h = hash_key((const uint8_t *)cols[i].name, (size_t)cols[i].nlen) & (size - 1);
        while (table[h] >= 0) h = (h + 1) & (size - 1);
        table[h] = (int32_t)i;
    }
    P ps = {
        .p = view.buf, .end = (const uint8_t *)view.buf + view.len, .cols = cols,
        .ncols = (int)ncols, .row = 0, .rows = rows, .hint = 0, .table = table,
        .mask = size - 1,
    };
    int r = OK, blank;
    Py_BEGIN_ALLOW_THREADS
    while (ps.p < ps.end) {
        if ((r = parse_line(&ps, &blank)) != OK) break;
    }
    Py_END_ALLOW_THREADS
    if (r == NOMEM) {
        PyErr_NoMemory();
        goto done;
    }
    if (r != OK || ps.row != rows) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    PyObject *out = PyList_New(ncols);
    if (!out) goto done;
    size_t bitmap = (size_t)(rows + 7) / 8;
    for (Py_ssize_t i = 0; i < ncols; i++) {
        Col *c = &cols[i];
        PyObject *valid, *data, *offs;
        if (c->nulls) valid = bytes_of(c->valid, bitmap);
        else valid = Py_NewRef(Py_None);
        if (c->kind == K_STR) {
            data = bytes_of(c->data, c->dlen);
            offs = bytes_of(c->offs, ((size_t)rows + 1) * sizeof(int32_t));
        } else {
            size_t n = c->kind == K_BOOL ? bitmap : (size_t)rows * (size_t)c->width;
            data = c->kind == K_NULL ? Py_NewRef(Py_None) : bytes_of(c->data, n);
            offs = Py_NewRef(Py_None);
        }
        PyObject *nulls = PyLong_FromLongLong((long long)c->nulls);
        PyObject *item = (valid && data && offs && nulls) ? PyTuple_New(4) : NULL;
        if (!item) {
            Py_XDECREF(valid);
            Py_XDECREF(data);
            Py_XDECREF(offs);
            Py_XDECREF(nulls);
            Py_DECREF(out);
            goto done;
        }
        PyTuple_SET_ITEM(item, 0, valid);
        PyTuple_SET_ITEM(item, 1, data);
        PyTuple_SET_ITEM(item, 2, offs);
        PyTuple_SET_ITEM(item, 3, nulls);
        PyList_SET_ITEM(out, i, item);
    }
    result = Py_BuildValue("(nN)", rows, out);  /* N: out is released on failure too */
done:
    if (cols) free_cols(cols, (int)ncols);
    free(table);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"parse", py_parse, METH_VARARGS, parse_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_ndjson",
    "A strict JSON Lines parser for flat schemas, straight into Arrow buffers.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__ndjson(void) {
    if (!c_locale) {
        c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
        if (!c_locale) return PyErr_NoMemory();
    }
    for (int i = 0; i < 256; i++) STR_STOP[i] = i < 0x20 || i == '"' || i == '\\';
    return PyModule_Create(&module);
}
