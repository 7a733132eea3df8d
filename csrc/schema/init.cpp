// Schemas of the init family: in-place fills that declare the write and return nothing (see
// schema/activation.cpp for why). Random ops take a seed and an offset drawn from torch's
// generator by dlkernels/init.py; the numbers themselves come from common/philox.h.
#include "schema/namespace.h"

STABLE_TORCH_LIBRARY_FRAGMENT(DLK_NAMESPACE, m) {
  m.def("init_fill_(Tensor(a!) self, float value) -> ()");
  m.def("init_uniform_(Tensor(a!) self, float low, float high, int seed, int offset) -> ()");
  m.def("init_normal_(Tensor(a!) self, float mean, float std, int seed, int offset) -> ()");
  m.def("init_trunc_normal_(Tensor(a!) self, float mean, float std, float a, float b, int seed, int offset) -> ()");
}
