"""Pretrained weights: the named registry, the download cache and resolution of ``--weights`` values."""

from spikedeblur.weights.cache import WeightsCache, file_sha256, is_offline, resolve_cache_dir
from spikedeblur.weights.download import ProgressCallback, download_file, mirror_urls
from spikedeblur.weights.registry import (
    DEFAULT,
    REGISTRY,
    WeightsRecord,
    WeightsRegistry,
    get_record,
    list_records,
    register_record,
)
from spikedeblur.weights.resolve import WeightsStatus, ensure_cached, packaged_path, resolve_weights, weights_status
from spikedeblur.weights.verify import verify_weights_file

__all__ = [
    "DEFAULT",
    "REGISTRY",
    "ProgressCallback",
    "WeightsCache",
    "WeightsRecord",
    "WeightsRegistry",
    "WeightsStatus",
    "download_file",
    "ensure_cached",
    "file_sha256",
    "get_record",
    "is_offline",
    "list_records",
    "mirror_urls",
    "packaged_path",
    "register_record",
    "resolve_cache_dir",
    "resolve_weights",
    "verify_weights_file",
    "weights_status",
]
