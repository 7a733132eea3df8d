// Pooling kernels for one CPU ISA. Included by build/isa/pool2d_<isa>.cpp with DLK_ISA naming the
// namespace whose Vec<T> to use. No include guard: included once per ISA.
//
// Vectorised over the contiguous dimension of each layout: W (consecutive output columns, the
// windows fully inside the row; the edges go scalar) in NCHW, C in channels_last. Sums run in
// torch's order (rows, then columns, from zero), so the strided pools match torch's bits. Max
// pooling tracks which tap won as a tap number in the value type (exact below 2^24 taps) and
// turns it into the flat index per lane at the end.

#include "common/pool2d.h"
#include "cpu/pool2d_table.h"

namespace dlk::cpu::DLK_ISA {
namespace pool {

template <class T>
inline T neg_inf() {
  return static_cast<T>(-__builtin_inf());
}

// Tap numbers are exact in T below this many taps per window.
constexpr int64_t kMaxVectorTaps = int64_t(1) << 24;

// Lanes p[0], p[s], ..., p[(W - 1) s]; for s == 2 it reads p[2W - 1] as well.
template <class T>
inline Vec<T> load_strided(const T* p, int64_t s) {
  if (s == 1) return Vec<T>::load(p);
  if (s == 2) return even(p);
  alignas(64) T buf[Vec<T>::W];
  for (int l = 0; l < Vec<T>::W; ++l) buf[l] = p[l * s];
  return Vec<T>::load(buf);
}

// The first m < W lanes of load_strided, the rest -inf (no maximum): reads only what those lanes
// need, so a row shorter than a vector (the seed ConvNet's 13 outputs per row) still runs in lanes.
template <class T>
inline Vec<T> load_strided_n(const T* p, int64_t s, int64_t m) {
  alignas(64) T buf[Vec<T>::W];
  for (int l = 0; l < Vec<T>::W; ++l) buf[l] = l < m ? p[l * s] : neg_inf<T>();
  return Vec<T>::load(buf);
}

// The first m lanes of load_strided for the last vector of a row, which may end past it: a
// masked load at stride 1, the stride-2 vector wherever the tensor (ending at x_end) goes on for
// 2 W more values, else only what the m lanes need. Lanes past m are unspecified.
template <class T>
inline Vec<T> load_strided_m(const T* p, int64_t s, int64_t m, const T* x_end) {
  if (m == Vec<T>::W) return load_strided(p, s);
  if (s == 1) return Vec<T>::load(p, m);
  if (s == 2 && p + 2 * Vec<T>::W <= x_end) return even(p);
  return load_strided_n(p, s, m);
}

template <class T>
inline void store_n(Vec<T> v, T* p, int64_t m) {
  if (m == Vec<T>::W) {
    v.store(p);
  } else {
    v.store(p, m);
  }
}

// The output columns [lo, hi) whose windows (and what load_strided reads for them) lie inside the
// row; `reach`: columns read from a window's start.
inline void interior(const WindowAxis& a, int64_t reach, int64_t& lo, int64_t& hi) {
  lo = (a.p + a.s - 1) / a.s;
  const int64_t last = a.in - reach + a.p;  // largest start o s with o s - p + reach <= in
  hi = last >= 0 ? last / a.s + 1 : 0;
  if (hi > a.out) hi = a.out;
  if (hi < lo) hi = lo;
}

// torch's max over one window: a larger value or a NaN replaces the running maximum.
template <class T>
inline void max_window(const T* plane, int64_t W, int64_t cs, TapRange rh, TapRange rw, int64_t dh, int64_t dw, T& best,
                       int64_t& at) {
  best = neg_inf<T>();
  at = rh.begin * W + rw.begin;
  for (int64_t ih = rh.begin; ih < rh.end; ih += dh) {
    for (int64_t iw = rw.begin; iw < rw.end; iw += dw) {
      const T v = plane[(ih * W + iw) * cs];
      if (v > best || v != v) best = v, at = ih * W + iw;
    }
  }
}

// One vector step of the running maximum: v replaces best where larger or NaN.
template <class V>
inline void max_step(V v, V tap, V& best, V& code) {
  const auto gt = v > best;
  best = where(gt, v, best);
  code = where(gt, tap, code);
  const auto ordered = v >= v;  // false only for NaN lanes
  best = where(ordered, best, v);
  code = where(ordered, code, tap);
}

inline int64_t taps(TapRange r, int64_t d) { return r.end > r.begin ? (r.end - r.begin + d - 1) / d : 0; }

template <class T, bool kIdx>
void max_nchw(const T* x, T* y, int64_t* indices, const Pool2dGeometry& g, int64_t begin, int64_t end) {
  using V = Vec<T>;
  constexpr int L = V::W;
  const WindowAxis &ah = g.h, &aw = g.w;
  const int64_t W = g.W, OW = g.OW;
  int64_t lo, hi;
  interior(aw, (aw.k - 1) * aw.d + (aw.s == 2 ? 2 : 1), lo, hi);
  const bool vec = ah.k * aw.k <= kMaxVectorTaps;
  // The vectors' codes are each tap's offset in the plane (ih W + iw of lane 0) when those are
  // exact in T, so an index is code + the lane's column: no division by the window width per
  // lane (which was most of the seed ConvNet's pooling with indices). Else the tap's number.
  const bool offsets = g.H * W < kMaxVectorTaps;
  // A short row's stride-2 vector may read past its end into the next rows (lanes masked
  // afterwards) wherever the tensor goes on for 2 L more values.
  const T* x_end = x + g.planes() * g.H * W;
  const auto lane = [] {
    alignas(64) T l[L];
    for (int i = 0; i < L; ++i) l[i] = T(i);
    return V::load(l);
  }();
  for (int64_t row = begin; row < end; ++row) {
    const int64_t plane = row / g.OH, oh = row % g.OH;
    const T* xp = x + plane * g.H * W;
    T* yr = y + row * OW;
    int64_t* ir = kIdx ? indices + row * OW : nullptr;
    const TapRange rh = max_taps(ah, oh);
    const auto scalar = [&](int64_t ow) {
      T best;
      int64_t at;
      max_window(xp, W, 1, rh, max_taps(aw, ow), ah.d, aw.d, best, at);
      yr[ow] = best;
      if constexpr (kIdx) ir[ow] = at;
    };
    int64_t ow = 0;
    if (vec && rh.begin < rh.end) {
      for (; ow < lo; ++ow) scalar(ow);
      // Full vectors, then one partial vector for the interior columns left (at least 4 of them).
      for (int64_t m = L; ow < hi && (m = std::min<int64_t>(L, hi - ow)) >= 4; ow += m) {
        // the first tap's code where no value beats -inf (torch's index of an all -inf window)
        V best(neg_inf<T>()), code(offsets ? static_cast<T>(rh.begin * W) : T(0));
        T t = 0;
        const auto live = lane < V(T(m));
        for (int64_t ih = rh.begin; ih < rh.end; ih += ah.d) {
          const T* p = xp + ih * W + ow * aw.s - aw.p;
          for (int64_t s = 0; s < aw.k; ++s, t += T(1)) {
            const T* q = p + s * aw.d;
            const V v =
                m == L ? load_strided(q, aw.s) : where(live, load_strided_m(q, aw.s, m, x_end), V(neg_inf<T>()));
            max_step(v, offsets ? V(static_cast<T>(ih * W + s * aw.d)) : V(t), best, code);
          }
        }
        store_n(best, yr + ow, m);
        if constexpr (kIdx) {
          alignas(64) T buf[L];
          code.store(buf);
          for (int l = 0; l < m; ++l) {
            const int64_t c = static_cast<int64_t>(buf[l]), col = (ow + l) * aw.s - aw.p;
            ir[ow + l] = offsets ? c + col : (rh.begin + (c / aw.k) * ah.d) * W + col + (c % aw.k) * aw.d;
          }
        }
      }
    }
    for (; ow < OW; ++ow) scalar(ow);
  }
}

template <class T, bool kIdx>
void max_nhwc(const T* x, T* y, int64_t* indices, const Pool2dGeometry& g, int64_t begin, int64_t end) {
  using V = Vec<T>;
  constexpr int L = V::W;
  const WindowAxis &ah = g.h, &aw = g.w;
  const int64_t C = g.C, W = g.W, opix = g.OH * g.OW;
  for (int64_t pix = begin; pix < end; ++pix) {
    const int64_t n = pix / opix, oh = pix % opix / g.OW, ow = pix % g.OW;
    const T* xn = x + n * g.H * W * C;
    T* yp = y + pix * C;
    int64_t* ip = kIdx ? indices + pix * C : nullptr;
    const TapRange rh = max_taps(ah, oh), rw = max_taps(aw, ow);
    const int64_t nw = taps(rw, aw.d);
    if (taps(rh, ah.d) * nw > kMaxVectorTaps) {
      for (int64_t c = 0; c < C; ++c) {
        int64_t at;
        max_window(xn + c, W, C, rh, rw, ah.d, aw.d, yp[c], at);
        if constexpr (kIdx) ip[c] = at;
      }
      continue;
    }
    for (int64_t c = 0; c < C; c += L) {
      const int64_t m = C - c < L ? C - c : L;
      V best(neg_inf<T>()), code(T(0));
      T t = 0;
      for (int64_t ih = rh.begin; ih < rh.end; ih += ah.d) {
        for (int64_t iw = rw.begin; iw < rw.end; iw += aw.d, t += T(1)) {
          const T* p = xn + (ih * W + iw) * C + c;
          max_step(m == L ? V::load(p) : V::load(p, m), V(t), best, code);
        }
      }
      if (m == L) {
        best.store(yp + c);
      } else {
        best.store(yp + c, m);
      }
      if constexpr (kIdx) {
        alignas(64) T buf[L];
        code.store(buf);
        for (int64_t l = 0; l < m; ++l) {
          const int64_t k = static_cast<int64_t>(buf[l]);
          ip[c + l] = nw ? (rh.begin + (k / nw) * ah.d) * W + rw.begin + (k % nw) * aw.d : rh.begin * W + rw.begin;
        }
      }
    }
  }
}

template <class T>
void max_forward_nchw(const T* x, T* y, int64_t* indices, const Pool2dGeometry& g, int64_t b, int64_t e) {
  indices ? max_nchw<T, true>(x, y, indices, g, b, e) : max_nchw<T, false>(x, y, nullptr, g, b, e);
}
template <class T>
void max_forward_nhwc(const T* x, T* y, int64_t* indices, const Pool2dGeometry& g, int64_t b, int64_t e) {
  indices ? max_nhwc<T, true>(x, y, indices, g, b, e) : max_nhwc<T, false>(x, y, nullptr, g, b, e);
}

// Input row (plane, ih) of the gradient: the windows whose rows span ih, in output order, add
// their gradient where their index points into this row.
template <class T>
void max_backward_nchw(const T* dy, const int64_t* indices, T* dx, const Pool2dGeometry& g, int64_t begin,
                       int64_t end) {
  const WindowAxis& ah = g.h;
  const int64_t W = g.W, OW = g.OW, oplane = g.OH * OW;
  for (int64_t row = begin; row < end; ++row) {
    const int64_t plane = row / g.H, ih = row % g.H;
    T* dxr = dx + row * W;
    for (int64_t i = 0; i < W; ++i) dxr[i] = T(0);
    const T* gp = dy + plane * oplane;
    const int64_t* ip = indices + plane * oplane;
    const uint64_t base = static_cast<uint64_t>(ih * W);
    for (int64_t oh = ah.first_window(ih, ah.span()), o1 = ah.end_window(ih); oh < o1; ++oh) {
      for (int64_t o = oh * OW, oe = o + OW; o < oe; ++o) {
        const uint64_t j = static_cast<uint64_t>(ip[o]) - base;
        if (j < static_cast<uint64_t>(W)) dxr[j] += gp[o];
      }
    }
  }
}

template <class T>
void max_backward_nhwc(const T* dy, const int64_t* indices, T* dx, const Pool2dGeometry& g, int64_t begin,
                       int64_t end) {
  const WindowAxis& ah = g.h;
  const int64_t C = g.C, W = g.W, OW = g.OW;
  for (int64_t row = begin; row < end; ++row) {
    const int64_t n = row / g.H, ih = row % g.H;
    T* dxr = dx + row * W * C;
    for (int64_t i = 0; i < W * C; ++i) dxr[i] = T(0);
    const uint64_t base = static_cast<uint64_t>(ih * W);
    for (int64_t oh = ah.first_window(ih, ah.span()), o1 = ah.end_window(ih); oh < o1; ++oh) {
      for (int64_t ow = 0; ow < OW; ++ow) {
        const int64_t off = ((n * g.OH + oh) * OW + ow) * C;
        const int64_t* ip = indices + off;
        const T* gp = dy + off;
        for (int64_t c = 0; c < C; ++c) {
          const uint64_t j = static_cast<uint64_t>(ip[c]) - base;
          if (j < static_cast<uint64_t>(W)) dxr[j * C + c] += gp[c];
        }
      }
    }
  }
}

// ---- average pooling ---------------------------------------------------------------------------

template <class T>
void avg_nchw(const T* x, T* y, const Pool2dGeometry& g, int64_t begin, int64_t end) {
  using V = Vec<T>;
  constexpr int L = V::W;
  const WindowAxis &ah = g.h, &aw = g.w;
  const int64_t W = g.W, OW = g.OW;
  int64_t lo, hi;
  interior(aw, aw.k + (aw.s == 2 ? 1 : 0), lo, hi);
  const T* x_end = x + g.planes() * g.H * W;
  for (int64_t row = begin; row < end; ++row) {
    const int64_t plane = row / g.OH, oh = row % g.OH;
    const T* xp = x + plane * g.H * W;
    T* yr = y + row * OW;
    const AvgRange rh = avg_range(ah, oh);
    const auto scalar = [&](int64_t ow) {
      const AvgRange rw = avg_range(aw, ow);
      T sum = 0;
      for (int64_t ih = rh.begin; ih < rh.end; ++ih) {
        for (int64_t iw = rw.begin; iw < rw.end; ++iw) sum += xp[ih * W + iw];
      }
      yr[ow] = sum / static_cast<T>(avg_divisor(g, rh, rw));
    };
    int64_t ow = 0;
    for (; ow < lo; ++ow) scalar(ow);
    const AvgRange full{0, aw.k, aw.k};  // an interior window's column extent
    const V div(static_cast<T>(avg_divisor(g, rh, full)));
    // Full vectors, then one partial vector for the interior columns left, as in max_nchw: rows
    // narrower than a vector (16 outputs of a 32-wide row at stride 2) used to run every column
    // scalar, 4x slower than the max pool of the same shape.
    for (int64_t m = L; ow < hi && (m = std::min<int64_t>(L, hi - ow)) >= 1; ow += m) {
      V sum(T(0));
      for (int64_t ih = rh.begin; ih < rh.end; ++ih) {
        const T* p = xp + ih * W + ow * aw.s - aw.p;
        // lanes past m: whatever load_strided_m reads (never past the tensor), not stored
        for (int64_t s = 0; s < aw.k; ++s) sum = sum + load_strided_m(p + s, aw.s, m, x_end);
      }
      store_n(sum / div, yr + ow, m);
    }
    for (; ow < OW; ++ow) scalar(ow);
  }
}

// Channels-last window sum: rows [h0, h1) x columns [w0, w1) of image xn, channels [c, c + m).
template <class T>
inline Vec<T> sum_nhwc(const T* xn, int64_t W, int64_t C, int64_t c, int64_t m, int64_t h0, int64_t h1, int64_t w0,
                       int64_t w1) {
  using V = Vec<T>;
  V sum(T(0));
  for (int64_t ih = h0; ih < h1; ++ih) {
    for (int64_t iw = w0; iw < w1; ++iw) {
      const T* p = xn + (ih * W + iw) * C + c;
      sum = sum + (m == V::W ? V::load(p) : V::load(p, m));
    }
  }
  return sum;
}

template <class T>
void avg_nhwc(const T* x, T* y, const Pool2dGeometry& g, int64_t begin, int64_t end) {
  using V = Vec<T>;
  constexpr int L = V::W;
  const int64_t C = g.C, opix = g.OH * g.OW;
  for (int64_t pix = begin; pix < end; ++pix) {
    const int64_t n = pix / opix, oh = pix % opix / g.OW, ow = pix % g.OW;
    const AvgRange rh = avg_range(g.h, oh), rw = avg_range(g.w, ow);
    const V div(static_cast<T>(avg_divisor(g, rh, rw)));
    const T* xn = x + n * g.H * g.W * C;
    for (int64_t c = 0; c < C; c += L) {
      const int64_t m = C - c < L ? C - c : L;
      store_n(sum_nhwc(xn, g.W, C, c, m, rh.begin, rh.end, rw.begin, rw.end) / div, y + pix * C + c, m);
    }
  }
}

template <class T>
void adaptive_nchw(const T* x, T* y, const Pool2dGeometry& g, int64_t begin, int64_t end) {
  using V = Vec<T>;
  constexpr int L = V::W;
  const AdaptiveAxis ah{g.H, g.OH}, aw{g.W, g.OW};
  const int64_t W = g.W;
  for (int64_t row = begin; row < end; ++row) {
    const int64_t plane = row / g.OH, oh = row % g.OH;
    const T* xp = x + plane * g.H * W;
    const int64_t h0 = ah.start(oh), h1 = ah.end(oh);
    for (int64_t ow = 0; ow < g.OW; ++ow) {
      const int64_t w0 = aw.start(ow), w1 = aw.end(ow);
      T sum = 0;
      if (w0 == 0 && w1 == W && (h1 - h0) * W >= 2 * L) {
        // Whole rows: one contiguous run, summed in lanes.
        const T* p = xp + h0 * W;
        const int64_t n = (h1 - h0) * W;
        V acc(T(0));
        int64_t i = 0;
        for (; i + L <= n; i += L) acc = acc + V::load(p + i);
        if (i < n) acc = acc + V::load(p + i, n - i);
        sum = reduce_add(acc);
      } else {
        for (int64_t ih = h0; ih < h1; ++ih) {
          for (int64_t iw = w0; iw < w1; ++iw) sum += xp[ih * W + iw];
        }
      }
      y[row * g.OW + ow] = sum / static_cast<T>(h1 - h0) / static_cast<T>(w1 - w0);
    }
  }
}

template <class T>
void adaptive_nhwc(const T* x, T* y, const Pool2dGeometry& g, int64_t begin, int64_t end) {
  using V = Vec<T>;
  constexpr int L = V::W;
  const AdaptiveAxis ah{g.H, g.OH}, aw{g.W, g.OW};
  const int64_t C = g.C, opix = g.OH * g.OW;
  for (int64_t pix = begin; pix < end; ++pix) {
    const int64_t n = pix / opix, oh = pix % opix / g.OW, ow = pix % g.OW;
    const int64_t h0 = ah.start(oh), h1 = ah.end(oh), w0 = aw.start(ow), w1 = aw.end(ow);
    const V kh(static_cast<T>(h1 - h0)), kw(static_cast<T>(w1 - w0));
    const T* xn = x + n * g.H * g.W * C;
    for (int64_t c = 0; c < C; c += L) {
      const int64_t m = C - c < L ? C - c : L;
      store_n(sum_nhwc(xn, g.W, C, c, m, h0, h1, w0, w1) / kh / kw, y + pix * C + c, m);
    }
  }
}

// Backward of the average pools, per input row (plane or image, ih): the windows spanning the
// row add gradient / divisor to their columns, in output order (torch's scatter order).
template <class T, class Windows>
void avg_backward_rows(const T* dy, T* dx, const Pool2dGeometry& g, int64_t begin, int64_t end, int64_t cs,
                       Windows windows) {
  const int64_t W = g.W, OW = g.OW;
  for (int64_t row = begin; row < end; ++row) {
    const int64_t outer = row / g.H, ih = row % g.H;
    T* dxr = dx + row * W * cs;
    for (int64_t i = 0; i < W * cs; ++i) dxr[i] = T(0);
    windows(ih, [&](int64_t oh, auto&& per_column) {
      for (int64_t ow = 0; ow < OW; ++ow) {
        int64_t w0, w1;
        T div_h, div_w;
        per_column(ow, w0, w1, div_h, div_w);
        const T* gp = dy + ((outer * g.OH + oh) * OW + ow) * cs;
        if (cs == 1) {
          const T v = gp[0] / div_h / div_w;
          for (int64_t iw = w0; iw < w1; ++iw) dxr[iw] += v;
        } else {
          for (int64_t iw = w0; iw < w1; ++iw) {
            T* d = dxr + iw * cs;
            for (int64_t c = 0; c < cs; ++c) d[c] += gp[c] / div_h / div_w;
          }
        }
      }
    });
  }
}

// Strided windows: the divisor in one piece (div_w = 1), as torch divides once.
template <class T>
void avg_backward(const T* dy, T* dx, const Pool2dGeometry& g, int64_t begin, int64_t end, int64_t cs) {
  avg_backward_rows(dy, dx, g, begin, end, cs, [&](int64_t ih, auto&& body) {
    for (int64_t oh = g.h.first_window(ih, g.h.k), o1 = g.h.end_window(ih); oh < o1; ++oh) {
      const AvgRange rh = avg_range(g.h, oh);
      body(oh, [&](int64_t ow, int64_t& w0, int64_t& w1, T& div_h, T& div_w) {
        const AvgRange rw = avg_range(g.w, ow);
        w0 = rw.begin, w1 = rw.end;
        div_h = static_cast<T>(avg_divisor(g, rh, rw)), div_w = T(1);
      });
    }
  });
}

template <class T>
void adaptive_backward(const T* dy, T* dx, const Pool2dGeometry& g, int64_t begin, int64_t end, int64_t cs) {
  const AdaptiveAxis ah{g.H, g.OH}, aw{g.W, g.OW};
  // The columns' windows once per task: two integer divisions per window and input row took
  // most of the backward's time (256 x 7 x 7 -> 5 x 5, one thread: 635 -> 430 us).
  std::vector<int64_t> cols(2 * g.OW);
  for (int64_t ow = 0; ow < g.OW; ++ow) cols[2 * ow] = aw.start(ow), cols[2 * ow + 1] = aw.end(ow);
  avg_backward_rows(dy, dx, g, begin, end, cs, [&](int64_t ih, auto&& body) {
    for (int64_t oh = ah.first_window(ih), o1 = ah.end_window(ih); oh < o1; ++oh) {
      const T kh = static_cast<T>(ah.end(oh) - ah.start(oh));
      body(oh, [&](int64_t ow, int64_t& w0, int64_t& w1, T& div_h, T& div_w) {
        w0 = cols[2 * ow], w1 = cols[2 * ow + 1];
        div_h = kh, div_w = static_cast<T>(w1 - w0);
      });
    }
  });
}

template <class T>
void avg_backward_nchw(const T* dy, T* dx, const Pool2dGeometry& g, int64_t b, int64_t e) {
  avg_backward(dy, dx, g, b, e, 1);
}
template <class T>
void avg_backward_nhwc(const T* dy, T* dx, const Pool2dGeometry& g, int64_t b, int64_t e) {
  avg_backward(dy, dx, g, b, e, g.C);
}
template <class T>
void adaptive_backward_nchw(const T* dy, T* dx, const Pool2dGeometry& g, int64_t b, int64_t e) {
  adaptive_backward(dy, dx, g, b, e, 1);
}
template <class T>
void adaptive_backward_nhwc(const T* dy, T* dx, const Pool2dGeometry& g, int64_t b, int64_t e) {
  adaptive_backward(dy, dx, g, b, e, g.C);
}

}  // namespace pool

template <class T>
const Pool2dTable<T>& pool2d_table() {
  static constexpr Pool2dTable<T> table = {
      &pool::max_forward_nchw<T>,
      &pool::max_forward_nhwc<T>,
      &pool::max_backward_nchw<T>,
      &pool::max_backward_nhwc<T>,
      &pool::avg_nchw<T>,
      &pool::avg_nhwc<T>,
      &pool::adaptive_nchw<T>,
      &pool::adaptive_nhwc<T>,
      &pool::avg_backward_nchw<T>,
      &pool::avg_backward_nhwc<T>,
      &pool::adaptive_backward_nchw<T>,
      &pool::adaptive_backward_nhwc<T>,
  };
  return table;
}

template const Pool2dTable<float>& pool2d_table<float>();
template const Pool2dTable<double>& pool2d_table<double>();

}  // namespace dlk::cpu::DLK_ISA
