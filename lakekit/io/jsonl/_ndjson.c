/*
 * lakekit.io.jsonl._ndjson: a strict JSON Lines parser, straight into
 * Arrow buffers.
 *
 * parse(data, rows, specs) parses a block of whole lines under an explicit schema of
 * null / bool / int / float64 / string columns, and lists and structs of them to any depth
 * up to 64, and returns, per column, the buffers of an Arrow array (validity bitmap or
 * None, values, offsets for strings and lists), its null count, length and children. It accepts a strict subset of what pyarrow.json accepts under the same schema
 * and returns the same values for it; for anything else (a bad line, and also rare but
 * valid constructs: escaped keys, NaN / Infinity, \u0000, a number it cannot round
 * exactly, nesting deeper than 64) it returns None and the caller parses the block with
 * pyarrow.json, which names the bad line. Rules: docs/loaders.md, "How JSONL lines are
 * accepted".
 *
 * The GIL is released while a block is parsed, so blocks parse in parallel on threads.
 * Everything is bounded by the block: no recursion deeper than MAX_DEPTH, buffers grow
 * with what the block holds (offsets and string bytes stay within int32).
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
    K_F64 = 10, K_STR = 11, K_LIST = 12, K_STRUCT = 13, K_LAST = 13
};

/* parse outcomes */
enum { OK = 0, FALLBACK = 1, NOMEM = 2 };

typedef struct B B;

/* A builder of one Arrow array: a column, a struct field or a list's items. Buffers grow
 * by doubling; new bytes are zero (null, false, 0). */
struct B {
    const char *name;
    Py_ssize_t nlen;
    int kind;
    int width;              /* bytes per value of fixed-width kinds */
    int64_t min;            /* signed range */
    uint64_t max;           /* unsigned magnitude bound */
    uint8_t *valid;         /* validity bitmap, 1 = valid */
    size_t vcap;            /* its bytes */
    uint8_t *data;          /* values (bool: a bitmap; string: the bytes) */
    size_t dlen, dcap;      /* string bytes used / bytes allocated */
    int32_t *offs;          /* string and list offsets, length + 1 */
    size_t ocap;            /* its entries */
    int64_t length, nulls;
    int64_t capv;           /* values every buffer has room for */
    int64_t seen;           /* the parent struct's index when this field was last set */
    B *children;            /* list: its items; struct: its fields */
    int nchildren;
    int hint;               /* the field after the last matched key */
    int32_t *table;         /* struct: key hash table, field index or -1 */
    uint32_t mask;
};

