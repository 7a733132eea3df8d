// Convolution kernels for one CPU ISA (see cpu/conv2d_table.h for what each computes).
// No include guard: included once per ISA, each time into the namespace DLK_ISA names.
// Requires cpu/kernels/gemm.h (Tile) first.
//
// Everything works on "runs": output columns that are consecutive in memory in the planes (one
// output row, or a whole image when the plane width equals the output width). A run of the GEMM
// panel for tap (r, s) is one contiguous copy from plane + tap(r, s) + run.base.

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

// dst[e] = src[e * stride] inside [0, n_src), zero outside, for e < n; src may start before 0.
template <class T>
inline void gather_run(T* dst, const T* src, int64_t first, int64_t stride, int64_t n_src, int64_t n) {
  if (stride == 1) {
    const int64_t lo = first < 0 ? (-first < n ? -first : n) : 0;
    int64_t hi = n_src - first < n ? n_src - first : n;
    if (hi < lo) hi = lo;
    zero_run(dst, lo);
    copy_run(dst + lo, src + first + lo, hi - lo);
    zero_run(dst + hi, n - hi);
    return;
  }
  int64_t e = 0;
  if (stride == 2) {
    using V = Vec<T>;
    for (; e < n && first + 2 * e < 0; ++e) dst[e] = T(0);
    // Whole vectors while all 2W source values they read are inside the row.
    for (; e + V::W <= n && first + 2 * (e + V::W) <= n_src; e += V::W) even(src + first + 2 * e).store(dst + e);
  }
  for (; e < n; ++e) {
    const int64_t i = first + e * stride;
    dst[e] = (i >= 0 && i < n_src) ? src[i] : T(0);
  }
}

struct Run {
  int64_t offset;  // position within the panel / chunk
  int64_t len;
  int64_t base;    // plane offset of its first output (n img_stride + p cols + q)
};

// Splits output columns [j, j + count) (j = n PQ + p Q + q) into at most `max_runs` runs and
// returns how many; `count` is reduced to what fits.
inline int split_runs(const ConvPlanes& cp, int64_t img_stride, int64_t j, int64_t& count, Run* runs,
                      int max_runs) {
  const Conv2dGeometry& g = cp.g;
  const int64_t PQ = g.PQ(), cols = cp.layout.cols;
  const bool rows_contiguous = cols == g.Q;
  int nr = 0;
  int64_t e = 0;
  while (e < count && nr < max_runs) {
    const int64_t jj = j + e, n = jj / PQ, pq = jj % PQ, p = pq / g.Q, q = pq % g.Q;
    int64_t len = rows_contiguous ? PQ - pq : g.Q - q;
    if (len > count - e) len = count - e;
    runs[nr++] = {e, len, n * img_stride + p * cols + q};
    e += len;
  }
  count = e;
  return nr;
}

}  // namespace conv

template <class T>
void build_plane(const Conv2dGeometry& g, const PlaneLayout& L, const T* x, T* plane) {
  for (int64_t a = 0; a < g.sh; ++a) {
    for (int64_t b = 0; b < g.sw; ++b) {
      // Phases no tap reads (e.g. the odd pixels of a 1x1 stride-2 convolution) stay unwritten.
      bool used_h = false, used_w = false;
      for (int64_t r = 0; r < g.R; ++r) used_h |= (r * g.dh) % g.sh == a;
      for (int64_t s = 0; s < g.S; ++s) used_w |= (s * g.dw) % g.sw == b;
      if (!used_h || !used_w) continue;
      T* phase = plane + (a * g.sw + b) * L.rows * L.cols;
      for (int64_t u = 0; u < L.rows; ++u) {
        const int64_t ih = u * g.sh + a - g.ph;
        T* out = phase + u * L.cols;
        if (ih < 0 || ih >= g.H) {
          conv::zero_run(out, L.cols);
        } else {
          conv::gather_run(out, x + ih * g.W, b - g.pw, g.sw, g.W, L.cols);
        }
      }
    }
  }
}

