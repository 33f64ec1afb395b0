"""Spike camera streams: ``.dat`` I/O, sidecar metadata, timing, voxelization and reconstructions."""

from spikedeblur.spikes.dat import DatReader, DatWriter, frame_nbytes, write_dat
from spikedeblur.spikes.options import SpikeOptions, parse_exposure, parse_size
from spikedeblur.spikes.sidecar import SpikeMeta, read_sidecar, sidecar_path, write_sidecar
from spikedeblur.spikes.source import SpikeSource, open_spike_source, resolve_meta
from spikedeblur.spikes.spatial import SpatialMapping, map_to_video
from spikedeblur.spikes.timing import frame_window, uniform_frame_times
from spikedeblur.spikes.voxelize import tfi, tfp, voxelize, voxelize_dat

__all__ = [
    "DatReader",
    "DatWriter",
    "SpatialMapping",
    "SpikeMeta",
    "SpikeOptions",
    "SpikeSource",
    "frame_nbytes",
    "frame_window",
    "map_to_video",
    "open_spike_source",
    "parse_exposure",
    "parse_size",
    "read_sidecar",
    "resolve_meta",
    "sidecar_path",
    "tfi",
    "tfp",
    "uniform_frame_times",
    "voxelize",
    "voxelize_dat",
    "write_dat",
    "write_sidecar",
]
