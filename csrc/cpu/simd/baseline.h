// Portable "vectors" for the baseline ISA unit: plain arrays the compiler may auto-vectorize for
// whatever the build targets (SSE2 on x86-64, NEON on Arm). The reference for what the
// intrinsics in avx2.h / avx512.h must compute, and the path for CPUs without AVX2.
#pragma once

#include <cmath>
#include <cstdint>

namespace dlk::cpu::baseline {

#define DLK_VI inline __attribute__((always_inline))

// Architectural vector registers (sizes register-blocked kernels such as the GEMM tile).
constexpr int kVectorRegisters = 16;
// GEMM micro-tile: kGemmMR rows x kGemmNV vectors of C in registers (see cpu/kernels/gemm.h).
constexpr int kGemmMR = 6, kGemmNV = 2;
// Linear layers with at most this many outputs (float, double) run as dot products of rows
// (cpu/kernels/gemm.h dot_rows) rather than on the micro-kernel; measured on Zen 5, one core,
// float float64 -> 2 keeps its sums in memory (GCC): 764 against 98 us at 256x1024 (benchmarks/README.md).
constexpr int kDotMaxOutputsFloat = 12, kDotMaxOutputsDouble = 1;

template <class T, int N>
struct Lanes {
  bool m[N];
};

template <class T>
struct Vec {
  static constexpr int W = 16 / sizeof(T);
  using Mask = Lanes<T, W>;
  T v[W];

  Vec() = default;
  DLK_VI explicit Vec(T s) {
    for (int i = 0; i < W; ++i) v[i] = s;
  }
  static DLK_VI Vec load(const T* p) { return load(p, W); }
  static DLK_VI Vec load(const T* p, int64_t n) {
    Vec r(T(0));
    for (int64_t i = 0; i < n; ++i) r.v[i] = p[i];
    return r;
  }

  // p[0..n) (int64 class indices) as lane values, 0 from lane n on: exact for 0 <= p[l] < 2^24;
  // any other index reads as a value outside [0, 2^24).
  static DLK_VI Vec load_index(const int64_t* p, int64_t n) {
    Vec r(T(0));
    for (int64_t i = 0; i < n && i < W; ++i) r.v[i] = static_cast<T>(p[i]);
    return r;
  }
  DLK_VI void store(T* p) const { store(p, W); }
  DLK_VI void store(T* p, int64_t n) const {
    for (int64_t i = 0; i < n; ++i) p[i] = v[i];
  }
  DLK_VI void stream(T* p) const { store(p); }
};

// stream() is an ordinary store here: nothing to order.
DLK_VI void stream_fence() {}

// clang-format off: one lanewise definition per line reads as a table
#define DLK_LANEWISE(expr)                 \
  Vec<T> r;                                \
  for (int i = 0; i < Vec<T>::W; ++i) {    \
    r.v[i] = (expr);                       \
  }                                        \
  return r
#define DLK_MASKWISE(expr)                 \
  typename Vec<T>::Mask r;                 \
  for (int i = 0; i < Vec<T>::W; ++i) {    \
    r.m[i] = (expr);                       \
  }                                        \
  return r

template <class T> DLK_VI Vec<T> operator+(Vec<T> a, Vec<T> b) { DLK_LANEWISE(a.v[i] + b.v[i]); }
template <class T> DLK_VI Vec<T> operator-(Vec<T> a, Vec<T> b) { DLK_LANEWISE(a.v[i] - b.v[i]); }
template <class T> DLK_VI Vec<T> operator*(Vec<T> a, Vec<T> b) { DLK_LANEWISE(a.v[i] * b.v[i]); }
template <class T> DLK_VI Vec<T> operator/(Vec<T> a, Vec<T> b) { DLK_LANEWISE(a.v[i] / b.v[i]); }
template <class T> DLK_VI Vec<T> operator-(Vec<T> a) { DLK_LANEWISE(-a.v[i]); }
template <class T> DLK_VI typename Vec<T>::Mask operator<=(Vec<T> a, Vec<T> b) { DLK_MASKWISE(a.v[i] <= b.v[i]); }
template <class T> DLK_VI typename Vec<T>::Mask operator<(Vec<T> a, Vec<T> b) { DLK_MASKWISE(a.v[i] < b.v[i]); }
template <class T> DLK_VI typename Vec<T>::Mask operator>=(Vec<T> a, Vec<T> b) { DLK_MASKWISE(a.v[i] >= b.v[i]); }
template <class T> DLK_VI typename Vec<T>::Mask operator>(Vec<T> a, Vec<T> b) { DLK_MASKWISE(a.v[i] > b.v[i]); }
template <class T> DLK_VI Vec<T> where(Lanes<T, Vec<T>::W> m, Vec<T> a, Vec<T> b) { DLK_LANEWISE(m.m[i] ? a.v[i] : b.v[i]); }
template <class T> DLK_VI Vec<T> abs(Vec<T> a) { DLK_LANEWISE(std::fabs(a.v[i])); }
template <class T> DLK_VI Vec<T> exp(Vec<T> a) { DLK_LANEWISE(std::exp(a.v[i])); }
template <class T> DLK_VI Vec<T> fmadd(Vec<T> a, Vec<T> b, Vec<T> c) { DLK_LANEWISE(a.v[i] * b.v[i] + c.v[i]); }
template <class T> DLK_VI Vec<T> max(Vec<T> a, Vec<T> b) { DLK_LANEWISE(a.v[i] < b.v[i] ? b.v[i] : a.v[i]); }
template <class T> DLK_VI Vec<T> min(Vec<T> a, Vec<T> b) { DLK_LANEWISE(b.v[i] < a.v[i] ? b.v[i] : a.v[i]); }
// clang-format on
// x = m 2^e with m in [1, 2), for positive normal x.
template <class T>
DLK_VI Vec<T> split_exponent(Vec<T> x, Vec<T>& e) {
  Vec<T> m;
  for (int i = 0; i < Vec<T>::W; ++i) {
    int k = 0;
    m.v[i] = T(2) * std::frexp(x.v[i], &k);
    e.v[i] = T(k - 1);
  }
  return m;
}
template <class T>
DLK_VI T reduce_add(Vec<T> a) {
  T s = 0;
  for (int i = 0; i < Vec<T>::W; ++i) s += a.v[i];
  return s;
}

// Stride-2 access: even(p) = {p[0], p[2], ..., p[2W-2]} (reads p[0 .. 2W)); put_interleaved
// writes p[2i] = a[i], p[2i + 1] = b[i].
template <class T>
DLK_VI Vec<T> even(const T* p) {
  Vec<T> r;
  for (int i = 0; i < Vec<T>::W; ++i) r.v[i] = p[2 * i];
  return r;
}
template <class T>
DLK_VI void put_interleaved(T* p, Vec<T> a, Vec<T> b) {
  for (int i = 0; i < Vec<T>::W; ++i) {
    p[2 * i] = a.v[i];
    p[2 * i + 1] = b.v[i];
  }
}

// In-place transpose of a W x W block held as W row vectors (v[i] lane j <-> v[j] lane i).
template <class T>
DLK_VI void transpose(Vec<T> (&v)[Vec<T>::W]) {
  for (int i = 0; i < Vec<T>::W; ++i) {
    for (int j = i + 1; j < Vec<T>::W; ++j) {
      const T x = v[i].v[j];
      v[i].v[j] = v[j].v[i];
      v[j].v[i] = x;
    }
  }
}

#undef DLK_LANEWISE
#undef DLK_MASKWISE
#undef DLK_VI

using VF = Vec<float>;
using VD = Vec<double>;

}  // namespace dlk::cpu::baseline
