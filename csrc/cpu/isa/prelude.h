// Every system header the ISA units need, included *before* their target pragma.
//
// An inline function or template parsed after `#pragma GCC target("avx512f")` is compiled for
// AVX-512; if the same function also exists in a baseline unit, the linker keeps one copy and a
// CPU without AVX-512 may end up running the AVX-512 one. So: system headers are parsed here
// with the baseline target, and everything parsed after the pragma lives in dlk::cpu::<isa>
// (or is a template instantiated only with that namespace's vector types).
// tests/test_isa_hygiene.py checks the built library for wide registers outside those namespaces.
#pragma once

#include "common/macros.h"

#if DLK_X86
#include <immintrin.h>
#endif

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

// Our own headers with non-template inline code, or declarations only.
#include "common/math.h"
#include "cpu/activation_table.h"
#include "cpu/conv2d_table.h"
#include "cpu/gemm_table.h"
