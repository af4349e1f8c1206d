/* Exact k-nearest-neighbour search on a KD-tree, for the Flip Test (clarify/bias/knn.py wraps it).

   Tree(x, rows, order_out, leafsize): a KD-tree over the given rows of x (float64, C order, n x d). A node splits
   its box's widest side at its points' mean there (sides shrunk to the points where a split would leave one side
   empty); each child keeps the exact extent of its points along the split dimension, so queries prune on it.
   order_out receives the rows in the tree's leaf order (a spatial order). The coordinates are copied in that
   order (each leaf's points contiguous), the root's box and column sums taken in the same pass; a node's split
   mean comes from sums its parent's partition takes, so each level of the build is one pass over its points.

   rows_of_columns(cols, out): a frame's columns to C-order rows (and whether all are finite) in one pass.

   Tree.query(x, qrows, d2_out, idx_out): for each row qrows[i] of x, its k = d2_out.shape[1] nearest tree rows:
   squared Euclidean distances ascending in d2_out[i] and their row numbers in idx_out[i] (which of equally far
   rows is returned is unspecified). Queries in a spatial order (a tree's order) run 3x faster than in row order.

   Tree.votes(x, qrows, labels, k, rtol, count_out): the Flip Test's pass, without the (m, k) outputs: how many
   of each query's k nearest have a true label, or -1 where the (k+1)-th distance ties the k-th.

   All release the GIL: two builds or two query chunks run on two threads. Plain C API + buffer protocol. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 200 /* a node this deep is a leaf whatever its size (queries stay exact, only slower) */

typedef struct {
    double lo_max, hi_min; /* inner node: left child's largest, right child's smallest coordinate on dim */
    Py_ssize_t start, end; /* the node's points: tree positions [start, end) */
    int dim;               /* split dimension (a column of pts), -1 for a leaf */
    int right;             /* right child's node number (the left child follows its parent) */
} Node;

typedef struct {
    PyObject_HEAD
    Py_ssize_t n, d, n_nodes, cap;
    double *pts;      /* n x d, tree order */
    Py_ssize_t *rows; /* row number in x of each tree position */
    Node *nodes;
} Tree;

/* ---------- buffers ---------- */

