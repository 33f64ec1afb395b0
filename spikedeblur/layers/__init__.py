"""Building blocks shared by the models: attention, alignment, optical flow and spike encoders."""
