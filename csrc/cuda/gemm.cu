// The CUDA GEMM core, see gemm.cuh.
//
// Both operands are seen as "R x K" matrices: A as M x K, B as N x K (B's column j is row j).
// A block computes a BM x BN tile of C, walking K in BK steps through a ring of shared-memory
// stages (CUTLASS's multistage pipeline): while step k is multiplied, the copies of the next
// Stages - 1 steps are in flight, one __syncthreads per step.
//
// Tensor-core path. Each operand's shared tile is stored in the layout its global memory has:
// K-major ([r][k]) when K is the contiguous dimension, R-major ([k][r]) otherwise, so a row of 16
// bytes in shared memory is 16 contiguous bytes in global memory. Such rows are filled with
// cp.async (zero-filled past the edges) when the operand's pointer and strides allow 16-byte
// copies; any other operand (unaligned view, no unit stride) is loaded element by element into
// the same layout. Fragments come from shared memory with ldmatrix (.trans for R-major tiles) for
// 16-bit types, and with plain loads for TF32, whose 32-bit elements ldmatrix does not move.
//
// SIMT path (float32 without TF32, float64): 256 threads, a 4 x 4 register block each over a
// 64 x 64 tile; the next K step is read into registers while the current one is multiplied.
#include <atomic>
#include <cmath>
#include <type_traits>

#include "cuda/gemm.cuh"
#include "cuda/launch.cuh"
#include "cuda/ptx/cp_async.cuh"
#include "cuda/ptx/ldmatrix.cuh"
#include "cuda/ptx/mma.cuh"

namespace dlk::cuda {
namespace {

namespace ptx = dlk::cuda::ptx;

template <class T>
struct Params {
  int64_t M, N, K;
  const T* a;
  int64_t a_rs, a_ks;  // A as R x K: row stride, K stride
  const T* b;
  int64_t b_rs, b_ks;  // B as N x K
  T* c;
  int64_t c_rs;
  const T* bias;
};

template <class T>
__device__ __forceinline__ T zero() {
  return from_opmath<T>(opmath_t<T>(0));
}

// ---- tensor-core path -----------------------------------------------------------------------

// The MMA atom per element type; float means TF32.
template <class T>
struct Atom {
  static constexpr int K = 16;
};
template <>
struct Atom<float> {
  static constexpr int K = 8;
};

template <class T>
__device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  if constexpr (std::is_same_v<T, __half>) {
    ptx::mma_m16n8k16_f32_f16(d, a, b, d);
  } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    ptx::mma_m16n8k16_f32_bf16(d, a, b, d);
  } else {
    ptx::mma_m16n8k8_f32_tf32(d, a, b, d);
  }
}

// An R x BK shared tile: K-major ([r][k]) or R-major ([k][r]), rows padded by 16 bytes so that
// consecutive rows start in different banks (and stay 16-byte aligned for cp.async / ldmatrix).
template <class T, int R, int BK, bool KMajor>
struct Tile {
  static constexpr int V = 16 / sizeof(T);  // elements per 16-byte row piece
  static constexpr int LD = KMajor ? BK + V : R + V;
  static constexpr int SIZE = KMajor ? R * LD : BK * LD;
  __device__ static constexpr int at(int r, int k) { return KMajor ? r * LD + k : k * LD + r; }
};

