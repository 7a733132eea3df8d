// Reusable scratch memory for the CPU kernels.
//
// A large fresh allocation costs a page fault per 4 KB page on first touch, which on a small VM
// can take as long as a pass of the kernel that fills it. Buffers are therefore kept per calling
// thread, one per named slot, grown when a call needs more and never shrunk (released at thread
// exit). Worker threads of at::parallel_for use the caller's buffers through plain pointers.
#pragma once

#include <cstdint>
#include <new>

namespace dlk::cpu {

enum class Slot : int { planes, weight_t, scratch0, scratch1, scratch2, scratch3, count };

// 64-byte-aligned storage of at least `bytes` bytes for `slot` on this thread; contents undefined.
void* workspace(Slot slot, int64_t bytes);

template <class T>
T* workspace(Slot slot, int64_t n) {
  return static_cast<T*>(workspace(slot, n * static_cast<int64_t>(sizeof(T))));
}

}  // namespace dlk::cpu
