"""Downloads and the ``crowdlearn datasets`` CLI, with file:// addresses only (no network)."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crowdlearn.cli import app
from crowdlearn.datasets import ChecksumError, DownloadError, _base, download, present
from crowdlearn.datasets._base import DatasetInfo, FileSpec, Source, fetch, unpack


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def toy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[DatasetInfo, Path]:
    """A registered dataset 'toy' whose two files (one a zip to unpack) sit behind file:// URLs."""
    remote = tmp_path / "remote"
    remote.mkdir()
    text = b"item worker label\n1 1 2\n"
    (remote / "crowd.txt").write_bytes(text)
    with zipfile.ZipFile(remote / "extra.zip", "w") as zf:
        zf.writestr("inner/a.txt", "hello")
    archive = (remote / "extra.zip").read_bytes()
    source = Source(
        folder="Toy",
        files=(
            FileSpec("crowd.txt", _sha(text), len(text), (remote / "crowd.txt").as_uri()),
            FileSpec("extra.zip", _sha(archive), len(archive), (remote / "extra.zip").as_uri(), unpack=True),
        ),
        origin="a temporary folder",
    )
    info = DatasetInfo(
        name="toy",
        title="Toy",
        task="test",
        kind="crowd",
        n_items=1,
        n_annotators=1,
        n_labels=1,
        n_classes=2,
        features="-",
        truth="-",
        license="-",
        citation="-",
        sources=(source,),
        loader=lambda root=None: None,
    )
    monkeypatch.setitem(_base._REGISTRY, "toy", info)
    monkeypatch.setitem(_base._ALIASES, "toy", "toy")
    return info, tmp_path / "data"


def test_download_fetches_verifies_and_unpacks(toy: tuple[DatasetInfo, Path]) -> None:
    info, root = toy
    assert not present(info.sources[0], root)
    assert download("TOY", root) == root
    assert (root / "Toy" / "crowd.txt").read_bytes().startswith(b"item worker label")
    assert (root / "Toy" / "inner" / "a.txt").read_text() == "hello"
    assert present(info.sources[0], root)
    assert not list((root / "Toy").glob("*.part"))
    # present and verified: nothing is fetched again even if the address disappears
    Path(info.sources[0].files[0].url[len("file://") :]).unlink()  # type: ignore[index]
    download("toy", root)


def test_fetch_checksum_mismatch_writes_nothing(tmp_path: Path) -> None:
    src = tmp_path / "f.txt"
    src.write_bytes(b"abc")
    spec = FileSpec("f.txt", "0" * 64, 3, src.as_uri())
    dest = tmp_path / "out" / "f.txt"
    with pytest.raises(ChecksumError, match=r"checksum mismatch for file://.*f\.txt.*expected 0000"):
        fetch(src.as_uri(), dest, spec)
    assert not dest.exists() and list(dest.parent.iterdir()) == []


def test_fetch_unreachable_address(tmp_path: Path) -> None:
    missing = (tmp_path / "nowhere.txt").as_uri()
    spec = FileSpec("nowhere.txt", "0" * 64, 1, missing)
    with pytest.raises(DownloadError, match=r"could not fetch file://.*nowhere\.txt.*place nowhere\.txt in .* by hand"):
        fetch(missing, tmp_path / "d" / "nowhere.txt", spec)


def test_no_public_address(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match=r"cifar10_jpg\.zip has no public download address.*YoongiKim"):
        download("cifar10", tmp_path)


def test_unpack_refuses_escaping_members(tmp_path: Path) -> None:
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("../evil.txt", "x")
    with pytest.raises(ValueError, match="outside"):
        unpack(bad, tmp_path / "out")
    with pytest.raises(ValueError, match="not a zip or tar"):
        unpack(_write(tmp_path / "plain.txt"), tmp_path / "out")


def _write(path: Path) -> Path:
    path.write_text("plain")
    return path


def test_cli_download(toy: tuple[DatasetInfo, Path]) -> None:
    _, root = toy
    runner = CliRunner()
    result = runner.invoke(app, ["datasets", "download", "toy", "--root", str(root)])
    assert result.exit_code == 0, result.output
    assert "toy: files verified under" in result.output
    assert (root / "Toy" / "crowd.txt").is_file()


def test_cli_download_checksum_mismatch(toy: tuple[DatasetInfo, Path]) -> None:
    info, root = toy
    url = info.sources[0].files[0].url
    assert url is not None
    Path(url[len("file://") :]).write_bytes(b"tampered\n")
    result = CliRunner().invoke(app, ["datasets", "download", "toy", "--root", str(root)])
    assert result.exit_code == 1
    assert "error: checksum mismatch for file://" in result.output
    assert not (root / "Toy" / "crowd.txt").exists()


def test_cli_download_unknown_and_unreachable(toy: tuple[DatasetInfo, Path], tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["datasets", "download", "nope", "--root", str(tmp_path)])
    assert result.exit_code == 1 and "unknown dataset 'nope'" in result.output
    info, root = toy
    url = info.sources[0].files[0].url
    assert url is not None
    Path(url[len("file://") :]).unlink()
    result = CliRunner().invoke(app, ["datasets", "download", "toy", "--root", str(root)])
    assert result.exit_code == 1 and "error: could not fetch" in result.output


def test_cli_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "220")
    result = CliRunner().invoke(app, ["datasets", "list", "--root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for name in ("music", "labelme", "cifar10n", "trec-relevance", "adultcontent2", "mnist"):
        row = next(line for line in lines if f" {name} " in line)
        assert row.rstrip(" │").endswith("no")
    music = next(line for line in lines if " music " in line)
    assert "700" in music and "44" in music and "2,945" in music
