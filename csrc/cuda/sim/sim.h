// SIMT emulator for CUDA C++: compiled with g++ instead of nvcc, a .cu file runs its kernels on
// the CPU with CUDA's thread semantics. Reached through the stand-in toolkit headers in
// include/ (cuda_runtime.h, cuda_fp16.h, cuda_bf16.h); see README.md for flags and conventions.
#pragma once

#ifndef DLK_CUDA_SIM
#error "cuda/sim/sim.h needs -DDLK_CUDA_SIM"
#endif
#if defined(__CUDACC__)
#error "cuda/sim/sim.h is for host compilers; nvcc uses the real toolkit headers"
#endif

#include "exec.h"
#include "intrinsics.h"
#include "runtime.h"
#include "types.h"

namespace dlk::sim {
// Internal linkage on purpose: each translation unit's copy names its own module's shared-memory
// section, even when several emulated libraries are loaded into one process.
namespace {

// Runs kernel<<<grid, block, smem>>>(args...) to completion. Arguments are converted to the
// kernel's parameter types once, as the launch does; every thread gets its own copy.
template <class... P, class... A>
cudaError_t launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t, A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "kernel launched with the wrong number of arguments");
  std::tuple<std::decay_t<P>...> params(static_cast<std::decay_t<P>>(std::forward<A>(args))...);
  auto body = [&] { std::apply(kernel, params); };
  using Body = decltype(body);
  return run_grid(
      grid, block, smem, reinterpret_cast<const void*>(kernel), [](void* b) { (*static_cast<Body*>(b))(); }, &body,
      __start_dlk_sim_shared, __stop_dlk_sim_shared);
}

}  // namespace
}  // namespace dlk::sim
