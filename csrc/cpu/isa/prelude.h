// Every system header a kernel unit needs, included *before* its target pragma.
//
// setup.py compiles each cpu/kernels/<family>.h once per ISA, in a generated unit
// build/isa/<family>_<isa>.cpp of four lines:
//   #include "cpu/isa/prelude.h"        system headers, parsed with the baseline target
//   #include "cpu/<family>_table.h"     the family's table type and helpers, likewise
//   #include "cpu/isa/<isa>.h"          the target pragma and that ISA's vector vocabulary
//   #include "cpu/kernels/<family>.h"   the kernels, inside dlk::cpu::<isa> (when DLK_ISA_ENABLED)
// An inline function or template parsed after `#pragma GCC target("avx512f")` is compiled for
// AVX-512; if the same function also exists in a baseline unit, the linker keeps one copy and a
// CPU without AVX-512 may end up running the AVX-512 one. So everything parsed after the pragma
// lives in dlk::cpu::<isa> (or is a template instantiated only with that namespace's vector
// types). tests/test_isa_hygiene.py checks the built library for wide registers outside them.
#pragma once

#include "common/macros.h"

#if DLK_X86
#include <immintrin.h>
#endif

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "common/math.h"
#include "cpu/isa.h"
