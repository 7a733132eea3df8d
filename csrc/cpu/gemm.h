// Blocked GEMM driver (BLIS loop order) over the per-ISA micro-kernel and packers of
// cpu/gemm_table.h. Single-threaded per call: callers split M or N across threads, each with its
// own packing buffers.
//
//   for jc in N step NC:                 B block (KC x NC) packed once, stays in L2/L3
//     for pc in K step KC:
//       pack B[pc.., jc..]
//       for ic in M step MC:             A block (MC x KC), stays in L2
//         get A[ic.., pc..] (packed now or pre-packed by the caller)
//         for jr in NC step NR:          one B panel (KC x NR) reused from L1 by every A panel
//           for ir in MC step MR:  micro-kernel
//
// Columns may be folded from several images (see ColumnMap); a micro-tile that straddles two
// segments is computed into a buffer and scattered.
#pragma once

#include <algorithm>
#include <cstdint>

#include "cpu/gemm_table.h"

namespace dlk::cpu {

struct GemmBlocking {
  int64_t mc, kc, nc;
};

// Cache blocking for this ISA's tile (multiples of MR / NR). Chosen by measurement on a Zen 4
// core (32 KB L1d, 1 MB L2): see benchmarks/README.md.
template <class T>
GemmBlocking gemm_blocking(const GemmTable<T>& t) {
  const int64_t kc = 256;
  const int64_t mc = t.mr * (512 / t.mr);
  const int64_t nc = t.nr * (2048 / t.nr);
  return {mc, kc, nc};
}

// Where column j of C starts (row 0): columns [origin, ...) come in segments of seg_len
// contiguous values, segments seg_stride apart.
struct ColumnMap {
  int64_t seg_len;
  int64_t seg_stride = 0;
  int64_t origin = 0;
  int64_t offset(int64_t j) const { return ((j - origin) / seg_len) * seg_stride + (j - origin) % seg_len; }
  bool contiguous(int64_t j, int64_t n) const { return (j - origin) % seg_len + n <= seg_len; }
};

// Workspace sizes (elements) for one thread.
template <class T>
int64_t gemm_a_buffer_size(const GemmTable<T>& t, const GemmBlocking& b) {
  return (b.mc + t.mr) * b.kc;
}
template <class T>
int64_t gemm_b_buffer_size(const GemmTable<T>& t, const GemmBlocking& b) {
  return (b.nc + t.nr) * b.kc;
}

// C[0:M, n0:n1] (+)= A[0:M, :] * B[:, n0:n1].
//   get_a(ic, pc, mc, kc, buf) -> const T*: the packed A block (pack into buf, or return a
//     pointer into a pre-packed A).
//   pack_b(pc, jc, kc, nc, buf): packs B[pc:pc+kc, jc:jc+nc] into buf (jc, nc in absolute columns).
template <class T, class GetA, class PackB>
void gemm_blocked(const GemmTable<T>& t, const GemmBlocking& blk, int64_t M, int64_t n0, int64_t n1, int64_t K,
                  GetA&& get_a, PackB&& pack_b, T* C, int64_t ldc, ColumnMap cols, bool accumulate,
                  const T* row_bias, T* a_buf, T* b_buf) {
  const int MR = t.mr, NR = t.nr;
  if (K == 0) {
    if (accumulate) return;
    for (int64_t i = 0; i < M; ++i) {
      for (int64_t j = n0; j < n1; ++j) C[i * ldc + cols.offset(j)] = row_bias ? row_bias[i] : T(0);
    }
    return;
  }
  alignas(64) T tile[32 * 64];  // a straddling micro-tile (MR <= 32, NR <= 64)
  for (int64_t jc = n0; jc < n1; jc += blk.nc) {
    const int64_t nc = std::min(blk.nc, n1 - jc);
    for (int64_t pc = 0; pc < K; pc += blk.kc) {
      const int64_t kc = std::min(blk.kc, K - pc);
      const bool acc = accumulate || pc > 0;
      pack_b(pc, jc, kc, nc, b_buf);
      for (int64_t ic = 0; ic < M; ic += blk.mc) {
        const int64_t mc = std::min(blk.mc, M - ic);
        const T* a_pack = get_a(ic, pc, mc, kc, a_buf);
        const T* bias = (!acc && row_bias) ? row_bias + ic : nullptr;
        for (int64_t jr = 0; jr < nc; jr += NR) {
          const int nr = static_cast<int>(std::min<int64_t>(NR, nc - jr));
          const int64_t j = jc + jr;
          const bool contiguous = cols.contiguous(j, nr);
          T* cj = C + cols.offset(j);
          for (int64_t ir = 0; ir < mc; ir += MR) {
            const int mr = static_cast<int>(std::min<int64_t>(MR, mc - ir));
            const T* ap = a_pack + ir * kc;
            const T* bp = b_buf + jr * kc;
            const T* br = bias ? bias + ir : nullptr;
            if (contiguous) {
              t.micro(kc, ap, bp, cj + (ic + ir) * ldc, ldc, mr, nr, acc, br);
              continue;
            }
            // Straddling tile: gather C, multiply in the buffer, scatter back.
            for (int i = 0; i < mr; ++i) {
              for (int jj = 0; jj < nr; ++jj) {
                tile[i * NR + jj] = acc ? C[(ic + ir + i) * ldc + cols.offset(j + jj)] : T(0);
              }
            }
            t.micro(kc, ap, bp, tile, NR, mr, nr, acc, br);
            for (int i = 0; i < mr; ++i) {
              for (int jj = 0; jj < nr; ++jj) C[(ic + ir + i) * ldc + cols.offset(j + jj)] = tile[i * NR + jj];
            }
          }
        }
      }
    }
  }
}

}  // namespace dlk::cpu
