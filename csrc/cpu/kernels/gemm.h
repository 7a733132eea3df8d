// GEMM micro-kernel and panel packing for one CPU ISA (see cpu/gemm_table.h for the notation).
//
// The micro-kernel keeps an MR x NR tile of C in registers (MR x NV vectors) and, for each k,
// loads NV vectors of the B panel and broadcasts MR values of the A panel: MR * NV FMAs per 1 + NV
// loads.
// No include guard: included once per ISA, each time into the namespace DLK_ISA names.

#include "cpu/gemm_table.h"

namespace dlk::cpu::DLK_ISA {

// NV <= Tile<T>::NV vectors per row: the narrower variants finish a last panel of at most NV W
// columns without computing the padding (the packed B rows keep their full NR stride). Likewise
// MR <= Tile<T>::MR rows: a last panel of few rows (a product with one or two rows of C, such as
// the weight gradient of a layer with one output) computes only those (the packed A panels keep
// their full Tile<T>::MR stride).
template <class T, int NV, int MR = Tile<T>::MR>
void micro_kernel(int64_t kc, const T* __restrict__ a, int64_t lda, const T* __restrict__ b, int64_t ldb, T* c,
                  int64_t ldc, int mr, int nr, bool accumulate, const T* row_bias, const T* col_bias) {
  using V = Vec<T>;
  constexpr int PR = Tile<T>::MR, W = V::W, NR = Tile<T>::NV * W, NC = NV * W;
  V acc[MR][NV];
#pragma GCC unroll 64
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) acc[i][j] = V(T(0));
  }
  // One rank-1 update per k: NV vectors of B from b_at(j) (then advanced by b_step), MR
  // broadcasts of A from a_at(i, k).
  auto run = [&](auto a_at, auto b_at, int64_t b_step) {
    for (int64_t k = 0; k < kc; ++k) {
      V bv[NV];
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) bv[j] = b_at(j);
#pragma GCC unroll 64
      for (int i = 0; i < MR; ++i) {
        const V ai(a_at(i, k));
#pragma GCC unroll 8
        for (int j = 0; j < NV; ++j) acc[i][j] = fmadd(ai, bv[j], acc[i][j]);
      }
      b += b_step;
    }
  };
  // B: a packed panel (NR values per k), or rows ldb apart read in place, the last vector masked
  // to the nr valid columns (nothing past them is read).
  auto with_b = [&](auto a_at) {
    if (ldb == 0) {
      run(a_at, [&](int j) { return V::load(b + j * W); }, NR);
    } else if (nr == NC) {
      run(a_at, [&](int j) { return V::load(b + j * W); }, ldb);
    } else {
      const int64_t tail = nr - (NV - 1) * W;
      run(a_at, [&](int j) { return j < NV - 1 ? V::load(b + j * W) : V::load(b + j * W, tail); }, ldb);
    }
  };
  if (lda == 0) {  // packed panel: PR values per k
    with_b([&](int i, int64_t k) { return a[k * PR + i]; });
  } else {  // MR rows lda apart, read in place; rows past mr repeat the last (their sums are dropped)
    const T* row[MR];
#pragma GCC unroll 64
    for (int i = 0; i < MR; ++i) row[i] = a + (i < mr ? i : mr - 1) * lda;
    with_b([&](int i, int64_t k) { return row[i][k]; });
  }
  if (mr == MR && nr == NC) {
#pragma GCC unroll 64
    for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) {
        T* p = c + i * ldc + j * W;
        V r = acc[i][j];
        if (accumulate) {
          r = r + V::load(p);
        } else if (row_bias) {
          r = r + V(row_bias[i]);
        } else if (col_bias) {
          r = r + V::load(col_bias + j * W);
        }
        r.store(p);
      }
    }
    return;
  }
  // Edge tile: spill to a buffer with constant indices (keeps acc in registers above), then
  // write the valid mr x nr part.
  alignas(64) T tile[MR * NC];
  static_assert(MR * NC <= 1024, "edge buffer size");
