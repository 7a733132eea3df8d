// Emulation of the tensor-core and async-copy PTX wrappers of cuda/ptx/ for the SIMT emulator.
// mma and ldmatrix are warp collectives (all 32 lanes exchange fragments, laid out by
// cuda/ptx/layout.cuh); cp.async copies are queued per thread and land at the wait that covers
// their group, so reading the destination too early sees the shared-memory poison.
#pragma once

#include <cstdint>
#include <cstring>

#include "cuda/ptx/layout.cuh"
#include "exec.h"

namespace dlk::sim::ptx {

using dlk::cuda::ptx::Coord;

inline float lo_f16(uint32_t r) { return f16_to_f32(static_cast<uint16_t>(r)); }
inline float hi_f16(uint32_t r) { return f16_to_f32(static_cast<uint16_t>(r >> 16)); }
inline float lo_bf16(uint32_t r) { return bf16_to_f32(static_cast<uint16_t>(r)); }
inline float hi_bf16(uint32_t r) { return bf16_to_f32(static_cast<uint16_t>(r >> 16)); }

// The tensor core reads only the 19 high bits of a .tf32 operand: the low 13 are ignored
// (truncation). Round first with to_tf32 (cvt.rna) to get round-to-nearest.
inline float tf32_operand(uint32_t r) { return bits_f32(r & 0xffffe000u); }

// cvt.rna.tf32.f32: round to 10 mantissa bits, ties away from zero; NaN stays NaN.
inline uint32_t cvt_rna_tf32(float x) {
  const uint32_t u = f32_bits(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fffffffu;
  return (u + 0x1000u) & 0xffffe000u;
}

struct MmaArg {
  uint32_t a[4], b[2];
  float c[4], d[4];
};

// Elem(reg array, element index) -> float value of A or B element.
template <class Layout, int Kind>
inline void mma_resolve(void* const* args, unsigned, void*) {
  float A[16][16], B[16][8], C[16][8];
  for (int lane = 0; lane < 32; ++lane) {
    const MmaArg& m = *static_cast<MmaArg*>(args[lane]);
    for (int i = 0; i < Layout::kA; ++i) {
      const Coord p = Layout::a(lane, i);
      A[p.row][p.col] = Kind == 2   ? tf32_operand(m.a[i])
                        : Kind == 0 ? (i % 2 ? hi_f16(m.a[i / 2]) : lo_f16(m.a[i / 2]))
                                    : (i % 2 ? hi_bf16(m.a[i / 2]) : lo_bf16(m.a[i / 2]));
    }
    for (int i = 0; i < Layout::kB; ++i) {
      const Coord p = Layout::b(lane, i);
      B[p.row][p.col] = Kind == 2   ? tf32_operand(m.b[i])
                        : Kind == 0 ? (i % 2 ? hi_f16(m.b[i / 2]) : lo_f16(m.b[i / 2]))
                                    : (i % 2 ? hi_bf16(m.b[i / 2]) : lo_bf16(m.b[i / 2]));
    }
    for (int i = 0; i < Layout::kC; ++i) {
      const Coord p = Layout::c(lane, i);
      C[p.row][p.col] = m.c[i];
    }
  }
  // Products of f16/bf16/tf32 values are exact in double; the sum is rounded to float once (the
  // hardware's internal order and precision are unspecified beyond "at least f32").
  float D[16][8];
  for (int r = 0; r < Layout::M; ++r)
    for (int n = 0; n < Layout::N; ++n) {
      double acc = C[r][n];
      for (int k = 0; k < Layout::K; ++k) acc += static_cast<double>(A[r][k]) * B[k][n];
      D[r][n] = static_cast<float>(acc);
    }
  for (int lane = 0; lane < 32; ++lane) {
    MmaArg& m = *static_cast<MmaArg*>(args[lane]);
    for (int i = 0; i < Layout::kC; ++i) {
      const Coord p = Layout::c(lane, i);
      m.d[i] = D[p.row][p.col];
    }
  }
}

template <class Layout, int Kind>
inline void mma(const char* kind, float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], const float (&c)[4],
                const std::source_location& loc) {
  MmaArg m;
  std::memcpy(m.a, a, sizeof m.a);
  std::memcpy(m.b, b, sizeof m.b);
  std::memcpy(m.c, c, sizeof m.c);
  warp_collective(0xffffffffu, kind, &m, mma_resolve<Layout, Kind>, nullptr, loc);
  std::memcpy(d, m.d, sizeof m.d);  // after the exchange: d may alias c
}

struct LdmArg {
  const unsigned char* addr;
  uint32_t r[4];
};

template <int N, bool Trans>
inline void ldmatrix_resolve(void* const* args, unsigned, void*) {
  for (int lane = 0; lane < 32; ++lane) {
    LdmArg& me = *static_cast<LdmArg*>(args[lane]);
    for (int j = 0; j < N; ++j) {
      uint32_t v = 0;
      for (int h = 0; h < 2; ++h) {
        const Coord p = dlk::cuda::ptx::LdMatrix8x8::elem(lane, h, Trans);
        uint16_t e;
        std::memcpy(&e, static_cast<LdmArg*>(args[8 * j + p.row])->addr + 2 * p.col, 2);
        v |= static_cast<uint32_t>(e) << (16 * h);
      }
      me.r[j] = v;
    }
  }
}

template <int N, bool Trans>
inline void ldmatrix(uint32_t (&r)[N], const void* row, const std::source_location& loc) {
  static_assert(N == 1 || N == 2 || N == 4, "ldmatrix loads 1, 2 or 4 matrices");
  Thread& t = cur();
  const int lane = t.linear % kWarpSize;
  if (lane < 8 * N && (reinterpret_cast<uintptr_t>(row) & 15u))
    fail_in_kernel(cudaErrorLaunchFailure, "ldmatrix at " + where(loc) + ": row address of lane " +
                                               std::to_string(lane) + " is not 16-byte aligned");
  LdmArg a{static_cast<const unsigned char*>(row), {}};
  warp_collective(0xffffffffu, Trans ? "ldmatrix.trans" : "ldmatrix", &a, ldmatrix_resolve<N, Trans>, nullptr, loc);
  std::memcpy(r, a.r, sizeof(uint32_t) * N);
}

inline void cp_async(void* dst, const void* src, uint32_t bytes, uint32_t src_bytes, const std::source_location& loc) {
  Thread& t = cur();
  if ((reinterpret_cast<uintptr_t>(dst) | reinterpret_cast<uintptr_t>(src)) % bytes != 0)
    fail_in_kernel(cudaErrorLaunchFailure, "cp.async at " + where(loc) + ": addresses not aligned to the " +
                                               std::to_string(bytes) + "-byte copy size (" + who(t) + ")");
  if (src_bytes > bytes)
    fail_in_kernel(cudaErrorLaunchFailure, "cp.async at " + where(loc) + ": src-size over the copy size");
  t.cp_ops.push_back(CpAsyncOp{dst, src, bytes, src_bytes, t.cp_open_group});
}
inline void cp_async_commit() { ++cur().cp_open_group; }
// Completes every committed group but the newest n, then lets other threads run.
inline void cp_async_wait(int n) {
  Thread& t = cur();
  complete_cp_async(t, t.cp_open_group - n);
  yield_point(false);
}

}  // namespace dlk::sim::ptx
