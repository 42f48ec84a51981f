"""Votes table, majority vote and Dawid-Skene on simulated crowds with known answers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synsetforge.crowd.aggregation import DawidSkene, MajorityVote, Votes
from synsetforge.errors import InputError


def binary_crowd(
    accuracies: np.ndarray, n_tasks: int, votes_per_task: int, seed: int, prior: float = 0.4
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Votes from workers with symmetric accuracies (each task: distinct random workers) + the truth."""
    rng = np.random.default_rng(seed)
    truth = rng.random(n_tasks) < prior
    workers = np.concatenate(
        [rng.choice(accuracies.shape[0], size=votes_per_task, replace=False) for _ in range(n_tasks)]
    )
    tasks = np.repeat(np.arange(n_tasks), votes_per_task)
    correct = rng.random(tasks.shape[0]) < accuracies[workers]
    labels = np.where(correct, truth[tasks], ~truth[tasks])
    return {"task": tasks, "worker": workers, "label": labels}, truth


class FakeFrame:
    """Just enough of a pandas DataFrame (columns + column access with .to_numpy) to test duck typing."""

    class Col:
        def __init__(self, values: list) -> None:
            self.values = values

        def to_numpy(self) -> np.ndarray:
            return np.asarray(self.values)

    def __init__(self, data: dict[str, list]) -> None:
        self.data = data
        self.columns = list(data)

    def __getitem__(self, key: str) -> FakeFrame.Col:
        return FakeFrame.Col(self.data[key])


# ----- votes table ---------------------------------------------------------------------------------------


def test_votes_accepts_tuples_dicts_and_dataframe_like_alike() -> None:
    rows = [("img2", "bob", True), ("img1", "ann", False), ("img2", "ann", True)]
    cols = {"task": ["img2", "img1", "img2"], "worker": ["bob", "ann", "ann"], "label": [True, False, True]}
    a, b, c = Votes.from_any(rows), Votes.from_any(cols), Votes.from_any(FakeFrame(cols))
    for v in (a, b, c):
        assert v.tasks.tolist() == ["img1", "img2"]
        assert v.workers.tolist() == ["ann", "bob"]
        assert v.label_values.tolist() == [False, True]
        assert v.task_codes.tolist() == [1, 0, 1]
        assert v.counts().tolist() == [[1, 0], [0, 2]]
        assert v.to_rows() == rows


def test_votes_keeps_int_and_str_keys_apart_from_numpy_coercion() -> None:
    v = Votes.from_any([(1, "w1", "cat"), (2, "w1", "dog"), (1, "w2", "cat")])
    assert v.tasks.tolist() == [1, 2]  # ints stay ints (numpy would have made them strings)
    assert v.label_values.tolist() == ["cat", "dog"]


