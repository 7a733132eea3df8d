// AVX2 + FMA vectors for the CPU kernels: Vec<float> (8 lanes) and Vec<double> (4 lanes).
// The portable fast path: every x86-64 CPU since 2013-2015 has it. Same vocabulary as avx512.h;
// include only from cpu/isa/avx2.cpp after its target pragma.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace dlk::cpu::avx2 {

#define DLK_VI inline __attribute__((always_inline))

// Architectural vector registers (sizes register-blocked kernels such as the GEMM tile).
constexpr int kVectorRegisters = 16;
// GEMM micro-tile: kGemmMR rows x kGemmNV vectors of C in registers (see cpu/kernels/gemm.h).
constexpr int kGemmMR = 6, kGemmNV = 2;
// Linear layers with at most this many outputs (float, double) run as dot products of rows
// (cpu/kernels/gemm.h dot_rows) rather than on the micro-kernel; measured on Zen 5, one core,
// float 256x1024 -> 10: 70 against 81 us; float64 -> 2: 68 against 60 (benchmarks/README.md).
constexpr int kDotMaxOutputsFloat = 10, kDotMaxOutputsDouble = 1;

// A lane mask, kept apart from the value vectors so overloads cannot mix them up.
struct MaskF {
  __m256 m;
};
struct MaskD {
  __m256d m;
};

// Four int64 indices (lanes from n on 0) as int32, -1 for those outside [0, 2^31): AVX2 has no
// int64 conversion.
DLK_VI __m128i index_quad(const int64_t* p, int64_t n) {
  const __m256i live = _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
  const __m256i v = _mm256_maskload_epi64(reinterpret_cast<const long long*>(p), live);
  const __m256i out = _mm256_or_si256(_mm256_cmpgt_epi64(_mm256_setzero_si256(), v),
                                      _mm256_cmpgt_epi64(v, _mm256_set1_epi64x(INT32_MAX)));
  const __m256i clean = _mm256_blendv_epi8(v, _mm256_set1_epi64x(-1), out);
  return _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(clean, _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6)));
}

template <class T>
struct Vec;

template <>
struct Vec<float> {
  using Mask = MaskF;
  static constexpr int W = 8;
  __m256 v;

  Vec() = default;
  DLK_VI Vec(__m256 x) : v(x) {}
  DLK_VI explicit Vec(float s) : v(_mm256_set1_ps(s)) {}

  static DLK_VI __m256i tail(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static DLK_VI Vec load(const float* p) { return _mm256_loadu_ps(p); }
  static DLK_VI Vec load(const float* p, int64_t n) { return _mm256_maskload_ps(p, tail(n)); }
  // p[0..n) (int64 class indices) as lane values, 0 from lane n on: exact for 0 <= p[l] < 2^24;
  // any other index reads as a value outside [0, 2^24).
  static DLK_VI Vec load_index(const int64_t* p, int64_t n) {
    const __m128i lo = index_quad(p, n), hi = index_quad(p + 4, n - 4);
    return _mm256_cvtepi32_ps(_mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1));
  }
  DLK_VI void store(float* p) const { _mm256_storeu_ps(p, v); }
  DLK_VI void store(float* p, int64_t n) const { _mm256_maskstore_ps(p, tail(n), v); }
  DLK_VI void stream(float* p) const { _mm256_stream_ps(p, v); }
};

template <>
struct Vec<double> {
  using Mask = MaskD;
  static constexpr int W = 4;
  __m256d v;

  Vec() = default;
  DLK_VI Vec(__m256d x) : v(x) {}
  DLK_VI explicit Vec(double s) : v(_mm256_set1_pd(s)) {}

  static DLK_VI __m256i tail(int64_t n) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
  }
  static DLK_VI Vec load(const double* p) { return _mm256_loadu_pd(p); }
  static DLK_VI Vec load(const double* p, int64_t n) { return _mm256_maskload_pd(p, tail(n)); }
  // p[0..n) (int64 class indices) as lane values, 0 from lane n on: exact for 0 <= p[l] < 2^24;
  // any other index reads as a value outside [0, 2^24).
  static DLK_VI Vec load_index(const int64_t* p, int64_t n) { return _mm256_cvtepi32_pd(index_quad(p, n)); }
  DLK_VI void store(double* p) const { _mm256_storeu_pd(p, v); }
  DLK_VI void store(double* p, int64_t n) const { _mm256_maskstore_pd(p, tail(n), v); }
  DLK_VI void stream(double* p) const { _mm256_stream_pd(p, v); }
};

