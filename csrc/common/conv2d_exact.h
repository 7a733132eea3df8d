// Exact non-finite values for conv2d results (NCHW, contiguous), torch-free.
//
// The fast kernels multiply zeros they materialise (padding in planes and im2col panels, margins
// and padding columns in the depthwise kernels) by real operands, so a NaN or inf weight (or
// gradient) times such a zero gives NaN in an entry whose definition never reads that value.
// Only non-finite results can be wrong that way, and only those whose taps reach a materialised
// zero, so after a kernel runs each such entry is recomputed here by its definition: a sum over
// the taps that read real input pixels. All-finite calls only pay for a scan of the border.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "common/conv2d_geometry.h"

namespace dlk::exact {

// Whether the row (or column) i of the data gradient can receive a zero from a tap that reads
// outside the outputs: some tap r lines i up with an output index outside [0, out).
inline std::vector<char> grad_input_border(int64_t in, int64_t pad, int64_t stride, int64_t dil, int64_t taps,
                                           int64_t out) {
  std::vector<char> border(in, 0);
  for (int64_t i = 0; i < in; ++i) {
    const int64_t y = i + pad;
    for (int64_t r = 0; r < taps && !border[i]; ++r) {
      const int64_t z = y - r * dil;
      border[i] = z < 0 || (z % stride == 0 && z / stride >= out);
    }
  }
  return border;
}

// Whether any of n values is NaN or inf: an exponent of all ones, tested on the bits so the
// loop vectorizes (the scan runs on every call).
template <class T>
bool any_nonfinite(const T* p, int64_t n) {
  using U = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  constexpr U exp = sizeof(T) == 4 ? U(0x7f800000u) : U(0x7ff0000000000000ull);
  U bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    U bits;
    std::memcpy(&bits, p + i, sizeof(T));
    bad |= U((bits & exp) == exp);
  }
  return bad != 0;
}

// Output indices [lo, hi] of one dimension whose taps all read the input (hi < lo: none).
inline void interior(int64_t in, int64_t pad, int64_t stride, int64_t dil, int64_t taps, int64_t out, int64_t* lo,
                     int64_t* hi) {
  *lo = pad / stride + (pad % stride != 0);
  const int64_t last = in - 1 + pad - (taps - 1) * dil;  // p stride <= last
  *hi = last < 0 ? -1 : std::min<int64_t>(last / stride, out - 1);
}

// Element strides of a 4-D operand, in its logical dimension order (x: n c h w, w: k c r s), so
// one definition serves NCHW data and channels_last (NHWC) data alike.
struct Strides4 {
  int64_t d0, d1, d2, d3;
  static Strides4 nchw(int64_t c, int64_t h, int64_t w) { return {c * h * w, h * w, w, 1}; }
  static Strides4 nhwc(int64_t c, int64_t h, int64_t w) { return {h * w * c, 1, w * c, c}; }
};

template <class T>
T forward_entry(const Conv2dGeometry& g, const T* x, Strides4 xs, const T* w, Strides4 ws, const T* bias, int64_t n,
                int64_t k, int64_t p, int64_t q) {
  const int64_t Cg = g.Cg(), gi = k / g.Kg();
  T sum = bias ? bias[k] : T(0);
  for (int64_t c = 0; c < Cg; ++c) {
    const T* xc = x + n * xs.d0 + (gi * Cg + c) * xs.d1;
    const T* wc = w + k * ws.d0 + c * ws.d1;
    for (int64_t r = 0; r < g.R; ++r) {
      const int64_t ih = p * g.sh - g.ph + r * g.dh;
      if (ih < 0 || ih >= g.H) continue;
      for (int64_t s = 0; s < g.S; ++s) {
        const int64_t iw = q * g.sw - g.pw + s * g.dw;
        if (iw < 0 || iw >= g.W) continue;
        sum += wc[r * ws.d2 + s * ws.d3] * xc[ih * xs.d2 + iw * xs.d3];
      }
    }
    if (std::isnan(sum)) return sum;  // stays NaN
  }
  return sum;
}

