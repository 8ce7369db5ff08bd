"""Which device to measure, how to time work on it, and what the machine is."""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import UserError

DEVICES = ("auto", "cpu", "cuda", "mps")


def torch_or_none():
    try:
        import torch
    except ImportError:
        return None
    return torch


def resolve_device(name: str) -> str:
    """auto -> cuda, else mps, else cpu. Asking for a device this machine lacks is an error, not a fallback."""
    name = (name or "auto").strip().lower()
    if name not in DEVICES:
        raise UserError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}")
    torch = torch_or_none()
    if name == "auto":
        if torch is not None and torch.cuda.is_available():
            return "cuda"
        if torch is not None and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if name in ("cuda", "mps"):
        if torch is None:
            raise UserError(f"--device {name} needs PyTorch: pip install 'llm-roofline[measure]'")
        available = torch.cuda.is_available() if name == "cuda" else (
            getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available())
        if not available:
            raise UserError(f"--device {name} asked for, but PyTorch finds no {name.upper()} device on this machine; "
                            "use --device cpu (or auto)")
    return name


def synchronize(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()
    elif device == "mps":
        import torch

        torch.mps.synchronize()


@dataclass(frozen=True)
class Timing:
    """Seconds: the median of the repeats, and the spread."""

    median: float
    min: float
    max: float
    repeats: int

    def to_dict(self) -> dict:
        return asdict(self)


def time_it(fn, device: str, repeats: int = 5, warmup: int = 1, setup=None) -> Timing:
    """Median of `repeats` timed calls after `warmup` untimed ones. On a GPU the call is bracketed by device
    synchronisation (CUDA events where available) so that the kernels, not their launch, are timed. `setup`
    (untimed) runs before each call, e.g. to draw fresh inputs."""
    for _ in range(warmup):
        if setup:
            setup()
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        if setup:
            setup()
        if device == "cuda":
            import torch

            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            synchronize(device)
            t0 = time.perf_counter()
            fn()
            synchronize(device)
            times.append(time.perf_counter() - t0)
    return Timing(statistics.median(times), min(times), max(times), repeats)


def last_level_cache_bytes() -> int:
    """The largest CPU cache (Linux sysfs); 32 MiB when it cannot be read."""
    sizes = []
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            text = (index / "size").read_text().strip()
        except OSError:
            continue
        unit = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        sizes.append(int(text.rstrip("KMG")) * unit)
    return max(sizes, default=32 << 20)


def available_memory_bytes(device: str) -> int:
    if device == "cuda":
        import torch

        return int(torch.cuda.mem_get_info()[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")) if hasattr(os, "sysconf") else 8 << 30


def total_memory_bytes(device: str) -> int:
    if device == "cuda":
        import torch

        return int(torch.cuda.get_device_properties(0).total_memory)
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return available_memory_bytes(device)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: str) -> dict:
    torch = torch_or_none()
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": device,
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads() if torch else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__ if torch else None,
        "last_level_cache_bytes": last_level_cache_bytes(),
        "memory_bytes": total_memory_bytes(device),
    }
    try:
        import numpy

        info["numpy"] = numpy.__version__
    except ImportError:  # pragma: no cover
        pass
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info.update(gpu_name=props.name, gpu_sm_count=props.multi_processor_count, cuda=torch.version.cuda,
                    gpu_capability=f"{props.major}.{props.minor}")
        try:
            import subprocess

            out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=10)
            info["driver"] = out.stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            info["driver"] = None
    if device == "mps":
        info["gpu_name"] = "Apple GPU (MPS)"
    return info
