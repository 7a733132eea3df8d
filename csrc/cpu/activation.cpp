// Activations on the CPU: the kernels of the active ISA (cpu/kernels/activation.h), split across
// threads with torch's parallel_for. Ops and checks are in host/activation.h.

#include <cstdint>
#include <cstdlib>
#include <initializer_list>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

#include "cpu/activation_table.h"
#include "host/activation.h"

namespace dlk::cpu {
namespace {

// Elements per task: large enough that a thread's start-up cost is small against the memory
// traffic, small enough that two threads split a 128 KB tensor.
constexpr int64_t kGrain = 16384;

// When a call touches at least this many bytes (inputs + output), its output is written with
// streaming stores (cpu/kernels/activation.h). Below, the output would still be in the last-level
// cache for the next op, and ordinary stores win. Measured on a 2-core Zen 4 with 32 MB of L3,
// 2 threads, streaming vs ordinary stores: forward passes lose up to 2.8x at 16 MB touched, are
// even to 1.4x faster at 32 MB and 1.5-1.8x faster at 64 MB; backward passes lose 1.6x at 12 MB,
// go either way (0.9-1.3x) at 24 MB and win 1.8-2.2x at 48 MB. One thread gains already at
// 16 MB (the L3 serves two cores better than memory does). 24 MB, 3/4 of that L3, loses little
// either way. Override with DLKERNELS_CPU_STREAM_BYTES (bytes; -1: never stream).
constexpr int64_t kDefaultStreamBytes = int64_t(24) << 20;

int64_t stream_bytes() {
  static const int64_t bytes = [] {
    const char* env = std::getenv("DLKERNELS_CPU_STREAM_BYTES");
    return env && *env ? std::strtoll(env, nullptr, 10) : kDefaultStreamBytes;
  }();
  return bytes;
}

// Streaming stores pay off only for a separate output: in place, the lines were just read into
// the cache anyway. `inputs` are the operands read, each as large as the output.
bool use_stream(const void* out, int64_t out_bytes, std::initializer_list<const void*> inputs) {
  const int64_t threshold = stream_bytes();
  const int64_t touched = out_bytes * static_cast<int64_t>(inputs.size() + 1);
  if (threshold < 0 || touched < threshold) return false;
  for (const void* in : inputs) {
    if (in == out) return false;
  }
  return true;
}

// A new output of tens of MB usually comes straight from mmap (glibc serves blocks that large
// that way, and torch's CPU allocator does not cache them): each of its 4 KB pages then faults on
// first touch, one trap per page, which on this VM costs more than the kernel itself (16M float32
// relu: about 20 ms of faults, 2-3 ms of work). When the first page of a thread's part of such an
// output is not mapped yet, MADV_POPULATE_WRITE (Linux 5.14+; older kernels refuse it, harmless)
// maps the whole part in one call instead. Reused memory is mapped already and left alone; the
// check (one mincore call per thread) is skipped below kPrefaultBytes, where glibc reuses blocks.
constexpr int64_t kPrefaultBytes = int64_t(16) << 20;

void prefault(void* p, int64_t bytes) {
#if defined(__linux__) && defined(MADV_POPULATE_WRITE)
  static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + page - 1) & ~(page - 1);  // whole pages inside
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + static_cast<uintptr_t>(bytes)) & ~(page - 1);
  if (end <= begin) return;
  unsigned char resident = 0;
  if (mincore(reinterpret_cast<void*>(begin), page, &resident) != 0 || (resident & 1)) return;
  madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_WRITE);
#endif
}

template <class T>
void forward_typed(Activation act, const Tensor& x, const Tensor& y, double slope) {
  const auto& table = activation_table<T>(active_isa());
  const T* px = x.const_data_ptr<T>();
  T* py = y.mutable_data_ptr<T>();
  const int64_t n = x.numel();
  const bool stream = use_stream(py, n * int64_t(sizeof(T)), {px});
  const bool may_fault = py != px && n * int64_t(sizeof(T)) >= kPrefaultBytes;
  const auto fn = (stream ? table.forward_stream : table.forward)[static_cast<int>(act)];
  const T s = static_cast<T>(slope);
  torch::stable::parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) {
    if (may_fault) prefault(py + b, (e - b) * int64_t(sizeof(T)));
    fn(px + b, py + b, e - b, s);
  });
}

// one_grad: dy holds one value that is every element's gradient (see ActivationTable).
template <class T>
void backward_typed(Activation act, const Tensor& dy, const Tensor& saved, const Tensor& dx, double slope,
                    bool one_grad) {
  const auto& table = activation_table<T>(active_isa());
  const T* pdy = dy.const_data_ptr<T>();
  const T* ps = saved.const_data_ptr<T>();
  T* pdx = dx.mutable_data_ptr<T>();
  const int64_t n = dx.numel();
  const bool stream =
      one_grad ? use_stream(pdx, n * int64_t(sizeof(T)), {ps}) : use_stream(pdx, n * int64_t(sizeof(T)), {pdy, ps});
  const bool may_fault = n * int64_t(sizeof(T)) >= kPrefaultBytes;
  const auto& fns = one_grad ? (stream ? table.backward_one_grad_stream : table.backward_one_grad)
                             : (stream ? table.backward_stream : table.backward);
  const auto fn = fns[static_cast<int>(act)];
  const T s = static_cast<T>(slope);
  torch::stable::parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) {
    if (may_fault) prefault(pdx + b, (e - b) * int64_t(sizeof(T)));
    fn(one_grad ? pdy : pdy + b, ps + b, pdx + b, e - b, s);
  });
}

struct CpuBackend {
  static constexpr std::initializer_list<ScalarType> dtypes = {ScalarType::Float, ScalarType::Double};
  static void forward(Activation act, const Tensor& x, const Tensor& y, double slope) {
    dispatch_float(x.scalar_type(), "activation", [&](auto tag) { forward_typed<decltype(tag)>(act, x, y, slope); });
  }
  static void backward(Activation act, const Tensor& dy, const Tensor& saved, const Tensor& dx, double slope) {
    dispatch_float(dy.scalar_type(), "activation backward",
                   [&](auto tag) { backward_typed<decltype(tag)>(act, dy, saved, dx, slope, false); });
  }
  static void backward_one_grad(Activation act, const Tensor& dy, const Tensor& saved, const Tensor& dx, double slope) {
    dispatch_float(dy.scalar_type(), "activation backward",
                   [&](auto tag) { backward_typed<decltype(tag)>(act, dy, saved, dx, slope, true); });
  }
};

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(dlkernels, CPU, m) { ActivationOps<CpuBackend>::register_all(m); }

}  // namespace dlk::cpu
