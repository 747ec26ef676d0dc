"""The model file of ``CrowdClassifier.save``/``load``: overwrite policy, mode, header size, bad files."""

from __future__ import annotations

import json
import os
import stat
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.torch import save_file

from crowdlearn import Annotations
from crowdlearn.estimators import CrowdClassifier
from crowdlearn.train import History

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _data(n: int = 64) -> tuple[np.ndarray[Any, Any], Annotations]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, n)
    x = (rng.normal(size=(n, 2)) + 2.0 * y[:, None]).astype(np.float32)
    ann = Annotations(np.repeat(np.arange(n), 2), np.tile([0, 1], n), np.repeat(y, 2))
    return x, ann


@pytest.fixture(scope="module")
def fitted() -> CrowdClassifier:
    x, ann = _data()
    return CrowdClassifier(method="ccem", epochs=2, validation="none").fit(x, ann)


def _header_bytes(path: Path) -> int:
    with path.open("rb") as fh:
        return int(struct.unpack("<Q", fh.read(8))[0])


def test_save_refuses_to_overwrite_unless_asked(fitted: CrowdClassifier, tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    path.write_text("keep me")
    with pytest.raises(FileExistsError, match=r"m\.safetensors: already exists \(pass overwrite=True"):
        fitted.save(path)
    assert path.read_text() == "keep me"
    fitted.save(path, overwrite=True)
    assert CrowdClassifier.load(path).n_classes_ == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]  # no temporary file left


def test_save_refuses_a_symlink(fitted: CrowdClassifier, tmp_path: Path) -> None:
    target = tmp_path / "real.safetensors"
    target.write_text("keep")
    (tmp_path / "link.safetensors").symlink_to(target)
    with pytest.raises(ValueError, match="is a symbolic link"):
        fitted.save(tmp_path / "link.safetensors", overwrite=True)
    assert target.read_text() == "keep"


def test_model_file_gets_the_umask_mode(fitted: CrowdClassifier, tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        fitted.save(tmp_path / "m.safetensors")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m.safetensors").stat().st_mode) == 0o644  # not 0600


def test_model_header_grows_with_epochs_not_batches(tmp_path: Path) -> None:
    x, ann = _data(64)
    sizes, losses = {}, {}
    for bs in (2, 64):  # 32 batches per epoch, then 1
        clf = CrowdClassifier(method="ccem", epochs=30, batch_size=bs, validation="none").fit(x, ann)
        assert len(clf.history_[0]["batches"]) == 64 // bs  # the in-memory history keeps the batch log
        clf.save(tmp_path / f"bs{bs}.safetensors")
        sizes[bs] = _header_bytes(tmp_path / f"bs{bs}.safetensors")
        losses[bs] = clf.history_[:, "train_loss"]
    assert abs(sizes[2] - sizes[64]) < 200, sizes  # 960 vs 30 batch entries: the same header
    assert sizes[2] < 4000 + 200 * 30, sizes
    back = CrowdClassifier.load(tmp_path / "bs2.safetensors")
    assert len(back.history_) == 30 and "batches" not in back.history_[0]
    assert back.history_[:, "train_loss"] == losses[2]


def _rewrite(src: Path, dst: Path, *, meta: str | None = None, edit: Any = None, tensors: Any = None) -> Path:
    with safe_open(str(src), framework="pt") as fh:
        raw = fh.metadata()["crowdlearn"]
        ts = {k: fh.get_tensor(k) for k in fh.keys()}
    if edit is not None:
        doc = json.loads(raw)
        edit(doc)
        raw = json.dumps(doc)
    if tensors is not None:
        tensors(ts)
    save_file(ts, str(dst), metadata={"crowdlearn": raw if meta is None else meta})
    return dst


def _drop(key: str) -> Any:
    return lambda d: d.pop(key)


def _set(key: str, value: Any) -> Any:
    return lambda d: d.__setitem__(key, value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"meta": "{not json"}, "the crowdlearn metadata are not valid JSON"),
        ({"meta": "[1, 2]"}, "the crowdlearn metadata are not a JSON object"),
        ({"edit": _drop("classes")}, "the model metadata lack 'classes'"),
        ({"edit": _set("priors", "abc")}, "'priors' must be a list of 2 numbers"),
        ({"edit": _set("annotator_counts", [1])}, "'annotator_counts' must be a list of 2 integers"),
        ({"edit": _set("history", {"a": 1})}, "'history' must be a list of epoch objects"),
        ({"edit": _set("best_epoch", "x")}, "'best_epoch' must be an integer or null"),
        ({"edit": _set("input_shape", ["a"])}, "'input_shape' must be a list of positive integers or null"),
        ({"edit": lambda d: d["params"].update(colour="red")}, "unknown parameter 'colour'"),
        ({"edit": lambda d: d["params"].update(lr=-1.0)}, "saved parameters are invalid: The 'lr' parameter"),
        (
            {"tensors": lambda t: t.update({k: t[k][:1] for k in list(t) if k.endswith("weight")})},
            "the saved weights do not fit the model",
        ),
    ],
)
def test_load_names_the_file_for_a_damaged_model(
    fitted: CrowdClassifier, tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    good = tmp_path / "good.safetensors"
    fitted.save(good)
    bad = _rewrite(good, tmp_path / "bad.safetensors", **kwargs)
    with pytest.raises(ValueError, match="bad.safetensors") as info:
        CrowdClassifier.load(bad)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_predict_reports_a_damaged_model_in_one_line(fitted: CrowdClassifier, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from crowdlearn.cli import app

    good = tmp_path / "good.safetensors"
    fitted.save(good)
    bad = _rewrite(good, tmp_path / "bad.safetensors", meta='{"format": "crowdlearn-crowdclassifier", "vers')
    x, _ = _data()
    np.save(tmp_path / "x.npy", x)
    res = CliRunner().invoke(app, ["predict", str(bad), "--features", str(tmp_path / "x.npy")])
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output and res.output.count("\n") == 1
    assert "bad.safetensors: the crowdlearn metadata are not valid JSON" in res.output


def test_history_to_file_is_atomic_and_refuses_to_overwrite(tmp_path: Path) -> None:
    h = History()
    h.new_epoch(0)
    h.record("train_loss", 0.5)
    path = tmp_path / "h.json"
    path.write_text("keep")
    with pytest.raises(FileExistsError, match="already exists"):
        h.to_file(path)
    assert path.read_text() == "keep"
    h.to_file(path, overwrite=True)
    assert History.from_file(path) == h
    link = tmp_path / "link.json"
    link.symlink_to(path)
    with pytest.raises(ValueError, match="symbolic link"):
        h.to_file(link, overwrite=True)