template <class T>
void read_plane(const Conv2dGeometry& g, const PlaneLayout& L, const T* plane, T* x) {
  for (int64_t ih = 0; ih < g.H; ++ih) {
    T* out = x + ih * g.W;
    const int64_t a = (ih + g.ph) % g.sh, u = (ih + g.ph) / g.sh;
    if (u >= L.rows) {
      conv::zero_run(out, g.W);
      continue;
    }
    if (g.sw == 1) {
      // Columns iw + pw that exist in the plane; the rest got no gradient.
      conv::gather_run(out, plane + (a * L.rows + u) * L.cols, g.pw, 1, L.cols, g.W);
      continue;
    }
    auto pixel = [&](int64_t iw) {
      const int64_t t = iw + g.pw, v = t / g.sw;
      return v < L.cols ? plane[((a * g.sw + t % g.sw) * L.rows + u) * L.cols + v] : T(0);
    };
    int64_t iw = 0;
    if (g.sw == 2) {
      // Pairs (even phase, odd phase) of one plane column interleave back into the row.
      using V = Vec<T>;
      const T* even_row = plane + ((a * 2) * L.rows + u) * L.cols;
      const T* odd_row = plane + ((a * 2 + 1) * L.rows + u) * L.cols;
      if ((g.pw & 1) != 0) out[0] = pixel(0), iw = 1;
      for (; iw + 2 * V::W <= g.W && (iw + g.pw) / 2 + V::W <= L.cols; iw += 2 * V::W) {
        const int64_t v = (iw + g.pw) / 2;
        put_interleaved(out + iw, V::load(even_row + v), V::load(odd_row + v));
      }
    }
    for (; iw < g.W; ++iw) out[iw] = pixel(iw);
  }
}

template <class T>
void pack_im2col(const ConvPlanes& cp, const T* planes, int64_t img_stride, int64_t k0, int64_t kc, int64_t j0,
                 int64_t nc, T* dst) {
  constexpr int NR = Tile<T>::NV * Vec<T>::W;
  const int64_t RS = cp.g.RS(), size = cp.layout.size;
  conv::Run runs[NR];
  for (int64_t jp = 0; jp < nc; jp += NR) {
    int64_t cols = nc - jp < NR ? nc - jp : NR;
    const int nruns = conv::split_runs(cp, img_stride, j0 + jp, cols, runs, NR);
    int64_t c = k0 / RS, rs = k0 % RS;
    for (int64_t k = 0; k < kc; ++k) {
      const T* src = planes + c * size + cp.taps[rs];
      T* out = dst + k * NR;
      for (int i = 0; i < nruns; ++i) conv::copy_run(out + runs[i].offset, src + runs[i].base, runs[i].len);
      conv::zero_run(out + cols, NR - cols);
      if (++rs == RS) rs = 0, ++c;
    }
    dst += NR * kc;
  }
}

template <class T>
void pack_im2col_t(const ConvPlanes& cp, const T* planes, int64_t img_stride, int64_t i0, int64_t kc, int64_t j0,
                   int64_t nc, T* dst) {
  // Each panel column (c, r, s) is a contiguous run along the rows (n, p, q): load W columns x W
  // rows, transpose in registers, store W rows of the panel.
  using V = Vec<T>;
  constexpr int W = V::W, NV = Tile<T>::NV, NR = NV * W;
  constexpr int kMaxRuns = 64;
  const int64_t RS = cp.g.RS(), size = cp.layout.size;
  conv::Run runs[kMaxRuns];
  const T* src[NR];
  for (int64_t e0 = 0; e0 < kc;) {
    int64_t chunk = kc - e0;
    const int nruns = conv::split_runs(cp, img_stride, i0 + e0, chunk, runs, kMaxRuns);
    for (int64_t jp = 0; jp < nc; jp += NR) {
      T* panel = dst + jp * kc + e0 * NR;
      for (int jj = 0; jj < NR; ++jj) {
        const int64_t j = j0 + jp + jj;
        src[jj] = jp + jj < nc ? planes + (j / RS) * size + cp.taps[j % RS] : nullptr;
      }
      for (int i = 0; i < nruns; ++i) {
        const conv::Run& run = runs[i];
        for (int64_t e = 0; e < run.len; e += W) {
          const int64_t cnt = run.len - e < W ? run.len - e : W;
          for (int gv = 0; gv < NV; ++gv) {
            V v[W];
            for (int t = 0; t < W; ++t) {
              const T* p = src[gv * W + t];
              v[t] = !p ? V(T(0)) : cnt == W ? V::load(p + run.base + e) : V::load(p + run.base + e, cnt);
            }
            transpose(v);
            T* out = panel + (run.offset + e) * NR + gv * W;
            for (int64_t t = 0; t < cnt; ++t) v[t].store(out + t * NR);
          }
        }
      }
    }
    e0 += chunk;
  }
}

