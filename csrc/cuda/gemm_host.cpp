// The internal _gemm operator on CUDA (csrc/schema/gemm.cpp): the GEMM core alone, any of its
// tiles, for the tile sweep of the gemm benchmark suite and the tests. Operands are read in place
// through their strides, as linear's are.
#include "cuda/gemm.cuh"
#include "cuda/host.h"
#include "host/gemm.h"

namespace dlk::cuda {
namespace {

constexpr std::initializer_list<ScalarType> kDtypes = {ScalarType::Float, ScalarType::Double, ScalarType::Half,
                                                       ScalarType::BFloat16};

Tensor gemm_cuda(Tensor a, Tensor b, int64_t tile, bool allow_tf32) {
  check_gemm_operands(a, b, kDtypes);
  const DType dt = to_dtype(a.scalar_type());
  const int tiles = gemm_tile_count(dt, allow_tf32);
  DLK_CHECK(tile >= -1 && tile < tiles, "_gemm: tile ", tile, " out of range: the ", dtype_name(a.scalar_type()),
            allow_tf32 ? " (TF32)" : "", " path has ", tiles, " (-1 for the rule)");
  const DeviceGuard guard(a);
  const int64_t M = a.size(0), K = a.size(1), N = b.size(1);
  Tensor c = new_empty(a, {M, N});
  if (c.numel() == 0) return c;
  const GemmProblem p{M,
                      N,
                      K,
                      a.const_data_ptr(),
                      a.stride(0),
                      a.stride(1),
                      b.const_data_ptr(),
                      b.stride(0),
                      b.stride(1),
                      c.mutable_data_ptr(),
                      N,
                      nullptr};
  GemmOptions opt;
  opt.allow_tf32 = allow_tf32;
  opt.tile = static_cast<int>(tile);
  check_launch("_gemm", gemm(dt, p, opt, current_stream(a)));
  return c;
}

// The size of the tile table of the path for (like's dtype, allow_tf32): _gemm's tiles are 0 ..
// count - 1. It takes a tensor (only its dtype and device are read) so that it dispatches, and
// is emulated, like _gemm.
int64_t gemm_tiles_cuda(Tensor like, bool allow_tf32) {
  check_dtype(like, "_gemm_tiles", kDtypes);
  return gemm_tile_count(to_dtype(like.scalar_type()), allow_tf32);
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(DLK_NAMESPACE, DLK_CUDA_KEY, m) {
  m.impl("_gemm", TORCH_BOX(&gemm_cuda));
  m.impl("_gemm_tiles", TORCH_BOX(&gemm_tiles_cuda));
}

}  // namespace dlk::cuda
