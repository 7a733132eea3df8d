// The GEMM micro-tile shape of one ISA: kGemmMR x kGemmNV vectors (cpu/simd/<isa>.h), e.g. 8 x 48
// floats on AVX-512 and 6 x 16 on AVX2. Shared by the GEMM and convolution kernels of the ISA.
// No include guard: included once per kernel unit, by cpu/isa/<isa>.h, inside no namespace.

namespace dlk::cpu::DLK_ISA {

template <class T>
struct Tile {
  static constexpr int NV = kGemmNV;
  static constexpr int MR = kGemmMR;
  static_assert(MR * NV + NV + 1 <= kVectorRegisters, "the micro-tile must fit the vector registers");
};

}  // namespace dlk::cpu::DLK_ISA
