"""Peak tensor memory of a forward pass, measured by tracking every tensor that the pass allocates.

The tracker is a :class:`~torch.utils._python_dispatch.TorchDispatchMode`. Every operator output
whose storage it has not seen yet adds that storage's size to the live total, and a finalizer
subtracts it when the storage is freed. Run on the ``meta`` device, this measures a full-size
forward pass in seconds without allocating any memory.

On ``meta``, PyTorch runs ``scaled_dot_product_attention`` through its math fallback, which
materialises the (L × L) attention matrix. On CPU (torch 2.13) and usually on CUDA a fused kernel
runs instead and does not store that matrix, so on ``meta`` the tracker replaces the call by an
empty output of the right shape, which is what a fused kernel allocates.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes needed by one forward pass: parameters and buffers, inputs, and the peak of the rest."""

    parameter_bytes: int
    input_bytes: int
    peak_activation_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.parameter_bytes + self.input_bytes + self.peak_activation_bytes


class _LiveTensorTracker(TorchDispatchMode):
    """Dispatch mode that keeps the running and peak byte count of storages created under it."""

    def __init__(self) -> None:
        super().__init__()
        self.live_bytes = 0
        self.peak_bytes = 0
        self._tracked: set[int] = set()

    def _release(self, key: int, size: int) -> None:
        self._tracked.discard(key)
        self.live_bytes -= size

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        output = func(*args, **(kwargs or {}))

        for leaf in tree_leaves(output):
            if not isinstance(leaf, Tensor):
                continue
            storage = leaf.untyped_storage()
            key = id(storage)
            if key in self._tracked:
                continue

            # PyTorch keeps one Python object per live storage (checked on torch 2.13), so the
            # finalizer runs when the last tensor that views this storage is freed.
            size = storage.nbytes()
            self._tracked.add(key)
            self.live_bytes += size
            self.peak_bytes = max(self.peak_bytes, self.live_bytes)
            weakref.finalize(storage, self._release, key, size)

        return output


class _FusedAttentionOnMeta(TorchFunctionMode):
    """Function mode that gives ``scaled_dot_product_attention`` on ``meta`` a fused kernel's footprint."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention and args and args[0].device.type == "meta":
            query, value = args[0], args[2]
            return query.new_empty((*query.shape[:-1], value.shape[-1]))
        return func(*args, **kwargs)


def _state_bytes(model: nn.Module) -> int:
    tensors = {id(t): t for t in (*model.parameters(), *model.buffers())}
    return sum(t.numel() * t.element_size() for t in tensors.values())


def measure_forward_memory(model: nn.Module, *inputs: Tensor | None) -> MemoryEstimate:
    """Run ``model(*inputs)`` under ``torch.no_grad`` and return its tensor memory.

    Only tensor storages count, so allocator caching, fragmentation and library workspaces are not
    included. Operators that PyTorch implements through other operators on the device in use count
    the intermediate tensors of that implementation, except attention on ``meta`` (see the module
    docstring).
    """
    input_bytes = sum(t.numel() * t.element_size() for t in inputs if t is not None)
    tracker = _LiveTensorTracker()
    with torch.no_grad(), _FusedAttentionOnMeta(), tracker:
        output = model(*inputs)
        peak = tracker.peak_bytes
    del output
    return MemoryEstimate(
        parameter_bytes=_state_bytes(model), input_bytes=input_bytes, peak_activation_bytes=peak
    )


__all__ = ["MemoryEstimate", "measure_forward_memory"]
