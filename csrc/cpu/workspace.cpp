#include "cpu/workspace.h"

#include <array>
#include <memory>

namespace dlk::cpu {
namespace {

struct Block {
  struct Free {
    void operator()(void* p) const { ::operator delete[](p, std::align_val_t(64)); }
  };
  std::unique_ptr<void, Free> ptr;
  int64_t bytes = 0;
};

thread_local std::array<Block, static_cast<int>(Slot::count)> t_blocks;

}  // namespace

void* workspace(Slot slot, int64_t bytes) {
  Block& b = t_blocks[static_cast<int>(slot)];
  if (bytes > b.bytes) {
    // Grow by at least half again so a slowly growing size does not reallocate every call.
    const int64_t want = bytes > b.bytes + b.bytes / 2 ? bytes : b.bytes + b.bytes / 2;
    b.ptr.reset();
    b.ptr.reset(::operator new[](static_cast<size_t>(want), std::align_val_t(64)));
    b.bytes = want;
  }
  return b.ptr.get();
}

}  // namespace dlk::cpu
