// AVX-512 vectors for the CPU kernels: Vec<float> (16 lanes) and Vec<double> (8 lanes).
//
// Include only from an ISA unit (cpu/isa/avx512.cpp) after its target pragma, inside nothing:
// everything here lives in dlk::cpu::avx512 so no inline function can be merged by the linker
// with a copy compiled for another ISA.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace dlk::cpu::avx512 {

#define DLK_VI inline __attribute__((always_inline))

// Architectural vector registers (sizes register-blocked kernels such as the GEMM tile).
constexpr int kVectorRegisters = 32;
// GEMM micro-tile: kGemmMR rows x kGemmNV vectors of C in registers (see cpu/kernels/gemm.h).
// 8 x 48 floats: 24 accumulators + 3 B vectors + 1 broadcast of 32 registers, and 8 rows divide
// the power-of-two channel counts of real networks, so no partial panel wastes FMAs.
constexpr int kGemmMR = 8, kGemmNV = 3;
// Linear layers with at most this many outputs (float, double) run as dot products of rows
// (cpu/kernels/gemm.h dot_rows) rather than on the micro-kernel; measured on Zen 5, one core,
// float 256x1024 -> 12: 40 against 53 us; float64 -> 4: 34 against 55, -> 6: 70 against 55 (benchmarks/README.md).
constexpr int kDotMaxOutputsFloat = 12, kDotMaxOutputsDouble = 4;

template <class T>
struct Vec;

template <>
struct Vec<float> {
  using Mask = __mmask16;
  static constexpr int W = 16;
  __m512 v;

  Vec() = default;
  DLK_VI Vec(__m512 x) : v(x) {}
  DLK_VI explicit Vec(float s) : v(_mm512_set1_ps(s)) {}

  static DLK_VI Mask tail(int64_t n) { return static_cast<Mask>((1u << n) - 1u); }
  static DLK_VI Vec load(const float* p) { return _mm512_loadu_ps(p); }
  static DLK_VI Vec load(const float* p, int64_t n) { return _mm512_maskz_loadu_ps(tail(n), p); }
  // p[0..n) (int64 class indices) as lane values, 0 from lane n on: exact for 0 <= p[l] < 2^24;
  // any other index reads as a value outside [0, 2^24).
  static DLK_VI Vec load_index(const int64_t* p, int64_t n) {
    const __mmask8 lo = static_cast<__mmask8>(n >= 8 ? 0xFF : (1u << n) - 1u);
    const __mmask8 hi = static_cast<__mmask8>(n >= 16 ? 0xFF : n > 8 ? (1u << (n - 8)) - 1u : 0u);
    const __m256 a = _mm512_cvtepi64_ps(_mm512_maskz_loadu_epi64(lo, p));
    const __m256 b = _mm512_cvtepi64_ps(_mm512_maskz_loadu_epi64(hi, p + 8));
    return _mm512_insertf32x8(_mm512_castps256_ps512(a), b, 1);
  }
  DLK_VI void store(float* p) const { _mm512_storeu_ps(p, v); }
  DLK_VI void store(float* p, int64_t n) const { _mm512_mask_storeu_ps(p, tail(n), v); }
  // Non-temporal store for outputs far larger than the caches; p must be 64-byte aligned.
  DLK_VI void stream(float* p) const { _mm512_stream_ps(p, v); }
};

template <>
struct Vec<double> {
  using Mask = __mmask8;
  static constexpr int W = 8;
  __m512d v;

  Vec() = default;
  DLK_VI Vec(__m512d x) : v(x) {}
  DLK_VI explicit Vec(double s) : v(_mm512_set1_pd(s)) {}

