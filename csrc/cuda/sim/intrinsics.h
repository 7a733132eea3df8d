// CUDA's device-side vocabulary for the SIMT emulator: qualifiers, the built-in index variables,
// barriers, warp shuffles and votes, atomics, fences, __ldg, shared memory.
#pragma once

#include "exec.h"

// ---- qualifiers ------------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __constant__
#define __align__(n) __attribute__((aligned(n)))
// g++ knows __restrict__ natively.

// Static shared memory: every `__shared__` variable becomes a function-scope static in one
// section per module; each block starts by filling that whole section with poison. Blocks run
// one at a time under the launch mutex, so each block sees its own fresh, poisoned copy.
// Consequence: `extern __shared__` (dynamic shared memory) cannot be spelled here ("extern
// static"); kernels get it from dlk::cuda::dynamic_shared<T>() (cuda/launch.cuh).
#define __shared__ static __attribute__((section("dlk_sim_shared"), aligned(16)))

extern "C" {
// Bounds of the section, from the linker; weak so a module without any __shared__ links.
extern unsigned char __start_dlk_sim_shared[] __attribute__((weak, visibility("hidden")));
extern unsigned char __stop_dlk_sim_shared[] __attribute__((weak, visibility("hidden")));
}

// ---- built-in variables ----------------------------------------------------------------------
#define threadIdx (static_cast<const uint3&>(::dlk::sim::t_thread_idx))
#define blockIdx (static_cast<const uint3&>(::dlk::sim::t_block_idx))
#define blockDim (static_cast<const dim3&>(::dlk::sim::t_block_dim))
#define gridDim (static_cast<const dim3&>(::dlk::sim::t_grid_dim))
inline constexpr int warpSize = 32;

namespace dlk::sim {

inline unsigned lane_id() { return static_cast<unsigned>(cur().linear % kWarpSize); }

// Dynamic shared memory of the running block.
inline void* dynamic_smem() {
  cur();
  return t_launch->dyn_smem;
}

// ---- warp collectives ------------------------------------------------------------------------

template <class T>
struct ShflArg {
  unsigned char in[sizeof(T)], out[sizeof(T)];
  int b, width;
};

// PTX shfl.sync: c packs the segment mask (32 - width) and the clamp lane; mode 0 idx, 1 up,
// 2 down, 3 bfly. Out-of-range sources read the lane's own value; a source lane outside the
// mask is undefined on the GPU and reads as poison here.
template <class T, int Mode>
inline void shfl_resolve(void* const* args, unsigned mask, void*) {
  for (int lane = 0; lane < kWarpSize; ++lane) {
    if (!((mask >> lane) & 1u)) continue;
    auto& me = *static_cast<ShflArg<T>*>(args[lane]);
    const int segmask = (32 - me.width) & 31;
    const int cval = Mode == 1 ? 0 : 31;
    const int max_lane = (lane & segmask) | (cval & ~segmask);
    const int min_lane = lane & segmask;
    int j;
    bool ok;
    const int b = me.b & 31;
    if (Mode == 0) {
      j = min_lane | (b & ~segmask);
      ok = j <= max_lane;
    } else if (Mode == 1) {
      j = lane - me.b;
      ok = j >= max_lane;
    } else if (Mode == 2) {
      j = lane + me.b;
      ok = j <= max_lane;
    } else {
      j = lane ^ b;
      ok = j <= max_lane;
    }
    if (!ok) j = lane;
    if ((mask >> j) & 1u)
      std::memcpy(me.out, static_cast<ShflArg<T>*>(args[j])->in, sizeof(T));
    else
      std::memset(me.out, 0xff, sizeof(T));
  }
}

template <int Mode, class T>
inline T shfl(const char* kind, unsigned mask, T v, int b, int width, const std::source_location& loc) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 16, "shuffle of an unsupported type");
  if (width < 1 || width > 32 || (width & (width - 1)))
    fail_in_kernel(cudaErrorLaunchFailure, std::string(kind) + " at " + where(loc) + ": width " +
                                               std::to_string(width) + " is not a power of two in [1, 32]");
  ShflArg<T> a;
  std::memcpy(a.in, &v, sizeof(T));
  a.b = b;
  a.width = width;
  warp_collective(mask, kind, &a, shfl_resolve<T, Mode>, nullptr, loc);
  T r;
  std::memcpy(&r, a.out, sizeof(T));
  return r;
}