#pragma GCC unroll 64
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) acc[i][j].store(tile + i * NC + j * W);
  }
  for (int i = 0; i < mr; ++i) {
    const T add = (!accumulate && row_bias) ? row_bias[i] : T(0);
    const T* cb = accumulate ? nullptr : col_bias;
    T* crow = c + i * ldc;
    for (int j = 0; j < nr; ++j) crow[j] = (accumulate ? crow[j] : cb ? cb[j] : add) + tile[i * NC + j];
  }
}

// dst[k * MR + i] = src[i * rs + k] for i < m, zero for m <= i < MR, k < kc: one A panel from
// row-major rows. W x W register transposes (about a quarter of a shuffle per value) when a
// panel fits in one block, else a plain loop.
template <class T>
void interleave_rows(const T* src, int64_t rs, int64_t m, int64_t kc, T* dst) {
  using V = Vec<T>;
  constexpr int W = V::W, MR = Tile<T>::MR;
  if constexpr (MR <= W) {
    for (int64_t k = 0; k < kc; k += W) {
      const int64_t cnt = kc - k < W ? kc - k : W;
      V v[W];
      for (int i = 0; i < W; ++i) {
        v[i] = i >= m ? V(T(0)) : cnt == W ? V::load(src + i * rs + k) : V::load(src + i * rs + k, cnt);
      }
      transpose(v);
      for (int64_t t = 0; t < cnt; ++t) v[t].store(dst + (k + t) * MR, MR);
    }
  } else {
    for (int64_t k = 0; k < kc; ++k) {
      for (int64_t i = 0; i < MR; ++i) dst[k * MR + i] = i < m ? src[i * rs + k] : T(0);
    }
  }
}

// General strided pack: dst panel p holds rows [p*MR, p*MR+MR) as MR values per k.
template <class T>
void pack_a(const T* a, int64_t rs, int64_t cs, int64_t mc, int64_t kc, T* dst) {
  constexpr int MR = Tile<T>::MR;
  for (int64_t i0 = 0; i0 < mc; i0 += MR) {
    const int64_t m = mc - i0 < MR ? mc - i0 : MR;
    const T* src = a + i0 * rs;
    if (cs == 1) {
      interleave_rows(src, rs, m, kc, dst);
    } else if (rs == 1) {
      // A transposed operand (a gradient's columns as rows): each k's MR values are contiguous.
      using V = Vec<T>;
      for (int64_t k = 0; k < kc; ++k) {
#pragma GCC unroll 4
        for (int i = 0; i < MR; i += V::W) {
          const int64_t valid = m - i < 0 ? 0 : m - i < V::W ? m - i : V::W;
          const V v = V::load(src + k * cs + i, valid);
          if (MR - i >= V::W) {
            v.store(dst + k * MR + i);
          } else {
            v.store(dst + k * MR + i, MR - i);
          }
        }
      }
    } else {
      for (int64_t k = 0; k < kc; ++k) {
        for (int64_t i = 0; i < MR; ++i) dst[k * MR + i] = i < m ? src[i * rs + k * cs] : T(0);
      }
    }
    dst += MR * kc;
  }
}

template <class T>
void pack_a_segmented(const T* a, int64_t rs, int64_t seg_len, int64_t seg_stride, int64_t k0, int64_t mc, int64_t kc,
                      T* dst) {
  constexpr int MR = Tile<T>::MR;
  for (int64_t k = 0; k < kc;) {
    // One segment's stretch of columns is a plain row-major block.
    const int64_t kk = k0 + k, off = kk % seg_len;
    const int64_t len = seg_len - off < kc - k ? seg_len - off : kc - k;
    const T* src = a + (kk / seg_len) * seg_stride + off;
    for (int64_t i0 = 0; i0 < mc; i0 += MR) {
      interleave_rows(src + i0 * rs, rs, mc - i0 < MR ? mc - i0 : MR, len, dst + i0 * kc + k * MR);
    }
    k += len;
  }
}

