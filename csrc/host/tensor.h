// The torch-facing side of every op, on the LibTorch stable ABI only (torch/csrc/stable,
// torch/headeronly): argument checks, dtype dispatch, layouts, allocation. Errors are
// std::runtime_error with a message that names the op and the problem (Python sees RuntimeError);
// the Python layer raises torch's TypeError / ValueError / NotImplementedError before a call gets
// here, so these checks are the last line, not the user-facing one.
#pragma once

#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>
#include <torch/headeronly/core/ScalarType.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace dlk {

using Tensor = torch::stable::Tensor;
using IntList = torch::headeronly::IntHeaderOnlyArrayRef;
using torch::headeronly::MemoryFormat;
using torch::headeronly::ScalarType;

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

inline std::ostream& operator<<(std::ostream& os, IntList v) {
  os << '[';
  for (size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i];
  return os << ']';
}

// c10's name ('Float', 'Half', 'Long', ...), as torch's own messages use.
inline const char* dtype_name(ScalarType s) { return torch::headeronly::toString(s); }

inline std::string device_name(const Tensor& t) {
  if (t.is_cpu()) return "cpu";
  if (t.is_cuda()) return "cuda:" + std::to_string(t.get_device_index());
  return "device type " + std::to_string(static_cast<int>(t.device().type()));
}

template <class... Args>
std::string cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

// Throws std::runtime_error(message) unless `cond`.
#define DLK_CHECK(cond, ...)                                        \
  do {                                                              \
    if (!(cond)) throw std::runtime_error(::dlk::cat(__VA_ARGS__)); \
  } while (0)

// ---------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------

inline void check_dtype(const Tensor& t, const char* op, std::initializer_list<ScalarType> allowed) {
  for (auto s : allowed) {
    if (t.scalar_type() == s) return;
  }
  std::string names;
  for (auto s : allowed) names += std::string(names.empty() ? "" : ", ") + dtype_name(s);
  DLK_CHECK(false, "\"", op, "\" not implemented for '", dtype_name(t.scalar_type()), "' on ", device_name(t),
            " (supported: ", names, ")");
}

inline bool same_device(const Tensor& a, const Tensor& b) { return a.device() == b.device(); }

// torch's wording for tensors of one call on different devices.
inline void check_same_device(const char* op, const Tensor& a, const char* a_name, const Tensor& b,
                              const char* b_name) {
  DLK_CHECK(same_device(a, b), op, ": Expected all tensors to be on the same device, but found at least two devices, ",
            device_name(a), " (", a_name, ") and ", device_name(b), " (", b_name, ")!");
}

// `b` must match `a` in dtype, device and shape (e.g. a gradient and the tensor it belongs to).
inline void check_like(const Tensor& a, const char* a_name, const Tensor& b, const char* b_name, const char* op) {
  check_same_device(op, a, a_name, b, b_name);
  DLK_CHECK(a.scalar_type() == b.scalar_type(), op, ": expected ", b_name, " to have dtype ",
            dtype_name(a.scalar_type()), " like ", a_name, ", but got ", dtype_name(b.scalar_type()));
  DLK_CHECK(a.sizes().equals(b.sizes()), op, ": expected ", b_name, " of shape ", a.sizes(), " like ", a_name,
            ", but got ", b.sizes());
}

// ---------------------------------------------------------------------------------------------
// dtype dispatch: the one place a ScalarType becomes a C++ type. Unknown types raise; nothing
// quietly runs the double kernel for, say, an int tensor.
// ---------------------------------------------------------------------------------------------

template <class F>
decltype(auto) dispatch_float(ScalarType s, const char* op, F&& f) {
  switch (s) {
    case ScalarType::Float:
      return f(float{});
    case ScalarType::Double:
      return f(double{});
    default:
      throw std::runtime_error(cat("\"", op, "\": no CPU kernel for dtype ", dtype_name(s)));
  }
}

// ---------------------------------------------------------------------------------------------
// Layouts
// ---------------------------------------------------------------------------------------------

// Every element stored once, with no gaps: the elements form one flat array in some dimension
// order (torch's is_non_overlapping_and_dense).
inline bool is_dense(const Tensor& t) {
  if (t.is_contiguous()) return true;
  const IntList sizes = t.sizes(), strides = t.strides();
  const int64_t n = static_cast<int64_t>(sizes.size());
  std::vector<int64_t> order;
  for (int64_t d = 0; d < n; ++d) {
    if (sizes[d] == 0) return true;
    if (sizes[d] != 1) order.push_back(d);
  }
  // Insertion sort by stride (at most a handful of dimensions).
  for (size_t i = 1; i < order.size(); ++i) {
    for (size_t j = i; j > 0 && strides[order[j]] < strides[order[j - 1]]; --j) std::swap(order[j], order[j - 1]);
  }
  int64_t expected = 1;
  for (int64_t d : order) {
    if (strides[d] != expected) return false;
    expected *= sizes[d];
  }
  return true;
}

// Two elements at one address (a stride-0 dimension of size > 1): writing through it is refused.
inline bool has_internal_overlap(const Tensor& t) {
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (t.size(d) > 1 && t.stride(d) == 0) return true;
  }
  return false;
}