template <class T>
void col2im_add(const ConvPlanes& cp, const T* dcol, int64_t ldcol, int64_t c0, int64_t c1, int64_t pq0,
                int64_t ncols, T* planes) {
  constexpr int kMaxRuns = 64;
  const int64_t RS = cp.g.RS(), size = cp.layout.size;
  conv::Run runs[kMaxRuns];
  for (int64_t e0 = 0; e0 < ncols;) {
    int64_t chunk = ncols - e0;
    const int nruns = conv::split_runs(cp, 0, pq0 + e0, chunk, runs, kMaxRuns);
    for (int64_t c = c0; c < c1; ++c) {
      for (int64_t rs = 0; rs < RS; ++rs) {
        const T* row = dcol + ((c - c0) * RS + rs) * ldcol + e0;
        T* dst = planes + (c - c0) * size + cp.taps[rs];
        for (int i = 0; i < nruns; ++i) conv::add_run(dst + runs[i].base, row + runs[i].offset, runs[i].len);
      }
    }
    e0 += chunk;
  }
}

template <class T>
void dw_forward(const ConvPlanes& cp, const T* plane, const T* w, T bias, T* y) {
  using V = Vec<T>;
  constexpr int U = 4;  // vectors of one output row kept in registers across all taps
  const Conv2dGeometry& g = cp.g;
  const int64_t RS = g.RS(), cols = cp.layout.cols;
  for (int64_t p = 0; p < g.P; ++p) {
    T* yrow = y + p * g.Q;
    const T* prow = plane + p * cols;
    for (int64_t q0 = 0; q0 < g.Q; q0 += U * V::W) {
      int64_t cnt[U];
      for (int u = 0; u < U; ++u) {
        const int64_t left = g.Q - q0 - u * V::W;
        cnt[u] = left < 0 ? 0 : (left > V::W ? V::W : left);
      }
      V acc[U];
      for (int u = 0; u < U; ++u) acc[u] = V(bias);
      for (int64_t rs = 0; rs < RS; ++rs) {
        const V wv(w[rs]);
        const T* src = prow + cp.taps[rs] + q0;
#pragma GCC unroll 4
        for (int u = 0; u < U; ++u) acc[u] = fmadd(wv, V::load(src + u * V::W, cnt[u]), acc[u]);
      }
      for (int u = 0; u < U; ++u) acc[u].store(yrow + q0 + u * V::W, cnt[u]);
    }
  }
}

template <class T>
void dw_backward_input(const ConvPlanes& cp, const T* dy, const T* w, T* plane) {
  const Conv2dGeometry& g = cp.g;
  const int64_t RS = g.RS(), cols = cp.layout.cols;
  for (int64_t p = 0; p < g.P; ++p) {
    for (int64_t rs = 0; rs < RS; ++rs) conv::axpy_run(plane + cp.taps[rs] + p * cols, w[rs], dy + p * g.Q, g.Q);
  }
}

template <class T>
void dw_backward_weight(const ConvPlanes& cp, const T* dy, const T* plane, T* dw) {
  using V = Vec<T>;
  const Conv2dGeometry& g = cp.g;
  const int64_t RS = g.RS(), cols = cp.layout.cols;
  for (int64_t rs = 0; rs < RS; ++rs) {
    V acc(T(0));
    for (int64_t p = 0; p < g.P; ++p) {
      const T* a = dy + p * g.Q;
      const T* b = plane + cp.taps[rs] + p * cols;
      int64_t q = 0;
      for (; q + V::W <= g.Q; q += V::W) acc = fmadd(V::load(a + q), V::load(b + q), acc);
      if (q < g.Q) acc = fmadd(V::load(a + q, g.Q - q), V::load(b + q, g.Q - q), acc);
    }
    dw[rs] += reduce_add(acc);
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
      &build_plane<T>, &read_plane<T>,        &pack_im2col<T>,        &pack_im2col_t<T>, &col2im_add<T>,
      &dw_forward<T>,  &dw_backward_input<T>, &dw_backward_weight<T>, &sum<T>,
  };
  return table;
}

template const Conv2dTable<float>& conv2d_table<float>();
template const Conv2dTable<double>& conv2d_table<double>();

}  // namespace dlk::cpu::DLK_ISA
