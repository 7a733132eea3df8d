// Losses on CUDA: mse_loss and the fused cross entropy, forward and backward.
//
// Determinism: no float atomics. A sum over many elements is cut into fixed chunks (not a
// grid-stride split, whose shape would follow the GPU's SM count); each block writes one partial,
// and a single block adds the partials in a fixed order (per-thread strided sums, then a shuffle
// butterfly and the warps in index order). The same input gives the same bits on every run and
// every GPU. Half and bfloat16 compute in float; indices are 64-bit.
//
// Cross entropy: one group of G threads per row (a warp for rows up to kWarpRowMax classes, the
// whole block beyond), an online max / sum of e^{x - max} over the row plus the sums the loss
// needs, merged across the group with a butterfly (lse_merge is symmetric, so every lane ends
// with the same bits). Rows that are the positions of (N, C, d...) logits, their classes strided,
// get one thread each when there are at least kThreadRowMin positions: a warp then reads 32
// consecutive positions of one class, coalesced (a warp per row would read 32 scattered values). Per-row losses and
// weights go to the workspace; one block reduces them. A target out of range sets a flag (the smallest such row, by
// atomicMin) instead of asserting.
#include <cfloat>

#include "cuda/launch.cuh"
#include "cuda/loss.h"

namespace dlk::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kReduceThreads = 1024;
// Elements per block partial of the MSE sum: fixed, so the tree does not depend on the GPU.
constexpr int64_t kChunk = kThreads * 16;
// Rows with at most this many classes get a warp each; longer rows a block.
constexpr int64_t kWarpRowMax = 1024;
// Positions per sample from which each row gets its own thread.
constexpr int64_t kThreadRowMin = 32;
constexpr unsigned kFull = 0xffffffffu;

__device__ __forceinline__ float log_of(float v) { return logf(v); }
__device__ __forceinline__ double log_of(double v) { return ::log(v); }

template <class A>
__device__ __forceinline__ A lowest_finite() {
  if constexpr (sizeof(A) == 4) {
    return -FLT_MAX;
  } else {
    return -DBL_MAX;
  }
}

template <class A>
__device__ __forceinline__ A warp_sum(A v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}

// Sum of every thread's v over a block of kWarps warps, the same bits in every thread.
template <class A, int kWarps>
__device__ A block_sum(A v, A* smem) {
  v = warp_sum(v);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  A s = smem[0];
  for (int w = 1; w < kWarps; ++w) s += smem[w];
  __syncthreads();  // smem is reused by the next call
  return s;
}

// Sum of v[0..n) by one block of kReduceThreads threads.
template <class A>
__device__ A block_sum_array(const A* v, int64_t n, A* smem) {
  A s = A(0);
  for (int64_t i = threadIdx.x; i < n; i += kReduceThreads) s += v[i];
  return block_sum<A, kReduceThreads / 32>(s, smem);
}

// ---- MSE ----------------------------------------------------------------------------------------

template <class T>
__global__ void __launch_bounds__(kThreads)
    mse_partial_kernel(const T* x, const T* t, opmath_t<T>* part, int64_t n, int64_t chunks) {
  using A = opmath_t<T>;
  __shared__ A smem[kThreads / 32];
  for (int64_t k = blockIdx.x; k < chunks; k += gridDim.x) {
    const int64_t lo = k * kChunk, hi = lo + kChunk < n ? lo + kChunk : n;
    A s = A(0);
    for (int64_t i = lo + threadIdx.x; i < hi; i += kThreads) {
      const A d = to_opmath(x[i]) - to_opmath(t[i]);
      s += d * d;
    }
    s = block_sum<A, kThreads / 32>(s, smem);
    if (threadIdx.x == 0) part[k] = s;
  }
}

