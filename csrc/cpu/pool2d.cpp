// Pooling on the CPU: checks (host/pool2d.h), the ISA read once, dtype dispatch, then the kernels
// of cpu/kernels/pool2d.h split across threads by rows (or channels-last pixels).

#include <algorithm>
#include <atomic>
#include <tuple>

#include "cpu/conv2d_table.h"
#include "cpu/pool2d_table.h"
#include "host/pool2d.h"

namespace dlk::cpu {
namespace {

constexpr std::initializer_list<ScalarType> kDtypes = {ScalarType::Float, ScalarType::Double};

// Work items per task, for items of `work` elements each: a task should touch ~16K elements.
int64_t grain(int64_t work) { return work >= 16384 ? 1 : 16384 / (work > 0 ? work : 1); }

template <class F>
void parallel_items(int64_t items, int64_t work, F&& f) {
  if (items > 0) torch::stable::parallel_for(0, items, grain(work), f);
}

// Work items of a forward pass over the output, and the elements each touches.
void forward_items(const Pool2dGeometry& g, bool cl, int64_t taps, int64_t& items, int64_t& work) {
  items = cl ? g.N * g.OH * g.OW : g.planes() * g.OH;
  work = (cl ? g.C : g.OW) * (taps > 0 ? taps : 1);
}

std::tuple<Tensor, Tensor> max_forward(const char* op, const Tensor& self, IntList kernel, IntList stride,
                                       IntList padding, IntList dilation, bool ceil_mode, bool want_indices) {
  const PoolCall c = max_pool2d_call(op, self, kernel, stride, padding, dilation, ceil_mode, want_indices, kDtypes);
  const Pool2dGeometry& g = c.g;
  const Isa isa = active_isa();
  dispatch_float(self.scalar_type(), op, [&](auto tag) {
    using T = decltype(tag);
    const auto& table = pool2d_table<T>(isa);
    const auto fn = c.cl ? table.max_nhwc : table.max_nchw;
    const T* px = c.in.const_data_ptr<T>();
    T* py = c.out.mutable_data_ptr<T>();
    int64_t* pi = want_indices ? c.indices.mutable_data_ptr<int64_t>() : nullptr;
    int64_t items, work;
    forward_items(g, c.cl, g.h.k * g.w.k, items, work);
    parallel_items(items, work, [&](int64_t b, int64_t e) { fn(px, py, pi, g, b, e); });
  });
  return {c.out, c.indices};
}

Tensor max_pool2d_cpu(Tensor self, IntList kernel, IntList stride, IntList padding, IntList dilation, bool ceil_mode) {
  return std::get<0>(max_forward("max_pool2d", self, kernel, stride, padding, dilation, ceil_mode, false));
}

std::tuple<Tensor, Tensor> max_pool2d_with_indices_cpu(Tensor self, IntList kernel, IntList stride, IntList padding,
                                                       IntList dilation, bool ceil_mode) {
  return max_forward("max_pool2d_with_indices", self, kernel, stride, padding, dilation, ceil_mode, true);
}

// Max-pool gradient when no two windows share an input cell (stride >= span on both axes, as in
// 2 x 2 / 2): each plane's cells receive at most one output's gradient, so a serial pass over the
// plane's outputs writing at their indices is race-free and deterministic, and reads each output
// once instead of scanning the candidate windows of every input row (seed 64x16x26x26: the
// backward went from 4x torch's time to below it). Indices outside the plane are skipped, as no
// window holds them.
template <class T>
void max_backward_disjoint(const T* dy, const int64_t* idx, T* dx, const Pool2dGeometry& g) {
  const int64_t hw = g.H * g.W, ohw = g.OH * g.OW;
  parallel_items(g.planes(), hw + ohw, [&](int64_t b, int64_t e) {
    for (int64_t plane = b; plane < e; ++plane) {
      T* out = dx + plane * hw;
      std::fill(out, out + hw, T(0));
      const T* g_in = dy + plane * ohw;
      const int64_t* ix = idx + plane * ohw;
      for (int64_t o = 0; o < ohw; ++o) {
        const int64_t j = ix[o];
        if (j >= 0 && j < hw) out[j] += g_in[o];
      }
    }
  });
}

bool windows_disjoint(const Pool2dGeometry& g) { return g.h.s >= g.h.span() && g.w.s >= g.w.span(); }

Tensor max_pool2d_backward_cpu(Tensor grad_output, Tensor indices, IntList input_size, IntList kernel, IntList stride,
                               IntList padding, IntList dilation, bool ceil_mode) {
  const char* op = "max_pool2d_backward";
  const PoolCall c = max_pool2d_backward_call(op, grad_output, indices, input_size, kernel, stride, padding, dilation,
                                              ceil_mode, kDtypes);
  const Pool2dGeometry& g = c.g;
  const Isa isa = active_isa();
  dispatch_float(grad_output.scalar_type(), op, [&](auto tag) {
    using T = decltype(tag);
    if (!c.cl && windows_disjoint(g)) {
      return max_backward_disjoint<T>(c.in.const_data_ptr<T>(), c.indices.const_data_ptr<int64_t>(),
                                      c.out.mutable_data_ptr<T>(), g);
    }
    const auto& table = pool2d_table<T>(isa);
    const auto fn = c.cl ? table.max_backward_nhwc : table.max_backward_nchw;
    const T* pdy = c.in.const_data_ptr<T>();
    const int64_t* pi = c.indices.const_data_ptr<int64_t>();
    T* pdx = c.out.mutable_data_ptr<T>();
    const int64_t rows = (c.cl ? g.N : g.planes()) * g.H;
    const int64_t work = (c.cl ? g.C : 1) * (g.W + g.OW * (g.h.span() / g.h.s + 1));
    parallel_items(rows, work, [&](int64_t b, int64_t e) { fn(pdy, pi, pdx, g, b, e); });
  });
  return c.out;
}

// out[n, c, o] = self[n, c, indices[n, c, o]] (indices flat in each H x W plane).
Tensor max_pool2d_gather_cpu(Tensor self, Tensor indices, IntList kernel, IntList stride, IntList padding,
                             IntList dilation, bool ceil_mode) {
  const char* op = "max_pool2d_gather";
  check_dtype(self, op, kDtypes);
  const Pool2dGeometry g = pool2d_geometry(op, self.sizes(), kernel, stride, padding, dilation, ceil_mode);
  check_same_device(op, self, "self", indices, "indices");
  DLK_CHECK(indices.scalar_type() == ScalarType::Long, op, ": expected indices of dtype Long, but got ",
            dtype_name(indices.scalar_type()));
  check_pool_grad_output(op, indices, g, "indices");
  const bool cl = is_channels_last(indices);
  const Tensor x = as_pool_layout(self, cl), ix = as_pool_layout(indices, cl);
  const int64_t N = self.size(0), C = self.size(1), plane = self.size(2) * self.size(3);
  const int64_t OH = indices.size(2), OW = indices.size(3), opix = OH * OW;
  Tensor out = new_pool_output(self, N, C, OH, OW, cl);
  dispatch_float(self.scalar_type(), op, [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.const_data_ptr<T>();
    const int64_t* pi = ix.const_data_ptr<int64_t>();
    T* po = out.mutable_data_ptr<T>();
    std::atomic<bool> bad{false};  // raised after the loop: no exception crosses parallel_for
    parallel_items(N * C * opix, 1024, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const int64_t j = pi[i];
        int64_t src;
        if (cl) {
          const int64_t n = i / (opix * C), c = i % C;
          src = (n * plane + j) * C + c;
        } else {
          src = i / opix * plane + j;
        }
        if (j < 0 || j >= plane) {
          bad = true;
          po[i] = T(0);
          continue;
        }
        po[i] = px[src];
      }
    });
    DLK_CHECK(!bad, op, ": an index is out of bounds for a plane of ", plane, " elements");
  });
  return out;
}

