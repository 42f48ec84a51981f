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


def _is_missing(x: Any) -> bool:
    if x is None or type(x).__name__ in ("NAType", "NaTType"):
        return True
    try:
        return bool(x != x)
    except TypeError:
        return False


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
        try:
            missing = np.asarray(arr != arr, dtype=bool) | np.asarray(arr == None, dtype=bool)  # noqa: E711
        except TypeError:  # pandas.NA refuses to be a bool: check one by one
            missing = np.fromiter((_is_missing(x) for x in arr.tolist()), dtype=bool, count=arr.shape[0])
    else:
        missing = np.zeros(arr.shape, dtype=bool)
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise InputError(f"votes column {name!r} has a missing value (None/NaN) at row {row}")
    return arr


def _is_series(values: Any) -> bool:
    return hasattr(values, "factorize") and hasattr(values, "to_numpy") and hasattr(values, "__len__")


def _keys_and_codes(values: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Factorize one key column; a pandas Series uses its own hash-based `factorize` (no pandas import:
    duck typing), which avoids materialising a million Python strings."""
    if _is_series(values):
        try:
            codes, uniques = values.factorize(sort=True)
        except TypeError as exc:
            raise InputError(f"votes column {name!r} mixes values that cannot be compared ({exc})") from None
        codes = np.asarray(codes, dtype=np.int64)
        if codes.shape[0] and codes.min() < 0:
            row = int(np.flatnonzero(codes < 0)[0])
            raise InputError(f"votes column {name!r} has a missing value (None/NaN) at row {row}")
        keys = uniques.to_numpy() if hasattr(uniques, "to_numpy") else np.asarray(uniques)
        return np.asarray(keys), codes
    return _factorize(_as_column(values, name), name)


def _factorize(arr: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique keys and each row's int code; mixed, unorderable key types are an input error.

    Integer keys in a compact range (the usual ids) take an O(n) bincount path instead of a sort.
    """
    if (arr.dtype.kind in "ib" or (arr.dtype.kind == "u" and arr.dtype.itemsize < 8)) and arr.shape[0] > 0:
        as_int = arr.astype(np.int64, copy=False)
        lo, hi = int(as_int.min()), int(as_int.max())
        if hi - lo <= 4 * arr.shape[0] + 1024:
            present = np.bincount(as_int - lo, minlength=hi - lo + 1) > 0
            code_of = np.cumsum(present) - 1
            keys = (np.flatnonzero(present) + lo).astype(arr.dtype, copy=False)
            return keys, code_of[as_int - lo].astype(np.int64, copy=False)
    if arr.dtype.kind in "OUS":
        return _factorize_hashable(arr, name)
    try:
        keys, codes = np.unique(arr, return_inverse=True)
    except TypeError as exc:
        raise InputError(f"votes column {name!r} mixes values that cannot be compared ({exc})") from None
    return keys, codes.reshape(-1).astype(np.int64, copy=False)


def _factorize_hashable(arr: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Strings / Python objects: codes by a dict in one pass, then only the distinct keys are sorted.

    np.unique would sort all n Python objects (several times slower for 1M string ids).
    """
    index: dict[Any, int] = {}
    setdefault = index.setdefault
    first = np.fromiter((setdefault(x, len(index)) for x in arr.tolist()), dtype=np.int64, count=arr.shape[0])
    distinct = list(index)
    try:
        order = sorted(range(len(distinct)), key=distinct.__getitem__)
    except TypeError as exc:
        raise InputError(f"votes column {name!r} mixes values that cannot be compared ({exc})") from None
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order), dtype=np.int64)
    if arr.dtype.kind == "O":
        keys = np.empty(len(order), dtype=object)
        keys[:] = [distinct[i] for i in order]
    else:
        keys = np.asarray([distinct[i] for i in order], dtype=arr.dtype)
    return keys, rank[first]


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
        lab = _as_column(label, "label")
        task = task if _is_series(task) else _as_column(task, "task")
        worker = worker if _is_series(worker) else _as_column(worker, "worker")
        n_task, n_worker = len(task), len(worker)
        if not (n_task == n_worker == lab.shape[0]):
            raise InputError(
                f"votes columns differ in length: task={n_task}, worker={n_worker}, label={lab.shape[0]}"
            )
        if n_task == 0:
            raise InputError("no votes: the votes table is empty")
        tasks, tcodes = _keys_and_codes(task, "task")
        workers, wcodes = _keys_and_codes(worker, "worker")
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
                bad = seen.tolist()[mapped.index(-1)]
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