struct VoteArg {
  unsigned pred, out;
};
inline void vote_resolve(void* const* args, unsigned mask, void*) {
  unsigned ballot = 0;
  for (int l = 0; l < kWarpSize; ++l)
    if ((mask >> l) & 1u && static_cast<VoteArg*>(args[l])->pred) ballot |= 1u << l;
  for (int l = 0; l < kWarpSize; ++l)
    if ((mask >> l) & 1u) static_cast<VoteArg*>(args[l])->out = ballot;
}
inline unsigned vote(const char* kind, unsigned mask, int pred, const std::source_location& loc) {
  VoteArg a{pred != 0, 0};
  warp_collective(mask, kind, &a, vote_resolve, nullptr, loc);
  return a.out;
}

template <class T, class Op>
inline T warp_reduce(const char* kind, unsigned mask, T v, const std::source_location& loc) {
  struct Arg {
    T in, out;
  } a{v, T{}};
  warp_collective(
      mask, kind, &a,
      [](void* const* args, unsigned m, void*) {
        bool first = true;
        T acc{};
        for (int l = 0; l < kWarpSize; ++l) {
          if (!((m >> l) & 1u)) continue;
          const T x = static_cast<Arg*>(args[l])->in;
          acc = first ? x : Op{}(acc, x);
          first = false;
        }
        for (int l = 0; l < kWarpSize; ++l)
          if ((m >> l) & 1u) static_cast<Arg*>(args[l])->out = acc;
      },
      nullptr, loc);
  return a.out;
}

// Plain read-modify-write is atomic here: fibers never preempt each other and launches are
// serialized, so no other thread can touch the word in between.
template <class T, class F>
inline T rmw(T* p, F f) {
  const T old = *p;
  *p = f(old);
  return old;
}

}  // namespace dlk::sim

using dlk_sim_loc = std::source_location;

// ---- barriers --------------------------------------------------------------------------------
inline void __syncthreads(dlk_sim_loc loc = dlk_sim_loc::current()) { dlk::sim::block_barrier(0, 0, loc); }
inline int __syncthreads_count(int p, dlk_sim_loc loc = dlk_sim_loc::current()) {
  return dlk::sim::block_barrier(0, p, loc);
}
inline int __syncthreads_and(int p, dlk_sim_loc loc = dlk_sim_loc::current()) {
  return dlk::sim::block_barrier(1, p, loc);
}
inline int __syncthreads_or(int p, dlk_sim_loc loc = dlk_sim_loc::current()) {
  return dlk::sim::block_barrier(2, p, loc);
}
inline void __syncwarp(unsigned mask = 0xffffffffu, dlk_sim_loc loc = dlk_sim_loc::current()) {
  dlk::sim::VoteArg a{0, 0};
  dlk::sim::warp_collective(mask, "__syncwarp", &a, [](void* const*, unsigned, void*) {}, nullptr, loc);
}

