"""Device and precision selection, the device list, and memory accounting."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass

import torch

from spikedeblur.errors import DeviceError

try:
    import resource
except ImportError:  # Windows has no resource module.
    resource = None

logger = logging.getLogger(__name__)

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
PRECISION_CHOICES = ("auto", "fp32", "fp16", "bf16")

_PRECISION_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class DeviceInfo:
    """One device PyTorch can run on, as shown by ``--list-devices``."""

    name: str
    description: str
    total_memory_bytes: int | None
    supports_bf16: bool


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return backend is not None and backend.is_available()


def resolve_device(name: str) -> torch.device:
    """Return the device for ``--device``: ``auto`` (CUDA, then MPS, then CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.

    Raises :class:`DeviceError` when the device is unknown or not available on this machine.
    """
    name = name.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")

    if name == "cpu":
        return torch.device("cpu")

    if name == "mps":
        if not _mps_available():
            raise DeviceError("device mps is not available (needs Apple silicon and a PyTorch build with MPS); use --device cpu")
        return torch.device("mps")

    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceError(f"device {name} is not available: this PyTorch build or machine has no CUDA; use --device cpu")
        if name == "cuda":
            return torch.device("cuda", torch.cuda.current_device())
        index_text = name.partition(":")[2]
        if not index_text.isdigit():
            raise DeviceError(f"device {name} is invalid; use cuda:N with N a GPU index such as cuda:0")
        index = int(index_text)
        count = torch.cuda.device_count()
        if index >= count:
            raise DeviceError(f"device {name} does not exist: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
        return torch.device("cuda", index)

    raise DeviceError(f"device {name!r} is unknown; use one of {', '.join(DEVICE_CHOICES)}")


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """Return the compute dtype for ``--precision`` on ``device``.

    ``auto`` picks bfloat16 on CUDA devices that support it, float16 on other GPUs and float32 on the
    CPU. Half precision on the CPU is allowed but logs a warning because it is slow. Raises
    :class:`DeviceError` for an unknown precision or bfloat16 on a CUDA device without it.
    """
    precision = precision.strip().lower()
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "mps":
            return torch.float16
        return torch.float32

    if precision not in _PRECISION_DTYPES:
        raise DeviceError(f"precision {precision!r} is unknown; use one of {', '.join(PRECISION_CHOICES)}")

    dtype = _PRECISION_DTYPES[precision]
    if dtype == torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise DeviceError(f"precision bf16 is not supported on {device}; use --precision fp16")
    if dtype != torch.float32 and device.type == "cpu":
        logger.warning("running in %s on the CPU is usually slower than fp32", precision)
    return dtype


def list_devices() -> list[DeviceInfo]:
    """List the devices available to this PyTorch build, the CPU last."""
    devices = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            properties = torch.cuda.get_device_properties(index)
            devices.append(
                DeviceInfo(
                    name=f"cuda:{index}",
                    description=properties.name,
                    total_memory_bytes=properties.total_memory,
                    supports_bf16=properties.major >= 8,
                )
            )
    if _mps_available():
        devices.append(DeviceInfo(name="mps", description="Apple Metal", total_memory_bytes=None, supports_bf16=False))
    devices.append(
        DeviceInfo(
            name="cpu",
            description=f"CPU, {torch.get_num_threads()} PyTorch threads",
            total_memory_bytes=None,
            supports_bf16=True,
        )
    )
    return devices


def reset_peak_device_memory(device: torch.device) -> None:
    """Start a new peak-memory measurement on a CUDA ``device``; other devices have none."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_device_memory_bytes(device: torch.device) -> int | None:
    """Return the peak memory PyTorch allocated on a CUDA ``device`` since the last reset, else None."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return None


def peak_host_memory_bytes() -> int | None:
    """Return this process's peak resident memory in bytes since it started, or None where unknown."""
    if resource is None:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kibibytes, macOS bytes.
    return int(peak if sys.platform == "darwin" else peak * 1024)


def release_cached_memory(device: torch.device) -> None:
    """Return cached blocks to the driver after an out-of-memory error, so a retry starts clean."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()
