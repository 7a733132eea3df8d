// Counter-based random numbers and the transforms of the init family, torch-free and shared by the
// CPU and CUDA kernels (and the CUDA emulator), so every device draws the same numbers.
//
// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): a keyed
// bijection of a 128-bit counter. Element i of a fill takes word i % 4 of the block for counter
// (i / 4, offset), key = seed: a value depends only on (seed, offset, i), never on how the work
// is split across threads. The seed and offset come from torch's generator (dlkernels/init.py).
//
// The transforms compute in double whatever the element type, from 32-bit uniforms in (0, 1):
// normal by Box-Muller over the block's two word pairs, truncated normal by the inverse CDF.
#pragma once

#include <cmath>
#include <cstdint>

#include "common/macros.h"

namespace dlk {

struct Philox4 {
  uint32_t v[4];
};

DLK_HD uint32_t mulhilo(uint32_t a, uint32_t b, uint32_t* hi) {
  const uint64_t p = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(p >> 32);
  return static_cast<uint32_t>(p);
}

// Philox4x32 with 10 rounds; the constants are the paper's (and curand's).
DLK_HD Philox4 philox4x32_10(uint64_t counter_lo, uint64_t counter_hi, uint64_t key) {
  uint32_t c0 = static_cast<uint32_t>(counter_lo), c1 = static_cast<uint32_t>(counter_lo >> 32);
  uint32_t c2 = static_cast<uint32_t>(counter_hi), c3 = static_cast<uint32_t>(counter_hi >> 32);
  uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, hi1;
    const uint32_t lo0 = mulhilo(0xD2511F53u, c0, &hi0);
    const uint32_t lo1 = mulhilo(0xCD9E8D57u, c2, &hi1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return {{c0, c1, c2, c3}};
}

// (0, 1), never 0 or 1: Box-Muller takes its log.
DLK_HD double uniform_open(uint32_t x) { return (static_cast<double>(x) + 0.5) * 2.3283064365386963e-10; }

constexpr double kPi = 3.14159265358979323846;
constexpr double kSqrt2 = 1.41421356237309504880;

// erf^-1 in double: Giles' single-precision approximation ("Approximating the erfinv function",
// 2010), refined by two Newton steps on erf (available on host and device, unlike erfinv).
// |y| >= 1 gives +-inf; the caller clamps.
DLK_HD double erfinv_double(double y) {
  if (!(y > -1.0)) return -INFINITY;
  if (!(y < 1.0)) return INFINITY;
  double w = -::log((1.0 - y) * (1.0 + y)), p;
  if (w < 5.0) {
    w -= 2.5;
    p = 2.81022636e-08;
    p = 3.43273939e-07 + p * w;
    p = -3.5233877e-06 + p * w;
    p = -4.39150654e-06 + p * w;
    p = 0.00021858087 + p * w;
    p = -0.00125372503 + p * w;
    p = -0.00417768164 + p * w;
    p = 0.246640727 + p * w;
    p = 1.50140941 + p * w;
  } else {
    w = ::sqrt(w) - 3.0;
    p = -0.000200214257;
    p = 0.000100950558 + p * w;
    p = 0.00134934322 + p * w;
    p = -0.00367342844 + p * w;
    p = 0.00573950773 + p * w;
    p = -0.0076224613 + p * w;
    p = 0.00943887047 + p * w;
    p = 1.00167406 + p * w;
    p = 2.83297682 + p * w;
  }
  double x = p * y;
  for (int i = 0; i < 2; ++i) x -= (::erf(x) - y) / (1.1283791670955126 * ::exp(-x * x));
  return x;
}

enum class InitKind : int { uniform = 0, normal = 1, trunc_normal = 2 };

// What one fill draws: uniform on [p0, p1), normal (mean p0, std p1), or normal (p0, p1) truncated
// to [p2, p3] (erf_lo/erf_hi: erf of the standardised bounds over sqrt(2), computed once).
struct InitParams {
  InitKind kind;
  double p0, p1, p2, p3;
  double erf_lo, erf_hi;
  uint64_t seed, offset;
};

inline InitParams make_init_params(InitKind kind, double p0, double p1, double p2, double p3, int64_t seed,
                                   int64_t offset) {
  InitParams p{kind, p0, p1, p2, p3, 0.0, 0.0, static_cast<uint64_t>(seed), static_cast<uint64_t>(offset)};
  if (kind == InitKind::trunc_normal) {
    p.erf_lo = ::erf((p2 - p0) / (p1 * kSqrt2));
    p.erf_hi = ::erf((p3 - p0) / (p1 * kSqrt2));
  }
  return p;
}

// The four values of block `g` (elements 4g .. 4g+3).
DLK_HD void init_block(const InitParams& p, uint64_t g, double out[4]) {
  const Philox4 r = philox4x32_10(g, p.offset, p.seed);
  double u[4];
  for (int k = 0; k < 4; ++k) u[k] = uniform_open(r.v[k]);
  switch (p.kind) {
    case InitKind::uniform:
      for (int k = 0; k < 4; ++k) out[k] = p.p0 + (p.p1 - p.p0) * u[k];
      break;
    case InitKind::normal:
      for (int k = 0; k < 4; k += 2) {
        const double radius = ::sqrt(-2.0 * ::log(u[k])), angle = 2.0 * kPi * u[k + 1];
        out[k] = p.p0 + p.p1 * radius * ::cos(angle);
        out[k + 1] = p.p0 + p.p1 * radius * ::sin(angle);
      }
      break;
    case InitKind::trunc_normal:
      // Inverse CDF: u spread over [Phi(a), Phi(b)] in erf's terms, mapped back. The clamp only
      // catches rounding at the bounds: the values are exactly truncated-normal, not clipped.
      for (int k = 0; k < 4; ++k) {
        const double x = p.p0 + p.p1 * kSqrt2 * erfinv_double(p.erf_lo + (p.erf_hi - p.erf_lo) * u[k]);
        out[k] = x < p.p2 ? p.p2 : (x > p.p3 ? p.p3 : x);
      }
      break;
  }
}

}  // namespace dlk
