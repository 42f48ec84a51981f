"""Custom taxonomies: YAML (list and mapping forms) and CSV give one hierarchy; bad files name file:line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from synsetforge.errors import InputError, NotFoundError
from synsetforge.hierarchy import Hierarchy, load_hierarchy, load_taxonomy, validate_class_list

DATA = Path(__file__).parent / "data" / "taxonomy"
GOOD = ["good.yaml", "good_mapping.yaml", "good.csv"]


def snapshot(h: Hierarchy) -> dict[str, object]:
    """Everything observable about a hierarchy, independent of storage order."""
    return {
        "synsets": sorted((s, h.get(s)) for s in h.ids),
        "roots": sorted(h.roots),
        "depth": {s: (h.depth(s), h.max_depth(s), h.height(s)) for s in h.ids},
        "paths": {s: sorted(h.hypernym_paths(s)) for s in h.ids},
        "lca": {(a, b): h.lca(a, b) for a in h.ids for b in h.ids},
        "desc": {s: sorted(h.descendants(s)) for s in h.ids},
        "expand": {s: (h.expand(s), h.expand(s, "parents")) for s in h.ids},
    }


@pytest.mark.parametrize("name", GOOD)
def test_good_file(name: str) -> None:
    h = load_taxonomy(DATA / name)
    assert len(h) == 9
    assert sorted(h.roots) == ["animal", "vehicle"]
    dog = h.get("dog")
    assert dog.lemmas == ("dog", "domestic dog")
    assert dog.parents == ("canine", "pet")
    assert dog.gloss == "a domesticated canine kept as a pet"
    assert h.get("whippet").lemmas == ("whippet",)  # no lemmas: the id
    assert h.get("vehicle").lemmas == ("vehicle",)
    assert h.get("race_car").lemmas == ("race car", "racer")
    assert h.get("canine").gloss == ""
    assert sorted(h.hypernym_paths("whippet")) == [
        ["whippet", "dog", "canine", "animal"],
        ["whippet", "dog", "pet", "animal"],
    ]
    assert h.lca("dog", "cat") == ("pet", 2)  # pet (height 2) beats animal (height 3)
    assert h.lca("whippet", "race_car") is None  # two roots: no common ancestor
    assert h.expand("whippet") == ["whippet", "whippet dog"]
    assert [s.id for s in h.lookup("House_Cat")] == ["cat"]
    assert str(DATA / name) in h.source


def test_all_formats_behave_identically() -> None:
    first, *others = (snapshot(load_taxonomy(DATA / name)) for name in GOOD)
    for other in others:
        assert other == first


def test_multi_root_batch_and_cost_matrix() -> None:
    h = load_taxonomy(DATA / "good.yaml")
    ids, heights = h.lca_batch(["dog", "whippet", "cat"], ["cat", "race_car", "cat"])
    assert ids == ["pet", None, "cat"]
    assert heights.tolist() == [2, -1, 0]
    m = h.hierarchical_cost_matrix(["whippet", "cat", "race_car"])
    assert m.tolist() == [[0, 2, h.max_height + 1], [2, 0, h.max_height + 1], [h.max_height + 1] * 2 + [0]]
    assert np.array_equal(m, m.T)


def test_select_and_classes_on_custom() -> None:
    h = load_hierarchy(DATA / "good.yaml")
    assert h.select("animal") == ["cat", "whippet"]  # leaves in file order
    assert h.select(None, leaves=True) == ["cat", "whippet", "race_car"]
    assert h.non_overlapping(["pet", "dog", "cat", "race_car"]) == ["dog", "cat", "race_car"]
    report = validate_class_list(h, ["dog", "pet extra words", "# c", "nope", "dog"])
    assert report.ids == ["dog", "pet"] and report.unknown == [(4, "nope")]
    assert report.duplicates == [(5, "dog", 1)] and report.overlapping == [("pet", "dog")]


def test_did_you_mean_on_custom_ids_and_lemmas() -> None:
    h = load_taxonomy(DATA / "good.yaml")
    with pytest.raises(NotFoundError, match=r"unknown synset id 'dgo'.*did you mean dog \(dog\)"):
        h.get("dgo")
    with pytest.raises(NotFoundError, match=r"did you mean 'felid' or 'feline'\?"):
        h.lookup("felin")
    with pytest.raises(NotFoundError, match=r"did you mean race_car"):
        h.resolve("race-car")


BAD = [
    ("bad_syntax.yaml", 5, "invalid YAML: expected ',' or ']'"),
    ("bad_dangling.yaml", 5, "parent 'canine' of 'dog' is not defined"),
    ("bad_cycle.yaml", 2, "cycle in parents: canine -> dog -> puppy -> canine"),
    ("bad_duplicate.yaml", 4, "duplicate id 'dog' (first defined on line 2)"),
    ("bad_missing_id.yaml", 2, "entry has no 'id'"),
    ("bad_unknown_key.yaml", 3, "unknown key 'parent'"),
    ("bad_self_parent.yaml", 2, "'animal' is its own parent"),
    ("empty.yaml", 1, "the taxonomy is empty"),
    ("bad_quote.csv", 3, "invalid CSV"),
    ("bad_dangling.csv", 3, "parent 'canine' of 'dog' is not defined"),
    ("bad_cycle.csv", 3, "cycle in parents: a -> b -> a"),
    ("bad_duplicate.csv", 4, "duplicate id 'dog' (first defined on line 3)"),
    ("bad_missing_id.csv", 3, "entry has an empty id"),
    ("bad_header.csv", 1, "unknown column 'parent'"),
    ("bad_fields.csv", 3, "4 fields but the header has 3"),
]


@pytest.mark.parametrize(("name", "line", "message"), BAD)
def test_bad_file_names_file_and_line(name: str, line: int, message: str) -> None:
    with pytest.raises(InputError) as caught:
        load_taxonomy(DATA / name)
    text = str(caught.value)
    assert text.startswith(f"{DATA / name}:{line}: ")
    assert message in text
    assert "\n" not in text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- just a string\n", ":1: each entry must be a mapping"),
        ("dog: [a, b]\n", ":1: the entry of 'dog' must be a mapping or empty"),
        ("- id: dog\n  name: dog\n  lemmas: [dog]\n", ":1: give either 'name' or 'lemmas'"),
        ("- id: my dog\n", ":1: id 'my dog' contains whitespace"),
        ("- id: dog\n  parents: {a: b}\n", ":2: parents must be a value or a list"),
        ("just text\n", ":1: expected a list of entries or a mapping"),
        ("[]\n", ":1: the taxonomy is empty"),
    ],
)
def test_bad_yaml_shapes(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "taxo.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        load_taxonomy(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", ":1: the taxonomy is empty"),
        ("id,lemmas\n", ":1: the taxonomy has a header but no entries"),
        ("lemmas,parents\ndog,\n", ":1: the header has no 'id' column"),
        ("id,name,lemmas\ndog,dog,dog\n", ":1: give either a 'name' or a 'lemmas' column"),
        ('id,gloss\na,"multi\nline"\nb,"x"y\n', ":4: invalid CSV"),
    ],
)
def test_bad_csv_shapes(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "taxo.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        load_taxonomy(path)


def test_csv_multiline_field_keeps_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "taxo.csv"
    path.write_text('id,parents,gloss\na,,"two\nlines"\nb,x,\n')
    with pytest.raises(InputError, match=r"taxo.csv:4: parent 'x' of 'b' is not defined"):
        load_taxonomy(path)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="not found"):
        load_taxonomy(tmp_path / "missing.yaml")
    (tmp_path / "taxo.json").write_text("{}")
    with pytest.raises(InputError, match=r"unknown taxonomy format '\.json'"):
        load_taxonomy(tmp_path / "taxo.json")
    (tmp_path / "latin1.csv").write_bytes("id,lemmas\ncaf\xe9,x\n".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        load_taxonomy(tmp_path / "latin1.csv")