// Fills tile rows [r0, r0 + R) x [k0, k0 + BK) of an Rt x Kt operand, zeros outside it.
template <class T, int R, int BK, bool KMajor, int Threads>
__device__ __forceinline__ void load_tile(T* s, const T* p, int64_t rs, int64_t ks, int64_t Rt, int64_t Kt, int64_t r0,
                                          int64_t k0, bool async, int tid) {
  using L = Tile<T, R, BK, KMajor>;
  constexpr int V = L::V;
  if (async) {
    constexpr int kPieces = R * BK / V;
#pragma unroll
    for (int c = tid; c < kPieces; c += Threads) {
      const int r = KMajor ? c / (BK / V) : (c % (R / V)) * V;
      const int k = KMajor ? (c % (BK / V)) * V : c / (R / V);
      const int64_t gr = r0 + r, gk = k0 + k;
      int64_t valid = KMajor ? (gr < Rt ? Kt - gk : 0) : (gk < Kt ? Rt - gr : 0);
      valid = valid < 0 ? 0 : (valid > V ? V : valid);
      // A piece with nothing to read still copies (zeros) from a valid address.
      const T* src = valid > 0 ? p + gr * rs + gk * ks : p;
      ptx::cp_async_cg_zfill(&s[L::at(r, k)], src, static_cast<int>(valid * sizeof(T)));
    }
  } else {
    for (int e = tid; e < R * BK; e += Threads) {
      // Consecutive threads walk the operand's contiguous dimension (of the chosen layout).
      const int r = KMajor ? e / BK : e % R;
      const int k = KMajor ? e % BK : e / R;
      const int64_t gr = r0 + r, gk = k0 + k;
      s[L::at(r, k)] = gr < Rt && gk < Kt ? p[gr * rs + gk * ks] : zero<T>();
    }
  }
}

// The A fragment (16 x Atom::K) at rows m0.., columns k0.. of an A tile.
template <class T, class L, bool KMajor>
__device__ __forceinline__ void load_a(uint32_t (&f)[4], const T* s, int m0, int k0, int lane) {
  if constexpr (sizeof(T) == 2) {
    if constexpr (KMajor) {
      ptx::ldmatrix<4>(f, &s[L::at(m0 + lane % 16, k0 + 8 * (lane / 16))]);
    } else {
      const int j = lane / 8, r = lane % 8;  // matrix j: rows +8 (j % 2), k +8 (j / 2)
      ptx::ldmatrix<4, true>(f, &s[L::at(m0 + 8 * (j % 2), k0 + 8 * (j / 2) + r)]);
    }
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const ptx::Coord q = ptx::M16N8K8::a(lane, i);
      f[i] = ptx::to_tf32(s[L::at(m0 + q.row, k0 + q.col)]);
    }
  }
}

// The B fragments of two adjacent 8-column blocks (n0.. and n0 + 8..) of a B tile.
template <class T, class L, bool KMajor>
__device__ __forceinline__ void load_b2(uint32_t (&f0)[2], uint32_t (&f1)[2], const T* s, int n0, int k0, int lane) {
  if constexpr (sizeof(T) == 2) {
    const int j = lane / 8, r = lane % 8;  // matrix j: columns +8 (j / 2), k +8 (j % 2)
    uint32_t q[4];
    if constexpr (KMajor) {
      ptx::ldmatrix<4>(q, &s[L::at(n0 + 8 * (j / 2) + r, k0 + 8 * (j % 2))]);
    } else {
      ptx::ldmatrix<4, true>(q, &s[L::at(n0 + 8 * (j / 2), k0 + 8 * (j % 2) + r)]);
    }
    f0[0] = q[0], f0[1] = q[1], f1[0] = q[2], f1[1] = q[3];
  } else {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const ptx::Coord q = ptx::M16N8K8::b(lane, i);  // row: k, col: n
      f0[i] = ptx::to_tf32(s[L::at(n0 + q.col, k0 + q.row)]);
      f1[i] = ptx::to_tf32(s[L::at(n0 + 8 + q.col, k0 + q.row)]);
    }
  }
}

// Block tile BM x BN, warp tile WM x WN; BK spans KBytes bytes of K; Stages shared-memory
// stages in the ring.
template <int BM_, int BN_, int WM_, int WN_, int KBytes_, int Stages_>
struct TcConfig {
  static constexpr int BM = BM_, BN = BN_, WM = WM_, WN = WN_, KBytes = KBytes_, Stages = Stages_;
  static constexpr int Threads = (BM / WM) * (BN / WN) * 32;
  static_assert(Stages >= 2, "the ring needs a stage to fill while one is read");
};
// The tile table, in gemm_tile_count's order (GemmOptions::tile). The deep ones are CUTLASS's
// sm80 shapes for 16-bit GEMMs (a 64 x 64 warp tile: 32 mma per 8 ldmatrix.x4 per k16 step, and
// two steps of copies in flight to cover global latency); their shared memory (108-162 KiB) needs
// the opt-in limit of sm_80 / sm_90 (163 / 227 KiB), so the rule falls back where it is lower.
using TcLarge = TcConfig<128, 128, 64, 32, 64, 2>;        // 8 warps, 40 KiB
using TcSmall = TcConfig<64, 64, 32, 32, 64, 2>;          // 4 warps: more blocks for small problems
using TcDeep = TcConfig<128, 256, 64, 64, 128, 3>;        // 8 warps, 162 KiB
using TcDeepSquare = TcConfig<128, 128, 64, 64, 128, 3>;  // 4 warps, 108 KiB: two blocks per SM on sm_90

