// Macros shared by host C++, CPU SIMD code and CUDA device code. Torch-free.
#pragma once

#if defined(__CUDACC__) || defined(__HIPCC__)
#define DLK_HD __host__ __device__ __forceinline__
#define DLK_DEVICE_CODE 1
#else
#define DLK_HD inline __attribute__((always_inline))
#endif

#if defined(__x86_64__) || defined(_M_X64)
#define DLK_X86 1
#endif