// General strided pack: dst panel p holds columns [p*NR, p*NR+NR) as NR values per k.
template <class T>
void pack_b(const T* b, int64_t rs, int64_t cs, int64_t kc, int64_t nc, T* dst) {
  using V = Vec<T>;
  constexpr int NR = Tile<T>::NV * V::W;
  for (int64_t j0 = 0; j0 < nc; j0 += NR) {
    const int64_t n = nc - j0 < NR ? nc - j0 : NR;
    const T* src = b + j0 * cs;
    if (cs == 1) {
      // Row-major B: each k row of the panel is a contiguous (masked) vector copy.
      for (int64_t k = 0; k < kc; ++k) {
        const T* row = src + k * rs;
        T* out = dst + k * NR;
        // The next panel's lines of this row: panels are packed one after another over the same
        // kc rows, too many interleaved streams for the hardware prefetchers when the rows are
        // far apart (float32 dY[8 x 4096] W[4096 x 4096]: 3.5-3.8 -> 2.8-3.1 ms on Zen 5).
        for (int j = 0; j < NR; j += 64 / int(sizeof(T))) __builtin_prefetch(row + NR + j);
#pragma GCC unroll 8
        for (int j = 0; j < NR; j += V::W) {
          const int64_t left = n - j;
          if (left >= V::W) {
            V::load(row + j).store(out + j);
          } else {
            V::load(row + j, left > 0 ? left : 0).store(out + j);
          }
        }
      }
    } else if (rs == 1) {
      // Column-major B (a linear layer's weight read as W^T): each column's kc values are
      // contiguous; W x W register transposes turn them into panel rows. Groups of W columns
      // outside, k inside, so only W rows stream at a time.
      for (int j = 0; j < NR; j += V::W) {
        for (int64_t k = 0; k < kc; k += V::W) {
          const int64_t cnt = kc - k < V::W ? kc - k : V::W;
          V v[V::W];
          for (int i = 0; i < V::W; ++i) {
            const T* col = src + (j + i) * cs + k;
            v[i] = j + i >= n ? V(T(0)) : cnt == V::W ? V::load(col) : V::load(col, cnt);
          }
          transpose(v);
          for (int64_t t = 0; t < cnt; ++t) v[t].store(dst + (k + t) * NR + j);
        }
      }
    } else {
      for (int64_t k = 0; k < kc; ++k) {
        T* out = dst + k * NR;
        for (int64_t j = 0; j < n; ++j) out[j] = src[k * rs + j * cs];
        for (int64_t j = n; j < NR; ++j) out[j] = T(0);
      }
    }
    dst += NR * kc;
  }
}

template <class T>
void transpose_block(const T* src, int64_t lds, int64_t rows, int64_t cols, T* dst, int64_t ldd) {
  using V = Vec<T>;
  constexpr int W = V::W;
  for (int64_t i0 = 0; i0 < rows; i0 += W) {
    const int64_t ni = rows - i0 < W ? rows - i0 : W;
    for (int64_t j0 = 0; j0 < cols; j0 += W) {
      const int64_t nj = cols - j0 < W ? cols - j0 : W;
      V v[W];
      for (int i = 0; i < W; ++i) {
        const T* row = src + (i0 + i) * lds + j0;
        v[i] = i >= ni ? V(T(0)) : nj == W ? V::load(row) : V::load(row, nj);
      }
      transpose(v);
      for (int64_t j = 0; j < nj; ++j) {
        T* out = dst + (j0 + j) * ldd + i0;
        if (ni == W) {
          v[j].store(out);
        } else {
          v[j].store(out, ni);
        }
      }
    }
  }
}