@pytest.mark.parametrize(
    "keys",
    [
        np.array([5, -3, 5, 1_000_000, -3, 7]),  # sparse ints: sort path
        np.array([5, -3, 5, 12, -3, 7]),  # compact ints: bincount path
        np.array([2**63 + 5, 3, 2**63 + 5], dtype=np.uint64),
        np.array(["b", "a", "b", "c"]),
        np.array(["b", "a", "b", "c"], dtype=object),
    ],
)
def test_factorized_keys_are_sorted_and_invertible(keys: np.ndarray) -> None:
    v = Votes.from_any({"task": keys, "worker": keys, "label": np.ones(keys.shape[0], dtype=bool)})
    assert v.tasks.tolist() == np.unique(keys).tolist()
    assert v.tasks[v.task_codes].tolist() == keys.tolist()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "empty"),
        ({"task": [], "worker": [], "label": []}, "empty"),
        (None, "None"),
        ("task,worker,label", "not str"),
        ({"task": [1], "worker": [1]}, "lacks column"),
        ({"task": [1, 2], "worker": [1], "label": [True]}, "differ in length"),
        ([(1, 2)], "three values"),
        ({"task": [1, 2], "worker": [1, 2], "label": [1.0, float("nan")]}, "missing value"),
        ({"task": [1, 2], "worker": ["a", None], "label": [1, 0]}, "missing value"),
        ([(1, "a", True), ("x", "a", False)], "cannot be compared"),
    ],
)
def test_votes_rejects_bad_input_with_one_clear_error(data: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        Votes.from_any(data)


class NAType:
    """Behaves like pandas.NA: comparisons give NA, and NA refuses to become a bool."""

    def __eq__(self, other: object) -> NAType:  # type: ignore[override]
        return self

    def __ne__(self, other: object) -> NAType:  # type: ignore[override]
        return self

    def __bool__(self) -> bool:
        raise TypeError("boolean value of NA is ambiguous")

    __hash__ = object.__hash__


def test_pandas_na_like_missing_label_is_an_input_error() -> None:
    labels = np.empty(3, dtype=object)
    labels[:] = [True, NAType(), False]
    with pytest.raises(InputError, match=r"missing value .* row 1"):
        Votes.from_any({"task": [1, 2, 3], "worker": ["a", "b", "c"], "label": labels})


def test_unknown_label_value_is_an_input_error() -> None:
    with pytest.raises(InputError, match="unknown label value 'maybe'"):
        Votes.from_any([(1, "a", "yes"), (2, "a", "maybe")], label_values=["yes", "no"])
    # the estimators pass label_values through
    with pytest.raises(InputError, match="unknown label value 2"):
        DawidSkene().fit([(1, "a", 0), (2, "a", 2)], label_values=[0, 1])


# ----- majority vote -------------------------------------------------------------------------------------


def test_majority_vote_decides_and_documents_ties() -> None:
    rows = [("a", "w1", True), ("a", "w2", True), ("a", "w3", False), ("b", "w1", True), ("b", "w2", False)]
    res = MajorityVote().fit_predict(rows)
    assert res.to_dict() == {"a": True, "b": False}  # tie -> lowest label (False): not accepted
    assert res.confidence.tolist() == pytest.approx([2 / 3, 0.5])
    # w1 agreed with both decisions, w2 with one of two, w3 with its single vote on "a"? no: w3 said False
    assert dict(zip(res.workers.tolist(), res.worker_accuracy.tolist(), strict=True)) == pytest.approx(
        {"w1": 0.5, "w2": 1.0, "w3": 0.0}
    )

    und = MajorityVote(ties="undecided").fit_predict(rows)
    assert und.to_dict() == {"a": True, "b": None}
    assert und.decided.tolist() == [True, False]
    with pytest.raises(InputError, match="ties"):
        MajorityVote(ties="coin")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="before fit"):
        MajorityVote().predict()


# ----- Dawid-Skene -----------------------------------------------------------------------------------------


def test_dawid_skene_recovers_worker_accuracies() -> None:
    rng = np.random.default_rng(7)
    acc = np.concatenate([rng.uniform(0.6, 0.95, 40), [0.2, 0.15]])  # two adversaries
    votes, truth = binary_crowd(acc, n_tasks=3000, votes_per_task=5, seed=1)
    res = DawidSkene().fit_predict(votes)
    # empirical accuracy of each worker against the real truth (what DS should estimate)
    right = votes["label"] == truth[votes["task"]]
    emp = np.bincount(votes["worker"], weights=right) / np.bincount(votes["worker"])
    est = dict(zip(res.workers.tolist(), res.worker_accuracy.tolist(), strict=True))
    errors = np.abs(np.asarray([est[w] for w in range(acc.shape[0])]) - emp)
    assert errors.max() < 0.04, errors.max()
    assert est[40] < 0.3 and est[41] < 0.3  # adversaries are recognised as such
    assert res.converged and res.n_iter <= 100
    assert res.priors == pytest.approx([1 - truth.mean(), truth.mean()], abs=0.02)
    assert np.allclose(res.confusion.sum(axis=2), 1.0)  # each true-label row is a distribution


def test_dawid_skene_beats_majority_with_spammers_and_adversaries() -> None:
    rng = np.random.default_rng(3)
    acc = np.concatenate([rng.uniform(0.7, 0.9, 25), np.full(10, 0.5), np.full(15, 0.15)])
    votes, truth = binary_crowd(acc, n_tasks=2000, votes_per_task=7, seed=4)
    ds = DawidSkene().fit_predict(votes)
    mv = MajorityVote().fit_predict(votes)
    ds_acc = float((ds.labels == truth).mean())
    mv_acc = float((mv.labels == truth).mean())
    print(f"\naccuracy vs truth: Dawid-Skene {ds_acc:.3f}, majority vote {mv_acc:.3f}")
    assert ds_acc > mv_acc + 0.1
    assert ds_acc > 0.9


