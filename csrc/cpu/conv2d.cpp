// conv2d on the CPU: forward, grad_input, grad_weight, grad_bias.
//
// Shape legend: input N C H W, weight K (C/G) R S, output N K P Q (common/conv2d_geometry.h).
//
// The input is first copied into planes (zero-padded, split into stride phases; see PlaneLayout),
// so every kernel below reads and writes contiguous runs. Dense and grouped convolutions are then
// implicit GEMMs on the hand-written core (cpu/gemm.h) whose packers read the planes directly,
// so no im2col matrix is ever materialised:
//   forward      Y_g[Kg x (N PQ)]  = W_g[Kg x CgRS]          * im2col(X_g)[CgRS x (N PQ)]
//   grad_weight  dW_g[Kg x CgRS]   = dY_g[Kg x (N PQ)]       * im2col(X_g)^T[(N PQ) x CgRS]
//   grad_input   stride 1: the forward of dY with the flipped, transposed weight (see below);
//                strided:  dcol[CgRS x PQ] = W_g^T[CgRS x Kg] * dY_g[n][Kg x PQ], per image,
//                          scattered into planes.
// Images are folded into the GEMM's N (forward) or K (grad_weight) dimension, so small images
// still make full panels. Depthwise convolutions (one input channel per group) are direct: a
// GEMM with a reduction of R*S is the wrong shape for them.
#include <algorithm>
#include <vector>

#include "common/conv2d_exact.h"
#include "cpu/conv2d_nhwc.h"
#include "cpu/conv2d_table.h"
#include "cpu/gemm.h"
#include "cpu/workspace.h"
#include "host/conv2d.h"
#include "host/tensor.h"

namespace dlk::cpu {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

bool is_depthwise(const Conv2dGeometry& g) { return g.Cg() == 1 && g.G > 1; }

// The plane layout of a call and each tap's offset in it.
struct Planes {
  PlaneLayout layout;
  std::vector<int64_t> taps;
  explicit Planes(const Conv2dGeometry& g) : layout(g), taps(g.RS()) {
    for (int64_t r = 0; r < g.R; ++r) {
      for (int64_t s = 0; s < g.S; ++s) taps[r * g.S + s] = layout.tap(g, r, s);
    }
  }
  ConvPlanes view(const Conv2dGeometry& g) const { return {g, layout, taps.data()}; }
};

// Every channel of every image as planes: the input itself when it already is one, else copies.
template <class T>
struct InputPlanes {
  const T* data;
  int64_t chan_stride, img_stride;

  InputPlanes(Isa isa, const Conv2dGeometry& g, const PlaneLayout& layout, const T* x)
      : data(x), chan_stride(g.HW()), img_stride(g.C * g.HW()) {
    if (layout.is_input(g)) return;
    const auto& ct = conv2d_table<T>(isa);
    T* out = workspace<T>(Slot::input_planes, g.N * g.C * layout.size);
    torch::stable::parallel_for(0, g.N * g.C, 8, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) ct.build_plane(g, layout, x + i * g.HW(), out + i * layout.size);
    });
    data = out;
    chan_stride = layout.size;
    img_stride = g.C * layout.size;
  }
  const T* channel(int64_t n, int64_t c) const { return data + n * img_stride + c * chan_stride; }
};

// ---------------------------------------------------------------------------------------------
// GEMM paths
// ---------------------------------------------------------------------------------------------

