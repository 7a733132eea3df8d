// The execution engine of the SIMT emulator: the threads of a block are cooperative fibers on
// one OS thread, switched only at scheduling points (block barriers, warp collectives,
// cp.async waits, __nanosleep, thread exit). Blocks run one after the other. A seed shuffles the
// block order and which runnable thread goes next, so results that depend on an order CUDA does
// not promise change between seeds. Under a seed, each block runs one of two orders: any runnable
// thread at random, or run-ahead (the warp that just made progress goes on, so one warp reaches
// the next barrier before the others have started the phase: the order that exposes a write to
// shared memory another warp still reads).
//
// Launches hold one process-wide mutex: static __shared__ storage is a single section per module
// (see intrinsics.h), and the fiber stacks are pooled. Everything is in headers with inline
// linkage, so several .cu files can be linked into one library.
#pragma once

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <source_location>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "runtime.h"
#include "types.h"

#if defined(__SANITIZE_ADDRESS__)
#define DLK_SIM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DLK_SIM_ASAN 1
#endif
#endif
#ifdef DLK_SIM_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

namespace dlk::sim {

// ---- seed ------------------------------------------------------------------------------------

struct SeedState {
  std::atomic<uint64_t> seed{1};
  std::atomic<uint64_t> launches{0};
  SeedState() {
    if (const char* s = std::getenv("DLK_CUDA_SIM_SEED"); s && *s) seed = std::strtoull(s, nullptr, 0);
  }
};
inline SeedState& seed_state() {
  static SeedState s;
  return s;
}
// 0 runs blocks and threads in index order; any other value shuffles both, reproducibly: the
// n-th launch after set_seed(s) always sees the same order.
inline void set_seed(uint64_t s) {
  seed_state().seed = s;
  seed_state().launches = 0;
}
inline uint64_t get_seed() { return seed_state().seed; }

struct Rng {
  uint64_t s;
  uint64_t next() {  // splitmix64
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  size_t below(size_t n) { return static_cast<size_t>(next() % n); }
};

// ---- threads and blocks ----------------------------------------------------------------------

enum class State : uint8_t { runnable, at_barrier, at_warp, exited };

struct CpAsyncOp {
  void* dst;
  const void* src;
  uint32_t bytes, src_bytes;
  int group;
};

struct Thread {
  ucontext_t ctx;
  char* stack = nullptr;  // lowest usable byte, above the guard page
  size_t stack_size = 0;
  void* fake_stack = nullptr;  // ASan's per-fiber fake stack
  uint3 tid{};
  int linear = 0;
  State state = State::runnable;
  std::source_location site;  // where it waits, for reports
  int pred = 0, result = 0;
  unsigned wmask = 0;
  const char* wkind = nullptr;
  void* warg = nullptr;
  std::vector<CpAsyncOp> cp_ops;
  int cp_open_group = 0;  // index of the group cp.async.commit_group will close next
};

inline size_t stack_bytes() {
#ifdef DLK_SIM_ASAN
  size_t n = 256 * 1024;  // instrumented frames are several times larger
#else
  size_t n = 64 * 1024;
#endif
  if (const char* s = std::getenv("DLK_CUDA_SIM_STACK_KB"); s && *s) n = std::strtoull(s, nullptr, 0) * 1024;
  return n;
}

// Fibers and their stacks, reused by every block of every launch (under the launch mutex).
struct Pool {
  std::vector<std::unique_ptr<Thread>> threads;
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  Thread* get(size_t i) {
    while (threads.size() <= i) {
      auto t = std::make_unique<Thread>();
      const size_t size = (stack_bytes() + page - 1) / page * page;
      void* p = mmap(nullptr, size + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (p == MAP_FAILED) {
        std::fprintf(stderr, "dlk cuda sim: cannot map a fiber stack\n");
        std::abort();
      }
      mprotect(p, page, PROT_NONE);  // overflowing a fiber stack faults instead of corrupting
      t->stack = static_cast<char*>(p) + page;
      t->stack_size = size;
      threads.push_back(std::move(t));
    }
    return threads[i].get();
  }
};
inline Pool& pool() {
  static Pool p;
  return p;
}
inline std::mutex& launch_mutex() {
  static std::mutex m;
  return m;
}

struct Launch {
  dim3 grid, block;
  int nthreads = 0;
  void (*invoke)(void*) = nullptr;
  void* body = nullptr;
  unsigned char* dyn_smem = nullptr;
  size_t dyn_bytes = 0;
  unsigned char *static_lo = nullptr, *static_hi = nullptr;
  bool shuffle = false;
  Rng rng{0};
  uint3 block_idx{};
  ucontext_t sched;
  const void* sched_stack = nullptr;
  size_t sched_stack_size = 0;
  void* sched_fake_stack = nullptr;
  std::vector<Thread*> threads;
  std::deque<int> runnable;  // taken from the front, or from the back when running ahead
  bool run_ahead = false;
  int live = 0;
  int bar_arrived = 0, bar_count = 0;
  bool bar_and = true, bar_or = false;
  std::source_location bar_site;
  bool failed = false;
  cudaError_t code = cudaSuccess;
  std::string message;
};

inline thread_local Launch* t_launch = nullptr;
inline thread_local Thread* t_thread = nullptr;
inline thread_local uint3 t_thread_idx{}, t_block_idx{};
inline thread_local dim3 t_block_dim{}, t_grid_dim{};
inline thread_local std::string t_last_message;

// The message of the last failed launch on this OS thread (what cudaGetLastError cannot carry).
inline const std::string& last_error_message() { return t_last_message; }

inline Thread& cur() {
  if (!t_thread) {
    std::fprintf(stderr, "dlk cuda sim: device intrinsic called outside a kernel launch\n");
    std::abort();
  }
  return *t_thread;
}

inline std::string where(const std::source_location& l) {
  const char* f = l.file_name();
  const char* slash = std::strrchr(f, '/');
  return std::string(slash ? slash + 1 : f) + ":" + std::to_string(l.line());
}
inline std::string who(const Thread& t) {
  char b[96];
  std::snprintf(b, sizeof b, "thread (%u,%u,%u) of block (%u,%u,%u)", t.tid.x, t.tid.y, t.tid.z, t_block_idx.x,
                t_block_idx.y, t_block_idx.z);
  return b;
}

// ---- switching -------------------------------------------------------------------------------

inline void asan_start(void** save, const void* bottom, size_t size) {
#ifdef DLK_SIM_ASAN
  __sanitizer_start_switch_fiber(save, bottom, size);
#else
  (void)save, (void)bottom, (void)size;
#endif
}
inline void asan_finish(void* save, const void** bottom, size_t* size) {
#ifdef DLK_SIM_ASAN
  __sanitizer_finish_switch_fiber(save, bottom, size);
#else
  (void)save, (void)bottom, (void)size;
#endif
}

inline void land_copy(const CpAsyncOp& op) {
  if (op.src_bytes) std::memcpy(op.dst, op.src, op.src_bytes);
  if (op.bytes > op.src_bytes) std::memset(static_cast<char*>(op.dst) + op.src_bytes, 0, op.bytes - op.src_bytes);
}

// A cp.async may land at any moment between its issue and the wait that covers it. Shuffled runs
// land each pending copy of a thread that yields with probability 1/8, so code that overwrites a
// stage other threads still read (a refill before the barrier) sees its data change under them;
// the rest land at the wait, so a read before the wait still sees poison. Seed 0 lands all at the
// wait.
inline void land_some_early(Thread& t, Launch& L) {
  if (!L.shuffle || t.cp_ops.empty()) return;
  auto& ops = t.cp_ops;
  size_t keep = 0;
  for (size_t i = 0; i < ops.size(); ++i) {
    if (L.rng.below(8) == 0) {
      land_copy(ops[i]);
    } else {
      ops[keep++] = ops[i];
    }
  }
  ops.resize(keep);
}

// Fiber -> scheduler. `forever` for a fiber that will not be resumed (exit, failure).
inline void to_scheduler(bool forever = false) {
  Thread& t = *t_thread;
  Launch& L = *t_launch;
  if (!forever) land_some_early(t, L);
  asan_start(forever ? nullptr : &t.fake_stack, L.sched_stack, L.sched_stack_size);
  swapcontext(&t.ctx, &L.sched);
  asan_finish(t.fake_stack, &L.sched_stack, &L.sched_stack_size);
}

inline void make_runnable(Launch& L, Thread& t) {
  t.state = State::runnable;
  L.runnable.push_back(t.linear);
}

// Ends the block with an error: from a fiber it never returns.
[[noreturn]] inline void fail_in_kernel(cudaError_t code, const std::string& msg) {
  Launch& L = *t_launch;
  if (!L.failed) {
    L.failed = true;
    L.code = code;
    L.message = msg;
  }
  to_scheduler(true);
  std::abort();  // unreachable: a failed block's fibers are never resumed
}

inline void complete_cp_async(Thread& t, int below_group) {
  auto& ops = t.cp_ops;
  size_t keep = 0;
  for (size_t i = 0; i < ops.size(); ++i) {
    const CpAsyncOp& op = ops[i];
    if (op.group < below_group) {
      land_copy(op);
    } else {
      ops[keep++] = op;
    }
  }
  ops.resize(keep);
}

// A barrier completes once every thread that has not exited waits at it.
inline void try_release_barrier(Launch& L) {
  if (L.bar_arrived == 0 || L.bar_arrived != L.live) return;
  for (Thread* o : L.threads) {
    if (o->state != State::at_barrier) continue;
    o->result = o->pred == 0 ? L.bar_count : o->pred == 1 ? (L.bar_and ? 1 : 0) : (L.bar_or ? 1 : 0);
    make_runnable(L, *o);
  }
  L.bar_arrived = 0;
}

inline void thread_exit() {
  Thread& t = *t_thread;
  Launch& L = *t_launch;
  complete_cp_async(t, 1 << 30);  // copies nobody waited for still land, as on the GPU
  t.state = State::exited;
  --L.live;
  try_release_barrier(L);
  to_scheduler(true);
}

inline void fiber_entry() {
  Launch& L = *t_launch;
  asan_finish(nullptr, &L.sched_stack, &L.sched_stack_size);
  L.invoke(L.body);
  thread_exit();
}

// ---- scheduling points used by the intrinsics --------------------------------------------------

// mode 0: __syncthreads_count, 1: _and, 2: _or (plain __syncthreads is any of them).
inline int block_barrier(int mode, int pred, const std::source_location& loc) {
  Thread& t = cur();
  Launch& L = *t_launch;
  if (L.bar_arrived == 0) {
    L.bar_site = loc;
    L.bar_count = 0;
    L.bar_and = true;
    L.bar_or = false;
  } else if (loc.line() != L.bar_site.line() || std::strcmp(loc.file_name(), L.bar_site.file_name()) != 0 ||
             loc.column() != L.bar_site.column()) {
    fail_in_kernel(cudaErrorLaunchFailure, "divergent __syncthreads: " + who(t) + " waits at " + where(loc) +
                                               " while " + std::to_string(L.bar_arrived) + " thread(s) wait at " +
                                               where(L.bar_site));
  }
  t.state = State::at_barrier;
  t.site = loc;
  t.pred = mode;
  ++L.bar_arrived;
  L.bar_count += pred != 0;
  L.bar_and = L.bar_and && pred != 0;
  L.bar_or = L.bar_or || pred != 0;
  try_release_barrier(L);
  to_scheduler();
  return t.result;
}

// A warp collective: every lane named in `mask` must arrive with the same mask and kind; the
// last to arrive runs `resolve` over all lanes' `arg` (indexed by lane, null outside the mask),
// then all of them continue. Lanes outside the mask are not waited for.
using Resolve = void (*)(void* const* args, unsigned mask, void* ctx);
inline void warp_collective(unsigned mask, const char* kind, void* arg, Resolve resolve, void* ctx,
                            const std::source_location& loc) {
  Thread& t = cur();
  Launch& L = *t_launch;
  const int lane = t.linear % kWarpSize;
  const int base = t.linear - lane;
  char buf[160];
  if (!((mask >> lane) & 1u)) {
    std::snprintf(buf, sizeof buf, "%s at %s: the calling lane %d is not in mask 0x%08x", kind, where(loc).c_str(),
                  lane, mask);
    fail_in_kernel(cudaErrorLaunchFailure, buf + std::string(" (") + who(t) + ")");
  }
  t.state = State::at_warp;
  t.wmask = mask;
  t.wkind = kind;
  t.warg = arg;
  t.site = loc;
  bool all = true;
  for (int l = 0; l < kWarpSize; ++l) {
    if (!((mask >> l) & 1u)) continue;
    if (base + l >= L.nthreads) {
      std::snprintf(buf, sizeof buf, "%s at %s: mask 0x%08x names lane %d, past the end of the block", kind,
                    where(loc).c_str(), mask, l);
      fail_in_kernel(cudaErrorLaunchFailure, buf);
    }
    const Thread& o = *L.threads[base + l];
    if (o.state == State::exited) {
      std::snprintf(buf, sizeof buf, "%s at %s: mask 0x%08x names lane %d, which has exited", kind, where(loc).c_str(),
                    mask, l);
      fail_in_kernel(cudaErrorLaunchFailure, buf + std::string(" (") + who(t) + ")");
    }
    if (o.state != State::at_warp) all = false;
  }
  if (all) {
    void* args[kWarpSize] = {};
    for (int l = 0; l < kWarpSize; ++l) {
      if (!((mask >> l) & 1u)) continue;
      Thread& o = *L.threads[base + l];
      if (o.wmask != mask || std::strcmp(o.wkind, kind) != 0) {
        std::snprintf(buf, sizeof buf,
                      "mismatched warp collective: lane %d: %s mask 0x%08x at %s, lane %d: %s mask 0x%08x", lane, kind,
                      mask, where(loc).c_str(), l, o.wkind, o.wmask);
        fail_in_kernel(cudaErrorLaunchFailure, buf + std::string(" at ") + where(o.site));
      }
      args[l] = o.warg;
    }
    resolve(args, mask, ctx);
    for (int l = 0; l < kWarpSize; ++l)
      if ((mask >> l) & 1u) make_runnable(L, *L.threads[base + l]);
  }
  to_scheduler();
}

// Lets other threads run (spin-waits, cp.async waits) without blocking the caller. A thread that
// may wait on another (`spins`: __nanosleep) goes last in either order, so it cannot starve the
// thread it waits for; a cp.async wait waits on nothing and may run ahead.
inline void yield_point(bool spins = true) {
  Thread& t = cur();
  Launch& L = *t_launch;
  if (L.run_ahead && spins) {
    t.state = State::runnable;
    L.runnable.push_front(t.linear);
  } else {
    make_runnable(L, t);
  }
  to_scheduler();
}

inline std::string deadlock_report(Launch& L) {
  std::string s = "deadlock in block (" + std::to_string(L.block_idx.x) + "," + std::to_string(L.block_idx.y) + "," +
                  std::to_string(L.block_idx.z) + "): " + std::to_string(L.live) + " live thread(s) can never proceed";
  if (L.bar_arrived)
    s += "; " + std::to_string(L.bar_arrived) + " wait at __syncthreads " + where(L.bar_site) +
         " (a barrier not every live thread reaches)";
  int shown = 0;
  for (Thread* o : L.threads) {
    if (o->state != State::at_warp || shown >= 4) continue;
    ++shown;
    char b[200];
    std::snprintf(b, sizeof b, "; thread %d waits at %s %s with mask 0x%08x", o->linear, o->wkind,
                  where(o->site).c_str(), o->wmask);
    s += b;
  }
  return s;
}

// Uninstrumented on purpose: under ASan with -fsanitize-sections=dlk_sim_shared the section holds
// redzones between the variables, which the poison fill must cross without being reported.
__attribute__((no_sanitize_address)) inline void fill_poison(unsigned char* lo, unsigned char* hi) {
  for (volatile unsigned char* p = lo; p < hi; ++p) *p = 0xff;
}

inline void run_block(Launch& L, uint3 bidx) {
  L.block_idx = bidx;
  t_block_idx = bidx;
  // Poison: 0xff bytes are a NaN in every float format and -1 / huge in every integer type.
  if (L.static_hi > L.static_lo) fill_poison(L.static_lo, L.static_hi);
  if (L.dyn_bytes) std::memset(L.dyn_smem, 0xff, L.dyn_bytes);
  L.runnable.clear();
  L.run_ahead = L.shuffle && L.rng.below(2) == 0;
  L.live = L.nthreads;
  L.bar_arrived = 0;
  for (int i = 0; i < L.nthreads; ++i) {
    Thread& t = *L.threads[i];
    t.state = State::runnable;
    t.cp_ops.clear();
    t.cp_open_group = 0;
    t.fake_stack = nullptr;
    getcontext(&t.ctx);
    t.ctx.uc_stack.ss_sp = t.stack;
    t.ctx.uc_stack.ss_size = t.stack_size;
    t.ctx.uc_link = &L.sched;
    makecontext(&t.ctx, fiber_entry, 0);
    L.runnable.push_back(i);
  }
  while (!L.failed) {
    if (L.runnable.empty()) {
      if (L.live == 0) break;
      L.failed = true;
      L.code = cudaErrorLaunchTimeout;  // what a hung kernel gets from the watchdog
      L.message = deadlock_report(L);
      break;
    }
    int next;
    if (L.run_ahead) {
      next = L.runnable.back();
      L.runnable.pop_back();
    } else {
      if (L.shuffle) std::swap(L.runnable[L.rng.below(L.runnable.size())], L.runnable.front());
      next = L.runnable.front();
      L.runnable.pop_front();
    }
    Thread& t = *L.threads[next];
    t_thread = &t;
    t_thread_idx = t.tid;
    asan_start(&L.sched_fake_stack, t.stack, t.stack_size);
    swapcontext(&L.sched, &t.ctx);
    asan_finish(L.sched_fake_stack, nullptr, nullptr);
    t_thread = nullptr;
  }
}

// ---- launches ---------------------------------------------------------------------------------

inline std::map<const void*, size_t>& dyn_smem_limits() {
  static std::map<const void*, size_t> m;
  return m;
}

inline cudaError_t validate(dim3 grid, dim3 block, size_t dyn, const void* fn, std::string& why) {
  const uint64_t threads = uint64_t(block.x) * block.y * block.z;
  if (block.x == 0 || block.y == 0 || block.z == 0 || grid.x == 0 || grid.y == 0 || grid.z == 0) {
    why = "zero grid or block dimension";
    return cudaErrorInvalidConfiguration;
  }
  if (block.x > 1024 || block.y > 1024 || block.z > 64 || threads > uint64_t(kMaxThreadsPerBlock)) {
    why = "block of " + std::to_string(threads) + " threads (" + std::to_string(block.x) + "x" +
          std::to_string(block.y) + "x" + std::to_string(block.z) + "), at most 1024 and 1024x1024x64";
    return cudaErrorInvalidConfiguration;
  }
  if (grid.x > 2147483647u || grid.y > 65535u || grid.z > 65535u) {
    why = "grid dimension over 2^31-1 x 65535 x 65535";
    return cudaErrorInvalidConfiguration;
  }
  size_t limit = kSharedPerBlock;
  {
    auto& m = dyn_smem_limits();
    if (auto it = m.find(fn); it != m.end()) limit = std::max(limit, it->second);
  }
  if (dyn > limit) {
    why = std::to_string(dyn) + " bytes of dynamic shared memory, the limit for this kernel is " +
          std::to_string(limit) + " (raise it with cudaFuncSetAttribute)";
    return cudaErrorInvalidValue;
  }
  return cudaSuccess;
}

inline cudaError_t run_grid(dim3 grid, dim3 block, size_t dyn, const void* fn, void (*invoke)(void*), void* body,
                            unsigned char* static_lo, unsigned char* static_hi) {
  std::string why;
  if (t_launch) {
    t_last_message = "kernel launch from device code is not supported";
    set_error(cudaErrorNotSupported);
    return cudaErrorNotSupported;
  }
  std::lock_guard<std::mutex> lock(launch_mutex());
  if (cudaError_t e = validate(grid, block, dyn, fn, why); e != cudaSuccess) {
    t_last_message = "invalid launch: " + why;
    set_error(e);
    return e;
  }
  Launch L;
  L.grid = grid;
  L.block = block;
  L.nthreads = static_cast<int>(block.x * block.y * block.z);
  L.invoke = invoke;
  L.body = body;
  L.static_lo = static_lo;
  L.static_hi = static_hi;
  // Exactly the requested size, so ASan reports the first byte past it.
  L.dyn_bytes = dyn;
  L.dyn_smem = static_cast<unsigned char*>(::operator new(dyn, std::align_val_t{128}));
  SeedState& ss = seed_state();
  const uint64_t seed = ss.seed;
  const uint64_t n = ss.launches.fetch_add(1);
  L.shuffle = seed != 0;
  L.rng.s = seed * 0x9e3779b97f4a7c15ull + n;
  L.threads.resize(L.nthreads);
  for (int i = 0; i < L.nthreads; ++i) {
    Thread* t = pool().get(i);
    t->linear = i;
    t->tid = uint3{i % block.x, (i / block.x) % block.y, i / (block.x * block.y)};
    L.threads[i] = t;
  }
  t_launch = &L;
  t_block_dim = block;
  t_grid_dim = grid;
  const uint64_t nblocks = uint64_t(grid.x) * grid.y * grid.z;
  std::vector<uint64_t> order;
  if (L.shuffle && nblocks <= (1u << 22)) {
    order.resize(nblocks);
    for (uint64_t i = 0; i < nblocks; ++i) order[i] = i;
    for (uint64_t i = nblocks; i > 1; --i) std::swap(order[i - 1], order[L.rng.below(i)]);
  }
  for (uint64_t i = 0; i < nblocks && !L.failed; ++i) {
    const uint64_t b = order.empty() ? i : order[i];
    run_block(L,
              uint3{unsigned(b % grid.x), unsigned((b / grid.x) % grid.y), unsigned(b / (uint64_t(grid.x) * grid.y))});
  }
  t_launch = nullptr;
  ::operator delete(L.dyn_smem, std::align_val_t{128});
  if (L.failed) {
    t_last_message = L.message;
    std::fprintf(stderr, "dlk cuda sim: %s\n", L.message.c_str());
    set_error(L.code);
    return L.code;
  }
  return cudaSuccess;
}

}  // namespace dlk::sim

template <class F>
inline cudaError_t cudaFuncSetAttribute(F* fn, cudaFuncAttribute attr, int value) {
  if (attr == cudaFuncAttributePreferredSharedMemoryCarveout) return cudaSuccess;
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaErrorInvalidValue;
  if (value < 0 || static_cast<size_t>(value) > dlk::sim::kSharedPerBlockOptin) return cudaErrorInvalidValue;
  std::lock_guard<std::mutex> lock(dlk::sim::launch_mutex());
  dlk::sim::dyn_smem_limits()[reinterpret_cast<const void*>(fn)] = static_cast<size_t>(value);
  return cudaSuccess;
}