template <class T>
T forward_entry(const Conv2dGeometry& g, const T* x, const T* w, const T* bias, int64_t n, int64_t k, int64_t p,
                int64_t q) {
  return forward_entry(g, x, Strides4::nchw(g.C, g.H, g.W), w, Strides4::nchw(g.Cg(), g.R, g.S), bias, n, k, p, q);
}

// par(begin, end, body(b, e)): the caller's parallel loop (none in this torch-free header).
template <class T, class ParFor>
void fix_forward(const Conv2dGeometry& g, const T* x, const T* w, const T* bias, T* y, ParFor&& par) {
  int64_t p_lo, p_hi, q_lo, q_hi;
  interior(g.H, g.ph, g.sh, g.dh, g.R, g.P, &p_lo, &p_hi);
  interior(g.W, g.pw, g.sw, g.dw, g.S, g.Q, &q_lo, &q_hi);
  const int64_t left = std::min(std::max<int64_t>(q_lo, 0), g.Q);  // columns [0, left) are border
  const int64_t right = std::max(std::min(q_hi + 1, g.Q), left);   // and [right, Q)
  par(0, g.N * g.K, [&](int64_t b, int64_t e) {
    for (int64_t nk = b; nk < e; ++nk) {
      const int64_t n = nk / g.K, k = nk % g.K;
      T* yk = y + nk * g.PQ();
      auto fix = [&](int64_t p, int64_t q0, int64_t q1) {
        T* row = yk + p * g.Q;
        if (q1 <= q0 || !any_nonfinite(row + q0, q1 - q0)) return;
        for (int64_t q = q0; q < q1; ++q) {
          if (!std::isfinite(row[q])) row[q] = forward_entry(g, x, w, bias, n, k, p, q);
        }
      };
      for (int64_t p = 0; p < g.P; ++p) {
        if (p < p_lo || p > p_hi || left >= right) {
          fix(p, 0, g.Q);
        } else {
          fix(p, 0, left);
          fix(p, right, g.Q);
        }
      }
    }
  });
}

// fix_forward for channels_last operands: x NHWC, w KRSC (its channels_last memory), y NHWC; each
// border pixel's K channels are contiguous, so the scan runs over them.
template <class T, class ParFor>
void fix_forward_nhwc(const Conv2dGeometry& g, const T* x, const T* w, const T* bias, T* y, ParFor&& par) {
  int64_t p_lo, p_hi, q_lo, q_hi;
  interior(g.H, g.ph, g.sh, g.dh, g.R, g.P, &p_lo, &p_hi);
  interior(g.W, g.pw, g.sw, g.dw, g.S, g.Q, &q_lo, &q_hi);
  const Strides4 xs = Strides4::nhwc(g.C, g.H, g.W), ws = Strides4::nhwc(g.Cg(), g.R, g.S);
  par(0, g.N * g.P, [&](int64_t b, int64_t e) {
    for (int64_t np = b; np < e; ++np) {
      const int64_t n = np / g.P, p = np % g.P;
      const bool border_row = p < p_lo || p > p_hi;
      for (int64_t q = 0; q < g.Q; ++q) {
        if (!border_row && q >= q_lo && q <= q_hi) continue;
        T* pixel = y + (np * g.Q + q) * g.K;
        if (!any_nonfinite(pixel, g.K)) continue;
        for (int64_t k = 0; k < g.K; ++k) {
          if (!std::isfinite(pixel[k])) pixel[k] = forward_entry(g, x, xs, w, ws, bias, n, k, p, q);
        }
      }
    }
  });
}