// Orders this thread's streaming stores before whatever it does next (e.g. leaving a parallel
// region): they are weakly ordered, unlike ordinary stores.
DLK_VI void stream_fence() { _mm_sfence(); }

using VF = Vec<float>;
using VD = Vec<double>;

// ---- float -----------------------------------------------------------------------------------
DLK_VI VF operator+(VF a, VF b) { return _mm256_add_ps(a.v, b.v); }
DLK_VI VF operator-(VF a, VF b) { return _mm256_sub_ps(a.v, b.v); }
DLK_VI VF operator*(VF a, VF b) { return _mm256_mul_ps(a.v, b.v); }
DLK_VI VF operator/(VF a, VF b) { return _mm256_div_ps(a.v, b.v); }
DLK_VI VF operator-(VF a) { return _mm256_xor_ps(a.v, _mm256_set1_ps(-0.0f)); }
// Ordered, non-signalling compares: a NaN lane compares false, as in scalar C++.
DLK_VI MaskF operator<=(VF a, VF b) { return {_mm256_cmp_ps(a.v, b.v, _CMP_LE_OQ)}; }
DLK_VI MaskF operator<(VF a, VF b) { return {_mm256_cmp_ps(a.v, b.v, _CMP_LT_OQ)}; }
DLK_VI MaskF operator>=(VF a, VF b) { return {_mm256_cmp_ps(a.v, b.v, _CMP_GE_OQ)}; }
DLK_VI MaskF operator>(VF a, VF b) { return {_mm256_cmp_ps(a.v, b.v, _CMP_GT_OQ)}; }
DLK_VI VF where(MaskF m, VF a, VF b) { return _mm256_blendv_ps(b.v, a.v, m.m); }
DLK_VI VF abs(VF a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a.v); }
DLK_VI VF fmadd(VF a, VF b, VF c) { return _mm256_fmadd_ps(a.v, b.v, c.v); }
DLK_VI VF max(VF a, VF b) { return _mm256_max_ps(a.v, b.v); }
DLK_VI VF min(VF a, VF b) { return _mm256_min_ps(a.v, b.v); }
DLK_VI float reduce_add(VF a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

DLK_VI __m256 pow2i(__m256i n) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(127)), 23));
}

// e^x to about 1 ulp; the same reduction and polynomial as the AVX-512 version (see there).
DLK_VI VF exp(VF x) {
  x = _mm256_min_ps(_mm256_set1_ps(89.0f), _mm256_max_ps(_mm256_set1_ps(-104.0f), x.v));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x.v, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x.v);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256i n1 = _mm256_srai_epi32(ni, 1);
  const __m256i n2 = _mm256_sub_epi32(ni, n1);
  return _mm256_mul_ps(_mm256_mul_ps(p, pow2i(n1)), pow2i(n2));
}

// x = m 2^e with m in [1, 2), for positive normal x: the exponent field, and the mantissa under
// the exponent of 1.
DLK_VI VF split_exponent(VF x, VF& e) {
  const __m256i i = _mm256_castps_si256(x.v);
  e = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(i, 23), _mm256_set1_epi32(127)));
  const __m256i m = _mm256_or_si256(_mm256_and_si256(i, _mm256_set1_epi32(0x007fffff)), _mm256_set1_epi32(0x3f800000));
  return _mm256_castsi256_ps(m);
}

