// Loss kernels for one CPU ISA. Included by the generated unit build/isa/loss_<isa>.cpp with
// DLK_ISA naming the namespace whose Vec<T> to use; no include guard (once per ISA).
//
// Cross entropy forms each row's log-sum-exp together with the sums the loss needs (sum w x for
// smoothing, sum w q and sum w q x for soft targets): the max and then the sum of e^{x - max}, in
// two passes over a row that stays in cache, else in one (an online log-sum-exp: running per-lane
// max m and sum s of e^{x - m}, rescaled when the max grows). Backward recomputes
// p = e^{x - lse} from the logits and the saved lse and writes the gradient directly; the
// log-probabilities are never stored.

#include <limits>

#include "cpu/loss_table.h"

namespace dlk::cpu::DLK_ISA {

template <class T>
double squared_error_sum(const T* x, const T* t, int64_t n) {
  using V = Vec<T>;
  V a0(T(0)), a1(T(0)), a2(T(0)), a3(T(0));
  int64_t i = 0;
  for (; i + 4 * V::W <= n; i += 4 * V::W) {
    const V d0 = V::load(x + i) - V::load(t + i), d1 = V::load(x + i + V::W) - V::load(t + i + V::W);
    const V d2 = V::load(x + i + 2 * V::W) - V::load(t + i + 2 * V::W);
    const V d3 = V::load(x + i + 3 * V::W) - V::load(t + i + 3 * V::W);
    a0 = fmadd(d0, d0, a0);
    a1 = fmadd(d1, d1, a1);
    a2 = fmadd(d2, d2, a2);
    a3 = fmadd(d3, d3, a3);
  }
  for (; i + V::W <= n; i += V::W) {
    const V d = V::load(x + i) - V::load(t + i);
    a0 = fmadd(d, d, a0);
  }
  if (i < n) {
    const V d = V::load(x + i, n - i) - V::load(t + i, n - i);  // masked lanes load 0
    a1 = fmadd(d, d, a1);
  }
  return static_cast<double>(reduce_add((a0 + a1) + (a2 + a3)));
}

template <class T>
void squared_error(const T* x, const T* t, T* y, int64_t n) {
  using V = Vec<T>;
  int64_t i = 0;
#pragma GCC unroll 4
  for (; i + V::W <= n; i += V::W) {
    const V d = V::load(x + i) - V::load(t + i);
    (d * d).store(y + i);
  }
  if (i < n) {
    const V d = V::load(x + i, n - i) - V::load(t + i, n - i);
    (d * d).store(y + i, n - i);
  }
}

template <class T>
void squared_error_grad(const T* x, const T* t, const T* g, T scale, T* dx, int64_t n) {
  using V = Vec<T>;
  const V s(scale);
  int64_t i = 0;
  if (g) {
#pragma GCC unroll 4
    for (; i + V::W <= n; i += V::W) ((V::load(x + i) - V::load(t + i)) * s * V::load(g + i)).store(dx + i);
    if (i < n) ((V::load(x + i, n - i) - V::load(t + i, n - i)) * s * V::load(g + i, n - i)).store(dx + i, n - i);
  } else {
#pragma GCC unroll 4
    for (; i + V::W <= n; i += V::W) ((V::load(x + i) - V::load(t + i)) * s).store(dx + i);
    if (i < n) ((V::load(x + i, n - i) - V::load(t + i, n - i)) * s).store(dx + i, n - i);
  }
}

// The most negative finite value: the running max starts there and masked lanes hold it. Finite,
// so m - m_new is never inf - inf; a lane that only ever saw it is weighted by e^{lowest - max} = 0
// when the lanes are combined.
template <class T>
constexpr T lowest() {
  if constexpr (sizeof(T) == 4) return T(-3.40282346638528859811704183484516925e+38);
  return T(-1.79769313486231570814527423731704357e+308);
}

// e^d with results below the smallest normal number flushed to exactly 0. The vector exp returns
// subnormals there, and subnormal operands cost a microcode assist per instruction (the masked
// lanes and the first rescale of every row hit this). NaN stays NaN: a NaN logit makes its row's
// loss and gradient NaN, as in torch (the clamp is a select, since the ISAs' max differ on NaN).
template <class T>
inline Vec<T> exp_flush(Vec<T> d) {
  using V = Vec<T>;
  const V lim(sizeof(T) == 4 ? T(-87.0) : T(-708.0));
  const auto tiny = d < lim;
  return where(tiny, V(T(0)), exp(where(tiny, lim, d)));
}

// log s for the sums of exponentials the kernels form: s >= 1 (the max's own term is 1), 0 (a
// row of -inf logits: -inf), +inf or NaN (passed through). s = m 2^e with m in (sqrt(1/2),
// sqrt(2)]; log m = 2 atanh(u), u = (m - 1) / (m + 1), |u| < 0.172, by its odd series (u^2 < 0.03:
// 4 terms reach float's precision, 10 double's); e ln 2 in two parts (Cephes' split), so the
// result is within about 1 ulp. One vector of them replaces a libm call per row.
template <class T>
inline Vec<T> log_of_sum(Vec<T> s) {
  using V = Vec<T>;
  V e;
  V m = split_exponent(s, e);
  const auto high = m > V(T(1.41421356237309504880));
  m = where(high, m * V(T(0.5)), m);
  e = where(high, e + V(T(1)), e);
  const V f = m - V(T(1));  // exact: m is within a factor 2 of 1
  const V u = f / (f + V(T(2)));
  const V z = u * u;
  constexpr int kTerms = sizeof(T) == 4 ? 4 : 10;  // z^k / (2k + 1) for k = 1..kTerms
  V p(T(2) / T(2 * kTerms + 1));
  for (int k = kTerms - 1; k >= 1; --k) p = fmadd(p, z, V(T(2) / T(2 * k + 1)));
  const V log_m = fmadd(u * z, p, u + u);
  const T ln2_hi = sizeof(T) == 4 ? T(0.693359375) : T(6.93147180369123816490e-01);
  const T ln2_lo = sizeof(T) == 4 ? T(-2.12194440e-4) : T(1.90821492927058770002e-10);
  V r = fmadd(e, V(ln2_hi), fmadd(e, V(ln2_lo), log_m));
  r = where(s < V(std::numeric_limits<T>::min()), V(-std::numeric_limits<T>::infinity()), r);
  return where(s > V(std::numeric_limits<T>::max()), s, where(s >= V(T(0)), r, s));  // +inf; NaN
}

// Rows of at most this many bytes take two passes (the max, then the sums): the second reads the
// row from L2 at the latest, and each logit costs one exponential instead of the online form's
// 1.25 (a rescale per 4 vectors) or 2 (per vector, short rows).
constexpr int64_t kTwoPassBytes = 256 << 10;

template <class T>
struct RowSums {
  T lse, wx, wq, wqx;
};

template <class T, bool kWeight, bool kSmooth, bool kSoft>
RowSums<T> row_sums(const T* x, const T* q, const T* w, int64_t classes) {
  using V = Vec<T>;
  constexpr int W = V::W;
  static constexpr T kLane[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  const V low(lowest<T>());
  V m = low, s(T(0)), wx(T(0)), wq(T(0)), wqx(T(0));
  // The sums other than the log-sum-exp, over one vector (masked lanes are zero in v, q and w).
  auto extras = [&](V v, const T* qp, const T* wp, int64_t live) {
    if constexpr (kSmooth || kSoft) {
      const V wv = kWeight ? (live == W ? V::load(wp) : V::load(wp, live)) : V(T(1));
      if constexpr (kSmooth) wx = fmadd(wv, v, wx);
      if constexpr (kSoft) {
        const V wqv = wv * (live == W ? V::load(qp) : V::load(qp, live));
        wq = wq + wqv;
        wqx = fmadd(wqv, v, wqx);
      }
    }
  };
  if (classes <= W) {
    // One masked vector (the seed's 10 classes): the row's max first, then a single exp.
    const V v = V::load(x, classes);
    T big = x[0];
    for (int64_t l = 1; l < classes; ++l) big = x[l] > big ? x[l] : big;
    const T sum = reduce_add(where(V::load(kLane) < V(T(classes)), exp_flush(v - V(big)), V(T(0))));
    extras(v, q, w, classes);
    return {big + std::log(sum), reduce_add(wx), reduce_add(wq), reduce_add(wqx)};
  }
  if (classes * static_cast<int64_t>(sizeof(T)) <= kTwoPassBytes) {
    // The max first, then the sums: one exponential per logit, the second pass from cache.
    V m0 = low, m1 = low, m2 = low, m3 = low;
    int64_t i = 0;
    for (; i + 4 * W <= classes; i += 4 * W) {
      m0 = max(m0, V::load(x + i));
      m1 = max(m1, V::load(x + i + W));
      m2 = max(m2, V::load(x + i + 2 * W));
      m3 = max(m3, V::load(x + i + 3 * W));
    }
    for (; i + W <= classes; i += W) m0 = max(m0, V::load(x + i));
    const int64_t live = classes - i;  // a last, masked vector: its dead lanes hold the lowest value
    const auto on = V::load(kLane) < V(T(live));
    if (live > 0) m1 = max(m1, where(on, V::load(x + i, live), low));
    alignas(64) T ms[W];
    max(max(m0, m1), max(m2, m3)).store(ms);
    T big = ms[0];
    for (int l = 1; l < W; ++l) big = ms[l] > big ? ms[l] : big;
    const V mv(big);
    V s0(T(0)), s1(T(0)), s2(T(0)), s3(T(0));
    for (i = 0; i + 4 * W <= classes; i += 4 * W) {
      const V v0 = V::load(x + i), v1 = V::load(x + i + W), v2 = V::load(x + i + 2 * W), v3 = V::load(x + i + 3 * W);
      s0 = s0 + exp_flush(v0 - mv);
      s1 = s1 + exp_flush(v1 - mv);
      s2 = s2 + exp_flush(v2 - mv);
      s3 = s3 + exp_flush(v3 - mv);
      for (int k = 0; k < 4; ++k) extras(k == 0 ? v0 : k == 1 ? v1 : k == 2 ? v2 : v3, q + i + k * W, w + i + k * W, W);
    }
    for (; i + W <= classes; i += W) {
      const V v = V::load(x + i);
      s0 = s0 + exp_flush(v - mv);
      extras(v, q + i, w + i, W);
    }
    if (live > 0) {
      const V v = V::load(x + i, live);
      s1 = s1 + where(on, exp_flush(v - mv), V(T(0)));
      extras(v, q + i, w + i, live);
    }
    const T sum = reduce_add((s0 + s1) + (s2 + s3));
    return {big + std::log(sum), reduce_add(wx), reduce_add(wq), reduce_add(wqx)};
  }
  // Longer rows than the cache holds: one pass, an online log-sum-exp.
  int64_t i = 0;
  for (; i + 4 * W <= classes; i += 4 * W) {
    const V v0 = V::load(x + i), v1 = V::load(x + i + W), v2 = V::load(x + i + 2 * W), v3 = V::load(x + i + 3 * W);
    const V mn = max(m, max(max(v0, v1), max(v2, v3)));
    s = fmadd(s, exp_flush(m - mn),
              (exp_flush(v0 - mn) + exp_flush(v1 - mn)) + (exp_flush(v2 - mn) + exp_flush(v3 - mn)));
    m = mn;
    for (int k = 0; k < 4; ++k) extras(k == 0 ? v0 : k == 1 ? v1 : k == 2 ? v2 : v3, q + i + k * W, w + i + k * W, W);
  }
  for (; i + W <= classes; i += W) {
    const V v = V::load(x + i);
    const V mn = max(m, v);
    s = fmadd(s, exp_flush(m - mn), exp_flush(v - mn));
    m = mn;
    extras(v, q + i, w + i, W);
  }
  if (i < classes) {
    // Masked lanes hold the lowest value for the max and add nothing to the sum, so a row whose
    // live values are all -inf sums to 0 and gets lse = -inf (its loss is NaN, as in torch).
    const int64_t live = classes - i;
    const V v = V::load(x + i, live);
    const auto on = V::load(kLane) < V(T(live));
    const V vl = where(on, v, low);
    const V mn = max(m, vl);
    s = fmadd(s, exp_flush(m - mn), where(on, exp_flush(vl - mn), V(T(0))));
    m = mn;
    extras(v, q + i, w + i, live);
  }
  alignas(64) T ms[W];
  m.store(ms);
  T big = ms[0];
  for (int l = 1; l < W; ++l) big = ms[l] > big ? ms[l] : big;
  const T sum = reduce_add(s * exp_flush(m - V(big)));
  return {big + std::log(sum), reduce_add(wx), reduce_add(wq), reduce_add(wqx)};
}

// Rows of at most this many classes run across the lanes (ce_forward_narrow; a 16 KB tile): at
// 100 and 200 classes 1.5x and 1.2x faster than a row at a time in two passes (512 rows, floats,
// one Zen 5 core), which pays two horizontal reductions and a log per row.
constexpr int64_t kNarrowClasses = 256;

// A class-target row that is ignored or whose target is out of range: zero results, and the
// first out-of-range row remembered in `bad`. Returns whether the row was such a row.
template <class T>
bool skip_class_row(const CrossEntropyRows<T>& a, int64_t r, int64_t t, int64_t& bad) {
  if (t != a.ignore_index && target_ok(t, a.classes, a.ignore_index)) return false;
  if (t != a.ignore_index && bad < 0) bad = r;
  a.lse[r] = T(0);
  a.row_loss[r] = 0.0;
  a.row_weight[r] = 0.0;
  return true;
}

// A kept class-target row's results from its lse, its target's logit x_t and (smoothing) sum w x.
template <class T, bool kWeight, bool kSmooth>
void store_class_row(const CrossEntropyRows<T>& a, int64_t r, int64_t t, T lse, T x_t, T wx) {
  const T w_t = kWeight ? a.weight[t] : T(1);
  a.lse[r] = lse;
  a.row_loss[r] = static_cast<double>(class_row_loss<T>(lse, x_t, w_t, kSmooth ? static_cast<T>(a.smoothing) : T(0),
                                                        static_cast<T>(a.weight_sum), kSmooth ? wx : T(0), a.classes));
  a.row_weight[r] = static_cast<double>(w_t);
}

// A soft-target row's results from its lse, sum w q, sum w q x and (smoothing) sum w x: the
// smoothed target is y = (1-e) q + e/C, so sum w y and sum w y x follow from those.
template <class T, bool kSmooth>
void store_soft_row(const CrossEntropyRows<T>& a, int64_t r, T lse, T wq, T wqx, T wx) {
  T swy = wq, swyx = wqx;
  if constexpr (kSmooth) {
    const T eps = static_cast<T>(a.smoothing), ke = eps / T(a.classes);
    swy = (T(1) - eps) * wq + ke * static_cast<T>(a.weight_sum);
    swyx = (T(1) - eps) * wqx + ke * wx;
  }
  a.lse[r] = lse;
  a.row_loss[r] = static_cast<double>(lse * swy - swyx);
  a.row_weight[r] = 1.0;
}

// The results of a block's lanes [0, n), lane l being row r + l, from the lanes' lse and sums
// (wqs, wqxs: soft targets only); x_t(l, t) is lane l's logit of class t.
template <class T, bool kWeight, bool kSmooth, bool kSoft, class TargetLogit>
void store_lanes(const CrossEntropyRows<T>& a, int64_t r, int64_t n, const T* lses, const T* wxs, const T* wqs,
                 const T* wqxs, TargetLogit&& x_t, int64_t& bad) {
  for (int64_t l = 0; l < n; ++l) {
    if constexpr (kSoft) {
      store_soft_row<T, kSmooth>(a, r + l, lses[l], wqs[l], wqxs[l], wxs[l]);
    } else {
      const int64_t t = a.target[r + l];
      if (skip_class_row(a, r + l, t, bad)) continue;
      store_class_row<T, kWeight, kSmooth>(a, r + l, t, lses[l], x_t(l, t), wxs[l]);
    }
  }
}

// Rows [0, n) of C <= kNarrowClasses logits (row l at xb + l C) into a class-major tile, class c
// of row l at tile[c W + l]: W classes of the W rows at a time, W (masked) row loads and a
// register transpose. Returns the lanes' max, taken from the registers (a gather per class and
// then a max pass over the tile: 22.4 us against 11.7 at 512 x 64 floats, one Zen 5 core).
// Lanes past n hold zeros; the tile has room for a whole last group (c0 + W <= kNarrowClasses).
template <class T>
Vec<T> rows_to_tile(const T* xb, int64_t C, int64_t n, T* tile) {
  using V = Vec<T>;
  constexpr int W = V::W;
  V m(lowest<T>());
  for (int64_t c0 = 0; c0 < C; c0 += W) {
    const int64_t cn = std::min<int64_t>(W, C - c0);
    V v[W];
    for (int l = 0; l < W; ++l) {
      const T* row = xb + l * C + c0;
      v[l] = l >= n ? V(T(0)) : cn == W ? V::load(row) : V::load(row, cn);
    }
    transpose(v);
    for (int j = 0; j < W; ++j) {
      v[j].store(tile + (c0 + j) * W);
      if (j < cn) m = max(m, v[j]);
    }
  }
  return m;
}

// Class-target rows of few classes, a vector of rows at a time: the block is transposed into a
// scratch tile (class-major, one lane per row), so the max, the sum of exponentials and the
// smoothing sum are vertical vector operations, with no horizontal reduction or per-row
// masking. A row at a time, these rows are bound by the latency of those reductions (about 30 ns
// a row at 10 classes, 70 at 21 on AVX-512), which this does not pay.
template <class T, bool kWeight, bool kSmooth>
int64_t ce_forward_narrow(const CrossEntropyRows<T>& a, int64_t r0, int64_t r1) {
  using V = Vec<T>;
  constexpr int W = V::W;
  const int64_t C = a.classes;
  alignas(64) T tile[kNarrowClasses * W];
  alignas(64) T lses[W], wxs[W];
  int64_t bad = -1;
  for (int64_t rb = r0; rb < r1; rb += W) {
    const int64_t n = std::min<int64_t>(W, r1 - rb);
    const T* xb = a.logits + rb * C;
    const V m = rows_to_tile(xb, C, n, tile);
    // A NaN logit makes its lane's sum NaN whatever max did with it; +inf gives inf - inf = NaN,
    // and an all -inf row sums to 0 (lse = -inf, loss -inf - -inf): the row's loss is NaN, as in torch.
    V s(T(0)), wx(T(0));
    for (int64_t c = 0; c < C; ++c) {
      const V v = V::load(tile + c * W);
      s = s + exp_flush(v - m);
      if constexpr (kSmooth) wx = kWeight ? fmadd(V(a.weight[c]), v, wx) : wx + v;
    }
    (m + log_of_sum(s)).store(lses);
    wx.store(wxs);
    store_lanes<T, kWeight, kSmooth, false>(
        a, rb, n, lses, wxs, nullptr, nullptr, [&](int64_t l, int64_t t) { return xb[l * C + t]; }, bad);
  }
  return bad;
}

// Rows of (batch, classes, positions) logits with more than one position (torch's (N, C, d1, ...)):
// the logits of W consecutive positions of one sample are contiguous in every class, so the lanes
// run over positions and the passes over the classes are vertical, as in ce_forward_narrow but
// with nothing to transpose. Two passes (the max, then the sums): one exponential per logit.
// The max pass is a chain over C lines of as many pages, which the out-of-order window does not
// reach from the previous block's exponentials: the second pass prefetches the next block's
// lines (2-5% at 21 classes, 2 threads; 1.37x at 150 classes, 1 thread). Copying the block to a
// tile for the second pass measured no faster.
template <class T, bool kWeight, bool kSmooth, bool kSoft>
int64_t ce_forward_positions(const CrossEntropyRows<T>& a, int64_t r0, int64_t r1) {
  using V = Vec<T>;
  constexpr int W = V::W;
  const int64_t C = a.classes, S = a.positions;
  alignas(64) T lses[W], wxs[W], wqs[W], wqxs[W];
  int64_t bad = -1;
  for (int64_t r = r0; r < r1;) {
    const int64_t n = r / S, s = r - n * S;
    const int64_t len = std::min<int64_t>(W, std::min(r1 - r, S - s));  // within one sample
    const T* x = a.logits + n * C * S + s;                              // class c at x + c S
    const T* q = kSoft ? a.soft + n * C * S + s : nullptr;
    auto load = [&](const T* p) { return len == W ? V::load(p) : V::load(p, len); };
    V m = load(x);
    for (int64_t c = 1; c < C; ++c) m = max(m, load(x + c * S));
    // NaN and infinities behave as in ce_forward_narrow: the lane's loss is NaN, as in torch.
    V sum(T(0)), wx(T(0)), wq(T(0)), wqx(T(0));
    for (int64_t c = 0; c < C; ++c) {
      const V v = load(x + c * S);
      __builtin_prefetch(x + c * S + W);  // the next block's line of this class
      sum = sum + exp_flush(v - m);
      if constexpr (kSmooth) wx = kWeight ? fmadd(V(a.weight[c]), v, wx) : wx + v;
      if constexpr (kSoft) {
        const V wqv = kWeight ? V(a.weight[c]) * load(q + c * S) : load(q + c * S);
        wq = wq + wqv;
        wqx = fmadd(wqv, v, wqx);
      }
    }
    (m + log_of_sum(sum)).store(lses);
    wx.store(wxs);
    wq.store(wqs);
    wqx.store(wqxs);
    store_lanes<T, kWeight, kSmooth, kSoft>(
        a, r, len, lses, wxs, wqs, wqxs, [&](int64_t l, int64_t t) { return x[t * S + l]; }, bad);
    r += len;
  }
  return bad;
}

template <class T, bool kWeight, bool kSmooth, bool kSoft>
int64_t cross_entropy_forward(const CrossEntropyRows<T>& a, int64_t r0, int64_t r1) {
  const int64_t C = a.classes;
  if (a.positions > 1) return ce_forward_positions<T, kWeight, kSmooth, kSoft>(a, r0, r1);
  if constexpr (!kSoft) {
    if (C <= kNarrowClasses) return ce_forward_narrow<T, kWeight, kSmooth>(a, r0, r1);
  }
  int64_t bad = -1;
  for (int64_t r = r0; r < r1; ++r) {
    const T* x = a.logits + r * C;
    if constexpr (kSoft) {
      const RowSums<T> rs = row_sums<T, kWeight, kSmooth, true>(x, a.soft + r * C, a.weight, C);
      store_soft_row<T, kSmooth>(a, r, rs.lse, rs.wq, rs.wqx, rs.wx);
    } else {
      const int64_t t = a.target[r];
      if (skip_class_row(a, r, t, bad)) continue;
      const RowSums<T> rs = row_sums<T, kWeight, kSmooth, false>(x, nullptr, a.weight, C);
      store_class_row<T, kWeight, kSmooth>(a, r, t, rs.lse, x[t], rs.wx);
    }
  }
  return bad;
}

// The gradient of the rows ce_forward_positions computes, the lanes over positions: each lane's
// scale and coefficients go to a small array first, then every class is one vector pass. The
// target's own term is subtracted per lane afterwards.
// ce_backward_positions for class targets without class weights and one scale for every row (a
// mean or a sum): each lane's setup in vectors. The general kernel builds it lane by lane in
// arrays and loads them back as vectors, which stalls on store forwarding (35% of its samples
// at 2x21x64x64 on Zen 5); here the coefficients are constants, the targets one conversion, and
// the target term a compare per class instead of a scalar update after the stores.
template <class T, bool kSmooth>
void ce_backward_positions_plain(const CrossEntropyRows<T>& a, int64_t r0, int64_t r1) {
  using V = Vec<T>;
  constexpr int W = V::W;
  const int64_t C = a.classes, S = a.positions;
  const T eps = kSmooth ? static_cast<T>(a.smoothing) : T(0), g = static_cast<T>(a.scale);
  // the general kernel's per-lane products, g * coef, g * e/C and g * (1 - e) * 1
  const V ga(g * class_row_coef<T>(T(1), eps, static_cast<T>(a.weight_sum), C)), ge(g * (eps / T(C)));
  const V gt(g * (T(1) - eps) * T(1)), zero(T(0)), none(T(-1));
  const bool ignore_in_range = a.ignore_index >= 0 && a.ignore_index < C;
  const V ignore(static_cast<T>(ignore_in_range ? a.ignore_index : -1));
  for (int64_t r = r0; r < r1;) {
    const int64_t n = r / S, s = r - n * S;
    const int64_t len = std::min<int64_t>(W, std::min(r1 - r, S - s));
    const T* x = a.logits + n * C * S + s;
    T* dx = a.grad_input + n * C * S + s;
    auto load = [&](const T* p) { return len == W ? V::load(p) : V::load(p, len); };
    // the lane's target, or -1 where its gradient is zero (ignored, or not a class index)
    V t = V::load_index(a.target + r, len);
    t = where(t >= zero, where(t < V(static_cast<T>(C)), t, none), none);
    if (ignore_in_range) t = where(t <= ignore, where(t >= ignore, none, t), t);
    const auto keep = t >= zero;
    const V lse = load(a.lse_in + r);
    for (int64_t c = 0; c < C; ++c) {
      V out = ga * exp_flush(load(x + c * S) - lse);
      if constexpr (kSmooth) out = out - ge;
      const V vc(static_cast<T>(c));
      out = where(keep, out - where(t <= vc, where(t >= vc, gt, zero), zero), zero);
      if (len == W) {
        out.store(dx + c * S);
      } else {
        out.store(dx + c * S, len);
      }
    }
    r += len;
  }
}

template <class T, bool kWeight, bool kSmooth, bool kSoft>
void ce_backward_positions(const CrossEntropyRows<T>& a, int64_t r0, int64_t r1) {
  using V = Vec<T>;
  constexpr int W = V::W;
  const int64_t C = a.classes, S = a.positions;
  if constexpr (!kWeight && !kSoft) {
    if (!a.grad && C < (int64_t(1) << 24)) return ce_backward_positions_plain<T, kSmooth>(a, r0, r1);
  }
  const T eps = kSmooth ? static_cast<T>(a.smoothing) : T(0), wsum = static_cast<T>(a.weight_sum);
  const T kq = kSoft ? T(1) - eps : T(0), ke = eps / T(C);
  alignas(64) T gs[W], coefs[W], keeps[W];
  int64_t ts[W];
  for (int64_t r = r0; r < r1;) {
    const int64_t n = r / S, s = r - n * S;
    const int64_t len = std::min<int64_t>(W, std::min(r1 - r, S - s));
    const T* x = a.logits + n * C * S + s;
    const T* q = kSoft ? a.soft + n * C * S + s : nullptr;
    T* dx = a.grad_input + n * C * S + s;
    auto load = [&](const T* p) { return len == W ? V::load(p) : V::load(p, len); };
    bool skipped = false;  // a lane is ignored (or out of range): its gradient is zero
    for (int64_t l = 0; l < W; ++l) {
      gs[l] = coefs[l] = T(0);
      keeps[l] = T(1);
      if (l >= len) continue;
      gs[l] = static_cast<T>(a.grad ? static_cast<double>(a.grad[r + l]) * a.scale : a.scale);
      if constexpr (!kSoft) {
        const int64_t t = ts[l] = a.target[r + l];
        if (t == a.ignore_index || !target_ok(t, C, a.ignore_index)) {
          keeps[l] = T(0);
          skipped = true;
          continue;
        }
        coefs[l] = class_row_coef<T>(kWeight ? a.weight[t] : T(1), eps, wsum, C);
      }
    }
    const V g = V::load(gs);
    V coef = V::load(coefs);
    if constexpr (kSoft) {  // A = (1-e) sum w q + e/C sum w
      V wq(T(0));
      for (int64_t c = 0; c < C; ++c) wq = kWeight ? fmadd(V(a.weight[c]), load(q + c * S), wq) : wq + load(q + c * S);
      coef = V(kq) * wq + V(ke * wsum);
    }
    const V ga = g * coef, gq = g * V(kq), ge = g * V(ke), lse = load(a.lse_in + r);
    const auto keep = V::load(keeps) > V(T(0));
    for (int64_t c = 0; c < C; ++c) {
      V out = ga * exp_flush(load(x + c * S) - lse);
      if constexpr (kSoft || kSmooth) {
        V b = ge;
        if constexpr (kSoft) b = fmadd(gq, load(q + c * S), ge);
        out = kWeight ? out - V(a.weight[c]) * b : out - b;
      }
      if (skipped) out = where(keep, out, V(T(0)));
      if (len == W) {
        out.store(dx + c * S);
      } else {
        out.store(dx + c * S, len);
      }
    }
    if constexpr (!kSoft) {
      for (int64_t l = 0; l < len; ++l) {
        if (keeps[l] == T(0)) continue;
        const int64_t t = ts[l];
        dx[t * S + l] -= gs[l] * (T(1) - eps) * (kWeight ? a.weight[t] : T(1));
      }
    }
    r += len;
  }
}

template <class T, bool kWeight, bool kSmooth, bool kSoft>
void cross_entropy_backward(const CrossEntropyRows<T>& a, int64_t r0, int64_t r1) {
  using V = Vec<T>;
  constexpr int W = V::W;
  const int64_t C = a.classes;
  if (a.positions > 1) return ce_backward_positions<T, kWeight, kSmooth, kSoft>(a, r0, r1);
  const T eps = kSmooth ? static_cast<T>(a.smoothing) : T(0), wsum = static_cast<T>(a.weight_sum);
  for (int64_t r = r0; r < r1; ++r) {
    const T* x = a.logits + r * C;
    T* dx = a.grad_input + r * C;
    const T g = static_cast<T>(a.grad ? static_cast<double>(a.grad[r]) * a.scale : a.scale);
    int64_t t = -1;
    T w_t = T(1);
    if constexpr (!kSoft) {
      t = a.target[r];
      if (t == a.ignore_index || !target_ok(t, C, a.ignore_index)) {
        int64_t i = 0;
        for (; i + W <= C; i += W) V(T(0)).store(dx + i);
        if (i < C) V(T(0)).store(dx + i, C - i);
        continue;
      }
      if constexpr (kWeight) w_t = a.weight[t];
    }
    const T* q = kSoft ? a.soft + r * C : nullptr;
    // dx_c = g (A p_c - w_c (kq q_c + ke)), with b_c = w_c (kq q_c + ke) the row's coefficients.
    T coef, kq = T(1) - eps, ke = eps / T(C);
    if constexpr (kSoft) {
      V acc(T(0));
      int64_t i = 0;
      for (; i + W <= C; i += W) acc = acc + (kWeight ? V::load(a.weight + i) : V(T(1))) * V::load(q + i);
      if (i < C) acc = acc + (kWeight ? V::load(a.weight + i, C - i) : V(T(1))) * V::load(q + i, C - i);
      coef = kq * reduce_add(acc) + ke * wsum;
    } else {
      coef = class_row_coef<T>(w_t, eps, wsum, C);
      kq = T(0);
    }
    const V ga(g * coef), gq(g * kq), ge(g * ke), lse(a.lse_in[r]);
    auto grad = [&](V xv, const T* qp, const T* wp, int64_t live) {
      V out = ga * exp_flush(xv - lse);
      if constexpr (kSoft || kSmooth) {
        const V wv = kWeight ? (live == W ? V::load(wp) : V::load(wp, live)) : V(T(1));
        V b = ge;
        if constexpr (kSoft) b = fmadd(gq, live == W ? V::load(qp) : V::load(qp, live), ge);
        out = out - wv * b;
      }
      return out;
    };
    int64_t i = 0;
#pragma GCC unroll 2
    for (; i + W <= C; i += W) grad(V::load(x + i), q + i, a.weight + i, W).store(dx + i);
    if (i < C) grad(V::load(x + i, C - i), q + i, a.weight + i, C - i).store(dx + i, C - i);
    if constexpr (!kSoft) dx[t] -= g * (T(1) - eps) * w_t;
  }
}

template <class T>
const LossTable<T>& loss_table() {
#define DLK_CE(f)                                                                                              \
  {&f<T, false, false, false>, &f<T, true, false, false>, &f<T, false, true, false>, &f<T, true, true, false>, \
   &f<T, false, false, true>,  &f<T, true, false, true>,  &f<T, false, true, true>,  &f<T, true, true, true>}
  static constexpr LossTable<T> table = {&squared_error_sum<T>, &squared_error<T>, &squared_error_grad<T>,
                                         DLK_CE(cross_entropy_forward), DLK_CE(cross_entropy_backward)};
#undef DLK_CE
  return table;
}

template const LossTable<float>& loss_table<float>();
template const LossTable<double>& loss_table<double>();

}  // namespace dlk::cpu::DLK_ISA