typedef struct {
    const uint8_t *p, *end;
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
        /* eight bytes at a time while none is a quote, a backslash or a control byte */
        while (end - s >= 8) {
            uint64_t v;
            memcpy(&v, s, 8);
            const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
            uint64_t q = v ^ (ones * '"'), b = v ^ (ones * '\\');
            uint64_t m = ((q - ones) & ~q) | ((b - ones) & ~b) | ((v - ones * 0x20) & ~v);
            m &= highs;
            if (m) {
                s += __builtin_ctzll(m) >> 3;   /* the lowest flag is exact */
                break;
            }
            s += 8;
        }
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

/* Room for n bytes (or entries of elem bytes) in *buf, the new ones zero. */
static int grow(void **buf, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return OK;
    size_t cap2 = *cap ? *cap : 64;
    while (cap2 < need) cap2 *= 2;
    uint8_t *p = realloc(*buf, cap2 * elem);
    if (!p) return NOMEM;
    memset(p + *cap * elem, 0, (cap2 - *cap) * elem);
    *buf = p;
    *cap = cap2;
    return OK;
}

/* Room for n values in b: every buffer grown to capv >= n values at once. */
static int reserve_slow(B *b, int64_t n) {
    int r;
    if (n >= INT32_MAX) return FALLBACK;
    int64_t cap = b->capv > 32 ? 2 * b->capv : 64;
    if (cap < n) cap = n;
    if (cap > INT32_MAX - 1) cap = INT32_MAX - 1;
    if ((r = grow((void **)&b->valid, &b->vcap, (size_t)(cap + 7) / 8, 1)) != OK) return r;
    switch (b->kind) {
    case K_BOOL:
        r = grow((void **)&b->data, &b->dcap, (size_t)(cap + 7) / 8, 1);
        break;
    case K_STR:
    case K_LIST:
        r = grow((void **)&b->offs, &b->ocap, (size_t)cap + 1, sizeof(int32_t));
        break;
    case K_STRUCT:
    case K_NULL:
        break;
    default:
        r = grow((void **)&b->data, &b->dcap, (size_t)cap * (size_t)b->width, 1);
        break;
    }
    if (r == OK) b->capv = cap;
    return r;
}

static inline int reserve(B *b, int64_t n) {
    return n <= b->capv ? OK : reserve_slow(b, n);
}

static inline void set_valid(B *b) {
    b->valid[b->length >> 3] |= (uint8_t)(1u << (b->length & 7));
    b->length++;
}

static int append_null(B *b) {
    int r;
    if ((r = reserve(b, b->length + 1)) != OK) return r;
    if (b->kind == K_STR) {
        b->offs[b->length + 1] = (int32_t)b->dlen;
    } else if (b->kind == K_LIST) {
        b->offs[b->length + 1] = (int32_t)b->children[0].length;
    } else if (b->kind == K_STRUCT) {
        for (int i = 0; i < b->nchildren; i++)
            if ((r = append_null(&b->children[i])) != OK) return r;
    }
    b->nulls++;
    b->length++;
    return OK;
}

static int find_child(B *b, const uint8_t *key, size_t n) {
    int h = b->hint;
    if (h < b->nchildren) {
        B *c = &b->children[h];
        if ((size_t)c->nlen == n && memcmp(c->name, key, n) == 0) return h;
    }
    uint32_t i = hash_key(key, n) & b->mask;
    for (;;) {
        int32_t j = b->table[i];
        if (j < 0) return -1;
        B *c = &b->children[j];
        if ((size_t)c->nlen == n && memcmp(c->name, key, n) == 0) return j;
        i = (i + 1) & b->mask;
    }
}

/* The low b->width bytes of bits as the next value (a signed value in range has the same
 * bytes as its two's complement truncated to the width). */
static void store_bits(B *b, uint64_t bits) {
    int64_t i = b->length;
    switch (b->width) {
    case 1: ((uint8_t *)b->data)[i] = (uint8_t)bits; break;
    case 2: ((uint16_t *)b->data)[i] = (uint16_t)bits; break;
    case 4: ((uint32_t *)b->data)[i] = (uint32_t)bits; break;
    default: ((uint64_t *)b->data)[i] = bits; break;
    }
}

static int store_int(B *c, const Num *n) {
    if (!n->is_int || !n->mant_ok) return FALLBACK;
    uint64_t m = n->mant;
    if (c->kind >= K_U8) {
        if (n->neg) return FALLBACK;        /* pyarrow rejects even -0 there */
        if (m > c->max) return FALLBACK;
        store_bits(c, m);
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
    store_bits(c, (uint64_t)v);
    return OK;
}

static int store_string(B *c, const uint8_t *s, const uint8_t *stop, int escaped) {
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
    c->offs[c->length + 1] = (int32_t)c->dlen;
    return OK;
}

static int skip_value(P *ps, int depth);

static int expect_lit(P *ps, const char *lit, size_t n) {
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, lit, n) != 0) return FALLBACK;
    ps->p += n;
    return OK;
}

