// Pooling on the CPU: checks (host/pool2d.h), the ISA read once, dtype dispatch, then the kernels
// of cpu/kernels/pool2d.h split across threads by rows (or channels-last pixels).

#include <atomic>
#include <tuple>

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
  check_dtype(self, op, kDtypes);
  const Pool2dGeometry g = pool2d_geometry(op, self.sizes(), kernel, stride, padding, dilation, ceil_mode);
  const bool cl = is_channels_last(self);
  const Tensor x = as_pool_layout(self, cl);
  Tensor y = new_pool_output(self, g.N, g.C, g.OH, g.OW, cl);
  Tensor idx = want_indices ? new_pool_output(self, g.N, g.C, g.OH, g.OW, cl, ScalarType::Long) : new_empty(self, {0});
  const Isa isa = active_isa();
  dispatch_float(self.scalar_type(), op, [&](auto tag) {
    using T = decltype(tag);
    const auto& table = pool2d_table<T>(isa);
    const auto fn = cl ? table.max_nhwc : table.max_nchw;
    const T* px = x.const_data_ptr<T>();
    T* py = y.mutable_data_ptr<T>();
    int64_t* pi = want_indices ? idx.mutable_data_ptr<int64_t>() : nullptr;
    int64_t items, work;
    forward_items(g, cl, g.h.k * g.w.k, items, work);
    parallel_items(items, work, [&](int64_t b, int64_t e) { fn(px, py, pi, g, b, e); });
  });
  return {y, idx};
}

Tensor max_pool2d_cpu(Tensor self, IntList kernel, IntList stride, IntList padding, IntList dilation, bool ceil_mode) {
  return std::get<0>(max_forward("max_pool2d", self, kernel, stride, padding, dilation, ceil_mode, false));
}

std::tuple<Tensor, Tensor> max_pool2d_with_indices_cpu(Tensor self, IntList kernel, IntList stride, IntList padding,
                                                       IntList dilation, bool ceil_mode) {
  return max_forward("max_pool2d_with_indices", self, kernel, stride, padding, dilation, ceil_mode, true);
}

