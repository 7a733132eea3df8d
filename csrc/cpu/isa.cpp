#include "cpu/isa.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

namespace dlk::cpu {
namespace {

bool cpu_has(Isa isa) {
#if DLK_X86
  switch (isa) {
    case Isa::avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma");
    case Isa::avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::baseline:
      return true;
  }
  return false;
#else
  return isa == Isa::baseline;
#endif
}

Isa best_isa() {
  for (Isa isa : {Isa::avx512, Isa::avx2}) {
    if (cpu_has(isa)) return isa;
  }
  return Isa::baseline;
}

std::string supported_list() {
  std::string names;
  for (const auto& n : supported_isa_names()) names += (names.empty() ? "" : ", ") + n;
  return names;
}

// std::invalid_argument reaches Python as ValueError.
Isa parse(const std::string& name) {
  if (name.empty() || name == "auto") return best_isa();
  for (Isa isa : {Isa::baseline, Isa::avx2, Isa::avx512}) {
    if (name == isa_name(isa)) {
      if (!cpu_has(isa)) {
        throw std::invalid_argument("dlkernels: CPU ISA '" + name +
                                    "' is not supported by this CPU or build; supported: " + supported_list());
      }
      return isa;
    }
  }
  throw std::invalid_argument("dlkernels: unknown CPU ISA '" + name +
                              "'; expected one of auto, baseline, avx2, avx512");
}

// -1 until first use, so DLKERNELS_CPU_ISA is read lazily (and its errors surface at a call).
std::atomic<int> g_active{-1};

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512:
      return "avx512";
    case Isa::avx2:
      return "avx2";
    case Isa::baseline:
      return "baseline";
  }
  return "?";
}

bool isa_supported(Isa isa) { return cpu_has(isa); }

std::vector<std::string> supported_isa_names() {
  std::vector<std::string> names;
  for (Isa isa : {Isa::baseline, Isa::avx2, Isa::avx512}) {
    if (cpu_has(isa)) names.emplace_back(isa_name(isa));
  }
  return names;
}

Isa active_isa() {
  int v = g_active.load(std::memory_order_relaxed);
  if (v < 0) {
    const char* env = std::getenv("DLKERNELS_CPU_ISA");
    v = static_cast<int>(parse(env ? env : ""));
    g_active.store(v, std::memory_order_relaxed);
  }
  return static_cast<Isa>(v);
}

Isa set_active_isa(const std::string& name) {
  // Parse first: a bad name changes nothing. The previous choice may never have been made (or
  // DLKERNELS_CPU_ISA may be invalid); setting still works then and reports the best ISA.
  const int chosen = static_cast<int>(parse(name));
  const int previous = g_active.exchange(chosen, std::memory_order_relaxed);
  return previous < 0 ? best_isa() : static_cast<Isa>(previous);
}

}  // namespace dlk::cpu