/* Past a container's opening byte and blanks; *closed when it closes at once. */
static void open_container(P *ps, uint8_t close, int *closed) {
    ps->p++;
    skip_ws(ps);
    *closed = ps->p < ps->end && *ps->p == close;
    if (*closed) ps->p++;
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
        int closed;
        open_container(ps, close, &closed);
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

static int parse_value(P *ps, B *b, int depth);

/* A struct value (ps->p at its '{') into b's fields; the caller marks it valid. */
static int parse_struct(P *ps, B *b, int depth) {
    int r;
    if (depth >= MAX_DEPTH) return FALLBACK;
    int64_t idx = b->length;
    int matched = 0, closed;
    open_container(ps, '}', &closed);
    while (!closed) {
        const uint8_t *a, *e;
        int esc;
        if ((r = read_key(ps, &a, &e, &esc)) != OK) return r;
        if (esc) return FALLBACK;          /* escaped keys: pyarrow's path */
        int j = find_child(b, a, (size_t)(e - a));
        if (j < 0) {
            if ((r = skip_value(ps, depth + 1)) != OK) return r;
        } else {
            B *c = &b->children[j];
            if (c->seen == idx) return FALLBACK;   /* a duplicate key */
            c->seen = idx;
            matched++;
            b->hint = j + 1;
            if ((r = parse_value(ps, c, depth + 1)) != OK) return r;
        }
        if ((r = next_member(ps, '}', &closed)) != OK) return r;
    }
    b->hint = 0;
    if (matched != b->nchildren) {
        for (int j = 0; j < b->nchildren; j++) {
            B *c = &b->children[j];
            if (c->seen != idx && (r = append_null(c)) != OK) return r;
        }
    }
    return OK;
}

/* A list value (ps->p at its '[') into b's items; the caller marks it valid. */
static int parse_list(P *ps, B *b, int depth) {
    int r;
    if (depth >= MAX_DEPTH) return FALLBACK;
    B *items = &b->children[0];
    int closed;
    open_container(ps, ']', &closed);
    while (!closed) {
        if (ps->p >= ps->end) return FALLBACK;
        if ((r = parse_value(ps, items, depth + 1)) != OK) return r;
        if ((r = next_member(ps, ']', &closed)) != OK) return r;
    }
    if (items->length >= INT32_MAX) return FALLBACK;
    b->offs[b->length + 1] = (int32_t)items->length;
    return OK;
}

static int parse_value(P *ps, B *b, int depth) {
    uint8_t ch = *ps->p;
    int r;
    if (ch == 'n') {
        if ((r = expect_lit(ps, "null", 4)) != OK) return r;
        return append_null(b);
    }
    if ((r = reserve(b, b->length + 1)) != OK) return r;
    switch (b->kind) {
    case K_STR: {
        if (ch != '"') return FALLBACK;
        const uint8_t *a, *e;
        int esc;
        if ((r = scan_string(ps, &a, &e, &esc)) != OK) return r;
        r = store_string(b, a, e, esc);
        break;
    }
    case K_BOOL:
        if (ch == 't') {
            if ((r = expect_lit(ps, "true", 4)) != OK) return r;
            b->data[b->length >> 3] |= (uint8_t)(1u << (b->length & 7));
        } else if (ch == 'f') {
            r = expect_lit(ps, "false", 5);
        } else {
            return FALLBACK;
        }
        break;
    case K_F64: {
        if (ch != '-' && (ch < '0' || ch > '9')) return FALLBACK;
        Num n;
        if ((r = scan_number(ps, &n)) != OK) return r;
        r = number_to_double(&n, &((double *)b->data)[b->length]);
        break;
    }
    case K_LIST:
        if (ch != '[') return FALLBACK;
        r = parse_list(ps, b, depth);
        break;
    case K_STRUCT:
        if (ch != '{') return FALLBACK;
        r = parse_struct(ps, b, depth);
        break;
    case K_NULL:
        return FALLBACK;
    default: {  /* ints */
        if (ch != '-' && (ch < '0' || ch > '9')) return FALLBACK;
        Num n;
        if ((r = scan_number(ps, &n)) != OK) return r;
        r = store_int(b, &n);
        break;
    }
    }
    if (r != OK) return r;
    set_valid(b);
    return OK;
}

/* One line into the root struct (its fields are the columns): ps->p at its first byte.
 * On OK, ps->p is past its newline (or at the end). */
static int parse_line(P *ps, B *root, int64_t rows) {
    int r;
    skip_ws(ps);
    if (ps->p >= ps->end || *ps->p == '\n') {    /* a blank line */
        if (ps->p < ps->end) ps->p++;
        return OK;
    }
    if (*ps->p != '{' || root->length >= rows) return FALLBACK;
    if ((r = parse_struct(ps, root, 0)) != OK) return r;
    root->length++;
    skip_ws(ps);
    if (ps->p < ps->end) {
        if (*ps->p != '\n') return FALLBACK;   /* more after the object */
        ps->p++;
    }
    return OK;
}

static void free_builder(B *b) {
    for (int i = 0; i < b->nchildren; i++) free_builder(&b->children[i]);
    free(b->children);
    free(b->table);
    free(b->valid);
    free(b->data);
    free(b->offs);
}

/* The struct's key table (every struct has one; the root's columns too). */
static int build_table(B *b) {
    uint32_t size = 8;
    while (size < 2 * (uint32_t)b->nchildren + 2) size *= 2;
    b->table = malloc(size * sizeof(int32_t));
    if (!b->table) return NOMEM;
    b->mask = size - 1;
    for (uint32_t i = 0; i < size; i++) b->table[i] = -1;
    for (int i = 0; i < b->nchildren; i++) {
        B *c = &b->children[i];
        uint32_t h = hash_key((const uint8_t *)c->name, (size_t)c->nlen) & b->mask;
        while (b->table[h] >= 0) h = (h + 1) & b->mask;
        b->table[h] = i;
    }
    return OK;
}

/* Set a builder up from its spec (name, kind, (child specs...)), room for rows values.
 * Returns -1 with a Python error set, else OK or NOMEM. */
static int init_builder(B *b, PyObject *spec, int64_t rows, int depth) {
    static const int widths[] = {0, 0, 1, 2, 4, 8, 1, 2, 4, 8, 8, 0, 0, 0};
    PyObject *name, *children;
    int kind;
    b->seen = -1;
    if (depth > MAX_DEPTH || !PyTuple_Check(spec) ||
        !PyArg_ParseTuple(spec, "UiO!", &name, &kind, &PyTuple_Type, &children) ||
        kind < 0 || kind > K_LAST) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "a spec is (name, kind, (child specs...))");
        return -1;
    }
    b->name = PyUnicode_AsUTF8AndSize(name, &b->nlen);
    if (!b->name) return -1;
    b->kind = kind;
    b->width = widths[kind];
    switch (kind) {
    case K_I8: b->min = INT8_MIN; b->max = INT8_MAX; break;
    case K_I16: b->min = INT16_MIN; b->max = INT16_MAX; break;
    case K_I32: b->min = INT32_MIN; b->max = INT32_MAX; break;
    case K_I64: b->min = INT64_MIN; b->max = INT64_MAX; break;
    case K_U8: b->max = UINT8_MAX; break;
    case K_U16: b->max = UINT16_MAX; break;
    case K_U32: b->max = UINT32_MAX; break;
    case K_U64: b->max = UINT64_MAX; break;
    default: break;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(children);
    if ((kind == K_LIST && n != 1) || (kind != K_LIST && kind != K_STRUCT && n != 0) ||
        n > 100000) {
        PyErr_SetString(PyExc_ValueError, "a list has one child spec, a struct any, others none");
        return -1;
    }
    if (n) {
        b->children = calloc((size_t)n, sizeof(B));
        if (!b->children) return NOMEM;
        b->nchildren = (int)n;
        for (Py_ssize_t i = 0; i < n; i++) {
            int r = init_builder(&b->children[i], PyTuple_GET_ITEM(children, i),
                                 kind == K_LIST ? 0 : rows, depth + 1);
            if (r != OK) return r;
        }
    }
    if (kind == K_STRUCT && build_table(b) != OK) return NOMEM;
    return reserve_slow(b, rows) == OK ? OK : NOMEM;
}

