"""Data-parallel training on the CPU (gloo): 1 process vs 2 processes under torchrun.

Trains ``CrowdClassifier(method="geocrowdnet-f")`` (built-in MLP backbone) on a simulated crowd
(20,000 items x 50 annotators, 5 classes, each label observed with p=0.1, 32 Gaussian features)
for a fixed number of epochs without validation, and times ``fit`` on rank 0 (after a barrier;
process start-up and data simulation excluded, reported separately as the wall time of the whole
command). Rows:

- one plain process (no process group), 1 intra-op thread (a 2-thread row was dropped: with
  another job on one of the 2 cores, OpenMP's 2 threads ran more than 10x slower);
- ``torchrun --standalone --nproc_per_node=1`` and ``=2`` (1 thread per process), at the same
  per-process batch (the effective batch doubles with 2 processes) and at the same effective batch.

Usage::

    python benchmarks/distributed.py            # runs every row, prints the table and the command
    python benchmarks/distributed.py --epochs 3 --items 4000   # a quick check

The script is also its own worker (``--worker OUT.json``, launched by the driver).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def worker(args: argparse.Namespace) -> None:
    import torch

    from crowdlearn.estimators import CrowdClassifier
    from crowdlearn.simulate import diagonally_dominant_confusions, simulate_crowd
    from crowdlearn.train import distributed as dist_utils

    torch.set_num_threads(args.threads)
    launched = "RANK" in os.environ
    if launched:
        dist_utils.init_from_env("gloo")
    rng = np.random.default_rng(0)
    conf = diagonally_dominant_confusions(args.annotators, 5, random_state=rng)
    crowd = simulate_crowd(conf, n_items=args.items, p=0.1, random_state=rng)
    y = crowd.true_labels
    X = (rng.normal(size=(args.items, 32)) + 2.0 * np.eye(5, 32)[y]).astype(np.float32)
    clf = CrowdClassifier(
        method="geocrowdnet-f",
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation="none",
        device="cpu",
        random_state=0,
        distributed=launched,
    )
    dist_utils.barrier()
    t0 = time.perf_counter()
    clf.fit(X, crowd.annotations)
    dist_utils.barrier()
    seconds = time.perf_counter() - t0
    if dist_utils.is_main_process():
        out = {
            "fit_s": seconds,
            "acc": float(clf.score(X, y)),
            "world": dist_utils.world_size(),
            "n_labels": int(crowd.annotations.n_labels),
            "train_loss": float(clf.history_[-1]["train_loss"]),
        }
        Path(args.worker).write_text(json.dumps(out), encoding="utf-8")
    dist_utils.destroy()


def run_row(procs: int | None, threads: int, batch: int, args: argparse.Namespace) -> dict[str, float]:
    """procs None: a plain process; else torchrun with that many processes."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        common = [
            str(Path(__file__).resolve()),
            "--worker",
            str(out),
            "--threads",
            str(threads),
            "--batch-size",
            str(batch),
            "--epochs",
            str(args.epochs),
            "--items",
            str(args.items),
            "--annotators",
            str(args.annotators),
        ]
        if procs is None:
            cmd = [sys.executable, *common]
        else:
            torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
            cmd = [torchrun, "--standalone", f"--nproc_per_node={procs}", *common]
        env = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS=str(threads))
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=3600)
        wall = time.perf_counter() - t0
        res: dict[str, float] = json.loads(out.read_text(encoding="utf-8"))
        res["wall_s"] = wall
        return res


def main() -> None:
    parser = argparse.ArgumentParser(description="1 vs 2 processes of data-parallel CrowdClassifier training")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--annotators", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128, help="per-process batch of the 1-process rows")
    args = parser.parse_args()
    if args.worker is not None:
        worker(args)
        return
    b = args.batch_size
    rows = [
        ("plain process, 1 thread", None, 1, b),
        ("torchrun, 1 process", 1, 1, b),
        ("torchrun, 2 processes (same per-process batch)", 2, 1, b),
        ("torchrun, 2 processes (same effective batch)", 2, 1, b // 2),
    ]
    base = None
    lines = [
        "| run | processes x threads | batch per process | effective batch | fit (s) | s / epoch "
        "| speed-up vs 1 thread | wall incl. start-up (s) | train accuracy |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    n_labels = 0
    load_before = os.getloadavg()[0]
    for name, procs, threads, batch in rows:
        res = run_row(procs, threads, batch, args)
        n_labels = int(res["n_labels"])
        world = int(res["world"])
        base = base or res["fit_s"]
        lines.append(
            f"| {name} | {procs or 1} x {threads} | {batch} | {batch * world} | {res['fit_s']:.2f} "
            f"| {res['fit_s'] / args.epochs:.3f} | {base / res['fit_s']:.2f} | {res['wall_s']:.1f} | {res['acc']:.4f} |"
        )
        print(lines[-1], file=sys.stderr, flush=True)
    print(
        f"CrowdClassifier(method='geocrowdnet-f', MLP backbone), {args.items} items x {args.annotators} annotators, "
        f"{n_labels} labels, 5 classes, {args.epochs} epochs, validation='none'; "
        f"{os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}, torch gloo backend; "
        f"1-minute load average {load_before:.2f} before and {os.getloadavg()[0]:.2f} after the runs "
        "(other jobs share the cores).\n"
    )
    print("\n".join(lines))
    extra = [f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k not in ("worker", "threads")]
    print(f"\nCommand: `python benchmarks/distributed.py {' '.join(extra)}`")


if __name__ == "__main__":
    main()
