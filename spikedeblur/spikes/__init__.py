"""Spike camera streams: ``.dat`` I/O, sidecar metadata, timing, voxelization and reconstructions."""

from spikedeblur.spikes.dat import DatReader, DatWriter, frame_nbytes, write_dat
from spikedeblur.spikes.sidecar import SpikeMeta, read_sidecar, sidecar_path, write_sidecar
from spikedeblur.spikes.spatial import SpatialMapping, map_to_video

__all__ = [
    "DatReader",
    "DatWriter",
    "SpatialMapping",
    "SpikeMeta",
    "frame_nbytes",
    "map_to_video",
    "read_sidecar",
    "sidecar_path",
    "write_dat",
    "write_sidecar",
]
