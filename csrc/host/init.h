// The init ops above the kernels, shared by CPU and CUDA. `Backend` supplies the device's dtype
// list and two kernels over a contiguous tensor:
//   static constexpr std::initializer_list<ScalarType> dtypes;
//   static void fill(const Tensor& x, double value);
//   static void random(const Tensor& x, const InitParams& p);
// Element i of the logical (row-major) order gets draw i, so a strided tensor holds the same values
// as a contiguous one: it is filled through a contiguous temporary.
#pragma once

#include <cmath>

#include "common/philox.h"
#include "host/tensor.h"

namespace dlk {

template <class Backend>
struct InitOps {
  template <class Run>
  static void inplace(const char* op, Tensor& x, Run&& run) {
    check_dtype(x, op, Backend::dtypes);
    DLK_CHECK(!has_internal_overlap(x),
              "unsupported operation: more than one element of the written-to tensor refers to a single memory "
              "location. Please clone() the tensor before performing the operation.");
    if (x.numel() == 0) return;
    if (x.is_contiguous()) return run(x);
    Tensor tmp = dlk::new_empty(x, x.sizes());
    run(tmp);
    torch::stable::copy_(x, tmp);
  }

  static void random(const char* op, Tensor& x, const InitParams& p) {
    inplace(op, x, [&](const Tensor& t) { Backend::random(t, p); });
  }

  static void fill_(Tensor x, double value) {
    inplace("init_fill_", x, [&](const Tensor& t) { Backend::fill(t, value); });
  }
  static void uniform_(Tensor x, double low, double high, int64_t seed, int64_t offset) {
    DLK_CHECK(low <= high, "uniform_ expects to return a [from, to) range, but found from=", low, " > to=", high);
    random("init_uniform_", x, make_init_params(InitKind::uniform, low, high, 0, 0, seed, offset));
  }
  static void normal_(Tensor x, double mean, double std, int64_t seed, int64_t offset) {
    DLK_CHECK(std >= 0.0, "normal expects std >= 0.0, but found std ", std);
    random("init_normal_", x, make_init_params(InitKind::normal, mean, std, 0, 0, seed, offset));
  }
  static void trunc_normal_(Tensor x, double mean, double std, double a, double b, int64_t seed, int64_t offset) {
    DLK_CHECK(a <= b, "trunc_normal_: expected a <= b, but found a=", a, " > b=", b);
    DLK_CHECK(std > 0.0 && std::isfinite(std), "trunc_normal_: expected a finite std > 0, but found std ", std);
    random("init_trunc_normal_", x, make_init_params(InitKind::trunc_normal, mean, std, a, b, seed, offset));
  }

  static void register_all(torch::stable::detail::StableLibrary& m) {
    m.impl("init_fill_", TORCH_BOX(&fill_));
    m.impl("init_uniform_", TORCH_BOX(&uniform_));
    m.impl("init_normal_", TORCH_BOX(&normal_));
    m.impl("init_trunc_normal_", TORCH_BOX(&trunc_normal_));
  }
};

}  // namespace dlk