template <class T>
__global__ void __launch_bounds__(kReduceThreads)
    mse_final_kernel(const opmath_t<T>* part, int64_t parts, T* out, int64_t n, bool mean) {
  using A = opmath_t<T>;
  __shared__ A smem[kReduceThreads / 32];
  const A s = block_sum_array(part, parts, smem);
  if (threadIdx.x == 0) {
    *out = from_opmath<T>(mean ? static_cast<A>(static_cast<double>(s) / static_cast<double>(n)) : s);
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads) mse_none_kernel(const T* x, const T* t, T* y, int64_t n) {
  using A = opmath_t<T>;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += stride) {
    const A d = to_opmath(x[i]) - to_opmath(t[i]);
    y[i] = from_opmath<T>(d * d);
  }
}

// dx = (x - t) s g_i (kPerElement) or (x - t) s with s = 2 g_0 (/ n): the CPU's order of operations.
template <class T, bool kPerElement>
__global__ void __launch_bounds__(kThreads)
    mse_grad_kernel(const T* g, const T* x, const T* t, T* dx, int64_t n, bool mean) {
  using A = opmath_t<T>;
  double scale = 2.0;
  if (!kPerElement) scale *= static_cast<double>(to_opmath(g[0]));
  if (mean) scale /= static_cast<double>(n);
  const A s = static_cast<A>(scale);
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += stride) {
    A v = (to_opmath(x[i]) - to_opmath(t[i])) * s;
    if (kPerElement) v *= to_opmath(g[i]);
    dx[i] = from_opmath<T>(v);
  }
}

// ---- cross entropy ------------------------------------------------------------------------------

// One thread's (then the group's) running state over a row: m + log(s) is the log-sum-exp of
// what it saw; wx = sum w x (smoothing), ws = sum w (weighted smoothing), wq = sum w q and
// wqx = sum w q x (soft targets).
template <class A>
struct RowAcc {
  A m, s, wx, ws, wq, wqx;
};

struct Needs {
  bool lse, wx, ws, wq, wqx;
};

template <class A>
__device__ __forceinline__ void merge(RowAcc<A>& a, const RowAcc<A>& b, const Needs& n) {
  if (n.lse) lse_merge(a.m, a.s, b.m, b.s);
  if (n.wx) a.wx += b.wx;
  if (n.ws) a.ws += b.ws;
  if (n.wq) a.wq += b.wq;
  if (n.wqx) a.wqx += b.wqx;
}

// Combines the G threads of a row's group; every thread of the group gets the same result.
// Groups of a warp stay within it; a block-wide group goes through smem (G / 32 entries).
template <class A, int G>
__device__ void group_reduce(RowAcc<A>& a, const Needs& n, RowAcc<A>* smem) {
  if constexpr (G == 1) return;  // a thread per row: nothing to combine
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    RowAcc<A> b = a;
    if (n.lse) {
      b.m = __shfl_xor_sync(kFull, a.m, o);
      b.s = __shfl_xor_sync(kFull, a.s, o);
    }
    if (n.wx) b.wx = __shfl_xor_sync(kFull, a.wx, o);
    if (n.ws) b.ws = __shfl_xor_sync(kFull, a.ws, o);
    if (n.wq) b.wq = __shfl_xor_sync(kFull, a.wq, o);
    if (n.wqx) b.wqx = __shfl_xor_sync(kFull, a.wqx, o);
    merge(a, b, n);
  }
  if constexpr (G > 32) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) smem[warp] = a;
    __syncthreads();
    a = smem[0];
    for (int w = 1; w < G / 32; ++w) merge(a, smem[w], n);
    __syncthreads();
  }
}

// Offset of row r's logit of class 0; class c is c * positions further.
__device__ __forceinline__ int64_t row_base(int64_t r, int64_t classes, int64_t positions) {
  if (positions == 1) return r * classes;
  const int64_t n = r / positions;
  return n * classes * positions + (r - n * positions);
}

