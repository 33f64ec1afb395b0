"""Device and precision selection, with CUDA availability simulated where the machine has none."""

from __future__ import annotations

import pytest
import torch

from spikedeblur.errors import DeviceError
from spikedeblur.inference import devices


@pytest.fixture
def no_accelerators(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "_mps_available", lambda: False)


@pytest.fixture
def two_gpus_without_bf16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)


def test_auto_device_is_cpu_without_accelerators(no_accelerators):
    assert devices.resolve_device("auto") == torch.device("cpu")
    assert devices.resolve_device(" CPU ") == torch.device("cpu")


@pytest.mark.parametrize(("name", "message"), [("cuda", "no CUDA"), ("cuda:0", "no CUDA"), ("mps", "mps is not available"), ("tpu", "unknown")])
def test_unavailable_devices_rejected(no_accelerators, name, message):
    with pytest.raises(DeviceError, match=message):
        devices.resolve_device(name)


def test_cuda_devices_resolved_by_index(two_gpus_without_bf16):
    assert devices.resolve_device("auto") == torch.device("cuda", 0)
    assert devices.resolve_device("cuda:1") == torch.device("cuda", 1)


@pytest.mark.parametrize(("name", "message"), [("cuda:2", "has 2 CUDA device"), ("cuda:x", "cuda:N"), ("cuda:", "cuda:N")])
def test_bad_cuda_index_rejected(two_gpus_without_bf16, name, message):
    with pytest.raises(DeviceError, match=message):
        devices.resolve_device(name)


def test_auto_precision_per_device(two_gpus_without_bf16, monkeypatch):
    assert devices.resolve_precision("auto", torch.device("cpu")) == torch.float32
    assert devices.resolve_precision("auto", torch.device("mps")) == torch.float16
    assert devices.resolve_precision("auto", torch.device("cuda", 0)) == torch.float16

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert devices.resolve_precision("auto", torch.device("cuda", 0)) == torch.bfloat16


def test_bf16_rejected_on_gpu_without_it(two_gpus_without_bf16):
    with pytest.raises(DeviceError, match="--precision fp16"):
        devices.resolve_precision("bf16", torch.device("cuda", 0))


def test_explicit_precisions(caplog):
    assert devices.resolve_precision("FP32", torch.device("cpu")) == torch.float32

    with caplog.at_level("WARNING", logger="spikedeblur.inference.devices"):
        assert devices.resolve_precision("bf16", torch.device("cpu")) == torch.bfloat16
    assert "slower" in caplog.text

    with pytest.raises(DeviceError, match="unknown"):
        devices.resolve_precision("fp8", torch.device("cpu"))


def test_list_devices_ends_with_cpu():
    listed = devices.list_devices()

    assert listed[-1].name == "cpu"
    assert all(device.name for device in listed)


def test_memory_accounting_on_cpu():
    peak = devices.peak_host_memory_bytes()

    assert peak is None or peak > 10 * 2**20
    assert devices.peak_device_memory_bytes(torch.device("cpu")) is None
    devices.reset_peak_device_memory(torch.device("cpu"))
    devices.release_cached_memory(torch.device("cpu"))
