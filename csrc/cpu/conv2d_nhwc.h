// conv2d forward on channels_last (NHWC) data, without converting it to NCHW and back.
//
// In NHWC a pixel's channels are contiguous, and so are the S C values of a window row when the
// dilation along W is 1: pixel (p, q) reads, for tap row r, the run x[n][p sh + r dh][q sw ..][0 ..]
// of S C values (of the padded input). So the forward is a GEMM with the pixels as rows,
//   Y[(n p q) x K] = X_win[(n p q) x (r s c)] * W^T[(r s c) x K],
// whose A is read in place by the micro-kernel: MR pixels of one output row are sw C apart, and
// each tap row's run is a contiguous stretch of the reduction (the weight in KRSC order, which is
// its channels_last memory). Only the weight is packed, once per call, and the output is written
// as NHWC directly. Before this, a channels_last call paid two layout copies around the NCHW
// kernel and ran at 0.55-0.70x torch's NHWC convolution (benchmarks/README.md).
#pragma once

#include <algorithm>
#include <cstring>
#include <vector>

#include <torch/csrc/stable/ops.h>

#include "common/conv2d_geometry.h"
#include "cpu/gemm.h"
#include "cpu/workspace.h"

namespace dlk::cpu::nhwc {

// Whether forward() takes this call: a dense convolution (one group) whose padding is within the
// kernel's reach and whose padded copy stays within a few times the input (a heavily dilated
// kernel on a tiny image goes the NCHW way, whose planes hold only what the taps read), with
// window-row runs long enough to amortise a micro-tile's C round trip per run (a first layer's 3
// channels are not).
inline bool applies(const Conv2dGeometry& g) {
  const int64_t run = g.dw == 1 ? g.S * g.C : g.C;
  const int64_t padded = (g.H + 2 * g.ph) * (g.W + 2 * g.pw);
  return g.G == 1 && g.ph <= g.dh * (g.R - 1) && g.pw <= g.dw * (g.S - 1) && padded <= 4 * g.HW() + 1024 && run >= 16;
}

// One stretch of the reduction: kc values of B from row k0, read from A at `offset` elements past
// a pixel's base in the padded input.
struct Step {
  int64_t offset, k0, kc;
};

// x: NHWC; w: KRSC; bias: K values or null; y: NHWC (N P Q x K, row-major).
template <class T>
void forward(Isa isa, const Conv2dGeometry& g, const T* x, const T* w, const T* bias, T* y) {
  const auto& gt = gemm_table<T>(isa);
  const int64_t C = g.C, K = g.K, RSC = g.RS() * C, Hp = g.H + 2 * g.ph, Wp = g.W + 2 * g.pw;
  // The padded input (or the input itself without padding): every read below is in bounds.
  const T* xp = x;
  if (g.ph > 0 || g.pw > 0) {
    T* out = workspace<T>(Slot::input_planes, g.N * Hp * Wp * C);
    const int64_t row = Wp * C, left = g.pw * C, inner = g.W * C;
    torch::stable::parallel_for(0, g.N * Hp, 16, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const int64_t n = i / Hp, h = i % Hp - g.ph;
        T* dst = out + i * row;
        if (h < 0 || h >= g.H) {
          std::fill(dst, dst + row, T(0));
          continue;
        }
        std::fill(dst, dst + left, T(0));
        std::memcpy(dst + left, x + (n * g.H + h) * inner, inner * sizeof(T));
        std::fill(dst + left + inner, dst + row, T(0));
      }
    });
    xp = out;
  }
  // W^T as B panels of NR output channels over the whole reduction (B(k, j) = w[j RSC + k]).
  const int64_t panels = (K + gt.nr - 1) / gt.nr;
  T* wb = workspace<T>(Slot::packed_weight, panels * gt.nr * RSC);
  torch::stable::parallel_for(0, panels, 1, [&](int64_t b, int64_t e) {
    for (int64_t jp = b; jp < e; ++jp) {
      gt.pack_b(w + jp * gt.nr * RSC, 1, RSC, RSC, std::min<int64_t>(gt.nr, K - jp * gt.nr), wb + jp * gt.nr * RSC);
    }
  });
  // The reduction as runs of the window (a tap row, or a tap where the dilation along W splits
  // it), each cut into balanced blocks of at most 256 (as gemm_blocking's KC).
  std::vector<Step> steps;
  const int64_t taps_per_run = g.dw == 1 ? g.S : 1, run = taps_per_run * C;
  for (int64_t r = 0; r < g.R; ++r) {
    for (int64_t s = 0; s < g.S; s += taps_per_run) {
      const int64_t base = (r * g.dh * Wp + s * g.dw) * C, k0 = (r * g.S + s) * C;
      const int64_t blocks = (run + 255) / 256, kc = (run + blocks - 1) / blocks;
      for (int64_t o = 0; o < run; o += kc) steps.push_back({base + o, k0 + o, std::min(kc, run - o)});
    }
  }
  const int64_t lda = g.sw * C;
  // Tasks are output rows; within one, each MR-pixel tile stays in L1 while the weight panels
  // stream from L2. A 1 x 1, stride-1, unpadded convolution is a plain GEMM: its pixels run on
  // across rows and images, so tiles are full and tasks are chunks of pixels (a 14-wide row was
  // 8 + 6 pixels). Every output is one task's, summed in the same order on any thread count.
  const bool flat = g.is_pointwise();
  const int64_t line = flat ? g.N * g.PQ() : g.Q, chunk = flat ? 32 * gt.mr : line;
  const int64_t per_line = (line + chunk - 1) / chunk;
  torch::stable::parallel_for(0, (flat ? 1 : g.N * g.P) * per_line, 1, [&](int64_t b, int64_t e) {
    for (int64_t task = b; task < e; ++task) {
      const int64_t np = task / per_line, first = task % per_line * chunk, last = std::min(line, first + chunk);
      const int64_t n = np / g.P, p = np % g.P;
      const T* row = xp + ((n * Hp + p * g.sh) * Wp) * C;
      T* yrow = y + np * line * K;
      for (int64_t q0 = first; q0 < last; q0 += gt.mr) {
        const int mr = static_cast<int>(std::min<int64_t>(gt.mr, last - q0));
        const T* a = row + q0 * lda;
        for (int64_t jp = 0; jp < panels; ++jp) {
          const int64_t j0 = jp * gt.nr;
          const int nr = static_cast<int>(std::min<int64_t>(gt.nr, K - j0));
          const auto micro = gt.micro_for(mr, nr);
          const T* panel = wb + j0 * RSC;
          T* c = yrow + q0 * K + j0;
          for (size_t i = 0; i < steps.size(); ++i) {
            const Step& st = steps[i];
            micro(st.kc, a + st.offset, lda, panel + st.k0 * gt.nr, 0, c, K, mr, nr, i > 0, nullptr,
                  i == 0 && bias ? bias + j0 : nullptr);
          }
        }
      }
    }
  });
}

}  // namespace dlk::cpu::nhwc