template <class T, class Cfg, bool AK, bool BKm>
struct TcLayout {
  static constexpr int BK = Cfg::KBytes / static_cast<int>(sizeof(T));
  using LA = Tile<T, Cfg::BM, BK, AK>;
  using LB = Tile<T, Cfg::BN, BK, BKm>;
  // Dynamic shared memory: Stages A tiles, then Stages B tiles (each a multiple of 16 bytes).
  static constexpr size_t kSharedBytes = static_cast<size_t>(Cfg::Stages) * (LA::SIZE + LB::SIZE) * sizeof(T);
};

template <class T, class Cfg, bool AK, bool BKm>
__global__ void __launch_bounds__(Cfg::Threads) tc_kernel(Params<T> p, bool a_async, bool b_async) {
  constexpr int BM = Cfg::BM, BN = Cfg::BN, WM = Cfg::WM, WN = Cfg::WN, Threads = Cfg::Threads, S = Cfg::Stages;
  using Layout = TcLayout<T, Cfg, AK, BKm>;
  using LA = typename Layout::LA;
  using LB = typename Layout::LB;
  constexpr int BK = Layout::BK, AK_ = Atom<T>::K;
  constexpr int MI = WM / 16, NI = WN / 8;
  static_assert(NI % 2 == 0, "B fragments are loaded in pairs");
  T* const sa = dynamic_shared<T>();  // stage s: sa + s * LA::SIZE
  T* const sb = sa + S * LA::SIZE;

  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int wm0 = (warp % (BM / WM)) * WM, wn0 = (warp / (BM / WM)) * WN;
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * BM, n0 = static_cast<int64_t>(blockIdx.y) * BN;

  float acc[MI][NI][4];
#pragma unroll
  for (int i = 0; i < MI; ++i)
#pragma unroll
    for (int j = 0; j < NI; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;

  const int64_t steps = (p.K + BK - 1) / BK;
  // Issues step k's copies into its stage (k % S) as one commit group, empty past the last step:
  // the count of groups stays one per step, so wait<S - 2> always means "step s has landed".
  auto fill = [&](int64_t k) {
    if (k < steps) {
      const int stage = static_cast<int>(k % S);
      load_tile<T, BM, BK, AK, Threads>(sa + stage * LA::SIZE, p.a, p.a_rs, p.a_ks, p.M, p.K, m0, k * BK, a_async, tid);
      load_tile<T, BN, BK, BKm, Threads>(sb + stage * LB::SIZE, p.b, p.b_rs, p.b_ks, p.N, p.K, n0, k * BK, b_async,
                                         tid);
    }
    ptx::cp_async_commit();
  };

#pragma unroll
  for (int k = 0; k < S - 1; ++k) fill(k);
  for (int64_t s = 0; s < steps; ++s) {
    ptx::cp_async_wait<S - 2>();
    // Step s's tiles are visible to all, and every warp is done with step s - 1, whose stage the
    // fill below overwrites.
    __syncthreads();
    fill(s + S - 1);
    const T* a_tile = sa + static_cast<int>(s % S) * LA::SIZE;
    const T* b_tile = sb + static_cast<int>(s % S) * LB::SIZE;
#pragma unroll
    for (int kk = 0; kk < BK; kk += AK_) {
      uint32_t af[MI][4], bf[NI][2];
#pragma unroll
      for (int i = 0; i < MI; ++i) load_a<T, LA, AK>(af[i], a_tile, wm0 + 16 * i, kk, lane);
#pragma unroll
      for (int j = 0; j < NI; j += 2) load_b2<T, LB, BKm>(bf[j], bf[j + 1], b_tile, wn0 + 8 * j, kk, lane);
#pragma unroll
      for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int j = 0; j < NI; ++j) mma<T>(acc[i][j], af[i], bf[j]);
    }
  }

#pragma unroll
  for (int i = 0; i < MI; ++i)
#pragma unroll
    for (int j = 0; j < NI; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const ptx::Coord q = ptx::M16N8K16::c(lane, e);
        const int64_t row = m0 + wm0 + 16 * i + q.row, col = n0 + wn0 + 8 * j + q.col;
        if (row < p.M && col < p.N) {
          float v = acc[i][j][e];
          if (p.bias != nullptr) v += to_opmath(p.bias[col]);
          p.c[row * p.c_rs + col] = from_opmath<T>(v);
        }
      }
}