Tensor max_pool2d_backward_cpu(Tensor grad_output, Tensor indices, IntList input_size, IntList kernel, IntList stride,
                               IntList padding, IntList dilation, bool ceil_mode) {
  const char* op = "max_pool2d_backward";
  check_dtype(grad_output, op, kDtypes);
  check_indices(op, grad_output, indices);
  const Pool2dGeometry g = pool2d_geometry(op, input_size, kernel, stride, padding, dilation, ceil_mode);
  check_pool_grad_output(op, grad_output, g);
  const bool cl = is_channels_last(grad_output);
  const Tensor dy = as_pool_layout(grad_output, cl), ix = as_pool_layout(indices, cl);
  Tensor dx = new_pool_output(grad_output, g.N, g.C, g.H, g.W, cl);
  const Isa isa = active_isa();
  dispatch_float(grad_output.scalar_type(), op, [&](auto tag) {
    using T = decltype(tag);
    const auto& table = pool2d_table<T>(isa);
    const auto fn = cl ? table.max_backward_nhwc : table.max_backward_nchw;
    const T* pdy = dy.const_data_ptr<T>();
    const int64_t* pi = ix.const_data_ptr<int64_t>();
    T* pdx = dx.mutable_data_ptr<T>();
    const int64_t rows = (cl ? g.N : g.planes()) * g.H;
    const int64_t work = (cl ? g.C : 1) * (g.W + g.OW * (g.h.span() / g.h.s + 1));
    parallel_items(rows, work, [&](int64_t b, int64_t e) { fn(pdy, pi, pdx, g, b, e); });
  });
  return dx;
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
Tensor avg_like_forward(const char* op, const Tensor& self, const Pool2dGeometry& g, Fwd pick) {
  const bool cl = is_channels_last(self);
  const Tensor x = as_pool_layout(self, cl);
  Tensor y = new_pool_output(self, g.N, g.C, g.OH, g.OW, cl);
  const Isa isa = active_isa();
  dispatch_float(self.scalar_type(), op, [&](auto tag) {
    using T = decltype(tag);
    Pool2dGeometry gg = g;
    const auto fn = pick(pool2d_table<T>(isa), cl, gg);
    const T* px = x.const_data_ptr<T>();
    T* py = y.mutable_data_ptr<T>();
    int64_t items, work;
    forward_items(gg, cl, (g.H / (g.OH > 0 ? g.OH : 1) + 1) * (g.W / (g.OW > 0 ? g.OW : 1) + 1), items, work);
    parallel_items(items, work, [&](int64_t b, int64_t e) { fn(px, py, gg, b, e); });
  });
  return y;
}

Tensor avg_pool2d_cpu(Tensor self, IntList kernel, IntList stride, IntList padding, bool ceil_mode,
                      bool count_include_pad, std::optional<int64_t> divisor_override) {
  const char* op = "avg_pool2d";
  check_dtype(self, op, kDtypes);
  const Pool2dGeometry g =
      avg_pool2d_geometry(op, self.sizes(), kernel, stride, padding, ceil_mode, count_include_pad, divisor_override);
  return avg_like_forward(op, self, g,
                          [](const auto& t, bool cl, Pool2dGeometry&) { return cl ? t.avg_nhwc : t.avg_nchw; });
}

Tensor adaptive_avg_pool2d_cpu(Tensor self, IntList output_size) {
  const char* op = "adaptive_avg_pool2d";
  check_dtype(self, op, kDtypes);
  const Pool2dGeometry g = adaptive_pool2d_geometry(op, self.sizes(), output_size);
  return avg_like_forward(op, self, g, [](const auto& t, bool cl, Pool2dGeometry& gg) {
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
Tensor avg_like_backward(const char* op, const Tensor& grad_output, const Pool2dGeometry& g, Bwd pick) {
  check_pool_grad_output(op, grad_output, g);
  const bool cl = is_channels_last(grad_output);
  const Tensor dy = as_pool_layout(grad_output, cl);
  Tensor dx = new_pool_output(grad_output, g.N, g.C, g.H, g.W, cl);
  const Isa isa = active_isa();
  dispatch_float(grad_output.scalar_type(), op, [&](auto tag) {
    using T = decltype(tag);
    const auto fn = pick(pool2d_table<T>(isa), cl);
    const T* pdy = dy.const_data_ptr<T>();
    T* pdx = dx.mutable_data_ptr<T>();
    const int64_t rows = (cl ? g.N : g.planes()) * g.H;
    parallel_items(rows, (cl ? g.C : 1) * (g.W + 2 * g.OW), [&](int64_t b, int64_t e) { fn(pdy, pdx, g, b, e); });
  });
  return dx;
}

Tensor avg_pool2d_backward_cpu(Tensor grad_output, IntList input_size, IntList kernel, IntList stride, IntList padding,
                               bool ceil_mode, bool count_include_pad, std::optional<int64_t> divisor_override) {
  const char* op = "avg_pool2d_backward";
  check_dtype(grad_output, op, kDtypes);
  const Pool2dGeometry g =
      avg_pool2d_geometry(op, input_size, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override);
  return avg_like_backward(op, grad_output, g,
                           [](const auto& t, bool cl) { return cl ? t.avg_backward_nhwc : t.avg_backward_nchw; });
}

Tensor adaptive_avg_pool2d_backward_cpu(Tensor grad_output, IntList input_size) {
  const char* op = "adaptive_avg_pool2d_backward";
  check_dtype(grad_output, op, kDtypes);
  DLK_CHECK(grad_output.dim() == 4, op, ": expected a 4-D grad_output, but got size ", grad_output.sizes());
  const Pool2dGeometry g = adaptive_pool2d_geometry(op, input_size, IntList(grad_output.sizes().data() + 2, 2));
  return avg_like_backward(op, grad_output, g, [](const auto& t, bool cl) {
    return cl ? t.adaptive_backward_nhwc : t.adaptive_backward_nchw;
  });
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