  static DLK_VI Mask tail(int64_t n) { return static_cast<Mask>((1u << n) - 1u); }
  static DLK_VI Vec load(const double* p) { return _mm512_loadu_pd(p); }
  static DLK_VI Vec load(const double* p, int64_t n) { return _mm512_maskz_loadu_pd(tail(n), p); }
  // p[0..n) (int64 class indices) as lane values, 0 from lane n on: exact for 0 <= p[l] < 2^24;
  // any other index reads as a value outside [0, 2^24).
  static DLK_VI Vec load_index(const int64_t* p, int64_t n) {
    return _mm512_cvtepi64_pd(_mm512_maskz_loadu_epi64(tail(n), p));
  }
  DLK_VI void store(double* p) const { _mm512_storeu_pd(p, v); }
  DLK_VI void store(double* p, int64_t n) const { _mm512_mask_storeu_pd(p, tail(n), v); }
  DLK_VI void stream(double* p) const { _mm512_stream_pd(p, v); }
};

// Orders this thread's streaming stores before whatever it does next (e.g. leaving a parallel
// region): they are weakly ordered, unlike ordinary stores.
DLK_VI void stream_fence() { _mm_sfence(); }

using VF = Vec<float>;
using VD = Vec<double>;

// ---- float -----------------------------------------------------------------------------------
DLK_VI VF operator+(VF a, VF b) { return _mm512_add_ps(a.v, b.v); }
DLK_VI VF operator-(VF a, VF b) { return _mm512_sub_ps(a.v, b.v); }
DLK_VI VF operator*(VF a, VF b) { return _mm512_mul_ps(a.v, b.v); }
DLK_VI VF operator/(VF a, VF b) { return _mm512_div_ps(a.v, b.v); }
DLK_VI VF operator-(VF a) {
  return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a.v), _mm512_set1_epi32(INT32_MIN)));
}
// Ordered, non-signalling compares: a NaN lane compares false, as in scalar C++.
DLK_VI __mmask16 operator<=(VF a, VF b) { return _mm512_cmp_ps_mask(a.v, b.v, _CMP_LE_OQ); }
DLK_VI __mmask16 operator<(VF a, VF b) { return _mm512_cmp_ps_mask(a.v, b.v, _CMP_LT_OQ); }
DLK_VI __mmask16 operator>=(VF a, VF b) { return _mm512_cmp_ps_mask(a.v, b.v, _CMP_GE_OQ); }
DLK_VI __mmask16 operator>(VF a, VF b) { return _mm512_cmp_ps_mask(a.v, b.v, _CMP_GT_OQ); }
DLK_VI VF where(__mmask16 m, VF a, VF b) { return _mm512_mask_blend_ps(m, b.v, a.v); }
DLK_VI VF abs(VF a) {
  return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(a.v), _mm512_set1_epi32(INT32_MAX)));
}
DLK_VI VF fmadd(VF a, VF b, VF c) { return _mm512_fmadd_ps(a.v, b.v, c.v); }
DLK_VI VF max(VF a, VF b) { return _mm512_max_ps(a.v, b.v); }
DLK_VI VF min(VF a, VF b) { return _mm512_min_ps(a.v, b.v); }
DLK_VI float reduce_add(VF a) { return _mm512_reduce_add_ps(a.v); }

// 2^n for integer-valued n in [-126, 127], built from the exponent bits.
DLK_VI VF pow2i(__m512i n) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n, _mm512_set1_epi32(127)), 23));
}

// e^x to about 1 ulp. x = n ln2 + r, |r| <= ln2/2; e^r by a degree-6 polynomial (Cephes expf
// coefficients); 2^n applied by vscalefps, exact down to the subnormal range.
// The clamp keeps n in range and passes NaN through (max/min return their second operand for NaN).
DLK_VI VF exp(VF x) {
  x = _mm512_min_ps(_mm512_set1_ps(89.0f), _mm512_max_ps(_mm512_set1_ps(-104.0f), x.v));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x.v, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x.v);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  // p * 2^n with one rounding (vscalefps): the same bits as p * 2^(n/2) * 2^(n - n/2), whose
  // first product is exact, in one instruction instead of eight.
  return _mm512_scalef_ps(p, n);
}

// x = m 2^e with m in [1, 2), for positive normal x (vgetmantps / vgetexpps).
DLK_VI VF split_exponent(VF x, VF& e) {
  e = _mm512_getexp_ps(x.v);
  return _mm512_getmant_ps(x.v, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_zero);
}

