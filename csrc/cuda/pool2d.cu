// Pooling on CUDA, forward and backward.
//
// Work split: a grid-stride loop over work items, 64-bit indices throughout. NCHW: one item per
// output element (forward) or input element (backward), consecutive threads on consecutive
// columns. channels_last: one item per pixel and group of V channels, consecutive threads on
// consecutive groups; V fills 16 bytes when C allows it and the pointers are aligned, else 1.
// Window rules are the shared ones of common/pool2d.h (torch's): max skips padding taps, a larger
// value or a NaN replaces the running maximum, ties keep the first tap.
//
// The backward passes are gathers: each input element sums, in a fixed order (output rows, then
// columns, ascending: the CPU kernels' order), the windows that contain it. No atomics, so results
// are deterministic and, in float32 / float64, the CPU's bits. Sums run in float for half types and
// in the element type otherwise.
#include <initializer_list>
#include <limits>

#include "cuda/launch.cuh"
#include "cuda/pool2d.h"

namespace dlk::cuda {
namespace {

constexpr int kThreads = 256;

// Where work item i sits: (r, q) in the iterated rows x cols grid, `self` its offset in the
// iterated tensor, `other` the offset of its plane (NCHW) or image + channel (channels_last) in the
// tensor it reads, whose planes hold `other_plane` pixels; `cs` the pixel stride there.
struct Site {
  int64_t r, q, self, other, cs;
};

template <bool CL, int V>
__device__ __forceinline__ Site site(int64_t i, int64_t C, int64_t rows, int64_t cols, int64_t other_plane) {
  if constexpr (CL) {
    const int64_t groups = C / V;
    const int64_t c = (i % groups) * V, pix = i / groups;
    const int64_t q = pix % cols, t = pix / cols;
    return {t % rows, q, pix * C + c, t / rows * other_plane * C + c, C};
  } else {
    const int64_t q = i % cols, t = i / cols;
    return {t % rows, q, i, t / rows * other_plane, 1};
  }
}

template <class T, int V>
__device__ __forceinline__ Pack<T, V> load(const T* p) {
  return *reinterpret_cast<const Pack<T, V>*>(p);
}
template <class T, int V>
__device__ __forceinline__ void store(T* p, const Pack<T, V>& v) {
  *reinterpret_cast<Pack<T, V>*>(p) = v;
}

template <class T, int V, bool CL>
__global__ void __launch_bounds__(kThreads)
    max_forward_kernel(const T* x, T* y, int64_t* indices, Pool2dGeometry g, int64_t items) {
  using M = opmath_t<T>;
  const M ninf = -std::numeric_limits<M>::infinity();
  for (int64_t i = first_item(); i < items; i += item_stride()) {
    const Site s = site<CL, V>(i, g.C, g.OH, g.OW, g.H * g.W);
    const TapRange rh = max_taps(g.h, s.r), rw = max_taps(g.w, s.q);
    M best[V];
    Pack<T, V> out;
    int64_t at[V];
#pragma unroll
    for (int k = 0; k < V; ++k) best[k] = ninf, out.v[k] = from_opmath<T>(ninf), at[k] = rh.begin * g.W + rw.begin;
    for (int64_t ih = rh.begin; ih < rh.end; ih += g.h.d) {
      for (int64_t iw = rw.begin; iw < rw.end; iw += g.w.d) {
        const int64_t pix = ih * g.W + iw;
        const Pack<T, V> v = load<T, V>(x + s.other + pix * s.cs);
#pragma unroll
        for (int k = 0; k < V; ++k) {
          const M m = to_opmath(v.v[k]);
          if (m > best[k] || m != m) best[k] = m, out.v[k] = v.v[k], at[k] = pix;
        }
      }
    }
    store<T, V>(y + s.self, out);
    if (indices != nullptr) {
#pragma unroll
      for (int k = 0; k < V; ++k) indices[s.self + k] = at[k];
    }
  }
}

// One item per input element: the windows whose span holds it add their gradient where their
// index names it.
template <class T, int V, bool CL>
__global__ void __launch_bounds__(kThreads)
    max_backward_kernel(const T* dy, const int64_t* indices, T* dx, Pool2dGeometry g, int64_t items) {
  using M = opmath_t<T>;
  for (int64_t i = first_item(); i < items; i += item_stride()) {
    const Site s = site<CL, V>(i, g.C, g.H, g.W, g.OH * g.OW);
    const int64_t cell = s.r * g.W + s.q;
    M acc[V];
#pragma unroll
    for (int k = 0; k < V; ++k) acc[k] = M(0);
    const int64_t oh1 = g.h.end_window(s.r), ow0 = g.w.first_window(s.q, g.w.span()), ow1 = g.w.end_window(s.q);
    for (int64_t oh = g.h.first_window(s.r, g.h.span()); oh < oh1; ++oh) {
      for (int64_t ow = ow0; ow < ow1; ++ow) {
        const int64_t o = s.other + (oh * g.OW + ow) * s.cs;
        const Pack<T, V> d = load<T, V>(dy + o);
#pragma unroll
        for (int k = 0; k < V; ++k) {
          if (indices[o + k] == cell) acc[k] += to_opmath(d.v[k]);
        }
      }
    }
    Pack<T, V> out;
#pragma unroll
    for (int k = 0; k < V; ++k) out.v[k] = from_opmath<T>(acc[k]);
    store<T, V>(dx + s.self, out);
  }
}

template <class T, bool CL>
__global__ void __launch_bounds__(kThreads) gather_kernel(const T* x, const int64_t* indices, T* out, int64_t C,
                                                          int64_t plane, int64_t opix, int64_t items, int* flag) {
  for (int64_t i = first_item(); i < items; i += item_stride()) {
    const int64_t j = indices[i];
    if (j < 0 || j >= plane) {
      out[i] = from_opmath<T>(opmath_t<T>(0));
      *flag = 1;  // every writer stores the same value
      continue;
    }
    out[i] = x[CL ? (i / (opix * C) * plane + j) * C + i % C : i / opix * plane + j];
  }
}

template <class T, int V, bool CL>
__global__ void __launch_bounds__(kThreads) avg_forward_kernel(const T* x, T* y, Pool2dGeometry g, int64_t items) {
  using M = opmath_t<T>;
  for (int64_t i = first_item(); i < items; i += item_stride()) {
    const Site s = site<CL, V>(i, g.C, g.OH, g.OW, g.H * g.W);
    const AvgRange rh = avg_range(g.h, s.r), rw = avg_range(g.w, s.q);
    M acc[V];
#pragma unroll
    for (int k = 0; k < V; ++k) acc[k] = M(0);
    for (int64_t ih = rh.begin; ih < rh.end; ++ih) {
      for (int64_t iw = rw.begin; iw < rw.end; ++iw) {
        const Pack<T, V> v = load<T, V>(x + s.other + (ih * g.W + iw) * s.cs);
#pragma unroll
        for (int k = 0; k < V; ++k) acc[k] += to_opmath(v.v[k]);
      }
    }
    const M div = static_cast<M>(avg_divisor(g, rh, rw));
    Pack<T, V> out;
#pragma unroll
    for (int k = 0; k < V; ++k) out.v[k] = from_opmath<T>(acc[k] / div);
    store<T, V>(y + s.self, out);
  }
}

template <class T, int V, bool CL>
__global__ void __launch_bounds__(kThreads) avg_backward_kernel(const T* dy, T* dx, Pool2dGeometry g, int64_t items) {
  using M = opmath_t<T>;
  for (int64_t i = first_item(); i < items; i += item_stride()) {
    const Site s = site<CL, V>(i, g.C, g.H, g.W, g.OH * g.OW);
    M acc[V];
#pragma unroll
    for (int k = 0; k < V; ++k) acc[k] = M(0);
    const int64_t oh1 = g.h.end_window(s.r), ow0 = g.w.first_window(s.q, g.w.k), ow1 = g.w.end_window(s.q);
    for (int64_t oh = g.h.first_window(s.r, g.h.k); oh < oh1; ++oh) {
      const AvgRange rh = avg_range(g.h, oh);
      for (int64_t ow = ow0; ow < ow1; ++ow) {
        const M div = static_cast<M>(avg_divisor(g, rh, avg_range(g.w, ow)));
        const Pack<T, V> d = load<T, V>(dy + s.other + (oh * g.OW + ow) * s.cs);
#pragma unroll
        for (int k = 0; k < V; ++k) acc[k] += to_opmath(d.v[k]) / div;
      }
    }
    Pack<T, V> out;
#pragma unroll
    for (int k = 0; k < V; ++k) out.v[k] = from_opmath<T>(acc[k]);
    store<T, V>(dx + s.self, out);
  }
}

template <class T, int V, bool CL>
__global__ void __launch_bounds__(kThreads) adaptive_forward_kernel(const T* x, T* y, Pool2dGeometry g, int64_t items) {
  using M = opmath_t<T>;
  const AdaptiveAxis ah{g.H, g.OH}, aw{g.W, g.OW};
  for (int64_t i = first_item(); i < items; i += item_stride()) {
    const Site s = site<CL, V>(i, g.C, g.OH, g.OW, g.H * g.W);
    const int64_t h0 = ah.start(s.r), h1 = ah.end(s.r), w0 = aw.start(s.q), w1 = aw.end(s.q);
    M acc[V];
#pragma unroll
    for (int k = 0; k < V; ++k) acc[k] = M(0);
    for (int64_t ih = h0; ih < h1; ++ih) {
      for (int64_t iw = w0; iw < w1; ++iw) {
        const Pack<T, V> v = load<T, V>(x + s.other + (ih * g.W + iw) * s.cs);
#pragma unroll
        for (int k = 0; k < V; ++k) acc[k] += to_opmath(v.v[k]);
      }
    }
    const M kh = static_cast<M>(h1 - h0), kw = static_cast<M>(w1 - w0);
    Pack<T, V> out;
#pragma unroll
    for (int k = 0; k < V; ++k) out.v[k] = from_opmath<T>(acc[k] / kh / kw);
    store<T, V>(y + s.self, out);
  }
}

template <class T, int V, bool CL>
__global__ void __launch_bounds__(kThreads)
    adaptive_backward_kernel(const T* dy, T* dx, Pool2dGeometry g, int64_t items) {
  using M = opmath_t<T>;
  const AdaptiveAxis ah{g.H, g.OH}, aw{g.W, g.OW};
  for (int64_t i = first_item(); i < items; i += item_stride()) {
    const Site s = site<CL, V>(i, g.C, g.H, g.W, g.OH * g.OW);
    M acc[V];
#pragma unroll
    for (int k = 0; k < V; ++k) acc[k] = M(0);
    const int64_t oh1 = ah.end_window(s.r), ow0 = aw.first_window(s.q), ow1 = aw.end_window(s.q);
    for (int64_t oh = ah.first_window(s.r); oh < oh1; ++oh) {
      const M kh = static_cast<M>(ah.end(oh) - ah.start(oh));
      for (int64_t ow = ow0; ow < ow1; ++ow) {
        const M kw = static_cast<M>(aw.end(ow) - aw.start(ow));
        const Pack<T, V> d = load<T, V>(dy + s.other + (oh * g.OW + ow) * s.cs);
#pragma unroll
        for (int k = 0; k < V; ++k) acc[k] += to_opmath(d.v[k]) / kh / kw;
      }
    }
    Pack<T, V> out;
#pragma unroll
    for (int k = 0; k < V; ++k) out.v[k] = from_opmath<T>(acc[k]);
    store<T, V>(dx + s.self, out);
  }
}

// Calls f.template operator()<V, CL>() for the layout: NCHW one element per item, channels_last
// 16 bytes of channels when C and every pointer allow it, else one channel.
template <class T, class F>
cudaError_t by_layout(bool cl, int64_t C, std::initializer_list<const void*> ptrs, F f) {
  constexpr int N = 16 / sizeof(T);
  if (!cl) return f.template operator()<1, false>();
  bool vec = C % N == 0;
  for (const void* p : ptrs) vec = vec && aligned16(p);
  if (vec) return f.template operator()<N, true>();
  return f.template operator()<1, true>();
}

// Items over a rows x cols grid per plane for layout (V, CL).
template <int V, bool CL>
int64_t items(const Pool2dGeometry& g, int64_t rows, int64_t cols) {
  return g.N * rows * cols * (CL ? g.C / V : g.C);
}

template <class K, class... A>
cudaError_t run(K kernel, int64_t n, cudaStream_t stream, A... args) {
  if (n <= 0) return cudaSuccess;
  return launch(kernel, grid_for(n, kThreads), kThreads, 0, stream, args..., n);
}

}  // namespace

cudaError_t max_pool2d_forward(DType dtype, const void* x, void* y, int64_t* indices, const Pool2dGeometry& g, bool cl,
                               cudaStream_t stream) {
  return by_dtype(dtype, [&]<class T>() {
    return by_layout<T>(cl, g.C, {x, y}, [&]<int V, bool CL>() {
      return run(max_forward_kernel<T, V, CL>, items<V, CL>(g, g.OH, g.OW), stream, static_cast<const T*>(x),
                 static_cast<T*>(y), indices, g);
    });
  });
}

cudaError_t max_pool2d_backward(DType dtype, const void* dy, const int64_t* indices, void* dx, const Pool2dGeometry& g,
                                bool cl, cudaStream_t stream) {
  return by_dtype(dtype, [&]<class T>() {
    return by_layout<T>(cl, g.C, {dy, dx}, [&]<int V, bool CL>() {
      return run(max_backward_kernel<T, V, CL>, items<V, CL>(g, g.H, g.W), stream, static_cast<const T*>(dy), indices,
                 static_cast<T*>(dx), g);
    });
  });
}

cudaError_t max_pool2d_gather(DType dtype, const void* x, const int64_t* indices, void* out, int64_t N, int64_t C,
                              int64_t plane, int64_t opix, bool cl, int* flag, bool* out_of_bounds,
                              cudaStream_t stream) {
  *out_of_bounds = false;
  const int64_t n = N * C * opix;
  if (n <= 0) return cudaSuccess;
  const cudaError_t err = by_dtype(dtype, [&]<class T>() {
    const auto* xt = static_cast<const T*>(x);
    auto* ot = static_cast<T*>(out);
    return cl ? launch(gather_kernel<T, true>, grid_for(n, kThreads), kThreads, 0, stream, xt, indices, ot, C, plane,
                       opix, n, flag)
              : launch(gather_kernel<T, false>, grid_for(n, kThreads), kThreads, 0, stream, xt, indices, ot, C, plane,
                       opix, n, flag);
  });
  if (err != cudaSuccess) return err;
  // The op raises for a bad index, as the CPU's does: that needs the flag on the host now.
  int bad = 0;
  const cudaError_t copy = cudaMemcpyAsync(&bad, flag, sizeof(int), cudaMemcpyDeviceToHost, stream);
  if (copy != cudaSuccess) return copy;
  const cudaError_t sync = cudaStreamSynchronize(stream);
  *out_of_bounds = bad != 0;
  return sync;
}

cudaError_t avg_pool2d_forward(DType dtype, const void* x, void* y, const Pool2dGeometry& g, bool cl,
                               cudaStream_t stream) {
  return by_dtype(dtype, [&]<class T>() {
    return by_layout<T>(cl, g.C, {x, y}, [&]<int V, bool CL>() {
      return run(avg_forward_kernel<T, V, CL>, items<V, CL>(g, g.OH, g.OW), stream, static_cast<const T*>(x),
                 static_cast<T*>(y), g);
    });
  });
}

cudaError_t avg_pool2d_backward(DType dtype, const void* dy, void* dx, const Pool2dGeometry& g, bool cl,
                                cudaStream_t stream) {
  return by_dtype(dtype, [&]<class T>() {
    return by_layout<T>(cl, g.C, {dy, dx}, [&]<int V, bool CL>() {
      return run(avg_backward_kernel<T, V, CL>, items<V, CL>(g, g.H, g.W), stream, static_cast<const T*>(dy),
                 static_cast<T*>(dx), g);
    });
  });
}

cudaError_t adaptive_avg_pool2d_forward(DType dtype, const void* x, void* y, const Pool2dGeometry& g, bool cl,
                                        cudaStream_t stream) {
  return by_dtype(dtype, [&]<class T>() {
    return by_layout<T>(cl, g.C, {x, y}, [&]<int V, bool CL>() {
      return run(adaptive_forward_kernel<T, V, CL>, items<V, CL>(g, g.OH, g.OW), stream, static_cast<const T*>(x),
                 static_cast<T*>(y), g);
    });
  });
}

cudaError_t adaptive_avg_pool2d_backward(DType dtype, const void* dy, void* dx, const Pool2dGeometry& g, bool cl,
                                         cudaStream_t stream) {
  return by_dtype(dtype, [&]<class T>() {
    return by_layout<T>(cl, g.C, {dy, dx}, [&]<int V, bool CL>() {
      return run(adaptive_backward_kernel<T, V, CL>, items<V, CL>(g, g.H, g.W), stream, static_cast<const T*>(dy),
                 static_cast<T*>(dx), g);
    });
  });
}

}  // namespace dlk::cuda