/* A C-contiguous buffer of ndim dimensions of kind 'f' (float64), 'i' (intp) or 'b' (bool or uint8). */
static int get_buf(PyObject *o, Py_buffer *b, int writable, char kind, int ndim, const char *what) {
    if (PyObject_GetBuffer(o, b, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    char f = b->format[0] == '@' || b->format[0] == '=' || b->format[0] == '<' ? b->format[1] : b->format[0];
    int ok = b->ndim == ndim && (kind == 'f'   ? b->itemsize == 8 && f == 'd'
                                 : kind == 'i' ? b->itemsize == sizeof(Py_ssize_t) && f && strchr("lqn", f)
                                               : b->itemsize == 1 && (f == '?' || f == 'B'));
    if (!ok) {
        PyErr_Format(PyExc_TypeError, "%s: expected a C-contiguous %s array of %d dimension(s)", what,
                     kind == 'f' ? "float64" : kind == 'i' ? "intp" : "bool", ndim);
        PyBuffer_Release(b);
        return -1;
    }
    return 0;
}

static int check_rows(const Py_ssize_t *r, Py_ssize_t m, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < m; i++)
        if (r[i] < 0 || r[i] >= n) {
            PyErr_Format(PyExc_IndexError, "row %zd out of range for %zd rows", r[i], n);
            return -1;
        }
    return 0;
}

/* ---------- build ---------- */

typedef struct {
    Tree *t;
    Py_ssize_t leafsize;
    double *box; /* per depth: the node's box (lo[d], hi[d]) */
} Build;

static int new_node(Tree *t) {
    if (t->n_nodes == t->cap) {
        Py_ssize_t cap = t->cap ? 2 * t->cap : 64;
        Node *nodes = realloc(t->nodes, cap * sizeof(Node));
        if (!nodes) return -1;
        t->nodes = nodes, t->cap = cap;
    }
    return (int)t->n_nodes++;
}

/* Partitions points [s, e) (their coordinates and rows, moved together: each pass reads memory in order) into
   column c < split (left) and >= split (Hoare's way: only misplaced pairs are swapped); returns the left count,
   the sides' extents on c, and the sides' sums of columns c and c2 (the children's split means, without a pass
   of their own: a child splits on c or on c2, the widest of the other sides). */
static Py_ssize_t partition(Tree *t, Py_ssize_t s, Py_ssize_t e, Py_ssize_t c, Py_ssize_t c2, double split,
                            double *ext, double *sums) {
    Py_ssize_t d = t->d, i = s, j = e - 1;
    double *pts = t->pts, lmin = INFINITY, lmax = -INFINITY, rmin = INFINITY, rmax = -INFINITY, v;
    double ls = 0.0, ls2 = 0.0, rs = 0.0, rs2 = 0.0;
    for (;;) {
        for (; i <= j && (v = pts[i * d + c]) < split; i++)
            lmin = v < lmin ? v : lmin, lmax = v > lmax ? v : lmax, ls += v, ls2 += pts[i * d + c2];
        for (; i <= j && (v = pts[j * d + c]) >= split; j--)
            rmin = v < rmin ? v : rmin, rmax = v > rmax ? v : rmax, rs += v, rs2 += pts[j * d + c2];
        if (i > j) break;
        double *a = pts + i * d, *b = pts + j * d; /* a is >= split, b < split: swap them into place */
        for (Py_ssize_t m = 0; m < d; m++) {
            double tmp = a[m];
            a[m] = b[m], b[m] = tmp;
        }
        Py_ssize_t tmp = t->rows[i];
        t->rows[i] = t->rows[j], t->rows[j] = tmp;
        v = a[c], lmin = v < lmin ? v : lmin, lmax = v > lmax ? v : lmax, ls += v, ls2 += a[c2];
        v = b[c], rmin = v < rmin ? v : rmin, rmax = v > rmax ? v : rmax, rs += v, rs2 += b[c2];
        i++, j--;
    }
    ext[0] = lmin, ext[1] = lmax, ext[2] = rmin, ext[3] = rmax;
    sums[0] = ls, sums[1] = ls2, sums[2] = rs, sums[3] = rs2;
    return i - s;
}

/* Builds the node of points [s, e), whose box is b->box at this depth (lo then hi), and its subtree. hint: the
   points' sums of two columns (hint[0], hint[1] of columns hc[0], hc[1]; hc -1 when not known). */
static int build(Build *b, Py_ssize_t s, Py_ssize_t e, int depth, const Py_ssize_t *hc, const double *hint) {
    Tree *t = b->t;
    Py_ssize_t d = t->d;
    int me = new_node(t);
    if (me < 0) return -1;
    t->nodes[me].start = s, t->nodes[me].end = e, t->nodes[me].dim = -1;
    if (e - s <= b->leafsize || depth >= MAX_DEPTH) return 0;
    double *lo = b->box + 2 * d * depth, *hi = lo + d, *clo = hi + d, *chi = clo + d, ext[4], sums[4], known[2];
    Py_ssize_t kc[2] = {hc[0], hc[1]};
    known[0] = hint[0], known[1] = hint[1];
    for (;;) {
        Py_ssize_t c = 0, c2 = -1;
        for (Py_ssize_t j = 1; j < d; j++)
            if (hi[j] - lo[j] > hi[c] - lo[c]) c = j;
        if (!(hi[c] > lo[c])) return 0; /* all points equal: one leaf */
        for (Py_ssize_t j = 0; j < d; j++)
            if (j != c && (c2 < 0 || hi[j] - lo[j] > hi[c2] - lo[c2])) c2 = j;
        if (c2 < 0) c2 = c;
        double sum; /* split at the points' mean (a tree half as deep as at the side's midpoint on skewed
                       columns), else at the midpoint, else (adjacent doubles, or a mean rounded above the
                       top, which would send every point left for ever) at the top */
        if (c == kc[0]) sum = known[0];
        else if (c == kc[1]) sum = known[1];
        else {
            sum = 0.0;
            for (Py_ssize_t i = s; i < e; i++) sum += t->pts[i * d + c];
        }
        double split = sum / (double)(e - s);
        if (!(split > lo[c])) split = 0.5 * (lo[c] + hi[c]);
        if (split <= lo[c] || split > hi[c]) split = hi[c];
        Py_ssize_t nl = partition(t, s, e, c, c2, split, ext, sums);
        if (nl == 0 || nl == e - s) { /* one side empty: shrink the side to the points and choose again */
            lo[c] = nl ? ext[0] : ext[2], hi[c] = nl ? ext[1] : ext[3];
            kc[0] = c, kc[1] = c2, known[0] = sums[0] + sums[2], known[1] = sums[1] + sums[3];
            continue;
        }
        Py_ssize_t cc[2] = {c, c2};
        t->nodes[me].dim = (int)c, t->nodes[me].lo_max = ext[1], t->nodes[me].hi_min = ext[2];
        memcpy(clo, lo, 2 * d * sizeof(double));
        clo[c] = ext[0], chi[c] = ext[1];
        if (build(b, s, s + nl, depth + 1, cc, sums) < 0) return -1;
        t->nodes[me].right = (int)t->n_nodes;
        memcpy(clo, lo, 2 * d * sizeof(double));
        clo[c] = ext[2], chi[c] = ext[3];
        return build(b, s + nl, e, depth + 1, cc, sums + 2);
    }
}

/* Builds t over rows r of x (without the GIL) and copies the rows in tree order to order. -1: out of memory. */
static int build_tree(Tree *t, const double *x, const Py_ssize_t *r, Py_ssize_t leafsize, Py_ssize_t *order) {
    Py_ssize_t n = t->n, d = t->d;
    double *box = calloc(2 * d * (MAX_DEPTH + 1), sizeof(double)), *ext = malloc(2 * d * sizeof(double));
    t->pts = malloc(n * d * sizeof(double));
    t->rows = malloc(n * sizeof(Py_ssize_t));
    int rc = -1;
    if (!box || !ext || !t->pts || !t->rows) goto done;
    Py_BEGIN_ALLOW_THREADS
    double *lo = box, *hi = box + d, *sum = ext; /* the root's box and sums, in one pass with the copy */
    for (Py_ssize_t j = 0; j < d; j++) lo[j] = INFINITY, hi[j] = -INFINITY, sum[j] = 0.0;
    memcpy(t->rows, r, n * sizeof(Py_ssize_t));
    for (Py_ssize_t i = 0; i < n; i++) {
        const double *p = x + r[i] * d;
        double *q = t->pts + i * d;
        for (Py_ssize_t j = 0; j < d; j++) {
            double v = p[j];
            q[j] = v, lo[j] = v < lo[j] ? v : lo[j], hi[j] = v > hi[j] ? v : hi[j], sum[j] += v;
        }
    }
    Build b = {t, leafsize, box};
    Py_ssize_t c = 0, c2 = -1; /* the root's hint: its two widest columns' sums */
    for (Py_ssize_t j = 0; j < d; j++)
        if (hi[j] - lo[j] > hi[c] - lo[c]) c = j;
    for (Py_ssize_t j = 0; j < d; j++)
        if (j != c && (c2 < 0 || hi[j] - lo[j] > hi[c2] - lo[c2])) c2 = j;
    if (c2 < 0) c2 = c;
    Py_ssize_t hc[2] = {c, c2};
    double hs[2] = {sum[c], sum[c2]};
    rc = build(&b, 0, n, 0, hc, hs);
    if (rc == 0) memcpy(order, t->rows, n * sizeof(Py_ssize_t));
    Py_END_ALLOW_THREADS
done:
    free(box), free(ext);
    return rc;
}

/* ---------- query ---------- */

typedef struct {
    const Tree *t;
    double *q, *off;  /* the query (pts columns) and its offset from the current node's box per column */
    double *hd;       /* max-heap of the best distances so far */
    Py_ssize_t *hp;   /* their tree positions */
    Py_ssize_t k, cnt;
    double bound;     /* heap's largest once full, else infinity */
} Search;

static inline __attribute__((always_inline)) void heap_sift(double *hd, Py_ssize_t *hp, Py_ssize_t cnt, Py_ssize_t i) {
    double v = hd[i];
    Py_ssize_t p = hp[i];
    for (;;) {
        Py_ssize_t c = 2 * i + 1;
        if (c >= cnt) break;
        if (c + 1 < cnt && hd[c + 1] > hd[c]) c++;
        if (hd[c] <= v) break;
        hd[i] = hd[c], hp[i] = hp[c], i = c;
    }
    hd[i] = v, hp[i] = p;
}

static inline void offer(Search *s, double dist, Py_ssize_t pos) {
    if (s->cnt < s->k) {
        Py_ssize_t i = s->cnt++;
        while (i > 0 && s->hd[(i - 1) / 2] < dist) s->hd[i] = s->hd[(i - 1) / 2], s->hp[i] = s->hp[(i - 1) / 2], i = (i - 1) / 2;
        s->hd[i] = dist, s->hp[i] = pos;
        if (s->cnt == s->k) s->bound = s->hd[0];
    } else if (dist < s->bound) {
        s->hd[0] = dist, s->hp[0] = pos;
        heap_sift(s->hd, s->hp, s->k, 0);
        s->bound = s->hd[0];
    }
}

typedef double v2d __attribute__((vector_size(16)));

/* Squared distance over d columns, in pairs of columns (SSE2 registers) summed in two running pairs, an odd last
   column by itself. */
static inline __attribute__((always_inline)) double dist2(const double *q, const double *p, Py_ssize_t d) {
    v2d a0 = {0.0, 0.0}, a1 = {0.0, 0.0};
    Py_ssize_t j = 0;
    for (; j + 4 <= d; j += 4) {
        v2d x0, y0, x1, y1;
        memcpy(&x0, q + j, sizeof x0), memcpy(&y0, p + j, sizeof y0);
        memcpy(&x1, q + j + 2, sizeof x1), memcpy(&y1, p + j + 2, sizeof y1);
        x0 -= y0, x1 -= y1;
        a0 += x0 * x0, a1 += x1 * x1;
    }
    if (j + 2 <= d) {
        v2d x0, y0;
        memcpy(&x0, q + j, sizeof x0), memcpy(&y0, p + j, sizeof y0);
        x0 -= y0;
        a0 += x0 * x0;
        j += 2;
    }
    a0 += a1;
    double r = a0[0] + a0[1];
    if (j < d) {
        double v = q[j] - p[j];
        r += v * v;
    }
    return r;
}

/* Offers a leaf's points, 64 at a time: their distances first, then those within the bound (a mask of them, so
   the loop does not branch on each point). */
static inline __attribute__((always_inline)) void scan(Search *s, const Node *nd, Py_ssize_t d) {
    double dd[64];
    for (Py_ssize_t i0 = nd->start; i0 < nd->end; i0 += 64) {
        Py_ssize_t n = nd->end - i0 < 64 ? nd->end - i0 : 64;
        const double *p = s->t->pts + i0 * d, bound = s->bound;
        unsigned long long mask = 0;
        for (Py_ssize_t r = 0; r < n; r++, p += d) {
            dd[r] = dist2(s->q, p, d);
            mask |= (unsigned long long)(dd[r] <= bound) << r;
        }
        for (; mask; mask &= mask - 1) {
            int r = __builtin_ctzll(mask);
            if (dd[r] <= s->bound) offer(s, dd[r], i0 + r);
        }
    }
}

static void search(Search *s, const Node *nodes, int node, double rd) {
    const Node *nd = &nodes[node];
    if (nd->dim < 0) {
#define SCAN(D) case D: scan(s, nd, D); break;
        switch (s->t->d) { /* the distance loop unrolled for up to 16 columns */
        SCAN(1) SCAN(2) SCAN(3) SCAN(4) SCAN(5) SCAN(6) SCAN(7) SCAN(8)
        SCAN(9) SCAN(10) SCAN(11) SCAN(12) SCAN(13) SCAN(14) SCAN(15) SCAN(16)
        default: scan(s, nd, s->t->d);
        }
        return;
    }
    int c = nd->dim, left = node + 1;
    double qc = s->q[c], old = s->off[c];
    double dl = qc - nd->lo_max, dr = nd->hi_min - qc;
    dl = dl > old ? dl : old, dr = dr > old ? dr : old;
    double base = rd - old * old, rl = base + dl * dl, rr = base + dr * dr;
    int first = rl <= rr ? left : nd->right, second = rl <= rr ? nd->right : left;
    double r1 = rl <= rr ? rl : rr, r2 = rl <= rr ? rr : rl, o1 = rl <= rr ? dl : dr, o2 = rl <= rr ? dr : dl;
    if (r1 <= s->bound) {
        s->off[c] = o1;
        search(s, nodes, first, r1);
    }
    if (r2 <= s->bound) {
        s->off[c] = o2;
        search(s, nodes, second, r2);
    }
    s->off[c] = old;
}

/* The k nearest tree points of xq (a row of x): squared distances ascending in s->hd, positions in s->hp. */
static void nearest(Search *s, const double *xq) {
    const Tree *t = s->t;
    memcpy(s->q, xq, t->d * sizeof(double));
    for (Py_ssize_t j = 0; j < t->d; j++) s->off[j] = 0.0;
    s->cnt = 0, s->bound = INFINITY;
    search(s, t->nodes, 0, 0.0);
    for (Py_ssize_t r = s->k - 1; r > 0; r--) { /* heap sort, in place */
        double dr = s->hd[r];
        Py_ssize_t pr = s->hp[r];
        s->hd[r] = s->hd[0], s->hp[r] = s->hp[0], s->hd[0] = dr, s->hp[0] = pr;
        heap_sift(s->hd, s->hp, r, 0);
    }
}

/* Runs queries qrows[0:m] of x, k nearest each: out_d2 and out_idx (m x k) when given, else out_count: the
   positives (labels, by row of x) among the k - 1 nearest, or -1 where the k-th distance is within rtol
   (relative) of the (k-1)-th. */
static int run_queries(const Tree *t, const double *x, const Py_ssize_t *qrows, Py_ssize_t m, Py_ssize_t k,
                       double *out_d2, Py_ssize_t *out_idx, const unsigned char *labels, double rtol,
                       Py_ssize_t *out_count) {
    Py_ssize_t d = t->d;
    double *work = calloc(2 * t->d + k, sizeof(double));
    Py_ssize_t *hp = malloc(k * sizeof(Py_ssize_t));
    if (!work || !hp) return free(work), free(hp), -1;
    Search s = {t, work, work + t->d, work + 2 * t->d, hp, k, 0, INFINITY};
    for (Py_ssize_t i = 0; i < m; i++) {
        if (i + 4 < m) /* the query rows are read out of order: fetch ahead */
            __builtin_prefetch(x + qrows[i + 4] * d), __builtin_prefetch(x + qrows[i + 4] * d + d - 1);
        nearest(&s, x + qrows[i] * d);
        if (out_d2) {
            memcpy(out_d2 + i * k, s.hd, k * sizeof(double));
            for (Py_ssize_t r = 0; r < k; r++) out_idx[i * k + r] = t->rows[s.hp[r]];
        } else if (s.hd[k - 1] - s.hd[k - 2] <= rtol * s.hd[k - 2]) {
            out_count[i] = -1;
        } else {
            Py_ssize_t c = 0;
            for (Py_ssize_t r = 0; r < k - 1; r++) c += labels[t->rows[s.hp[r]]] != 0;
            out_count[i] = c;
        }
    }
    free(work), free(hp);
    return 0;
}

/* ---------- columns to rows ---------- */

/* rows(cols, out): out (n x d float64, C order) receives the columns (a list of d arrays of n float64 or int64
   values, C-contiguous), a block of rows at a time (the block stays in cache while each column is written to it;
   pandas keeps a frame's columns apart); returns whether every value is finite. Releases the GIL. */
static PyObject *rows_of_columns(PyObject *self, PyObject *args) {
    PyObject *ocols, *oout, *res = NULL;
    if (!PyArg_ParseTuple(args, "O!O", &PyList_Type, &ocols, &oout)) return NULL;
    Py_ssize_t d = PyList_GET_SIZE(ocols), nb = 0;
    Py_buffer bout, *bc = calloc(d ? d : 1, sizeof(Py_buffer));
    char *isint = calloc(d ? d : 1, 1);
    if (!bc || !isint) return free(bc), free(isint), PyErr_NoMemory();
    if (get_buf(oout, &bout, 1, 'f', 2, "out") < 0) goto done;
    Py_ssize_t n = bout.shape[0];
    if (bout.shape[1] != d) {
        PyErr_SetString(PyExc_ValueError, "out needs one column per array");
        goto release;
    }
    for (; nb < d; nb++) {
        Py_buffer *b = &bc[nb];
        if (PyObject_GetBuffer(PyList_GET_ITEM(ocols, nb), b, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) goto release;
        char f = b->format[0] == '@' || b->format[0] == '=' || b->format[0] == '<' ? b->format[1] : b->format[0];
        isint[nb] = f != 'd';
        if (b->ndim != 1 || b->shape[0] != n || b->itemsize != 8 || (f != 'd' && !strchr("lq", f))) {
            PyErr_SetString(PyExc_TypeError, "columns: 1-D C-contiguous float64 or int64 arrays of len(out) values");
            PyBuffer_Release(b);
            goto release;
        }
    }
    unsigned long long bad = 0; /* a float64 column's value with every exponent bit set: infinite or NaN */
    Py_BEGIN_ALLOW_THREADS
    double *out = bout.buf;
    for (Py_ssize_t a = 0; a < n; a += 4096) {
        Py_ssize_t e = n - a < 4096 ? n : a + 4096;
        for (Py_ssize_t j = 0; j < d; j++) {
            if (isint[j]) {
                const long long *c = bc[j].buf;
                for (Py_ssize_t i = a; i < e; i++) out[i * d + j] = (double)c[i];
            } else {
                const double *c = bc[j].buf;
                for (Py_ssize_t i = a; i < e; i++) {
                    unsigned long long u;
                    memcpy(&u, c + i, sizeof u);
                    out[i * d + j] = c[i], bad |= (u & 0x7ff0000000000000ull) == 0x7ff0000000000000ull;
                }
            }
        }
    }
    Py_END_ALLOW_THREADS
    res = PyBool_FromLong(!bad);
release:
    for (Py_ssize_t j = 0; j < nb; j++) PyBuffer_Release(&bc[j]);
    PyBuffer_Release(&bout);
done:
    free(bc), free(isint);
    return res;
}

static PyMethodDef module_methods[] = {
    {"rows_of_columns", rows_of_columns, METH_VARARGS,
     "rows_of_columns(cols, out): out (n, d float64, C order) receives the d columns (1-D float64 or int64 arrays "
     "of n values, C-contiguous); returns whether every value is finite. Releases the GIL."},
    {NULL}};

/* ---------- the Tree type ---------- */

static void Tree_dealloc(Tree *t) {
    free(t->pts), free(t->rows), free(t->nodes);
    Py_TYPE(t)->tp_free((PyObject *)t);
}

static PyObject *Tree_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"x", "rows", "order", "leafsize", NULL};
    PyObject *ox, *orows, *oorder;
    Py_ssize_t leafsize = 16;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO|n", kwlist, &ox, &orows, &oorder, &leafsize)) return NULL;
    Py_buffer bx, br, bo;
    if (get_buf(ox, &bx, 0, 'f', 2, "x") < 0) return NULL;
    if (get_buf(orows, &br, 0, 'i', 1, "rows") < 0) return PyBuffer_Release(&bx), NULL;
    if (get_buf(oorder, &bo, 1, 'i', 1, "order") < 0) return PyBuffer_Release(&bx), PyBuffer_Release(&br), NULL;
    Tree *t = NULL;
    Py_ssize_t n = br.shape[0], d = bx.shape[1];
    if (bo.shape[0] != n || n < 1 || d < 1 || leafsize < 1)
        PyErr_SetString(PyExc_ValueError, "need at least one row and one column, order as long as rows, leafsize >= 1");
    else if (check_rows(br.buf, n, bx.shape[0]) == 0 && (t = (Tree *)type->tp_alloc(type, 0)) != NULL) {
        t->n = n, t->d = d;
        if (build_tree(t, bx.buf, br.buf, leafsize, bo.buf) < 0) {
            Py_DECREF(t);
            t = (Tree *)PyErr_NoMemory();
        }
    }
    PyBuffer_Release(&bx), PyBuffer_Release(&br), PyBuffer_Release(&bo);
    return (PyObject *)t;
}