// Dot products of rows: C[i * ldc + j] = sum_k A[i * lda + k] B[j * ldb + k] (+ bias[j]) for a
// block of R x N of them, k contiguous in both operands. For products with too few columns to
// fill the micro-kernel's lanes (a linear layer's forward with few outputs uses 10 of 16 lanes,
// or 1): here the lanes run over k, and the block ends in horizontal sums. A full block has
// R x N = W sums, which come out of one register transpose as the lanes of one vector.
template <class T>
struct DotShape {
  static constexpr int N = Vec<T>::W < 4 ? Vec<T>::W : 4;
  static constexpr int R = Vec<T>::W / N;
  static constexpr int kMaxOutputs = sizeof(T) == 4 ? kDotMaxOutputsFloat : kDotMaxOutputsDouble;
};

template <class T, int R, int N>
void dot_block(int64_t K, const T* __restrict__ a, int64_t lda, const T* __restrict__ b, int64_t ldb, T* c, int64_t ldc,
               const T* bias) {
  using V = Vec<T>;
  constexpr int W = V::W;
  V acc[R][N];
  for (int i = 0; i < R; ++i) {
    for (int j = 0; j < N; ++j) acc[i][j] = V(T(0));
  }
  auto step = [&](int64_t k, auto load) {
    V av[R];
    for (int i = 0; i < R; ++i) av[i] = load(a + i * lda + k);
    for (int j = 0; j < N; ++j) {
      const V bv = load(b + j * ldb + k);
      for (int i = 0; i < R; ++i) acc[i][j] = fmadd(av[i], bv, acc[i][j]);
    }
  };
  int64_t k = 0;
  for (; k + W <= K; k += W) step(k, [](const T* p) { return V::load(p); });
  if (k < K) step(k, [n = K - k](const T* p) { return V::load(p, n); });  // masked lanes load 0
  if constexpr (R * N == W) {
    V v[W];
    for (int i = 0; i < R; ++i) {
      for (int j = 0; j < N; ++j) v[i * N + j] = acc[i][j];
    }
    transpose(v);  // lane l of v[q]: lane q of sum l
    for (int h = W / 2; h > 0; h /= 2) {
      for (int q = 0; q < h; ++q) v[q] = v[q] + v[q + h];
    }
    alignas(64) T sums[W];
    v[0].store(sums);
    for (int i = 0; i < R; ++i) {
      for (int j = 0; j < N; ++j) c[i * ldc + j] = sums[i * N + j] + (bias ? bias[j] : T(0));
    }
  } else {
    for (int i = 0; i < R; ++i) {
      for (int j = 0; j < N; ++j) c[i * ldc + j] = reduce_add(acc[i][j]) + (bias ? bias[j] : T(0));
    }
  }
}

// dot_block<T, r, n> for a block of r <= R rows and n <= N columns, indexed [r - 1][n - 1].
template <class T, int... I>
constexpr auto dot_blocks(std::integer_sequence<int, I...>) {
  using Fn = void (*)(int64_t, const T*, int64_t, const T*, int64_t, T*, int64_t, const T*);
  constexpr int N = DotShape<T>::N;
  return std::array<Fn, sizeof...(I)>{&dot_block<T, I / N + 1, I % N + 1>...};
}

// Rows [0, m) of C = A B^T (+ bias) by dot_block: A (m x K) rows lda apart, B (n x K) rows ldb
// apart, k contiguous in both.
template <class T>
void dot_rows(int64_t m, int64_t n, int64_t K, const T* a, int64_t lda, const T* b, int64_t ldb, T* c, int64_t ldc,
              const T* bias) {
  constexpr int R = DotShape<T>::R, N = DotShape<T>::N;
  static constexpr auto blocks = dot_blocks<T>(std::make_integer_sequence<int, R * N>{});
  for (int64_t i = 0; i < m; i += R) {
    const int r = static_cast<int>(m - i < R ? m - i : R);
    for (int64_t j = 0; j < n; j += N) {
      const int w = static_cast<int>(n - j < N ? n - j : N);
      blocks[(r - 1) * N + (w - 1)](K, a + i * lda, lda, b + j * ldb, ldb, c + i * ldc + j, ldc,
                                    bias ? bias + j : nullptr);
    }
  }
}

