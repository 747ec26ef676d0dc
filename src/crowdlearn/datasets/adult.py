"""AdultContent2: website adult-content rating on MTurk (Ipeirotis, Provost & Wang, HCOMP 2010)."""

from __future__ import annotations

import os

import pandas as pd

from crowdlearn.annotations import OnDuplicate
from crowdlearn.datasets._base import CrowdDataset, DatasetInfo, FileSpec, Source, github_raw, locate, register
from crowdlearn.datasets._tables import long_to_annotations, truth_from_pairs

_REPO = "ipeirotis/Get-Another-Label"
_COMMIT = "9fe6c56a7a157dba1a12018f696bad56806125b7"


def _url(name: str) -> str:
    return github_raw(_REPO, _COMMIT, "data/AdultContent2/" + name)


SOURCE = Source(
    folder="AdultContent2",
    files=(
        FileSpec(
            "labels.txt",
            "9584f9d0eda4ede1bce503539c751179a32362240b92e55400f0e2ded8f7468c",
            3592352,
            _url("labels.txt"),
        ),
        FileSpec(
            "gold.txt", "7b2417f4f8568426767139400d827e0be303c7f6f82126bf58a8febeb33f3949", 62239, _url("gold.txt")
        ),
    ),
    origin=f"github.com/{_REPO} @{_COMMIT[:7]}, data/AdultContent2/",
)
CITATION = (
    "Ipeirotis, Provost & Wang, 'Quality management on Amazon Mechanical Turk', HCOMP 2010; used as S_Adult in "
    "Zheng, Li, Li, Shan & Cheng, PVLDB 10(5), 2017."
)
LICENSE = "none stated for the data (the repository is Apache-2.0)"
#: Ratings in class-index order: G (general audience), P (parental guidance), R (restricted), X (porn).
#: ``categories.txt`` also lists B, which never occurs, so it is not a class here.
CLASSES = ("G", "P", "R", "X")
#: Label rows in ``labels.txt``, of which 2,922 repeat an earlier (worker, url) pair.
N_ROWS = 92721


def load_adultcontent2(
    root: str | os.PathLike[str] | None = None, *, on_duplicate: OnDuplicate = "first", verify: bool = True
) -> CrowdDataset:
    """AdultContent2: 4-level adult-content rating of websites.

    11,040 items (urls, sorted), 825 annotators (worker ids, sorted), classes G, P, R, X.
    ``labels.txt`` has 92,721 rows, but 2,922 of them repeat a (worker, url) pair already seen
    (149 of those with a different label); :class:`Annotations` holds one label per pair, so
    ``on_duplicate`` chooses which one ("first" by default, or "last"; "error" refuses the
    file). With "first" or "last" the result has 89,799 labels.
    Truth comes from ``gold.txt`` for the 333 gold urls that were labelled (``-1`` elsewhere);
    its other 1,184 urls have no crowd label and are not items.
    """
    folder = locate("adultcontent2", SOURCE, root, verify=verify)
    labels = pd.read_csv(folder / "labels.txt", sep="\t", header=None, names=["worker", "url", "label"], dtype=str)
    gold = pd.read_csv(folder / "gold.txt", sep="\t", header=None, names=["url", "label"], dtype=str)
    ann = long_to_annotations(
        labels["url"], labels["worker"], labels["label"], classes=CLASSES, on_duplicate=on_duplicate
    )
    truth = truth_from_pairs(ann, gold["url"], gold["label"], source=folder / "gold.txt", keep_unknown_items=True)
    return CrowdDataset(
        name="adultcontent2",
        annotations=ann,
        truth=truth,
        classes=CLASSES,
        features={},
        targets={},
        citation=CITATION,
        license=LICENSE,
    )


INFO = register(
    DatasetInfo(
        name="adultcontent2",
        title="AdultContent2 (website rating)",
        task="4 content ratings",
        kind="crowd",
        n_items=11040,
        n_annotators=825,
        n_labels=N_ROWS - 2922,
        n_classes=4,
        features="-",
        truth="333 items",
        license=LICENSE,
        citation=CITATION,
        sources=(SOURCE,),
        loader=load_adultcontent2,
        aliases=("adult", "adultcontent"),
    )
)
