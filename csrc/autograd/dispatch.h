// Typed handles for calling dlkernels operators through the dispatcher from the autograd kernels,
// so a backward that calls a gradient op is itself recorded when a graph is being built.
#pragma once

#include <ATen/core/dispatch/Dispatcher.h>

namespace dlk::autograd {

template <class Signature>
c10::TypedOperatorHandle<Signature> find_op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Signature>();
}

}  // namespace dlk::autograd
