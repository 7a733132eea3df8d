// Convolution kernels for one CPU ISA (see cpu/conv2d_table.h for what each computes).
// No include guard: included once per ISA, each time into the namespace DLK_ISA names.
//
// Packing works on "runs": the columns of a GEMM panel that lie in one output row, so with
// stride 1 each run reads one contiguous stretch of an input row (vector copies, zeros where it
// hangs over the padding). Requires cpu/kernels/gemm.h (Tile) to be included first.

#include "cpu/conv2d_table.h"

namespace dlk::cpu::DLK_ISA {
namespace conv {

template <class T>
inline void zero_run(T* dst, int64_t n) {
  using V = Vec<T>;
  const V z(T(0));
  int64_t i = 0;
  for (; i + V::W <= n; i += V::W) z.store(dst + i);
  if (i < n) z.store(dst + i, n - i);
}

template <class T>
inline void copy_run(T* dst, const T* src, int64_t n) {
  using V = Vec<T>;
  int64_t i = 0;
  for (; i + V::W <= n; i += V::W) V::load(src + i).store(dst + i);
  if (i < n) V::load(src + i, n - i).store(dst + i, n - i);
}

template <class T>
inline void add_run(T* dst, const T* src, int64_t n) {
  using V = Vec<T>;
  int64_t i = 0;
  for (; i + V::W <= n; i += V::W) (V::load(dst + i) + V::load(src + i)).store(dst + i);
  if (i < n) (V::load(dst + i, n - i) + V::load(src + i, n - i)).store(dst + i, n - i);
}

// dst[e] += w * src[e] for e < n.
template <class T>
inline void axpy_run(T* dst, T w, const T* src, int64_t n) {
  using V = Vec<T>;
  const V wv(w);
  int64_t i = 0;
  for (; i + V::W <= n; i += V::W) fmadd(wv, V::load(src + i), V::load(dst + i)).store(dst + i);
  if (i < n) fmadd(wv, V::load(src + i, n - i), V::load(dst + i, n - i)).store(dst + i, n - i);
}

// A stretch of output columns inside one output row (p, q .. q + len) of image n.
struct Run {
  int64_t offset;  // position within the panel / chunk
  int64_t len;
  int64_t n, p, q;
};

// The most columns one split_runs call may cover with `max_runs` runs.
inline int64_t run_span(const Conv2dGeometry& g, int max_runs) {
  return (max_runs - 2) * (g.is_pointwise() ? g.PQ() : g.Q);
}

// Splits output columns [j, j + count) (j = n PQ + p Q + q) into runs; returns how many.
// A pointwise convolution reads its input plane like its output plane, so its runs span rows.
inline int split_runs(const Conv2dGeometry& g, int64_t j, int64_t count, Run* runs) {
  const int64_t PQ = g.PQ();
  const int64_t row = g.is_pointwise() ? PQ : g.Q;
  int nr = 0;
  for (int64_t e = 0; e < count;) {
    const int64_t jj = j + e, n = jj / PQ, pq = jj % PQ;
    const int64_t p = g.is_pointwise() ? 0 : pq / g.Q, q = g.is_pointwise() ? pq : pq % g.Q;
    int64_t len = row - q;
    if (len > count - e) len = count - e;
    runs[nr++] = {e, len, n, p, q};
    e += len;
  }
  return nr;
}

// Input columns iw = iw0 + e for e < len that fall inside [0, W): [lo, hi).
inline void valid_span(int64_t iw0, int64_t len, int64_t W, int64_t& lo, int64_t& hi) {
  lo = iw0 < 0 ? -iw0 : 0;
  hi = W - iw0 < len ? W - iw0 : len;
  if (lo > len) lo = len;
  if (hi < lo) hi = lo;
}

// dst[e] = x_row[iw0 + e * sw] inside [0, W), zero outside; e < len.
template <class T>
inline void gather_run(T* dst, const T* x_row, int64_t iw0, int64_t sw, int64_t W, int64_t len) {
  if (sw == 1) {
    int64_t lo, hi;
    valid_span(iw0, len, W, lo, hi);
    zero_run(dst, lo);
    copy_run(dst + lo, x_row + iw0 + lo, hi - lo);
    zero_run(dst + hi, len - hi);
    return;
  }
  for (int64_t e = 0; e < len; ++e) {
    const int64_t iw = iw0 + e * sw;
    dst[e] = (iw >= 0 && iw < W) ? x_row[iw] : T(0);
  }
}

}  // namespace conv

template <class T>
void pack_im2col(const Conv2dGeometry& g, const T* x, int64_t x_img_stride, int64_t k0, int64_t kc, int64_t j0,
                 int64_t nc, T* dst) {
  constexpr int NR = Tile<T>::NV * Vec<T>::W;
  const int64_t RS = g.RS(), HW = g.HW();
  conv::Run runs[NR];
  for (int64_t jp = 0; jp < nc; jp += NR) {
    const int64_t cols = nc - jp < NR ? nc - jp : NR;
    const int nruns = conv::split_runs(g, j0 + jp, cols, runs);
    for (int64_t k = k0; k < k0 + kc; ++k) {
      const int64_t c = k / RS, r = (k % RS) / g.S, s = k % g.S;
      T* out = dst + (k - k0) * NR;
      for (int i = 0; i < nruns; ++i) {
        const conv::Run& run = runs[i];
        const T* plane = x + run.n * x_img_stride + c * HW;
        if (g.is_pointwise()) {
          conv::copy_run(out + run.offset, plane + run.q, run.len);
          continue;
        }
        const int64_t ih = run.p * g.sh - g.ph + r * g.dh;
        if (ih < 0 || ih >= g.H) {
          conv::zero_run(out + run.offset, run.len);
        } else {
          conv::gather_run(out + run.offset, plane + ih * g.W, run.q * g.sw - g.pw + s * g.dw, g.sw, g.W, run.len);
        }
      }
      conv::zero_run(out + cols, NR - cols);
    }
    dst += NR * kc;
  }
}

template <class T>
void pack_im2col_t(const Conv2dGeometry& g, const T* x, int64_t pq0, int64_t kc, int64_t j0, int64_t nc, T* dst) {
  constexpr int NR = Tile<T>::NV * Vec<T>::W;
  const int64_t RS = g.RS(), HW = g.HW();
  // Runs of the kc rows (output positions of one image); at most kc / Q + 2 of them.
  constexpr int kMaxRuns = 64;
  conv::Run runs[kMaxRuns];
  alignas(64) T line[1024];  // one run gathered contiguously, then spread with stride NR
  for (int64_t jp = 0; jp < nc; jp += NR) {
    const int64_t cols = nc - jp < NR ? nc - jp : NR;
    for (int64_t jj = 0; jj < NR; ++jj) {
      if (jj >= cols) {
        for (int64_t e = 0; e < kc; ++e) dst[e * NR + jj] = T(0);
        continue;
      }
      const int64_t j = j0 + jp + jj;
      const int64_t c = j / RS, r = (j % RS) / g.S, s = j % g.S;
      const T* plane = x + c * HW;
      for (int64_t e0 = 0; e0 < kc;) {
        // Re-split in chunks so the run list and the line buffer stay bounded.
        int64_t chunk = kc - e0 < 1024 ? kc - e0 : 1024;
        if (chunk > conv::run_span(g, kMaxRuns)) chunk = conv::run_span(g, kMaxRuns);
        const int nruns = conv::split_runs(g, pq0 + e0, chunk, runs);
        for (int i = 0; i < nruns; ++i) {
          const conv::Run& run = runs[i];
          T* col = dst + (e0 + run.offset) * NR + jj;
          if (g.is_pointwise()) {
            const T* src = plane + run.q;
            for (int64_t e = 0; e < run.len; ++e) col[e * NR] = src[e];
            continue;
          }
          const int64_t ih = run.p * g.sh - g.ph + r * g.dh;
          if (ih < 0 || ih >= g.H) {
            for (int64_t e = 0; e < run.len; ++e) col[e * NR] = T(0);
            continue;
          }
          conv::gather_run(line, plane + ih * g.W, run.q * g.sw - g.pw + s * g.dw, g.sw, g.W, run.len);
          for (int64_t e = 0; e < run.len; ++e) col[e * NR] = line[e];
        }
        e0 += chunk;
      }
    }
    dst += NR * kc;
  }
}

template <class T>
void col2im_add(const Conv2dGeometry& g, const T* dcol, int64_t ldcol, int64_t c0, int64_t c1, int64_t pq0,
                int64_t ncols, T* dx) {
  constexpr int kMaxRuns = 64;
  conv::Run runs[kMaxRuns];
  const int64_t HW = g.HW();
  for (int64_t e0 = 0; e0 < ncols;) {
    int64_t chunk = ncols - e0 < 1024 ? ncols - e0 : 1024;
    if (chunk > conv::run_span(g, kMaxRuns)) chunk = conv::run_span(g, kMaxRuns);
    const int nruns = conv::split_runs(g, pq0 + e0, chunk, runs);
    for (int64_t c = c0; c < c1; ++c) {
      T* plane = dx + c * HW;
      for (int64_t r = 0; r < g.R; ++r) {
        for (int64_t s = 0; s < g.S; ++s) {
          const T* row = dcol + (((c - c0) * g.R + r) * g.S + s) * ldcol + e0;
          for (int i = 0; i < nruns; ++i) {
            const conv::Run& run = runs[i];
            if (g.is_pointwise()) {
              conv::add_run(plane + run.q, row + run.offset, run.len);
              continue;
            }
            const int64_t ih = run.p * g.sh - g.ph + r * g.dh;
            if (ih < 0 || ih >= g.H) continue;
            T* dst = plane + ih * g.W;
            const int64_t iw0 = run.q * g.sw - g.pw + s * g.dw;
            if (g.sw == 1) {
              int64_t lo, hi;
              conv::valid_span(iw0, run.len, g.W, lo, hi);
              conv::add_run(dst + iw0 + lo, row + run.offset + lo, hi - lo);
            } else {
              for (int64_t e = 0; e < run.len; ++e) {
                const int64_t iw = iw0 + e * g.sw;
                if (iw >= 0 && iw < g.W) dst[iw] += row[run.offset + e];
              }
            }
          }
        }
      }
    }
    e0 += chunk;
  }
}

template <class T>
void dw_build_plane(const T* x, int64_t H, int64_t W, int64_t pad_h, int64_t pad_w, int64_t sw, int64_t rows,
                    int64_t cols, T* plane) {
  for (int64_t phi = 0; phi < sw; ++phi) {
    for (int64_t u = 0; u < rows; ++u) {
      T* out = plane + (phi * rows + u) * cols;
      const int64_t ih = u - pad_h;
      if (ih < 0 || ih >= H) {
        conv::zero_run(out, cols);
      } else {
        conv::gather_run(out, x + ih * W, phi - pad_w, sw, W, cols);
      }
    }
  }
}

template <class T>
void dw_read_plane(const T* plane, int64_t H, int64_t W, int64_t pad_h, int64_t pad_w, int64_t sw, int64_t rows,
                   int64_t cols, T* x) {
  for (int64_t ih = 0; ih < H; ++ih) {
    T* out = x + ih * W;
    const int64_t u = ih + pad_h;
    if (u < 0 || u >= rows) {
      conv::zero_run(out, W);
      continue;
    }
    if (sw == 1) {
      // x[ih][iw] = plane[u][iw + pad_w] where that column exists.
      int64_t lo, hi;
      conv::valid_span(pad_w, W, cols, lo, hi);
      conv::zero_run(out, lo);
      conv::copy_run(out + lo, plane + u * cols + pad_w + lo, hi - lo);
      conv::zero_run(out + hi, W - hi);
      continue;
    }
    for (int64_t iw = 0; iw < W; ++iw) {
      const int64_t t = iw + pad_w;
      const int64_t v = t / sw;
      out[iw] = (t >= 0 && v < cols) ? plane[((t % sw) * rows + u) * cols + v] : T(0);
    }
  }
}

// The plane offset of tap (r, s) for output row p, column 0.
inline int64_t dw_tap(const Conv2dGeometry& g, int64_t rows, int64_t cols, int64_t p, int64_t r, int64_t s) {
  const int64_t t = s * g.dw;
  return ((t % g.sw) * rows + p * g.sh + r * g.dh) * cols + t / g.sw;
}

template <class T>
void dw_forward(const Conv2dGeometry& g, const T* plane, int64_t rows, int64_t cols, const T* w, T bias, T* y) {
  using V = Vec<T>;
  constexpr int U = 4;  // vectors of one output row kept in registers across all taps
  for (int64_t p = 0; p < g.P; ++p) {
    T* yrow = y + p * g.Q;
    for (int64_t q0 = 0; q0 < g.Q; q0 += U * V::W) {
      int64_t cnt[U];
      for (int u = 0; u < U; ++u) {
        const int64_t left = g.Q - q0 - u * V::W;
        cnt[u] = left < 0 ? 0 : (left > V::W ? V::W : left);
      }
      V acc[U];
      for (int u = 0; u < U; ++u) acc[u] = V(bias);
      for (int64_t r = 0; r < g.R; ++r) {
        for (int64_t s = 0; s < g.S; ++s) {
          const V wv(w[r * g.S + s]);
          const T* src = plane + dw_tap(g, rows, cols, p, r, s) + q0;
#pragma GCC unroll 4
          for (int u = 0; u < U; ++u) acc[u] = fmadd(wv, V::load(src + u * V::W, cnt[u]), acc[u]);
        }
      }
      for (int u = 0; u < U; ++u) acc[u].store(yrow + q0 + u * V::W, cnt[u]);
    }
  }
}

template <class T>
void dw_backward_input(const Conv2dGeometry& g, const T* dy, const T* w, int64_t rows, int64_t cols, T* plane) {
  for (int64_t p = 0; p < g.P; ++p) {
    const T* dyrow = dy + p * g.Q;
    for (int64_t r = 0; r < g.R; ++r) {
      for (int64_t s = 0; s < g.S; ++s) {
        conv::axpy_run(plane + dw_tap(g, rows, cols, p, r, s), w[r * g.S + s], dyrow, g.Q);
      }
    }
  }
}

template <class T>
void dw_backward_weight(const Conv2dGeometry& g, const T* dy, const T* plane, int64_t rows, int64_t cols, T* dw) {
  using V = Vec<T>;
  for (int64_t r = 0; r < g.R; ++r) {
    for (int64_t s = 0; s < g.S; ++s) {
      V acc(T(0));
      for (int64_t p = 0; p < g.P; ++p) {
        const T* a = dy + p * g.Q;
        const T* b = plane + dw_tap(g, rows, cols, p, r, s);
        int64_t q = 0;
        for (; q + V::W <= g.Q; q += V::W) acc = fmadd(V::load(a + q), V::load(b + q), acc);
        if (q < g.Q) acc = fmadd(V::load(a + q, g.Q - q), V::load(b + q, g.Q - q), acc);
      }
      dw[r * g.S + s] += reduce_add(acc);
    }
  }
}

template <class T>
T sum(const T* x, int64_t n) {
  using V = Vec<T>;
  V a0(T(0)), a1(T(0));
  int64_t i = 0;
  for (; i + 2 * V::W <= n; i += 2 * V::W) {
    a0 = a0 + V::load(x + i);
    a1 = a1 + V::load(x + i + V::W);
  }
  for (; i + V::W <= n; i += V::W) a0 = a0 + V::load(x + i);
  if (i < n) a1 = a1 + V::load(x + i, n - i);
  return reduce_add(a0 + a1);
}

template <class T>
const Conv2dTable<T>& conv2d_table() {
  static constexpr Conv2dTable<T> table = {
      &pack_im2col<T>, &pack_im2col_t<T>, &col2im_add<T>,        &dw_build_plane<T>, &dw_read_plane<T>,
      &dw_forward<T>,  &dw_backward_input<T>, &dw_backward_weight<T>, &sum<T>,
  };
  return table;
}

template const Conv2dTable<float>& conv2d_table<float>();
template const Conv2dTable<double>& conv2d_table<double>();

}  // namespace dlk::cpu::DLK_ISA