template <class T, int G>
__global__ void __launch_bounds__(kThreads) ce_forward_kernel(CrossEntropyArgs p) {
  using A = opmath_t<T>;
  __shared__ RowAcc<A> smem[G > 32 ? G / 32 : 1];
  const int64_t C = p.classes, cs = p.positions;  // cs: the class stride
  const T* w = static_cast<const T*>(p.weight);
  const bool soft = p.soft != nullptr, smooth = p.smoothing > 0.0;
  const A eps = static_cast<A>(p.smoothing);
  const Needs need{true, smooth, smooth && w != nullptr, soft, soft};
  A* row_loss = static_cast<A*>(p.workspace);
  A* row_weight = row_loss + p.rows;
  A* lse_out = static_cast<A*>(p.lse);
  constexpr int kGroups = kThreads / G;
  const int lane = threadIdx.x % G;
  for (int64_t r = blockIdx.x * static_cast<int64_t>(kGroups) + threadIdx.x / G; r < p.rows;
       r += static_cast<int64_t>(gridDim.x) * kGroups) {
    // r is the same in every thread of the group, so the branches below are uniform over it.
    const int64_t base = row_base(r, C, cs);
    const T* x = static_cast<const T*>(p.logits) + base;
    int64_t t = 0;
    if (!soft) {
      t = p.target[r];
      if (!(t != p.ignore_index && target_ok(t, C, p.ignore_index))) {
        if (lane == 0) {
          if (t != p.ignore_index) atomicMin(p.flag, static_cast<unsigned long long>(r));
          lse_out[r] = A(0);
          row_loss[r] = A(0);
          row_weight[r] = A(0);
          if (p.reduction == Reduction::none) static_cast<T*>(p.loss)[r] = from_opmath<T>(A(0));
        }
        continue;
      }
    }
    const T* q = soft ? static_cast<const T*>(p.soft) + base : nullptr;
    RowAcc<A> a{lowest_finite<A>(), A(0), A(0), A(0), A(0), A(0)};
    for (int64_t c = lane; c < C; c += G) {
      const A v = to_opmath(x[c * cs]);
      // the finite lowest start keeps m - v from being inf - inf for -inf logits
      if (v > a.m) {
        // e^{v - v}: 1, or NaN for v = +inf, as torch's log_softmax gets from inf - inf
        a.s = a.s * exp(a.m - v) + exp(v - v);
        a.m = v;
      } else {
        a.s += exp(v - a.m);
      }
      if (smooth || soft) {
        const A wc = w ? to_opmath(w[c]) : A(1);
        if (smooth) {
          a.wx += wc * v;
          a.ws += wc;
        }
        if (soft) {
          const A wq = wc * to_opmath(q[c * cs]);
          a.wq += wq;
          a.wqx += wq * v;
        }
      }
    }
    group_reduce<A, G>(a, need, smem);
    if (lane != 0) continue;
    const A lse = a.m + log_of(a.s);
    const A wsum = w ? a.ws : static_cast<A>(C);
    A loss, weight;
    if (soft) {
      A swy = a.wq, swyx = a.wqx;
      if (smooth) {
        swy = (A(1) - eps) * a.wq + eps / static_cast<A>(C) * wsum;
        swyx = (A(1) - eps) * a.wqx + eps / static_cast<A>(C) * a.wx;
      }
      loss = lse * swy - swyx;
      weight = A(1);
    } else {
      const A w_t = w ? to_opmath(w[t]) : A(1);
      loss = class_row_loss<A>(lse, to_opmath(x[t * cs]), w_t, smooth ? eps : A(0), wsum, a.wx, C);
      weight = w_t;
    }
    lse_out[r] = lse;
    row_loss[r] = loss;
    row_weight[r] = weight;
    if (p.reduction == Reduction::none) static_cast<T*>(p.loss)[r] = from_opmath<T>(loss);
  }
}

