// The CPU convolution kernels of one ISA (cpu/kernels/conv2d.h): the packers that turn an image
// into GEMM panels without an im2col buffer, the col2im scatter of the data gradient, and the
// direct depthwise kernels. Used by cpu/conv2d.cpp.
#pragma once

#include <cstdint>

#include "common/conv2d_geometry.h"
#include "cpu/isa.h"

namespace dlk::cpu {

template <class T>
struct Conv2dTable {
  // Forward B panels: im2col(x) rows [k0, k0 + kc) (k = (c, r, s) within one group) and columns
  // [j0, j0 + nc) (j = (n, p, q) over the whole batch). x points at the group's first channel of
  // image 0; images are x_img_stride apart.
  void (*pack_im2col)(const Conv2dGeometry& g, const T* x, int64_t x_img_stride, int64_t k0, int64_t kc, int64_t j0,
                      int64_t nc, T* dst);
  // Weight-gradient B panels: im2col(x) transposed, rows [pq0, pq0 + kc) of one image and columns
  // [j0, j0 + nc) (j = (c, r, s)). x points at the group's first channel of that image.
  void (*pack_im2col_t)(const Conv2dGeometry& g, const T* x, int64_t pq0, int64_t kc, int64_t j0, int64_t nc,
                        T* dst);
  // dx (one image, group's first channel) += col2im of dcol rows for channels [c0, c1) (all r, s)
  // and columns [pq0, pq0 + ncols); row i of dcol at dcol + i * ldcol.
  void (*col2im_add)(const Conv2dGeometry& g, const T* dcol, int64_t ldcol, int64_t c0, int64_t c1, int64_t pq0,
                     int64_t ncols, T* dx);

  // Depthwise (C/G == 1). A "phase plane" of one channel holds its zero-padded image split into sw
  // column phases, so every tap of a strided filter reads contiguous memory:
  //   plane[phi][u][v] = x[u - pad_h][v * sw + phi - pad_w], u < rows, v < cols.
  void (*dw_build_plane)(const T* x, int64_t H, int64_t W, int64_t pad_h, int64_t pad_w, int64_t sw, int64_t rows,
                         int64_t cols, T* plane);
  // The inverse for gradients: x[ih][iw] = plane[(iw + pad_w) % sw][ih + pad_h][(iw + pad_w) / sw].
  void (*dw_read_plane)(const T* plane, int64_t H, int64_t W, int64_t pad_h, int64_t pad_w, int64_t sw, int64_t rows,
                        int64_t cols, T* x);
  // y[p][q] = bias + sum_{r,s} w[r][s] plane(p sh + r dh, q sw + s dw), P x Q output.
  void (*dw_forward)(const Conv2dGeometry& g, const T* plane, int64_t rows, int64_t cols, const T* w, T bias, T* y);
  // plane(p sh + r dh, q sw + s dw) += w[r][s] dy[p][q] (the transpose of dw_forward).
  void (*dw_backward_input)(const Conv2dGeometry& g, const T* dy, const T* w, int64_t rows, int64_t cols, T* plane);
  // dw[r][s] += sum_{p,q} dy[p][q] plane(p sh + r dh, q sw + s dw).
  void (*dw_backward_weight)(const Conv2dGeometry& g, const T* dy, const T* plane, int64_t rows, int64_t cols, T* dw);

  // Sum of n contiguous values (bias gradient).
  T (*sum)(const T* x, int64_t n);
};

#define DLK_DECLARE(ns)                    \
  namespace ns {                           \
  template <class T>                       \
  const Conv2dTable<T>& conv2d_table();    \
  }
DLK_FOR_EACH_ISA(DLK_DECLARE)
#undef DLK_DECLARE

template <class T>
const Conv2dTable<T>& conv2d_table() {
  DLK_ISA_DISPATCH(conv2d_table<T>())
}

}  // namespace dlk::cpu
