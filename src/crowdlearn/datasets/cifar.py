"""CIFAR-10N (crowd labels of the CIFAR-10 training set), CIFAR-10H (soft labels of the test set)
and the CIFAR-10 images from a JPEG copy."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from crowdlearn.annotations import Annotations
from crowdlearn.datasets._base import (
    CrowdDataset,
    DatasetInfo,
    FileSpec,
    IntArray,
    Source,
    github_raw,
    locate,
    register,
)
from crowdlearn.datasets.images import CIFAR10_CLASSES, CIFAR10_SOURCE, cifar10_train_in_original_order, load_cifar10

#: CIFAR-10 class names in class-index order.
CLASSES = CIFAR10_CLASSES
N_TRAIN = 50000

_N_REPO = "UCSC-REAL/cifar-10-100n"
_N_COMMIT = "49df7d8a69e355470c77c1c2f2424916325a394b"
CIFAR10N_SOURCE = Source(
    folder="CIFAR-10N",
    files=(
        FileSpec("cifar10n_labels.npz", "6024485a143efa682792c21d7f2adfdef5a374dce699bb2fcd4d62cd55cc4852", 149520),
    ),
    origin=f"github.com/{_N_REPO} @{_N_COMMIT[:7]}",
    manual=(
        "cifar10n_labels.npz is a pickle-free copy of the six arrays of data/CIFAR-10_human.pt in "
        f"{github_raw(_N_REPO, _N_COMMIT, 'data/CIFAR-10_human.pt')} (numpy uint8 arrays clean_label, aggre_label, "
        "worse_label, random_label1, random_label2, random_label3, shape (50000,)); save them with numpy.savez"
    ),
)
#: The MTurk side information: worker ids (and work times) of every batch of 10 images.
CIFAR10N_SIDE_SOURCE = Source(
    folder="CIFAR-10N",
    files=(
        FileSpec(
            "side_info_cifar10N.csv",
            "50fcbe619a003d0b804a20ece51447dcdb48978c60e1202371d08302b2e14351",
            170902,
            github_raw(_N_REPO, _N_COMMIT, "side_info_cifar10N.csv"),
        ),
    ),
    origin=f"github.com/{_N_REPO} @{_N_COMMIT[:7]}",
)
#: Distinct MTurk workers in the side information.
N_WORKERS = 747
CIFAR10N_CITATION = (
    "Wei, Zhu, Cheng, Liu, Niu & Liu, 'Learning with Noisy Labels Revisited: A Study Using Real-World Human "
    "Annotations', ICLR 2022; Krizhevsky, 'Learning Multiple Layers of Features from Tiny Images', 2009."
)
CIFAR10N_LICENSE = "CC BY-NC 4.0 (labels)"
_N_ARRAYS = ("clean_label", "aggre_label", "worse_label", "random_label1", "random_label2", "random_label3")


def _cifar10n_arrays(root: str | os.PathLike[str] | None, verify: bool) -> dict[str, np.ndarray[Any, Any]]:
    folder = locate("cifar10n", CIFAR10N_SOURCE, root, verify=verify)
    path = folder / "cifar10n_labels.npz"
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in _N_ARRAYS if k not in z.files]
        if missing:
            raise ValueError(f"{path} lacks arrays {missing}")
        out = {k: np.asarray(z[k], dtype=np.int64) for k in _N_ARRAYS}
    for k, v in out.items():
        if v.shape != (N_TRAIN,) or v.min() < 0 or v.max() >= len(CLASSES):
            raise ValueError(f"{path}: {k} must have shape ({N_TRAIN},) with values 0..9, got {v.shape}")
    return out


def cifar10n_workers(root: str | os.PathLike[str] | None = None, *, verify: bool = True) -> IntArray:
    """MTurk worker id of every (image, column) of CIFAR-10N, shape (50000, 3), int64.

    From ``side_info_cifar10N.csv``: row ``r`` covers images ``10 r .. 10 r + 9`` and gives
    ``Worker{j}-id``; entry ``[i, j - 1]`` is that id for image ``i``. That ``Worker{j}-id``
    gave ``random_label{j}`` is an assumption (the release does not say so; see SOURCE.md).
    """
    folder = locate("cifar10n", CIFAR10N_SIDE_SOURCE, root, verify=verify)
    path = folder / "side_info_cifar10N.csv"
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    cols = ("Worker1-id", "Worker2-id", "Worker3-id")
    if len(rows) != N_TRAIN // 10 or any(c not in rows[0] for c in cols):
        raise ValueError(f"{path} must have {N_TRAIN // 10} rows with columns {cols}, got {len(rows)} rows")
    out = np.empty((N_TRAIN // 10, 3), dtype=np.int64)
    for r, row in enumerate(rows):
        want = f"{10 * r}--{10 * r + 9}"
        if row["Image-batch"] != want:
            raise ValueError(f"{path}: row {r + 1} has Image-batch {row['Image-batch']!r}, expected {want!r}")
        out[r] = [int(row[c]) for c in cols]
    return np.repeat(out, 10, axis=0)


CIFAR10N_LABELS = ("all", "worse", "aggre")


def load_cifar10n(
    root: str | os.PathLike[str] | None = None,
    *,
    images: bool = False,
    annotators: Literal["columns", "workers"] = "columns",
    labels: Literal["all", "worse", "aggre"] = "all",
    verify: bool = True,
) -> CrowdDataset:
    """CIFAR-10N: three MTurk labels for each of the 50,000 CIFAR-10 training images.

    Items are the training images in the original (python-version / torchvision) order,
    ``item_ids`` 0..49999. By default the three ``random_label{1,2,3}`` columns are three
    anonymous annotators ``"random_label1"``, ``"random_label2"``, ``"random_label3"`` (the
    release does not establish which MTurk worker gave which column; see its SOURCE.md), so
    every item has 3 labels. ``truth`` is ``clean_label``. Classes: airplane .. truck.

    Parameters
    ----------
    root : path, optional
        Data root holding ``CIFAR-10N/`` (and ``CIFAR-10-jpeg/`` with ``images=True``).
    annotators : {"columns", "workers"}, default="columns"
        ``"workers"``: the annotators are the 747 MTurk workers of the side information
        (:func:`cifar10n_workers`; ``annotator_ids`` are their integer ids, sorted), assuming
        ``Worker{j}-id`` gave ``random_label{j}``.
    labels : {"all", "worse", "aggre"}, default="all"
        ``"all"``: the three labels per image. ``"worse"``: one label per image, ``worse_label``
        (a wrong label when any annotator erred), given to the first column (or its worker)
        whose label it is. ``"aggre"``: one label per image, the majority vote ``aggre_label``,
        by one pseudo-annotator ``"aggre"`` (``annotators`` is then ignored).
    images : bool, default=False
        Also return pixels: ``features["train"]`` (50000, 32, 32, 3) uint8 in item order and
        ``features["test"]`` (10000, 32, 32, 3) with ``targets["test"]`` (10000,), decoded once
        from ``CIFAR-10-jpeg/cifar10_jpg.zip`` (a lossy JPEG copy; needs Pillow) and cached. The
        training images are attached by the rule given with that copy: the k-th file of class c
        is the k-th image of class c (by ``clean_label``) in the original order (supported by a
        statistical check, not documented upstream). The test images are in folder order, not
        the original test order.
    verify : bool, default=True
        Check the SHA-256 of every file read.

    """
    if annotators not in ("columns", "workers"):
        raise ValueError(f"annotators must be 'columns' or 'workers', got {annotators!r}")
    if labels not in CIFAR10N_LABELS:
        raise ValueError(f"labels must be one of {CIFAR10N_LABELS}, got {labels!r}")
    arrays = _cifar10n_arrays(root, verify)
    n = N_TRAIN
    given = np.stack([arrays[f"random_label{j}"] for j in (1, 2, 3)], axis=1)  # (n, 3)
    who: np.ndarray[Any, Any] = np.broadcast_to(np.arange(3, dtype=np.int64), (n, 3))
    ids: list[Any] = ["random_label1", "random_label2", "random_label3"]
    if annotators == "workers" and labels != "aggre":
        workers = cifar10n_workers(root, verify=verify)
        uniq, who = np.unique(workers, return_inverse=True)
        who = who.reshape(n, 3)
        ids = [int(v) for v in uniq]
    if labels == "all":
        items = np.tile(np.arange(n, dtype=np.int64), 3)
        ann_of = who.T.reshape(-1)
        lab = given.T.reshape(-1)
    elif labels == "worse":
        worse = arrays["worse_label"]
        match = given == worse[:, None]
        if not match.any(axis=1).all():
            bad = int(np.flatnonzero(~match.any(axis=1))[0])
            raise ValueError(f"worse_label of image {bad} ({worse[bad]}) is none of its three labels {given[bad]}")
        col = match.argmax(axis=1)
        items = np.arange(n, dtype=np.int64)
        ann_of = who[items, col]
        lab = worse
    else:
        items = np.arange(n, dtype=np.int64)
        ann_of = np.zeros(n, dtype=np.int64)
        lab = arrays["aggre_label"]
        ids = ["aggre"]
    ann = Annotations(
        items,
        np.ascontiguousarray(ann_of, dtype=np.int64),
        np.ascontiguousarray(lab, dtype=np.int64),
        n_items=n,
        n_annotators=len(ids),
        n_classes=len(CLASSES),
        item_ids=np.arange(n),
        annotator_ids=ids,
        classes=list(CLASSES),
    )
    features: dict[str, np.ndarray[Any, Any]] = {}
    targets: dict[str, IntArray] = {}
    if images:
        jpeg = load_cifar10(root, verify=verify)
        features["train"] = cifar10_train_in_original_order(jpeg, arrays["clean_label"])
        features["test"] = jpeg.images["test"]
        targets["test"] = jpeg.labels["test"]
    return CrowdDataset(
        name="cifar10n",
        annotations=ann,
        truth=arrays["clean_label"],
        classes=CLASSES,
        features=features,
        targets=targets,
        citation=CIFAR10N_CITATION,
        license=CIFAR10N_LICENSE,
    )


CIFAR10N_INFO = register(
    DatasetInfo(
        name="cifar10n",
        title="CIFAR-10N (MTurk)",
        task="10 CIFAR-10 classes",
        kind="crowd",
        n_items=N_TRAIN,
        n_annotators=3,
        n_labels=3 * N_TRAIN,
        n_classes=10,
        features="32x32 RGB (images=True, from CIFAR-10-jpeg); 10,000 test",
        truth="all 50,000 (clean_label)",
        license=CIFAR10N_LICENSE,
        citation=CIFAR10N_CITATION,
        sources=(CIFAR10N_SOURCE,),
        optional_sources=(CIFAR10_SOURCE, CIFAR10N_SIDE_SOURCE),
        loader=load_cifar10n,
        aliases=("cifar-10n",),
    )
)


# ---------------------------------------------------------------------------------------------
# CIFAR-10H
_H_REPO = "jcpeterson/cifar-10h"
_H_COMMIT = "48da312b193b82e6939ec20f23d1f09cbdd849c8"
CIFAR10H_SOURCE = Source(
    folder="CIFAR-10H",
    files=(
        FileSpec(
            "cifar10h-counts.npy",
            "9b36b4550349af56c79083356312eb4af856cc5fd3caf1f669d40b9d0bbb69ff",
            800128,
            github_raw(_H_REPO, _H_COMMIT, "data/cifar10h-counts.npy"),
        ),
        FileSpec(
            "cifar10h-probs.npy",
            "436ae98620e00073f9d08585ac870573b588853e7af9f54eb1647408114af77d",
            800128,
            github_raw(_H_REPO, _H_COMMIT, "data/cifar10h-probs.npy"),
        ),
    ),
    origin=f"github.com/{_H_REPO} @{_H_COMMIT[:7]}, data/",
)
CIFAR10H_CITATION = (
    "Peterson, Battleday, Griffiths & Russakovsky, 'Human uncertainty makes classification more robust', ICCV 2019."
)
CIFAR10H_LICENSE = "CC BY-NC-SA 4.0"


@dataclass(frozen=True)
class SoftLabels:
    """Aggregate human label distributions (no per-annotator labels, no pixels).

    Attributes
    ----------
    name : str
        Registry name.
    counts : ndarray of shape (n_items, n_classes), int64
        How many annotators chose each class.
    probs : ndarray of shape (n_items, n_classes), float64
        ``counts`` normalised per row (the soft labels).
    classes : tuple of str
        Class names in column order.
    citation, license : str
        Provenance.
    """

    name: str
    counts: IntArray
    probs: npt.NDArray[np.float64]
    classes: tuple[str, ...]
    citation: str
    license: str


def load_cifar10h(root: str | os.PathLike[str] | None = None, *, verify: bool = True) -> SoftLabels:
    """CIFAR-10H: human label counts for the 10,000 CIFAR-10 test images.

    Only aggregate counts were released with the repository snapshot (the per-annotator file
    is not available), so this returns :class:`SoftLabels` rather than :class:`Annotations`:
    ``counts`` (10000, 10) int64 (47..63 annotators per image) and ``probs`` (10000, 10), rows
    in the original CIFAR-10 test order. They cannot be joined to the JPEG copy's test images,
    whose original order is unknown.
    """
    folder = locate("cifar10h", CIFAR10H_SOURCE, root, verify=verify)
    counts = np.asarray(np.load(folder / "cifar10h-counts.npy", allow_pickle=False), dtype=np.int64)
    probs = np.asarray(np.load(folder / "cifar10h-probs.npy", allow_pickle=False), dtype=np.float64)
    if counts.shape != (10000, len(CLASSES)) or probs.shape != counts.shape:
        raise ValueError(f"CIFAR-10H arrays must have shape (10000, 10), got {counts.shape} and {probs.shape}")
    return SoftLabels("cifar10h", counts, probs, CLASSES, CIFAR10H_CITATION, CIFAR10H_LICENSE)


CIFAR10H_INFO = register(
    DatasetInfo(
        name="cifar10h",
        title="CIFAR-10H (soft labels)",
        task="10 CIFAR-10 classes, test set",
        kind="soft",
        n_items=10000,
        n_annotators=None,
        n_labels=None,
        n_classes=10,
        features="- (counts only)",
        truth="-",
        license=CIFAR10H_LICENSE,
        citation=CIFAR10H_CITATION,
        sources=(CIFAR10H_SOURCE,),
        loader=load_cifar10h,
        aliases=("cifar-10h",),
    )
)
