// The element types a kernel can be asked for, without torch: CUDA launchers take this enum so the
// .cu files stay free of torch headers (CONTRIBUTING.md: how an op is put together).
#pragma once

namespace dlk {

enum class DType : int { f32 = 0, f64 = 1, f16 = 2, bf16 = 3 };

}  // namespace dlk
