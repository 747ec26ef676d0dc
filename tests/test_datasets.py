"""Dataset loaders: counts from each SOURCE.md, class orders, checksums, clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crowdlearn.datasets import (
    ChecksumError,
    CrowdDataset,
    DatasetNotFoundError,
    get_info,
    list_datasets,
    load_adultcontent2,
    load_bluebirds,
    load_dataset,
    load_labelme,
    load_music,
    registry,
)
from crowdlearn.datasets._base import cache_dir, data_root, file_sha256

CROWD = [
    "music",
    "labelme",
    "cifar10n",
    "bluebirds",
    "dog",
    "rte",
    "temp",
    "product",
    "trec-relevance",
    "adultcontent2",
]

# name -> (items, annotators, labels, classes, items with truth) as stated in each SOURCE.md
# (AdultContent2: 92,721 rows of which 2,922 repeat a (worker, url) pair; one label per pair is kept)
COUNTS = {
    "music": (700, 44, 2945, 10, 700),
    "labelme": (1000, 59, 2547, 8, 1000),
    "cifar10n": (50000, 3, 150000, 10, 50000),
    "bluebirds": (108, 39, 4212, 2, 108),
    "dog": (807, 109, 8070, 4, 807),
    "rte": (800, 164, 8000, 2, 800),
    "temp": (462, 76, 4620, 2, 462),
    "product": (8315, 176, 24945, 2, 8315),
    "trec-relevance": (19033, 762, 88385, 2, 2275),
    "adultcontent2": (11040, 825, 92721 - 2922, 4, 333),
}

# fraction of crowd labels equal to the truth, where the SOURCE.md states it
RAW_ACCURACY = {"music": 0.560, "labelme": 0.740}
# majority vote with ties broken uniformly at random (expected accuracy), from the SOURCE.md files
MV_ACCURACY = {
    "bluebirds": 0.7593,
    "dog": 0.8222,
    "rte": 0.8969,
    "temp": 0.9361,
    "product": 0.8966,
    "trec-relevance": 0.6514,
}


def expected_mv_accuracy(ds: CrowdDataset) -> float:
    votes = ds.annotations.vote_counts()
    top = votes == votes.max(axis=1, keepdims=True)
    known = ds.truth >= 0
    return float((top[known, ds.truth[known]] / top[known].sum(axis=1)).mean())


@pytest.fixture(scope="module")
def loaded(data_dir: Path) -> dict[str, CrowdDataset]:
    return {name: load_dataset(name, root=data_dir) for name in CROWD}


@pytest.mark.parametrize("name", CROWD)
def test_counts_match_source(loaded: dict[str, CrowdDataset], name: str) -> None:
    ds = loaded[name]
    ann = ds.annotations
    items, annotators, labels, n_classes, n_truth = COUNTS[name]
    assert (ann.n_items, ann.n_annotators, ann.n_labels, ann.n_classes) == (items, annotators, labels, n_classes)
    assert len(ds.classes) == n_classes
    assert [str(c) for c in ann.classes] == list(ds.classes)
    assert ds.truth.shape == (items,) and ds.truth.dtype == np.int64
    assert int((ds.truth >= 0).sum()) == n_truth
    assert ds.truth.max() < n_classes
    assert ann.item_counts.min() >= 1  # every item has a crowd label
    info = get_info(name)
    assert (info.n_items, info.n_annotators, info.n_labels, info.n_classes) == (items, annotators, labels, n_classes)
    assert ds.citation and ds.license


@pytest.mark.parametrize("name", sorted(RAW_ACCURACY))
def test_raw_label_accuracy(loaded: dict[str, CrowdDataset], name: str) -> None:
    ds = loaded[name]
    ann = ds.annotations
    assert np.mean(ann.labels == ds.truth[ann.items]) == pytest.approx(RAW_ACCURACY[name], abs=5e-4)


@pytest.mark.parametrize("name", sorted(MV_ACCURACY))
def test_majority_vote_accuracy(loaded: dict[str, CrowdDataset], name: str) -> None:
    assert expected_mv_accuracy(loaded[name]) == pytest.approx(MV_ACCURACY[name], abs=5e-5)


def test_cifar10n_agreement_with_clean_labels(loaded: dict[str, CrowdDataset]) -> None:
    ds = loaded["cifar10n"]
    ann = ds.annotations
    assert ds.classes[0] == "airplane" and ds.classes[9] == "truck"
    assert list(ann.annotator_ids) == ["random_label1", "random_label2", "random_label3"]
    assert (ann.item_counts == 3).all()
    agree = [np.mean(ann.labels[ann.annotators == j] == ds.truth) for j in range(3)]
    np.testing.assert_allclose(agree, [0.8277, 0.8188, 0.8236], atol=5e-5)


def test_adultcontent2_duplicates(data_dir: Path, loaded: dict[str, CrowdDataset]) -> None:
    rows = pd.read_csv(data_dir / "AdultContent2" / "labels.txt", sep="\t", header=None)
    assert len(rows) == 92721
    ds = loaded["adultcontent2"]
    assert ds.classes == ("G", "P", "R", "X")
    # counting the repeated rows as extra votes reproduces the SOURCE.md number (0.7598); one vote per pair: 0.7583
    assert expected_mv_accuracy(ds) == pytest.approx(0.75826, abs=5e-5)
    last = load_adultcontent2(data_dir, on_duplicate="last")
    assert last.annotations.n_labels == ds.annotations.n_labels
    assert not np.array_equal(last.annotations.labels, ds.annotations.labels)
    with pytest.raises(ValueError, match="duplicate"):
        load_adultcontent2(data_dir, on_duplicate="error")


def test_music_preprocessing(data_dir: Path, loaded: dict[str, CrowdDataset]) -> None:
    ds = loaded["music"]
    x, xt = ds.features["train"], ds.features["test"]
    assert x.shape == (700, 124) and xt.shape == (300, 124) and ds.targets["test"].shape == (300,)
    np.testing.assert_allclose(x.mean(axis=0), 0, atol=1e-9)
    np.testing.assert_allclose(x.std(axis=0), 1, atol=1e-9)
    gold = pd.read_csv(data_dir / "Music" / "music_genre_gold.csv")
    raw = gold.filter(like="feature").to_numpy()
    test = pd.read_csv(data_dir / "Music" / "music_genre_test.csv")
    np.testing.assert_allclose(xt, (test.filter(like="feature").to_numpy() - raw.mean(0)) / raw.std(0))
    assert list(ds.annotations.item_ids) == gold["id"].tolist()
    ids = list(ds.annotations.annotator_ids)
    assert ids == sorted(ids) and len(ids) == 44
    assert ds.classes == tuple(sorted(ds.classes)) and ds.classes[0] == "blues"
    assert ds.classes[int(ds.truth[0])] == gold["class"][0]


def test_labelme_splits_and_features(data_dir: Path, loaded: dict[str, CrowdDataset]) -> None:
    ds = loaded["labelme"]
    assert ds.classes[0] == "highway" and ds.classes[7] == "opencountry"
    assert {k: v.shape for k, v in ds.features.items()} == {
        "train": (1000, 512),
        "valid": (500, 512),
        "test": (1188, 512),
    }
    assert {k: v.shape for k, v in ds.targets.items()} == {"valid": (500,), "test": (1188,)}
    answers = np.loadtxt(data_dir / "LabelMe" / "answers.txt", dtype=np.int64)
    ann = ds.annotations
    cols = np.asarray(ann.annotator_ids, dtype=np.int64)
    np.testing.assert_array_equal(answers[ann.items, cols[ann.annotators]], ann.labels)
    assert (answers[:, np.setdiff1d(np.arange(77), cols)] == -1).all()
    names = (data_dir / "LabelMe" / "labels_valid_names.txt").read_text().split()
    assert [ds.classes[i] for i in ds.targets["valid"]] == names
    bow = load_dataset("LabelMe", data_dir, features="bow", verify=False)
    assert {k: v.shape for k, v in bow.features.items()} == {
        "train": (1000, 200),
        "valid": (500, 200),
        "test": (1188, 200),
    }
    first = (data_dir / "LabelMe" / "data_train.txt").read_text().split("\n", 1)[0].split()
    assert bow.features["train"][0].sum() == sum(int(p.split(":")[1]) for p in first[1:])
    with pytest.raises(ValueError, match="features must be"):
        load_labelme(data_dir, features="vgg")  # type: ignore[arg-type]


def test_checksums_match(data_dir: Path) -> None:
    for info in registry().values():
        for source in info.all_sources:
            folder = data_dir / source.folder
            if not folder.is_dir():
                continue  # e.g. Fashion-MNIST, which is not in shared/data
            for spec in source.files:
                path = folder / spec.name
                assert path.is_file(), path
                assert file_sha256(path, gunzip=spec.gunzip_checksum) == spec.sha256, path
                if not spec.gunzip_checksum:
                    assert path.stat().st_size == spec.size, path


def test_names_and_unknown_name() -> None:
    assert set(CROWD) <= set(list_datasets())
    assert load_dataset.__name__ == "load_dataset"
    assert get_info("TREC").name == "trec-relevance" and get_info("Music").name == "music"
    with pytest.raises(ValueError, match=r"unknown dataset 'nope'; known datasets: .*music"):
        load_dataset("nope")


def test_missing_folder_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"Music.*does not exist.*music_genre_gold\.csv") as err:
        load_music(tmp_path)
    msg = str(err.value)
    assert "CROWDLEARN_DATA" in msg and "crowdlearn datasets download music" in msg
    assert isinstance(err.value, FileNotFoundError)


def test_missing_file_and_corrupt_file(data_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "Bluebirds"
    folder.mkdir()
    shutil.copy(data_dir / "Bluebirds" / "bluebird_crowd.txt", folder)
    with pytest.raises(DatasetNotFoundError, match=r"lacks bluebird_truth\.txt"):
        load_bluebirds(tmp_path)
    truth = (data_dir / "Bluebirds" / "bluebird_truth.txt").read_bytes()
    (folder / "bluebird_truth.txt").write_bytes(b"1\t1" + truth[3:])
    with pytest.raises(ChecksumError, match=r"checksum mismatch for .*bluebird_truth\.txt.*verify=False"):
        load_bluebirds(tmp_path)
    changed = load_bluebirds(tmp_path, verify=False)
    assert changed.truth[0] == 0 and load_bluebirds(data_dir).truth[0] == 1


def test_root_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CROWDLEARN_DATA", raising=False)
    monkeypatch.delenv("CROWDLEARN_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "crowdlearn"
    assert data_root() == tmp_path / "xdg" / "crowdlearn"
    with pytest.raises(DatasetNotFoundError, match="default cache folder"):
        load_dataset("dog")
    monkeypatch.setenv("CROWDLEARN_DATA", str(tmp_path / "env"))
    assert data_root() == tmp_path / "env"
    assert data_root(tmp_path / "arg") == tmp_path / "arg"
    with pytest.raises(DatasetNotFoundError, match=r"\$CROWDLEARN_DATA"):
        load_dataset("dog")


def test_docs_table_matches_registry() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "datasets.md").read_text()
    table = doc.split("## The datasets", 1)[1].split("\n\n", 2)[1]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:]]
    documented = {r[0]: r for r in rows}
    assert set(documented) == set(list_datasets())
    for name, info in registry().items():
        counts = (info.n_items, info.n_annotators, info.n_labels, info.n_classes)
        assert documented[name][2:6] == ["-" if c is None else f"{c:,}" for c in counts], name
        assert documented[name][8] == info.license or info.license.startswith(documented[name][8].split(" (")[0])


def test_original_ids_kept(loaded: dict[str, CrowdDataset]) -> None:
    dog = loaded["dog"].annotations
    assert list(dog.item_ids[:3]) == [1, 2, 3] and list(dog.annotator_ids[:2]) == [1, 2]
    assert list(dog.classes) == [1, 2, 3, 4] and loaded["dog"].classes == ("1", "2", "3", "4")
    rte = loaded["rte"].annotations
    assert rte.item_ids.tolist() == sorted(rte.item_ids.tolist()) and rte.item_ids.dtype.kind == "i"
    assert loaded["temp"].annotations.item_ids[0] == "100_1"
    assert loaded["product"].annotations.item_ids.tolist() == sorted(loaded["product"].annotations.item_ids.tolist())
    assert loaded["labelme"].annotations.item_ids[0] == "street_hexp30.jpg"
