// Internal operators over the CPU GEMM core, for tests and benchmarks:
//   _gemm(a, b)        a @ b for 2-D float/double tensors (the core alone, against torch.mm)
//   _gemm_peak(dtype)  GFLOP/s of the micro-kernel on L1-resident panels, on every thread: the
//                      practical FMA peak of this machine that the convolution numbers sit under.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "cpu/gemm.h"
#include "cpu/workspace.h"
#include "host/checks.h"

namespace dlk::cpu {
namespace {

template <class T>
void gemm_2d(const T* a, const T* b, T* c, int64_t M, int64_t N, int64_t K) {
  const auto& gt = gemm_table<T>();
  const GemmBlocking blk = gemm_blocking(gt, K);
  const TaskGrid grid = plan_tasks(M, N, 1, gt.mr, gt.nr, at::get_num_threads(), blk.nc);
  const int64_t na = gemm_a_buffer_size(gt, blk), nb = gemm_b_buffer_size(gt, blk);
  T* abuf = workspace<T>(Slot::scratch0, na * at::get_num_threads());
  T* bbuf = workspace<T>(Slot::scratch1, nb * at::get_num_threads());
  at::parallel_for(0, grid.tasks(1), 1, [&](int64_t first, int64_t last) {
    T* ab = abuf + at::get_thread_num() * na;
    T* bb = bbuf + at::get_thread_num() * nb;
    for (int64_t task = first; task < last; ++task) {
      const int64_t m0 = task / grid.col_blocks * grid.row_block, j0 = task % grid.col_blocks * grid.col_block;
      auto get_a = [&](int64_t ic, int64_t pc, int64_t mc, int64_t kc, T* dst) {
        gt.pack_a(a + ic * K + pc, K, 1, mc, kc, dst);
        return static_cast<const T*>(dst);
      };
      auto pack_b = [&](int64_t pc, int64_t jc, int64_t kc, int64_t nc, T* dst) {
        gt.pack_b(b + pc * N + jc, N, 1, kc, nc, dst);
      };
      gemm_blocked<T>(gt, blk, m0, std::min(M, m0 + grid.row_block), j0, std::min(N, j0 + grid.col_block), K, get_a,
                      pack_b, c, N, ColumnMap{N}, false, nullptr, ab, bb, nullptr);
    }
  });
}

at::Tensor gemm_op(const at::Tensor& a, const at::Tensor& b) {
  check_dtype(a, "_gemm", {at::kFloat, at::kDouble});
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2, "_gemm: expected 2-D tensors, got ", a.sizes(), " and ", b.sizes());
  TORCH_CHECK(a.size(1) == b.size(0), "_gemm: shapes ", a.sizes(), " and ", b.sizes(), " cannot be multiplied");
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), "_gemm: dtypes differ: ", a.scalar_type(), " and ", b.scalar_type());
  const int64_t M = a.size(0), K = a.size(1), N = b.size(1);
  at::Tensor c = at::empty({M, N}, a.options());
  if (c.numel() == 0) return c;
  const at::Tensor ac = a.contiguous(), bc = b.contiguous();
  if (a.scalar_type() == at::kFloat) {
    gemm_2d<float>(ac.const_data_ptr<float>(), bc.const_data_ptr<float>(), c.data_ptr<float>(), M, N, K);
  } else {
    gemm_2d<double>(ac.const_data_ptr<double>(), bc.const_data_ptr<double>(), c.data_ptr<double>(), M, N, K);
  }
  return c;
}

template <class T>
double peak(const GemmTable<T>& t, int64_t rounds) {
  constexpr int64_t kc = 128;  // an 8 x 128 and a 128 x 48 panel: well inside L1
  const int64_t threads = at::get_num_threads();
  std::vector<T> a(threads * t.mr * kc, T(1) / 1024), bp(threads * t.nr * kc, T(1) / 1024);
  std::vector<T> c(threads * t.mr * t.nr, T(0));
  // Best of ten short runs: a shared machine interrupts long ones.
  double best = 0;
  for (int rep = 0; rep < 10; ++rep) {
    const auto start = std::chrono::steady_clock::now();
    at::parallel_for(0, threads, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        for (int64_t r = 0; r < rounds / 10; ++r) {
          t.micro_for(t.nr)(kc, a.data() + i * t.mr * kc, 0, bp.data() + i * t.nr * kc, c.data() + i * t.mr * t.nr,
                            t.nr, t.mr, t.nr, true, nullptr);
        }
      }
    });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, 2.0 * t.mr * t.nr * kc * (rounds / 10) * threads / s * 1e-9);
  }
  return best;
}

double gemm_peak_op(at::ScalarType dtype, int64_t rounds) {
  TORCH_CHECK_VALUE(rounds > 0, "_gemm_peak: rounds must be positive");
  if (dtype == at::kFloat) return peak(gemm_table<float>(), rounds);
  TORCH_CHECK_NOT_IMPLEMENTED(dtype == at::kDouble, "_gemm_peak: float32 or float64, not ", dtype);
  return peak(gemm_table<double>(), rounds);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(dlkernels, m) {
  m.def("_gemm(Tensor a, Tensor b) -> Tensor");
  m.def("_gemm_peak(ScalarType dtype, int rounds=20000) -> float", &gemm_peak_op);
}

TORCH_LIBRARY_IMPL(dlkernels, CPU, m) { m.impl("_gemm", &gemm_op); }

}  // namespace dlk::cpu
