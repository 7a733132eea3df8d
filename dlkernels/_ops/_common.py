"""Helpers shared by the families' registrations: the checks the C++ host layer makes
(csrc/host/tensor.h), worded the same, for the fake kernels; and the in-place ops' kernels."""

import torch
from torch._functorch.utils import enable_single_level_autograd_function
from torch._prims_common import suggest_memory_format
from torch.autograd import forward_ad

LIB = "dlkernels::"

# dtypes with a kernel on some device; a fake tensor may stand for any device, so the fake
# kernels accept the union and the device's own kernel refuses the rest.
KERNEL_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)

_C10_NAMES = {
    torch.float32: "Float",
    torch.float64: "Double",
    torch.float16: "Half",
    torch.bfloat16: "BFloat16",
    # quantized types have no meta tensor to ask (below)
    torch.qint8: "QInt8",
    torch.quint8: "QUInt8",
    torch.qint32: "QInt32",
    torch.quint4x2: "QUInt4x2",
    torch.quint2x4: "QUInt2x4",
}


def dtype_name(dtype: torch.dtype) -> str:
    """c10's name of a dtype ('Float', 'Long', ...), as torch's own messages use."""
    if dtype in _C10_NAMES:
        return _C10_NAMES[dtype]
    return str(torch.empty((), dtype=dtype, device="meta").type()).split(".")[-1].replace("Tensor", "")


def device_name(t: torch.Tensor) -> str:
    return str(t.device)


def check_dtype(op: str, t: torch.Tensor, allowed=KERNEL_DTYPES) -> None:
    if t.dtype not in allowed:
        names = ", ".join(dtype_name(d) for d in allowed)
        raise RuntimeError(
            f"\"{op}\" not implemented for '{dtype_name(t.dtype)}' on {device_name(t)} (supported: {names})"
        )


def check_same_device(op: str, a: torch.Tensor, a_name: str, b: torch.Tensor, b_name: str) -> None:
    if a.device != b.device:
        raise RuntimeError(
            f"{op}: Expected all tensors to be on the same device, but found at least two devices, "
            f"{device_name(a)} ({a_name}) and {device_name(b)} ({b_name})!"
        )


def check_like(op: str, a: torch.Tensor, a_name: str, b: torch.Tensor, b_name: str) -> None:
    check_same_device(op, a, a_name, b, b_name)
    if a.dtype != b.dtype:
        raise RuntimeError(
            f"{op}: expected {b_name} to have dtype {dtype_name(a.dtype)} like {a_name}, "
            f"but got {dtype_name(b.dtype)}"
        )
    if a.shape != b.shape:
        raise RuntimeError(
            f"{op}: expected {b_name} of shape {list(a.shape)} like {a_name}, but got {list(b.shape)}"
        )


def is_channels_last(t: torch.Tensor) -> bool:
    # The same reading of strides as csrc/host/tensor.h is_channels_last (at::suggest_memory_format).
    return t.dim() == 4 and suggest_memory_format(t) == torch.channels_last