// 16-byte copies work when the contiguous dimension has unit stride and every row piece starts
// 16-byte aligned.
template <class T>
bool async_ok(const T* ptr, int64_t contiguous_stride, int64_t other_stride) {
  return contiguous_stride == 1 && aligned16(ptr) && (other_stride * static_cast<int64_t>(sizeof(T))) % 16 == 0;
}

template <class T, class Cfg, bool AK, bool BKm>
cudaError_t launch_tc_layout(const Params<T>& p, cudaStream_t stream) {
  const bool a_async = AK ? async_ok(p.a, p.a_ks, p.a_rs) : async_ok(p.a, p.a_rs, p.a_ks);
  const bool b_async = BKm ? async_ok(p.b, p.b_ks, p.b_rs) : async_ok(p.b, p.b_rs, p.b_ks);
  const dim3 grid(static_cast<unsigned>((p.M + Cfg::BM - 1) / Cfg::BM),
                  static_cast<unsigned>((p.N + Cfg::BN - 1) / Cfg::BN));
  constexpr size_t bytes = TcLayout<T, Cfg, AK, BKm>::kSharedBytes;
  if constexpr (bytes > kDefaultShared) {
    // Above 48 KiB a kernel must opt in, per device (a race sets the same value twice).
    static std::atomic<bool> opted[kMaxDevices];
    int dev = 0;
    cudaError_t err = cudaGetDevice(&dev);
    if (err != cudaSuccess) return err;
    if (dev < 0 || dev >= kMaxDevices) return cudaErrorInvalidDevice;
    if (!opted[dev].load(std::memory_order_relaxed)) {
      err = cudaFuncSetAttribute(tc_kernel<T, Cfg, AK, BKm>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 static_cast<int>(bytes));
      if (err != cudaSuccess) return err;
      opted[dev].store(true, std::memory_order_relaxed);
    }
  }
  return launch(tc_kernel<T, Cfg, AK, BKm>, grid, Cfg::Threads, bytes, stream, p, a_async, b_async);
}

// K-major unless the operand's R dimension is the contiguous one.
inline bool k_major(int64_t rs, int64_t ks) { return !(rs == 1 && ks != 1); }

template <class T, class Cfg>
cudaError_t launch_tc(const Params<T>& p, cudaStream_t stream) {
  const bool ak = k_major(p.a_rs, p.a_ks), bk = k_major(p.b_rs, p.b_ks);
  if (ak && bk) return launch_tc_layout<T, Cfg, true, true>(p, stream);
  if (ak) return launch_tc_layout<T, Cfg, true, false>(p, stream);
  if (bk) return launch_tc_layout<T, Cfg, false, true>(p, stream);
  return launch_tc_layout<T, Cfg, false, false>(p, stream);
}

// ---- SIMT path --------------------------------------------------------------------------------

constexpr int kSimtTile = 64, kSimtBK = 16, kSimtThreads = 256, kSimtReg = 4;
constexpr int kSimtLoads = kSimtTile * kSimtBK / kSimtThreads;

__device__ __forceinline__ float fma_(float a, float b, float c) { return fmaf(a, b, c); }
__device__ __forceinline__ double fma_(double a, double b, double c) { return fma(a, b, c); }