template <class Fwd>
Tensor avg_like_forward(const char* op, const PoolCall& c, Fwd pick) {
  const Pool2dGeometry& g = c.g;
  const Isa isa = active_isa();
  dispatch_float(c.in.scalar_type(), op, [&](auto tag) {
    using T = decltype(tag);
    Pool2dGeometry gg = g;
    const auto fn = pick(pool2d_table<T>(isa), c.cl, gg);
    const T* px = c.in.const_data_ptr<T>();
    T* py = c.out.mutable_data_ptr<T>();
    int64_t items, work;
    forward_items(gg, c.cl, (g.H / (g.OH > 0 ? g.OH : 1) + 1) * (g.W / (g.OW > 0 ? g.OW : 1) + 1), items, work);
    parallel_items(items, work, [&](int64_t b, int64_t e) { fn(px, py, gg, b, e); });
  });
  return c.out;
}

Tensor avg_pool2d_cpu(Tensor self, IntList kernel, IntList stride, IntList padding, bool ceil_mode,
                      bool count_include_pad, std::optional<int64_t> divisor_override) {
  const char* op = "avg_pool2d";
  const PoolCall c =
      avg_pool2d_call(op, self, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override, kDtypes);
  return avg_like_forward(op, c, [](const auto& t, bool cl, Pool2dGeometry&) { return cl ? t.avg_nhwc : t.avg_nchw; });
}

// Global average pooling (NCHW, output 1 x 1, a network's head): one vector sum per plane
// (the bias-gradient sum of cpu/kernels/conv2d.h) instead of the general window loop, which
// spends most of a 7 x 7 plane's time on window bounds (ResNet-50's head: 0.43x torch before).
template <class T>
void global_average(const Isa isa, const T* x, T* y, int64_t planes, int64_t hw) {
  const auto sum = conv2d_table<T>(isa).sum;
  parallel_items(planes, hw, [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) y[p] = sum(x + p * hw, hw) / static_cast<T>(hw);
  });
}

