// linear on the CPU: forward, grad_input, grad_weight, grad_bias, all on the GEMM core
// (cpu/gemm.h). With the leading dimensions of the input folded into R rows:
//   forward      Y[R x out]   = X[R x in]     W^T[in x out]   + bias per column (micro-kernel epilogue)
//   grad_input   dX[R x in]   = dY[R x out]   W[out x in]
//   grad_weight  dW[out x in] = dY^T[out x R] X[R x in]
// Each operand is passed to the packers as (pointer, row stride, column stride), so transposes
// (W^T, dY^T) and strided or transposed inputs are read in place: no transposed copy is made.
#include <algorithm>
#include <optional>
#include <vector>

#include "cpu/gemm.h"
#include "cpu/workspace.h"
#include "host/linear.h"
#include "host/tensor.h"

namespace dlk::cpu {
namespace {

// A(i, k) at p[i * rs + k * cs].
template <class T>
struct Operand {
  const T* p;
  int64_t rs, cs;
};

// Costs in micro-tiles (one MR x NR x kc tile at the micro-kernel's rate; 2 M N K / (MR NR)
// of them in a product), from single-thread measurements on the AVX-512 Xeon (benchmarks/README.md):
// packing a B panel (kc x NR) costs 1.3 tiles from a row-major B (copies), 2.5 from a column-major
// one (register transposes); an A panel (MR x kc) 0.2-0.4, nothing when A is read in place. With
// 64 rows, a panel serves 8 tiles: packing is a third of the work and decides how to split it.
// Whether kc rows of a B panel (nr columns), ldb elements apart, spread over the L1's sets
// (64 sets of 64-byte lines) well enough to stay there while its tiles run: rows 4 KB apart all
// land in the same few sets and evict each other.
template <class T>
bool b_rows_spread(int64_t ldb, int64_t kc, int nr) {
  const int64_t bytes = ldb * static_cast<int64_t>(sizeof(T)), lines = (nr * int64_t(sizeof(T)) + 63) / 64;
  int64_t g = 4096, x = bytes % 4096;
  while (x) {
    const int64_t r = g % x;
    g = x;
    x = r;
  }
  const int64_t starts = 4096 / std::max<int64_t>(g, 64);  // distinct first sets over the rows
  return kc * lines <= 8 * std::min<int64_t>(64, starts * lines);
}

// A row-major B is read in place where its rows spread over L1 (b_in_place): its first tile
// per panel then loads it from L2 or memory, about what a copy costs without the copy's stores.
template <class T>
bool b_in_place(Operand<T> b, int64_t kc, int nr) {
  return b.cs == 1 && b.rs > 0 && b_rows_spread<T>(b.rs, kc, nr);
}
template <class T>
double b_pack_tiles(Operand<T> b, int64_t kc, int nr) {
  return b_in_place(b, kc, nr) ? 0.4 : b.cs == 1 ? 1.3 : b.rs == 1 ? 2.5 : 6.0;
}
template <class T>
bool a_in_place(Operand<T> a) {
  return a.cs == 1 && a.rs > 0;  // the micro-kernel reads MR rows lda = rs apart
}
// A column-major A (rs == 1: W^T, dY^T) packs MR values per k from rows cs apart: 0.2 tiles per
// panel from cache, but from an operand beyond L2 about what B's copy costs (the rows are pages
// apart, which the prefetchers do not follow). Measured on Zen 5, float64 dY[8 x 4096] W[4096 x
// 4096]: packing W^T as A 8.6-10 ms, packing W as B 5.2-6.3 ms (benchmarks/README.md).
constexpr double kStreamedBytes = 2 << 20;
template <class T>
double a_pack_tiles(Operand<T> a, int64_t rows, int64_t K) {
  if (a_in_place(a)) return 0.0;
  if (a.rs == 1) return static_cast<double>(rows) * static_cast<double>(K) * sizeof(T) > kStreamedBytes ? 1.3 : 0.2;
  return 0.4 + (a.cs == 1 ? 0.0 : 1.0);
}

// A split of C into row_blocks x col_blocks tasks: rows in whole MR panels, columns in whole
// vectors (a last panel narrower than NR runs the narrower micro-kernels, nearly as fast here:
// 173-192 GFLOP/s for 1-3 vectors of float32 on one core), so 64 or 128 columns split evenly.
struct Plan {
  int64_t row_block = 0, col_block = 0, row_blocks = 0, col_blocks = 0;
  double cost = 0;  // micro-tiles of the busiest thread
  int64_t tasks() const { return row_blocks * col_blocks; }
};

template <class T>
Plan plan_product(const GemmTable<T>& gt, const GemmBlocking& blk, int64_t M, int64_t N, int64_t K, double a_pack,
                  double b_pack, double epilogue, int64_t threads) {
  const int MR = gt.mr, W = gt.w, NV = gt.nr / gt.w;
  const int64_t mp = std::max<int64_t>(1, (M + MR - 1) / MR), nv = std::max<int64_t>(1, (N + W - 1) / W);
  const int64_t max_vecs = std::max<int64_t>(1, blk.nc / W);
  const int64_t min_cb = (nv + max_vecs - 1) / max_vecs;
  // A task's fixed cost (dispatch, buffers, C-tile edges): about half a microsecond, in tiles.
  const double per_task = 0.2 + 100.0 / static_cast<double>(std::max<int64_t>(K, 1));
  Plan best;
  for (int64_t rb = 1; rb <= std::min<int64_t>(mp, 8); ++rb) {
    const int64_t rpb = (mp + rb - 1) / rb;
    for (int64_t cb = min_cb; cb <= std::min<int64_t>(nv, min_cb + 64); ++cb) {
      const int64_t vpb = (nv + cb - 1) / cb;  // vectors per column block
      const double panels = static_cast<double>(vpb) / NV + (vpb % NV ? 0.05 : 0.0);
      const Plan p{rpb * MR, vpb * W, (mp + rpb - 1) / rpb, (nv + vpb - 1) / vpb, 0.0};
      const double task = static_cast<double>(rpb) * panels * (1.0 + epilogue) + b_pack * panels +
                          a_pack * static_cast<double>(rpb) + per_task;
      const double cost = static_cast<double>((p.tasks() + threads - 1) / threads) * task;
      if (best.row_blocks == 0 || cost < best.cost * 0.999) {
        best = p;
        best.cost = cost;
      }
    }
  }
  return best;
}

struct Choice {
  Plan plan;
  bool transposed = false;
};

// The cheaper of C = A B and C^T = B^T A^T with its split. The search costs microseconds (a
// few hundred candidates), as much as a small product's packing: the last few answers are kept
// per calling thread (a layer calls the same shapes every step).
template <class T>
Choice choose(const GemmTable<T>& gt, const GemmBlocking& blk, int64_t M, int64_t N, int64_t K, Operand<T> a,
              Operand<T> b, int64_t threads) {
  const Operand<T> at{b.p, b.cs, b.rs}, bt{a.p, a.cs, a.rs};
  const double costs[4] = {a_pack_tiles(a, M, K), b_pack_tiles(b, blk.kc, gt.nr), a_pack_tiles(at, N, K),
                           b_pack_tiles(bt, blk.kc, gt.nr)};
  struct Entry {
    const void* table = nullptr;
    int64_t m = 0, n = 0, k = 0, threads = 0;
    double costs[4] = {};
    Choice choice;
  };
  static thread_local Entry cache[4];
  static thread_local int next = 0;
  for (const Entry& e : cache) {
    if (e.table == &gt && e.m == M && e.n == N && e.k == K && e.threads == threads &&
        std::equal(costs, costs + 4, e.costs)) {
      return e.choice;
    }
  }
  const Plan direct = plan_product(gt, blk, M, N, K, costs[0], costs[1], 0.0, threads);
  // The write-back: about 0.2 ns per element against 4K ns per tile of MR x NR elements.
  const double back = 20.0 / static_cast<double>(std::max<int64_t>(K, 1));
  const Plan trans = plan_product(gt, blk, N, M, K, costs[2], costs[3], back, threads);
  Choice c;
  c.transposed = trans.cost < direct.cost * 0.97;
  c.plan = c.transposed ? trans : direct;
  Entry& e = cache[next];
  next = (next + 1) % 4;
  e = Entry{&gt, M, N, K, threads, {costs[0], costs[1], costs[2], costs[3]}, c};
  return c;
}

// C[M x N] (row-major, contiguous) = A[M x K] B[K x N] (+ col_bias[j]), threads splitting C into
// tasks. Two ways to run it, the cheaper one taken:
//  - as written: A read in place when its rows are contiguous, B packed;
//  - transposed, C^T = B^T A^T, into a per-thread buffer written back transposed: for a linear
//    layer's forward with few rows (Y^T = W X^T) the weight is then read in place and only the
//    input is packed, instead of transposing the whole weight into panels.
// Both orders add the same products in the same order (the K blocks depend on K alone, and
// fma(a, b, c) = fma(b, a, c)), so the choice, which depends on the thread count, never changes
// a result bit.
// Products of fewer FLOPs than this run on the calling thread: waking the other threads costs
// more than they would save. The seed ConvNet's fc2 (64 x 128 -> 10, 0.16 MFLOP) and its
// gradients took 7-9 us per op on 2 threads, a third of it in libgomp (perf).
constexpr double kSerialFlops = 1 << 20;

// run(0, tasks) on the calling thread for a product of fewer than kSerialFlops, else the tasks
// split between threads.
template <class Run>
void run_tasks(double flops, int64_t tasks, Run&& run) {
  if (flops < kSerialFlops) {
    run(0, tasks);
  } else {
    torch::stable::parallel_for(0, tasks, 1, run);
  }
}

template <class T>
void gemm_strided(const GemmTable<T>& gt, int64_t M, int64_t N, int64_t K, Operand<T> a, Operand<T> b, T* c,
                  const T* col_bias) {
  const GemmBlocking blk = gemm_blocking(gt, K);
  const double flops = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  const int64_t threads = flops < kSerialFlops ? 1 : torch::stable::get_num_threads();
  const Operand<T> at{b.p, b.cs, b.rs}, bt{a.p, a.cs, a.rs};  // B^T (N x K), A^T (K x N)
  const Choice choice = choose(gt, blk, M, N, K, a, b, threads);
  const bool transposed = choice.transposed;
  const Plan& plan = choice.plan;
  const Operand<T> pa = transposed ? at : a, pb = transposed ? bt : b;
  const int64_t rows = transposed ? N : M, cols = transposed ? M : N;
  const int64_t lda = a_in_place(pa) ? pa.rs : 0;
  constexpr int64_t resident = 64;  // B panels resident for A blocks of a batch's size
  // With one panel of rows each B value is used once: a packed copy would cost more than it
  // saves, whatever the rows' spread over L1 (grad_weight of 256 x 1024 -> 1: 29 -> 23 us, Zen 5).
  const bool b_direct = b_in_place(pb, blk.kc, gt.nr) || (rows <= gt.mr && pb.cs == 1 && pb.rs > 0);
  const Scratch<T> abuf(Slot::packed_a, gemm_a_buffer_size(gt, blk)), bbuf(Slot::packed_b, gemm_b_buffer_size(gt, blk));
  const Scratch<T> stage(Slot::c_stage, transposed ? std::min(blk.mc, plan.row_block) * plan.col_block : 0);
  auto run = [&](int64_t first, int64_t last) {
    T* ab = abuf.get();
    T* bb = bbuf.get();
    T* cs = transposed ? stage.get() : nullptr;
    auto get_a = [&](int64_t ic, int64_t pc, int64_t mc, int64_t kc, T* dst) {
      if (lda) return pa.p + ic * pa.rs + pc;
      gt.pack_a(pa.p + ic * pa.rs + pc * pa.cs, pa.rs, pa.cs, mc, kc, dst);
      return static_cast<const T*>(dst);
    };
    auto pack_b = [&](int64_t pc, int64_t jc, int64_t kc, int64_t nc, T* dst) {
      if (b_direct) return BInPlace<T>{pb.p + pc * pb.rs + jc, pb.rs};
      gt.pack_b(pb.p + pc * pb.rs + jc * pb.cs, pb.rs, pb.cs, kc, nc, dst);
      return BInPlace<T>{};
    };
    for (int64_t task = first; task < last; ++task) {
      const int64_t m0 = task / plan.col_blocks * plan.row_block, n0 = task % plan.col_blocks * plan.col_block;
      const int64_t m1 = std::min(rows, m0 + plan.row_block), n1 = std::min(cols, n0 + plan.col_block);
      if (!transposed) {
        gemm_blocked<T>(gt, blk, m0, m1, n0, n1, K, get_a, pack_b, c, N, ColumnMap{N}, false, nullptr, ab, bb, nullptr,
                        lda, col_bias, resident);
        continue;
      }
      // Row chunks of C^T keep the buffer in L2; the bias is per row of C^T.
      const int64_t w = n1 - n0;
      for (int64_t r0 = m0; r0 < m1; r0 += blk.mc) {
        const int64_t r1 = std::min(m1, r0 + blk.mc);
        gemm_blocked<T>(gt, blk, r0, r1, n0, n1, K, get_a, pack_b, cs - r0 * w, w, ColumnMap{w, 0, n0}, false, col_bias,
                        ab, bb, nullptr, lda, nullptr, resident);
        gt.transpose(cs, w, r1 - r0, w, c + n0 * N + r0, N);
      }
    }
  };
  run_tasks(flops, plan.tasks(), run);
}

// Y = X W^T (+ bias) as dot products of rows (GemmTable::dot), rows split between threads in whole
// blocks: for a weight of few rows (up to the ISA's dot_max_outputs), with X and W both
// k-contiguous (read in place, nothing packed).
template <class T>
bool dot_applies(const GemmTable<T>& gt, const Operand<T>& x, const Tensor& weight) {
  return weight.size(0) <= gt.dot_max_outputs && x.cs == 1 && weight.stride(1) == 1;
}

template <class T>
void linear_dot(const GemmTable<T>& gt, int64_t R, int64_t out, int64_t in, Operand<T> x, const T* w, int64_t ldw, T* y,
                const T* bias) {
  const int64_t rb = gt.dot_rows_per_block, blocks = (R + rb - 1) / rb;
  auto run = [&](int64_t first, int64_t last) {
    const int64_t r0 = first * rb, r1 = std::min(R, last * rb);
    gt.dot(r1 - r0, out, in, x.p + r0 * x.rs, x.rs, w, ldw, y + r0 * out, out, bias);
  };
  run_tasks(2.0 * static_cast<double>(R) * static_cast<double>(out) * static_cast<double>(in), blocks, run);
}

// dW = dY^T X for a layer of at most this many outputs by GemmTable::axpy_rows: X's rows
// streamed in order, columns split between threads (256 x 1024 -> 1: see benchmarks/README.md).
constexpr int64_t kAxpyMaxOutputs = 2;

template <class T>
void grad_weight_axpy(const GemmTable<T>& gt, int64_t out, int64_t in, int64_t R, Operand<T> dyt, Operand<T> x, T* dw) {
  // Columns per task: at least 64 (whole lines of each row); a column's sum never depends on the
  // split, so the thread count may choose it.
  const int64_t threads = torch::stable::get_num_threads();
  const int64_t cols = std::max<int64_t>(64, (in + threads - 1) / threads + 15) / 16 * 16;
  const int64_t tasks = (in + cols - 1) / cols;
  auto run = [&](int64_t first, int64_t last) {
    const int64_t j0 = first * cols, j1 = std::min(in, last * cols);
    gt.axpy_rows(out, j1 - j0, R, dyt.p, dyt.rs, dyt.cs, x.p + j0, x.rs, dw + j0, in);
  };
  run_tasks(2.0 * static_cast<double>(out) * static_cast<double>(in) * static_cast<double>(R), tasks, run);
}

// A data tensor (..., F) as R x F rows that the packers read in place: the tensor itself when
// its leading dimensions fold into one stride, else a contiguous copy.
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
  template <class T>
  Operand<T> as() const {
    return {t.const_data_ptr<T>(), rs, cs};
  }
  template <class T>
  Operand<T> transposed() const {
    return {t.const_data_ptr<T>(), cs, rs};
  }
};

constexpr std::initializer_list<ScalarType> kDtypes = {ScalarType::Float, ScalarType::Double};

// The ISA is read once per op, here, and passed to every kernel the op runs.
Tensor linear_cpu(Tensor input, Tensor weight, std::optional<Tensor> bias, bool /*allow_tf32*/) {
  check_linear_tensors("linear", input, weight, bias, kDtypes);
  const int64_t R = leading_rows(input), in = weight.size(1), out = weight.size(0);
  Tensor y = dlk::new_empty(input, IntList(with_last(input, out)));
  if (y.numel() == 0) return y;
  const Rows x(input);
  const std::optional<Tensor> b = bias.has_value() ? std::optional<Tensor>(as_contiguous(*bias)) : std::nullopt;
  const Isa isa = active_isa();
  dispatch_float(input.scalar_type(), "linear", [&](auto tag) {
    using T = decltype(tag);
    const T* bp = b.has_value() ? b->const_data_ptr<T>() : nullptr;
    if (dot_applies(gemm_table<T>(isa), x.as<T>(), weight)) {
      linear_dot<T>(gemm_table<T>(isa), R, out, in, x.as<T>(), weight.const_data_ptr<T>(), weight.stride(0),
                    y.mutable_data_ptr<T>(), bp);
      return;
    }
    const Operand<T> wt{weight.const_data_ptr<T>(), weight.stride(1), weight.stride(0)};  // W^T
    gemm_strided<T>(gemm_table<T>(isa), R, out, in, x.as<T>(), wt, y.mutable_data_ptr<T>(), bp);
  });
  return y;
}

Tensor linear_grad_input_cpu(Tensor grad_output, Tensor weight, bool /*allow_tf32*/ = false) {
  const char* op = "linear_grad_input";
  check_linear_grad_input(op, grad_output, weight, kDtypes);
  const int64_t R = leading_rows(grad_output), in = weight.size(1), out = weight.size(0);
  Tensor dx = dlk::new_empty(grad_output, IntList(with_last(grad_output, in)));
  if (dx.numel() == 0) return dx;
  const Rows dy(grad_output);
  const Isa isa = active_isa();
  dispatch_float(grad_output.scalar_type(), op, [&](auto tag) {
    using T = decltype(tag);
    const Operand<T> w{weight.const_data_ptr<T>(), weight.stride(0), weight.stride(1)};
    gemm_strided<T>(gemm_table<T>(isa), R, in, out, dy.as<T>(), w, dx.mutable_data_ptr<T>(), nullptr);
  });
  return dx;
}

Tensor linear_grad_weight_cpu(Tensor grad_output, Tensor input, bool /*allow_tf32*/ = false) {
  const char* op = "linear_grad_weight";
  check_linear_grad_weight(op, grad_output, input, kDtypes);
  const int64_t R = leading_rows(input), in = input.size(input.dim() - 1);
  const int64_t out = grad_output.size(grad_output.dim() - 1);
  Tensor dw = new_empty(input, {out, in});
  if (dw.numel() == 0) return dw;
  const Rows dy(grad_output), x(input);
  const Isa isa = active_isa();
  dispatch_float(input.scalar_type(), op, [&](auto tag) {
    using T = decltype(tag);
    const Operand<T> a = dy.transposed<T>(), b = x.as<T>();
    if (out <= kAxpyMaxOutputs && b.cs == 1) {
      grad_weight_axpy<T>(gemm_table<T>(isa), out, in, R, a, b, dw.mutable_data_ptr<T>());
      return;
    }
    gemm_strided<T>(gemm_table<T>(isa), out, in, R, a, b, dw.mutable_data_ptr<T>(), nullptr);
  });
  return dw;
}

// Column sums of dY[R x out]: rows split into parts of at least kMinRowsPerPart rows, at most
// kParts of them, each summed in row order, then the parts added in order. The split depends on
// R alone, never on the thread count, so the bits do not either (it used to be one part per
// thread: 100000 x 7 summed differently with 1 and 2 threads).
template <class T>
void column_sums(const T* dy, int64_t rs, int64_t cs, int64_t R, int64_t out, T* db) {
  constexpr int64_t kMinRowsPerPart = 256, kParts = 8;
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(kParts, R / kMinRowsPerPart));
  T* partial = parts > 1 ? workspace<T>(Slot::partial_sums, parts * out) : db;
  torch::stable::parallel_for(0, parts, 1, [&](int64_t first, int64_t last) {
    for (int64_t p = first; p < last; ++p) {
      T* s = partial + p * out;
      std::fill(s, s + out, T(0));
      for (int64_t r = p * R / parts; r < (p + 1) * R / parts; ++r) {
        const T* row = dy + r * rs;
        if (cs == 1) {
          for (int64_t j = 0; j < out; ++j) s[j] += row[j];
        } else {
          for (int64_t j = 0; j < out; ++j) s[j] += row[j * cs];
        }
      }
    }
  });
  if (parts == 1) return;
  for (int64_t j = 0; j < out; ++j) {
    T s = partial[j];
    for (int64_t p = 1; p < parts; ++p) s += partial[p * out + j];
    db[j] = s;
  }
}