// ---- double ----------------------------------------------------------------------------------
DLK_VI VD operator+(VD a, VD b) { return _mm256_add_pd(a.v, b.v); }
DLK_VI VD operator-(VD a, VD b) { return _mm256_sub_pd(a.v, b.v); }
DLK_VI VD operator*(VD a, VD b) { return _mm256_mul_pd(a.v, b.v); }
DLK_VI VD operator/(VD a, VD b) { return _mm256_div_pd(a.v, b.v); }
DLK_VI VD operator-(VD a) { return _mm256_xor_pd(a.v, _mm256_set1_pd(-0.0)); }
DLK_VI MaskD operator<=(VD a, VD b) { return {_mm256_cmp_pd(a.v, b.v, _CMP_LE_OQ)}; }
DLK_VI MaskD operator<(VD a, VD b) { return {_mm256_cmp_pd(a.v, b.v, _CMP_LT_OQ)}; }
DLK_VI MaskD operator>=(VD a, VD b) { return {_mm256_cmp_pd(a.v, b.v, _CMP_GE_OQ)}; }
DLK_VI MaskD operator>(VD a, VD b) { return {_mm256_cmp_pd(a.v, b.v, _CMP_GT_OQ)}; }
DLK_VI VD where(MaskD m, VD a, VD b) { return _mm256_blendv_pd(b.v, a.v, m.m); }
DLK_VI VD abs(VD a) { return _mm256_andnot_pd(_mm256_set1_pd(-0.0), a.v); }
DLK_VI VD fmadd(VD a, VD b, VD c) { return _mm256_fmadd_pd(a.v, b.v, c.v); }
DLK_VI VD max(VD a, VD b) { return _mm256_max_pd(a.v, b.v); }
DLK_VI VD min(VD a, VD b) { return _mm256_min_pd(a.v, b.v); }
DLK_VI double reduce_add(VD a) {
  __m128d s = _mm_add_pd(_mm256_castpd256_pd128(a.v), _mm256_extractf128_pd(a.v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

// e^x to about 1 ulp; the same reduction and series as the AVX-512 version (see there).
DLK_VI VD exp(VD x) {
  x = _mm256_min_pd(_mm256_set1_pd(710.0), _mm256_max_pd(_mm256_set1_pd(-746.0), x.v));
  const __m256d n = _mm256_round_pd(_mm256_mul_pd(x.v, _mm256_set1_pd(1.4426950408889634)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256d r = _mm256_fnmadd_pd(n, _mm256_set1_pd(6.93147180369123816490e-1), x.v);
  r = _mm256_fnmadd_pd(n, _mm256_set1_pd(1.90821492927058770002e-10), r);
  // clang-format off
  static constexpr double kInvFact[] = {1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0,
                                        1.0 / 362880.0,     1.0 / 40320.0,     1.0 / 5040.0,      1.0 / 720.0,
                                        1.0 / 120.0,        1.0 / 24.0,        1.0 / 6.0,         0.5,
                                        1.0,                1.0};
  // clang-format on
  __m256d p = _mm256_set1_pd(kInvFact[0]);
  for (int i = 1; i < 14; ++i) p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(kInvFact[i]));
  const __m256d magic = _mm256_set1_pd(6755399441055744.0);  // 1.5 * 2^52
  const __m256i ni = _mm256_sub_epi64(_mm256_castpd_si256(_mm256_add_pd(n, magic)), _mm256_castpd_si256(magic));
  // n is in [-1077, 1024]: an arithmetic halving via (n + 2048) >> 1 - 1024, since AVX2 has no
  // 64-bit arithmetic shift.
  const __m256i n1 =
      _mm256_sub_epi64(_mm256_srli_epi64(_mm256_add_epi64(ni, _mm256_set1_epi64x(2048)), 1), _mm256_set1_epi64x(1024));
  const __m256i n2 = _mm256_sub_epi64(ni, n1);
  const __m256i bias = _mm256_set1_epi64x(1023);
  const __m256d s1 = _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_add_epi64(n1, bias), 52));
  const __m256d s2 = _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_add_epi64(n2, bias), 52));
  return _mm256_mul_pd(_mm256_mul_pd(p, s1), s2);
}

