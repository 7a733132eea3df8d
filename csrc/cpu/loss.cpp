// Losses on the CPU: the kernels of the active ISA (cpu/kernels/loss.h), split across threads with
// torch's parallel_for. Ops and checks are in host/loss.h.
//
// Reductions are deterministic: the data is cut into fixed-size blocks (or per-row values) whose
// sums do not depend on how many threads ran them, and those are added in a fixed pairwise tree.
// The same input gives the same bits for any thread count.
#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <stdexcept>

#include "cpu/loss_table.h"
#include "cpu/workspace.h"
#include "host/loss.h"

namespace dlk::cpu {
namespace {

// Elements per reduction block: one block's partial sum is one task's unit of work.
constexpr int64_t kBlock = 8192;
// Elements per task of the elementwise passes.
constexpr int64_t kGrain = 16384;

// Pairwise sum of v[0..n): a fixed tree, O(log n) rounding growth.
double tree_sum(const double* v, int64_t n) {
  if (n <= 8) {
    double s = 0.0;
    for (int64_t i = 0; i < n; ++i) s += v[i];
    return s;
  }
  const int64_t h = n / 2;
  return tree_sum(v, h) + tree_sum(v + h, n - h);
}

template <class T>
void mse_sum_typed(const Tensor& x, const Tensor& t, const Tensor& out, Reduction red) {
  const auto& table = loss_table<T>(active_isa());
  const T* px = x.const_data_ptr<T>();
  const T* pt = t.const_data_ptr<T>();
  const int64_t n = x.numel();
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  double* part = workspace<double>(Slot::loss_terms, blocks);
  torch::stable::parallel_for(0, blocks, 2, [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) {
      const int64_t lo = k * kBlock, len = n - lo < kBlock ? n - lo : kBlock;
      part[k] = table.squared_error_sum(px + lo, pt + lo, len);
    }
  });
  double s = tree_sum(part, blocks);
  if (red == Reduction::mean) s /= static_cast<double>(n);
  *out.mutable_data_ptr<T>() = static_cast<T>(s);
}

template <class T>
void mse_none_typed(const Tensor& x, const Tensor& t, const Tensor& y) {
  const auto& table = loss_table<T>(active_isa());
  const T* px = x.const_data_ptr<T>();
  const T* pt = t.const_data_ptr<T>();
  T* py = y.mutable_data_ptr<T>();
  torch::stable::parallel_for(0, x.numel(), kGrain,
                              [&](int64_t b, int64_t e) { table.squared_error(px + b, pt + b, py + b, e - b); });
}

template <class T>
void mse_grad_typed(const Tensor& g, const Tensor& x, const Tensor& t, const Tensor& dx, Reduction red) {
  const auto& table = loss_table<T>(active_isa());
  const T* px = x.const_data_ptr<T>();
  const T* pt = t.const_data_ptr<T>();
  T* pdx = dx.mutable_data_ptr<T>();
  const int64_t n = x.numel();
  const T* pg = red == Reduction::none ? g.const_data_ptr<T>() : nullptr;
  double scale = 2.0;
  if (red != Reduction::none) scale *= static_cast<double>(*g.const_data_ptr<T>());
  if (red == Reduction::mean) scale /= static_cast<double>(n);
  const T s = static_cast<T>(scale);
  torch::stable::parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) {
    table.squared_error_grad(px + b, pt + b, pg ? pg + b : nullptr, s, pdx + b, e - b);
  });
}

template <class T>
CrossEntropyRows<T> ce_rows(const CrossEntropyCall& c) {
  CrossEntropyRows<T> a{};
  a.logits = c.logits->const_data_ptr<T>();
  a.classes = c.logits->size(1);
  a.positions = ce_positions(*c.logits);
  a.target = c.soft ? nullptr : c.target->const_data_ptr<int64_t>();
  a.soft = c.soft ? c.target->const_data_ptr<T>() : nullptr;
  a.weight = c.weight ? c.weight->const_data_ptr<T>() : nullptr;
  a.ignore_index = c.ignore_index;
  a.smoothing = c.smoothing;
  double wsum = static_cast<double>(a.classes);
  if (a.weight) {
    wsum = 0.0;
    for (int64_t k = 0; k < a.classes; ++k) wsum += static_cast<double>(a.weight[k]);
  }
  a.weight_sum = wsum;
  return a;
}

// Rows per task: about kGrain logits, at least one row.
int64_t row_grain(int64_t classes) { return classes >= kGrain ? 1 : kGrain / (classes > 0 ? classes : 1); }