template <class T>
void forward_gemm(Isa isa, const Conv2dGeometry& g, const T* x, const T* w, const T* bias, T* y) {
  const auto& gt = gemm_table<T>(isa);
  const auto& ct = conv2d_table<T>(isa);
  const GemmBlocking blk = gemm_blocking(gt, g.CgRS());
  const Planes pl(g);
  const ConvPlanes cp = pl.view(g);
  const InputPlanes<T> in(isa, g, pl.layout, x);
  const int64_t ncols = g.N * g.PQ();
  // Packing an im2col panel costs about one to two micro-tiles (perf on ResNet-50 and seed layers):
  // counted, it keeps a GEMM with few rows from splitting them across threads, where every thread
  // would pack every panel (seed conv2 forward 100 -> 92 us, its data gradient 245 -> 162 us).
  const TaskGrid grid =
      plan_tasks(g.Kg(), ncols, g.G, gt.mr, gt.nr, static_cast<int64_t>(torch::stable::get_num_threads()), blk.nc, 1.0);
  const Scratch<T> bbuf(Slot::packed_b, gemm_b_buffer_size(gt, blk));
  const Scratch<T> stage(Slot::c_stage, grid.row_block * std::min(grid.col_block, blk.nc));
  torch::stable::parallel_for(0, grid.tasks(g.G), 1, [&](int64_t b, int64_t e) {
    for (int64_t task = b; task < e; ++task) {
      const int64_t gi = task / (grid.row_blocks * grid.col_blocks);
      const int64_t m0 = (task / grid.col_blocks) % grid.row_blocks * grid.row_block;
      const int64_t j0 = task % grid.col_blocks * grid.col_block;
      const T* xg = in.channel(0, gi * g.Cg());
      // The weights are A, read in place (row-major Kg x CgRS per group): packing them took 7-13%
      // of a large-weight layer's forward (ResNet-50 layer 4, 9 MB of weights) on every call.
      const T* wg = w + gi * g.Kg() * g.CgRS();
      auto get_a = [&](int64_t ic, int64_t pc, int64_t, int64_t, T*) { return wg + ic * g.CgRS() + pc; };
      auto pack_b = [&](int64_t pc, int64_t jc, int64_t kc, int64_t nc, T* dst) {
        ct.pack_im2col(cp, xg, in.img_stride, pc, kc, jc, nc, dst);
      };
      gemm_blocked<T>(gt, blk, m0, std::min(g.Kg(), m0 + grid.row_block), j0, std::min(ncols, j0 + grid.col_block),
                      g.CgRS(), get_a, pack_b, y + gi * g.Kg() * g.PQ(), g.PQ(), ColumnMap{g.PQ(), g.K * g.PQ()}, false,
                      bias ? bias + gi * g.Kg() : nullptr, nullptr, bbuf.get(), stage.get(), g.CgRS());
    }
  });
}

template <class T>
void grad_input_gemm(Isa isa, const Conv2dGeometry& g, const T* dy, const T* w, T* dx) {
  const auto& gt = gemm_table<T>(isa);
  const auto& ct = conv2d_table<T>(isa);
  const GemmBlocking blk = gemm_blocking(gt, g.Kg());
  const Planes pl(g);
  const ConvPlanes cp = pl.view(g);
  const int64_t RS = g.RS(), PQ = g.PQ(), size = pl.layout.size, cols = pl.layout.cols;
  // With stride 1 the GEMM's columns run over the plane's full width (dY's rows widened with
  // zeros, as the depthwise kernels do): each dcol row then lands on one contiguous run of the
  // plane, instead of P runs of Q. Seed conv2 (Q = 11 of 13): the scatter was half the time.
  const bool flat = g.sh == 1 && g.sw == 1;
  const int64_t F = flat ? (g.P - 1) * cols + g.Q : PQ;  // GEMM columns per image
  // Tasks own whole input channels of one image, so their scatters never overlap. Channel blocks
  // of about MC rows (c, r, s), fewer when that leaves threads idle; columns in chunks of NC.
  const int64_t max_cpb = std::max<int64_t>(1, blk.mc / RS);
  const int64_t split = std::max<int64_t>(
      1, ceil_div(2 * static_cast<int64_t>(torch::stable::get_num_threads()), g.N * g.G * ceil_div(g.Cg(), max_cpb)));
  const int64_t cpb = std::max<int64_t>(1, std::min(ceil_div(g.Cg(), split), max_cpb));
  const int64_t nblk = ceil_div(g.Cg(), cpb);
  const int64_t ncol = std::min(F, blk.nc);
  const bool widen = flat && F != PQ;
  const Scratch<T> abuf(Slot::packed_a, gemm_a_buffer_size(gt, blk)), bbuf(Slot::packed_b, gemm_b_buffer_size(gt, blk));
  const Scratch<T> cbuf(Slot::col_block, cpb * RS * ncol), pbuf(Slot::grad_planes, cpb * size);
  const Scratch<T> wbuf(Slot::row_ext, widen ? g.Kg() * F : 0);
  torch::stable::parallel_for(0, g.N * g.G * nblk, 1, [&](int64_t b, int64_t e) {
    T* dcol = cbuf.get();
    T* planes = pbuf.get();
    const T* widened = nullptr;  // the image and group whose dY the row_ext buffer holds
    for (int64_t task = b; task < e; ++task) {
      const int64_t n = task / (g.G * nblk), gi = (task / nblk) % g.G, c0 = (task % nblk) * cpb;
      const int64_t c1 = std::min(g.Cg(), c0 + cpb), rows = (c1 - c0) * RS;
      const T* wg = w + gi * g.Kg() * g.CgRS();
      const T* dyg = dy + (n * g.K + gi * g.Kg()) * PQ;
      if (widen && widened != dyg) {
        T* ext = wbuf.get();
        for (int64_t k = 0; k < g.Kg(); ++k) ct.dw_extend(cp, dyg + k * PQ, ext + k * F);
        widened = dyg;
      }
      const T* bsrc = widen ? wbuf.get() : dyg;  // rows of F columns
      auto get_a = [&](int64_t ic, int64_t pc, int64_t mc, int64_t kc, T* dst) {
        // A(i, k) = W[k][c0 RS + i]: the transposed weight.
        gt.pack_a(wg + pc * g.CgRS() + c0 * RS + ic, 1, g.CgRS(), mc, kc, dst);
        return static_cast<const T*>(dst);
      };
      auto pack_b = [&](int64_t pc, int64_t jc, int64_t kc, int64_t nc, T* dst) {
        gt.pack_b(bsrc + pc * F + jc, F, 1, kc, nc, dst);
      };
      std::fill(planes, planes + (c1 - c0) * size, T(0));
      for (int64_t j0 = 0; j0 < F; j0 += ncol) {
        const int64_t nc = std::min(ncol, F - j0);
        gemm_blocked<T>(gt, blk, 0, rows, j0, j0 + nc, g.Kg(), get_a, pack_b, dcol, nc, ColumnMap{nc, 0, j0}, false,
                        nullptr, abuf.get(), bbuf.get(), nullptr);
        if (flat) {
          ct.col2im_add_flat(cp, dcol, nc, c0, c1, j0, nc, planes);
        } else {
          ct.col2im_add(cp, dcol, nc, c0, c1, j0, nc, planes);
        }
      }
      T* dxg = dx + (n * g.C + gi * g.Cg()) * g.HW();
      for (int64_t c = c0; c < c1; ++c) ct.read_plane(g, pl.layout, planes + (c - c0) * size, dxg + c * g.HW());
    }
  });
}

