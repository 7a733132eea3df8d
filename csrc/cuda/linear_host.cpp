// linear on CUDA, host side: checks (host/linear.h, as the CPU's), device guard, current stream,
// launch check. With the input's leading dimensions folded into R rows, every product is one
// call of the GEMM core (cuda/gemm.cuh), each operand read in place through its strides:
//   forward      Y[R x out]   = X[R x in]   W^T[in x out]  + bias (in the GEMM's epilogue)
//   grad_input   dX[R x in]   = dY[R x out] W[out x in]
//   grad_weight  dW[out x in] = dY^T[out x R] X[R x in]
// and grad_bias is the column sum of cuda/linear.h. allow_tf32 (torch.backends.cuda.matmul's
// flag, passed by dlkernels.functional) lets float32 products run as TF32 on tensor cores.
#include <optional>
#include <tuple>
#include <vector>

#include "cuda/gemm.cuh"
#include "cuda/host.h"
#include "cuda/linear.h"
#include "host/linear.h"

namespace dlk::cuda {
namespace {

constexpr std::initializer_list<ScalarType> kDtypes = {ScalarType::Float, ScalarType::Double, ScalarType::Half,
                                                       ScalarType::BFloat16};

// A data tensor (..., F) as R x F rows: in place when its leading dimensions fold into one
// stride, else a contiguous copy.
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
  const void* ptr() const { return t.const_data_ptr(); }
};

void run_gemm(const char* op, const Tensor& like, const GemmProblem& p, bool allow_tf32) {
  GemmOptions opt;
  opt.allow_tf32 = allow_tf32;
  check_launch(op, gemm(to_dtype(like.scalar_type()), p, opt, current_stream(like)));
}

Tensor linear_cuda(Tensor input, Tensor weight, std::optional<Tensor> bias, bool allow_tf32) {
  check_linear_tensors("linear", input, weight, bias, kDtypes);
  const DeviceGuard guard(input);
  const int64_t R = leading_rows(input), in = weight.size(1), out = weight.size(0);
  Tensor y = dlk::new_empty(input, IntList(with_last(input, out)));
  if (y.numel() == 0) return y;
  const Rows x(input);
  // An undefined Tensor for "no bias" (an optional<Tensor> here trips GCC 12's -Wmaybe-uninitialized).
  const Tensor b = bias.has_value() ? as_contiguous(*bias) : Tensor();
  const GemmProblem p{R,
                      out,
                      in,
                      x.ptr(),
                      x.rs,
                      x.cs,
                      weight.const_data_ptr(),
                      weight.stride(1),
                      weight.stride(0),
                      y.mutable_data_ptr(),
                      out,
                      b.defined() ? b.const_data_ptr() : nullptr};
  run_gemm("linear", input, p, allow_tf32);
  return y;
}

Tensor linear_grad_input_cuda(Tensor grad_output, Tensor weight, bool allow_tf32) {
  const char* op = "linear_grad_input";
  check_linear_grad_input(op, grad_output, weight, kDtypes);
  const DeviceGuard guard(grad_output);
  const int64_t R = leading_rows(grad_output), in = weight.size(1), out = weight.size(0);
  Tensor dx = dlk::new_empty(grad_output, IntList(with_last(grad_output, in)));
  if (dx.numel() == 0) return dx;
  const Rows dy(grad_output);
  const GemmProblem p{R,
                      in,
                      out,
                      dy.ptr(),
                      dy.rs,
                      dy.cs,
                      weight.const_data_ptr(),
                      weight.stride(0),
                      weight.stride(1),
                      dx.mutable_data_ptr(),
                      in,
                      nullptr};
  run_gemm(op, grad_output, p, allow_tf32);
  return dx;
}

Tensor linear_grad_weight_cuda(Tensor grad_output, Tensor input, bool allow_tf32) {
  const char* op = "linear_grad_weight";
  check_linear_grad_weight(op, grad_output, input, kDtypes);
  const DeviceGuard guard(input);
  const int64_t R = leading_rows(input), in = input.size(input.dim() - 1);
  const int64_t out = grad_output.size(grad_output.dim() - 1);
  Tensor dw = new_empty(input, {out, in});
  if (dw.numel() == 0) return dw;
  const Rows dy(grad_output), x(input);
  // dY^T: dY's rows are the reduction (K) dimension.
  const GemmProblem p{out, in, R, dy.ptr(), dy.cs, dy.rs, x.ptr(), x.rs, x.cs, dw.mutable_data_ptr(), in, nullptr};
  run_gemm(op, input, p, allow_tf32);
  return dw;
}

Tensor linear_grad_bias_cuda(Tensor grad_output) {
  const char* op = "linear_grad_bias";
  check_linear_grad_bias(op, grad_output, kDtypes);
  const DeviceGuard guard(grad_output);
  const int64_t out = grad_output.size(grad_output.dim() - 1), R = leading_rows(grad_output);
  Tensor db = new_empty(grad_output, {out});
  if (out == 0) return db;
  if (R == 0) return torch::stable::zero_(db);
  const Rows dy(grad_output);
  const int64_t chunks = column_sum_chunks(R);
  const ScalarType acc = grad_output.scalar_type() == ScalarType::Double ? ScalarType::Double : ScalarType::Float;
  const Tensor partial = chunks > 1 ? new_empty(grad_output, {chunks * out}, acc) : Tensor();
  check_launch(op,
               column_sums(to_dtype(grad_output.scalar_type()), dy.ptr(), dy.rs, dy.cs, R, out, db.mutable_data_ptr(),
                           partial.defined() ? partial.mutable_data_ptr() : nullptr, current_stream(grad_output)));
  return db;
}

std::tuple<Tensor, Tensor, Tensor> linear_backward_cuda(Tensor grad_output, Tensor input, Tensor weight,
                                                        std::vector<bool> output_mask, bool allow_tf32) {
  return linear_backward_by_mask(
      grad_output, input, weight, output_mask,
      [&](const Tensor& dy, const Tensor& w) { return linear_grad_input_cuda(dy, w, allow_tf32); },
      [&](const Tensor& dy, const Tensor& x) { return linear_grad_weight_cuda(dy, x, allow_tf32); },
      &linear_grad_bias_cuda);
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(DLK_NAMESPACE, DLK_CUDA_KEY, m) {
  m.impl("linear", TORCH_BOX(&linear_cuda));
  m.impl("linear_grad_input", TORCH_BOX(&linear_grad_input_cuda));
  m.impl("linear_grad_weight", TORCH_BOX(&linear_grad_weight_cuda));
  m.impl("linear_grad_bias", TORCH_BOX(&linear_grad_bias_cuda));
  m.impl("linear_backward", TORCH_BOX(&linear_backward_cuda));
}

}  // namespace dlk::cuda
