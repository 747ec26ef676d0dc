"""RTE and TEMP from Snow, O'Connor, Jurafsky & Ng (EMNLP 2008), ``*.standardized.tsv`` files.

Columns ``!amt_annotation_ids``, ``!amt_worker_ids``, ``orig_id``, ``response``, ``gold``.
Items are ``orig_id`` in sorted order, annotators the real AMT worker ids in sorted order,
classes the response values in sorted order.
"""

from __future__ import annotations

import os

import pandas as pd

from crowdlearn.datasets._base import CrowdDataset, DatasetInfo, FileSpec, Source, github_raw, locate, register
from crowdlearn.datasets._tables import long_to_annotations, truth_from_pairs

_REPO = "edwinrobots/bayesian_combination_tutorial2"
_COMMIT = "f98448e2e9a941463aa92f418eefd1f43bd5a637"
_ORIGIN = f"github.com/{_REPO} @{_COMMIT[:7]}, all_collected_data/"
CITATION = (
    "Snow, O'Connor, Jurafsky & Ng, 'Cheap and Fast - But is it Good? Evaluating Non-Expert Annotations for "
    "Natural Language Tasks', EMNLP 2008."
)
LICENSE = "none stated for the data (the repository is MIT-licensed)"


def _source(folder: str, file: str, sha256: str, size: int) -> Source:
    url = github_raw(_REPO, _COMMIT, "all_collected_data/" + file)
    return Source(folder=folder, files=(FileSpec(file, sha256, size, url),), origin=_ORIGIN)


RTE_SOURCE = _source(
    "RTE", "rte.standardized.tsv", "3187c5de59b9b9c596d490d25b5f5f108090a35cbdd10e81f21e6d1939d6ba79", 515468
)
TEMP_SOURCE = _source(
    "TEMP", "temp.standardized.tsv", "7f74de9f36a0d3dfdc1f51e6433526abfc788c616d0c2d04a96206780ac74860", 302152
)


def _load(
    name: str,
    source: Source,
    classes: tuple[int, ...],
    root: str | os.PathLike[str] | None,
    verify: bool,
    *,
    int_ids: bool,
) -> CrowdDataset:
    file = source.files[0].name
    folder = locate(name, source, root, verify=verify)
    path = folder / file
    df = pd.read_csv(path, sep="\t", dtype={"orig_id": str, "!amt_worker_ids": str})
    need = {"!amt_worker_ids", "orig_id", "response", "gold"}
    if not need <= set(df.columns):
        raise ValueError(f"{path}: missing columns {sorted(need - set(df.columns))}")
    items = df["orig_id"].astype(int if int_ids else str).to_numpy()
    ann = long_to_annotations(items, df["!amt_worker_ids"], df["response"].to_numpy(), classes=classes)
    truth = truth_from_pairs(ann, items, df["gold"].to_numpy(), source=path)
    return CrowdDataset(
        name=name,
        annotations=ann,
        truth=truth,
        classes=tuple(str(c) for c in classes),
        features={},
        targets={},
        citation=CITATION,
        license=LICENSE,
    )


def load_rte(root: str | os.PathLike[str] | None = None, *, verify: bool = True) -> CrowdDataset:
    """RTE-1 textual entailment judged on MTurk (binary).

    800 items (``item_ids`` = RTE-1 pair ids, int), 164 annotators (AMT worker ids), 8,000
    labels, classes ``("0", "1")`` (1 = the hypothesis is entailed), truth for all.
    Reads ``RTE/rte.standardized.tsv``.
    """
    return _load("rte", RTE_SOURCE, (0, 1), root, verify, int_ids=True)


def load_temp(root: str | os.PathLike[str] | None = None, *, verify: bool = True) -> CrowdDataset:
    """TEMP: temporal ordering of event pairs judged on MTurk (binary).

    462 items (``item_ids`` like ``"42_0"``), 76 annotators, 4,620 labels, classes
    ``("1", "2")`` (the file's values), truth for all.
    """
    return _load("temp", TEMP_SOURCE, (1, 2), root, verify, int_ids=False)


RTE_INFO = register(
    DatasetInfo(
        name="rte",
        title="RTE (textual entailment)",
        task="binary textual entailment",
        kind="crowd",
        n_items=800,
        n_annotators=164,
        n_labels=8000,
        n_classes=2,
        features="-",
        truth="all 800",
        license=LICENSE,
        citation=CITATION,
        sources=(RTE_SOURCE,),
        loader=load_rte,
    )
)
TEMP_INFO = register(
    DatasetInfo(
        name="temp",
        title="TEMP (temporal ordering)",
        task="binary temporal ordering",
        kind="crowd",
        n_items=462,
        n_annotators=76,
        n_labels=4620,
        n_classes=2,
        features="-",
        truth="all 462",
        license=LICENSE,
        citation=CITATION,
        sources=(TEMP_SOURCE,),
        loader=load_temp,
    )
)
