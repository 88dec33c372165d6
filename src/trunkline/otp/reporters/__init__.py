"""Reporters: implementations of :class:`~trunkline.otp.reporter.Reporter`.

- :class:`~trunkline.otp.reporters.memory.MemoryReporter`: aggregates in memory, for tests, the
  dashboard, and exporters that read its series.
"""

from .memory import DistributionStats, MemoryReporter, SummaryStats

__all__ = ["DistributionStats", "MemoryReporter", "SummaryStats"]
