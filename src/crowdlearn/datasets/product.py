"""Product: entity resolution of product records (CrowdER, Wang et al. 2012), as collected in the
truth-inference benchmark of Zheng et al. (PVLDB 2017)."""

from __future__ import annotations

import os

import pandas as pd

from crowdlearn.datasets._base import CrowdDataset, DatasetInfo, FileSpec, Source, github_raw, locate, register
from crowdlearn.datasets._tables import long_to_annotations, truth_from_pairs

_REPO = "zhydhkcws/crowd_truth_infer"
_COMMIT = "8d216471071f09b9e474ee19f8d692447f982f88"


def _url(name: str) -> str:
    return github_raw(_REPO, _COMMIT, "datasets/d_jn-product/" + name)


SOURCE = Source(
    folder="Product",
    files=(
        FileSpec(
            "answer.csv", "ca69e3f2cba3d6f9c3b3ecc2f8d2a81afcd747d0b91aa5ab18608a5715e26adc", 691172, _url("answer.csv")
        ),
        FileSpec(
            "truth.csv", "9a5757c726ef1a32b05f6a675924c483b24d602c61b1a2d087ab3d84f90b3766", 108084, _url("truth.csv")
        ),
    ),
    origin=f"github.com/{_REPO} @{_COMMIT[:7]}, datasets/d_jn-product/",
)
CITATION = (
    "Wang, Kraska, Franklin & Feng, 'CrowdER: Crowdsourcing Entity Resolution', PVLDB 2012; Zheng, Li, Li, Shan & "
    "Cheng, 'Truth Inference in Crowdsourcing: Is the Problem Solved?', PVLDB 10(5), 2017."
)
LICENSE = "none stated"
CLASSES = (0, 1)


def load_product(root: str | os.PathLike[str] | None = None, *, verify: bool = True) -> CrowdDataset:
    """Product record matching (binary: 1 = the two records describe the same product).

    8,315 items (``item_ids`` = question ids like ``"988_1500_0"``, sorted), 176 annotators
    (MTurk ids, sorted), 24,945 labels, classes ``("0", "1")``, truth for all items.
    """
    folder = locate("product", SOURCE, root, verify=verify)
    answers = pd.read_csv(folder / "answer.csv", dtype={"question": str, "worker": str})
    truth = pd.read_csv(folder / "truth.csv", dtype={"question": str})
    for path, df, cols in ((folder / "answer.csv", answers, ("question", "worker", "answer")),
                           (folder / "truth.csv", truth, ("question", "truth"))):  # fmt: skip
        if not set(cols) <= set(df.columns):
            raise ValueError(f"{path}: expected columns {list(cols)}, got {list(df.columns)}")
    ann = long_to_annotations(answers["question"], answers["worker"], answers["answer"].to_numpy(), classes=CLASSES)
    return CrowdDataset(
        name="product",
        annotations=ann,
        truth=truth_from_pairs(ann, truth["question"], truth["truth"].to_numpy(), source=folder / "truth.csv"),
        classes=tuple(str(c) for c in CLASSES),
        features={},
        targets={},
        citation=CITATION,
        license=LICENSE,
    )


INFO = register(
    DatasetInfo(
        name="product",
        title="Product (entity resolution)",
        task="binary record matching",
        kind="crowd",
        n_items=8315,
        n_annotators=176,
        n_labels=24945,
        n_classes=2,
        features="-",
        truth="all 8,315",
        license=LICENSE,
        citation=CITATION,
        sources=(SOURCE,),
        loader=load_product,
    )
)