static PyObject *Tree_query(Tree *t, PyObject *args) {
    PyObject *ox, *oq, *od, *oi, *res = NULL;
    if (!PyArg_ParseTuple(args, "OOOO", &ox, &oq, &od, &oi)) return NULL;
    Py_buffer bx, bq, bd, bi;
    if (get_buf(ox, &bx, 0, 'f', 2, "x") < 0) return NULL;
    if (get_buf(oq, &bq, 0, 'i', 1, "qrows") < 0) goto fail1;
    if (get_buf(od, &bd, 1, 'f', 2, "d2_out") < 0) goto fail2;
    if (get_buf(oi, &bi, 1, 'i', 2, "idx_out") < 0) goto fail3;
    Py_ssize_t m = bq.shape[0], k = bd.shape[1];
    int rc = 0;
    if (bx.shape[1] != t->d || bd.shape[0] != m || bi.shape[0] != m || bi.shape[1] != k || k < 1 || k > t->n)
        PyErr_Format(PyExc_ValueError, "x needs %zd columns, the outputs (len(qrows), k) with 1 <= k <= %zd",
                     t->d, t->n);
    else if (check_rows(bq.buf, m, bx.shape[0]) == 0) {
        Py_BEGIN_ALLOW_THREADS
        rc = run_queries(t, bx.buf, bq.buf, m, k, bd.buf, bi.buf, NULL, 0.0, NULL);
        Py_END_ALLOW_THREADS
        res = rc < 0 ? PyErr_NoMemory() : Py_NewRef(Py_None);
    }
    PyBuffer_Release(&bi);
fail3:
    PyBuffer_Release(&bd);
fail2:
    PyBuffer_Release(&bq);
fail1:
    PyBuffer_Release(&bx);
    return res;
}

