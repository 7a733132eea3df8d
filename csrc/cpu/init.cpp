// The init fills on the CPU: common/philox.h's blocks of four, split across threads with torch's
// parallel_for. Block g always fills elements 4g..4g+3, so the bits do not depend on the thread
// count. Compiled once (baseline ISA), not per ISA: the work is scalar double math (log, cos,
// erf), and a single compile keeps the values the same whatever ISA is active.
#include "host/init.h"

namespace dlk::cpu {
namespace {

// Blocks of four per task: a block costs tens of nanoseconds, so 4096 of them amortise a task.
constexpr int64_t kGrainBlocks = 4096;

template <class T>
void random_typed(const Tensor& x, const InitParams& p) {
  T* out = x.mutable_data_ptr<T>();
  const int64_t n = x.numel();
  const int64_t blocks = (n + 3) / 4;
  torch::stable::parallel_for(0, blocks, kGrainBlocks, [&](int64_t b, int64_t e) {
    double v[4];
    for (int64_t g = b; g < e; ++g) {
      init_block(p, static_cast<uint64_t>(g), v);
      const int64_t base = 4 * g, m = n - base < 4 ? n - base : 4;
      for (int64_t k = 0; k < m; ++k) out[base + k] = static_cast<T>(v[k]);
    }
  });
}

template <class T>
void fill_typed(const Tensor& x, double value) {
  T* out = x.mutable_data_ptr<T>();
  const T v = static_cast<T>(value);
  torch::stable::parallel_for(0, x.numel(), 1 << 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) out[i] = v;
  });
}

struct CpuBackend {
  static constexpr std::initializer_list<ScalarType> dtypes = {ScalarType::Float, ScalarType::Double};
  static void fill(const Tensor& x, double value) {
    dispatch_float(x.scalar_type(), "init_fill_", [&](auto tag) { fill_typed<decltype(tag)>(x, value); });
  }
  static void random(const Tensor& x, const InitParams& p) {
    dispatch_float(x.scalar_type(), "init", [&](auto tag) { random_typed<decltype(tag)>(x, p); });
  }
};

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(dlkernels, CPU, m) { InitOps<CpuBackend>::register_all(m); }

}  // namespace dlk::cpu