def register_inplace(lib: torch.library.Library, name: str) -> None:
    """Dispatcher kernels of a raw in-place op (schema `Tensor(a!) self`, returning nothing).

    ADInplaceOrView: bumps the version counter of the written tensor, so overwriting a tensor
    autograd saved raises at backward, as with torch's own in-place ops. Autograd: the raw op
    records no history, so running it on a tensor that requires grad would make backward treat it
    as the identity; refuse that. dlkernels.functional and dlkernels.autograd are the
    differentiable in-place entry points (their Functions call the op under no_grad)."""
    op = getattr(torch.ops.dlkernels, name).default
    after_view = torch._C._after_ADInplaceOrView_keyset
    after_autograd = torch._C._after_autograd_keyset

    def bump(keyset, self, *args):
        if self.is_inference() and not torch.is_inference_mode_enabled():
            # torch's own check, made by its version counter, which increment_version skips.
            raise RuntimeError(
                "Inplace update to inference tensor outside InferenceMode is not allowed. You can make a "
                "clone to get a normal tensor before doing inplace update."
            )
        if self.is_neg():
            # A lazy negation: the dispatcher's fallback cannot write one in place (it expects the
            # op to return the tensor). Run on its values, materialised, and copy them back.
            values = self.resolve_neg()
            op(values, *args)
            with torch._C._AutoDispatchBelowADInplaceOrView():
                self.copy_(values)
        else:
            with torch._C._AutoDispatchBelowADInplaceOrView():
                op.redispatch(keyset & after_view, self, *args)
        torch.autograd.graph.increment_version(self)

    def refuse(keyset, self, *args):
        if torch.is_grad_enabled() and self.requires_grad:
            raise RuntimeError(
                f"{name}: the raw in-place op records no autograd history, but 'self' requires grad. Use "
                "the in-place form of dlkernels.functional or dlkernels.autograd, or run it under "
                "torch.no_grad()."
            )
        return op.redispatch(keyset & after_autograd, self, *args)

    lib.impl(name, bump, "ADInplaceOrView", with_keyset=True)
    lib.impl(name, refuse, "Autograd", with_keyset=True)


# ---- the direct path ----------------------------------------------------------------------------
# A call through the dispatcher pays for the Python kernels registered above the backend: the
# autograd kernel of register_autograd (about 3.5 us of a 5 us call to a small op here, even when
# nothing needs a gradient), and below it a second trip through the dispatcher. When nothing above
# the backend has other work to do (plain tensors, no functorch transform, dispatch or function
# mode, compilation or forward-mode level), `call` goes to the backend kernel
# directly, or records the op's autograd node itself and runs the backend kernel inside it: what
# the dispatcher would end up doing, in fewer steps.
_KeySet = torch._C.DispatchKeySet
_Key = torch._C.DispatchKey
# Besides the backend, the direct path dispatches to the keys of the dispatcher's math fallbacks,
# which make an input's lazy negation or conjugation real, and a storage-less efficient zero
# tensor (torch._efficientzerotensor) a tensor of zeros, before the kernel reads it; with no such
# input they pass the call on, at no measurable cost (relu of 16 elements 1.14 us either way).
_MATH_KEYS = _KeySet(_Key.Conjugate) | _KeySet(_Key.Negative) | _KeySet(_Key.ZeroTensor)
_CPU_KEYS = _KeySet(_Key.CPU) | _MATH_KEYS
_CUDA_KEYS = _KeySet(_Key.CUDA) | _MATH_KEYS
_Tensor = torch.Tensor
# Tensor types the direct path takes: nn.Parameter adds no torch_function or torch_dispatch of
# its own (the nn layers' weights are Parameters); any other subclass gets its own dispatch.
PLAIN_TYPES = frozenset((torch.Tensor, torch.nn.Parameter))
_STRIDED = torch.strided
_is_compiling = torch.compiler.is_compiling
_grad_enabled = torch.is_grad_enabled
_dispatch_modes = torch._C._len_torch_dispatch_stack
_function_modes = torch._C._is_torch_function_mode_enabled
_transforms = torch._C._are_functorch_transforms_active


def route(args):
    """(the backend's dispatch key set, whether autograd must record) when a call with `args`
    can skip the dispatcher's layers above the backend, else (None, False). Non-tensor arguments
    are skipped; every tensor must be a dense one of PLAIN_TYPES, on the first tensor's device."""
    if _is_compiling():  # first: the checks below do not trace
        return None, False
    if forward_ad._current_level >= 0 or _dispatch_modes() or _function_modes() or _transforms():
        return None, False
    first = None
    grad = False  # read here rather than by torch._C._any_requires_grad(*args): 0.1-0.2 us less a call
    for a in args:
        if type(a) not in PLAIN_TYPES:
            if a is not None and isinstance(a, _Tensor):  # a subclass: its own dispatch
                return None, False
            continue
        if a.layout is not _STRIDED or a.is_nested:  # sparse, mkldnn, nested: other backend keys
            return None, False
        if a.requires_grad:
            grad = True
        if first is None:
            first = a
            on_cpu = a.is_cpu
            if not on_cpu:
                if not a.is_cuda:
                    return None, False
                index = a.get_device()
        elif not (a.is_cpu if on_cpu else a.is_cuda and a.get_device() == index):
            return None, False  # (device objects cost more to compare)
    if first is None:
        return None, False
    return (_CPU_KEYS if on_cpu else _CUDA_KEYS), grad and _grad_enabled()