template <class T>
T grad_input_entry(const Conv2dGeometry& g, const T* dy, const T* w, int64_t n, int64_t c, int64_t ih, int64_t iw) {
  const int64_t Cg = g.Cg(), Kg = g.Kg(), gi = c / Cg, cg = c % Cg;
  T sum = T(0);
  for (int64_t k = gi * Kg; k < (gi + 1) * Kg; ++k) {
    const T* dyk = dy + (n * g.K + k) * g.PQ();
    const T* wk = w + (k * Cg + cg) * g.RS();
    for (int64_t r = 0; r < g.R; ++r) {
      const int64_t zh = ih + g.ph - r * g.dh;
      if (zh < 0 || zh % g.sh != 0 || zh / g.sh >= g.P) continue;
      for (int64_t s = 0; s < g.S; ++s) {
        const int64_t zw = iw + g.pw - s * g.dw;
        if (zw < 0 || zw % g.sw != 0 || zw / g.sw >= g.Q) continue;
        sum += wk[r * g.S + s] * dyk[zh / g.sh * g.Q + zw / g.sw];
      }
    }
    if (std::isnan(sum)) return sum;
  }
  return sum;
}

template <class T, class ParFor>
void fix_grad_input(const Conv2dGeometry& g, const T* dy, const T* w, T* dx, ParFor&& par) {
  const std::vector<char> bh = grad_input_border(g.H, g.ph, g.sh, g.dh, g.R, g.P);
  const std::vector<char> bw = grad_input_border(g.W, g.pw, g.sw, g.dw, g.S, g.Q);
  std::vector<int64_t> border_cols;
  for (int64_t iw = 0; iw < g.W; ++iw) {
    if (bw[iw]) border_cols.push_back(iw);
  }
  par(0, g.N * g.C, [&](int64_t b, int64_t e) {
    for (int64_t nc = b; nc < e; ++nc) {
      const int64_t n = nc / g.C, c = nc % g.C;
      T* dxc = dx + nc * g.HW();
      for (int64_t ih = 0; ih < g.H; ++ih) {
        T* row = dxc + ih * g.W;
        auto fix = [&](int64_t iw) {
          if (!std::isfinite(row[iw])) row[iw] = grad_input_entry(g, dy, w, n, c, ih, iw);
        };
        if (bh[ih]) {
          if (!any_nonfinite(row, g.W)) continue;
          for (int64_t iw = 0; iw < g.W; ++iw) fix(iw);
        } else {
          for (int64_t iw : border_cols) fix(iw);
        }
      }
    }
  });
}

template <class T>
T grad_weight_entry(const Conv2dGeometry& g, const T* dy, const T* x, int64_t k, int64_t c, int64_t r, int64_t s) {
  const int64_t gi = k / g.Kg();
  T sum = T(0);
  for (int64_t n = 0; n < g.N; ++n) {
    const T* dyk = dy + (n * g.K + k) * g.PQ();
    const T* xc = x + (n * g.C + gi * g.Cg() + c) * g.HW();
    for (int64_t p = 0; p < g.P; ++p) {
      const int64_t ih = p * g.sh - g.ph + r * g.dh;
      if (ih < 0 || ih >= g.H) continue;
      for (int64_t q = 0; q < g.Q; ++q) {
        const int64_t iw = q * g.sw - g.pw + s * g.dw;
        if (iw < 0 || iw >= g.W) continue;
        sum += dyk[p * g.Q + q] * xc[ih * g.W + iw];
      }
      if (std::isnan(sum)) return sum;
    }
  }
  return sum;
}

// Every non-finite entry: besides padding, the depthwise kernels also multiply zero gradient
// columns by input pixels no output reads. The weight is small; only non-finite entries cost more.
template <class T>
void fix_grad_weight(const Conv2dGeometry& g, const T* dy, const T* x, T* dw) {
  const int64_t Cg = g.Cg(), RS = g.RS();
  if (!any_nonfinite(dw, g.K * Cg * RS)) return;
  for (int64_t i = 0; i < g.K * Cg * RS; ++i) {
    if (std::isfinite(dw[i])) continue;
    const int64_t k = i / (Cg * RS), c = i / RS % Cg, rs = i % RS;
    dw[i] = grad_weight_entry(g, dy, x, k, c, rs / g.S, rs % g.S);
  }
}

}  // namespace dlk::exact