// total_weight, and the sum or mean of the row losses (not for the none reduction).
template <class T>
__global__ void __launch_bounds__(kReduceThreads) ce_final_kernel(CrossEntropyArgs p) {
  using A = opmath_t<T>;
  __shared__ A smem[kReduceThreads / 32];
  const A* row_loss = static_cast<const A*>(p.workspace);
  const A total = p.soft ? static_cast<A>(p.rows) : block_sum_array(row_loss + p.rows, p.rows, smem);
  if (threadIdx.x == 0) *static_cast<A*>(p.total_weight) = total;
  if (p.reduction == Reduction::none) return;
  const A s = block_sum_array(row_loss, p.rows, smem);
  if (threadIdx.x == 0) *static_cast<T*>(p.loss) = from_opmath<T>(p.reduction == Reduction::mean ? s / total : s);
}

// dx_c = g (A p_c - b_c), p_c = e^{x_c - lse}, b_c = w_c ((1-e) q_c + e/C) for soft targets and
// w_c e/C + [c = t] (1-e) w_t for class targets; A = sum_c b_c (common/loss.h).
template <class T, int G>
__global__ void __launch_bounds__(kThreads) ce_backward_kernel(CrossEntropyArgs p) {
  using A = opmath_t<T>;
  __shared__ RowAcc<A> smem[G > 32 ? G / 32 : 1];
  const int64_t C = p.classes, cs = p.positions;  // cs: the class stride
  const T* w = static_cast<const T*>(p.weight);
  const bool soft = p.soft != nullptr, smooth = p.smoothing > 0.0;
  const A eps = smooth ? static_cast<A>(p.smoothing) : A(0);
  const Needs need{false, false, smooth && w != nullptr, soft, false};
  const A* lse_in = static_cast<const A*>(p.lse_in);
  const T* go = static_cast<const T*>(p.grad_output);
  A scale = A(1);
  if (p.reduction != Reduction::none) {
    scale = to_opmath(go[0]);
    if (p.reduction == Reduction::mean) scale /= *static_cast<const A*>(p.total_in);
  }
  constexpr int kGroups = kThreads / G;
  const int lane = threadIdx.x % G;
  for (int64_t r = blockIdx.x * static_cast<int64_t>(kGroups) + threadIdx.x / G; r < p.rows;
       r += static_cast<int64_t>(gridDim.x) * kGroups) {
    const int64_t base = row_base(r, C, cs);
    const T* x = static_cast<const T*>(p.logits) + base;
    T* dx = static_cast<T*>(p.grad_input) + base;
    const A g = p.reduction == Reduction::none ? to_opmath(go[r]) : scale;
    int64_t t = -1;
    A w_t = A(1);
    if (!soft) {
      t = p.target[r];
      if (!(t != p.ignore_index && target_ok(t, C, p.ignore_index))) {
        for (int64_t c = lane; c < C; c += G) dx[c * cs] = from_opmath<T>(A(0));
        continue;
      }
      if (w) w_t = to_opmath(w[t]);
    }
    const T* q = soft ? static_cast<const T*>(p.soft) + base : nullptr;
    RowAcc<A> a{A(0), A(0), A(0), A(0), A(0), A(0)};
    if (need.ws || need.wq) {
      for (int64_t c = lane; c < C; c += G) {
        const A wc = w ? to_opmath(w[c]) : A(1);
        if (need.ws) a.ws += wc;
        if (need.wq) a.wq += wc * to_opmath(q[c * cs]);
      }
      group_reduce<A, G>(a, need, smem);
    }
    const A wsum = w ? a.ws : static_cast<A>(C);
    const A kq = soft ? A(1) - eps : A(0), ke = eps / static_cast<A>(C);
    const A coef = soft ? kq * a.wq + ke * wsum : class_row_coef<A>(w_t, eps, wsum, C);
    const A ga = g * coef, gq = g * kq, ge = g * ke, gt = g * (A(1) - eps) * w_t, lse = lse_in[r];
    for (int64_t c = lane; c < C; c += G) {
      A out = ga * exp(to_opmath(x[c * cs]) - lse);
      if (soft || smooth) {
        const A wc = w ? to_opmath(w[c]) : A(1);
        const A b = soft ? gq * to_opmath(q[c * cs]) + ge : ge;
        out -= wc * b;
      }
      if (c == t) out -= gt;
      dx[c * cs] = from_opmath<T>(out);
    }
  }
}

