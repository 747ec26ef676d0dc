"""Music genre (GTZAN clips, 10 genres, 44 MTurk annotators; Rodrigues et al. 2013)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from crowdlearn.annotations import Annotations
from crowdlearn.datasets._base import CrowdDataset, DatasetInfo, FileSpec, Source, github_raw, locate, register

_REPO = "shahanaibrahimosu/end-to-end-crowdsourcing"
_COMMIT = "7653680c475ba8faa5d4a7b104b42a2a5204cef9"


def _url(name: str) -> str:
    return github_raw(_REPO, _COMMIT, "data/Music/" + name)


SOURCE = Source(
    folder="Music",
    files=(
        FileSpec(
            "music_genre_gold.csv",
            "28cd73e9bf555e5847de0b0fc4c4998264d4a272d657c452edf2c93c206bda64",
            802222,
            _url("music_genre_gold.csv"),
        ),
        FileSpec(
            "music_genre_test.csv",
            "952b423483bef4e0aa38b628815232b600a745d028fc8dfe8addd49e616931b8",
            344469,
            _url("music_genre_test.csv"),
        ),
        FileSpec(
            "music_genre_mturk.csv",
            "20abf70b06d77653742125d8ae57a6b46d3e6d5e0291de4fc9c76d433cd9b834",
            3413459,
            _url("music_genre_mturk.csv"),
        ),
    ),
    origin="github.com/shahanaibrahimosu/end-to-end-crowdsourcing @7653680, data/Music/",
)

#: Genre names in class-index order (alphabetical, as the official loader maps them).
CLASSES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")

CITATION = (
    "Rodrigues, Pereira & Ribeiro, 'Learning from multiple annotators: distinguishing good from random labelers', "
    "Pattern Recognition Letters 34(12), 2013; Tzanetakis & Cook, 'Musical genre classification of audio signals', "
    "IEEE TSAP 2002 (GTZAN); setup of Ibrahim, Nguyen & Fu, 'Deep Learning From Crowdsourced Labels: Coupled "
    "Cross-entropy Minimization, Identifiability, and Regularization', ICLR 2023."
)
LICENSE = "none stated"


def load_music(root: str | os.PathLike[str] | None = None, *, verify: bool = True) -> CrowdDataset:
    """Music genre classification from 44 MTurk annotators.

    Items are the 700 songs of ``music_genre_gold.csv`` (in file order; ``item_ids`` are song
    file names); annotators are the 44 AMT worker ids in ``np.unique`` order, as the official
    loader orders them; classes are the 10 genres in alphabetical order.

    Features follow the ICLR 2023 code: the 124 Marsyas features are standardized with the mean
    and (population) standard deviation of the 700 training items (std 0 -> 1); the 300 test
    items use the same training statistics.

    Returns
    -------
    CrowdDataset
        ``annotations`` (700 items, 44 annotators, 2,945 labels), ``truth`` (700,),
        ``features["train"]`` (700, 124) and ``features["test"]`` (300, 124) float64,
        ``targets["test"]`` (300,).
    """
    folder = locate("music", SOURCE, root, verify=verify)
    gold = pd.read_csv(folder / "music_genre_gold.csv")
    test = pd.read_csv(folder / "music_genre_test.csv")
    crowd = pd.read_csv(folder / "music_genre_mturk.csv", usecols=["id", "annotator", "class"])
    feature_cols = [c for c in gold.columns if c.startswith("feature")]

    x_train = gold[feature_cols].to_numpy(dtype=np.float64)
    x_test = test[feature_cols].to_numpy(dtype=np.float64)
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std[std == 0] = 1.0
    classes = list(CLASSES)
    ann = Annotations.from_ids(
        crowd["id"],
        crowd["annotator"],
        crowd["class"],
        classes=classes,
        item_ids=gold["id"].tolist(),
        annotator_ids=np.unique(crowd["annotator"].to_numpy(dtype=str)).tolist(),
    )
    lookup = {c: i for i, c in enumerate(classes)}
    truth = np.asarray(gold["class"].map(lookup), dtype=np.int64)
    test_y = np.asarray(test["class"].map(lookup), dtype=np.int64)
    return CrowdDataset(
        name="music",
        annotations=ann,
        truth=truth,
        classes=CLASSES,
        features={"train": (x_train - mean) / std, "test": (x_test - mean) / std},
        targets={"test": test_y},
        citation=CITATION,
        license=LICENSE,
    )


INFO = register(
    DatasetInfo(
        name="music",
        title="Music genre (MTurk)",
        task="10 music genres",
        kind="crowd",
        n_items=700,
        n_annotators=44,
        n_labels=2945,
        n_classes=10,
        features="124 audio features; 300 test items",
        truth="all 700",
        license=LICENSE,
        citation=CITATION,
        sources=(SOURCE,),
        loader=load_music,
    )
)