// One element seen at every index (an expanded scalar): every dimension of size > 1 has stride 0,
// and there are at least two elements.
inline bool is_one_value(const Tensor& t) {
  if (t.numel() < 2) return false;
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (t.size(d) > 1 && t.stride(d) != 0) return false;
  }
  return true;
}

inline bool same_strides(const Tensor& a, const Tensor& b) { return a.strides().equals(b.strides()); }

// at::suggest_memory_format's reading of a 4-D tensor's strides (channels_last or not), so a view
// of a channels_last tensor counts too. dlkernels/_meta reads strides the same way.
inline bool is_channels_last(const Tensor& t) {
  if (t.dim() != 4) return false;
  const IntList sizes = t.sizes(), strides = t.strides();
  if (strides[1] == 0) return false;
  int64_t min = 0;
  for (int d : {1, 3, 2, 0}) {
    if (sizes[d] == 0 || strides[d] < min) return false;
    if (d == 0 && min == strides[1]) return false;  // N111: ambiguous, NCHW wins
    min = strides[d];
    if (sizes[d] > 1) min *= sizes[d];
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Allocation
// ---------------------------------------------------------------------------------------------

inline int64_t element_size(ScalarType s) {
  switch (s) {
    case ScalarType::Double:
    case ScalarType::Long:
      return 8;
    case ScalarType::Float:
    case ScalarType::Int:
      return 4;
    case ScalarType::Half:
    case ScalarType::BFloat16:
      return 2;
    default:
      return 1;
  }
}

// Allocation calls the C shim's empty_strided (at::empty_strided) directly: at the 2.11 target,
// torch::stable::new_empty and empty_like go through the dispatcher by op name, which costs about
// 0.6 us a tensor against 0.2 here, a large share of a small op's time.
inline Tensor empty_strided(IntList sizes, IntList strides, ScalarType dtype, const Tensor& device_of) {
  int32_t device_type = 0, device_index = 0;
  STABLE_TORCH_ERROR_CODE_CHECK(aoti_torch_get_device_type(device_of.get(), &device_type));
  STABLE_TORCH_ERROR_CODE_CHECK(aoti_torch_get_device_index(device_of.get(), &device_index));
  const int32_t code = torch::stable::detail::to<int32_t>(torch::stable::detail::from(dtype));
  AtenTensorHandle out = nullptr;
  if (aoti_torch_empty_strided(static_cast<int64_t>(sizes.size()), sizes.data(), strides.data(), code, device_type,
                               device_index, &out) != TORCH_SUCCESS) {
    // The shim's own message (the allocator's) does not cross the 2.11 ABI: say what was asked.
    double elements = 1;
    for (const int64_t s : sizes) elements *= static_cast<double>(s);
    DLK_CHECK(false, "dlkernels: could not allocate a ", dtype_name(dtype), " tensor of size ", sizes, " (",
              elements * static_cast<double>(element_size(dtype)), " bytes) on ", device_name(device_of),
              ": out of memory");
  }
  return Tensor(out);
}

// Uninitialised and contiguous, on `like`'s device, with its dtype unless `dtype` is given.
inline Tensor new_empty(const Tensor& like, IntList sizes, std::optional<ScalarType> dtype = std::nullopt) {
  constexpr size_t kMaxDims = 16;
  if (sizes.size() > kMaxDims) return torch::stable::new_empty(like, sizes, dtype);
  int64_t strides[kMaxDims];
  int64_t step = 1;
  for (size_t d = sizes.size(); d-- > 0;) {
    strides[d] = step;
    step *= sizes[d] > 1 ? sizes[d] : 1;
  }
  return empty_strided(sizes, IntList(strides, sizes.size()), dtype.value_or(like.scalar_type()), like);
}
inline Tensor new_empty(const Tensor& like, std::initializer_list<int64_t> sizes,
                        std::optional<ScalarType> dtype = std::nullopt) {
  return dlk::new_empty(like, IntList(sizes), dtype);
}

// torch.empty_like (preserve_format): a dense tensor's strides are kept; other layouts are left
// to torch's rule (channels_last when the strides suggest it, else contiguous). Call these
// qualified (dlk::): argument-dependent lookup also finds torch::stable's.
inline Tensor empty_like(const Tensor& t) {
  if (t.numel() > 0 && is_dense(t)) return empty_strided(t.sizes(), t.strides(), t.scalar_type(), t);
  return torch::stable::empty_like(t);
}

inline Tensor as_contiguous(const Tensor& t) { return t.is_contiguous() ? t : torch::stable::contiguous(t); }

// `t` itself when it is stored like `like`, else a copy of it in `like`'s layout.
inline Tensor as_layout_of(const Tensor& t, const Tensor& like) {
  if (is_dense(t) && same_strides(t, like)) return t;
  Tensor out = dlk::empty_like(like);
  torch::stable::copy_(out, t);
  return out;
}

// Kernels compute NCHW; returns `out` itself, or a channels_last copy when asked for.
inline Tensor to_channels_last_if(const Tensor& out, bool channels_last) {
  return channels_last ? torch::stable::contiguous(out, MemoryFormat::ChannelsLast) : out;
}

}  // namespace dlk
