// Reusable scratch memory for the CPU kernels.
//
// A large fresh allocation costs a page fault per 4 KB page on first touch, which on a small VM
// can take as long as a pass of the kernel that fills it. Buffers are therefore kept per thread,
// one per named slot, grown when a call needs more and never shrunk (released at thread exit).
// Two kinds of use, never mixed on one slot within an op:
//  - the calling thread's buffers (input_planes, flipped_weight, packed_weight, partial_sums),
//    filled before a parallel loop and read by its workers through plain pointers;
//  - Scratch: each worker thread's own buffer inside a parallel loop (torch's parallel_for runs
//    a loop's chunks on distinct threads, and every thread has its own slots).
#pragma once

#include <cstdint>
#include <new>

namespace dlk::cpu {

enum class Slot : int {
  // calling thread
  input_planes,    // the input zero-padded: as stride-phase planes (common/conv2d_geometry.h), or NHWC
  flipped_weight,  // the transposed, flipped weight of a data gradient run as a forward conv
  packed_weight,   // a weight packed as GEMM B panels for a whole call (the NHWC forward)
  partial_sums,    // per-part weight gradients, added up after the loop
  loss_terms,      // a loss's per-block or per-row sums (and weights), added up after the loop
  // per worker (Scratch)
  packed_a,     // GEMM A block
  packed_b,     // GEMM B block
  c_stage,      // a C block that straddles two images
  col_block,    // im2col-shaped data gradient block before col2im
  grad_planes,  // gradient planes of a task's channels
  plane,        // one channel's plane
  row_ext,      // an output or gradient widened to the plane's row length
  padded_grad,  // a gradient with the zero margins the depthwise data gradient reads
  dw_window,    // the channel-blocked depthwise kernels' padded window
  dw_acc,       // the channel-blocked depthwise weight gradient's accumulator
  count
};

// 64-byte-aligned storage of at least `bytes` bytes for `slot` on this thread; contents undefined.
void* workspace(Slot slot, int64_t bytes);

template <class T>
T* workspace(Slot slot, int64_t n) {
  return static_cast<T*>(workspace(slot, n * static_cast<int64_t>(sizeof(T))));
}

// n elements of `slot` on whichever thread calls get(): for use inside a parallel loop.
// Uninitialised; the same pointer for every get() of one thread while n does not grow.
template <class T>
struct Scratch {
  Slot slot;
  int64_t n;
  Scratch(Slot s, int64_t count) : slot(s), n(count) {}
  T* get() const { return workspace<T>(slot, n); }
};

}  // namespace dlk::cpu