unsigned int grid_of(int64_t blocks) {
  constexpr int64_t kMax = 0x7fffffff;
  return static_cast<unsigned int>(blocks < 1 ? 1 : blocks > kMax ? kMax : blocks);
}

// Threads per row (see the top of the file).
int group_of(const CrossEntropyArgs& a) {
  if (a.positions >= kThreadRowMin) return 1;
  return a.classes > kWarpRowMax ? kThreads : 32;
}

// The forward (or backward) kernel for T at the group size of `a`, on enough blocks for its rows.
template <class T>
cudaError_t launch_rows(bool forward, const CrossEntropyArgs& a, cudaStream_t stream) {
  const int g = group_of(a);
  auto kernel = forward ? ce_forward_kernel<T, 32> : ce_backward_kernel<T, 32>;
  if (g == 1) kernel = forward ? ce_forward_kernel<T, 1> : ce_backward_kernel<T, 1>;
  if (g == kThreads) kernel = forward ? ce_forward_kernel<T, kThreads> : ce_backward_kernel<T, kThreads>;
  return launch(kernel, grid_for(a.rows, kThreads / g), kThreads, 0, stream, a);
}

}  // namespace

int64_t mse_sum_workspace(int64_t n) { return (n + kChunk - 1) / kChunk; }

cudaError_t mse_loss_sum(DType dtype, const void* x, const void* t, void* out, int64_t n, bool mean, void* workspace,
                         cudaStream_t stream) {
  const int64_t chunks = mse_sum_workspace(n);
  return by_dtype(dtype, [&]<class T>() {
    using A = opmath_t<T>;
    auto* part = static_cast<A*>(workspace);
    cudaError_t err = launch(mse_partial_kernel<T>, grid_of(chunks), kThreads, 0, stream, static_cast<const T*>(x),
                             static_cast<const T*>(t), part, n, chunks);
    if (err != cudaSuccess) return err;
    return launch(mse_final_kernel<T>, 1, kReduceThreads, 0, stream, static_cast<const A*>(part), chunks,
                  static_cast<T*>(out), n, mean);
  });
}

cudaError_t mse_loss_none(DType dtype, const void* x, const void* t, void* y, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  return by_dtype(dtype, [&]<class T>() {
    return launch(mse_none_kernel<T>, grid_for(n, kThreads * 4), kThreads, 0, stream, static_cast<const T*>(x),
                  static_cast<const T*>(t), static_cast<T*>(y), n);
  });
}

cudaError_t mse_loss_grad(DType dtype, const void* g, const void* x, const void* t, void* dx, int64_t n, Reduction red,
                          cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  const bool mean = red == Reduction::mean;
  return by_dtype(dtype, [&]<class T>() {
    auto kernel = red == Reduction::none ? mse_grad_kernel<T, true> : mse_grad_kernel<T, false>;
    return launch(kernel, grid_for(n, kThreads * 4), kThreads, 0, stream, static_cast<const T*>(g),
                  static_cast<const T*>(x), static_cast<const T*>(t), static_cast<T*>(dx), n, mean);
  });
}

int64_t cross_entropy_workspace(int64_t rows) { return 2 * rows; }

cudaError_t cross_entropy_forward(const CrossEntropyArgs& a, cudaStream_t stream) {
  return by_dtype(a.dtype, [&]<class T>() {
    if (a.rows > 0) {
      const cudaError_t err = launch_rows<T>(true, a, stream);
      if (err != cudaSuccess) return err;
    }
    return launch(ce_final_kernel<T>, 1, kReduceThreads, 0, stream, a);
  });
}

cudaError_t cross_entropy_backward(const CrossEntropyArgs& a, cudaStream_t stream) {
  if (a.rows <= 0 || a.classes <= 0) return cudaSuccess;
  return by_dtype(a.dtype, [&]<class T>() { return launch_rows<T>(false, a, stream); });
}

}  // namespace dlk::cuda
