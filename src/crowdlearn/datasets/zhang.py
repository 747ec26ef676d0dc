"""Bluebirds, Dog and TREC relevance as released with Zhang, Chen, Zhou & Jordan (NIPS 2014).

Files ``<name>_crowd.txt`` (``item worker label`` per line) and ``<name>_truth.txt``
(``item label``), whitespace-separated 1-based ints. ``item_ids`` and ``annotator_ids`` are
those ints; classes are the label values in sorted order.
"""

from __future__ import annotations

import os

import numpy as np

from crowdlearn.datasets._base import CrowdDataset, DatasetInfo, FileSpec, Source, github_raw, locate, register
from crowdlearn.datasets._tables import long_to_annotations, truth_from_pairs

_REPO = "zhangyuc/SpectralMethodsMeetEM"
_COMMIT = "6204f5fcab1766cb1b2c40fc1bff53b1613ddc6c"
_ORIGIN = f"github.com/{_REPO} @{_COMMIT[:7]}, src/"
_RELEASE = (
    "Released with: Zhang, Chen, Zhou & Jordan, 'Spectral Methods Meet EM: A Provably Optimal Algorithm for "
    "Crowdsourcing', NIPS 2014 / JMLR 2016."
)
LICENSE = "none stated"


def _source(folder: str, prefix: str, crowd: tuple[str, int], truth: tuple[str, int]) -> Source:
    files = (
        FileSpec(f"{prefix}_crowd.txt", crowd[0], crowd[1], github_raw(_REPO, _COMMIT, f"src/{prefix}_crowd.txt")),
        FileSpec(f"{prefix}_truth.txt", truth[0], truth[1], github_raw(_REPO, _COMMIT, f"src/{prefix}_truth.txt")),
    )
    return Source(folder=folder, files=files, origin=_ORIGIN)


BLUEBIRDS_SOURCE = _source(
    "Bluebirds",
    "bluebird",
    ("a63231e23dc02d0873d76669684812f9bad53a73f0580f43f4295175987f347e", 36934),
    ("690660bf75f24d052bec3bb55bb8dc5f7ebdadbaf36de5db9a031221f2db2ce3", 646),
)
DOG_SOURCE = _source(
    "Dog",
    "dog",
    ("1b5c88e0e6c08b8bcfb27be2c43093af06a0d649edc6a65ad719d5204b894b24", 70284),
    ("e1378e027b6e51b664b0c75a61e638d71bbede890cd4af2a2c4dae3718596d24", 47340),
)
TREC_SOURCE = _source(
    "TREC-relevance",
    "trec",
    ("821141b1e95b1ff516ebccf6869f2ac88ca93035d6991b8039d76275866de402", 959028),
    ("405b4ff78e79b912252f19ff68116e71abe3a21c2051c7c701e7a16acbeae3e4", 16833),
)

BLUEBIRDS_CITATION = (
    "Welinder, Branson, Belongie & Perona, 'The Multidimensional Wisdom of Crowds', NIPS 2010. " + _RELEASE
)
DOG_CITATION = (
    "Zhou, Platt, Basu & Mao, 'Learning from the Wisdom of Crowds by Minimax Entropy', NIPS 2012. " + _RELEASE
)
TREC_CITATION = "Lease & Kazai, 'Overview of the TREC 2011 Crowdsourcing Track', TREC 2011. " + _RELEASE


def _load(
    name: str,
    source: Source,
    prefix: str,
    classes: tuple[int, ...],
    citation: str,
    root: str | os.PathLike[str] | None,
    verify: bool,
) -> CrowdDataset:
    folder = locate(name, source, root, verify=verify)
    crowd_path = folder / f"{prefix}_crowd.txt"
    truth_path = folder / f"{prefix}_truth.txt"
    crowd = np.loadtxt(crowd_path, dtype=np.int64, ndmin=2)
    truth = np.loadtxt(truth_path, dtype=np.int64, ndmin=2)
    if crowd.shape[1] != 3 or truth.shape[1] != 2:
        raise ValueError(f"{crowd_path} needs 3 columns (item worker label) and {truth_path} 2 (item label)")
    n_items = int(crowd[:, 0].max())
    ann = long_to_annotations(
        crowd[:, 0], crowd[:, 1], crowd[:, 2], classes=classes, item_ids=np.arange(1, n_items + 1)
    )
    return CrowdDataset(
        name=name,
        annotations=ann,
        truth=truth_from_pairs(ann, truth[:, 0], truth[:, 1], source=truth_path),
        classes=tuple(str(c) for c in classes),
        features={},
        targets={},
        citation=citation,
        license=LICENSE,
    )


def load_bluebirds(root: str | os.PathLike[str] | None = None, *, verify: bool = True) -> CrowdDataset:
    """Bluebirds: is the bird an Indigo Bunting or a Blue Grosbeak (Welinder et al. 2010).

    108 items, 39 annotators, 4,212 labels (dense), classes ``("1", "2")`` (the file's label
    values), truth for all items; no features.
    """
    return _load("bluebirds", BLUEBIRDS_SOURCE, "bluebird", (1, 2), BLUEBIRDS_CITATION, root, verify)


def load_dog(root: str | os.PathLike[str] | None = None, *, verify: bool = True) -> CrowdDataset:
    """Dog: 4 dog breeds from ImageNet (Zhou et al. 2012).

    807 items, 109 annotators, 8,070 labels, classes ``("1", "2", "3", "4")``, truth for all.
    """
    return _load("dog", DOG_SOURCE, "dog", (1, 2, 3, 4), DOG_CITATION, root, verify)


def load_trec(root: str | os.PathLike[str] | None = None, *, verify: bool = True) -> CrowdDataset:
    """TREC 2011 Crowdsourcing Track document relevance (binary), large and sparse.

    19,033 items, 762 annotators, 88,385 labels, classes ``("1", "2")``, truth for 2,275 items
    only (``truth == -1`` elsewhere).
    """
    return _load("trec-relevance", TREC_SOURCE, "trec", (1, 2), TREC_CITATION, root, verify)


def _info(name: str, title: str, task: str, counts: tuple[int, int, int, int], **kw: object) -> DatasetInfo:
    return DatasetInfo(
        name=name,
        title=title,
        task=task,
        kind="crowd",
        n_items=counts[0],
        n_annotators=counts[1],
        n_labels=counts[2],
        n_classes=counts[3],
        features="-",
        license=LICENSE,
        **kw,  # type: ignore[arg-type]
    )


BLUEBIRDS_INFO = register(
    _info(
        "bluebirds",
        "Bluebirds",
        "binary bird species",
        (108, 39, 4212, 2),
        truth="all 108",
        citation=BLUEBIRDS_CITATION,
        sources=(BLUEBIRDS_SOURCE,),
        loader=load_bluebirds,
    )
)
DOG_INFO = register(
    _info(
        "dog",
        "Dog",
        "4 dog breeds",
        (807, 109, 8070, 4),
        truth="all 807",
        citation=DOG_CITATION,
        sources=(DOG_SOURCE,),
        loader=load_dog,
    )
)
TREC_INFO = register(
    _info(
        "trec-relevance",
        "TREC 2011 relevance",
        "binary document relevance",
        (19033, 762, 88385, 2),
        truth="2,275 items",
        citation=TREC_CITATION,
        sources=(TREC_SOURCE,),
        loader=load_trec,
        aliases=("trec",),
    )
)
