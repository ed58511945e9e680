"""Measurement of blocks and whole networks: MACs/params counting, table building, validation."""