Tensor linear_grad_bias_cpu(Tensor grad_output) {
  const char* op = "linear_grad_bias";
  check_linear_grad_bias(op, grad_output, kDtypes);
  const int64_t R = leading_rows(grad_output), out = grad_output.size(grad_output.dim() - 1);
  Tensor db = new_empty(grad_output, {out});
  if (out == 0) return db;
  if (R == 0) return torch::stable::zero_(db);
  const Rows dy(grad_output);
  dispatch_float(grad_output.scalar_type(), op, [&](auto tag) {
    using T = decltype(tag);
    column_sums<T>(dy.t.const_data_ptr<T>(), dy.rs, dy.cs, R, out, db.mutable_data_ptr<T>());
  });
  return db;
}

std::tuple<Tensor, Tensor, Tensor> linear_backward_cpu(Tensor grad_output, Tensor input, Tensor weight,
                                                       std::vector<bool> output_mask, bool /*allow_tf32*/) {
  return linear_backward_by_mask(
      grad_output, input, weight, output_mask,
      [](const Tensor& dy, const Tensor& w) { return linear_grad_input_cpu(dy, w); },
      [](const Tensor& dy, const Tensor& x) { return linear_grad_weight_cpu(dy, x); }, &linear_grad_bias_cpu);
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(dlkernels, CPU, m) {
  m.impl("linear", TORCH_BOX(&linear_cpu));
  m.impl("linear_grad_input", TORCH_BOX(&linear_grad_input_cpu));
  m.impl("linear_grad_weight", TORCH_BOX(&linear_grad_weight_cpu));
  m.impl("linear_grad_bias", TORCH_BOX(&linear_grad_bias_cpu));
  m.impl("linear_backward", TORCH_BOX(&linear_backward_cpu));
}

}  // namespace dlk::cpu