// Reads this thread's share of a 64 x 16 operand slice into registers; k_fast: consecutive
// threads take consecutive k (the operand's contiguous dimension).
template <class T>
__device__ __forceinline__ void simt_fetch(T (&v)[kSimtLoads], const T* p, int64_t rs, int64_t ks, int64_t Rt,
                                           int64_t Kt, int64_t r0, int64_t k0, bool k_fast, int tid) {
#pragma unroll
  for (int t = 0; t < kSimtLoads; ++t) {
    const int e = tid + t * kSimtThreads;
    const int r = k_fast ? e / kSimtBK : e % kSimtTile, k = k_fast ? e % kSimtBK : e / kSimtTile;
    const int64_t gr = r0 + r, gk = k0 + k;
    v[t] = gr < Rt && gk < Kt ? p[gr * rs + gk * ks] : T(0);
  }
}

template <class T>
__device__ __forceinline__ void simt_store(T (*s)[kSimtTile], const T (&v)[kSimtLoads], bool k_fast, int tid) {
#pragma unroll
  for (int t = 0; t < kSimtLoads; ++t) {
    const int e = tid + t * kSimtThreads;
    const int r = k_fast ? e / kSimtBK : e % kSimtTile, k = k_fast ? e % kSimtBK : e / kSimtTile;
    s[k][r] = v[t];
  }
}

template <class T>
__global__ void __launch_bounds__(kSimtThreads) simt_kernel(Params<T> p, bool a_kfast, bool b_kfast) {
  __shared__ __align__(16) T sa[2][kSimtBK][kSimtTile];
  __shared__ __align__(16) T sb[2][kSimtBK][kSimtTile];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * kSimtTile, n0 = static_cast<int64_t>(blockIdx.y) * kSimtTile;
  T acc[kSimtReg][kSimtReg];
#pragma unroll
  for (int i = 0; i < kSimtReg; ++i)
#pragma unroll
    for (int j = 0; j < kSimtReg; ++j) acc[i][j] = T(0);

  T ra[kSimtLoads], rb[kSimtLoads];
  const int64_t steps = (p.K + kSimtBK - 1) / kSimtBK;
  if (steps > 0) {
    simt_fetch(ra, p.a, p.a_rs, p.a_ks, p.M, p.K, m0, 0, a_kfast, tid);
    simt_fetch(rb, p.b, p.b_rs, p.b_ks, p.N, p.K, n0, 0, b_kfast, tid);
    simt_store(sa[0], ra, a_kfast, tid);
    simt_store(sb[0], rb, b_kfast, tid);
  }
  __syncthreads();
  for (int64_t s = 0; s < steps; ++s) {
    const int cur = static_cast<int>(s & 1);
    const bool more = s + 1 < steps;
    if (more) {
      simt_fetch(ra, p.a, p.a_rs, p.a_ks, p.M, p.K, m0, (s + 1) * kSimtBK, a_kfast, tid);
      simt_fetch(rb, p.b, p.b_rs, p.b_ks, p.N, p.K, n0, (s + 1) * kSimtBK, b_kfast, tid);
    }
#pragma unroll
    for (int k = 0; k < kSimtBK; ++k) {
      T a[kSimtReg], b[kSimtReg];
#pragma unroll
      for (int i = 0; i < kSimtReg; ++i) a[i] = sa[cur][k][ty * kSimtReg + i];
#pragma unroll
      for (int j = 0; j < kSimtReg; ++j) b[j] = sb[cur][k][tx * kSimtReg + j];
#pragma unroll
      for (int i = 0; i < kSimtReg; ++i)
#pragma unroll
        for (int j = 0; j < kSimtReg; ++j) acc[i][j] = fma_(a[i], b[j], acc[i][j]);
    }
    // The other stage was last read before the previous step's barrier.
    if (more) {
      simt_store(sa[cur ^ 1], ra, a_kfast, tid);
      simt_store(sb[cur ^ 1], rb, b_kfast, tid);
    }
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < kSimtReg; ++i)
#pragma unroll
    for (int j = 0; j < kSimtReg; ++j) {
      const int64_t row = m0 + ty * kSimtReg + i, col = n0 + tx * kSimtReg + j;
      if (row < p.M && col < p.N) p.c[row * p.c_rs + col] = p.bias != nullptr ? acc[i][j] + p.bias[col] : acc[i][j];
    }
}

