// Internal operators over the GEMM cores, for tests and benchmarks (csrc/cpu/gemm_ops.cpp,
// csrc/cuda/gemm_host.cpp):
//   _gemm(a, b, tile, allow_tf32)  a @ b for 2-D tensors (the core alone, against torch.mm). On
//                      CUDA `tile` picks an entry of the core's tile table (-1: its rule) and
//                      allow_tf32 runs float32 as TF32; the CPU core has neither (-1 and False).
//   _gemm_tiles(like, allow_tf32)  the size of the CUDA core's tile table for the path of
//                      like's dtype (CUDA only).
//   _gemm_peak(dtype)  GFLOP/s of the micro-kernel on L1-resident panels, on every thread: the
//                      practical FMA peak of this machine that the convolution numbers sit under.
#include "schema/namespace.h"

STABLE_TORCH_LIBRARY_FRAGMENT(DLK_NAMESPACE, m) {
  m.def("_gemm(Tensor a, Tensor b, int tile=-1, bool allow_tf32=False) -> Tensor");
  m.def("_gemm_tiles(Tensor like, bool allow_tf32=False) -> int");
  m.def("_gemm_peak(ScalarType dtype, int rounds=20000) -> float");
}
