// The CPU convolution kernels of one ISA (cpu/kernels/conv2d.h). Everything reads or writes the
// input through planes (common/conv2d_geometry.h: PlaneLayout), so no kernel has a bounds check
// or a strided access in its inner loop. Used by cpu/conv2d.cpp.
#pragma once

#include <cstdint>

#include "common/conv2d_geometry.h"
#include "cpu/isa.h"

namespace dlk::cpu {

// A convolution as the kernels see it: geometry, plane layout and each tap's plane offset.
struct ConvPlanes {
  Conv2dGeometry g;
  PlaneLayout layout;
  const int64_t* taps;  // R * S entries: layout.tap(g, r, s)
};

// The channel-blocked depthwise kernels' scratch, in pixels of `lanes` values: the input as pixel
// planes (the call's PlaneLayout) plus a tail that a last, partial block of kDwBlockedQ outputs
// (and the 3-wide rows' two extra pixels) reads past; then P Q output pixels and R S weight vectors.
constexpr int kDwBlockedQ = 8;
constexpr int kDwBlockedTail = kDwBlockedQ + 2;
inline int64_t dw_blocked_scratch(const Conv2dGeometry& g, int64_t lanes) {
  return (PlaneLayout(g).size + kDwBlockedTail + g.PQ() + g.RS()) * lanes;
}

// The strided depthwise data gradient reads dy at plane positions shifted back by up to a tap's
// offset within its phase: a zero row more than the taps' row shift above dy, zero columns right
// of each row, and rows below up to the phase's height. dw_pad_grad's buffer size in elements.
inline int64_t dw_grad_rows_above(const ConvPlanes& cp) { return cp.layout.rows - cp.g.P + 1; }
inline int64_t dw_pad_grad_size(const ConvPlanes& cp) {
  return (dw_grad_rows_above(cp) + cp.layout.rows) * cp.layout.cols;
}

template <class T>
struct Conv2dTable {
  // Plane of one channel from its H x W image, and back (the crop adds nothing: each pixel has
  // exactly one place in the planes).
  void (*build_plane)(const Conv2dGeometry& g, const PlaneLayout& layout, const T* x, T* plane);
  void (*read_plane)(const Conv2dGeometry& g, const PlaneLayout& layout, const T* plane, T* x);

  // Forward B panels (cpu/gemm_table.h): im2col rows [k0, k0 + kc), k = (c, r, s) of one group,
  // columns [j0, j0 + nc), j = (n, p, q) over the batch. planes: the group's first channel in
  // image 0; images are img_stride apart.
  void (*pack_im2col)(const ConvPlanes& cp, const T* planes, int64_t img_stride, int64_t k0, int64_t kc, int64_t j0,
                      int64_t nc, T* dst);
  // Weight-gradient B panels: im2col transposed, rows [i0, i0 + kc), i = (n, p, q) over the batch,
  // columns [j0, j0 + nc), j = (c, r, s). planes and img_stride as for pack_im2col.
  void (*pack_im2col_t)(const ConvPlanes& cp, const T* planes, int64_t img_stride, int64_t i0, int64_t kc, int64_t j0,
                        int64_t nc, T* dst);
  // planes += col2im of dcol (rows (c, r, s) for channels [c0, c1), columns [pq0, pq0 + ncols) of one
  // image; row i at dcol + i * ldcol). planes: channel c0's plane; the others follow.
  void (*col2im_add)(const ConvPlanes& cp, const T* dcol, int64_t ldcol, int64_t c0, int64_t c1, int64_t pq0,
                     int64_t ncols, T* planes);
  // The same for stride 1 with dcol's columns [f0, f0 + ncols) over the plane's full width
  // (f = p * cols + q, zeros in the padding columns, as dw_extend lays out dy).
  void (*col2im_add_flat)(const ConvPlanes& cp, const T* dcol, int64_t ldcol, int64_t c0, int64_t c1, int64_t f0,
                          int64_t ncols, T* planes);

  // Depthwise (one input channel per group), direct, over a plane's full width (see
  // cpu/kernels/conv2d.h): an output or gradient "ext" holds row p at p * cols, with
  // (P - 1) * cols + Q elements.
  // y[p][q] = bias + sum_{r,s} w[r][s] x(r, s, p, q); ext is scratch (unused when cols == Q).
  void (*dw_forward)(const ConvPlanes& cp, const T* plane, const T* w, T bias, T* ext, T* y);
  // dy (P x Q) widened to an ext with zero padding columns (or dy itself when cols == Q).
  const T* (*dw_extend)(const ConvPlanes& cp, const T* dy, T* ext);
  // dy (P x Q) into buf (dw_pad_grad_size elements) with the zero margins dw_backward_input reads;
  // returns where dy's first row starts in it.
  const T* (*dw_pad_grad)(const ConvPlanes& cp, const T* dy, T* buf);
  // plane(r, s, p, q) = (or += when accumulate) sum of w[r][s] dy[p][q] over the taps landing there:
  // the transpose of dw_forward, every plane element written, from dw_pad_grad's output.
  void (*dw_backward_input)(const ConvPlanes& cp, const T* dy_pad, const T* w, bool accumulate, T* plane);
  // dw[r][s] += sum_{p,q} dy[p][q] plane(r, s, p, q), from the widened dy.
  void (*dw_backward_weight)(const ConvPlanes& cp, const T* dy_ext, const T* plane, T* dw);

  // Channel-blocked depthwise forward for small images (m = 1): nch <= vector_width channels of
  // one image from x (channel planes HW apart) to y (PQ apart); w and bias of those channels
  // (bias may be null); scratch: dw_blocked_scratch(g, vector_width) elements.
  void (*dw_blocked_forward)(const Conv2dGeometry& g, const T* x, int64_t nch, const T* w, const T* bias, T* scratch,
                             T* y);
  // Channel-blocked depthwise weight gradient of one image (m = 1): acc (R S x vector_width, tap
  // major, lane = channel) += the image's contribution; scratch as for dw_blocked_forward.
  void (*dw_blocked_weight)(const Conv2dGeometry& g, const T* x, const T* dy, int64_t nch, T* scratch, T* acc);
  int vector_width;

  // Sum of n contiguous values (bias gradient).
  T (*sum)(const T* x, int64_t n);
};

#define DLK_DECLARE(ns)                 \
  namespace ns {                        \
  template <class T>                    \
  const Conv2dTable<T>& conv2d_table(); \
  }
DLK_FOR_EACH_ISA(DLK_DECLARE)
#undef DLK_DECLARE

template <class T>
const Conv2dTable<T>& conv2d_table(Isa isa) {
  DLK_ISA_DISPATCH(isa, conv2d_table<T>())
}

}  // namespace dlk::cpu
