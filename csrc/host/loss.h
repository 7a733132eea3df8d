// The loss ops above the kernels, shared by CPU and CUDA: argument checks, layouts, allocation.
// `Backend` supplies the device's dtypes and kernels:
//   static constexpr std::initializer_list<ScalarType> dtypes;
//   static ScalarType stat_dtype(ScalarType);  // dtype of the saved lse and the total weight
//   static void mse_sum(const Tensor& x, const Tensor& t, const Tensor& out, Reduction);
//   static void mse_none(const Tensor& x, const Tensor& t, const Tensor& y);
//   static void mse_grad(const Tensor& g, const Tensor& x, const Tensor& t, const Tensor& dx, Reduction);
//   static void ce_forward(const CrossEntropyCall&);
//   static void ce_backward(const CrossEntropyCall&);
// Cross entropy takes (rows, classes) logits or (batch, classes, positions) ones, torch's
// (N, C, d1, ...) with the d's flattened (dlkernels.functional does that, and makes (C,) a row).
// A row is one (sample, position); its lse, loss (none) and class target are shaped
// (rows) or (batch, positions).
#pragma once

#include "common/loss.h"
#include "host/elementwise.h"

namespace dlk {

// Positions per sample of cross entropy logits (1 for (rows, classes)), and the rows in all.
inline int64_t ce_positions(const Tensor& x) { return x.dim() == 3 ? x.size(2) : 1; }
inline int64_t ce_rows_of(const Tensor& x) { return x.size(0) * ce_positions(x); }

// An empty tensor shaped like the rows of x: (rows) or (batch, positions).
inline Tensor new_row_tensor(const Tensor& x, std::optional<ScalarType> dtype = std::nullopt) {
  return x.dim() == 3 ? new_empty(x, {x.size(0), x.size(2)}, dtype) : new_empty(x, {x.size(0)}, dtype);
}

// Whether t has the shape of the rows of x.
inline bool is_row_shaped(const Tensor& t, const Tensor& x) {
  return x.dim() == 3 ? t.dim() == 2 && t.size(0) == x.size(0) && t.size(1) == x.size(2)
                      : t.dim() == 1 && t.size(0) == x.size(0);
}

inline Reduction to_reduction(int64_t r, const char* op) {
  if (r < 0 || r > 2) throw std::invalid_argument(cat(op, ": unknown reduction ", r, " (0: none, 1: mean, 2: sum)"));
  return static_cast<Reduction>(r);
}

// Everything one cross entropy call passes to a device; tensors are contiguous, optional ones
// are null when absent.
struct CrossEntropyCall {
  const Tensor* logits;
  const Tensor* target;  // int64 class indices (one per row), or probabilities shaped like the logits
  const Tensor* weight;  // (classes) or null
  bool soft;
  Reduction reduction;
  int64_t ignore_index;
  double smoothing;
  // forward: loss (one per row for none, else ()), lse (one per row), total_weight ()
  const Tensor* loss;
  const Tensor* lse;
  const Tensor* total_weight;
  // backward: grad_output (shaped like loss), grad_input (shaped like the logits)
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
    DLK_CHECK(x.dim() == 2 || x.dim() == 3, op,
              ": expected logits of shape (rows, classes) or (batch, classes, positions), but got ", x.sizes());
    const bool soft = target.scalar_type() != ScalarType::Long;
    check_same_device(op, x, "self", target, "target");
    if (soft) {
      check_like(x, "self", target, "target", op);
    } else {
      DLK_CHECK(is_row_shaped(target, x), op, ": expected int64 targets of shape ",
                x.dim() == 3 ? cat("[", x.size(0), ", ", x.size(2), "]") : cat("[", x.size(0), "]"), ", but got ",
                target.sizes());
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
    const ScalarType stat = Backend::stat_dtype(x.scalar_type());
    Tensor loss = red == Reduction::none ? new_row_tensor(x) : new_empty(x, {});
    Tensor lse = new_row_tensor(x, stat);
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
    const ScalarType stat = Backend::stat_dtype(x.scalar_type());
    check_same_device(op, x, "self", g, "grad_output");
    DLK_CHECK(g.scalar_type() == x.scalar_type(), op, ": expected grad_output of dtype ", dtype_name(x.scalar_type()));
    DLK_CHECK(red == Reduction::none ? is_row_shaped(g, x) : g.dim() == 0, op, ": grad_output of shape ", g.sizes(),
              " does not match the loss");
    DLK_CHECK(lse.scalar_type() == stat && is_row_shaped(lse, x) && same_device(lse, x), op,
              ": lse must be the forward's (one value per row, of dtype ", dtype_name(stat), ")");
    DLK_CHECK(total_weight.scalar_type() == stat && total_weight.dim() == 0 && same_device(total_weight, x), op,
              ": total_weight must be the forward's (0-dim, dtype ", dtype_name(stat), ")");
    Tensor dx = dlk::new_empty(x, x.sizes());
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
