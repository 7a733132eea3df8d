// The CPU pooling kernels of one ISA, as a table of plain functions on raw pointers.
// Filled in by cpu/kernels/pool2d.h (compiled once per ISA), used by cpu/pool2d.cpp.
// Each kernel does the work items [begin, end) of its layout, so a parallel loop splits them:
//   NCHW forward: output rows (plane, oh)       NCHW backward: input rows (plane, ih)
//   NHWC forward: output pixels (n, oh, ow)     NHWC backward: input rows (n, ih)
// Backward kernels write every element of their rows (no zero-fill needed) and add the
// contributions of the windows in ascending output order: deterministic, and torch's order.
#pragma once

#include <cstdint>

#include "common/pool2d.h"
#include "cpu/isa.h"

namespace dlk::cpu {

template <class T>
struct Pool2dTable {
  // indices may be null (no indices wanted).
  using MaxForward = void (*)(const T* x, T* y, int64_t* indices, const Pool2dGeometry& g, int64_t begin, int64_t end);
  using MaxBackward = void (*)(const T* dy, const int64_t* indices, T* dx, const Pool2dGeometry& g, int64_t begin,
                               int64_t end);
  using AvgForward = void (*)(const T* x, T* y, const Pool2dGeometry& g, int64_t begin, int64_t end);
  using AvgBackward = void (*)(const T* dy, T* dx, const Pool2dGeometry& g, int64_t begin, int64_t end);
  MaxForward max_nchw, max_nhwc;
  MaxBackward max_backward_nchw, max_backward_nhwc;
  AvgForward avg_nchw, avg_nhwc, adaptive_nchw, adaptive_nhwc;
  AvgBackward avg_backward_nchw, avg_backward_nhwc, adaptive_backward_nchw, adaptive_backward_nhwc;
};

#define DLK_DECLARE(ns)                 \
  namespace ns {                        \
  template <class T>                    \
  const Pool2dTable<T>& pool2d_table(); \
  }
DLK_FOR_EACH_ISA(DLK_DECLARE)
#undef DLK_DECLARE

template <class T>
const Pool2dTable<T>& pool2d_table(Isa isa) {
  DLK_ISA_DISPATCH(isa, pool2d_table<T>())
}

}  // namespace dlk::cpu
