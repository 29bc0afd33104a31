"""A thread-safe LRU bounded by bytes, not entries.

Decoded frames and font faces vary in size by orders of magnitude, so counting
entries would either waste memory or thrash; the budget comes from CACHE_SIZE_MB.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class ByteLRU(Generic[V]):
    """Least-recently-used map whose total declared size stays under `capacity`."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(0, capacity)
        self._items: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._lock = threading.RLock()
        self.size = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item[0]

    def put(self, key: Hashable, value: V, nbytes: int) -> None:
        """Store `value`; an item larger than the whole budget is simply not kept."""
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.size -= old[1]
            if nbytes > self.capacity:
                return
            self._items[key] = (value, nbytes)
            self.size += nbytes
            while self.size > self.capacity and self._items:
                _, (_, evicted) = self._items.popitem(last=False)
                self.size -= evicted

    def get_or_create(self, key: Hashable, create: Callable[[], tuple[V, int]]) -> V:
        value = self.get(key)
        if value is None:
            value, nbytes = create()
            self.put(key, value, nbytes)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.size = 0
