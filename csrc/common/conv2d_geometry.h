// The shape of one 2-D convolution, torch-free so CPU kernels and CUDA launchers share it.
//
// Legend (llm.c style): input N x C x H x W, weight K x (C/G) x R x S, output N x K x P x Q;
// stride sh, sw; padding ph, pw (zeros, both sides); dilation dh, dw; G groups.
//   P = (H + 2 ph - dh (R - 1) - 1) / sh + 1,  Q likewise.
#pragma once

#include <cstdint>

namespace dlk {

struct Conv2dGeometry {
  int64_t N, C, H, W;
  int64_t K, R, S;
  int64_t P, Q;
  int64_t sh, sw, ph, pw, dh, dw;
  int64_t G;

  int64_t Cg() const { return C / G; }
  int64_t Kg() const { return K / G; }
  int64_t HW() const { return H * W; }
  int64_t PQ() const { return P * Q; }
  int64_t RS() const { return R * S; }
  // GEMM reduction length of the forward pass: one group's (c, r, s) triples.
  int64_t CgRS() const { return Cg() * R * S; }
  // Same input position for every output column shift: 1x1, stride 1, no padding.
  bool is_pointwise() const { return R == 1 && S == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0; }

  static int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
    return (in + 2 * p - d * (k - 1) - 1) / s + 1;
  }
};

// The kernels read the input through "planes": each channel copied once, zero-padded and split
// into sh x sw stride phases (space-to-depth). Padded pixel (u sh + a, v sw + b) is stored at
// phase (a, b), row u, column v. The pixel that filter tap (r, s) needs for output (p, q) is then
//   plane + tap(r, s) + p * cols + q,
// so consecutive output columns read consecutive memory whatever the stride, dilation or padding
// (and consecutive rows too when cols == Q). Gradients scatter into planes the same way.
struct PlaneLayout {
  int64_t rows, cols, size;  // per phase: rows x cols; size: all phases of one channel

  explicit PlaneLayout(const Conv2dGeometry& g)
      : rows(g.P + (g.R - 1) * g.dh / g.sh), cols(g.Q + (g.S - 1) * g.dw / g.sw), size(g.sh * g.sw * rows * cols) {}

  static int64_t tap(const Conv2dGeometry& g, int64_t rows, int64_t cols, int64_t r, int64_t s) {
    const int64_t th = r * g.dh, tw = s * g.dw;
    return ((th % g.sh) * g.sw + tw % g.sw) * rows * cols + (th / g.sh) * cols + tw / g.sw;
  }
  int64_t tap(const Conv2dGeometry& g, int64_t r, int64_t s) const { return tap(g, rows, cols, r, s); }
  // The input itself already is its own plane (no padding, stride 1, nothing to crop).
  bool is_input(const Conv2dGeometry& g) const {
    return g.ph == 0 && g.pw == 0 && g.sh == 1 && g.sw == 1 && rows == g.H && cols == g.W;
  }
};

}  // namespace dlk
