"""The hierarchical weighted DRF allocator (pure: no I/O, `now` is an argument).

- `hierarchical.py`: `Allocator`, the object the master feeds events and asks for offers.
- `cycle.py`: one allocation cycle (the theory of operation is there).
- `sorter.py`: dominant shares and the share-ordered queues.
- `filters.py`: per framework decline filters.
- `state.py`: the bookkeeping and the `Allocation` decision value.
"""

from lichen.master.allocator.filters import MAX_REFUSE_SECONDS
from lichen.master.allocator.hierarchical import Allocator
from lichen.master.allocator.state import Allocation

__all__ = ["MAX_REFUSE_SECONDS", "Allocation", "Allocator"]
