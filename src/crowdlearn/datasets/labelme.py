"""LabelMe scenes (8 classes, 59 active MTurk annotators; Rodrigues et al. 2017/2018)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import numpy as np

from crowdlearn.annotations import Annotations
from crowdlearn.datasets._base import CrowdDataset, DatasetInfo, FileSpec, Source, github_raw, locate, register

_SPLITS = ("train", "valid", "test")
_N = {"train": 1000, "valid": 500, "test": 1188}
_VOCAB = 200


def _url(path: str) -> str:
    return github_raw("pilot7747/crowd-embeddings", "f015cc1851d76f96cf55b98ea335ad1f6a7ff80b", "data/LabelMe/" + path)


def _vgg_url(path: str) -> str:
    return github_raw("fmenat/PyLearningCrowds", "0edf617d0357a43b48dc53f10f4181ec0163d4db", "data/LabelMe/" + path)


_FILES = {
    "answers.txt": ("7d1945e639cc2bf4de40338eca1be9c8a6f0402da63f73a79b71d98e07e91897", 228453),
    "labels_train.txt": ("229556bdc5da327dd7d4e4154ba180969091c83f43cf8cbee3727131c5a062f6", 2000),
    "labels_valid.txt": ("40aba43f903a539b38243c411e214da1f8c696cc47aa59811cc3388cc6899892", 1000),
    "labels_test.txt": ("6d508b638d41fa84b2628615270456df96a49dce18054d201ac6261b03ea77bc", 2376),
    "filenames_train.txt": ("ab6b8c79cf243aadad711e13c31fd05c645caeeab691be1f93481eb63105142c", 20745),
    "filenames_valid.txt": ("7f38999aee931a392a04208cf3a0a48a4556a1d1f0dceeb365b04619b6d0816f", 10300),
    "filenames_test.txt": ("4ecc5ba8be2060d49783a4f955deeed698f3cde8aeef3b1a1daa2e8d976104d4", 24736),
    "data_train.txt": ("4477377b48860313b6331c359549588b587c2068ec2b113df9ddfc1f1f49391c", 1296021),
    "data_valid.txt": ("cbd87cb85c201fba4e02189ff3790e579365e77e62da0f8dae4b212cc4952356", 651298),
    "data_test.txt": ("04a95fcb77b5f82292cca3153a1d3076ee078fe3fa233dd45a9e52b1fecfd29d", 1541466),
}
_VGG_FILES = {
    "LabelMe_VGG_avg_train.npy": ("0ddfbcbd722aab70e81525a459cc37d47c1d344322b401ee35a3e9b158a209e8", 2048128),
    "LabelMe_VGG_avg_valid.npy": ("cb80ce99ef9fc80c666e6b9c43259ee0aac4e0cf82f8ac654b8bb309fb28953d", 1024128),
    "LabelMe_VGG_avg_test.npy": ("af407538f702f98e775f233652152cdcb58583c9d4668492308151c126ce7873", 2433152),
}

SOURCE = Source(
    folder="LabelMe",
    files=tuple(FileSpec(n, h, s, _url(n)) for n, (h, s) in _FILES.items()),
    origin="github.com/pilot7747/crowd-embeddings @f015cc1, data/LabelMe/",
)
VGG_SOURCE = Source(
    folder="LabelMe-vgg16avg",
    files=tuple(FileSpec(n, h, s, _vgg_url(n)) for n, (h, s) in _VGG_FILES.items()),
    origin="github.com/fmenat/PyLearningCrowds @0edf617, data/LabelMe/",
)

#: Scene classes in class-index order (from the ``labels_*_names.txt`` files).
CLASSES = ("highway", "insidecity", "tallbuilding", "street", "forest", "coast", "mountain", "opencountry")

CITATION = (
    "Russell, Torralba, Murphy & Freeman, 'LabelMe: a database and web-based tool for image annotation', IJCV 2008; "
    "Rodrigues, Lourenço, Ribeiro & Pereira, 'Learning supervised topic models for classification and regression "
    "from crowds', IEEE TPAMI 2017; Rodrigues & Pereira, 'Deep learning from crowds', AAAI 2018."
)
LICENSE = "none stated"


def _read_ints(path: Path) -> np.ndarray[Any, Any]:
    return np.loadtxt(path, dtype=np.int64, ndmin=1)


def read_lda_c(path: Path, n_terms: int = _VOCAB) -> np.ndarray[Any, Any]:
    """Dense (n_docs, n_terms) float64 counts from an LDA-C file (``N idx:count ...``, 1-based)."""
    lines = path.read_text().splitlines()
    out = np.zeros((len(lines), n_terms), dtype=np.float64)
    for row, line in enumerate(lines):
        parts = line.split()
        if not parts:
            raise ValueError(f"{path}: line {row + 1} is empty; expected '<n_terms> <idx>:<count> ...'")
        pairs = [p.split(":") for p in parts[1:]]
        if len(pairs) != int(parts[0]) or any(len(p) != 2 for p in pairs):
            raise ValueError(f"{path}: line {row + 1} is not in LDA-C format '<n_terms> <idx>:<count> ...'")
        idx = np.array([int(p[0]) for p in pairs], dtype=np.int64) - 1
        if idx.size and (idx.min() < 0 or idx.max() >= n_terms):
            raise ValueError(f"{path}: line {row + 1} has a term index outside 1..{n_terms}")
        out[row, idx] = [float(p[1]) for p in pairs]
    return out


def load_labelme(
    root: str | os.PathLike[str] | None = None,
    *,
    features: Literal["vgg16avg", "bow"] = "vgg16avg",
    verify: bool = True,
) -> CrowdDataset:
    """LabelMe scene classification from 59 active MTurk annotators.

    Items are the 1,000 training images (``item_ids`` = image file names); annotators are the
    59 columns of ``answers.txt`` that hold any label (``annotator_ids`` = their 0-based column
    index among the 77); ``-1`` entries are missing labels. Classes: 0 highway, 1 insidecity,
    2 tallbuilding, 3 street, 4 forest, 5 coast, 6 mountain, 7 opencountry.

    Parameters
    ----------
    root : path, optional
        Data root holding ``LabelMe/`` (and ``LabelMe-vgg16avg/`` for the default features).
    features : {"vgg16avg", "bow"}, default="vgg16avg"
        ``"vgg16avg"``: 512-d VGG16 average-pooled float32 features (folder
        ``LabelMe-vgg16avg``; not the 4x4x512 maps of the AAAI 2018 / ICLR 2023 papers).
        ``"bow"``: 200-d bag-of-visual-words counts (float64) from the LDA-C files.
    verify : bool, default=True
        Check the SHA-256 of every file read.

    Returns
    -------
    CrowdDataset
        ``annotations`` (1,000 items, 59 annotators, 2,547 labels), ``truth`` (1000,),
        ``features`` for "train" (1000, d), "valid" (500, d), "test" (1188, d),
        ``targets`` for "valid" (500,) and "test" (1188,).
    """
    if features not in ("vgg16avg", "bow"):
        raise ValueError(f"features must be 'vgg16avg' or 'bow', got {features!r}")
    read = ["answers.txt"] + [f"labels_{s}.txt" for s in _SPLITS] + ["filenames_train.txt"]
    if features == "bow":
        read += [f"data_{s}.txt" for s in _SPLITS]
    folder = locate("labelme", SOURCE, root, read, verify=verify)

    answers = np.loadtxt(folder / "answers.txt", dtype=np.int64, ndmin=2)
    if answers.shape[0] != _N["train"]:
        raise ValueError(f"{folder / 'answers.txt'} has {answers.shape[0]} rows, expected {_N['train']}")
    active = np.flatnonzero((answers >= 0).any(axis=0))
    # Only the observed entries are kept (this file is 1000 x 77, read once).
    rows, cols = np.nonzero(answers[:, active] >= 0)
    ann = Annotations(
        rows,
        cols,
        answers[:, active][rows, cols],
        n_items=_N["train"],
        n_annotators=len(active),
        n_classes=len(CLASSES),
        item_ids=(folder / "filenames_train.txt").read_text().split(),
        annotator_ids=active,
        classes=list(CLASSES),
    )
    labels = {s: _read_ints(folder / f"labels_{s}.txt") for s in _SPLITS}
    for s in _SPLITS:
        if len(labels[s]) != _N[s]:
            raise ValueError(f"{folder / f'labels_{s}.txt'} has {len(labels[s])} lines, expected {_N[s]}")

    feats: dict[str, np.ndarray[Any, Any]]
    if features == "bow":
        feats = {s: read_lda_c(folder / f"data_{s}.txt") for s in _SPLITS}
    else:
        vgg = locate("labelme", VGG_SOURCE, root, verify=verify)
        feats = {s: np.load(vgg / f"LabelMe_VGG_avg_{s}.npy", allow_pickle=False) for s in _SPLITS}
    for s in _SPLITS:
        if feats[s].shape[0] != _N[s]:
            raise ValueError(f"LabelMe {features} features for {s!r} have {feats[s].shape[0]} rows, expected {_N[s]}")
    return CrowdDataset(
        name="labelme",
        annotations=ann,
        truth=labels["train"],
        classes=CLASSES,
        features=feats,
        targets={"valid": labels["valid"], "test": labels["test"]},
        citation=CITATION,
        license=LICENSE,
    )


INFO = register(
    DatasetInfo(
        name="labelme",
        title="LabelMe scenes (MTurk)",
        task="8 scene classes",
        kind="crowd",
        n_items=1000,
        n_annotators=59,
        n_labels=2547,
        n_classes=8,
        features="512-d VGG16-avg or 200-d BoW; 500 valid, 1,188 test",
        truth="all 1,000",
        license=LICENSE,
        citation=CITATION,
        sources=(SOURCE,),
        optional_sources=(VGG_SOURCE,),
        loader=load_labelme,
    )
)