// ---- shuffles, votes, warp reductions --------------------------------------------------------
template <class T>
inline T __shfl_sync(unsigned mask, T v, int src, int width = warpSize, dlk_sim_loc loc = dlk_sim_loc::current()) {
  return dlk::sim::shfl<0>("__shfl_sync", mask, v, src, width, loc);
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = warpSize,
                        dlk_sim_loc loc = dlk_sim_loc::current()) {
  return dlk::sim::shfl<1>("__shfl_up_sync", mask, v, static_cast<int>(delta), width, loc);
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = warpSize,
                          dlk_sim_loc loc = dlk_sim_loc::current()) {
  return dlk::sim::shfl<2>("__shfl_down_sync", mask, v, static_cast<int>(delta), width, loc);
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = warpSize,
                         dlk_sim_loc loc = dlk_sim_loc::current()) {
  return dlk::sim::shfl<3>("__shfl_xor_sync", mask, v, lane_mask, width, loc);
}
inline unsigned __ballot_sync(unsigned mask, int p, dlk_sim_loc loc = dlk_sim_loc::current()) {
  return dlk::sim::vote("__ballot_sync", mask, p, loc);
}
inline int __any_sync(unsigned mask, int p, dlk_sim_loc loc = dlk_sim_loc::current()) {
  return dlk::sim::vote("__any_sync", mask, p, loc) != 0;
}
inline int __all_sync(unsigned mask, int p, dlk_sim_loc loc = dlk_sim_loc::current()) {
  return dlk::sim::vote("__all_sync", mask, p, loc) == mask;
}
// Lanes of the warp that exist and have not exited. The GPU only promises the caller's bit
// (convergence is up to the compiler), so code must not expect fewer bits than this.
inline unsigned __activemask() {
  using namespace dlk::sim;
  const Thread& t = cur();
  const int base = t.linear - t.linear % kWarpSize;
  unsigned m = 0;
  for (int l = 0; l < kWarpSize && base + l < t_launch->nthreads; ++l)
    if (t_launch->threads[base + l]->state != State::exited) m |= 1u << l;
  return m;
}
namespace dlk::sim {
struct OpAdd {
  template <class T>
  T operator()(T a, T b) const {
    return a + b;
  }
};
struct OpMin {
  template <class T>
  T operator()(T a, T b) const {
    return b < a ? b : a;
  }
};
struct OpMax {
  template <class T>
  T operator()(T a, T b) const {
    return a < b ? b : a;
  }
};
struct OpAnd {
  template <class T>
  T operator()(T a, T b) const {
    return a & b;
  }
};
struct OpOr {
  template <class T>
  T operator()(T a, T b) const {
    return a | b;
  }
};
struct OpXor {
  template <class T>
  T operator()(T a, T b) const {
    return a ^ b;
  }
};
}  // namespace dlk::sim
#define DLK_SIM_REDUCE(NAME, OP, T)                                             \
  inline T NAME(unsigned mask, T v, dlk_sim_loc loc = dlk_sim_loc::current()) { \
    return dlk::sim::warp_reduce<T, dlk::sim::OP>(#NAME, mask, v, loc);         \
  }
DLK_SIM_REDUCE(__reduce_add_sync, OpAdd, unsigned)
DLK_SIM_REDUCE(__reduce_add_sync, OpAdd, int)
DLK_SIM_REDUCE(__reduce_min_sync, OpMin, unsigned)
DLK_SIM_REDUCE(__reduce_min_sync, OpMin, int)
DLK_SIM_REDUCE(__reduce_max_sync, OpMax, unsigned)
DLK_SIM_REDUCE(__reduce_max_sync, OpMax, int)
DLK_SIM_REDUCE(__reduce_and_sync, OpAnd, unsigned)
DLK_SIM_REDUCE(__reduce_or_sync, OpOr, unsigned)
DLK_SIM_REDUCE(__reduce_xor_sync, OpXor, unsigned)
#undef DLK_SIM_REDUCE

// ---- atomics ---------------------------------------------------------------------------------
#define DLK_SIM_ATOMIC(NAME, T, EXPR)                                         \
  inline T NAME(T* p, T v) {                                                  \
    return dlk::sim::rmw(p, [&]([[maybe_unused]] T o) -> T { return EXPR; }); \
  }
DLK_SIM_ATOMIC(atomicAdd, int, o + v)
DLK_SIM_ATOMIC(atomicAdd, unsigned, o + v)
DLK_SIM_ATOMIC(atomicAdd, unsigned long long, o + v)
DLK_SIM_ATOMIC(atomicAdd, float, o + v)
DLK_SIM_ATOMIC(atomicAdd, double, o + v)
DLK_SIM_ATOMIC(atomicSub, int, o - v)
DLK_SIM_ATOMIC(atomicSub, unsigned, o - v)
DLK_SIM_ATOMIC(atomicExch, int, v)
DLK_SIM_ATOMIC(atomicExch, unsigned, v)
DLK_SIM_ATOMIC(atomicExch, unsigned long long, v)
DLK_SIM_ATOMIC(atomicExch, float, v)
DLK_SIM_ATOMIC(atomicMin, int, v < o ? v : o)
DLK_SIM_ATOMIC(atomicMin, unsigned, v < o ? v : o)
DLK_SIM_ATOMIC(atomicMin, long long, v < o ? v : o)
DLK_SIM_ATOMIC(atomicMin, unsigned long long, v < o ? v : o)
DLK_SIM_ATOMIC(atomicMax, int, v > o ? v : o)
DLK_SIM_ATOMIC(atomicMax, unsigned, v > o ? v : o)
DLK_SIM_ATOMIC(atomicMax, long long, v > o ? v : o)
DLK_SIM_ATOMIC(atomicMax, unsigned long long, v > o ? v : o)
DLK_SIM_ATOMIC(atomicAnd, int, o& v)
DLK_SIM_ATOMIC(atomicAnd, unsigned, o& v)
DLK_SIM_ATOMIC(atomicAnd, unsigned long long, o& v)
DLK_SIM_ATOMIC(atomicOr, int, o | v)
DLK_SIM_ATOMIC(atomicOr, unsigned, o | v)
DLK_SIM_ATOMIC(atomicOr, unsigned long long, o | v)
DLK_SIM_ATOMIC(atomicXor, int, o ^ v)
DLK_SIM_ATOMIC(atomicXor, unsigned, o ^ v)
DLK_SIM_ATOMIC(atomicXor, unsigned long long, o ^ v)
DLK_SIM_ATOMIC(atomicInc, unsigned, o >= v ? 0u : o + 1)
DLK_SIM_ATOMIC(atomicDec, unsigned, (o == 0 || o > v) ? v : o - 1)
#undef DLK_SIM_ATOMIC
#define DLK_SIM_CAS(T)                                                   \
  inline T atomicCAS(T* p, T cmp, T v) {                                 \
    return dlk::sim::rmw(p, [&](T o) -> T { return o == cmp ? v : o; }); \
  }
DLK_SIM_CAS(int)
DLK_SIM_CAS(unsigned)
DLK_SIM_CAS(unsigned long long)
DLK_SIM_CAS(unsigned short)
#undef DLK_SIM_CAS

// ---- fences, loads, misc ---------------------------------------------------------------------
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_system() { std::atomic_thread_fence(std::memory_order_seq_cst); }
// A spin-wait must contain a scheduling point, or the fiber it waits for never runs.
inline void __nanosleep(unsigned) { dlk::sim::yield_point(); }
template <class T>
inline T __ldg(const T* p) {
  return *p;
}
template <class T>
inline T __ldcg(const T* p) {
  return *p;
}
template <class T>
inline T __ldcs(const T* p) {
  return *p;
}
template <class T>
inline void __stcg(T* p, T v) {
  *p = v;
}
template <class T>
inline void __stcs(T* p, T v) {
  *p = v;
}
[[noreturn]] inline void __trap() {
  dlk::sim::fail_in_kernel(cudaErrorLaunchFailure, "__trap() in " + dlk::sim::who(dlk::sim::cur()));
}
inline long long clock64() {
  static thread_local long long c = 0;
  return ++c;
}
