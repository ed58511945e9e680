"""Search spaces, candidate ops, the SuperNet module, reference architectures, data and training."""
