// Schemas of the loss family. `reduction` is torch's code (0 none, 1 mean, 2 sum).
// cross_entropy_forward takes (rows, classes) or (batch, classes, positions) logits with int64
// class targets (rows) or (batch, positions), or probabilities shaped like the logits, and returns
// the loss, each row's log-sum-exp (shaped like the class targets) and the mean's divisor (the
// summed weight of the counted targets); backward recomputes the softmax from the logits and
// those two, so no log-probabilities are kept between the passes.
#include <torch/csrc/stable/library.h>

#include "schema/namespace.h"

STABLE_TORCH_LIBRARY_FRAGMENT(DLK_NAMESPACE, m) {
  m.def("mse_loss(Tensor self, Tensor target, int reduction) -> Tensor");
  m.def("mse_loss_backward(Tensor grad_output, Tensor self, Tensor target, int reduction) -> Tensor");
  m.def(
      "cross_entropy_forward(Tensor self, Tensor target, Tensor? weight, int reduction, int ignore_index, "
      "float label_smoothing) -> (Tensor loss, Tensor lse, Tensor total_weight)");
  m.def(
      "cross_entropy_backward(Tensor grad_output, Tensor self, Tensor target, Tensor? weight, Tensor lse, "
      "Tensor total_weight, int reduction, int ignore_index, float label_smoothing) -> Tensor");
}
