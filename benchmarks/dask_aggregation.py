"""Truth inference past one machine: the Dask backend against the in-memory fit, out of core, many classes.

Writes simulated labels as a Parquet dataset (in chunks: no process ever holds all rows), then
runs, each in its own child process (peak memory = the child's ``ru_maxrss``, and for the Dask
runs each worker's own ``ru_maxrss``):

* ``memory``: the in-memory ``DawidSkene`` on the first ``--memory-labels`` labels (read with
  pandas into :class:`Annotations`);
* ``dask``: ``DawidSkene`` on the whole dataset over a ``LocalCluster`` (2 worker processes, one
  thread each), encoded partitions persisted on the workers;
* ``ooc``: the same with ``persist=False`` (every pass re-reads the Parquet files) under a worker
  memory limit well below the data size;
* ``classes``: K = 1,000 classes and 100,000 annotators in memory: the budget error of
  ``DawidSkene`` and the fits of ``OneCoinDawidSkene`` and ``ClusteredDawidSkene``.

EM runs a fixed number of iterations (``tol=0``); the time per iteration is the mean gap
between the EM callbacks (setup = reading, id encoding and the first pass, reported apart).

    PYTHONPATH=src nice -n 10 .venv/bin/python benchmarks/dask_aggregation.py --labels 100000000 --data /tmp/h15-data
    PYTHONPATH=src .venv/bin/python benchmarks/dask_aggregation.py --quick      # 2M labels smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

# benchmarks/distributed.py (the torch benchmark) would shadow the `distributed` package
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

K = 5
N_ANNOTATORS = 1000
PER_ITEM = 5
CHUNK_LABELS = 2_500_000
THREADS = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def generate(folder: Path, n_labels: int, seed: int = 0) -> None:
    """``n_labels`` labels (K=5, 1,000 annotators, 5 per item) as Parquet files of 2.5M labels, item order."""
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    diag = rng.uniform(0.5, 0.9, N_ANNOTATORS)
    noise = rng.dirichlet(np.ones(K), size=(N_ANNOTATORS, K)).transpose(0, 2, 1)
    conf = (1 - diag)[:, None, None] * noise + diag[:, None, None] * np.eye(K)[None]
    cum = conf.cumsum(axis=1)  # (M, K said, K true)
    n_items_chunk = CHUNK_LABELS // PER_ITEM
    item0 = 0
    for c in range((n_labels + CHUNK_LABELS - 1) // CHUNK_LABELS):
        n_items = min(n_items_chunk, (n_labels - c * CHUNK_LABELS) // PER_ITEM)
        truth = rng.integers(0, K, n_items)
        # PER_ITEM distinct annotators: a random start and a fixed stride
        start = rng.integers(0, N_ANNOTATORS, n_items)
        ann = (start[:, None] + np.arange(PER_ITEM)[None] * (N_ANNOTATORS // PER_ITEM)) % N_ANNOTATORS
        ann = ann.reshape(-1)
        t = np.repeat(truth, PER_ITEM)
        u = rng.random(len(ann))
        labels = (u[:, None] > cum[ann, :, t]).sum(axis=1).clip(max=K - 1)
        frame = pd.DataFrame(
            {
                "task": np.repeat(np.arange(item0, item0 + n_items, dtype=np.int64), PER_ITEM),
                "worker": ann.astype(np.int32),
                "label": labels.astype(np.int8),
            }
        )
        frame.to_parquet(folder / f"part-{c:05d}.parquet", index=False)
        item0 += n_items


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Clock:
    """EM callback recording the time of each iteration."""

    def __init__(self) -> None:
        self.times: list[float] = [time.perf_counter()]

    def __call__(self, done: int, ll: float) -> None:
        self.times.append(time.perf_counter())

    def per_iteration(self) -> float:
        gaps = np.diff(self.times[1:])  # from the first iteration's end: setup excluded
        return float(gaps.mean()) if len(gaps) else float("nan")


def child_memory(folder: Path, n_labels: int, n_iter: int) -> dict[str, Any]:
    import pandas as pd

    from crowdlearn.aggregate import DawidSkene
    from crowdlearn.annotations import Annotations

    files = sorted(folder.glob("*.parquet"))[: max(1, n_labels // CHUNK_LABELS)]
    t0 = time.perf_counter()
    df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    ann = Annotations(df["task"].to_numpy(), df["worker"].to_numpy(), df["label"].to_numpy())
    del df
    t_read = time.perf_counter() - t0
    clock = Clock()
    t1 = time.perf_counter()
    ds = DawidSkene(n_iter=n_iter, tol=0).fit(ann, callback=clock)
    return {
        "labels": ann.n_labels,
        "read_s": t_read,
        "fit_s": time.perf_counter() - t1,
        "per_iter_s": clock.per_iteration(),
        "first_iter_s": clock.times[1] - t1,
        "peak_mb": peak_mb(),
        "ll": ds.log_likelihood_[-1],
    }


def child_dask(folder: Path, n_iter: int, memory_limit: str, persist: bool) -> dict[str, Any]:
    from crowdlearn.aggregate import DawidSkene
    from crowdlearn.aggregate.dask_backend import fit_dask, read_parquet_labels
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            memory_limit=memory_limit,
            dashboard_address=":0",
            scheduler_port=0,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(lambda: __import__("crowdlearn.aggregate.dask_backend"))  # imports off the clock
        frame = read_parquet_labels(folder)
        clock = Clock()
        t0 = time.perf_counter()
        ds = fit_dask(DawidSkene(n_iter=n_iter, tol=0), frame, callback=clock, persist=persist)
        fit_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        n_out = int(ds.labels_frame_.map_partitions(len).sum().compute())
        out_s = time.perf_counter() - t1
        peaks = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        spilled = client.run(lambda dask_worker: [int(v) for v in getattr(dask_worker.data, "spilled_total", (0, 0))])
        return {
            "labels": int(frame.map_partitions(len).sum().compute()),
            "partitions": frame.npartitions,
            "fit_s": fit_s,
            "setup_s": clock.times[1] - t0 if len(clock.times) > 1 else float("nan"),
            "per_iter_s": clock.per_iteration(),
            "outputs_s": out_s,
            "items": n_out,
            "worker_peak_mb": sorted(peaks.values()),
            "spilled": spilled,
            "client_peak_mb": peak_mb(),
            "memory_limit": memory_limit,
            "persist": persist,
            "ll": ds.log_likelihood_[-1],
        }


def child_classes(n_items: int, n_iter: int) -> dict[str, Any]:
    from crowdlearn.aggregate import ClusteredDawidSkene, ConfusionBudgetError, DawidSkene, OneCoinDawidSkene
    from crowdlearn.annotations import Annotations

    rng = np.random.default_rng(1)
    Kc, M = 1000, 100_000
    truth = rng.integers(0, Kc, n_items)
    annotators = rng.choice(M, size=(n_items, PER_ITEM), replace=True)
    skill = rng.uniform(0.3, 0.9, M)
    items = np.repeat(np.arange(n_items), PER_ITEM)
    a = annotators.reshape(-1)
    right = rng.random(len(a)) < skill[a]
    labels = np.where(right, truth[items], rng.integers(0, Kc, len(a)))
    ann = Annotations(items, a, labels, n_annotators=M, n_classes=Kc, on_duplicate="first")
    out: dict[str, Any] = {"labels": ann.n_labels, "items": n_items, "annotators": M, "classes": Kc}
    try:
        DawidSkene().fit(ann)
    except ConfusionBudgetError as exc:
        out["ds_error"] = str(exc)
    for name, est in (
        ("onecoin", OneCoinDawidSkene(n_iter=n_iter, tol=0)),
        ("clustered", ClusteredDawidSkene(n_clusters=10, n_iter=n_iter, tol=0, smoothing=0.01)),
        ("clustered-ml", ClusteredDawidSkene(n_clusters=10, n_iter=n_iter, tol=0)),
    ):
        before = peak_mb()
        t0 = time.perf_counter()
        est.fit(ann)
        out[name] = {
            "fit_s": time.perf_counter() - t0,
            "accuracy": float((est.labels_ == truth).mean()),
            "peak_mb": peak_mb(),
            "peak_before_mb": before,
        }
    out["mv_accuracy"] = float(((ann.vote_counts().argmax(axis=1)) == truth).mean())
    return out


def run_child(*args: str) -> dict[str, Any]:
    env = dict(os.environ, **THREADS)
    proc = subprocess.run(
        [sys.executable, __file__, "_child", *args], env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--labels", type=int, default=100_000_000)
    ap.add_argument("--memory-labels", type=int, default=10_000_000)
    ap.add_argument("--data", type=Path, default=Path("/tmp/crowdlearn-dask-bench"))
    ap.add_argument("--n-iter", type=int, default=10)
    ap.add_argument("--worker-memory", default="4GiB")
    ap.add_argument("--ooc-memory", default="700MiB")
    ap.add_argument("--ooc-iter", type=int, default=3, help="EM iterations of the out-of-core run")
    ap.add_argument("--classes-items", type=int, default=20_000)
    ap.add_argument("--steps", default="memory,dask,ooc,classes")
    ap.add_argument("--keep", action="store_true", help="keep the Parquet dataset")
    ap.add_argument("--quick", action="store_true", help="2M labels, 3 iterations")
    args = ap.parse_args()
    if args.quick:
        args.labels, args.memory_labels, args.n_iter, args.classes_items = 2_500_000 * 2, 2_500_000, 3, 5000
        args.ooc_iter = 3
    steps = args.steps.split(",")
    print(f"command: {' '.join(sys.argv)}", flush=True)
    print(f"load before: {os.getloadavg()}", flush=True)
    results: dict[str, Any] = {}
    try:
        if any(s in steps for s in ("memory", "dask", "ooc")):
            if not args.data.exists():
                t0 = time.perf_counter()
                # in a child: Linux keeps ru_maxrss across fork + exec, so this process stays small
                run_child("generate", str(args.data), str(args.labels))
                print(f"generated {args.labels} labels in {time.perf_counter() - t0:.1f} s", flush=True)
            size = sum(f.stat().st_size for f in args.data.glob("*.parquet"))
            print(f"dataset {args.data}: {size / 1e6:.0f} MB of Parquet", flush=True)
        if "memory" in steps:
            results["memory"] = run_child("memory", str(args.data), str(args.memory_labels), str(args.n_iter))
            print(json.dumps({"memory": results["memory"]}), flush=True)
        if "dask" in steps:
            results["dask"] = run_child("dask", str(args.data), str(args.n_iter), args.worker_memory, "1")
            print(json.dumps({"dask": results["dask"]}), flush=True)
        if "ooc" in steps:
            results["ooc"] = run_child("dask", str(args.data), str(args.ooc_iter), args.ooc_memory, "0")
            print(json.dumps({"ooc": results["ooc"]}), flush=True)
        if "classes" in steps:
            results["classes"] = run_child("classes", str(args.classes_items), str(args.n_iter))
            print(json.dumps({"classes": results["classes"]}), flush=True)
    finally:
        if not args.keep and args.data.exists():
            shutil.rmtree(args.data)
    print(f"load after: {os.getloadavg()}")
    print(f"peak memory of this (parent) process: {peak_mb():.0f} MB")
    print_tables(results)


def print_tables(r: dict[str, Any]) -> None:
    print("\n| run | labels | workers x memory limit | setup s | s per EM iteration | peak memory |")
    print("|---|---:|---|---:|---:|---|")
    if "memory" in r:
        m = r["memory"]
        print(
            f"| in memory (one process) | {m['labels']:,} | 1 process | {m['read_s'] + m['first_iter_s']:.1f} | "
            f"{m['per_iter_s']:.2f} | {m['peak_mb']:.0f} MB |"
        )
    for key, name in (("dask", "Dask, persisted"), ("ooc", "Dask, out of core (persist=False)")):
        if key in r:
            d = r[key]
            peaks = " / ".join(f"{p:.0f}" for p in d["worker_peak_mb"])
            print(
                f"| {name} | {d['labels']:,} | 2 x {d['memory_limit']} | {d['setup_s']:.1f} | {d['per_iter_s']:.2f} | "
                f"workers {peaks} MB, client {d['client_peak_mb']:.0f} MB |"
            )
    if "classes" in r:
        c = r["classes"]
        print(f"\nK = {c['classes']:,}, {c['annotators']:,} annotators, {c['labels']:,} labels ({c['items']:,} items)")
        print(f"DawidSkene: {c.get('ds_error', 'no error')}")
        print("\n| method | fit s | accuracy | process peak memory |")
        print("|---|---:|---:|---:|")
        print(f"| majority vote | | {c['mv_accuracy']:.4f} | |")
        for name in ("onecoin", "clustered", "clustered-ml"):
            e = c[name]
            print(f"| {name} | {e['fit_s']:.1f} | {e['accuracy']:.4f} | {e['peak_mb']:.0f} MB |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        kind, rest = sys.argv[2], sys.argv[3:]
        if kind == "generate":
            generate(Path(rest[0]), int(rest[1]))
            res = {}
        elif kind == "memory":
            res = child_memory(Path(rest[0]), int(rest[1]), int(rest[2]))
        elif kind == "dask":
            res = child_dask(Path(rest[0]), int(rest[1]), rest[2], rest[3] == "1")
        else:
            res = child_classes(int(rest[0]), int(rest[1]))
        print(json.dumps(res))
    else:
        main()
