// The shape of one 2-D convolution, torch-free so CPU kernels and CUDA launchers share it.
//
// Legend (llm.c style): input N x C x H x W, weight K x (C/G) x R x S, output N x K x P x Q;
// stride sh, sw; padding ph, pw (zeros, both sides); dilation dh, dw; G groups.
//   P = (H + 2 ph - dh (R - 1) - 1) / sh + 1,  Q likewise.
#pragma once

#include <cstdint>

#include "common/macros.h"

namespace dlk {

struct Conv2dGeometry {
  int64_t N, C, H, W;
  int64_t K, R, S;
  int64_t P, Q;
  int64_t sh, sw, ph, pw, dh, dw;
  int64_t G;

  DLK_HD int64_t Cg() const { return C / G; }
  DLK_HD int64_t Kg() const { return K / G; }
  DLK_HD int64_t HW() const { return H * W; }
  DLK_HD int64_t PQ() const { return P * Q; }
  DLK_HD int64_t RS() const { return R * S; }
  // GEMM reduction length of the forward pass: one group's (c, r, s) triples.
  DLK_HD int64_t CgRS() const { return Cg() * R * S; }
  // Same input position for every output column shift: 1x1, stride 1, no padding.
  DLK_HD bool is_pointwise() const { return R == 1 && S == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0; }

  static int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
    return (in + 2 * p - d * (k - 1) - 1) / s + 1;
  }
};

// Overflow-checked shape arithmetic. Returns false (and leaves `g` unspecified) when a size the
// kernels compute would not fit in int64: the padded input, the kernel's extent, the output's
// element count. Kept torch-free so each device's host code reports it in its own words.
enum class GeometryError : int { none, padding_too_large, kernel_too_large, output_too_large };
constexpr int64_t kMaxPadding = INT64_MAX / 2;  // torch's bound: 2 p must fit

inline bool checked_mul(int64_t a, int64_t b, int64_t* out) { return !__builtin_mul_overflow(a, b, out); }
inline bool checked_add(int64_t a, int64_t b, int64_t* out) { return !__builtin_add_overflow(a, b, out); }

// Padded extent (in + 2 p) and kernel extent (d (k - 1) + 1) of one dimension, when they fit.
inline bool checked_extents(int64_t in, int64_t k, int64_t p, int64_t d, int64_t* padded, int64_t* extent) {
  int64_t two_p = 0, dk = 0;
  return checked_mul(p, 2, &two_p) && checked_add(in, two_p, padded) && checked_mul(d, k - 1, &dk) &&
         checked_add(dk, 1, extent);
}

// Fills g.P and g.Q from the other fields, which must already be positive (sizes, stride,
// dilation, groups) or non-negative (padding). padded_*/extent_* get the per-dimension sizes for
// messages (0 where they overflowed).
inline GeometryError complete_geometry(Conv2dGeometry& g, int64_t padded[2], int64_t extent[2]) {
  padded[0] = padded[1] = extent[0] = extent[1] = 0;
  if (g.ph > kMaxPadding || g.pw > kMaxPadding) return GeometryError::padding_too_large;
  const bool fit_h = checked_extents(g.H, g.R, g.ph, g.dh, &padded[0], &extent[0]);
  const bool fit_w = checked_extents(g.W, g.S, g.pw, g.dw, &padded[1], &extent[1]);
  int64_t two_p = 0;
  if (!checked_add(g.H, 2 * g.ph, &two_p) || !checked_add(g.W, 2 * g.pw, &two_p)) {
    return GeometryError::padding_too_large;
  }
  if (!fit_h || !fit_w) return GeometryError::kernel_too_large;  // d (k - 1) beyond int64
  if (padded[0] < extent[0] || padded[1] < extent[1]) return GeometryError::kernel_too_large;
  g.P = (padded[0] - extent[0]) / g.sh + 1;
  g.Q = (padded[1] - extent[1]) / g.sw + 1;
  int64_t n = 0;
  if (!checked_mul(g.N, g.K, &n) || !checked_mul(n, g.P, &n) || !checked_mul(n, g.Q, &n)) {
    return GeometryError::output_too_large;
  }
  return GeometryError::none;
}

