// The loss ops above the kernels, shared by CPU and CUDA: argument checks, layouts, allocation.
// `Backend` supplies the device's dtypes and kernels:
//   static constexpr std::initializer_list<ScalarType> dtypes;
//   static ScalarType stat_dtype(ScalarType);  // dtype of the saved lse and the total weight
//   static void mse_sum(const Tensor& x, const Tensor& t, const Tensor& out, Reduction);
//   static void mse_none(const Tensor& x, const Tensor& t, const Tensor& y);
//   static void mse_grad(const Tensor& g, const Tensor& x, const Tensor& t, const Tensor& dx, Reduction);
//   static void ce_forward(const CrossEntropyCall&);
//   static void ce_backward(const CrossEntropyCall&);
// Cross entropy takes row-major (rows, classes) logits; dlkernels.functional flattens the other
// layouts torch accepts ((C,), (N, C, d1, ...)) into that.
#pragma once

#include "common/loss.h"
#include "host/elementwise.h"

namespace dlk {

inline Reduction to_reduction(int64_t r, const char* op) {
  if (r < 0 || r > 2) throw std::invalid_argument(cat(op, ": unknown reduction ", r, " (0: none, 1: mean, 2: sum)"));
  return static_cast<Reduction>(r);
}

// Everything one cross entropy call passes to a device; tensors are contiguous, optional ones
// are null when absent.
struct CrossEntropyCall {
  const Tensor* logits;
  const Tensor* target;  // int64 (rows) class indices, or (rows, classes) probabilities
  const Tensor* weight;  // (classes) or null
  bool soft;
  Reduction reduction;
  int64_t ignore_index;
  double smoothing;
  // forward: loss ((rows) for none, else ()), lse (rows), total_weight ()
  const Tensor* loss;
  const Tensor* lse;
  const Tensor* total_weight;
  // backward: grad_output (shaped like loss), grad_input (rows, classes)
  const Tensor* grad_output;
  const Tensor* grad_input;
};

template <class Backend>
struct LossOps {
  static Tensor mse_loss(Tensor x, Tensor t, int64_t reduction) {
    const char* op = "mse_loss";
    check_dtype(x, op, Backend::dtypes);
    check_like(x, "self", t, "target", op);
    const Reduction red = to_reduction(reduction, op);
    if (red == Reduction::none) {
      return elementwise_binary(x, t,
                                [&](const Tensor& a, const Tensor& b, const Tensor& y) { Backend::mse_none(a, b, y); });
    }
    Tensor out = new_empty(x, {});
    if (x.numel() == 0) {
      torch::stable::fill_(out, red == Reduction::mean ? std::numeric_limits<double>::quiet_NaN() : 0.0);
      return out;
    }
    const Tensor xd = is_dense(x) ? x : as_contiguous(x);
    Backend::mse_sum(xd, as_layout_of(t, xd), out, red);
    return out;
  }

  static Tensor mse_loss_backward(Tensor g, Tensor x, Tensor t, int64_t reduction) {
    const char* op = "mse_loss_backward";
    check_dtype(x, op, Backend::dtypes);
    check_like(x, "self", t, "target", op);
    const Reduction red = to_reduction(reduction, op);
    if (red == Reduction::none) {
      check_like(x, "self", g, "grad_output", op);
    } else {
      check_same_device(op, x, "self", g, "grad_output");
      DLK_CHECK(g.scalar_type() == x.scalar_type() && g.dim() == 0, op, ": expected a 0-dim grad_output of dtype ",
                dtype_name(x.scalar_type()), ", but got shape ", g.sizes(), " and dtype ", dtype_name(g.scalar_type()));
    }
    Tensor dx = dlk::empty_like(x);
    if (x.numel() == 0) return dx;
    Backend::mse_grad(red == Reduction::none ? as_layout_of(g, dx) : g, as_layout_of(x, dx), as_layout_of(t, dx), dx,
                      red);
    return dx;
  }

