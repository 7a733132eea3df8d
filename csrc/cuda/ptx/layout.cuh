// Fragment layouts of the warp-level MMA shapes, as tabulated in the PTX ISA ("Matrix Fragments
// for mma.m16n8k16 with floating point type", "... mma.m16n8k8 ... .tf32"): which element of A,
// B and C/D each lane holds in each register slot. One source for the emulator (cuda/sim/ptx.h)
// and for kernels that index fragments. groupID = lane / 4, threadID_in_group = lane % 4.
#pragma once

namespace dlk::cuda::ptx {

struct Coord {
  int row, col;
};

// mma.m16n8k16 with .f16 or .bf16 inputs: A is 16x16 row-major in 4 .b32 registers (8 halves,
// element i is half i % 2 of register i / 2, low half first), B is 16x8 "col" in 2 registers
// (4 halves), C/D 16x8 in 4 floats.
struct M16N8K16 {
  static constexpr int M = 16, N = 8, K = 16;
  static constexpr int kA = 8, kB = 4, kC = 4;  // elements per lane
  __host__ __device__ static constexpr Coord a(int lane, int i) {
    return {lane / 4 + 8 * ((i / 2) % 2), (lane % 4) * 2 + i % 2 + 8 * (i / 4)};
  }
  __host__ __device__ static constexpr Coord b(int lane, int i) {
    return {(lane % 4) * 2 + i % 2 + 8 * (i / 2), lane / 4};
  }
  __host__ __device__ static constexpr Coord c(int lane, int i) {
    return {lane / 4 + 8 * (i / 2), (lane % 4) * 2 + i % 2};
  }
};

// mma.m16n8k8 with .tf32 inputs: A is 16x8 in 4 registers (one tf32 each), B 8x8 in 2, C/D as
// for m16n8k16.
struct M16N8K8 {
  static constexpr int M = 16, N = 8, K = 8;
  static constexpr int kA = 4, kB = 2, kC = 4;
  __host__ __device__ static constexpr Coord a(int lane, int i) {
    return {lane / 4 + 8 * (i % 2), lane % 4 + 4 * (i / 2)};
  }
  __host__ __device__ static constexpr Coord b(int lane, int i) { return {lane % 4 + 4 * i, lane / 4}; }
  __host__ __device__ static constexpr Coord c(int lane, int i) { return M16N8K16::c(lane, i); }
};

// ldmatrix .m8n8 .b16: lane holds, of each 8x8 matrix, row lane / 4, columns 2 (lane % 4) and
// +1 (as one .b32, low half first); with .trans, rows and columns swap. Lanes 8j..8j+7 give the
// row addresses of matrix j.
struct LdMatrix8x8 {
  __host__ __device__ static constexpr Coord elem(int lane, int half, bool trans) {
    return trans ? Coord{(lane % 4) * 2 + half, lane / 4} : Coord{lane / 4, (lane % 4) * 2 + half};
  }
};

}  // namespace dlk::cuda::ptx
