"""Training history: one dict per epoch, with a JSON round trip."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, overload

__all__ = ["History"]


class History:
    """A list of epoch dicts (``{"epoch": 0, "train_loss": ..., "batches": [...]}``).

    Callbacks talk through it: e.g. :class:`~crowdlearn.train.EarlyStopping` writes
    ``"<monitor>_best"`` and the checkpoint reads it.

    Examples
    --------
    >>> h = History()
    >>> h.new_epoch(0)
    >>> h.record("train_loss", 0.5)
    >>> h[:, "train_loss"]
    [0.5]
    >>> History.from_json(h.to_json())[-1]["train_loss"]
    0.5
    """

    def __init__(self, epochs: list[dict[str, Any]] | None = None) -> None:
        self.epochs: list[dict[str, Any]] = [dict(e) for e in epochs] if epochs else []

    def new_epoch(self, epoch: int) -> None:
        """Start the dict of a new epoch."""
        self.epochs.append({"epoch": int(epoch), "batches": []})

    def record(self, key: str, value: Any) -> None:
        """Set ``key`` in the current epoch's dict."""
        if not self.epochs:
            raise IndexError("History.record called before new_epoch")
        self.epochs[-1][key] = value

    def record_batch(self, values: dict[str, float]) -> None:
        """Append one batch's values to the current epoch's ``"batches"`` list."""
        if not self.epochs:
            raise IndexError("History.record_batch called before new_epoch")
        self.epochs[-1]["batches"].append(dict(values))

    def __len__(self) -> int:
        return len(self.epochs)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.epochs)

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: tuple[slice | int, str]) -> Any: ...

    def __getitem__(self, index: int | tuple[slice | int, str]) -> Any:
        """``h[i]`` is an epoch dict; ``h[:, "key"]`` the values of ``key`` (None where missing)."""
        if isinstance(index, tuple):
            rows, key = index
            if isinstance(rows, int):
                return self.epochs[rows].get(key)
            return [e.get(key) for e in self.epochs[rows]]
        return self.epochs[index]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, History) and self.epochs == other.epochs

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"History(n_epochs={len(self.epochs)})"

    def without_batches(self) -> History:
        """A copy with the per-epoch values only (no ``"batches"`` lists).

        What a model file keeps: its size grows with the epochs, not with the batches.
        """
        return History([{k: v for k, v in e.items() if k != "batches"} for e in self.to_list()])

    def to_list(self) -> list[dict[str, Any]]:
        """Deep copy as plain lists and dicts."""
        out: list[dict[str, Any]] = json.loads(self.to_json())
        return out

    def to_json(self) -> str:
        """JSON text (``float('nan')`` and infinities are written as JSON ``NaN``/``Infinity``)."""
        return json.dumps(self.epochs)

    @classmethod
    def from_json(cls, text: str) -> History:
        """Inverse of :meth:`to_json`."""
        data = json.loads(text)
        if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
            raise ValueError("history JSON must be a list of epoch objects")
        return cls(data)

    def to_file(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        """Write :meth:`to_json` to ``path`` atomically (:func:`crowdlearn.io.atomic_write`).

        An existing file is an error unless ``overwrite=True``; a symbolic link or a non-regular
        file (a device, a pipe) is always refused.
        """
        from crowdlearn.io import atomic_write

        with atomic_write(path, overwrite=overwrite) as fh:
            fh.write(self.to_json())

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> History:
        """Read a file written by :meth:`to_file`."""
        return cls.from_json(Path(path).read_text(encoding="utf-8"))