  // Checks shared by forward and backward; returns whether the targets are probabilities.
  static bool check_ce(const char* op, const Tensor& x, const Tensor& target, const std::optional<Tensor>& weight,
                       double smoothing) {
    check_dtype(x, op, Backend::dtypes);
    DLK_CHECK(x.dim() == 2, op, ": expected logits of shape (rows, classes), but got ", x.sizes());
    const bool soft = target.scalar_type() != ScalarType::Long;
    check_same_device(op, x, "self", target, "target");
    if (soft) {
      check_like(x, "self", target, "target", op);
    } else {
      DLK_CHECK(target.dim() == 1 && target.size(0) == x.size(0), op, ": expected int64 targets of shape [", x.size(0),
                "], but got ", target.sizes());
    }
    if (weight) {
      check_same_device(op, x, "self", *weight, "weight");
      DLK_CHECK(weight->scalar_type() == x.scalar_type(), op, ": expected weight of dtype ",
                dtype_name(x.scalar_type()), ", but got ", dtype_name(weight->scalar_type()));
      DLK_CHECK(weight->dim() == 1 && weight->size(0) == x.size(1), op,
                ": weight tensor should be defined either for all ", x.size(1),
                " classes or no classes but got weight tensor of shape: ", weight->sizes());
    }
    if (!(smoothing >= 0.0 && smoothing <= 1.0))
      throw std::invalid_argument(cat(op, ": label_smoothing must be between 0.0 and 1.0. Got: ", smoothing));
    return soft;
  }

  static std::tuple<Tensor, Tensor, Tensor> cross_entropy_forward(Tensor x, Tensor target, std::optional<Tensor> weight,
                                                                  int64_t reduction, int64_t ignore_index,
                                                                  double smoothing) {
    const char* op = "cross_entropy_forward";
    const bool soft = check_ce(op, x, target, weight, smoothing);
    const Reduction red = to_reduction(reduction, op);
    const int64_t rows = x.size(0);
    const ScalarType stat = Backend::stat_dtype(x.scalar_type());
    Tensor loss = red == Reduction::none ? new_empty(x, {rows}) : new_empty(x, {});
    Tensor lse = new_empty(x, {rows}, stat);
    Tensor total = new_empty(x, {}, stat);
    const Tensor xc = as_contiguous(x), tc = as_contiguous(target);
    std::optional<Tensor> wc;
    if (weight) wc = as_contiguous(*weight);
    CrossEntropyCall call{&xc,     &tc,    wc ? &*wc : nullptr, soft, red, ignore_index, smoothing, &loss, &lse, &total,
                          nullptr, nullptr};
    Backend::ce_forward(call);
    return {loss, lse, total};
  }

  static Tensor cross_entropy_backward(Tensor g, Tensor x, Tensor target, std::optional<Tensor> weight, Tensor lse,
                                       Tensor total_weight, int64_t reduction, int64_t ignore_index, double smoothing) {
    const char* op = "cross_entropy_backward";
    const bool soft = check_ce(op, x, target, weight, smoothing);
    const Reduction red = to_reduction(reduction, op);
    const int64_t rows = x.size(0);
    const ScalarType stat = Backend::stat_dtype(x.scalar_type());
    check_same_device(op, x, "self", g, "grad_output");
    DLK_CHECK(g.scalar_type() == x.scalar_type(), op, ": expected grad_output of dtype ", dtype_name(x.scalar_type()));
    DLK_CHECK(red == Reduction::none ? (g.dim() == 1 && g.size(0) == rows) : g.dim() == 0, op,
              ": grad_output of shape ", g.sizes(), " does not match the loss");
    DLK_CHECK(lse.scalar_type() == stat && lse.dim() == 1 && lse.size(0) == rows && same_device(lse, x), op,
              ": lse must be the forward's (", rows, " values of dtype ", dtype_name(stat), ")");
    DLK_CHECK(total_weight.scalar_type() == stat && total_weight.dim() == 0 && same_device(total_weight, x), op,
              ": total_weight must be the forward's (0-dim, dtype ", dtype_name(stat), ")");
    Tensor dx = new_empty(x, {rows, x.size(1)});
    if (dx.numel() == 0) return dx;
    const Tensor xc = as_contiguous(x), tc = as_contiguous(target), gc = as_contiguous(g), lc = as_contiguous(lse);
    std::optional<Tensor> wc;
    if (weight) wc = as_contiguous(*weight);
    CrossEntropyCall call{&xc,     &tc, wc ? &*wc : nullptr, soft, red, ignore_index, smoothing,
                          nullptr, &lc, &total_weight,       &gc,  &dx};
    Backend::ce_backward(call);
    return dx;
  }

  static void register_all(torch::stable::detail::StableLibrary& m) {
    m.impl("mse_loss", TORCH_BOX(&mse_loss));
    m.impl("mse_loss_backward", TORCH_BOX(&mse_loss_backward));
    m.impl("cross_entropy_forward", TORCH_BOX(&cross_entropy_forward));
    m.impl("cross_entropy_backward", TORCH_BOX(&cross_entropy_backward));
  }
};

}  // namespace dlk
