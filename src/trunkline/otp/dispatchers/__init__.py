"""The dispatchers trunkline ships; see :mod:`trunkline.otp.dispatcher` for the behaviour."""

from .broadcast import BroadcastDispatcher
from .demand import DemandDispatcher
from .partition import PartitionDispatcher

__all__ = ["BroadcastDispatcher", "DemandDispatcher", "PartitionDispatcher"]
