// Which CPU instruction set the kernels run with, chosen at run time.
//
// The default build targets baseline x86-64 (no -march=native) so the wheel runs anywhere; each
// family's kernels are compiled once per ISA (cpu/isa/prelude.h) and an op picks one set from
// active_isa() when it starts: the best the CPU supports, or DLKERNELS_CPU_ISA, or
// set_active_isa(). An op reads the choice once and passes it to every table it uses, so a switch
// made by another thread mid-call never mixes two ISAs' kernels (their blockings differ).
#pragma once

#include <string>
#include <vector>

#include "common/macros.h"

namespace dlk::cpu {

enum class Isa : int { baseline = 0, avx2 = 1, avx512 = 2 };

const char* isa_name(Isa isa);
// Compiled into this build and supported by the running CPU and OS.
bool isa_supported(Isa isa);
std::vector<std::string> supported_isa_names();
Isa active_isa();
// Throws (ValueError) on an unknown name or an ISA this CPU cannot run; "auto" picks the best.
// Returns the previous choice (the best ISA if none was made yet). Recovers from an invalid
// DLKERNELS_CPU_ISA, which otherwise makes every CPU op raise.
Isa set_active_isa(const std::string& name);

}  // namespace dlk::cpu

// Calls `ns::expr` for the namespace of ISA `isa`; used by the per-family table selectors.
#if DLK_X86
#define DLK_ISA_DISPATCH(isa, expr)      \
  switch (isa) {                         \
    case ::dlk::cpu::Isa::avx512:        \
      return ::dlk::cpu::avx512::expr;   \
    case ::dlk::cpu::Isa::avx2:          \
      return ::dlk::cpu::avx2::expr;     \
    default:                             \
      return ::dlk::cpu::baseline::expr; \
  }
#define DLK_FOR_EACH_ISA(X) X(baseline) X(avx2) X(avx512)
#else
#define DLK_ISA_DISPATCH(isa, expr) return ((void)(isa), ::dlk::cpu::baseline::expr);
#define DLK_FOR_EACH_ISA(X) X(baseline)
#endif
