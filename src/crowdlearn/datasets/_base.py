"""Shared machinery of the dataset loaders: the result type, the registry, where files live,
checksums and downloads.

A dataset is made of one or more *sources*: a folder under the data root (named as in
``shared/data``, e.g. ``root/"Music"``) holding files with known SHA-256 checksums and, where
one exists, a public download address per file.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from crowdlearn.annotations import Annotations
from crowdlearn.io import atomic_write

#: Environment variable naming the data root.
ENV_DATA = "CROWDLEARN_DATA"
#: Environment variable overriding the per-user cache folder (decoded images).
ENV_CACHE = "CROWDLEARN_CACHE"

IntArray = npt.NDArray[np.int64]


# ---------------------------------------------------------------------------------------------
# results and errors
@dataclass(frozen=True)
class CrowdDataset:
    """A crowdsourced dataset: crowd labels, known truth, inputs per split, provenance.

    Attributes
    ----------
    name : str
        Registry name (``"music"``, ``"labelme"``, ...).
    annotations : Annotations
        Crowd labels; its items are the crowd-labelled (training) items.
    truth : ndarray of shape (annotations.n_items,), int64
        True class index per item, ``-1`` where unknown.
    classes : tuple of str
        Class names in class-index order.
    features : dict of str to ndarray
        Split name -> inputs, shape ``(n_split, ...)``. ``"train"`` rows are aligned with the
        items of ``annotations``. Empty when the dataset has no inputs.
    targets : dict of str to ndarray
        Split name -> ``(n_split,)`` int64 true class indices of the held-out splits
        (``"valid"``, ``"test"``, ...).
    citation : str
        Whom to cite.
    license : str
        License as stated by the source (often none).
    """

    name: str
    annotations: Annotations
    truth: IntArray
    classes: tuple[str, ...]
    features: dict[str, np.ndarray[Any, Any]]
    targets: dict[str, IntArray]
    citation: str
    license: str

    @property
    def has_truth(self) -> npt.NDArray[np.bool_]:
        """Boolean mask of shape (n_items,): items whose true class is known."""
        return np.asarray(self.truth >= 0)

    def __repr__(self) -> str:
        feats = ", ".join(f"{k}: {tuple(v.shape)}" for k, v in self.features.items()) or "none"
        return (
            f"CrowdDataset(name={self.name!r}, items={self.annotations.n_items}, "
            f"annotators={self.annotations.n_annotators}, labels={self.annotations.n_labels}, "
            f"classes={len(self.classes)}, truth={int(self.has_truth.sum())}, features={{{feats}}})"
        )


class DatasetNotFoundError(FileNotFoundError):
    """A dataset folder or one of its files is missing under the data root."""


class ChecksumError(ValueError):
    """A dataset file does not have the recorded SHA-256 checksum."""


class DownloadError(OSError):
    """A dataset file could not be fetched (no network, no public address, HTTP error)."""


# ---------------------------------------------------------------------------------------------
# registry records
def github_raw(repo: str, commit: str, path: str) -> str:
    """Public raw-file address of ``path`` in GitHub repository ``repo`` at ``commit``."""
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"


@dataclass(frozen=True)
class FileSpec:
    """One file of a source folder.

    ``sha256`` is the checksum of the file's bytes, or of its decompressed bytes when
    ``gunzip_checksum`` is true (so that re-compressed copies of the same content verify).
    ``url`` is a public address of exactly this content, ``None`` when there is none.
    ``unpack`` says the download is an archive to extract into the folder.
    """

    name: str
    sha256: str
    size: int
    url: str | None = None
    gunzip_checksum: bool = False
    unpack: bool = False


@dataclass(frozen=True)
class Source:
    """A folder of files under the data root (``root / folder``)."""

    folder: str
    files: tuple[FileSpec, ...]
    origin: str
    manual: str = ""
    #: A system-wide copy used when no root is given and the data root lacks the folder.
    fallback: Path | None = None

    def folder_under(self, root: str | os.PathLike[str] | None) -> Path:
        """``data_root(root) / folder``, or ``fallback`` when no root is given and only it exists."""
        own = data_root(root) / self.folder
        if root is None and self.fallback is not None and not own.is_dir() and self.fallback.is_dir():
            return self.fallback
        return own

    def file(self, name: str) -> FileSpec:
        for spec in self.files:
            if spec.name == name:
                return spec
        raise KeyError(f"{self.folder} has no registered file {name!r}")


@dataclass(frozen=True)
class DatasetInfo:
    """Registry entry: what the dataset is, its counts and where its files come from."""

    name: str
    title: str
    task: str
    kind: Literal["crowd", "images", "soft"]
    n_items: int
    n_annotators: int | None
    n_labels: int | None
    n_classes: int
    features: str
    truth: str
    license: str
    citation: str
    sources: tuple[Source, ...]
    loader: Callable[..., Any]
    optional_sources: tuple[Source, ...] = ()
    aliases: tuple[str, ...] = field(default=())

    @property
    def all_sources(self) -> tuple[Source, ...]:
        return self.sources + self.optional_sources


_REGISTRY: dict[str, DatasetInfo] = {}
_ALIASES: dict[str, str] = {}


def register(info: DatasetInfo) -> DatasetInfo:
    """Add ``info`` to the registry (names and aliases are case-insensitive)."""
    key = info.name.lower()
    if key in _REGISTRY:
        raise ValueError(f"dataset {info.name!r} is already registered")
    _REGISTRY[key] = info
    for alias in (key, *info.aliases):
        _ALIASES[alias.lower()] = key
    return info


def get_info(name: str) -> DatasetInfo:
    """Registry entry of ``name`` (case-insensitive); unknown names list the known ones."""
    key = _ALIASES.get(str(name).lower())
    if key is None:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[key]


#: Display order of the registry (the order of shared/data/README.md).
_ORDER = (
    "music", "labelme", "cifar10n", "cifar10", "cifar10h", "mnist", "fashion-mnist",
    "bluebirds", "dog", "rte", "temp", "product", "trec-relevance", "adultcontent2",
)  # fmt: skip


def list_datasets() -> list[str]:
    """Names of all registered datasets (crowd datasets and image/soft-label ones)."""
    return sorted(_REGISTRY, key=lambda n: (_ORDER.index(n) if n in _ORDER else len(_ORDER), n))


def registry() -> dict[str, DatasetInfo]:
    """A copy of the registry: name -> :class:`DatasetInfo`, in :func:`list_datasets` order."""
    return {n: _REGISTRY[n] for n in list_datasets()}


# ---------------------------------------------------------------------------------------------
# where files live
def cache_dir() -> Path:
    """Per-user cache folder: ``CROWDLEARN_CACHE``, else ``$XDG_CACHE_HOME/crowdlearn``, else
    ``~/.cache/crowdlearn``."""
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "crowdlearn"


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The data root: ``root`` if given, else ``CROWDLEARN_DATA``, else :func:`cache_dir`."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(ENV_DATA)
    if env:
        return Path(env).expanduser()
    return cache_dir()


def _root_origin(root: str | os.PathLike[str] | None) -> str:
    if root is not None:
        return "the root argument"
    if os.environ.get(ENV_DATA):
        return f"${ENV_DATA}"
    return f"the default cache folder (no root given, {ENV_DATA} unset)"


def _missing_message(dataset: str, source: Source, folder: Path, missing: Sequence[str], origin: str) -> str:
    what = "does not exist" if not folder.is_dir() else f"lacks {', '.join(missing)}"
    expected = ", ".join(s.name for s in source.files)
    if all(s.url for s in source.files):
        how = f"run `crowdlearn datasets download {dataset}` (needs network)"
        if source.manual:
            how += f", or {source.manual}"
    else:
        how = f"copy them by hand ({source.manual or source.origin})"
    return (
        f"dataset {dataset!r}: folder {folder} ({origin}) {what}. Expected a folder {source.folder}/ with: "
        f"{expected}. Pass root=DIR or set {ENV_DATA}=DIR to the folder that holds {source.folder}/, "
        f"or {how}."
    )


def locate(
    dataset: str,
    source: Source,
    root: str | os.PathLike[str] | None,
    files: Iterable[str] | None = None,
    *,
    verify: bool = True,
    folder: Path | None = None,
) -> Path:
    """Folder of ``source`` under the data root, after checking that ``files`` (default: all
    registered files) exist and, with ``verify``, have their recorded checksums.
    ``folder`` overrides ``root / source.folder`` (e.g. a system-wide copy).

    Raises
    ------
    DatasetNotFoundError
        The folder or a file is missing; the message says what is expected and how to get it.
    ChecksumError
        A file's content differs from the recorded checksum.
    """
    if folder is None:
        folder = source.folder_under(root)
    names = [s.name for s in source.files] if files is None else list(files)
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise DatasetNotFoundError(_missing_message(dataset, source, folder, missing, _root_origin(root)))
    if verify:
        for n in names:
            verify_file(folder / n, source.file(n))
    return folder


def present(source: Source, root: str | os.PathLike[str] | None = None) -> bool:
    """True when every registered file of ``source`` exists under the data root (no checksums)."""
    folder = source.folder_under(root)
    return all((folder / s.name).is_file() for s in source.files)


# ---------------------------------------------------------------------------------------------
# checksums
_VERIFIED: dict[tuple[str, int, int, bool], str] = {}


def file_sha256(path: str | os.PathLike[str], *, gunzip: bool = False) -> str:
    """SHA-256 hex digest of a file's bytes (of its decompressed bytes with ``gunzip``)."""
    h = hashlib.sha256()
    with gzip.open(Path(path), "rb") if gunzip else open(Path(path), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cached_sha256(path: Path, *, gunzip: bool = False) -> str:
    """:func:`file_sha256`, memoised in-process per (path, size, mtime)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, gunzip)
    digest = _VERIFIED.get(key)
    if digest is None:
        digest = file_sha256(path, gunzip=gunzip)
        _VERIFIED[key] = digest
    return digest


def verify_file(path: Path, spec: FileSpec) -> None:
    """Raise :class:`ChecksumError` unless ``path`` has the checksum recorded in ``spec``."""
    digest = cached_sha256(path, gunzip=spec.gunzip_checksum)
    if digest != spec.sha256:
        what = "decompressed content" if spec.gunzip_checksum else "content"
        raise ChecksumError(
            f"checksum mismatch for {path}: SHA-256 of its {what} is {digest}, expected {spec.sha256}; "
            "the file is corrupt or a different version (replace it, or pass verify=False to load it anyway)"
        )


# ---------------------------------------------------------------------------------------------
# downloads
def fetch(url: str, dest: Path, spec: FileSpec, *, timeout: float = 60.0) -> Path:
    """Fetch ``url`` into ``dest`` atomically after checking its SHA-256 against ``spec``.

    The bytes go to a temporary file in the destination folder, are verified, then renamed.

    Raises
    ------
    DownloadError
        The address cannot be read (no network, HTTP error, bad URL).
    ChecksumError
        The fetched content has another checksum (nothing is written).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(dest, "wb", overwrite=True) as out:  # an error or a bad checksum writes nothing
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                shutil.copyfileobj(resp, out, 1 << 20)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DownloadError(
                f"could not fetch {url}: {reason}. Without network access, place {dest.name} in {dest.parent} by hand"
            ) from exc
        out.flush()
        digest = file_sha256(Path(out.name), gunzip=spec.gunzip_checksum)
        if digest != spec.sha256:
            raise ChecksumError(
                f"checksum mismatch for {url}: SHA-256 is {digest}, expected {spec.sha256}; the download was discarded"
            )
    return dest


def unpack(archive: Path, folder: Path) -> list[Path]:
    """Extract a .zip, .tar, .tar.gz or .tgz archive into ``folder``; members that would land
    outside it are refused. Returns the extracted file paths."""
    folder = folder.resolve()
    out: list[Path] = []

    def target(name: str) -> Path:
        p = (folder / name).resolve()
        if folder not in p.parents and p != folder:
            raise ValueError(f"archive {archive} member {name!r} would be written outside {folder}")
        return p

    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                p = target(info.filename)
                if info.is_dir():
                    continue
                p.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, atomic_write(p, "wb", overwrite=True) as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                out.append(p)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            for member in tf.getmembers():
                p = target(member.name)
                if not member.isfile():
                    if member.isdir():
                        continue
                    raise ValueError(f"archive {archive} member {member.name!r} is not a regular file")
                p.parent.mkdir(parents=True, exist_ok=True)
                stream = tf.extractfile(member)
                if stream is None:
                    raise ValueError(f"archive {archive} member {member.name!r} cannot be read")
                with stream, atomic_write(p, "wb", overwrite=True) as dst:
                    shutil.copyfileobj(stream, dst, 1 << 20)
                out.append(p)
    else:
        raise ValueError(f"{archive} is not a zip or tar archive")
    return out


def download_source(source: Source, root: str | os.PathLike[str] | None = None, *, force: bool = False) -> Path:
    """Fetch every file of ``source`` that is missing (or corrupt) into ``root/source.folder``.

    Files already present with the right checksum are kept. Archives marked ``unpack`` are
    extracted after verification.
    """
    folder = data_root(root) / source.folder
    for spec in source.files:
        dest = folder / spec.name
        if dest.is_file() and not force:
            try:
                verify_file(dest, spec)
                continue
            except ChecksumError:
                pass
        if spec.url is None:
            raise DownloadError(
                f"{source.folder}/{spec.name} has no public download address: {source.manual or source.origin}; "
                f"place it in {folder} by hand"
            )
        fetch(spec.url, dest, spec)
        if spec.unpack:
            unpack(dest, folder)
    return folder


def download(name: str, root: str | os.PathLike[str] | None = None, *, force: bool = False) -> Path:
    """Fetch, verify and unpack every file of dataset ``name`` under the data root.

    Returns the data root. Raises :class:`DownloadError` without network access or for files
    with no public address (the message says where to put them) and :class:`ChecksumError`
    when a download has the wrong content.
    """
    info = get_info(name)
    for source in info.all_sources:
        download_source(source, root, force=force)
    return data_root(root)


# ---------------------------------------------------------------------------------------------
# helpers for loaders
def atomic_save_npy(path: Path, array: np.ndarray[Any, Any]) -> None:
    """Write ``array`` to ``path`` (.npy) through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as f:
        np.save(f, array, allow_pickle=False)


def load_dataset(name: str, root: str | os.PathLike[str] | None = None, **kwargs: Any) -> CrowdDataset:
    """Load a crowdsourced dataset by registry name (case-insensitive).

    Parameters
    ----------
    name : str
        One of :func:`list_datasets` with ``kind == "crowd"``: ``"music"``, ``"labelme"``,
        ``"bluebirds"``, ``"dog"``, ``"rte"``, ``"temp"``, ``"product"``, ``"trec-relevance"``,
        ``"adultcontent2"``, ``"cifar10n"``.
    root : path, optional
        Folder holding the dataset folders; default ``CROWDLEARN_DATA``, then the cache folder.
    **kwargs
        Passed to the dataset's ``load_*`` function (e.g. ``features="bow"`` for LabelMe).
    """
    info = get_info(name)
    if info.kind != "crowd":
        raise ValueError(
            f"dataset {info.name!r} has no crowd annotations ({info.task}); load it with crowdlearn.datasets."
            f"{info.loader.__name__}()"
        )
    result = info.loader(root=root, **kwargs)
    assert isinstance(result, CrowdDataset)
    return result
