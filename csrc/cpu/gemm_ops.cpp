// The internal GEMM operators of csrc/schema/gemm.cpp on the CPU.

#include <algorithm>
#include <chrono>
#include <vector>

#include "cpu/gemm.h"
#include "cpu/workspace.h"
#include "host/gemm.h"
#include "host/tensor.h"

namespace dlk::cpu {
namespace {

template <class T>
void gemm_2d(const GemmTable<T>& gt, const T* a, const T* b, T* c, int64_t M, int64_t N, int64_t K) {
  const GemmBlocking blk = gemm_blocking(gt, K);
  const TaskGrid grid = plan_tasks(M, N, 1, gt.mr, gt.nr, torch::stable::get_num_threads(), blk.nc);
  // Up to 64 rows, as linear's batches: B read in place by the micro-kernel and each A block run
  // B panel by B panel, so this op's tests cover both ways of feeding B.
  const bool few_rows = M <= 64;
  const Scratch<T> abuf(Slot::packed_a, gemm_a_buffer_size(gt, blk)), bbuf(Slot::packed_b, gemm_b_buffer_size(gt, blk));
  torch::stable::parallel_for(0, grid.tasks(1), 1, [&](int64_t first, int64_t last) {
    T* ab = abuf.get();
    T* bb = bbuf.get();
    for (int64_t task = first; task < last; ++task) {
      const int64_t m0 = task / grid.col_blocks * grid.row_block, j0 = task % grid.col_blocks * grid.col_block;
      auto get_a = [&](int64_t ic, int64_t pc, int64_t mc, int64_t kc, T* dst) {
        gt.pack_a(a + ic * K + pc, K, 1, mc, kc, dst);
        return static_cast<const T*>(dst);
      };
      auto pack_b = [&](int64_t pc, int64_t jc, int64_t kc, int64_t nc, T* dst) {
        if (few_rows) return BInPlace<T>{b + pc * N + jc, N};
        gt.pack_b(b + pc * N + jc, N, 1, kc, nc, dst);
        return BInPlace<T>{};
      };
      gemm_blocked<T>(gt, blk, m0, std::min(M, m0 + grid.row_block), j0, std::min(N, j0 + grid.col_block), K, get_a,
                      pack_b, c, N, ColumnMap{N}, false, nullptr, ab, bb, nullptr, 0, nullptr, few_rows ? 64 : 0);
    }
  });
}

Tensor gemm_op(Tensor a, Tensor b, int64_t tile, bool allow_tf32) {
  DLK_CHECK(tile == -1 && !allow_tf32, "_gemm: the CPU core has no tile table and no TF32 (tile=", tile,
            ", allow_tf32=", allow_tf32 ? "True" : "False", "); those arguments are for CUDA tensors");
  check_gemm_operands(a, b, {ScalarType::Float, ScalarType::Double});
  const int64_t M = a.size(0), K = a.size(1), N = b.size(1);
  Tensor c = new_empty(a, {M, N});
  if (c.numel() == 0) return c;
  const Tensor ac = as_contiguous(a), bc = as_contiguous(b);
  const Isa isa = active_isa();
  dispatch_float(a.scalar_type(), "_gemm", [&](auto tag) {
    using T = decltype(tag);
    gemm_2d<T>(gemm_table<T>(isa), ac.const_data_ptr<T>(), bc.const_data_ptr<T>(), c.mutable_data_ptr<T>(), M, N, K);
  });
  return c;
}

template <class T>
double peak(const GemmTable<T>& t, int64_t rounds) {
  constexpr int64_t kc = 128;  // an 8 x 128 and a 128 x 48 panel: well inside L1
  const int64_t threads = torch::stable::get_num_threads();
  std::vector<T> a(threads * t.mr * kc, T(1) / 1024), bp(threads * t.nr * kc, T(1) / 1024);
  std::vector<T> c(threads * t.mr * t.nr, T(0));
  // Best of ten short runs: a shared machine interrupts long ones.
  double best = 0;
  for (int rep = 0; rep < 10; ++rep) {
    const auto start = std::chrono::steady_clock::now();
    torch::stable::parallel_for(0, threads, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        for (int64_t r = 0; r < rounds / 10; ++r) {
          t.micro_for(t.mr, t.nr)(kc, a.data() + i * t.mr * kc, 0, bp.data() + i * t.nr * kc, 0,
                                  c.data() + i * t.mr * t.nr, t.nr, t.mr, t.nr, true, nullptr, nullptr);
        }
      }
    });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, 2.0 * t.mr * t.nr * kc * (rounds / 10) * threads / s * 1e-9);
  }
  return best;
}

double gemm_peak_op(ScalarType dtype, int64_t rounds) {
  if (rounds <= 0) throw std::invalid_argument("_gemm_peak: rounds must be positive");
  const Isa isa = active_isa();
  if (dtype == ScalarType::Float) return peak(gemm_table<float>(isa), rounds);
  DLK_CHECK(dtype == ScalarType::Double, "_gemm_peak: float32 or float64, not ", dtype_name(dtype));
  return peak(gemm_table<double>(isa), rounds);
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(dlkernels, CPU, m) { m.impl("_gemm", TORCH_BOX(&gemm_op)); }

// _gemm_peak takes no tensor: it dispatches to the backend-independent kernel.
STABLE_TORCH_LIBRARY_IMPL(dlkernels, CompositeExplicitAutograd, m) { m.impl("_gemm_peak", TORCH_BOX(&gemm_peak_op)); }

}  // namespace dlk::cpu
