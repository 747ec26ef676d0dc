"""crowd-kit drop-in: crowdlearn.compat.crowdkit versus crowdlearn.aggregate versus crowd-kit 1.4.2.

For each method, the same task/worker/label DataFrame goes through (1) crowdlearn's native API
(``Annotations.from_ids`` + ``crowdlearn.aggregate``), (2) the compat layer
(``crowdlearn.compat.crowdkit.aggregation``, crowd-kit's API) and (3) crowd-kit 1.4.2 itself in
its own virtualenv. Each side runs in a child process with one thread (BLAS/OpenMP pinned to 1);
the time is the wall time of ``fit_predict`` on the DataFrame (the native side includes building
``Annotations`` from it). Accuracy = share of items with truth whose label equals it. crowd-kit's
Wawa / ZeroBasedSkill / GoldMajorityVote call scikit-learn's ``check_is_fitted`` on
non-estimators and crash under scikit-learn >= 1.6; the check is patched out for them (as in
PEERS.md's Wawa* column). Gold = the truth of every second item with truth (both sides).

    PYTHONPATH=src .venv/bin/python benchmarks/crowdkit_compat.py --crowdkit-python /tmp/ck-venv/bin/python
    PYTHONPATH=src .venv/bin/python benchmarks/crowdkit_compat.py --quick ...   # two small datasets
    PYTHONPATH=src .venv/bin/python benchmarks/crowdkit_compat.py --segmentation 2000 ...  # masks, see below
    PYTHONPATH=src .venv/bin/python benchmarks/crowdkit_compat.py --mace-starts   # native MACE: vote vs random start

``--segmentation N``: N simulated image tasks (a random rectangle on a 64 x 64 grid, 5 workers
per task: each answer is the rectangle shifted by up to 2 pixels with a worker-specific share of
pixels flipped, 1-25 %), through the compat ``SegmentationMajorityVote`` / ``SegmentationEM`` /
``SegmentationRASA`` and crowd-kit's; quality = mean IoU with the rectangle. ``--mace-starts``:
crowdlearn's MACE (EM and VB) on the ten real datasets from the vote start and from the random
start (``init="random"``, seeds 0-4).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
THREAD_ENV = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
DATASETS = ["bluebirds", "rte", "temp", "product", "music"]
METHODS = ["mv", "wawa", "ds", "onecoin", "glad", "mace", "zbs", "gold", "kos"]
BINARY_ONLY = {"kos"}


def _native(name: str) -> Any:
    from crowdlearn import aggregate as a

    return {
        "mv": lambda: a.MajorityVote(tie_break="first"),
        "wawa": lambda: a.Wawa(tie_break="first"),
        "ds": lambda: a.DawidSkene(),
        "onecoin": lambda: a.OneCoinDawidSkene(),
        "glad": lambda: a.GLAD(),
        "mace": lambda: a.MACE(method="vb", n_iter=50),
        "zbs": lambda: a.ZeroBasedSkill(tie_break="first"),
        "gold": lambda: a.GoldMajorityVote(tie_break="first"),
        "kos": lambda: a.KOS(tie_break="first"),
        "ds20": lambda: a.DawidSkene(n_iter=20, tol=0),
    }[name]()


def _crowdkit_api(module: Any, name: str) -> Any:
    return {
        "mv": module.MajorityVote,
        "wawa": module.Wawa,
        "ds": module.DawidSkene,
        "onecoin": module.OneCoinDawidSkene,
        "glad": module.GLAD,
        "mace": lambda: module.MACE(n_restarts=1),
        "zbs": module.ZeroBasedSkill,
        "gold": module.GoldMajorityVote,
        "kos": module.KOS,
        "ds20": lambda: module.DawidSkene(20, -np.inf),
    }[name]()


def child(side: str, path: str, out: str, methods: list[str]) -> None:
    """Run ``methods`` on the frame in ``path`` (.npz of task, worker, label, gold); write JSON."""
    with np.load(path) as f:
        df = pd.DataFrame({"task": f["task"], "worker": f["worker"], "label": f["label"]})
        gold_idx = f["gold_task"]
        gold = pd.Series(f["gold_label"], index=gold_idx)
    if side == "crowdkit":
        import crowdkit.aggregation as module
        import crowdkit.aggregation.classification.gold_majority_vote as g
        import crowdkit.aggregation.classification.wawa as w
        import crowdkit.aggregation.classification.zero_based_skill as z

        for m in (g, w, z):  # scikit-learn >= 1.6 crash, see the module docstring
            m.check_is_fitted = lambda *args, **kwargs: None  # type: ignore[attr-defined]
    elif side == "compat":
        import crowdlearn.compat.crowdkit.aggregation as module
    else:
        import crowdlearn.aggregate
        import crowdlearn.annotations  # imports outside the timing

        module = crowdlearn.aggregate
    results: dict[str, Any] = {}
    full, full_gold = df, gold
    # warm-up on 12 labels (first-call costs of pandas / numpy / imports stay out of the timing)
    df = pd.DataFrame({"task": [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3], "worker": [0, 1, 2] * 4, "label": [0, 1, 0] * 4})
    gold = pd.Series([0], index=[0])
    for timed in (False, True):
        if timed:
            df, gold = full, full_gold
        results = _run_all(side, module, df, gold, methods)
    Path(out).write_text(json.dumps(results))


def _run_all(side: str, module: Any, df: pd.DataFrame, gold: pd.Series, methods: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name in methods:
        t0 = time.perf_counter()
        try:
            if side == "native":
                from crowdlearn.annotations import Annotations

                ann = Annotations.from_ids(df["task"], df["worker"], df["label"])
                agg = _native(name)
                if name == "gold":
                    agg.fit(ann, true_labels=gold)
                else:
                    agg.fit(ann)
                pred = pd.Series(ann.classes[agg.labels_], index=ann.item_ids)
            else:
                agg = _crowdkit_api(module, name)
                pred = agg.fit_predict(df, gold) if name == "gold" else agg.fit_predict(df)
            seconds = time.perf_counter() - t0
            results[name] = {"seconds": seconds, "pred": {str(k): int(v) for k, v in pred.items()}}
        except Exception as exc:  # recorded in the table, e.g. crowd-kit's KOS KeyError
            results[name] = {"error": type(exc).__name__}
    return results


SEG_METHODS = ["SegmentationMajorityVote", "SegmentationEM", "SegmentationRASA"]


def segmentation_data(n_tasks: int, size: int = 64, seed: int = 0) -> tuple[pd.DataFrame, list[np.ndarray]]:
    """Simulated masks (see the module docstring): the answers frame and each task's true mask."""
    rng = np.random.default_rng(seed)
    flip = rng.uniform(0.01, 0.25, 50)  # 50 workers
    rows: list[tuple[int, int, np.ndarray]] = []
    truths = []
    for t in range(n_tasks):
        y0, x0 = rng.integers(0, size // 2, 2)
        h, w = rng.integers(size // 8, size // 2, 2)
        truth = np.zeros((size, size), dtype=bool)
        truth[y0 : y0 + h, x0 : x0 + w] = True
        truths.append(truth)
        for worker in rng.choice(50, 5, replace=False):
            dy, dx = rng.integers(-2, 3, 2)
            ans = np.roll(truth, (int(dy), int(dx)), axis=(0, 1)) ^ (rng.random((size, size)) < flip[worker])
            rows.append((t, int(worker), ans))
    return pd.DataFrame(rows, columns=["task", "worker", "segmentation"]), truths


def segmentation_child(side: str, out: str, n_tasks: int) -> None:
    """Time the three segmentation aggregators of ``side`` on the simulated masks; write JSON."""
    if side == "crowdkit":
        import crowdkit.aggregation as module
    else:
        import crowdlearn.compat.crowdkit.aggregation as module
    df, truths = segmentation_data(n_tasks)
    small, _ = segmentation_data(3, seed=1)
    results: dict[str, Any] = {}
    for name in SEG_METHODS:
        getattr(module, name)().fit_predict(small)  # warm-up
        t0 = time.perf_counter()
        pred = getattr(module, name)().fit_predict(df)
        seconds = time.perf_counter() - t0
        ious = [(pred[t] & truths[t]).sum() / max((pred[t] | truths[t]).sum(), 1) for t in range(n_tasks)]
        results[name] = {"seconds": seconds, "iou": float(np.mean(ious))}
    Path(out).write_text(json.dumps(results))


def segmentation_table(n_tasks: int, crowdkit_python: str, timeout: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        res = {}
        for side, python in (("compat", sys.executable), ("crowdkit", crowdkit_python)):
            out = Path(tmp) / f"{side}.json"
            env = dict(os.environ, **THREAD_ENV)
            if side != "crowdkit":
                env["PYTHONPATH"] = str(REPO / "src")
            subprocess.run(
                [python, __file__, "--seg-child", side, str(out), str(n_tasks)], check=True, env=env, timeout=timeout
            )
            res[side] = json.loads(out.read_text())
    print(f"\n### Image segmentation, {n_tasks:,} tasks x 5 answers of 64 x 64 (compat / crowd-kit 1.4.2)\n")
    print("| method | mean IoU | seconds | speed-up |\n|---|---:|---:|---:|")
    for name in SEG_METHODS:
        c, k = res["compat"][name], res["crowdkit"][name]
        print(
            f"| {name} | {c['iou']:.4f} / {k['iou']:.4f} | {c['seconds']:.3f} / {k['seconds']:.3f} | "
            f"{k['seconds'] / c['seconds']:.1f}x |"
        )


def mace_starts_table(root: str) -> None:
    """crowdlearn's MACE from the vote and from the random start (seeds 0-4) on the ten datasets."""
    from crowdlearn.aggregate import MACE
    from crowdlearn.datasets import load_dataset

    names = ["bluebirds", "dog", "rte", "temp", "product", "trec-relevance", "adultcontent2", "music"]
    names += ["labelme", "cifar10n"]
    print("\n### MACE starts: accuracy from the vote and from the random start (seeds 0-4: mean [min, max])\n")
    print("| dataset | EM vote | EM random | VB vote | VB random |\n|---|---:|---:|---:|---:|")
    for n in names:
        ds = load_dataset(n, root=root)
        ann, truth = ds.annotations, ds.truth
        known = truth >= 0
        cells = []
        for kw in ({}, {"method": "vb", "priors": "uniform"}):
            cells.append(f"{(MACE(**kw).fit(ann).labels_[known] == truth[known]).mean():.4f}")
            r = [
                float((MACE(init="random", random_state=s, **kw).fit(ann).labels_[known] == truth[known]).mean())
                for s in range(5)
            ]
            mean = float(np.round(np.mean(r), 10))  # equal runs print as their value
            cells.append(f"{mean:.4f} [{min(r):.4f}, {max(r):.4f}]")
        print(f"| {n} ({ann.n_labels:,} labels) | " + " | ".join(cells) + " |", flush=True)


def run(python: str, side: str, npz: Path, methods: list[str], timeout: float) -> dict[str, Any]:
    out = npz.with_suffix(f".{side}.json")
    env = dict(os.environ, **THREAD_ENV)
    if side != "crowdkit":
        env["PYTHONPATH"] = str(REPO / "src")
    try:
        subprocess.run(
            [python, __file__, "--child", side, str(npz), str(out), *methods], check=True, env=env, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {m: {"error": f"timeout (>{timeout:.0f} s)"} for m in methods}
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def main(argv: list[str]) -> None:
    if argv and argv[0] == "--child":
        child(argv[1], argv[2], argv[3], argv[4:])
        return
    if argv and argv[0] == "--seg-child":
        segmentation_child(argv[1], argv[2], int(argv[3]))
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--crowdkit-python", default=str(HERE / ".venv-crowdkit" / "bin" / "python"))
    p.add_argument("--datasets", nargs="*", default=DATASETS)
    p.add_argument("--methods", nargs="*", default=METHODS)
    p.add_argument("--quick", action="store_true", help="bluebirds and temp only")
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument(
        "--simulate",
        nargs="*",
        type=int,
        default=[],
        help="also simulated Dawid-Skene data of these sizes (labels; K=5, 1,000 annotators, 5 labels per item)",
    )
    p.add_argument("--segmentation", type=int, default=0, help="only the image segmentation table, this many tasks")
    p.add_argument("--mace-starts", action="store_true", help="only the MACE vote-vs-random-start table (native)")
    args = p.parse_args(argv)
    root = os.environ.get("CROWDLEARN_DATA") or str(REPO.parent / "shared" / "data")
    if args.segmentation:
        segmentation_table(args.segmentation, args.crowdkit_python, args.timeout)
        print("\ncommand: PYTHONPATH=src python benchmarks/crowdkit_compat.py " + " ".join(argv))
        return
    if args.mace_starts:
        mace_starts_table(root)
        print("\ncommand: PYTHONPATH=src python benchmarks/crowdkit_compat.py " + " ".join(argv))
        return
    if args.quick:
        args.datasets = ["bluebirds", "temp"]
    from crowdlearn.datasets import load_dataset

    rows_acc: list[str] = []
    rows_time: list[str] = []
    sim_acc: list[str] = []
    sim_time: list[str] = []

    def sources() -> Any:
        for name in args.datasets:
            ds = load_dataset(name, root=root)
            yield name, ds.name, ds.annotations, ds.truth, args.methods
        if args.simulate:
            from aggregation import simulate  # benchmarks/aggregation.py (this folder is on sys.path)
            from crowdlearn.annotations import Annotations

            for n in args.simulate:
                items, annotators, labels, truth = simulate(n, seed=n)
                ann = Annotations(items, annotators, labels, n_items=n // 5, n_annotators=1000, n_classes=5)
                yield f"sim-{n}", f"simulated {n:,}", ann, truth, ["mv", "ds20"]

    with tempfile.TemporaryDirectory() as tmp:
        for name, title, ann, truth, method_list in sources():
            known = np.flatnonzero(truth >= 0)
            gold = known[::2]
            npz = Path(tmp) / f"{name}.npz"
            arrays = dict(
                task=ann.items, worker=ann.annotators, label=ann.labels, gold_task=gold, gold_label=truth[gold]
            )
            np.savez(npz.with_name(npz.stem + "-glad.npz"), **arrays)
            np.savez(
                npz,
                task=ann.items,
                worker=ann.annotators,
                label=ann.labels,
                gold_task=gold,
                gold_label=truth[gold],
            )
            methods = [m for m in method_list if m not in BINARY_ONLY or ann.n_classes == 2]
            res = {side: run(sys.executable, side, npz, methods, args.timeout) for side in ("native", "compat")}
            # crowd-kit's GLAD in a child of its own: it can take minutes (PEERS.md)
            rest = [m for m in methods if m != "glad"]
            res["crowdkit"] = run(args.crowdkit_python, "crowdkit", npz, rest, args.timeout)
            if "glad" in methods:
                res["crowdkit"].update(
                    run(args.crowdkit_python, "crowdkit", npz.with_name(npz.stem + "-glad.npz"), ["glad"], args.timeout)
                )
            acc_cells, time_cells = [], []
            for m in method_list:
                if m not in methods:
                    acc_cells.append("n/a")
                    time_cells.append("n/a")
                    continue
                accs, secs = [], []
                for side in ("native", "compat", "crowdkit"):
                    r = res[side][m]
                    if "error" in r:
                        accs.append(r["error"])
                        secs.append(r["error"])
                        continue
                    pred = np.full(ann.n_items, -1)
                    for k, v in r["pred"].items():
                        pred[int(k)] = v
                    accs.append(f"{(pred[known] == truth[known]).mean():.4f}")
                    secs.append(f"{r['seconds']:.3f}")
                acc_cells.append(" / ".join(accs))
                time_cells.append(" / ".join(secs))
            label = f"{title} ({ann.n_labels:,} labels)"
            sim = name.startswith("sim-")
            (sim_acc if sim else rows_acc).append(f"| {label} | " + " | ".join(acc_cells) + " |")
            (sim_time if sim else rows_time).append(f"| {label} | " + " | ".join(time_cells) + " |")
            print(f"done {name}", file=sys.stderr)
    head = " | ".join(args.methods)
    sep = "|---|" + "---:|" * len(args.methods)
    print("\n### Accuracy (native / compat / crowd-kit 1.4.2)\n")
    print(f"| dataset | {head} |\n{sep}")
    print("\n".join(rows_acc))
    print("\n### fit_predict wall time, seconds (native / compat / crowd-kit 1.4.2)\n")
    print(f"| dataset | {head} |\n{sep}")
    print("\n".join(rows_time))
    if sim_acc:
        print("\n### Simulated data: accuracy and seconds (native / compat / crowd-kit 1.4.2)\n")
        print("| data | MV accuracy | DS-20it accuracy | MV seconds | DS-20it seconds |\n|---|---:|---:|---:|---:|")
        for a, t in zip(sim_acc, sim_time):
            acells, tcells = a.strip("| ").split(" | "), t.strip("| ").split(" | ")
            print(f"| {acells[0]} | {acells[1]} | {acells[2]} | {tcells[1]} | {tcells[2]} |")
    print("\ncommand: PYTHONPATH=src python benchmarks/crowdkit_compat.py " + " ".join(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