static PyObject *bytes_of(const void *p, size_t n) {
    return PyBytes_FromStringAndSize(n ? (const char *)p : "", (Py_ssize_t)n);
}

/* (validity | None, values | None, offsets | None, null count, length, [children]) */
static PyObject *export_builder(B *b) {
    size_t n = (size_t)b->length;
    size_t bitmap = (n + 7) / 8;
    PyObject *valid = b->nulls ? bytes_of(b->valid, bitmap) : Py_NewRef(Py_None);
    PyObject *data, *offs;
    switch (b->kind) {
    case K_STR: data = bytes_of(b->data, b->dlen); break;
    case K_BOOL: data = bytes_of(b->data, bitmap); break;
    case K_NULL:
    case K_LIST:
    case K_STRUCT: data = Py_NewRef(Py_None); break;
    default: data = bytes_of(b->data, n * (size_t)b->width); break;
    }
    if (b->kind == K_STR || b->kind == K_LIST) offs = bytes_of(b->offs, (n + 1) * sizeof(int32_t));
    else offs = Py_NewRef(Py_None);
    PyObject *children = PyList_New(b->nchildren);
    for (int i = 0; children && i < b->nchildren; i++) {
        PyObject *child = export_builder(&b->children[i]);
        if (!child) Py_CLEAR(children);
        else PyList_SET_ITEM(children, i, child);
    }
    if (!valid || !data || !offs || !children) {
        Py_XDECREF(valid);
        Py_XDECREF(data);
        Py_XDECREF(offs);
        Py_XDECREF(children);
        return NULL;
    }
    return Py_BuildValue("(NNNLLN)", valid, data, offs, (long long)b->nulls,
                         (long long)b->length, children);
}