template <class T>
void grad_weight_gemm(Isa isa, const Conv2dGeometry& g, const T* dy, const T* x, T* dw) {
  const auto& gt = gemm_table<T>(isa);
  const auto& ct = conv2d_table<T>(isa);
  // The reduction runs over every image's positions (fewer when the images are split up below;
  // the blocking only needs to be consistent within a call).
  GemmBlocking blk = gemm_blocking(gt, g.N * g.PQ());
  const Planes pl(g);
  const ConvPlanes cp = pl.view(g);
  const InputPlanes<T> in(isa, g, pl.layout, x);
  const int64_t PQ = g.PQ(), CgRS = g.CgRS(), Kg = g.Kg();
  // A is dY: row k of an image is PQ contiguous values. When K blocks can stay inside images (a
  // block length dividing PQ, not too short), the micro-kernel reads those rows in place instead
  // of a packed copy; packing them was a fifth of ResNet-50's 1x1 64>256 weight gradient.
  const int64_t in_place_kc = [&] {
    for (int64_t d = std::min<int64_t>(PQ, 256); d >= 96; --d) {
      if (PQ % d == 0) return d;
    }
    return int64_t(0);
  }();
  if (in_place_kc) blk.kc = in_place_kc;
  // dW_g[m0:m1, j0:j1] (+)= the contribution of images [n0, n1): the reduction runs over their
  // output positions folded into one dimension, so small images still make long KC blocks.
  auto part = [&](int64_t gi, int64_t m0, int64_t m1, int64_t j0, int64_t j1, int64_t n0, int64_t n1, T* out, T* ab,
                  T* bb) {
    const T* dyg = dy + (n0 * g.K + gi * Kg) * PQ;
    const T* xg = in.channel(n0, gi * g.Cg());
    auto get_a = [&](int64_t ic, int64_t pc, int64_t mc, int64_t kc, T* dst) {
      if (in_place_kc) return dyg + (pc / PQ) * g.K * PQ + ic * PQ + pc % PQ;
      gt.pack_a_segmented(dyg + ic * PQ, PQ, PQ, g.K * PQ, pc, mc, kc, dst);
      return static_cast<const T*>(dst);
    };
    auto pack_b = [&](int64_t pc, int64_t jc, int64_t kc, int64_t nc, T* dst) {
      ct.pack_im2col_t(cp, xg, in.img_stride, pc, kc, jc, nc, dst);
    };
    gemm_blocked<T>(gt, blk, m0, m1, j0, j1, (n1 - n0) * PQ, get_a, pack_b, out, CgRS, ColumnMap{CgRS}, false, nullptr,
                    ab, bb, nullptr, in_place_kc ? PQ : 0);
  };
  const Scratch<T> abuf(Slot::packed_a, gemm_a_buffer_size(gt, blk)), bbuf(Slot::packed_b, gemm_b_buffer_size(gt, blk));
  const int64_t threads = static_cast<int64_t>(torch::stable::get_num_threads());
  // Tiles, or the images split into parts whose sums are added: a different order of the same
  // additions, so the choice and the split depend on the shape alone, as if kParts threads ran
  // it (they used to follow the thread count: a first layer's dW differed between 1 and 2).
  constexpr int64_t kParts = 4;
  const bool tiles = plan_tasks(Kg, CgRS, g.G, gt.mr, gt.nr, kParts, blk.nc).tasks(g.G) >= kParts || g.N < 2;
  if (tiles) {
    const TaskGrid grid = plan_tasks(Kg, CgRS, g.G, gt.mr, gt.nr, threads, blk.nc);
    // Split dW into tiles: each task reduces over every image, nothing to add up afterwards.
    torch::stable::parallel_for(0, grid.tasks(g.G), 1, [&](int64_t b, int64_t e) {
      for (int64_t task = b; task < e; ++task) {
        const int64_t gi = task / (grid.row_blocks * grid.col_blocks);
        const int64_t m0 = (task / grid.col_blocks) % grid.row_blocks * grid.row_block;
        const int64_t j0 = task % grid.col_blocks * grid.col_block;
        part(gi, m0, std::min(Kg, m0 + grid.row_block), j0, std::min(CgRS, j0 + grid.col_block), 0, g.N,
             dw + gi * Kg * CgRS, abuf.get(), bbuf.get());
      }
    });
    return;
  }
  // Too small to tile (e.g. a first layer): split the images, then add the partial sums.
  const int64_t parts = std::min(kParts, g.N), total = g.K * CgRS;
  T* partial = workspace<T>(Slot::partial_sums, parts * total);
  torch::stable::parallel_for(0, parts, 1, [&](int64_t b, int64_t e) {
    for (int64_t pi = b; pi < e; ++pi) {
      for (int64_t gi = 0; gi < g.G; ++gi) {
        part(gi, 0, Kg, 0, CgRS, pi * g.N / parts, (pi + 1) * g.N / parts, partial + pi * total + gi * Kg * CgRS,
             abuf.get(), bbuf.get());
      }
    }
  });
  torch::stable::parallel_for(0, total, 4096, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      T s = partial[i];
      for (int64_t pi = 1; pi < parts; ++pi) s += partial[pi * total + i];
      dw[i] = s;
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Depthwise paths (C/G == 1; output channel k reads input channel k / m, m = K / G).
// ---------------------------------------------------------------------------------------------

// Below this many output pixels, depthwise forward runs channel-blocked (one vector = one
// pixel's channels); above, per plane along rows. Measured on MobileNetV2's layers (2 threads,
// Zen 4): blocked wins up to 28 x 28 outputs, the plane kernel from 56 x 56 (benchmarks/README.md).
constexpr int64_t kDwBlockedMaxPixels = 32 * 32;

template <class T>
void forward_depthwise_blocked(Isa isa, const Conv2dGeometry& g, const T* x, const T* w, const T* bias, T* y) {
  const auto& ct = conv2d_table<T>(isa);
  const int64_t lanes = ct.vector_width, blocks = ceil_div(g.C, lanes), RS = g.RS();
  const Scratch<T> scratch(Slot::dw_window, dw_blocked_scratch(g, lanes));
  torch::stable::parallel_for(0, g.N * blocks, 1, [&](int64_t b, int64_t e) {
    for (int64_t task = b; task < e; ++task) {
      const int64_t n = task / blocks, c0 = task % blocks * lanes, nch = std::min(lanes, g.C - c0);
      ct.dw_blocked_forward(g, x + (n * g.C + c0) * g.HW(), nch, w + c0 * RS, bias ? bias + c0 : nullptr, scratch.get(),
                            y + (n * g.K + c0) * g.PQ());
    }
  });
}

template <class T>
void forward_depthwise(Isa isa, const Conv2dGeometry& g, const T* x, const T* w, const T* bias, T* y) {
  const auto& ct = conv2d_table<T>(isa);
  if (g.Kg() == 1 && g.PQ() <= kDwBlockedMaxPixels) return forward_depthwise_blocked(isa, g, x, w, bias, y);
  const Planes pl(g);
  const ConvPlanes cp = pl.view(g);
  const bool direct = pl.layout.is_input(g);
  const int64_t m = g.Kg(), RS = g.RS(), ext_size = g.P * pl.layout.cols;
  const Scratch<T> planes(Slot::plane, direct ? 0 : pl.layout.size), ext(Slot::row_ext, ext_size);
  torch::stable::parallel_for(0, g.N * g.C, 1, [&](int64_t b, int64_t e) {
    for (int64_t nc = b; nc < e; ++nc) {
      const int64_t n = nc / g.C, c = nc % g.C;
      const T* plane = x + nc * g.HW();
      if (!direct) {
        ct.build_plane(g, pl.layout, plane, planes.get());
        plane = planes.get();
      }
      for (int64_t k = c * m; k < (c + 1) * m; ++k) {
        ct.dw_forward(cp, plane, w + k * RS, bias ? bias[k] : T(0), ext.get(), y + (n * g.K + k) * g.PQ());
      }
    }
  });
}

template <class T>
void grad_input_depthwise(Isa isa, const Conv2dGeometry& g, const T* dy, const T* w, T* dx) {
  const auto& ct = conv2d_table<T>(isa);
  const Planes pl(g);
  const ConvPlanes cp = pl.view(g);
  const int64_t m = g.Kg(), RS = g.RS();
  const Scratch<T> planes(Slot::plane, pl.layout.size), pad(Slot::padded_grad, dw_pad_grad_size(cp));
  torch::stable::parallel_for(0, g.N * g.C, 1, [&](int64_t b, int64_t e) {
    T* plane = planes.get();
    for (int64_t nc = b; nc < e; ++nc) {
      const int64_t n = nc / g.C, c = nc % g.C;
      for (int64_t k = c * m; k < (c + 1) * m; ++k) {
        const T* dy_pad = ct.dw_pad_grad(cp, dy + (n * g.K + k) * g.PQ(), pad.get());
        ct.dw_backward_input(cp, dy_pad, w + k * RS, k > c * m, plane);
      }
      ct.read_plane(g, pl.layout, plane, dx + nc * g.HW());
    }
  });
}

template <class T>
void grad_weight_depthwise_blocked(Isa isa, const Conv2dGeometry& g, const T* dy, const T* x, T* dw) {
  const auto& ct = conv2d_table<T>(isa);
  const int64_t lanes = ct.vector_width, blocks = ceil_div(g.C, lanes), RS = g.RS();
  const Scratch<T> scratch(Slot::dw_window, dw_blocked_scratch(g, lanes)), acc(Slot::dw_acc, RS * lanes);
  torch::stable::parallel_for(0, blocks, 1, [&](int64_t b, int64_t e) {
    T* a = acc.get();
    for (int64_t blk = b; blk < e; ++blk) {
      const int64_t c0 = blk * lanes, nch = std::min(lanes, g.C - c0);
      std::fill(a, a + RS * lanes, T(0));
      for (int64_t n = 0; n < g.N; ++n) {
        ct.dw_blocked_weight(g, x + (n * g.C + c0) * g.HW(), dy + (n * g.K + c0) * g.PQ(), nch, scratch.get(), a);
      }
      for (int64_t lane = 0; lane < nch; ++lane) {
        for (int64_t rs = 0; rs < RS; ++rs) dw[(c0 + lane) * RS + rs] = a[rs * lanes + lane];
      }
    }
  });
}

// Also the weight gradient of a dense convolution with one input channel (a network's first
// layer on grey images): output channel k's gradient is then the same sum as a depthwise one's.
// Tasks own whole channels, so each k sums its images in order whatever the split: input
// channels when there are enough of them, else output channels. Seed ConvNet conv1 (1 -> 16,
// 28 x 28, batch 64, 2 threads): 361 us as a GEMM (M = 16 rows, 9 columns of a 16-wide panel),
// 224 us here, 181 us with the taps sharing each dy load (dw_backward_weight).
template <class T>
void grad_weight_depthwise(Isa isa, const Conv2dGeometry& g, const T* dy, const T* x, T* dw) {
  const auto& ct = conv2d_table<T>(isa);
  if (g.Kg() == 1 && g.PQ() <= kDwBlockedMaxPixels) return grad_weight_depthwise_blocked(isa, g, dy, x, dw);
  const Planes pl(g);
  const ConvPlanes cp = pl.view(g);
  const bool direct = pl.layout.is_input(g);
  const int64_t m = g.Kg(), RS = g.RS();
  const bool by_output = g.C < torch::stable::get_num_threads() && m > 1;
  const Scratch<T> planes(Slot::plane, direct ? 0 : pl.layout.size), ext(Slot::row_ext, g.P * pl.layout.cols);
  std::fill(dw, dw + g.K * RS, T(0));
  torch::stable::parallel_for(0, by_output ? g.K : g.C, 1, [&](int64_t b, int64_t e) {
    for (int64_t task = b; task < e; ++task) {
      const int64_t c = by_output ? task / m : task;
      const int64_t k0 = by_output ? task : c * m, k1 = by_output ? task + 1 : (c + 1) * m;
      for (int64_t n = 0; n < g.N; ++n) {
        const T* plane = x + (n * g.C + c) * g.HW();
        if (!direct) {
          ct.build_plane(g, pl.layout, plane, planes.get());
          plane = planes.get();
        }
        for (int64_t k = k0; k < k1; ++k) {
          const T* dy_ext = ct.dw_extend(cp, dy + (n * g.K + k) * g.PQ(), ext.get());
          ct.dw_backward_weight(cp, dy_ext, plane, dw + k * RS);
        }
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Stride-1 data gradient as a forward convolution
// ---------------------------------------------------------------------------------------------

// With stride 1, dX = conv2d(dY, W') where W'[g Cg + c][k][r][s] = W[g Kg + k][c][R-1-r][S-1-s]
// (each group's weight transposed and flipped) and padding d (k - 1) - p on each side: every
// input pixel gathers the outputs that read it. This reuses the forward kernels (folded images,
// pre-packed weights, task planning) instead of a GEMM + col2im scatter. The two forms trade
// differently: the forward packs dY's im2col, each packed value serving Cg FMAs, while the GEMM
// reads dY in place and scatters Cg R S rows, each value of which sums Kg FMAs. So the GEMM form
// is taken when
//  - the forward would have fewer than half a micro-tile of rows (Cg <= mr / 2: a network's first
//    layer, C = 1 or 3), where most of every tile is padding. Seed ConvNet conv1 (C = 1, 28 x 28,
//    N = 8, 2 threads): 163 -> 44 us;
//  - or the window is wider than 1 x 1 and Kg >= 2 Cg. Measured, 2 threads, forward -> GEMM form
//    (before its scatter was flat, see grad_input_gemm): seed conv2 (16 -> 32, 13 x 13, N = 64)
//    974 -> 856 us on AVX-512 (float64 2095 -> 1145, AVX2 1443 -> 820), 3x3 8 -> 64 at 20 x 20
//    809 -> 361 us, 32 -> 64 1426 -> 1261 us; while with Kg = Cg (ResNet's 3x3 blocks) the
//    forms are within 5-10% (the forward ahead), with Kg = Cg / 2 the forward is faster, and
//    every 1 x 1 ran faster as a forward (64 -> 256 @ 56: 1254 vs 1791 us). With the flat
//    scatter: seed conv2 613 us, and the same ranking elsewhere.
bool grad_input_as_forward(const Conv2dGeometry& g, int64_t mr) {
  const bool reaches = g.sh == 1 && g.sw == 1 && g.ph <= g.dh * (g.R - 1) && g.pw <= g.dw * (g.S - 1);
  if (!reaches) return false;
  if (is_depthwise(g)) return true;
  if (2 * g.Cg() <= mr) return false;
  return g.RS() == 1 || g.Kg() < 2 * g.Cg();
}

Conv2dGeometry transposed_geometry(const Conv2dGeometry& g) {
  Conv2dGeometry t = g;
  t.C = g.K, t.H = g.P, t.W = g.Q;
  t.K = g.C, t.P = g.H, t.Q = g.W;
  t.ph = g.dh * (g.R - 1) - g.ph, t.pw = g.dw * (g.S - 1) - g.pw;
  return t;
}

template <class T>
void transpose_flip_weight(const Conv2dGeometry& g, const T* w, T* out) {
  const int64_t RS = g.RS(), Kg = g.Kg(), Cg = g.Cg();
  torch::stable::parallel_for(0, g.G * Cg, 16, [&](int64_t b, int64_t e) {
    for (int64_t gc = b; gc < e; ++gc) {
      const int64_t gi = gc / Cg, c = gc % Cg;
      for (int64_t k = 0; k < Kg; ++k) {
        const T* src = w + ((gi * Kg + k) * Cg + c) * RS;
        T* dst = out + (gc * Kg + k) * RS;
        for (int64_t rs = 0; rs < RS; ++rs) dst[RS - 1 - rs] = src[rs];
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Ops
// ---------------------------------------------------------------------------------------------

// The parallel loop of the non-finite fix-ups (common/conv2d_exact.h).
const auto exact_par = [](int64_t b, int64_t e, const auto& f) { torch::stable::parallel_for(b, e, 16, f); };

constexpr std::initializer_list<ScalarType> kDtypes = {ScalarType::Float, ScalarType::Double};

// The ISA is read once per op, here, and passed to every kernel the op runs.
Tensor conv2d_cpu(Tensor input, Tensor weight, std::optional<Tensor> bias, IntList stride, IntList padding,
                  IntList dilation, int64_t groups) {
  check_conv_tensors("conv2d", input, weight, bias, kDtypes);
  const Conv2dGeometry g = conv2d_geometry("conv2d", input.sizes(), weight.sizes(), stride, padding, dilation, groups);
  const bool cl = conv_output_channels_last(input, weight);
  const std::optional<Tensor> b = bias.has_value() ? std::optional<Tensor>(as_contiguous(*bias)) : std::nullopt;
  const Isa isa = active_isa();
  if (g.N * g.K * g.P * g.Q > 0 && is_channels_last(input) &&
      nhwc::applies(g)) {  // channels_last in, channels_last out: no layout copies
    const Tensor x = torch::stable::contiguous(input, MemoryFormat::ChannelsLast);
    const Tensor w = torch::stable::contiguous(weight, MemoryFormat::ChannelsLast);  // KRSC memory
    Tensor out = empty_strided({g.N, g.K, g.P, g.Q}, {g.PQ() * g.K, 1, g.Q * g.K, g.K}, input.scalar_type(), input);
    dispatch_float(input.scalar_type(), "conv2d", [&](auto tag) {
      using T = decltype(tag);
      const T* pb = b.has_value() ? b->const_data_ptr<T>() : nullptr;
      nhwc::forward<T>(isa, g, x.const_data_ptr<T>(), w.const_data_ptr<T>(), pb, out.mutable_data_ptr<T>());
      exact::fix_forward_nhwc<T>(g, x.const_data_ptr<T>(), w.const_data_ptr<T>(), pb, out.mutable_data_ptr<T>(),
                                 exact_par);
    });
    return out;
  }
  Tensor y = new_empty(input, {g.N, g.K, g.P, g.Q});
  if (y.numel() == 0) return to_channels_last_if(y, cl);
  const Tensor x = as_contiguous(input), w = as_contiguous(weight);
  dispatch_float(input.scalar_type(), "conv2d", [&](auto tag) {
    using T = decltype(tag);
    const T* pb = b.has_value() ? b->const_data_ptr<T>() : nullptr;
    if (is_depthwise(g)) {
      forward_depthwise<T>(isa, g, x.const_data_ptr<T>(), w.const_data_ptr<T>(), pb, y.mutable_data_ptr<T>());
    } else {
      forward_gemm<T>(isa, g, x.const_data_ptr<T>(), w.const_data_ptr<T>(), pb, y.mutable_data_ptr<T>());
    }
    exact::fix_forward<T>(g, x.const_data_ptr<T>(), w.const_data_ptr<T>(), pb, y.mutable_data_ptr<T>(), exact_par);
  });
  return to_channels_last_if(y, cl);
}

Tensor conv2d_grad_input_cpu(Tensor grad_output, Tensor weight, IntList input_size, IntList stride, IntList padding,
                             IntList dilation, int64_t groups) {
  const char* op = "conv2d_grad_input";
  check_conv_tensors(op, grad_output, weight, std::nullopt, kDtypes);
  const Conv2dGeometry g = conv2d_geometry(op, input_size, weight.sizes(), stride, padding, dilation, groups);
  check_grad_output(op, grad_output, g);
  const bool cl = conv_output_channels_last(grad_output, weight);
  Tensor dx = new_empty(grad_output, {g.N, g.C, g.H, g.W});
  if (dx.numel() == 0) return to_channels_last_if(dx, cl);
  if (grad_output.numel() == 0) {
    torch::stable::zero_(dx);
    return to_channels_last_if(dx, cl);
  }
  const Tensor dy = as_contiguous(grad_output), w = as_contiguous(weight);
  const Isa isa = active_isa();
  dispatch_float(dy.scalar_type(), op, [&](auto tag) {
    using T = decltype(tag);
    const T* pdy = dy.const_data_ptr<T>();
    T* pdx = dx.mutable_data_ptr<T>();
    if (grad_input_as_forward(g, gemm_table<T>(isa).mr)) {
      const Conv2dGeometry t = transposed_geometry(g);
      T* wt = workspace<T>(Slot::flipped_weight, g.K * g.CgRS());
      transpose_flip_weight<T>(g, w.const_data_ptr<T>(), wt);
      if (is_depthwise(t)) {
        forward_depthwise<T>(isa, t, pdy, wt, nullptr, pdx);
      } else {
        forward_gemm<T>(isa, t, pdy, wt, nullptr, pdx);
      }
    } else if (is_depthwise(g)) {
      grad_input_depthwise<T>(isa, g, pdy, w.const_data_ptr<T>(), pdx);
    } else {
      grad_input_gemm<T>(isa, g, pdy, w.const_data_ptr<T>(), pdx);
    }
    exact::fix_grad_input<T>(g, pdy, w.const_data_ptr<T>(), pdx, exact_par);
  });
  return to_channels_last_if(dx, cl);
}

Tensor conv2d_grad_weight_cpu(Tensor grad_output, Tensor input, IntList weight_size, IntList stride, IntList padding,
                              IntList dilation, int64_t groups) {
  const char* op = "conv2d_grad_weight";
  check_grad_weight_tensors(op, grad_output, input, kDtypes);
  const Conv2dGeometry g = conv2d_geometry(op, input.sizes(), weight_size, stride, padding, dilation, groups);
  check_grad_output(op, grad_output, g);
  Tensor dw = new_empty(input, {g.K, g.Cg(), g.R, g.S});
  if (dw.numel() == 0) return dw;
  if (grad_output.numel() == 0) return torch::stable::zero_(dw);
  const Tensor dy = as_contiguous(grad_output), x = as_contiguous(input);
  const Isa isa = active_isa();
  dispatch_float(dy.scalar_type(), op, [&](auto tag) {
    using T = decltype(tag);
    if (g.Cg() == 1) {
      grad_weight_depthwise<T>(isa, g, dy.const_data_ptr<T>(), x.const_data_ptr<T>(), dw.mutable_data_ptr<T>());
    } else {
      grad_weight_gemm<T>(isa, g, dy.const_data_ptr<T>(), x.const_data_ptr<T>(), dw.mutable_data_ptr<T>());
    }
    exact::fix_grad_weight<T>(g, dy.const_data_ptr<T>(), x.const_data_ptr<T>(), dw.mutable_data_ptr<T>());
  });
  return dw;
}

Tensor conv2d_grad_bias_cpu(Tensor grad_output) {
  const char* op = "conv2d_grad_bias";
  check_grad_bias_output(op, grad_output, kDtypes);
  const int64_t N = grad_output.size(0), K = grad_output.size(1), PQ = grad_output.size(2) * grad_output.size(3);
  Tensor db = new_empty(grad_output, {K});
  if (K == 0) return db;
  const Tensor dy = as_contiguous(grad_output);
  const Isa isa = active_isa();
  dispatch_float(dy.scalar_type(), op, [&](auto tag) {
    using T = decltype(tag);
    const auto& ct = conv2d_table<T>(isa);
    const T* p = dy.const_data_ptr<T>();
    T* out = db.mutable_data_ptr<T>();
    torch::stable::parallel_for(0, K, std::max<int64_t>(1, 32768 / std::max<int64_t>(1, N * PQ)),
                                [&](int64_t b, int64_t e) {
                                  for (int64_t k = b; k < e; ++k) {
                                    T s = 0;
                                    for (int64_t n = 0; n < N; ++n) s += ct.sum(p + (n * K + k) * PQ, PQ);
                                    out[k] = s;
                                  }
                                });
  });
  return db;
}

std::tuple<Tensor, Tensor, Tensor> conv2d_backward_cpu(Tensor grad_output, Tensor input, Tensor weight, IntList stride,
                                                       IntList padding, IntList dilation, int64_t groups,
                                                       std::vector<bool> output_mask) {
  return conv2d_backward_by_mask(grad_output, input, weight, stride, padding, dilation, groups, output_mask,
                                 &conv2d_grad_input_cpu, &conv2d_grad_weight_cpu, &conv2d_grad_bias_cpu);
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(dlkernels, CPU, m) {
  m.impl("conv2d", TORCH_BOX(&conv2d_cpu));
  m.impl("conv2d_grad_input", TORCH_BOX(&conv2d_grad_input_cpu));
  m.impl("conv2d_grad_weight", TORCH_BOX(&conv2d_grad_weight_cpu));
  m.impl("conv2d_grad_bias", TORCH_BOX(&conv2d_grad_bias_cpu));
  m.impl("conv2d_backward", TORCH_BOX(&conv2d_backward_cpu));
}

}  // namespace dlk::cpu
