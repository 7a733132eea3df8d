// Torch-free geometry of sliding 2-D windows (pooling, and the output size of a convolution),
// shared by host checks, CPU kernels and CUDA kernels.
//
// Along one axis: input length `in`, kernel k, stride s, zero padding p on both sides, dilation d.
// A window o covers input positions o s - p + r d for r in [0, k). torch's output length:
//   out = floor((in + 2p - d (k - 1) - 1 + (ceil ? s - 1 : 0)) / s) + 1,
// and with ceil_mode the last window is dropped when it would start in the right padding
// ((out - 1) s >= in + p). Every intermediate is checked: arguments come from users, and a
// wrapped int64 would size a huge allocation or index out of bounds.
#pragma once

#include <cstdint>

#include "common/macros.h"

namespace dlk {

constexpr int64_t kWindowOverflow = INT64_MIN;

// a + b and a * b for non-negative a, b; kWindowOverflow when the result would not fit.
DLK_HD int64_t window_add(int64_t a, int64_t b) { return a > INT64_MAX - b ? kWindowOverflow : a + b; }
DLK_HD int64_t window_mul(int64_t a, int64_t b) { return (a != 0 && b > INT64_MAX / a) ? kWindowOverflow : a * b; }

// Floor division for b > 0 (C++ rounds towards zero).
DLK_HD int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// Output length along one axis (may be <= 0: the caller reports it), or kWindowOverflow.
// Needs in >= 0, k >= 1, s >= 1, p >= 0, d >= 1.
DLK_HD int64_t window_out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil_mode) {
  const int64_t pad2 = window_mul(2, p);
  const int64_t span = window_mul(d, k - 1);  // effective kernel - 1
  if (pad2 == kWindowOverflow || span == kWindowOverflow) return kWindowOverflow;
  const int64_t padded = window_add(in, pad2);
  if (padded == kWindowOverflow) return kWindowOverflow;
  int64_t num = padded - span - 1;  // no overflow: both terms are non-negative
  if (ceil_mode) {
    if (num > 0 && num > INT64_MAX - (s - 1)) return kWindowOverflow;
    num += s - 1;
  }
  int64_t out = floor_div(num, s) + 1;
  // The last window must start inside the input or the left padding.
  if (ceil_mode && out > 0 && (out - 1) >= floor_div(in + p - 1, s) + 1) --out;
  return out;
}

// One axis of a regular (strided) window, for the kernels.
struct WindowAxis {
  int64_t in, out, k, s, p, d;

  DLK_HD int64_t start(int64_t o) const { return o * s - p; }
  // Positions spanned by one window: (k - 1) d + 1.
  DLK_HD int64_t span() const { return (k - 1) * d + 1; }
  // Windows [begin, end) whose span [start, start + span) contains input position i.
  DLK_HD int64_t first_window(int64_t i, int64_t span_len) const {
    const int64_t o = floor_div(i + p - span_len, s) + 1;
    return o < 0 ? 0 : o;
  }
  DLK_HD int64_t end_window(int64_t i) const {
    const int64_t o = floor_div(i + p, s) + 1;
    return o > out ? out : o;
  }
};

// One axis of an adaptive window: o covers [floor(o in / out), ceil((o + 1) in / out)).
struct AdaptiveAxis {
  int64_t in, out;

  DLK_HD int64_t start(int64_t o) const { return (o * in) / out; }
  DLK_HD int64_t end(int64_t o) const { return ((o + 1) * in + out - 1) / out; }
  // Windows [first, end) that contain input position i.
  DLK_HD int64_t first_window(int64_t i) const { return (i * out) / in; }
  DLK_HD int64_t end_window(int64_t i) const {
    const int64_t o = ((i + 1) * out + in - 1) / in;
    return o > out ? out : o;
  }
};

}  // namespace dlk