static PyObject *Tree_votes(Tree *t, PyObject *args) {
    PyObject *ox, *oq, *ol, *oc, *res = NULL;
    Py_ssize_t k;
    double rtol;
    if (!PyArg_ParseTuple(args, "OOOndO", &ox, &oq, &ol, &k, &rtol, &oc)) return NULL;
    Py_buffer bx, bq, bl, bc;
    if (get_buf(ox, &bx, 0, 'f', 2, "x") < 0) return NULL;
    if (get_buf(oq, &bq, 0, 'i', 1, "qrows") < 0) goto fail1;
    if (get_buf(ol, &bl, 0, 'b', 1, "labels") < 0) goto fail2;
    if (get_buf(oc, &bc, 1, 'i', 1, "count_out") < 0) goto fail3;
    Py_ssize_t m = bq.shape[0];
    int rc = 0;
    if (bx.shape[1] != t->d || bl.shape[0] != bx.shape[0] || bc.shape[0] != m || k < 1 || k + 1 > t->n)
        PyErr_Format(PyExc_ValueError, "x needs %zd columns, labels one per row of x, count_out one per query, "
                     "1 <= k < %zd", t->d, t->n);
    else if (check_rows(bq.buf, m, bx.shape[0]) == 0) {
        Py_BEGIN_ALLOW_THREADS
        rc = run_queries(t, bx.buf, bq.buf, m, k + 1, NULL, NULL, bl.buf, rtol, bc.buf);
        Py_END_ALLOW_THREADS
        res = rc < 0 ? PyErr_NoMemory() : Py_NewRef(Py_None);
    }
    PyBuffer_Release(&bc);
fail3:
    PyBuffer_Release(&bl);
fail2:
    PyBuffer_Release(&bq);
fail1:
    PyBuffer_Release(&bx);
    return res;
}

