"""The Python half of every operator, registered through torch.library: fake (meta) kernels that
check what the C++ kernels check, autograd (register_autograd with setup_context, so torch.func
works), vmap rules, and the in-place ops' dispatcher kernels. One module per family, each
imported here on import (CONTRIBUTING.md: adding a family)."""

import importlib
import pkgutil

for _info in pkgutil.iter_modules(__path__):
    if not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
