"""Loaders of public crowdsourcing benchmarks: one call from the files to :class:`Annotations`,
truth and features.

Files are read from ``root/<Folder>/`` where ``root`` is the ``root`` argument, else the
``CROWDLEARN_DATA`` environment variable, else the per-user cache folder
(``$XDG_CACHE_HOME/crowdlearn`` or ``~/.cache/crowdlearn``). Every file's SHA-256 is checked
on load; ``crowdlearn datasets download NAME`` fetches the files where a public address exists.
See docs/datasets.md for the table of datasets, their class orders and citations.
"""

from crowdlearn.datasets._base import (
    ENV_DATA,
    ChecksumError,
    CrowdDataset,
    DatasetInfo,
    DatasetNotFoundError,
    DownloadError,
    cache_dir,
    data_root,
    download,
    get_info,
    list_datasets,
    load_dataset,
    present,
    registry,
)
from crowdlearn.datasets.adult import load_adultcontent2
from crowdlearn.datasets.cifar import SoftLabels, load_cifar10h, load_cifar10n
from crowdlearn.datasets.images import ImageDataset, as_torch_dataset, load_cifar10, load_fashion_mnist, load_mnist
from crowdlearn.datasets.labelme import load_labelme
from crowdlearn.datasets.music import load_music
from crowdlearn.datasets.product import load_product
from crowdlearn.datasets.snow import load_rte, load_temp
from crowdlearn.datasets.zhang import load_bluebirds, load_dog, load_trec

__all__ = [
    "ENV_DATA",
    "ChecksumError",
    "CrowdDataset",
    "DatasetInfo",
    "DatasetNotFoundError",
    "DownloadError",
    "ImageDataset",
    "SoftLabels",
    "as_torch_dataset",
    "cache_dir",
    "data_root",
    "download",
    "get_info",
    "list_datasets",
    "load_adultcontent2",
    "load_bluebirds",
    "load_cifar10",
    "load_cifar10h",
    "load_cifar10n",
    "load_dataset",
    "load_dog",
    "load_fashion_mnist",
    "load_labelme",
    "load_mnist",
    "load_music",
    "load_product",
    "load_rte",
    "load_temp",
    "load_trec",
    "present",
    "registry",
]