def test_dawid_skene_k_classes_recovers_confusion_matrices() -> None:
    rng = np.random.default_rng(11)
    k, n_workers, n_tasks, per_task = 3, 30, 3000, 5
    truth = rng.choice(k, size=n_tasks, p=[0.5, 0.3, 0.2])
    # worker j: confuses class 2 with class 1 half the time; otherwise right with prob acc_j
    acc = rng.uniform(0.7, 0.95, n_workers)
    conf = np.empty((n_workers, k, k))
    for j in range(n_workers):
        off = (1 - acc[j]) / (k - 1)
        conf[j] = np.full((k, k), off) + np.eye(k) * (acc[j] - off)
        conf[j, 2] = [0.05, 0.5, 0.45]
    workers = np.concatenate([rng.choice(n_workers, per_task, replace=False) for _ in range(n_tasks)])
    tasks = np.repeat(np.arange(n_tasks), per_task)
    u = rng.random(tasks.shape[0])[:, None]
    labels = (u > np.cumsum(conf[workers, truth[tasks]], axis=1)).sum(axis=1)
    names = np.array(["bird", "cat", "dog"])
    # the textbook ELBO stop: crowd-kit's objective (the default) halts after 4 iterations on this data
    res = DawidSkene(objective="elbo").fit_predict({"task": tasks, "worker": workers, "label": names[labels]})
    assert res.label_values.tolist() == ["bird", "cat", "dog"]
    assert res.confusion.shape == (n_workers, 3, 3)
    # average recovered confusion for true class 2 (dog) shows the systematic cat/dog mix-up
    assert res.confusion[:, 2].mean(axis=0) == pytest.approx([0.05, 0.5, 0.45], abs=0.06)
    assert float((res.labels == names[truth]).mean()) > 0.85
    assert np.allclose(res.probas.sum(axis=1), 1.0)


def test_dawid_skene_gold_pins_known_answers() -> None:
    rows = [("t1", "a", True), ("t1", "b", False), ("t2", "a", True), ("t2", "b", False)]
    pinned = DawidSkene().fit_predict(rows, gold={"t1": False})
    assert pinned.to_dict()["t1"] is False
    assert pinned.probas[0].tolist() == [1.0, 0.0]
    # b agreed with the gold answer, so b is trusted on t2 as well
    assert pinned.to_dict()["t2"] is False
    with pytest.raises(InputError, match="gold label"):
        DawidSkene().fit(rows, gold={"t1": "maybe"})


def test_dawid_skene_edge_cases() -> None:
    one = DawidSkene().fit_predict([("only", "w", True)])
    assert one.to_dict() == {"only": True}
    assert one.confidence[0] > 0.5

    # a task with one vote and a worker with one vote inside a larger crowd
    acc = np.full(10, 0.85)
    votes, _ = binary_crowd(acc, n_tasks=300, votes_per_task=5, seed=2)
    rows = list(zip(votes["task"].tolist(), votes["worker"].tolist(), votes["label"].tolist(), strict=True))
    rows.append((9999, 77, True))  # new task, new worker, one vote
    res = DawidSkene().fit_predict(rows)
    assert res.to_dict()[9999] in (True, False)
    assert np.isfinite(res.worker_accuracy).all() and np.isfinite(res.probas).all()

    same = DawidSkene().fit_predict([(t, w, True) for t in range(5) for w in range(3)])
    assert all(same.to_dict().values())  # bool labels keep the {False, True} label set
    assert same.label_values.tolist() == [False, True]
    single = DawidSkene().fit_predict([(t, w, 1) for t in range(5) for w in range(3)])
    assert single.label_values.tolist() == [1] and single.confidence.tolist() == [1.0] * 5

    with pytest.raises(InputError, match="empty"):
        DawidSkene().fit([])
    with pytest.raises(InputError, match="missing value"):
        DawidSkene().fit({"task": [1, 2], "worker": [1, 1], "label": [0.0, np.nan]})
    with pytest.raises(InputError, match="before fit"):
        DawidSkene().predict()
    with pytest.raises(InputError, match="max_iter"):
        DawidSkene(max_iter=-1)


def test_dawid_skene_fixed_iterations_with_negative_tol() -> None:
    votes, _ = binary_crowd(np.full(20, 0.8), n_tasks=200, votes_per_task=3, seed=5)
    res = DawidSkene(max_iter=7, tol=-1.0, objective="elbo").fit_predict(votes)
    assert res.n_iter == 7 and not res.converged
    hist = np.asarray(res.elbo_history)
    assert (np.diff(hist) > -1e-9).all()  # EM never decreases the ELBO


def test_results_convert_to_plain_python() -> None:
    res = DawidSkene().fit_predict(
        {"task": np.array([1, 1, 2]), "worker": np.array(["x", "y", "x"]), "label": np.array([1, 1, 0])}
    )
    rows = res.to_rows()
    assert [r["task"] for r in rows] == [1, 2]
    assert isinstance(rows[0]["task"], int) and isinstance(rows[0]["label"], int)
    json.dumps({"tasks": rows, "workers": res.worker_rows()})  # JSON-ready, no numpy scalars