// ---- double ----------------------------------------------------------------------------------
DLK_VI VD operator+(VD a, VD b) { return _mm512_add_pd(a.v, b.v); }
DLK_VI VD operator-(VD a, VD b) { return _mm512_sub_pd(a.v, b.v); }
DLK_VI VD operator*(VD a, VD b) { return _mm512_mul_pd(a.v, b.v); }
DLK_VI VD operator/(VD a, VD b) { return _mm512_div_pd(a.v, b.v); }
DLK_VI VD operator-(VD a) {
  return _mm512_castsi512_pd(_mm512_xor_si512(_mm512_castpd_si512(a.v), _mm512_set1_epi64(INT64_MIN)));
}
DLK_VI __mmask8 operator<=(VD a, VD b) { return _mm512_cmp_pd_mask(a.v, b.v, _CMP_LE_OQ); }
DLK_VI __mmask8 operator<(VD a, VD b) { return _mm512_cmp_pd_mask(a.v, b.v, _CMP_LT_OQ); }
DLK_VI __mmask8 operator>=(VD a, VD b) { return _mm512_cmp_pd_mask(a.v, b.v, _CMP_GE_OQ); }
DLK_VI __mmask8 operator>(VD a, VD b) { return _mm512_cmp_pd_mask(a.v, b.v, _CMP_GT_OQ); }
DLK_VI VD where(__mmask8 m, VD a, VD b) { return _mm512_mask_blend_pd(m, b.v, a.v); }
DLK_VI VD abs(VD a) {
  return _mm512_castsi512_pd(_mm512_and_si512(_mm512_castpd_si512(a.v), _mm512_set1_epi64(INT64_MAX)));
}
DLK_VI VD fmadd(VD a, VD b, VD c) { return _mm512_fmadd_pd(a.v, b.v, c.v); }
DLK_VI VD max(VD a, VD b) { return _mm512_max_pd(a.v, b.v); }
DLK_VI VD min(VD a, VD b) { return _mm512_min_pd(a.v, b.v); }
DLK_VI double reduce_add(VD a) { return _mm512_reduce_add_pd(a.v); }

// e^x to about 1 ulp: x = n ln2 + r, e^r by its Taylor series to r^13 (truncation < 1e-17 for
// |r| <= ln2/2), 2^n applied by vscalefpd.
DLK_VI VD exp(VD x) {
  x = _mm512_min_pd(_mm512_set1_pd(710.0), _mm512_max_pd(_mm512_set1_pd(-746.0), x.v));
  const __m512d n = _mm512_roundscale_pd(_mm512_mul_pd(x.v, _mm512_set1_pd(1.4426950408889634)),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512d r = _mm512_fnmadd_pd(n, _mm512_set1_pd(6.93147180369123816490e-1), x.v);
  r = _mm512_fnmadd_pd(n, _mm512_set1_pd(1.90821492927058770002e-10), r);
  // clang-format off
  static constexpr double kInvFact[] = {1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0,
                                        1.0 / 362880.0,     1.0 / 40320.0,     1.0 / 5040.0,      1.0 / 720.0,
                                        1.0 / 120.0,        1.0 / 24.0,        1.0 / 6.0,         0.5,
                                        1.0,                1.0};
  // clang-format on
  __m512d p = _mm512_set1_pd(kInvFact[0]);
  for (int i = 1; i < 14; ++i) p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(kInvFact[i]));
  return _mm512_scalef_pd(p, n);  // p * 2^n, one rounding (see the float version)
}

// x = m 2^e with m in [1, 2), for positive normal x (vgetmantpd / vgetexppd).
DLK_VI VD split_exponent(VD x, VD& e) {
  e = _mm512_getexp_pd(x.v);
  return _mm512_getmant_pd(x.v, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_zero);
}