// x = m 2^e with m in [1, 2), for positive normal x. The exponent field (0..2047) becomes a
// double through the 2^52 bias, since AVX2 has no int64 -> double conversion.
DLK_VI VD split_exponent(VD x, VD& e) {
  const __m256i i = _mm256_castpd_si256(x.v);
  const __m256d two52 = _mm256_set1_pd(4503599627370496.0);
  const __m256i field = _mm256_or_si256(_mm256_srli_epi64(i, 52), _mm256_castpd_si256(two52));
  e = _mm256_sub_pd(_mm256_sub_pd(_mm256_castsi256_pd(field), two52), _mm256_set1_pd(1023.0));
  const __m256i m = _mm256_or_si256(_mm256_and_si256(i, _mm256_set1_epi64x(0x000fffffffffffffLL)),
                                    _mm256_set1_epi64x(0x3ff0000000000000LL));
  return _mm256_castsi256_pd(m);
}

// Stride-2 access: even(p) = {p[0], p[2], ..., p[2W-2]} (reads p[0 .. 2W)); put_interleaved
// writes p[2i] = a[i], p[2i + 1] = b[i].
DLK_VI VF even(const float* p) {
  const __m256 s = _mm256_shuffle_ps(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8), 0x88);  // a0 a2 b0 b2 | a4 a6 b4 b6
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(s), 0xD8));
}
DLK_VI VD even(const double* p) {
  return _mm256_permute4x64_pd(_mm256_unpacklo_pd(_mm256_loadu_pd(p), _mm256_loadu_pd(p + 4)), 0xD8);
}
DLK_VI void put_interleaved(float* p, VF a, VF b) {
  const __m256 lo = _mm256_unpacklo_ps(a.v, b.v), hi = _mm256_unpackhi_ps(a.v, b.v);  // a0 b0 a1 b1 | a4 b4 a5 b5
  _mm256_storeu_ps(p, _mm256_permute2f128_ps(lo, hi, 0x20));
  _mm256_storeu_ps(p + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
}
DLK_VI void put_interleaved(double* p, VD a, VD b) {
  const __m256d lo = _mm256_unpacklo_pd(a.v, b.v), hi = _mm256_unpackhi_pd(a.v, b.v);  // a0 b0 | a2 b2
  _mm256_storeu_pd(p, _mm256_permute2f128_pd(lo, hi, 0x20));
  _mm256_storeu_pd(p + 4, _mm256_permute2f128_pd(lo, hi, 0x31));
}

// In-place transpose of a W x W block held as W row vectors (v[i] lane j <-> v[j] lane i).
DLK_VI void transpose(VF (&v)[8]) {
  __m256 t[8], u[8];
  for (int k = 0; k < 4; ++k) {
    t[2 * k] = _mm256_unpacklo_ps(v[2 * k].v, v[2 * k + 1].v);
    t[2 * k + 1] = _mm256_unpackhi_ps(v[2 * k].v, v[2 * k + 1].v);
  }
  // u[4k + m], 128-bit lane L: column 4L + m of rows 4k .. 4k + 3.
  for (int k = 0; k < 2; ++k) {
    u[4 * k] = _mm256_shuffle_ps(t[4 * k], t[4 * k + 2], 0x44);
    u[4 * k + 1] = _mm256_shuffle_ps(t[4 * k], t[4 * k + 2], 0xEE);
    u[4 * k + 2] = _mm256_shuffle_ps(t[4 * k + 1], t[4 * k + 3], 0x44);
    u[4 * k + 3] = _mm256_shuffle_ps(t[4 * k + 1], t[4 * k + 3], 0xEE);
  }
  for (int m = 0; m < 4; ++m) {
    v[m] = _mm256_permute2f128_ps(u[m], u[4 + m], 0x20);
    v[4 + m] = _mm256_permute2f128_ps(u[m], u[4 + m], 0x31);
  }
}

DLK_VI void transpose(VD (&v)[4]) {
  const __m256d t0 = _mm256_unpacklo_pd(v[0].v, v[1].v), t1 = _mm256_unpackhi_pd(v[0].v, v[1].v);
  const __m256d t2 = _mm256_unpacklo_pd(v[2].v, v[3].v), t3 = _mm256_unpackhi_pd(v[2].v, v[3].v);
  v[0] = _mm256_permute2f128_pd(t0, t2, 0x20);
  v[1] = _mm256_permute2f128_pd(t1, t3, 0x20);
  v[2] = _mm256_permute2f128_pd(t0, t2, 0x31);
  v[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
}

#undef DLK_VI

}  // namespace dlk::cpu::avx2
