// linear on the CPU: forward, grad_input, grad_weight, grad_bias, all on the GEMM core
// (cpu/gemm.h). With the leading dimensions of the input folded into R rows:
//   forward      Y[R x out]   = X[R x in]     W^T[in x out]   + bias per column (micro-kernel epilogue)
//   grad_input   dX[R x in]   = dY[R x out]   W[out x in]
//   grad_weight  dW[out x in] = dY^T[out x R] X[R x in]
// Each operand is passed to the packers as (pointer, row stride, column stride), so transposes
// (W^T, dY^T) and strided or transposed inputs are read in place: no transposed copy is made.
#include <algorithm>
#include <optional>
#include <vector>

#include "cpu/gemm.h"
#include "cpu/workspace.h"
#include "host/linear.h"
#include "host/tensor.h"

namespace dlk::cpu {
namespace {

// A(i, k) at p[i * rs + k * cs].
template <class T>
struct Operand {
  const T* p;
  int64_t rs, cs;
};

// C[M x N] (row-major, contiguous) = A[M x K] B[K x N] (+ col_bias[j]), threads splitting C into
// tiles of whole micro-panels.
template <class T>
void gemm_strided(const GemmTable<T>& gt, int64_t M, int64_t N, int64_t K, Operand<T> a, Operand<T> b, T* c,
                  const T* col_bias) {
  const GemmBlocking blk = gemm_blocking(gt, K);
  const TaskGrid grid = plan_tasks(M, N, 1, gt.mr, gt.nr, torch::stable::get_num_threads(), blk.nc);
  const Scratch<T> abuf(Slot::packed_a, gemm_a_buffer_size(gt, blk)), bbuf(Slot::packed_b, gemm_b_buffer_size(gt, blk));
  torch::stable::parallel_for(0, grid.tasks(1), 1, [&](int64_t first, int64_t last) {
    T* ab = abuf.get();
    T* bb = bbuf.get();
    for (int64_t task = first; task < last; ++task) {
      const int64_t m0 = task / grid.col_blocks * grid.row_block, j0 = task % grid.col_blocks * grid.col_block;
      auto get_a = [&](int64_t ic, int64_t pc, int64_t mc, int64_t kc, T* dst) {
        gt.pack_a(a.p + ic * a.rs + pc * a.cs, a.rs, a.cs, mc, kc, dst);
        return static_cast<const T*>(dst);
      };
      auto pack_b = [&](int64_t pc, int64_t jc, int64_t kc, int64_t nc, T* dst) {
        gt.pack_b(b.p + pc * b.rs + jc * b.cs, b.rs, b.cs, kc, nc, dst);
      };
      gemm_blocked<T>(gt, blk, m0, std::min(M, m0 + grid.row_block), j0, std::min(N, j0 + grid.col_block), K, get_a,
                      pack_b, c, N, ColumnMap{N}, false, nullptr, ab, bb, nullptr, 0, col_bias);
    }
  });
}

// A data tensor (..., F) as R x F rows that the packers read in place: the tensor itself when
// its leading dimensions fold into one stride, else a contiguous copy.
struct Rows {
  Tensor t;
  int64_t rs, cs;
  explicit Rows(const Tensor& x) : t(x) {
    if (!row_stride(t, &rs)) {
      t = torch::stable::contiguous(x);
      row_stride(t, &rs);
    }
    cs = t.stride(t.dim() - 1);
  }
  template <class T>
  Operand<T> as() const {
    return {t.const_data_ptr<T>(), rs, cs};
  }
  template <class T>
  Operand<T> transposed() const {
    return {t.const_data_ptr<T>(), cs, rs};
  }
};

constexpr std::initializer_list<ScalarType> kDtypes = {ScalarType::Float, ScalarType::Double};

// The ISA is read once per op, here, and passed to every kernel the op runs.
Tensor linear_cpu(Tensor input, Tensor weight, std::optional<Tensor> bias, bool /*allow_tf32*/) {
  check_linear_tensors("linear", input, weight, bias, kDtypes);
  const int64_t R = leading_rows(input), in = weight.size(1), out = weight.size(0);
  Tensor y = dlk::new_empty(input, IntList(with_last(input, out)));
  if (y.numel() == 0) return y;
  const Rows x(input);
  const std::optional<Tensor> b = bias.has_value() ? std::optional<Tensor>(as_contiguous(*bias)) : std::nullopt;
  const Isa isa = active_isa();
  dispatch_float(input.scalar_type(), "linear", [&](auto tag) {
    using T = decltype(tag);
    const Operand<T> wt{weight.const_data_ptr<T>(), weight.stride(1), weight.stride(0)};  // W^T
    gemm_strided<T>(gemm_table<T>(isa), R, out, in, x.as<T>(), wt, y.mutable_data_ptr<T>(),
                    b.has_value() ? b->const_data_ptr<T>() : nullptr);
  });
  return y;
}

Tensor linear_grad_input_cpu(Tensor grad_output, Tensor weight, bool /*allow_tf32*/ = false) {
  const char* op = "linear_grad_input";
  check_linear_grad_input(op, grad_output, weight, kDtypes);
  const int64_t R = leading_rows(grad_output), in = weight.size(1), out = weight.size(0);
  Tensor dx = dlk::new_empty(grad_output, IntList(with_last(grad_output, in)));
  if (dx.numel() == 0) return dx;
  const Rows dy(grad_output);
  const Isa isa = active_isa();
  dispatch_float(grad_output.scalar_type(), op, [&](auto tag) {
    using T = decltype(tag);
    const Operand<T> w{weight.const_data_ptr<T>(), weight.stride(0), weight.stride(1)};
    gemm_strided<T>(gemm_table<T>(isa), R, in, out, dy.as<T>(), w, dx.mutable_data_ptr<T>(), nullptr);
  });
  return dx;
}

Tensor linear_grad_weight_cpu(Tensor grad_output, Tensor input, bool /*allow_tf32*/ = false) {
  const char* op = "linear_grad_weight";
  check_linear_grad_weight(op, grad_output, input, kDtypes);
  const int64_t R = leading_rows(input), in = input.size(input.dim() - 1);
  const int64_t out = grad_output.size(grad_output.dim() - 1);
  Tensor dw = new_empty(input, {out, in});
  if (dw.numel() == 0) return dw;
  const Rows dy(grad_output), x(input);
  const Isa isa = active_isa();
  dispatch_float(input.scalar_type(), op, [&](auto tag) {
    using T = decltype(tag);
    gemm_strided<T>(gemm_table<T>(isa), out, in, R, dy.transposed<T>(), x.as<T>(), dw.mutable_data_ptr<T>(), nullptr);
  });
  return dw;
}

// Column sums of dY[R x out]: rows split into parts (one per thread, when there are enough rows
// to be worth it), each summed in row order, then the parts added.
template <class T>
void column_sums(const T* dy, int64_t rs, int64_t cs, int64_t R, int64_t out, T* db) {
  constexpr int64_t kMinRowsPerPart = 256;
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(torch::stable::get_num_threads(), R / kMinRowsPerPart));
  T* partial = parts > 1 ? workspace<T>(Slot::partial_sums, parts * out) : db;
  torch::stable::parallel_for(0, parts, 1, [&](int64_t first, int64_t last) {
    for (int64_t p = first; p < last; ++p) {
      T* s = partial + p * out;
      std::fill(s, s + out, T(0));
      for (int64_t r = p * R / parts; r < (p + 1) * R / parts; ++r) {
        const T* row = dy + r * rs;
        if (cs == 1) {
          for (int64_t j = 0; j < out; ++j) s[j] += row[j];
        } else {
          for (int64_t j = 0; j < out; ++j) s[j] += row[j * cs];
        }
      }
    }
  });
  if (parts == 1) return;
  for (int64_t j = 0; j < out; ++j) {
    T s = partial[j];
    for (int64_t p = 1; p < parts; ++p) s += partial[p * out + j];
    db[j] = s;
  }
}

Tensor linear_grad_bias_cpu(Tensor grad_output) {
  const char* op = "linear_grad_bias";
  check_linear_grad_bias(op, grad_output, kDtypes);
  const int64_t R = leading_rows(grad_output), out = grad_output.size(grad_output.dim() - 1);
  Tensor db = new_empty(grad_output, {out});
  if (out == 0) return db;
  if (R == 0) return torch::stable::zero_(db);
  const Rows dy(grad_output);
  dispatch_float(grad_output.scalar_type(), op, [&](auto tag) {
    using T = decltype(tag);
    column_sums<T>(dy.t.const_data_ptr<T>(), dy.rs, dy.cs, R, out, db.mutable_data_ptr<T>());
  });
  return db;
}

std::tuple<Tensor, Tensor, Tensor> linear_backward_cpu(Tensor grad_output, Tensor input, Tensor weight,
                                                       std::vector<bool> output_mask, bool /*allow_tf32*/) {
  return linear_backward_by_mask(
      grad_output, input, weight, output_mask,
      [](const Tensor& dy, const Tensor& w) { return linear_grad_input_cpu(dy, w); },
      [](const Tensor& dy, const Tensor& x) { return linear_grad_weight_cpu(dy, x); }, &linear_grad_bias_cpu);
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(dlkernels, CPU, m) {
  m.impl("linear", TORCH_BOX(&linear_cpu));
  m.impl("linear_grad_input", TORCH_BOX(&linear_grad_input_cpu));
  m.impl("linear_grad_weight", TORCH_BOX(&linear_grad_weight_cpu));
  m.impl("linear_grad_bias", TORCH_BOX(&linear_grad_bias_cpu));
  m.impl("linear_backward", TORCH_BOX(&linear_backward_cpu));
}

}  // namespace dlk::cpu