template <class T>
void ce_forward_typed(const CrossEntropyCall& c) {
  const auto& table = loss_table<T>(active_isa());
  CrossEntropyRows<T> a = ce_rows<T>(c);
  const int64_t rows = ce_rows_of(*c.logits);
  a.row_loss = workspace<double>(Slot::loss_terms, 2 * rows);
  a.row_weight = a.row_loss + rows;
  a.lse = c.lse->mutable_data_ptr<T>();
  const auto fn = table.cross_entropy_forward[cross_entropy_variant(a.weight, a.smoothing > 0.0, c.soft)];
  std::atomic<int64_t> bad{std::numeric_limits<int64_t>::max()};
  if (a.classes > 0) {
    torch::stable::parallel_for(0, rows, row_grain(a.classes), [&](int64_t b, int64_t e) {
      const int64_t r = fn(a, b, e);
      if (r < 0) return;
      int64_t cur = bad.load();
      while (r < cur && !bad.compare_exchange_weak(cur, r)) {
      }
    });
  }
  if (bad.load() != std::numeric_limits<int64_t>::max()) {
    throw std::out_of_range(cat("Target ", a.target[bad.load()], " is out of bounds."));
  }
  const double total = c.soft ? static_cast<double>(rows) : tree_sum(a.row_weight, rows);
  *c.total_weight->mutable_data_ptr<T>() = static_cast<T>(total);
  T* out = c.loss->mutable_data_ptr<T>();
  if (c.reduction == Reduction::none) {
    for (int64_t r = 0; r < rows; ++r) out[r] = static_cast<T>(a.row_loss[r]);
  } else {
    const double s = tree_sum(a.row_loss, rows);
    *out = static_cast<T>(c.reduction == Reduction::mean ? s / total : s);
  }
}

template <class T>
void ce_backward_typed(const CrossEntropyCall& c) {
  const auto& table = loss_table<T>(active_isa());
  CrossEntropyRows<T> a = ce_rows<T>(c);
  const int64_t rows = ce_rows_of(*c.logits);
  a.lse_in = c.lse->const_data_ptr<T>();
  a.grad_input = c.grad_input->mutable_data_ptr<T>();
  if (c.reduction == Reduction::none) {
    a.grad = c.grad_output->const_data_ptr<T>();
    a.scale = 1.0;
  } else {
    a.grad = nullptr;
    a.scale = static_cast<double>(*c.grad_output->const_data_ptr<T>());
    if (c.reduction == Reduction::mean) a.scale /= static_cast<double>(*c.total_weight->const_data_ptr<T>());
  }
  const auto fn = table.cross_entropy_backward[cross_entropy_variant(a.weight, a.smoothing > 0.0, c.soft)];
  torch::stable::parallel_for(0, rows, row_grain(a.classes), [&](int64_t b, int64_t e) { fn(a, b, e); });
}

struct CpuBackend {
  static constexpr std::initializer_list<ScalarType> dtypes = {ScalarType::Float, ScalarType::Double};
  static ScalarType stat_dtype(ScalarType s) { return s; }
  static void mse_sum(const Tensor& x, const Tensor& t, const Tensor& out, Reduction red) {
    dispatch_float(x.scalar_type(), "mse_loss", [&](auto tag) { mse_sum_typed<decltype(tag)>(x, t, out, red); });
  }
  static void mse_none(const Tensor& x, const Tensor& t, const Tensor& y) {
    dispatch_float(x.scalar_type(), "mse_loss", [&](auto tag) { mse_none_typed<decltype(tag)>(x, t, y); });
  }
  static void mse_grad(const Tensor& g, const Tensor& x, const Tensor& t, const Tensor& dx, Reduction red) {
    dispatch_float(x.scalar_type(), "mse_loss_backward",
                   [&](auto tag) { mse_grad_typed<decltype(tag)>(g, x, t, dx, red); });
  }
  static void ce_forward(const CrossEntropyCall& c) {
    dispatch_float(c.logits->scalar_type(), "cross_entropy_forward",
                   [&](auto tag) { ce_forward_typed<decltype(tag)>(c); });
  }
  static void ce_backward(const CrossEntropyCall& c) {
    dispatch_float(c.logits->scalar_type(), "cross_entropy_backward",
                   [&](auto tag) { ce_backward_typed<decltype(tag)>(c); });
  }
};

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(dlkernels, CPU, m) { LossOps<CpuBackend>::register_all(m); }

}  // namespace dlk::cpu
