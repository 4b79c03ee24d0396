"""A training row (one record, or several packed ones) and the label that carries no loss. Its own module so that
data (reading, encoding, batching) and packing can both use it without importing each other."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

IGNORE = -100  # labels: no loss here (prompt tokens with loss_on: response, padding, each record's first token)


@dataclass
class Sequence:
    """One training row: one record, or several packed records (lengths gives each record's token count)."""
    input_ids: List[int]
    labels: List[int]
    lengths: Tuple[int, ...]

    def __len__(self) -> int:
        return len(self.input_ids)
