// Blocked GEMM driver over the per-ISA micro-kernel and packers of cpu/gemm_table.h.
// Single-threaded per call: callers split M or N across threads, each with its own buffers.
//
//   for jc in N step NC:                 B block (KC x NC) packed once, stays in L2/L3
//     for pc in K step KC:
//       pack B[pc.., jc..]
//       for ic in M step MC:             A block (MC x KC), stays in L2
//         get A[ic.., pc..] (packed now or pre-packed by the caller)
//         for ir in MC step MR:          one A panel (MR x KC, 8 KB) stays in L1 ...
//           for jr in NC step NR:        ... while the B panels stream from L2: micro-kernel
//
// The inner two loops run in this order rather than BLIS's (jr outside) because a 48-wide B
// panel of KC = 256 (48 KB) does not fit the 32 KB L1 of the machines measured; with the A
// panel resident, 1-thread GEMMs of conv shapes ran 1-5% faster (benchmarks/README.md).
//
// Columns may be folded from several images (see ColumnMap); a micro-tile that straddles two
// segments is computed into a buffer and scattered.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "cpu/gemm_table.h"

namespace dlk::cpu {

struct GemmBlocking {
  int64_t mc, kc, nc;
};

// Cache blocking for this ISA's tile (multiples of MR / NR) and a reduction of length K. KC is at
// most 256 and the K blocks are balanced (576 = 3 x 192, not 256 + 256 + 64): a short last block
// pays a full C-tile round trip for little work. Chosen by measurement on a Zen 4 core (32 KB
// L1d, 1 MB L2): see benchmarks/README.md.
template <class T>
GemmBlocking gemm_blocking(const GemmTable<T>& t, int64_t K) {
  constexpr int64_t kMaxKc = 256;
  const int64_t blocks = std::max<int64_t>(1, (K + kMaxKc - 1) / kMaxKc);
  const int64_t kc = std::max<int64_t>(1, (K + blocks - 1) / blocks);
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

// What a pack_b callable may return instead of packing: B[pc.., jc..] read in place by the
// micro-kernel, rows ldb apart (p null: it packed into the buffer after all).
template <class T>
struct BInPlace {
  const T* p = nullptr;
  int64_t ldb = 0;
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

// C[m0:m1, n0:n1] (+)= A[m0:m1, :] * B[:, n0:n1].
//   get_a(ic, pc, mc, kc, buf) -> const T*: the packed A block at absolute row ic (pack into buf,
//     or return a pointer into a pre-packed A); with a_lda > 0, A(ic, pc) of a row-major A with
//     leading dimension a_lda, read in place by the micro-kernel.
//   pack_b(pc, jc, kc, nc, buf): packs B[pc:pc+kc, jc:jc+nc] into buf (jc in absolute columns);
//     or returns a BInPlace<T> pointing at a row-major B[pc, jc] for the micro-kernel to read.
//   c_stage: (m1 - m0) x min(n1 - n0, NC) elements, used when a column block straddles two
//     segments of C: the block is computed there and scattered once (may be null otherwise).
//   row_bias / col_bias: added once to each C element when not accumulating, indexed by absolute
//     row / column (col_bias only with a plain ColumnMap{ldc}); at most one of them.
//   b_resident_rows: an A block of at most this many rows runs in BLIS's order instead (each B
//     panel stays in L1 while the few A panels stream from L2): with 64 rows (a linear layer's
//     batch) 3-7% faster on the Xeon's 48 KB L1 (benchmarks/README.md).
template <class T, class GetA, class PackB>
void gemm_blocked(const GemmTable<T>& t, const GemmBlocking& blk, int64_t m0, int64_t m1, int64_t n0, int64_t n1,
                  int64_t K, GetA&& get_a, PackB&& pack_b, T* C, int64_t ldc, ColumnMap cols, bool accumulate,
                  const T* row_bias, T* a_buf, T* b_buf, T* c_stage, int64_t a_lda = 0, const T* col_bias = nullptr,
                  int64_t b_resident_rows = 0) {
  const int MR = t.mr, NR = t.nr;
  for (int64_t jc = n0; jc < n1; jc += blk.nc) {
    const int64_t nc = std::min(blk.nc, n1 - jc);
    // Where this block's C lives: in place, or in the stage (row i at c_stage + (i - m0) * nc).
    const bool staged = !cols.contiguous(jc, nc);
    T* cb = staged ? c_stage - m0 * nc : C + cols.offset(jc);
    const int64_t ldcb = staged ? nc : ldc;
    auto each_segment = [&](auto&& fn) {  // fn(C row-0 pointer, stage column, length)
      for (int64_t j = jc; j < jc + nc;) {
        const int64_t len = std::min(jc + nc - j, cols.seg_len - (j - cols.origin) % cols.seg_len);
        fn(C + cols.offset(j), j - jc, len);
        j += len;
      }
    };
    if (staged && accumulate) {
      each_segment([&](const T* src, int64_t off, int64_t len) {
        for (int64_t i = m0; i < m1; ++i) std::copy(src + i * ldc, src + i * ldc + len, cb + i * nc + off);
      });
    }
    if (K == 0 && !accumulate) {
      for (int64_t i = m0; i < m1; ++i) {
        if (col_bias) {
          std::copy(col_bias + jc, col_bias + jc + nc, cb + i * ldcb);
        } else {
          std::fill(cb + i * ldcb, cb + i * ldcb + nc, row_bias ? row_bias[i] : T(0));
        }
      }
    }
    // B[pc.., j..] (kc x n) for the micro-kernel: packed into b_buf, or in place.
    auto get_b = [&](int64_t pc, int64_t j, int64_t kc, int64_t n) {
      if constexpr (std::is_void_v<decltype(pack_b(pc, j, kc, n, b_buf))>) {
        pack_b(pc, j, kc, n, b_buf);
        return BInPlace<T>{b_buf, 0};
      } else {
        const BInPlace<T> src = pack_b(pc, j, kc, n, b_buf);
        return src.p ? src : BInPlace<T>{b_buf, 0};
      }
    };
    // A single A block of few rows: BLIS's order, and each B panel packed just before its tiles,
    // so it is written to and read from L1 (a whole packed B block, KC x NC, can exceed L2).
    const bool by_panel = m1 - m0 <= std::min(b_resident_rows, blk.mc);
    for (int64_t pc = 0; pc < K; pc += blk.kc) {
      const int64_t kc = std::min(blk.kc, K - pc);
      const bool acc = accumulate || pc > 0;
      auto tile = [&](const T* a_pack, int64_t ic, int64_t mc, int64_t ir, int64_t jr, BInPlace<T> b) {
        const int mr = static_cast<int>(std::min<int64_t>(MR, mc - ir));
        const int nr = static_cast<int>(std::min<int64_t>(NR, nc - jr));
        t.micro_for(mr, nr)(kc, a_pack + ir * (a_lda ? a_lda : kc), a_lda, b.p, b.ldb, cb + (ic + ir) * ldcb + jr, ldcb,
                            mr, nr, acc, (!acc && row_bias) ? row_bias + ic + ir : nullptr,
                            (!acc && col_bias) ? col_bias + jc + jr : nullptr);
      };
      if (by_panel) {
        const int64_t mc = m1 - m0;
        const T* a_pack = get_a(m0, pc, mc, kc, a_buf);
        for (int64_t jr = 0; jr < nc; jr += NR) {
          const BInPlace<T> b = get_b(pc, jc + jr, kc, std::min<int64_t>(NR, nc - jr));
          for (int64_t ir = 0; ir < mc; ir += MR) tile(a_pack, m0, mc, ir, jr, b);
        }
        continue;
      }
      const BInPlace<T> b = get_b(pc, jc, kc, nc);
      // Panel jr of the block: NR values per k when packed, else columns jr.. of the rows.
      auto panel = [&](int64_t jr) { return BInPlace<T>{b.p + (b.ldb ? jr : jr * kc), b.ldb}; };
      for (int64_t ic = m0; ic < m1; ic += blk.mc) {
        const int64_t mc = std::min(blk.mc, m1 - ic);
        const T* a_pack = get_a(ic, pc, mc, kc, a_buf);
        if (mc <= b_resident_rows) {
          for (int64_t jr = 0; jr < nc; jr += NR) {
            for (int64_t ir = 0; ir < mc; ir += MR) tile(a_pack, ic, mc, ir, jr, panel(jr));
          }
        } else {
          for (int64_t ir = 0; ir < mc; ir += MR) {
            for (int64_t jr = 0; jr < nc; jr += NR) tile(a_pack, ic, mc, ir, jr, panel(jr));
          }
        }
      }
    }
    if (staged) {
      each_segment([&](T* dst, int64_t off, int64_t len) {
        for (int64_t i = m0; i < m1; ++i) std::copy(cb + i * nc + off, cb + i * nc + off + len, dst + i * ldc);
      });
    }
  }
}

// How to cut `batches` independent M x N GEMMs into tasks for `threads` threads: rows in whole
// MR panels, columns in whole NR panels (at most max_cols per block).
struct TaskGrid {
  int64_t row_block, col_block, row_blocks, col_blocks;
  int64_t tasks(int64_t batches) const { return batches * row_blocks * col_blocks; }
};

// Picks the grid whose busiest thread has the least work, preferring fewer, larger tasks on
// ties (each task packs its own B panels, so splitting rows repeats that work). pack_tiles: the
// cost of packing one B panel, in micro-tiles, charged to every task that packs it. Tasks are dealt
// out in contiguous chunks, as at::parallel_for does; the busiest thread's load is estimated as
// its chunk of full-size tasks, in tiles, plus a fixed cost per task.
inline TaskGrid plan_tasks(int64_t M, int64_t N, int64_t batches, int MR, int NR, int64_t threads, int64_t max_cols,
                           double pack_tiles = 0) {
  const int64_t mp = std::max<int64_t>(1, (M + MR - 1) / MR), np = std::max<int64_t>(1, (N + NR - 1) / NR);
  const int64_t min_col_blocks = (np + std::max<int64_t>(1, max_cols / NR) - 1) / std::max<int64_t>(1, max_cols / NR);
  TaskGrid best{};
  double best_cost = 0;
  for (int64_t rb = 1; rb <= std::min<int64_t>(mp, 8); ++rb) {
    const int64_t rpb = (mp + rb - 1) / rb;  // row panels per block
    for (int64_t cb = min_col_blocks; cb <= std::min<int64_t>(np, min_col_blocks + 64); ++cb) {
      const int64_t cpb = (np + cb - 1) / cb;  // column panels per block
      const TaskGrid grid{rpb * MR, cpb * NR, (mp + rpb - 1) / rpb, (np + cpb - 1) / cpb};
      const int64_t per_thread = (grid.tasks(batches) + threads - 1) / threads;
      const double cost = static_cast<double>(per_thread) * (static_cast<double>(rpb) * cpb + pack_tiles * cpb + 2.0);
      if (best.row_blocks == 0 || cost < best_cost * 0.999) {
        best = grid;
        best_cost = cost;
      }
    }
  }
  return best;
}

}  // namespace dlk::cpu
