"""Lookup tables: records + provenance, prediction, differentiable expectation, I/O."""

from hwnas.tables.table import Calibration, LookupTable, Prediction, Record, TableWriter, make_header

__all__ = ["Calibration", "LookupTable", "Prediction", "Record", "TableWriter", "make_header"]
