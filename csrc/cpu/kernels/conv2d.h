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
  int64_t base;  // plane offset of its first output (n img_stride + p cols + q)
};

// Splits output columns [j, j + count) (j = n PQ + p Q + q) into at most `max_runs` runs and
// returns how many; `count` is reduced to what fits.
inline int split_runs(const ConvPlanes& cp, int64_t img_stride, int64_t j, int64_t& count, Run* runs, int max_runs) {
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
  for (int64_t a = 0; a < L.h.phases; ++a) {
    if (!L.h.used(a)) continue;  // e.g. the odd rows of a 1x1 stride-2 convolution: never read
    for (int64_t b = 0; b < L.w.phases; ++b) {
      if (!L.w.used(b)) continue;
      T* phase = plane + L.phase_offset(a, b);
      // Stored column v of this phase is input column first + v sw.
      const int64_t first = b * L.w.step - g.pw;
      for (int64_t u = 0; u < L.rows; ++u) {
        const int64_t ih = L.h.source(a, u);
        T* out = phase + u * L.cols;
        if (ih < 0) {
          conv::zero_run(out, L.cols);
        } else {
          conv::gather_run(out, x + ih * g.W, first, g.sw, g.W, L.cols);
        }
      }
    }
  }
}

template <class T>
void read_plane(const Conv2dGeometry& g, const PlaneLayout& L, const T* plane, T* x) {
  for (int64_t ih = 0; ih < g.H; ++ih) {
    T* out = x + ih * g.W;
    const int64_t loc = L.h.locate(ih);
    if (loc < 0) {  // no tap reads this row: no gradient
      conv::zero_run(out, g.W);
      continue;
    }
    const int64_t a = loc / L.rows, u = loc % L.rows;
    if (!L.w.full_phases()) {
      // Sparse columns or a gcd(dilation, stride) > 1: look each column up.
      for (int64_t iw = 0; iw < g.W; ++iw) {
        const int64_t c = L.w.locate(iw);
        out[iw] = c < 0 ? T(0) : plane[L.phase_offset(a, c / L.cols) + u * L.cols + c % L.cols];
      }
      continue;
    }
    if (g.sw == 1) {
      // Columns iw + pw that exist in the plane; the rest got no gradient.
      conv::gather_run(out, plane + L.phase_offset(a, 0) + u * L.cols, g.pw, 1, L.cols, g.W);
      continue;
    }
    int64_t iw = 0;
    if (g.sw == 2) {
      // Pairs (even phase, odd phase) of one plane column interleave back into the row; the last,
      // partial pair block goes through a small buffer instead of a scalar loop (a third of a
      // 56-wide row, and the loop's divisions made it most of a strided backward's time).
      using V = Vec<T>;
      const T* even_row = plane + L.phase_offset(a, 0) + u * L.cols;
      const T* odd_row = plane + L.phase_offset(a, 1) + u * L.cols;
      if ((g.pw & 1) != 0) {  // iw = 0 is odd-phase pixel pw / 2; from iw = 1 on, pairs start even
        out[0] = g.pw / 2 < L.cols ? odd_row[g.pw / 2] : T(0);
        iw = 1;
      }
      for (; iw < g.W; iw += 2 * V::W) {
        const int64_t v = (iw + g.pw) / 2, avail = L.cols - v;
        const V e = avail >= V::W ? V::load(even_row + v) : avail > 0 ? V::load(even_row + v, avail) : V(T(0));
        const V o = avail >= V::W ? V::load(odd_row + v) : avail > 0 ? V::load(odd_row + v, avail) : V(T(0));
        if (iw + 2 * V::W <= g.W) {
          put_interleaved(out + iw, e, o);
        } else {
          alignas(64) T pair[2 * V::W];
          put_interleaved(pair, e, o);
          conv::copy_run(out + iw, pair, g.W - iw);
        }
      }
      continue;
    }
    // Other strides: column phase by column phase, each a strided run of the output row.
    for (int64_t b = 0; b < g.sw; ++b) {
      const T* src = plane + L.phase_offset(a, b) + u * L.cols;
      const int64_t first = ((b - g.pw) % g.sw + g.sw) % g.sw;  // first iw with (iw + pw) % sw == b
      for (iw = first; iw < g.W; iw += g.sw) {
        const int64_t v = (iw + g.pw) / g.sw;
        out[iw] = v < L.cols ? src[v] : T(0);
      }
    }
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
void col2im_add(const ConvPlanes& cp, const T* dcol, int64_t ldcol, int64_t c0, int64_t c1, int64_t pq0, int64_t ncols,
                T* planes) {
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

// col2im_add for stride 1 with dcol's columns over the plane's full width (f = p cols + q, see
// dw_flat; the padding columns hold zeros): each row (c, r, s) lands on one contiguous run of
// its channel's plane, at the tap's offset.
template <class T>
void col2im_add_flat(const ConvPlanes& cp, const T* dcol, int64_t ldcol, int64_t c0, int64_t c1, int64_t f0,
                     int64_t ncols, T* planes) {
  const int64_t RS = cp.g.RS(), size = cp.layout.size;
  for (int64_t c = c0; c < c1; ++c) {
    for (int64_t rs = 0; rs < RS; ++rs) {
      conv::add_run(planes + (c - c0) * size + cp.taps[rs] + f0, dcol + ((c - c0) * RS + rs) * ldcol, ncols);
    }
  }
}

// Depthwise kernels work on a plane's full width: output (p, q) is computed at flat index
// f = p cols + q for every q < cols, padding columns included (their values are thrown away, or
// are zeros in a gradient), so each tap is one long contiguous run over f instead of P runs of Q.
// At 7 x 7 outputs that uses 49 of 63 lanes instead of 7 of 16.
inline int64_t dw_flat(const ConvPlanes& cp) { return (cp.g.P - 1) * cp.layout.cols + cp.g.Q; }

template <class T>
void dw_forward(const ConvPlanes& cp, const T* plane, const T* w, T bias, T* ext, T* y) {
  using V = Vec<T>;
  constexpr int U = 4;  // vectors kept in registers across all taps
  const Conv2dGeometry& g = cp.g;
  const int64_t RS = g.RS(), cols = cp.layout.cols, F = dw_flat(cp);
  T* out = cols == g.Q ? y : ext;  // a plane as wide as the output needs no crop
  for (int64_t f0 = 0; f0 < F; f0 += U * V::W) {
    int64_t cnt[U];
    for (int u = 0; u < U; ++u) {
      const int64_t left = F - f0 - u * V::W;
      cnt[u] = left < 0 ? 0 : (left > V::W ? V::W : left);
    }
    V acc[U];
    for (int u = 0; u < U; ++u) acc[u] = V(bias);
    for (int64_t rs = 0; rs < RS; ++rs) {
      const V wv(w[rs]);
      const T* src = plane + cp.taps[rs] + f0;
#pragma GCC unroll 4
      for (int u = 0; u < U; ++u) acc[u] = fmadd(wv, V::load(src + u * V::W, cnt[u]), acc[u]);
    }
    for (int u = 0; u < U; ++u) acc[u].store(out + f0 + u * V::W, cnt[u]);
  }
  if (out == ext) {
    for (int64_t p = 0; p < g.P; ++p) conv::copy_run(y + p * g.Q, ext + p * cols, g.Q);
  }
}

template <class T>
const T* dw_extend(const ConvPlanes& cp, const T* dy, T* ext) {
  const Conv2dGeometry& g = cp.g;
  const int64_t cols = cp.layout.cols;
  if (cols == g.Q) return dy;
  for (int64_t p = 0; p < g.P; ++p) {
    conv::copy_run(ext + p * cols, dy + p * g.Q, g.Q);
    if (p + 1 < g.P) conv::zero_run(ext + p * cols + g.Q, cols - g.Q);
  }
  return ext;
}

template <class T>
const T* dw_pad_grad(const ConvPlanes& cp, const T* dy, T* buf) {
  const Conv2dGeometry& g = cp.g;
  const int64_t cols = cp.layout.cols, above = dw_grad_rows_above(cp), below = cp.layout.rows - g.P;
  conv::zero_run(buf, above * cols);
  T* base = buf + above * cols;
  for (int64_t p = 0; p < g.P; ++p) {
    conv::copy_run(base + p * cols, dy + p * g.Q, g.Q);
    conv::zero_run(base + p * cols + g.Q, cols - g.Q);
  }
  conv::zero_run(base + g.P * cols, below * cols);
  return base;
}

// Gather form of the transpose of dw_forward: each plane phase is written once from registers,
// plane[phase][f] (+)= sum over the phase's taps of w[t] dy_pad[f - offset_t]. The scatter form
// (plane[offset_t + f] += w[t] dy[f], tap by tap) re-reads what the previous tap just stored at an
// offset of a few elements, and those loads miss store forwarding: 3x slower on MobileNetV2's
// stride-2 layer (benchmarks/README.md).
template <class T>
void dw_backward_input(const ConvPlanes& cp, const T* dy_pad, const T* w, bool accumulate, T* plane) {
  using V = Vec<T>;
  constexpr int U = 4;
  const Conv2dGeometry& g = cp.g;
  const int64_t RS = g.RS(), phase_size = cp.layout.rows * cp.layout.cols;
  for (int64_t phase = 0; phase < cp.layout.phases(); ++phase) {
    const int64_t lo = phase * phase_size, hi = lo + phase_size;
    T* dst = plane + lo;
    bool any = false;
    for (int64_t rs = 0; rs < RS; ++rs) any |= cp.taps[rs] >= lo && cp.taps[rs] < hi;
    if (!any) {  // no tap reads this phase: it gets no gradient
      if (!accumulate) conv::zero_run(dst, phase_size);
      continue;
    }
    for (int64_t f0 = 0; f0 < phase_size; f0 += U * V::W) {
      int64_t cnt[U];
      V acc[U];
      for (int u = 0; u < U; ++u) {
        const int64_t left = phase_size - f0 - u * V::W;
        cnt[u] = left < 0 ? 0 : (left > V::W ? V::W : left);
        acc[u] = accumulate ? V::load(dst + f0 + u * V::W, cnt[u]) : V(T(0));
      }
      for (int64_t rs = 0; rs < RS; ++rs) {
        if (cp.taps[rs] < lo || cp.taps[rs] >= hi) continue;
        const V wv(w[rs]);
        const T* src = dy_pad + f0 - (cp.taps[rs] - lo);
#pragma GCC unroll 4
        for (int u = 0; u < U; ++u) acc[u] = fmadd(wv, V::load(src + u * V::W, cnt[u]), acc[u]);
      }
      for (int u = 0; u < U; ++u) acc[u].store(dst + f0 + u * V::W, cnt[u]);
    }
  }
}

template <class T>
void dw_backward_weight(const ConvPlanes& cp, const T* dy_ext, const T* plane, T* dw) {
  using V = Vec<T>;
  // Up to kTaps taps per pass over dy: each dy vector loaded once serves them all (one load per
  // FMA and a tenth instead of two: a 3x3 window is one pass).
  constexpr int kTaps = 9;
  const int64_t RS = cp.g.RS(), F = dw_flat(cp);
  for (int64_t t0 = 0; t0 < RS; t0 += kTaps) {
    const int nt = static_cast<int>(RS - t0 < kTaps ? RS - t0 : kTaps);
    const T* b[kTaps];
    V acc[kTaps];
    for (int t = 0; t < nt; ++t) {
      b[t] = plane + cp.taps[t0 + t];
      acc[t] = V(T(0));
    }
    int64_t f = 0;
    for (; f + V::W <= F; f += V::W) {
      const V d = V::load(dy_ext + f);
      for (int t = 0; t < nt; ++t) acc[t] = fmadd(d, V::load(b[t] + f), acc[t]);
    }
    if (f < F) {
      const int64_t cnt = F - f;
      const V d = V::load(dy_ext + f, cnt);
      for (int t = 0; t < nt; ++t) acc[t] = fmadd(d, V::load(b[t] + f, cnt), acc[t]);
    }
    for (int t = 0; t < nt; ++t) dw[t0 + t] += reduce_add(acc[t]);
  }
}

// Transposes nch <= W channel planes (HW apart) of one image into the pixel planes of the
// channel-blocked depthwise kernels: the PlaneLayout of the call with one W-lane vector per
// pixel, zero where padding, plus kDwBlockedTail pixels the last, partial blocks read past.
template <class T>
void dw_blocked_pack_input(const Conv2dGeometry& g, const PlaneLayout& L, const T* x, int64_t nch, T* buf) {
  using V = Vec<T>;
  constexpr int W = V::W;
  const int64_t HW = g.HW();
  conv::zero_run(buf, (L.size + kDwBlockedTail) * W);
  for (int64_t ih = 0; ih < g.H; ++ih) {
    const int64_t lh = L.h.locate(ih);
    if (lh < 0) continue;  // no tap reads this row
    const int64_t a = lh / L.rows, u = lh % L.rows;
    // Column iw + pw is phase b, column v: stepped along instead of divided out per pixel.
    const bool full = L.w.full_phases();
    int64_t b = g.pw % g.sw, v = g.pw / g.sw;
    for (int64_t iw0 = 0; iw0 < g.W; iw0 += W) {
      const int64_t cnt = g.W - iw0 < W ? g.W - iw0 : W;
      V vec[W];
      for (int lane = 0; lane < W; ++lane) {
        vec[lane] = lane < nch ? V::load(x + lane * HW + ih * g.W + iw0, cnt) : V(T(0));
      }
      transpose(vec);
      for (int64_t j = 0; j < cnt; ++j) {
        if (full) {
          if (v < L.cols) vec[j].store(buf + (L.phase_offset(a, b) + u * L.cols + v) * W);
          if (++b == g.sw) b = 0, ++v;
          continue;
        }
        const int64_t lw = L.w.locate(iw0 + j);
        if (lw >= 0) vec[j].store(buf + (L.phase_offset(a, lw / L.cols) + u * L.cols + lw % L.cols) * W);
      }
    }
  }
}

// Channel-blocked depthwise forward, for small images: W channels of one image at a time, the
// input transposed into pixel planes (one vector = one pixel's W channels), so each filter tap of
// an output pixel is one vector FMA, whatever the image width (the layout oneDNN uses for
// depthwise convolutions), and neighbouring outputs read neighbouring pixels whatever the stride.
// m = 1 (one output channel per input channel). Scratch layout (sizes in conv2d_table.h:
// dw_blocked_scratch): the pixel planes, then the outputs, P Q pixels, then the R S taps'
// weights; W lanes each.
template <class T>
void dw_blocked_forward(const Conv2dGeometry& g, const T* x, int64_t nch, const T* w, const T* bias, T* scratch, T* y) {
  using V = Vec<T>;
  constexpr int W = V::W, QB = kDwBlockedQ;
  const PlaneLayout L(g);
  const int64_t cols = L.cols, PQ = g.PQ(), RS = g.RS();
  T* buf = scratch;
  T* obuf = scratch + (L.size + kDwBlockedTail) * W;
  dw_blocked_pack_input(g, L, x, nch, buf);
  // 2. Outputs, QB pixels of a row in registers across all taps. The planes' tail pixels absorb
  // the reads of a last, partial block; those outputs are not stored.
  alignas(64) T b[W] = {};
  for (int64_t lane = 0; lane < nch && bias; ++lane) b[lane] = bias[lane];
  const V bv = V::load(b);
  T* wts = obuf + PQ * W;  // each tap's weights as one vector of W channels
  for (int64_t rs = 0; rs < RS; ++rs) {
    for (int64_t lane = 0; lane < W; ++lane) wts[rs * W + lane] = lane < nch ? w[lane * RS + rs] : T(0);
  }
  // 3-wide rows of taps at stride 1 (MobileNet's 3 x 3): neighbouring outputs share two of a
  // row's three input pixels, so each row loads its QB + 2 pixels once (30 loads per 72 FMAs
  // instead of 72; the generic loop below is load-bound).
  const bool row3 = g.sw == 1 && g.S == 3 && g.dw == 1 && !L.w.sparse;
  // Tap offsets in pixels, computed once (each takes divisions) for up to kMaxTaps taps.
  constexpr int64_t kMaxTaps = 64;
  int64_t taps[kMaxTaps];
  for (int64_t rs = 0; rs < RS && rs < kMaxTaps; ++rs) taps[rs] = L.tap(g, rs / g.S, rs % g.S);
  auto tap = [&](int64_t r, int64_t s) { return r * g.S + s < kMaxTaps ? taps[r * g.S + s] : L.tap(g, r, s); };
  for (int64_t p = 0; p < g.P; ++p) {
    for (int64_t q0 = 0; q0 < g.Q; q0 += QB) {
      V acc[QB];
      for (int i = 0; i < QB; ++i) acc[i] = bv;
      const T* wp = wts;
      const T* out0 = buf + (p * cols + q0) * W;
      if (row3) {
        for (int64_t r = 0; r < g.R; ++r, wp += 3 * W) {
          const T* row = out0 + tap(r, 0) * W;
          V px[QB + 2];
#pragma GCC unroll 10
          for (int i = 0; i < QB + 2; ++i) px[i] = V::load(row + i * W);
          const V w0 = V::load(wp), w1 = V::load(wp + W), w2 = V::load(wp + 2 * W);
#pragma GCC unroll 8
          for (int i = 0; i < QB; ++i) acc[i] = fmadd(w2, px[i + 2], fmadd(w1, px[i + 1], fmadd(w0, px[i], acc[i])));
        }
      } else {
        for (int64_t r = 0; r < g.R; ++r) {
          for (int64_t s = 0; s < g.S; ++s, wp += W) {
            const T* base = out0 + tap(r, s) * W;
            const V wt = V::load(wp);
#pragma GCC unroll 8
            for (int i = 0; i < QB; ++i) acc[i] = fmadd(wt, V::load(base + i * W), acc[i]);
          }
        }
      }
      const int64_t nq = g.Q - q0 < QB ? g.Q - q0 : QB;
      for (int64_t i = 0; i < nq; ++i) acc[i].store(obuf + (p * g.Q + q0 + i) * W);
    }
  }
  // 3. Transpose W output pixels at a time back into the channel planes.
  for (int64_t f0 = 0; f0 < PQ; f0 += W) {
    const int64_t cnt = PQ - f0 < W ? PQ - f0 : W;
    V v[W];
    for (int j = 0; j < W; ++j) v[j] = j < cnt ? V::load(obuf + (f0 + j) * W) : V(T(0));
    transpose(v);
    for (int64_t lane = 0; lane < nch; ++lane) v[lane].store(y + lane * PQ + f0, cnt);
  }
}

// Channel-blocked depthwise weight gradient of one image: acc[rs][lane] += sum over output
// pixels of dy * x(tap rs), for nch <= W channels; x and dy channel planes HW / PQ apart.
// Both are transposed pixel-major first, so each tap is a vector dot over pixels with no
// reduction across lanes. Scratch as dw_blocked_forward's (outputs replaced by dy pixels).
template <class T>
void dw_blocked_weight(const Conv2dGeometry& g, const T* x, const T* dy, int64_t nch, T* scratch, T* acc) {
  using V = Vec<T>;
  constexpr int W = V::W;
  const PlaneLayout L(g);
  const int64_t cols = L.cols, PQ = g.PQ();
  T* buf = scratch;
  T* dbuf = scratch + (L.size + kDwBlockedTail) * W;
  dw_blocked_pack_input(g, L, x, nch, buf);
  for (int64_t f0 = 0; f0 < PQ; f0 += W) {
    const int64_t cnt = PQ - f0 < W ? PQ - f0 : W;
    V v[W];
    for (int lane = 0; lane < W; ++lane) v[lane] = lane < nch ? V::load(dy + lane * PQ + f0, cnt) : V(T(0));
    transpose(v);
    for (int64_t j = 0; j < cnt; ++j) v[j].store(dbuf + (f0 + j) * W);
  }
  if (g.R == 3 && g.S == 3) {
    // 3 x 3: the nine taps' sums stay in registers while the pixels stream, so each output
    // pixel's gradient is loaded once for all taps (10 loads per 9 FMAs instead of 18).
    V a[9];
    int64_t tap[9];
    for (int t = 0; t < 9; ++t) a[t] = V(T(0)), tap[t] = L.tap(g, t / 3, t % 3) * W;
    for (int64_t p = 0; p < g.P; ++p) {
      const T* d = dbuf + p * g.Q * W;
      const T* xr = buf + p * cols * W;
      for (int64_t q = 0; q < g.Q; ++q) {
        const V dv = V::load(d + q * W);
        const T* x0 = xr + q * W;
#pragma GCC unroll 9
        for (int t = 0; t < 9; ++t) a[t] = fmadd(dv, V::load(x0 + tap[t]), a[t]);
      }
    }
    for (int t = 0; t < 9; ++t) (V::load(acc + t * W) + a[t]).store(acc + t * W);
    return;
  }
  for (int64_t r = 0; r < g.R; ++r) {
    for (int64_t s = 0; s < g.S; ++s) {
      V a0(T(0)), a1(T(0));
      const int64_t tap = L.tap(g, r, s);
      for (int64_t p = 0; p < g.P; ++p) {
        const T* d = dbuf + p * g.Q * W;
        const T* xr = buf + (tap + p * cols) * W;
        int64_t q = 0;
        for (; q + 1 < g.Q; q += 2) {
          a0 = fmadd(V::load(d + q * W), V::load(xr + q * W), a0);
          a1 = fmadd(V::load(d + (q + 1) * W), V::load(xr + (q + 1) * W), a1);
        }
        if (q < g.Q) a0 = fmadd(V::load(d + q * W), V::load(xr + q * W), a0);
      }
      T* out = acc + (r * g.S + s) * W;
      (V::load(out) + a0 + a1).store(out);
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
  // clang-format off: one entry per line, in the table's order
  static constexpr Conv2dTable<T> table = {
      &build_plane<T>,
      &read_plane<T>,
      &pack_im2col<T>,
      &pack_im2col_t<T>,
      &col2im_add<T>,
      &col2im_add_flat<T>,
      &dw_forward<T>,
      &dw_extend<T>,
      &dw_pad_grad<T>,
      &dw_backward_input<T>,
      &dw_backward_weight<T>,
      &dw_blocked_forward<T>,
      &dw_blocked_weight<T>,
      Vec<T>::W,
      &sum<T>,
  };
  // clang-format on
  return table;
}

template const Conv2dTable<float>& conv2d_table<float>();
template const Conv2dTable<double>& conv2d_table<double>();

}  // namespace dlk::cpu::DLK_ISA
