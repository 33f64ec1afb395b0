"""spikedeblur: remove motion blur from video with a spike camera stream.

The package reads raw spike camera streams (``.dat``) and ordinary video files, voxelizes the spikes
into time bins per video frame and runs a VRT+Spike transformer over sliding clips and tiles.
"""

__version__ = "0.1.0"
