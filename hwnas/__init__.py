"""hwnas: hardware-aware one-shot neural architecture search around a lookup-table profiler."""

__version__ = "0.1.0"
