// The shape of one 2-D pooling call, torch-free so CPU kernels and CUDA launchers share it.
// Input N x C x H x W, output N x C x OH x OW; `h` and `w` are the two window axes.
// Max pooling follows torch's window rules exactly: taps that fall in the padding are skipped,
// the running maximum starts at -inf with the first in-bounds tap's index, a larger value or a
// NaN replaces it (so a NaN wins, and among equal values the first in row-major order).
#pragma once

#include <cstdint>

#include "common/window2d.h"

namespace dlk {

struct Pool2dGeometry {
  int64_t N, C, H, W, OH, OW;
  WindowAxis h, w;
  // avg_pool2d only: count_include_pad, divisor_override (0: none).
  bool count_include_pad;
  int64_t divisor;

  int64_t planes() const { return N * C; }
};

// First in-bounds tap of window o and the end of its taps (torch's adjusted start and end).
struct TapRange {
  int64_t begin, end;
};
DLK_HD TapRange max_taps(const WindowAxis& a, int64_t o) {
  int64_t b = a.start(o);
  const int64_t e0 = b + a.span();
  const int64_t e = e0 < a.in ? e0 : a.in;
  if (b < 0) b += (-b + a.d - 1) / a.d * a.d;  // torch steps by d; arithmetic, not a loop
  return {b, e};
}

// Average-pool window o: in-bounds [begin, end) and the length counted with padding.
struct AvgRange {
  int64_t begin, end, padded;
};
DLK_HD AvgRange avg_range(const WindowAxis& a, int64_t o) {
  const int64_t b = a.start(o);
  int64_t e = b + a.k;
  if (e > a.in + a.p) e = a.in + a.p;
  const int64_t padded = e - b;
  return {b < 0 ? 0 : b, e < a.in ? e : a.in, padded};
}

DLK_HD int64_t avg_divisor(const Pool2dGeometry& g, const AvgRange& rh, const AvgRange& rw) {
  if (g.divisor != 0) return g.divisor;
  if (g.count_include_pad) return rh.padded * rw.padded;
  return (rh.end - rh.begin) * (rw.end - rw.begin);
}

}  // namespace dlk