def direct_backward(grad):
    """Whether a backward may run its grad op on the forward's route (the keys `route` gave):
    its saved tensors are those of the forward, so only the modes and the incoming gradient
    can have changed since. The caller checks grad mode (double backward records)."""
    if _is_compiling() or _dispatch_modes() or _function_modes() or _transforms():
        return False
    return type(grad) in PLAIN_TYPES


def direct_keyset(*tensors):
    """The backend's dispatch key set when a call on `tensors` needs nothing above it (no autograd
    either), else None."""
    keys, record = route(tensors)
    return None if record else keys


def redispatcher(overload):
    """overload.redispatch(keys, *args) without its Python frame: the dispatcher handle's boxed
    redispatch, which OpOverload.redispatch forwards to (0.3 us of a 1.4 us call to relu, about
    1 us with cross entropy's 6 arguments)."""
    return overload._handle.redispatch_boxed


# op packet -> its redispatcher, filled on first use
_REDISPATCH = {}
# op packet -> record(keys, *args): its autograd node around the backend kernel (register_autograd)
_DIRECT_RECORD = {}


def call(op, *args):
    """op(*args) (an op packet of torch.ops.dlkernels), by the direct path when it applies."""
    keys, record = route(args)
    if keys is None:
        return op(*args)
    if not record:
        run = _REDISPATCH.get(op)
        if run is None:
            run = _REDISPATCH[op] = redispatcher(op.default)
        return run(keys, *args)
    direct = _DIRECT_RECORD.get(op)
    return direct(keys, *args) if direct is not None else op(*args)


# ---- autograd -----------------------------------------------------------------------------------


# Marks a tensor argument's place among the saved inputs of a jvp; not None, which is the value
# of an absent optional argument (bias, weight, divisor_override) and must stay one.
_SAVED = object()


