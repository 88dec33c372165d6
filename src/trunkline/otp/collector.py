"""The cyclic garbage collector, set for a long-running node.

CPython frees most objects by reference counting; its cyclic collector runs beside that, by
generations, and a collection of the oldest generation holds the event loop for as long as
it takes to walk every object the process keeps - on a node holding thousands of sockets, a
tenth of a second and more, in the middle of whatever it was doing. With the interpreter's
defaults a young collection starts every 700 net allocations; what is alive at that moment -
messages in flight, futures being awaited - survives it, and after two such collections it
is old. Under load the old generation so fills with objects that died soon after, and full
collections come every few seconds: each is a pause every request in flight waits out.

:func:`tuned_collector` changes two things for the life of a program (``Application.main``
uses it):

- the young generation's threshold is raised (:data:`YOUNG_THRESHOLD`), so that what is in
  flight dies young and the old generation grows only with what lives on; full collections
  become rare. A young collection walks at most that many objects: a millisecond or two.
- what exists once the program has started - modules, classes, the supervision tree - is
  frozen (``gc.freeze``) when the program says so: it lives as long as the process, and no
  collection walks it again.

Both are undone when the block ends.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["YOUNG_THRESHOLD", "tuned_collector"]

YOUNG_THRESHOLD = 20_000
"""Net allocations between two young collections (the interpreter's default is 700)."""


@contextmanager
def tuned_collector(young_threshold: int = YOUNG_THRESHOLD) -> Iterator[Callable[[], None]]:
    """Raise the young generation's threshold for the block; it yields ``freeze``, to call
    once the program has started: a full collection, then everything left is frozen. The
    threshold is put back, and what ``freeze`` froze thawed, when the block ends.

    Raises:
        ValueError: ``young_threshold`` is below 1.
    """
    if young_threshold < 1:
        raise ValueError(f"young_threshold must be at least 1, not {young_threshold}")
    previous = gc.get_threshold()
    gc.set_threshold(young_threshold, *previous[1:])
    thaw = False

    def freeze() -> None:
        nonlocal thaw
        # Only what nobody froze before is ours to thaw; gc.unfreeze() thaws everything.
        thaw = thaw or gc.get_freeze_count() == 0
        gc.collect()  # garbage frozen would never be collected
        gc.freeze()

    try:
        yield freeze
    finally:
        if thaw:
            gc.unfreeze()
        gc.set_threshold(*previous)
