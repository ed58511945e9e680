"""Lookup tables: records + provenance, prediction, differentiable expectation, I/O, adaptation to a target."""

from hwnas.tables.accuracy import Errors
from hwnas.tables.adapt import Adaptation, Measurements, adapt_table, read_measurements
from hwnas.tables.table import Calibration, LookupTable, Prediction, Record, TableWriter, make_header

__all__ = ["Adaptation", "Calibration", "Errors", "LookupTable", "Measurements", "Prediction", "Record", "TableWriter",
           "adapt_table", "make_header", "read_measurements"]