// The kernels read the input through "planes": each channel copied once, zero-padded and split
// into stride phases (space-to-depth), keeping only the rows and columns the taps can reach. The
// pixel that filter tap (r, s) needs for output (p, q) is then
//   plane + tap(r, s) + p * cols + q,
// so consecutive output columns read consecutive memory whatever the stride, dilation or padding
// (and consecutive rows too when cols == Q). Gradients scatter into planes the same way, and each
// padded pixel has at most one place in them.
//
// Each dimension (rows: stride s, dilation d, R taps, P outputs) is laid out one of two ways:
//  - phased: padded row u s + a is row u of phase a / gcd(d, s) (a a multiple of gcd(d, s), the
//    only residues taps reach); tap r reads phase (r d mod s) / gcd, rows from r d / s on. The
//    usual layout: rows shared by neighbouring taps are stored once.
//  - sparse: each tap has a block of its own P rows (phase r holds rows p s + r d), when no two
//    taps share a row. Used when the phased layout would be much larger than that: a stride or
//    dilation far larger than the data read (unused phases, or gaps of padding between taps) would
//    otherwise size the planes by the arguments instead of by what the taps read (at most 4 R P).
struct PlaneAxis {
  int64_t stride, dil, pad, in;  // s, d, padding, input size
  int64_t taps, out;             // R, P
  int64_t phases, step, rows;    // stored phases, padded distance between phases, rows per phase
  bool sparse;

  PlaneAxis() = default;
  PlaneAxis(int64_t s, int64_t d, int64_t p, int64_t n, int64_t k, int64_t o)
      : stride(s), dil(d), pad(p), in(n), taps(k), out(o) {
    int64_t a = d, b = s;
    while (b != 0) {  // gcd
      const int64_t t = a % b;
      a = b;
      b = t;
    }
    const int64_t gcd = a, phases1 = s / gcd;
    const int64_t rows1 = o + (k - 1) * d / s;  // (k - 1) d fits: checked with the padded size
    // No two taps share a padded row unless (s / gcd) < k and (d / gcd) < o.
    const bool disjoint = k == 1 || phases1 >= k || d / gcd >= o;
    int64_t size1 = 0, size2 = 0;
    const bool fits1 = checked_mul(phases1, rows1, &size1);
    const bool fits2 = checked_mul(k, o, &size2) && checked_mul(size2, 4, &size2);
    sparse = disjoint && (!fits1 || (fits2 && size1 > size2));
    phases = sparse ? k : phases1;
    step = sparse ? d : gcd;
    rows = sparse ? o : rows1;
  }
  int64_t phase(int64_t r) const { return sparse ? r : (r * dil % stride) / step; }
  int64_t offset(int64_t r) const { return sparse ? 0 : r * dil / stride; }
  // Whether some tap reads phase `ph`.
  bool used(int64_t ph) const {
    if (sparse) return true;
    for (int64_t r = 0; r < taps; ++r) {
      if (phase(r) == ph) return true;
    }
    return false;
  }
  // Input index of stored row u of phase ph (may lie in the padding, i.e. outside [0, in)); -1
  // for any position outside the input.
  int64_t source(int64_t ph, int64_t u) const {
    const __int128 y = static_cast<__int128>(u) * stride + static_cast<__int128>(ph) * step - pad;
    return y >= 0 && y < in ? static_cast<int64_t>(y) : -1;
  }
  // phase * rows + row of input index i, or -1 when the planes do not hold it (no tap reads it).
  int64_t locate(int64_t i) const {
    const int64_t y = i + pad;
    if (sparse) {
      for (int64_t r = 0; r < taps && r * dil <= y; ++r) {
        const int64_t z = y - r * dil;
        if (z % stride == 0 && z / stride < out) return r * rows + z / stride;
      }
      return -1;
    }
    const int64_t a = y % stride, u = y / stride;
    if (u >= rows) return -1;
    if (step == 1) return a * rows + u;
    return a % step != 0 ? -1 : a / step * rows + u;
  }
  // Phased with every residue stored (gcd 1): padded u s + a is phase a, row u.
  bool full_phases() const { return !sparse && step == 1; }
};

struct PlaneLayout {
  PlaneAxis h, w;
  int64_t rows, cols, size;  // per phase: rows x cols; size: all phases of one channel

  explicit PlaneLayout(const Conv2dGeometry& g)
      : h(g.sh, g.dh, g.ph, g.H, g.R, g.P), w(g.sw, g.dw, g.pw, g.W, g.S, g.Q), rows(h.rows), cols(w.rows) {
    // Saturates: a size that cannot be allocated fails in the allocator, not by wrapping around.
    if (!checked_mul(h.phases * w.phases, rows, &size) || !checked_mul(size, cols, &size)) size = INT64_MAX;
  }

  int64_t phase_offset(int64_t ph, int64_t pw) const { return (ph * w.phases + pw) * rows * cols; }
  int64_t tap(const Conv2dGeometry&, int64_t r, int64_t s) const {
    return phase_offset(h.phase(r), w.phase(s)) + h.offset(r) * cols + w.offset(s);
  }
  int64_t phases() const { return h.phases * w.phases; }
  // The input itself already is its own plane (no padding, stride 1, nothing to crop).
  bool is_input(const Conv2dGeometry& g) const {
    return g.ph == 0 && g.pw == 0 && g.sh == 1 && g.sw == 1 && !h.sparse && !w.sparse && rows == g.H && cols == g.W;
  }
};

}  // namespace dlk
