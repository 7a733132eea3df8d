"""The CPU kernels are compiled three times (baseline, AVX2, AVX-512) into one library. If any
function outside the dlk::cpu::avx2 / avx512 namespaces contained AVX code, a CPU without AVX
could run it (the linker keeps one copy of an inline function). Disassemble the built library
and check every function's instructions against its namespace."""

import re
import shutil
import subprocess

import pytest

import dlkernels

# VEX/EVEX-encoded instructions all start with 'v' (vaddps, vmovdqu, vzeroupper, ...); baseline
# x86-64 code has none of them.
_VEX = re.compile(r"^\s*[0-9a-f]+:\s+(v\w+)")
_HEADER = re.compile(r"^[0-9a-f]+ <(.+)>:$")


def _functions(path):
    out = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", "-C", path], capture_output=True, text=True, check=True
    ).stdout
    name, body = None, []
    for line in out.splitlines():
        m = _HEADER.match(line)
        if m:
            if name is not None:
                yield name, body
            name, body = m.group(1), []
        elif name is not None:
            body.append(line)
    if name is not None:
        yield name, body


@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump (binutils) not installed")
def test_wide_instructions_only_in_their_isa_namespace():
    violations = []
    seen = {"avx2": 0, "avx512": 0}
    for name, body in _functions(dlkernels._ext._C.__file__):
        in_avx512 = "::avx512::" in name
        in_avx2 = "::avx2::" in name
        text = "\n".join(body)
        if in_avx512:
            seen["avx512"] += "zmm" in text
            continue
        if in_avx2:
            seen["avx2"] += "ymm" in text
            if "zmm" in text or re.search(r"%k[0-7]", text):
                violations.append(f"{name}: AVX-512 code in the AVX2 unit")
            continue
        vex = [m.group(1) for line in body if (m := _VEX.match(line))]
        if vex:
            violations.append(f"{name}: {sorted(set(vex))[:5]}")
    assert not violations, "AVX code outside its ISA namespace:\n" + "\n".join(violations[:20])
    # The check must have something to check: the ISA units are really compiled for their ISA.
    if "avx512" in dlkernels.cpu_isas():
        assert seen["avx512"] > 0 and seen["avx2"] > 0