def register_autograd(name: str, backward, setup_context, jvp=None) -> None:
    """torch.library.register_autograd's contract (a backward and a setup_context per op), plus
    an optional forward-mode formula, through an autograd kernel that torch.func works with.

    torch's own register_autograd (2.11-2.14) wraps the op in an autograd.Function whose forward
    takes ctx and applies it the public way, which torch.func refuses ("it must override the
    setup_context staticmethod"): torch.func.grad over any such op raises. Here the Function
    records the way a C++ autograd kernel does, so torch.func.grad, vmap of grad (per-sample
    gradients, through the ops' register_vmap rules) and ordinary autograd all run one formula.

    jvp(inputs, output, *tangents) -> the output's tangent(s), tangents None where an input has
    none. Without it, forward-mode AD (torch.func.jvp, jacfwd, dual tensors) raises rather than
    treating the op as a constant."""
    op = getattr(torch.ops.dlkernels, name).default
    run = redispatcher(op)
    after_autograd = torch._C._after_autograd_keyset

    class Function(torch.autograd.Function):
        @staticmethod
        def forward(*args_and_modes):
            # apply runs forward with (forward-mode) grad off; the op below runs with the caller's
            # modes, as below a C++ autograd kernel, so an enclosing torch.func level (grad or jvp)
            # still records it.
            *args, modes = args_and_modes
            if modes is None:  # no transform or dual level above: nothing to restore
                with torch._C._AutoDispatchBelowAutograd():
                    return op(*args)
            if type(modes) is _KeySet:  # the direct path (call): the backend kernel itself
                return run(modes, *args)
            grad_mode, fwd_grad_mode = modes
            previous = torch._C._is_fwd_grad_enabled()
            torch._C._set_fwd_grad_enabled(fwd_grad_mode)
            try:
                with torch.set_grad_enabled(grad_mode), torch._C._AutoDispatchBelowAutograd():
                    return op(*args)
            finally:
                torch._C._set_fwd_grad_enabled(previous)

        @staticmethod
        def setup_context(ctx, inputs, output):
            inputs = inputs[:-1]
            setup_context(ctx, inputs, output)
            if forward_ad._current_level >= 0:
                outs = output if isinstance(output, tuple) else (output,)
                ctx.jvp_inputs = [_SAVED if isinstance(a, torch.Tensor) else a for a in inputs]
                ctx.save_for_forward(*(a for a in inputs if isinstance(a, torch.Tensor)), *outs)

        @staticmethod
        def backward(ctx, *grads):
            result = backward(ctx, *grads)
            return (*result, None) if isinstance(result, tuple) else (result, None)

        @staticmethod
        def jvp(ctx, *tangents):
            if jvp is None:
                raise NotImplementedError(f"dlkernels::{name}: forward-mode AD (jvp) is not implemented")
            saved = list(ctx.saved_tensors)
            inputs = [saved.pop(0) if a is _SAVED else a for a in ctx.jvp_inputs]
            output = saved[0] if len(saved) == 1 else tuple(saved)
            return jvp(inputs, output, *tangents[:-1])

    Function.__name__ = Function.__qualname__ = f"{name}_autograd"
    # The plain autograd apply, as a C++ autograd kernel records: this runs at the Autograd key,
    # below torch.func's layer, which has already put its grad level's tensors in place (the
    # public apply would hand the call to torch.func again, which fails there).
    record = super(torch.autograd.Function, Function).apply

    def kernel(keyset, *args):
        grad_mode = torch.is_grad_enabled()
        dual = forward_ad._current_level >= 0
        if (grad_mode and torch._C._any_requires_grad(*args)) or dual:
            if torch._C._are_functorch_transforms_active():
                with enable_single_level_autograd_function():
                    return record(*args, (grad_mode, torch._C._is_fwd_grad_enabled()))
            return record(*args, (grad_mode, torch._C._is_fwd_grad_enabled()) if dual else None)
        return op.redispatch(keyset & after_autograd, *args)

    _AUTOGRAD_LIB.impl(name, kernel, "Autograd", with_keyset=True)
    _DIRECT_RECORD[getattr(torch.ops.dlkernels, name)] = lambda keys, *args: record(*args, keys)


def add_tangents(*terms):
    """The sum of the terms that are not None (a tangent of zero terms is None)."""
    total = None
    for t in terms:
        if t is not None:
            total = t if total is None else total + t
    return total


def bilinear_tangent(op, a, b, ta, tb, *args):
    """The tangent of op(a, b, *args) for an op linear in a and in b: op(ta, b) + op(a, tb)."""
    return add_tangents(None if ta is None else op(ta, b, *args), None if tb is None else op(a, tb, *args))


_AUTOGRAD_LIB = torch.library.Library("dlkernels", "FRAGMENT")


def vmap_per_sample(info, in_dims, op, args):
    """A vmap rule that runs `op` once per sample and stacks the results: for the cases an op's
    own rule cannot fold into one call (per-sample weights, as in per-sample weight gradients)."""
    outs = []
    for i in range(info.batch_size):
        outs.append(
            op(
                *(
                    a.select(d, i) if d is not None and isinstance(a, torch.Tensor) else a
                    for a, d in zip(args, in_dims)
                )
            )
        )
    if isinstance(outs[0], tuple):
        return tuple(torch.stack(o) for o in zip(*outs)), (0,) * len(outs[0])
    return torch.stack(outs), 0