template <class T>
cudaError_t launch_simt(const Params<T>& p, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((p.M + kSimtTile - 1) / kSimtTile),
                  static_cast<unsigned>((p.N + kSimtTile - 1) / kSimtTile));
  return launch(simt_kernel<T>, grid, kSimtThreads, 0, stream, p, p.a_ks == 1, p.b_ks == 1);
}

// ---- dispatch ---------------------------------------------------------------------------------

template <class T>
Params<T> params(const GemmProblem& g) {
  // B(k, j) at b[k * b_rs + j * b_cs]: as an N x K operand its row stride is b_cs.
  return {g.M,
          g.N,
          g.K,
          static_cast<const T*>(g.a),
          g.a_rs,
          g.a_cs,
          static_cast<const T*>(g.b),
          g.b_cs,
          g.b_rs,
          static_cast<T*>(g.c),
          g.c_rs,
          static_cast<const T*>(g.bias)};
}

// The tile rule: the largest tile that still gives every SM a block, deep-pipelined where the
// device's shared memory allows it. TcLarge stays for devices whose opt-in limit (99 KiB on
// sm_86 / sm_89) cannot hold the deep stages.
template <class T>
int pick_tile(const GemmProblem& g) {
  auto tiles = [&](int bm, int bn) { return ((g.M + bm - 1) / bm) * ((g.N + bn - 1) / bn); };
  const int64_t sms = sm_count();
  // The layouts' sizes differ by the padding only; the K-major one is the largest.
  const bool deep = shared_optin() >= static_cast<int>(TcLayout<T, TcDeep, true, true>::kSharedBytes);
  const bool deep_square = shared_optin() >= static_cast<int>(TcLayout<T, TcDeepSquare, true, true>::kSharedBytes);
  if (deep && tiles(TcDeep::BM, TcDeep::BN) >= sms) return 2;
  if (tiles(TcLarge::BM, TcLarge::BN) >= sms) return deep_square ? 3 : 0;
  return 1;
}

template <class T>
cudaError_t run_tc(const GemmProblem& g, int tile, cudaStream_t stream) {
  if (tile < 0) tile = pick_tile<T>(g);
  const Params<T> p = params<T>(g);
  switch (tile) {
    case 0:
      return launch_tc<T, TcLarge>(p, stream);
    case 1:
      return launch_tc<T, TcSmall>(p, stream);
    case 2:
      return launch_tc<T, TcDeep>(p, stream);
    default:
      return launch_tc<T, TcDeepSquare>(p, stream);
  }
}

constexpr int64_t kMaxGridY = 65535;

}  // namespace

int gemm_tile_count(DType dtype, bool allow_tf32) {
  return dtype == DType::f16 || dtype == DType::bf16 || (dtype == DType::f32 && allow_tf32) ? 4 : 1;
}

cudaError_t gemm(DType dtype, const GemmProblem& g, const GemmOptions& opt, cudaStream_t stream) {
  if (g.M <= 0 || g.N <= 0) return cudaSuccess;
  if (opt.tile >= gemm_tile_count(dtype, opt.allow_tf32)) return cudaErrorInvalidValue;
  // Column tiles go on grid.y (at most 65535 of them): up to 4M columns with the smallest tile.
  if ((g.N + 63) / 64 > kMaxGridY) return cudaErrorInvalidConfiguration;
  switch (dtype) {
    case DType::f16:
      return run_tc<__half>(g, opt.tile, stream);
    case DType::bf16:
      return run_tc<__nv_bfloat16>(g, opt.tile, stream);
    case DType::f32:
      return opt.allow_tf32 ? run_tc<float>(g, opt.tile, stream) : launch_simt(params<float>(g), stream);
    case DType::f64:
      return launch_simt(params<double>(g), stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace dlk::cuda
