"""A description of the machine a result was measured on, and a short tag naming it, so that
recorded results always carry their machine."""

from __future__ import annotations

import os
import platform
import re
import subprocess

import torch


def _cpuinfo() -> dict:
    info: dict = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor is enough
                key, _, value = line.partition(":")
                info[key.strip()] = value.strip()
    except OSError:
        pass
    return info


def cpu_model() -> str:
    """E.g. 'AMD EPYC (family 25, model 17)': hypervisors often hide the marketing name, the
    family and model numbers still say which generation it is."""
    info = _cpuinfo()
    name = info.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in info and "model" in info:
        name += f" (family {info['cpu family']}, model {info['model']})"
    return name


_VENDORS = {"GenuineIntel": "intel", "AuthenticAMD": "amd", "HygonGenuine": "hygon"}


def cpu_id() -> dict:
    """Vendor, family and model numbers: what names the CPU generation when the marketing name is
    hidden (e.g. family 25 model 17 is AMD Zen 4, family 6 model 143 Intel Sapphire Rapids)."""
    info = _cpuinfo()
    vendor = info.get("vendor_id", "")
    out = {"vendor": _VENDORS.get(vendor, vendor.lower() or platform.machine().lower() or "unknown")}
    for key, name in (("cpu family", "family"), ("model", "model")):
        if info.get(key, "").isdigit():
            out[name] = int(info[key])
    return out


def cpu_key(ident: dict | None = None) -> str:
    """E.g. 'amd-f25-m17', 'intel-f6-m143': file-name safe, and distinct between CPU generations,
    so results of one never overwrite those of another."""
    ident = ident or cpu_id()
    key = re.sub(r"[^a-z0-9]+", "-", str(ident.get("vendor", "unknown")).lower()).strip("-") or "unknown"
    if "family" in ident:
        key += f"-f{ident['family']}"
    if "model" in ident:
        key += f"-m{ident['model']}"
    return key


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _mem_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _git_commit() -> str | None:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    # Only a source checkout of this project: an installed package may sit inside some other
    # repository (a virtual environment in a checkout), whose commit would say nothing about it.
    if not (os.path.exists(os.path.join(root, ".git")) and os.path.isdir(os.path.join(root, "csrc"))):
        return None
    try:
        out = subprocess.run(
            ["git", "-C", root, "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def gpu_names() -> list:
    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def describe(device: str = "cpu") -> dict:
    import dlkernels
    from dlkernels import _build_info

    ident = cpu_id()
    desc = {
        "cpu": cpu_model(),
        "cpu_vendor": ident.get("vendor"),
        "cpu_family": ident.get("family"),
        "cpu_model": ident.get("model"),
        "cpu_key": cpu_key(ident),
        "cpus": cpu_count(),
        "memory_gib": _mem_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "dlkernels": dlkernels.__version__,
        "dlkernels_commit": _git_commit() or "unknown",
        "dlkernels_built_with_torch": _build_info.TORCH_VERSION,
        "dlkernels_cuda": bool(_build_info.WITH_CUDA),
        "cpu_isa": dlkernels.cpu_isa(),
        "cpu_isas": dlkernels.cpu_isas(),
        "torch_cuda": torch.version.cuda,
        "gpu": None,
        # TF32 changes float32 matmul and convolution results and speed on NVIDIA GPUs: recorded,
        # and the same for both sides since they run in one process.
        "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
        "tf32_cudnn": bool(torch.backends.cudnn.allow_tf32),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        index = torch.device(device).index
        index = torch.cuda.current_device() if index is None else index
        props = torch.cuda.get_device_properties(index)
        desc.update(
            gpu=props.name,
            gpu_capability=f"{props.major}.{props.minor}",
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            gpu_sms=props.multi_processor_count,
            cuda_runtime=torch.version.cuda,
            cuda_archs=_build_info.CUDA_ARCHS,
        )
    return desc


def _slug(text: str) -> str:
    text = re.sub(r"\(.*?\)", "", text)  # drop "(family .., model ..)" and "(R)"/"(TM)"
    text = re.sub(r"\b(processor|cpu|with|radeon graphics|\d+-core)\b", "", text, flags=re.I)
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def tag(desc: dict, device: str = "cpu") -> str:
    """A file-name-safe machine name, e.g. 'amd-f25-m17' or 'cuda-nvidia-h200': the CPU by vendor,
    family and model (under many hypervisors the model name is the same across generations), a
    GPU by its name. Results are kept in one folder per tag."""
    if device.startswith("cuda") and desc.get("gpu"):
        return "cuda-" + _slug(desc["gpu"])
    if desc.get("cpu_key"):
        return desc["cpu_key"]
    return key_from_name(desc.get("cpu", "unknown"))


def key_from_name(cpu: str) -> str:
    """The tag of a description that predates vendor/family/model fields: from its CPU string,
    e.g. 'AMD EPYC (family 25, model 17)' -> 'amd-f25-m17'."""
    m = re.search(r"family (\d+), model (\d+)", cpu)
    low = cpu.lower()
    vendor = next((v for v in ("amd", "intel", "hygon") if v in low), None)
    if vendor is None and ("xeon" in low or "core" in low):
        vendor = "intel"
    if m and vendor:
        return cpu_key({"vendor": vendor, "family": int(m.group(1)), "model": int(m.group(2))})
    return "cpu-" + (_slug(cpu) or "unknown")


def one_line(desc: dict, device: str = "cpu") -> str:
    """The machine in one line, for table headers."""
    cpu = f"{desc['cpu']}, {desc['cpus']} CPUs, ISA {desc['cpu_isa']}"
    torch_part = f"torch {desc['torch']} ({desc['torch_threads']} threads)"
    if device.startswith("cuda") and desc.get("gpu"):
        return (
            f"{desc['gpu']} (sm_{desc['gpu_capability'].replace('.', '')}, CUDA {desc['cuda_runtime']}); "
            f"host {cpu}; {torch_part}"
        )
    return f"{cpu}; {torch_part}"