PyDoc_STRVAR(parse_doc,
"parse(data, rows, specs) -> [(validity, values, offsets, nulls, length, children), ...] | None\n\n"
"Parse a block of ``rows`` whole JSON Lines under a schema given as one spec per column,\n"
"``(name, kind, (child specs...))``. Per column, the buffers of its Arrow array: validity\n"
"is None without nulls, values None for null / list / struct kinds, offsets None but for\n"
"strings and lists; children the same for list items and struct fields. None: the block\n"
"needs pyarrow.json (a bad line, or a construct this parser leaves to it).");

static PyObject *py_parse(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t rows;
    PyObject *specs;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*nO!", &view, &rows, &PyTuple_Type, &specs)) return NULL;
    PyObject *result = NULL;
    B root;
    memset(&root, 0, sizeof(root));
    PyObject *root_spec = Py_BuildValue("(siO)", "", K_STRUCT, specs);
    /* the root is a struct whose fields are the columns: each is sized for rows values */
    int r = root_spec && rows >= 0 ? init_builder(&root, root_spec, rows, 0) : -1;
    if (r == -1) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "rows must be >= 0");
        goto done;
    }
    if (r == NOMEM) {
        PyErr_NoMemory();
        goto done;
    }
    P ps = {.p = view.buf, .end = (const uint8_t *)view.buf + view.len};
    Py_BEGIN_ALLOW_THREADS
    while (ps.p < ps.end) {
        if ((r = parse_line(&ps, &root, rows)) != OK) break;
    }
    Py_END_ALLOW_THREADS
    if (r == NOMEM) {
        PyErr_NoMemory();
        goto done;
    }
    if (r != OK || root.length != rows) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    result = PyList_New(root.nchildren);
    for (int i = 0; result && i < root.nchildren; i++) {
        PyObject *column = export_builder(&root.children[i]);
        if (!column) Py_CLEAR(result);
        else PyList_SET_ITEM(result, i, column);
    }
done:
    Py_XDECREF(root_spec);
    free_builder(&root);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"parse", py_parse, METH_VARARGS, parse_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_ndjson",
    "A strict JSON Lines parser, straight into Arrow buffers.", -1, methods,
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
