// The CPU GEMM core of one ISA (cpu/kernels/gemm.h) as a table of plain functions, used by the
// blocked driver (cpu/gemm.h) and by convolution's own packers.
//
// Notation (BLIS): C[M x N] (+)= A[M x K] * B[K x N]. A is packed in panels of MR rows (for each
// k, MR consecutive values), B in panels of NR columns (for each k, NR consecutive values), both
// zero-padded to full panels, so the micro-kernel never branches on edges inside its k loop. An A
// that is already row-major with k contiguous (convolution weights) may instead be read in place.
#pragma once

#include <array>
#include <cstdint>

#include "cpu/isa.h"

namespace dlk::cpu {

template <class T>
struct GemmTable {
  int mr;  // rows of a micro-tile (A panel height)
  int nr;  // columns of a micro-tile (B panel width)
  int w;   // columns of one vector; a panel holds nr / w of them

  // C tile (mr x nr valid) = [C +] A * b_panel [+ bias[row]] over kc. A is a packed panel when
  // lda == 0, else MR rows of a row-major matrix read in place (row i at a + i lda; no packing,
  // for an A that every call would otherwise repack, such as a convolution's weights).
  // accumulate: add to C; else overwrite, adding row_bias[i] or col_bias[j] when non-null (at
  // most one of them: a convolution's bias is per row, a linear layer's per column).
  // B likewise: a packed panel when ldb == 0, else kc rows of a row-major matrix ldb apart read in
  // place (only the nr valid columns are read), for a B that would be packed for few A panels.
  using Micro = void (*)(int64_t kc, const T* a, int64_t lda, const T* b, int64_t ldb, T* c, int64_t ldc, int mr,
                         int nr, bool accumulate, const T* row_bias, const T* col_bias);
  // micro[r][v - 1] computes the first v vectors of a panel (v w columns) for the first 1, 2, 4
  // or all mr rows (r = 0 .. 3): the full tile, and smaller kernels for a last panel with fewer
  // columns or rows. Width entries past nr / w repeat the widest.
  std::array<std::array<Micro, 4>, 4> micro;
  Micro micro_for(int mr_valid, int nr_valid) const {
    const int r = mr_valid <= 1 ? 0 : mr_valid <= 2 ? 1 : mr_valid <= 4 ? 2 : 3;
    return micro[r][(nr_valid + w - 1) / w - 1];
  }

  // Packs A[m0.., k0..] (mc x kc), A(i, k) at a[i * rs + k * cs], into ceil(mc / MR) panels
  // (vectorised for cs == 1 and for rs == 1).
  void (*pack_a)(const T* a, int64_t rs, int64_t cs, int64_t mc, int64_t kc, T* dst);
  // Packs A (mc x kc) whose columns come in segments: A(i, k) at
  // a[i * rs + ((k0 + k) / seg_len) * seg_stride + (k0 + k) % seg_len], e.g. a gradient's rows
  // over several images folded into one reduction.
  void (*pack_a_segmented)(const T* a, int64_t rs, int64_t seg_len, int64_t seg_stride, int64_t k0, int64_t mc,
                           int64_t kc, T* dst);
  // Packs B (kc x nc), B(k, j) at b[k * rs + j * cs], into ceil(nc / NR) panels. Vector copies
  // for cs == 1 (row-major), register transposes for rs == 1 (column-major).
  void (*pack_b)(const T* b, int64_t rs, int64_t cs, int64_t kc, int64_t nc, T* dst);
  // dst[j * ldd + i] = src[i * lds + j] for i < rows, j < cols: a C block that was computed as
  // its transpose (C^T = B^T A^T), written back in W x W register transposes.
  void (*transpose)(const T* src, int64_t lds, int64_t rows, int64_t cols, T* dst, int64_t ldd);
  // C[i * ldc + j] = sum_k A[i * lda + k] B[j * ldb + k] (+ bias[j]) for i < m, j < n: dot products
  // of rows, the lanes over k, for products too narrow for the micro-kernel (a linear layer with
  // few outputs, X W^T with both read in place). Rows go in blocks of dot_rows_per_block; the
  // faster form up to dot_max_outputs columns (n) on this ISA.
  void (*dot)(int64_t m, int64_t n, int64_t K, const T* a, int64_t lda, const T* b, int64_t ldb, T* c, int64_t ldc,
              const T* bias);
  int dot_rows_per_block;
  int dot_max_outputs;
  // C[i * ldc + j] = sum_k A(i, k) B[k * ldb + j] for m <= 2 rows of C, A(i, k) at
  // a[i * a_rs + k * a_cs]: B's rows streamed in order into the rows of C (a weight gradient
  // with one or two outputs; a row-major B read by column panels is strided).
  void (*axpy_rows)(int64_t m, int64_t n, int64_t K, const T* a, int64_t a_rs, int64_t a_cs, const T* b, int64_t ldb,
                    T* c, int64_t ldc);
};

#define DLK_DECLARE(ns)             \
  namespace ns {                    \
  template <class T>                \
  const GemmTable<T>& gemm_table(); \
  }
DLK_FOR_EACH_ISA(DLK_DECLARE)
#undef DLK_DECLARE

template <class T>
const GemmTable<T>& gemm_table(Isa isa) {
  DLK_ISA_DISPATCH(isa, gemm_table<T>())
}

}  // namespace dlk::cpu
