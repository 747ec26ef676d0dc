"""benchmarks/real.py: selection protocols on hand-made run records, the cache and the table renderer.

No training and no real data: the records are written by hand.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "real.py"


@pytest.fixture(scope="module")
def real() -> Any:
    spec = importlib.util.spec_from_file_location("benchmarks_real", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["benchmarks_real"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def full(val: list[float], test: list[float], diverged: int | None = None) -> dict[str, Any]:
    return {"val_acc": val, "valid_loss": None, "test_acc": test, "diverged": diverged}


def held(loss: list[float], test: list[float], diverged: int | None = None) -> dict[str, Any]:
    return {"val_acc": None, "valid_loss": loss, "test_acc": test, "diverged": diverged}


A, B = "lr=0.001, init=identity", "lr=0.01, init=identity"
SEEDS = [0, 1]


def test_best_epoch_takes_the_earliest_of_ties_and_skips_non_finite(real: Any) -> None:
    assert real.best_epoch([0.5, 0.7, 0.7], "max") == 1
    assert real.best_epoch([1.0, 0.8, 0.8], "min") == 1
    assert real.best_epoch([float("nan"), 2.0, float("inf"), 3.0], "min") == 1
    assert real.best_epoch([float("nan")], "max") is None
    assert real.best_epoch([], "max") is None


def test_each_protocol_picks_its_own_epoch_and_grid_point(real: Any) -> None:
    fulls = {
        (A, 0): full([0.5, 0.6, 0.55], [0.50, 0.60, 0.70]),
        (A, 1): full([0.5, 0.6, 0.55], [0.52, 0.62, 0.72]),
        (B, 0): full([0.7, 0.65, 0.7], [0.10, 0.20, 0.30]),  # best val 0.7 at epochs 1 and 3: epoch 1
        (B, 1): full([0.6, 0.7, 0.6], [0.11, 0.21, 0.31]),
    }
    last = real.select(fulls, [A, B], SEEDS, "last")
    assert (last.point, last.epochs) == (A, [3, 3])  # the default point, last epoch
    assert last.test == [0.70, 0.72]
    clean = real.select(fulls, [A, B], SEEDS, "clean")
    assert clean.point == B and clean.epochs == [1, 2]  # mean best val 0.70 vs A's 0.60
    assert clean.test == [0.10, 0.21]
    assert math.isclose(clean.score, 0.7)

    holds = {
        (A, 0): held([1.0, 0.9, 0.9], [0.40, 0.41, 0.42]),  # min 0.9 at epochs 2 and 3: epoch 2
        (A, 1): held([1.0, 0.8, 0.85], [0.43, 0.44, 0.45]),
        (B, 0): held([1.2, 1.1, 1.0], [0.30, 0.31, 0.32]),
        (B, 1): held([1.2, 1.1, 1.0], [0.33, 0.34, 0.35]),
    }
    crowd = real.select(holds, [A, B], SEEDS, "crowd")
    assert crowd.point == A and crowd.epochs == [2, 2]  # mean min NLL 0.85 vs B's 1.0
    assert crowd.test == [0.41, 0.44]
    assert math.isclose(crowd.score, 0.85)


def test_tied_grid_points_go_to_the_first_in_grid_order(real: Any) -> None:
    runs = {(p, s): full([0.6, 0.6], [0.5 if p == A else 0.9] * 2) for p in (A, B) for s in SEEDS}
    assert real.select(runs, [A, B], SEEDS, "clean").point == A
    assert real.select(runs, [B, A], SEEDS, "clean").point == B
    holds = {(p, s): held([0.7, 0.7], [0.5] * 2) for p in (A, B) for s in SEEDS}
    assert real.select(holds, [B, A], SEEDS, "crowd").point == B


def test_missing_runs_are_pending_and_unusable_points_are_skipped(real: Any) -> None:
    runs = {(A, 0): full([0.6], [0.5]), (B, 0): full([0.9], [0.9]), (B, 1): full([0.9], [0.9])}
    pending = real.select(runs, [A, B], SEEDS, "clean")
    assert isinstance(pending, real.Pending) and (pending.done, pending.needed) == (3, 4)
    assert isinstance(real.select(runs, [A, B], SEEDS, "last"), real.Pending)  # default point needs both seeds

    runs[(A, 1)] = full([], [], diverged=0)  # diverged before its first epoch: A has no usable seed 1
    clean = real.select(runs, [A, B], SEEDS, "clean")
    assert clean.point == B
    assert real.select(runs, [A, B], SEEDS, "last") is None

    runs[(B, 1)] = full([0.95, 0.9], [0.8, 0.7], diverged=2)  # diverged later: its completed epochs count
    clean = real.select(runs, [A, B], SEEDS, "clean")
    assert clean.diverged == 1 and clean.test == [0.9, 0.8]


def test_grid_points(real: Any) -> None:
    assert real.grid_points("ccem", "none") == [{"lr": 1e-3, "init": "identity"}]
    small = real.grid_points("geocrowdnet-f", "small")
    assert small[0] == real.DEFAULT_POINT and len(small) == 4 and {p["init"] for p in small} == {"identity", "ds"}
    # ce's identity head ignores the init, CrowdLayer accepts only "identity": lr only
    assert [p["init"] for p in real.grid_points("ce", "small")] == ["identity", "identity"]
    assert [p["init"] for p in real.grid_points(real.TRUTH, "small")] == ["identity", "identity"]
    assert [p["init"] for p in real.grid_points("crowdlayer-mw", "small")] == ["identity", "identity"]
    assert real.point_label(real.DEFAULT_POINT) == A


def test_defaults_grid_has_every_recipe_and_a_lam_dimension_where_declared(real: Any) -> None:
    names = list(real.RECIPES)
    assert names[:3] == ["base", "fast-ds-mixup", "cosine"] and "slow-ds-clr" in names
    f = real.grid_points("geocrowdnet-f", "defaults")  # declares lam: each recipe alone, then with lam 0.2
    assert len(f) == 2 * len(names)
    assert [p.get("lam") for p in f[:2]] == [None, 0.2] and f[0] == real.DEFAULT_POINT
    slow = f[2 * names.index("slow-ds-clr")]
    assert slow == {"lr": 1e-3, "confusion_lr": 1e-2, "init": "ds", "mixup": 0.2, "epochs": 100}
    assert real.RECIPE_OF[("geocrowdnet-f", real.point_label(slow))] == "slow-ds-clr"
    assert real.RECIPE_OF[("geocrowdnet-f", real.point_label({**slow, "lam": 0.2}))] == "slow-ds-clr lam=0.2"
    run = real.run_params({**slow, "lam": 0.2})  # lam reaches CrowdClassifier as its top-level parameter
    assert (run["lam"], run["confusion_lr"], run["batch_size"], run["weight_decay"]) == (0.2, 1e-2, 128, 1e-4)
    assert "epochs" not in run and real.point_epochs(slow, 7) == 100
    ccem = real.grid_points("ccem", "defaults")  # no lam: the recipes alone
    assert len(ccem) == len(names) and all("lam" not in p for p in ccem)
    # CrowdLayer's head ignores the init; Annot-Mix mixes its own records: no input mixup
    assert {p.get("init") for p in real.grid_points("crowdlayer-mw", "defaults")} == {"identity"}
    assert all("mixup" not in p for p in real.grid_points("annot-mix", "defaults"))


def test_render_table_shows_cells_picks_published_numbers_and_notes(real: Any) -> None:
    sel = real.Selected(A, 0.6, [0.5, 0.7], [3, 5], diverged=1)
    rows = [
        real.Row("geocrowdnet-f", {"last": sel, "clean": sel, "crowd": real.Pending(1, 4)}),
        real.Row("crowdlayer-mw", {"last": None, "clean": sel, "crowd": sel}),
        real.Row(real.TRUTH, {"last": sel, "clean": sel, "crowd": sel}),
    ]
    text = real.render_table("music-am", rows, 2, 100, "small")
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("| method"))
    assert header.count("|") == 8 and "published last / clean" in header
    row = next(line for line in lines if line.startswith("| geocrowdnet-f "))
    assert row.split(" | ")[1:4] == ["60.0 ± 10.0 †1", "60.0 ± 10.0 †1", "pending (1/4 runs)"]
    assert f"{A}; epoch 4" in row and row.endswith("| 70.2 / 70.4 |")
    assert "no usable run" in next(line for line in lines if line.startswith("| crowdlayer-mw "))
    assert next(line for line in lines if line.startswith("| crowdlayer-mw ")).endswith("69.8 / 69.0 * |")
    assert next(line for line in lines if line.startswith("| truth ")).endswith("| 79.6 |")
    assert any(line.startswith("†") for line in lines) and any(line.startswith("\\*") for line in lines)

    plain = real.render_table("labelme", rows[:1], 2, 100, "none")
    assert "published" not in plain and plain.splitlines()[-1].startswith("†")


def test_cache_round_trip_and_table_only(real: Any, tmp_path: Path) -> None:
    cache = tmp_path / "runs.jsonl"
    for method in ("ccem", real.TRUTH):
        for seed in SEEDS:
            base = {"dataset": "music", "method": method, "point": A, "seed": seed, "epochs": 3, "seconds": 1.0}
            real.append_record(cache, {**base, "kind": "full", **full([0.5, 0.6, 0.6], [0.4, 0.5, 0.45])})
            real.append_record(cache, {**base, "kind": "holdout", **held([1.0, 0.9, 1.1], [0.3, 0.35, 0.33])})
    with cache.open("a") as fh:
        fh.write('{"dataset": "music", "meth')  # an interrupted write
    records = real.read_cache(cache)
    assert len(records) == 8
    assert records[("music", "ccem", A, 1, "full", 3)]["val_acc"] == [0.5, 0.6, 0.6]

    argv = ["--out", str(tmp_path), "--table-only", "--datasets", "music", "--methods", "ccem,truth"]
    real.main([*argv, "--seeds", "2", "--epochs", "3", "--grid", "none"])
    text = (tmp_path / "tables.md").read_text()
    ccem = next(line for line in text.splitlines() if line.startswith("| ccem "))
    assert ccem.split(" | ")[1:4] == ["45.0 ± 0.0", "50.0 ± 0.0", "35.0 ± 0.0"]
    assert "compute of the 8 cached runs" in text and "--table-only" in text
    assert json.loads(cache.read_text().splitlines()[0])["method"] == "ccem"  # the cache is left as it was


def test_dense_head_runs_are_cached_apart_from_the_default_ones(real: Any, tmp_path: Path) -> None:
    cache = tmp_path / "runs.jsonl"
    base = {"dataset": "music", "method": "ccem", "point": A, "seed": 0, "epochs": 3, "seconds": 1.0, "kind": "full"}
    real.append_record(cache, {**base, **full([0.5, 0.6, 0.6], [0.4, 0.5, 0.45])})  # no "heads": the default
    real.append_record(cache, {**base, "heads": "dense", **full([0.5, 0.6, 0.6], [0.4, 0.5, 0.55])})
    key = ("music", "ccem", A, 0, "full", 3)
    assert real.read_cache(cache)[key]["test_acc"][-1] == 0.45
    assert real.read_cache(cache, "dense")[key]["test_acc"][-1] == 0.55

    tasks = real.build_tasks(["music"], ["ccem"], "none", [0], 3, ["full"], "dense")
    assert [t.heads for t in tasks] == ["dense"] and real.task_key(tasks[0])["heads"] == "dense"
    argv = ["--out", str(tmp_path), "--table-only", "--datasets", "music", "--methods", "ccem", "--kinds", "full"]
    real.main([*argv, "--seeds", "1", "--epochs", "3", "--grid", "none", "--dense-heads"])
    ccem = next(line for line in (tmp_path / "tables.md").read_text().splitlines() if line.startswith("| ccem "))
    assert ccem.split(" | ")[1] == "55.0 ± 0.0"


def test_run_task_builds_the_heads_the_task_names(real: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from crowdlearn.nn import confusion

    seen: list[bool] = []

    def stop(*args: Any, **kwargs: Any) -> Any:
        seen.append(confusion.SPARSE_BY_DEFAULT)
        raise RuntimeError("stop before loading data")

    monkeypatch.setattr(real, "get_split", stop)
    monkeypatch.setattr(confusion, "SPARSE_BY_DEFAULT", True)
    for heads in ("dense", "sparse"):
        task = real.Task("music", "ccem", A, {}, 0, "full", 3, heads)
        with pytest.raises(RuntimeError, match="stop before"):
            real.run_task(task, "/nonexistent")
    assert seen == [False, True]