// C[i * ldc + j] = sum_k A(i, k) B[k * ldb + j] for the M rows of C, j < n, A(i, k) at
// a[i * a_rs + k * a_cs]: B's rows streamed in order, each scaled into the rows of C, which stay
// in cache (k outside, the same sequence of fused multiply-adds per element as the micro-kernel
// over one K block). For a C of one or two rows and a long row-major B (the weight gradient of a
// layer with one output): the micro-kernel walks such a B by column panels, rows ldb apart,
// which the prefetchers do not follow.
template <class T, int M>
void axpy_block(int64_t n, int64_t K, const T* a, int64_t a_rs, int64_t a_cs, const T* b, int64_t ldb, T* c,
                int64_t ldc) {
  using V = Vec<T>;
  constexpr int W = V::W;
  for (int i = 0; i < M; ++i) std::fill(c + i * ldc, c + i * ldc + n, T(0));
  for (int64_t k = 0; k < K; ++k) {
    V av[M];
    for (int i = 0; i < M; ++i) av[i] = V(a[i * a_rs + k * a_cs]);
    const T* br = b + k * ldb;
    int64_t j = 0;
    for (; j + W <= n; j += W) {
      const V bv = V::load(br + j);
      for (int i = 0; i < M; ++i) fmadd(av[i], bv, V::load(c + i * ldc + j)).store(c + i * ldc + j);
    }
    if (j < n) {
      const V bv = V::load(br + j, n - j);
      for (int i = 0; i < M; ++i) fmadd(av[i], bv, V::load(c + i * ldc + j, n - j)).store(c + i * ldc + j, n - j);
    }
  }
}

template <class T>
void axpy_rows(int64_t m, int64_t n, int64_t K, const T* a, int64_t a_rs, int64_t a_cs, const T* b, int64_t ldb, T* c,
               int64_t ldc) {
  if (m == 1) return axpy_block<T, 1>(n, K, a, a_rs, a_cs, b, ldb, c, ldc);
  axpy_block<T, 2>(n, K, a, a_rs, a_cs, b, ldb, c, ldc);
}

// micro_kernel<T, 1 .. Tile::NV, Rows> as a table indexed by NV - 1 (GemmTable::micro's rows).
template <class T, int Rows, int... I>
constexpr typename GemmTable<T>::Micro micro_for(int nv, std::integer_sequence<int, I...>) {
  typename GemmTable<T>::Micro fns[] = {&micro_kernel<T, I + 1, Rows>...};
  return fns[nv - 1];
}

template <class T, int Rows>
constexpr std::array<typename GemmTable<T>::Micro, 4> micro_widths() {
  constexpr int NV = Tile<T>::NV;
  constexpr auto seq = std::make_integer_sequence<int, NV>{};
  return {micro_for<T, Rows>(1, seq), micro_for<T, Rows>(NV >= 2 ? 2 : NV, seq),
          micro_for<T, Rows>(NV >= 3 ? 3 : NV, seq), micro_for<T, Rows>(NV >= 4 ? 4 : NV, seq)};
}

template <class T>
const GemmTable<T>& gemm_table() {
  constexpr int NV = Tile<T>::NV, MR = Tile<T>::MR;
  static_assert(NV <= 4, "GemmTable holds at most 4 micro-kernel widths");
  static_assert(MR > 4, "the row variants 1, 2, 4 are below the full tile");
  static constexpr GemmTable<T> table = {
      MR,
      NV * Vec<T>::W,
      Vec<T>::W,
      {micro_widths<T, 1>(), micro_widths<T, 2>(), micro_widths<T, 4>(), micro_widths<T, MR>()},
      &pack_a<T>,
      &pack_a_segmented<T>,
      &pack_b<T>,
      &transpose_block<T>,
      &dot_rows<T>,
      DotShape<T>::R,
      DotShape<T>::kMaxOutputs,
      &axpy_rows<T>,
  };
  return table;
}

template const GemmTable<float>& gemm_table<float>();
template const GemmTable<double>& gemm_table<double>();

}  // namespace dlk::cpu::DLK_ISA
