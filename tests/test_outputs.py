"""The one writer (``io.atomic_write``), its several-files form and the output checks."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from crowdlearn.io import atomic_write


def _fifo(tmp_path: Path) -> Path:
    """A named pipe: a non-regular file like /dev/null, but safe to aim tests at."""
    p = tmp_path / "pipe.csv"
    os.mkfifo(p)
    return p


@pytest.mark.parametrize("overwrite", [False, True])
def test_atomic_write_refuses_a_symlink_and_keeps_link_and_target(tmp_path: Path, overwrite: bool) -> None:
    target = tmp_path / "real.csv"
    target.write_text("keep")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    with pytest.raises(ValueError, match=r"link\.csv: is a symbolic link"):
        with atomic_write(link, overwrite=overwrite) as fh:
            fh.write("new")
    assert link.is_symlink() and target.read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.csv", "real.csv"]


@pytest.mark.parametrize("overwrite", [False, True])
def test_atomic_write_refuses_a_non_regular_file(tmp_path: Path, overwrite: bool) -> None:
    pipe = _fifo(tmp_path)
    with pytest.raises(ValueError, match=r"pipe\.csv: is a named pipe; outputs are written only to regular files"):
        with atomic_write(pipe, overwrite=overwrite) as fh:
            fh.write("new")
    assert stat.S_ISFIFO(pipe.lstat().st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["pipe.csv"]


def test_check_output_names_devices_folders_and_missing_folders(tmp_path: Path) -> None:
    from crowdlearn.io import check_output

    with pytest.raises(ValueError, match="/dev/null: is a character device"):
        check_output("/dev/null", overwrite=True)
    with pytest.raises(ValueError, match="is a folder"):
        check_output(tmp_path, overwrite=True)
    with pytest.raises(FileNotFoundError, match="nowhere: the output folder does not exist"):
        check_output(tmp_path / "nowhere" / "m.safetensors")
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        check_output(tmp_path / "file" / "m.safetensors")
    with pytest.raises(ValueError, match="--out -: the model cannot go to standard output; give a file path"):
        check_output("-", name="--out", kind="model")
    check_output("-", stdout_ok=True)
    check_output(tmp_path / "new.csv")


def test_check_outputs_wants_distinct_outputs_that_are_not_inputs(tmp_path: Path) -> None:
    from crowdlearn.io import check_outputs

    a = tmp_path / "a.csv"
    a.write_text("labels")
    with pytest.raises(ValueError, match="--out and --report name the same file"):
        check_outputs({"--out": tmp_path / "x.csv", "--report": tmp_path / "." / "x.csv"})
    with pytest.raises(ValueError, match="--predictions .*a.csv is the input FILE"):
        check_outputs({"--predictions": a}, {"FILE": a}, overwrite=True)
    with pytest.raises(FileExistsError, match=r"a\.csv: already exists \(pass --force to replace it\)"):
        check_outputs({"--out": a}, force_hint="--force")
    with pytest.raises(ValueError, match="--out and --predictions both go to standard output"):
        check_outputs({"--out": "-", "--predictions": "-"}, stdout_ok=("--out", "--predictions"))
    check_outputs({"--out": "-", "--report": None}, {"FILE": a}, stdout_ok=("--out",))


def test_atomic_outputs_commit_all_or_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from crowdlearn.io import atomic_outputs

    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    first.write_text("old first")
    # an exception while preparing: nothing is written, no temporary file is left
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_outputs(overwrite=True) as out:
            with out.open(first) as fh:
                fh.write("new first")
            raise RuntimeError("boom")
    assert first.read_text() == "old first" and sorted(p.name for p in tmp_path.iterdir()) == ["first.txt"]

    # the rename of the second output fails: the first is rolled back to its old version
    real_replace = os.replace

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(dst) == second:
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="disk full"):
        with atomic_outputs(overwrite=True) as out:
            with out.open(first) as fh:
                fh.write("new first")
            with out.open(second) as fh:
                fh.write("new second")
    assert first.read_text() == "old first" and not second.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first.txt"]

    monkeypatch.setattr(os, "replace", real_replace)
    with atomic_outputs(overwrite=True) as out:
        with out.open(first) as fh:
            fh.write("new first")
        with out.open(second, "wb") as fh:
            fh.write(b"new second")
    assert first.read_text() == "new first" and second.read_bytes() == b"new second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first.txt", "second.txt"]


def test_demo_report_refuses_to_replace_a_symlinked_picture(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    import numpy as np

    from crowdlearn.demo import DemoResult, write_report

    conf = np.full((30, 10, 10), 0.1)
    result = DemoResult(10, 5, 30, 10, 30, 0, confusions_true=conf)  # n_train, n_test, M, K, labels, seed
    elsewhere = tmp_path / "elsewhere.png"
    elsewhere.write_bytes(b"keep")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "confusions.png").symlink_to(elsewhere)
    with pytest.raises(ValueError, match=r"confusions\.png: is a symbolic link"):
        write_report(result, tmp_path / "out")
    assert (tmp_path / "out" / "confusions.png").is_symlink() and elsewhere.read_bytes() == b"keep"
    (tmp_path / "out" / "confusions.png").unlink()
    written = write_report(result, tmp_path / "out")
    assert (tmp_path / "out" / "confusions.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in written)


def test_dataset_downloads_and_unpacked_members_go_through_the_one_writer(tmp_path: Path) -> None:
    import hashlib
    import zipfile

    from crowdlearn.datasets._base import FileSpec, fetch, unpack

    src = tmp_path / "remote.txt"
    src.write_bytes(b"data")
    spec = FileSpec("local.txt", hashlib.sha256(b"data").hexdigest(), 4, src.as_uri())
    (tmp_path / "d").mkdir()
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("keep")
    (tmp_path / "d" / "local.txt").symlink_to(elsewhere)
    with pytest.raises(ValueError, match="is a symbolic link"):
        fetch(src.as_uri(), tmp_path / "d" / "local.txt", spec)
    assert elsewhere.read_text() == "keep"
    (tmp_path / "d" / "local.txt").unlink()
    fetch(src.as_uri(), tmp_path / "d" / "local.txt", spec)
    assert (tmp_path / "d" / "local.txt").read_bytes() == b"data"

    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("member.txt", "new")
    (tmp_path / "u").mkdir()
    (tmp_path / "u" / "member.txt").write_text("old")
    assert [p.name for p in unpack(archive, tmp_path / "u")] == ["member.txt"]
    assert sorted(p.name for p in (tmp_path / "u").iterdir()) == ["member.txt"]  # replaced, no temporary left
    assert (tmp_path / "u" / "member.txt").read_text() == "new"


def test_write_html_refuses_a_symlink_before_rendering(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import crowdlearn.report.html as html
    from crowdlearn import Annotations

    elsewhere = tmp_path / "elsewhere.html"
    elsewhere.write_text("keep")
    (tmp_path / "r.html").symlink_to(elsewhere)
    rendered: list[int] = []
    real = html.render_html
    monkeypatch.setattr(html, "render_html", lambda *a, **k: rendered.append(1) or real(*a, **k))
    with pytest.raises(ValueError, match="is a symbolic link"):
        html.write_html(tmp_path / "r.html", Annotations([0, 1], [0, 0], [0, 1]), overwrite=True)
    assert rendered == [] and elsewhere.read_text() == "keep" and (tmp_path / "r.html").is_symlink()
