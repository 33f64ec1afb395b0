"""Network architectures: the VRT backbone and the models built on it."""