// Stride-2 access: even(p) = {p[0], p[2], ..., p[2W-2]} (reads p[0 .. 2W)); put_interleaved
// writes p[2i] = a[i], p[2i + 1] = b[i].
DLK_VI VF even(const float* p) {
  const __m512i idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  return _mm512_permutex2var_ps(_mm512_loadu_ps(p), idx, _mm512_loadu_ps(p + 16));
}
DLK_VI VD even(const double* p) {
  const __m512i idx = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
  return _mm512_permutex2var_pd(_mm512_loadu_pd(p), idx, _mm512_loadu_pd(p + 8));
}
DLK_VI void put_interleaved(float* p, VF a, VF b) {
  const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  _mm512_storeu_ps(p, _mm512_permutex2var_ps(a.v, lo, b.v));
  _mm512_storeu_ps(p + 16, _mm512_permutex2var_ps(a.v, hi, b.v));
}
DLK_VI void put_interleaved(double* p, VD a, VD b) {
  const __m512i lo = _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11), hi = _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15);
  _mm512_storeu_pd(p, _mm512_permutex2var_pd(a.v, lo, b.v));
  _mm512_storeu_pd(p + 8, _mm512_permutex2var_pd(a.v, hi, b.v));
}

// In-place transpose of a W x W block held as W row vectors (v[i] lane j <-> v[j] lane i).
// Floats: interleave 32-bit pairs, then 64-bit pairs within 128-bit lanes, then transpose the
// 4 x 4 grid of 128-bit lanes in two rounds of shuffles; 64 shuffles for 256 values.
DLK_VI void transpose(VF (&v)[16]) {
  __m512 t[16], u[16];
  for (int k = 0; k < 8; ++k) {
    t[2 * k] = _mm512_unpacklo_ps(v[2 * k].v, v[2 * k + 1].v);
    t[2 * k + 1] = _mm512_unpackhi_ps(v[2 * k].v, v[2 * k + 1].v);
  }
  // u[4k + m], 128-bit lane L: column 4L + m of rows 4k .. 4k + 3.
  for (int k = 0; k < 4; ++k) {
    const __m512d a = _mm512_castps_pd(t[4 * k]), b = _mm512_castps_pd(t[4 * k + 1]);
    const __m512d c = _mm512_castps_pd(t[4 * k + 2]), d = _mm512_castps_pd(t[4 * k + 3]);
    u[4 * k] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    u[4 * k + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    u[4 * k + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    u[4 * k + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  for (int m = 0; m < 4; ++m) {
    const __m512 v0 = _mm512_shuffle_f32x4(u[m], u[4 + m], 0x44), v1 = _mm512_shuffle_f32x4(u[m], u[4 + m], 0xEE);
    const __m512 v2 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0x44),
                 v3 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0xEE);
    v[m] = _mm512_shuffle_f32x4(v0, v2, 0x88);
    v[4 + m] = _mm512_shuffle_f32x4(v0, v2, 0xDD);
    v[8 + m] = _mm512_shuffle_f32x4(v1, v3, 0x88);
    v[12 + m] = _mm512_shuffle_f32x4(v1, v3, 0xDD);
  }
}

DLK_VI void transpose(VD (&v)[8]) {
  __m512d t[8];
  // t[2k + m], 128-bit lane L: column 2L + m of rows 2k, 2k + 1.
  for (int k = 0; k < 4; ++k) {
    t[2 * k] = _mm512_unpacklo_pd(v[2 * k].v, v[2 * k + 1].v);
    t[2 * k + 1] = _mm512_unpackhi_pd(v[2 * k].v, v[2 * k + 1].v);
  }
  for (int m = 0; m < 2; ++m) {
    const __m512d v0 = _mm512_shuffle_f64x2(t[m], t[2 + m], 0x44), v1 = _mm512_shuffle_f64x2(t[m], t[2 + m], 0xEE);
    const __m512d v2 = _mm512_shuffle_f64x2(t[4 + m], t[6 + m], 0x44),
                  v3 = _mm512_shuffle_f64x2(t[4 + m], t[6 + m], 0xEE);
    v[m] = _mm512_shuffle_f64x2(v0, v2, 0x88);
    v[2 + m] = _mm512_shuffle_f64x2(v0, v2, 0xDD);
    v[4 + m] = _mm512_shuffle_f64x2(v1, v3, 0x88);
    v[6 + m] = _mm512_shuffle_f64x2(v1, v3, 0xDD);
  }
}

#undef DLK_VI

}  // namespace dlk::cpu::avx512