// Its gradient: every input element of a plane gets the plane's grad_output / (H W).
template <class T>
void global_average_backward(const T* dy, T* dx, int64_t planes, int64_t hw) {
  parallel_items(planes, hw, [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      const T v = dy[p] / static_cast<T>(hw);
      std::fill(dx + p * hw, dx + (p + 1) * hw, v);
    }
  });
}

bool is_global(const PoolCall& c) { return !c.cl && c.g.OH == 1 && c.g.OW == 1 && c.g.H * c.g.W > 1; }

Tensor adaptive_avg_pool2d_cpu(Tensor self, IntList output_size) {
  const char* op = "adaptive_avg_pool2d";
  const PoolCall c = adaptive_avg_pool2d_call(op, self, output_size, kDtypes);
  if (is_global(c)) {
    const Isa isa = active_isa();
    dispatch_float(self.scalar_type(), op, [&](auto tag) {
      using T = decltype(tag);
      global_average<T>(isa, c.in.const_data_ptr<T>(), c.out.mutable_data_ptr<T>(), c.g.planes(), c.g.H * c.g.W);
    });
    return c.out;
  }
  return avg_like_forward(op, c, [](const auto& t, bool cl, Pool2dGeometry& gg) {
    if (cl) return t.adaptive_nhwc;
    if (gg.OH > 0 && gg.OW > 0 && gg.H % gg.OH == 0 && gg.W % gg.OW == 0 && !(gg.OH == 1 && gg.OW == 1)) {
      // Equal windows: a strided average (vectorised over columns), dividing once by kh kw.
      const int64_t kh = gg.H / gg.OH, kw = gg.W / gg.OW;
      gg.h = {gg.H, gg.OH, kh, kh, 0, 1};
      gg.w = {gg.W, gg.OW, kw, kw, 0, 1};
      gg.count_include_pad = true;
      gg.divisor = 0;
      return t.avg_nchw;
    }
    return t.adaptive_nchw;
  });
}

template <class Bwd>
Tensor avg_like_backward(const char* op, const PoolCall& c, Bwd pick) {
  const Pool2dGeometry& g = c.g;
  const Isa isa = active_isa();
  dispatch_float(c.in.scalar_type(), op, [&](auto tag) {
    using T = decltype(tag);
    const auto fn = pick(pool2d_table<T>(isa), c.cl);
    const T* pdy = c.in.const_data_ptr<T>();
    T* pdx = c.out.mutable_data_ptr<T>();
    const int64_t rows = (c.cl ? g.N : g.planes()) * g.H;
    parallel_items(rows, (c.cl ? g.C : 1) * (g.W + 2 * g.OW), [&](int64_t b, int64_t e) { fn(pdy, pdx, g, b, e); });
  });
  return c.out;
}

Tensor avg_pool2d_backward_cpu(Tensor grad_output, IntList input_size, IntList kernel, IntList stride, IntList padding,
                               bool ceil_mode, bool count_include_pad, std::optional<int64_t> divisor_override) {
  const char* op = "avg_pool2d_backward";
  const PoolCall c = avg_pool2d_backward_call(op, grad_output, input_size, kernel, stride, padding, ceil_mode,
                                              count_include_pad, divisor_override, kDtypes);
  return avg_like_backward(op, c,
                           [](const auto& t, bool cl) { return cl ? t.avg_backward_nhwc : t.avg_backward_nchw; });
}

Tensor adaptive_avg_pool2d_backward_cpu(Tensor grad_output, IntList input_size) {
  const char* op = "adaptive_avg_pool2d_backward";
  const PoolCall c = adaptive_avg_pool2d_backward_call(op, grad_output, input_size, kDtypes);
  if (is_global(c)) {
    dispatch_float(grad_output.scalar_type(), op, [&](auto tag) {
      using T = decltype(tag);
      global_average_backward<T>(c.in.const_data_ptr<T>(), c.out.mutable_data_ptr<T>(), c.g.planes(), c.g.H * c.g.W);
    });
    return c.out;
  }
  return avg_like_backward(
      op, c, [](const auto& t, bool cl) { return cl ? t.adaptive_backward_nhwc : t.adaptive_backward_nchw; });
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(dlkernels, CPU, m) {
  m.impl("max_pool2d", TORCH_BOX(&max_pool2d_cpu));
  m.impl("max_pool2d_with_indices", TORCH_BOX(&max_pool2d_with_indices_cpu));
  m.impl("max_pool2d_backward", TORCH_BOX(&max_pool2d_backward_cpu));
  m.impl("max_pool2d_gather", TORCH_BOX(&max_pool2d_gather_cpu));
  m.impl("avg_pool2d", TORCH_BOX(&avg_pool2d_cpu));
  m.impl("avg_pool2d_backward", TORCH_BOX(&avg_pool2d_backward_cpu));
  m.impl("adaptive_avg_pool2d", TORCH_BOX(&adaptive_avg_pool2d_cpu));
  m.impl("adaptive_avg_pool2d_backward", TORCH_BOX(&adaptive_avg_pool2d_backward_cpu));
}

}  // namespace dlk::cpu
