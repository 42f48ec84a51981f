"""The votes table every aggregator reads: one row per (task, worker, label) answer.

Same shape as crowd-kit's input so data moves between the two, but pandas is optional: a DataFrame, a dict
of arrays or a list of tuples all work. Keys are factorized once to dense int codes (numpy only) so the
estimators can run on flat integer arrays; the original keys are kept to label the outputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from synsetforge.errors import InputError

COLUMNS = ("task", "worker", "label")


def _as_column(values: Any, name: str) -> np.ndarray:
    """A 1-d numpy array for one column, rejecting missing values (None / NaN) with a clear message."""
    if hasattr(values, "to_numpy"):  # pandas Series / Index without importing pandas
        values = values.to_numpy()
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InputError(f"votes column {name!r} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype.kind == "f":
        missing = np.isnan(arr)
    elif arr.dtype.kind == "O":
        missing = np.asarray(arr != arr, dtype=bool) | np.asarray(arr == None, dtype=bool)  # noqa: E711
    else:
        missing = np.zeros(arr.shape, dtype=bool)
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise InputError(f"votes column {name!r} has a missing value (None/NaN) at row {row}")
    return arr


def _factorize(arr: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique keys and each row's int code; mixed, unorderable key types are an input error."""
    try:
        keys, codes = np.unique(arr, return_inverse=True)
    except TypeError as exc:
        raise InputError(f"votes column {name!r} mixes values that cannot be compared ({exc})") from None
    return keys, codes.reshape(-1).astype(np.int64, copy=False)


@dataclass(frozen=True, eq=False)
class Votes:
    """A factorized votes table.

    `task_codes[i]`, `worker_codes[i]`, `label_codes[i]` describe vote i as indices into `tasks`,
    `workers` and `label_values` (all sorted ascending, so the lowest label has code 0).
    """

    task_codes: np.ndarray
    worker_codes: np.ndarray
    label_codes: np.ndarray
    tasks: np.ndarray
    workers: np.ndarray
    label_values: np.ndarray

    @property
    def n_votes(self) -> int:
        return int(self.task_codes.shape[0])

    @property
    def n_tasks(self) -> int:
        return int(self.tasks.shape[0])

    @property
    def n_workers(self) -> int:
        return int(self.workers.shape[0])

    @property
    def n_labels(self) -> int:
        return int(self.label_values.shape[0])

    @classmethod
    def from_columns(
        cls, task: Any, worker: Any, label: Any, *, label_values: Sequence[Any] | None = None
    ) -> Votes:
        """Build from three equally long columns.

        `label_values` fixes the label set (e.g. `[False, True]` so that an all-"yes" table is still
        binary); any vote whose label is not in it is an input error. Without it the set is what occurs,
        except that boolean columns always get `[False, True]`.
        """
        t = _as_column(task, "task")
        w = _as_column(worker, "worker")
        lab = _as_column(label, "label")
        if not (t.shape[0] == w.shape[0] == lab.shape[0]):
            raise InputError(
                f"votes columns differ in length: task={t.shape[0]}, worker={w.shape[0]}, "
                f"label={lab.shape[0]}"
            )
        if t.shape[0] == 0:
            raise InputError("no votes: the votes table is empty")
        tasks, tcodes = _factorize(t, "task")
        workers, wcodes = _factorize(w, "worker")
        if label_values is None and lab.dtype.kind == "b":
            label_values = [False, True]
        if label_values is None:
            values, lcodes = _factorize(lab, "label")
        else:
            values, _ = _factorize(
                _as_column(_obj_or_native(tuple(label_values)), "label_values"), "label_values"
            )
            if values.shape[0] == 0:
                raise InputError("label_values is empty")
            seen, inverse = _factorize(lab, "label")
            index = {v: i for i, v in enumerate(values.tolist())}
            mapped = [index.get(v, -1) for v in seen.tolist()]
            if min(mapped) < 0:
                bad = seen[mapped.index(-1)]
                raise InputError(f"unknown label value {bad!r}; expected one of {values.tolist()}")
            lcodes = np.asarray(mapped, dtype=np.int64)[inverse]
        return cls(tcodes, wcodes, lcodes, tasks, workers, values)

    @classmethod
    def from_any(
        cls,
        data: Any,
        *,
        label_values: Sequence[Any] | None = None,
        columns: tuple[str, str, str] = COLUMNS,
    ) -> Votes:
        """Accept a `Votes`, a pandas DataFrame or dict of arrays with columns task/worker/label, or an
        iterable of `(task, worker, label)` tuples."""
        if isinstance(data, Votes):
            return data
        if data is None:
            raise InputError("no votes: got None instead of a votes table")
        if isinstance(data, Mapping) or hasattr(data, "columns"):
            names = list(data.keys()) if isinstance(data, Mapping) else list(data.columns)
            missing = [c for c in columns if c not in names]
            if missing:
                raise InputError(f"votes table lacks column(s) {missing}; has {names}")
            return cls.from_columns(*(data[c] for c in columns), label_values=label_values)
        if isinstance(data, str | bytes) or not isinstance(data, Iterable):
            raise InputError(
                f"votes must be a DataFrame, a dict of arrays or (task, worker, label) tuples, "
                f"not {type(data).__name__}"
            )
        rows = list(data)
        if not rows:
            raise InputError("no votes: the votes table is empty")
        if any(len(r) != 3 for r in rows):
            raise InputError("each vote must be a (task, worker, label) tuple of three values")
        t, w, lab = zip(*rows, strict=True)
        return cls.from_columns(
            _obj_or_native(t), _obj_or_native(w), _obj_or_native(lab), label_values=label_values
        )

    def counts(self) -> np.ndarray:
        """(n_tasks, n_labels) number of votes for each label of each task."""
        flat = self.task_codes * self.n_labels + self.label_codes
        return np.bincount(flat, minlength=self.n_tasks * self.n_labels).reshape(self.n_tasks, self.n_labels)

    def to_rows(self) -> list[tuple[Any, Any, Any]]:
        """Back to plain `(task, worker, label)` tuples with the original keys."""
        return list(
            zip(
                self.tasks[self.task_codes].tolist(),
                self.workers[self.worker_codes].tolist(),
                self.label_values[self.label_codes].tolist(),
                strict=True,
            )
        )


def _obj_or_native(values: tuple[Any, ...]) -> np.ndarray:
    """Tuples of Python values to an array without numpy coercing e.g. ints and strs into one str dtype."""
    arr = np.asarray(values)
    if arr.dtype.kind in "US":
        kinds = {type(v) for v in values}
        if kinds - {str, np.str_, bytes, np.bytes_}:
            arr = np.empty(len(values), dtype=object)
            arr[:] = values
    return arr