static PyMethodDef Tree_methods[] = {
    {"query", (PyCFunction)Tree_query, METH_VARARGS,
     "query(x, qrows, d2_out, idx_out): the k = d2_out.shape[1] nearest tree rows of each row qrows[i] of x, "
     "squared distances ascending in d2_out[i], their row numbers in idx_out[i]; releases the GIL."},
    {"votes", (PyCFunction)Tree_votes, METH_VARARGS,
     "votes(x, qrows, labels, k, rtol, count_out): count_out[i] = how many of the k nearest tree rows of row "
     "qrows[i] of x have a true label (labels: bool, one per row of x), or -1 where the (k+1)-th squared "
     "distance is within rtol (relative) of the k-th (needs k < n); releases the GIL."},
    {NULL}};

static PyTypeObject TreeType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "clarify.bias._knn.Tree",
    .tp_basicsize = sizeof(Tree),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Tree(x, rows, order, leafsize=16): a KD-tree over rows of x (float64, C order); order (intp, "
              "len(rows)) receives the rows in leaf order. The build releases the GIL.",
    .tp_new = Tree_new,
    .tp_dealloc = (destructor)Tree_dealloc,
    .tp_methods = Tree_methods,
};

static struct PyModuleDef knn_module = {PyModuleDef_HEAD_INIT, "_knn", "Exact k-NN on a KD-tree (see _knn.c).", -1, module_methods};

PyMODINIT_FUNC PyInit__knn(void) {
    if (PyType_Ready(&TreeType) < 0) return NULL;
    PyObject *m = PyModule_Create(&knn_module);
    if (m && PyModule_AddObjectRef(m, "Tree", (PyObject *)&TreeType) < 0) Py_CLEAR(m);
    return m;
}
