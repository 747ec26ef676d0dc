"""Label aggregation: crowdlearn.aggregate versus crowd-kit 1.4.2, accuracy, speed and memory.

Runs both libraries in child processes (crowd-kit in its own virtualenv, created here with
``python3 -m venv benchmarks/.venv-crowdkit`` and ``pip install crowd-kit==1.4.2`` when absent),
passing the labels through temporary ``.npz`` files, one thread each (BLAS/OpenMP pinned to 1).
Each child reports the wall time of building its input object plus ``fit_predict`` (and, for
``--ingest``, the CPU time of the same span) and its own peak RSS (``getrusage``). Prints markdown
tables and the command line that produced them.

    PYTHONPATH=src .venv/bin/python benchmarks/aggregation.py            # full (about 15-25 min)
    PYTHONPATH=src .venv/bin/python benchmarks/aggregation.py --quick    # small smoke run
    PYTHONPATH=src .venv/bin/python benchmarks/aggregation.py --ingest   # DataFrame API, MV 10M, validate
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORKER = HERE / "_aggregation_worker.py"
CK_VENV = HERE / ".venv-crowdkit"
CK_PYTHON = CK_VENV / "bin" / "python"

DATASETS = [
    "bluebirds",
    "dog",
    "rte",
    "temp",
    "product",
    "trec-relevance",
    "adultcontent2",
    "music",
    "labelme",
    "cifar10n",
]
OURS_REAL = ["mv", "mv-first", "wawa", "ds", "ds:100", "ds-spectral", "onecoin", "glad", "mace"]
CK_REAL = ["mv", "wawa", "ds", "ds:100", "onecoin", "mace"]  # GLAD runs in its own child (slow)
COLUMNS = [
    ("MV", "mv", "mv"),
    ("MV first-class ties", "mv-first", "mv"),
    ("Wawa", "wawa", "wawa"),
    ("DS", "ds", "ds"),
    ("DS-100it", "ds:100", "ds:100"),
    ("DS spectral init", "ds-spectral", None),
    ("OneCoinDS", "onecoin", "onecoin"),
    ("GLAD", "glad", "glad"),
    ("MACE", "mace", "mace"),
]
THREAD_ENV = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def ensure_crowdkit() -> None:
    if CK_PYTHON.exists():
        return
    print(f"creating {CK_VENV} with crowd-kit==1.4.2 ...", file=sys.stderr)
    subprocess.run(["python3", "-m", "venv", str(CK_VENV)], check=True)
    subprocess.run([str(CK_VENV / "bin" / "pip"), "install", "-q", "crowd-kit==1.4.2"], check=True)


def run_child(
    side: str, npz: Path, specs: list[str], timeout: float | None, src: Path | None = None
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Run the worker; return ({spec: info}, {spec: labels}); a timeout keeps finished methods.

    ``src``: the crowdlearn source tree of side "ours" (default this checkout's ``src``).
    """
    out = str(npz.with_suffix("")) + f"-{side}-{abs(hash((tuple(specs), str(src))))}"
    python = str(CK_PYTHON) if side == "crowdkit" else sys.executable
    env = dict(os.environ, **THREAD_ENV)
    if side == "ours":
        env["PYTHONPATH"] = str(src or REPO / "src")
    cmd = [python, str(WORKER), side, str(npz), out, *specs]
    timed_out = False
    try:
        subprocess.run(cmd, check=True, env=env, timeout=timeout, stdout=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        timed_out = True
    except subprocess.CalledProcessError as exc:
        print(f"warning: {side} {specs} failed with exit code {exc.returncode}", file=sys.stderr)
    infos: dict[str, Any] = {}
    preds: dict[str, np.ndarray] = {}
    if Path(out + ".json").exists():
        infos = json.loads(Path(out + ".json").read_text())["methods"]
        with np.load(out + ".npz") as f:
            preds = {k.replace("_", ":"): f[k] for k in f.files}
    for spec in specs:
        if spec not in infos:
            infos[spec] = {"error": f"timeout (>{timeout:.0f} s)" if timed_out else "error"}
    return infos, preds


def save_npz(
    path: Path, items: np.ndarray, annotators: np.ndarray, labels: np.ndarray, n: tuple[int, int, int]
) -> None:
    np.savez(
        path,
        items=items.astype(np.int64),
        annotators=annotators.astype(np.int64),
        labels=labels.astype(np.int64),
        n_items=n[0],
        n_annotators=n[1],
        n_classes=n[2],
    )


def expected_random_tie_accuracy(ann: Any, truth: np.ndarray) -> float:
    """Exact expected accuracy of majority vote with a uniformly random tie-break."""
    votes = ann.vote_counts()
    known = truth >= 0
    v = votes[known]
    tied = v == v.max(axis=1, keepdims=True)
    return float((tied[np.arange(len(v)), truth[known]] / tied.sum(axis=1)).mean())


def fmt_acc(info: dict[str, Any] | None, acc: float | None) -> str:
    if info is None:
        return "-"
    if "error" in info:
        return info["error"]
    return f"{acc:.4f}"


def real_data(args: argparse.Namespace, tmp: Path) -> None:
    from crowdlearn.datasets import load_dataset

    acc_rows, time_rows = [], []
    for name in args.datasets:
        ds = load_dataset(name, root=os.environ.get("CROWDLEARN_DATA") or str(REPO.parent / "shared" / "data"))
        ann, truth = ds.annotations, ds.truth
        npz = tmp / f"{name}.npz"
        save_npz(npz, ann.items, ann.annotators, ann.labels, (ann.n_items, ann.n_annotators, ann.n_classes))
        ours, ours_pred = run_child("ours", npz, OURS_REAL, None)
        ck: dict[str, Any] = {}
        ck_pred: dict[str, np.ndarray] = {}
        if not args.no_crowdkit:
            ck, ck_pred = run_child("crowdkit", npz, CK_REAL, args.timeout)
            g, gp = run_child("crowdkit", npz, ["glad"], args.glad_timeout)
            ck.update(g)
            ck_pred.update(gp)
        known = truth >= 0

        def acc(
            pred: dict[str, np.ndarray], spec: str, known: np.ndarray = known, truth: np.ndarray = truth
        ) -> float | None:
            return float((pred[spec][known] == truth[known]).mean()) if spec in pred else None

        cells, tcells = [], []
        for _, o, c in COLUMNS:
            cells.append(fmt_acc(ours.get(o), acc(ours_pred, o)))
            if c is not None and not args.no_crowdkit:
                cells[-1] += " / " + fmt_acc(ck.get(c), acc(ck_pred, c))
            if c is not None and not args.no_crowdkit and "seconds" in ours.get(o, {}) and "seconds" in ck.get(c, {}):
                tcells.append(f"{ours[o]['seconds']:.3f} / {ck[c]['seconds']:.2f}")
            elif "seconds" in ours.get(o, {}):
                tcells.append(f"{ours[o]['seconds']:.3f} / " + (ck.get(c, {}).get("error", "-") if c else "-"))
            else:
                tcells.append("-")
        cells.append(f"{expected_random_tie_accuracy(ann, truth):.4f}")
        label = f"{ds.name} ({ann.n_labels:,} labels, {int(known.sum()):,} with truth)"
        acc_rows.append(f"| {label} | " + " | ".join(cells) + " |")
        time_rows.append(f"| {ds.name} | " + " | ".join(tcells) + " |")
        print(f"done {name}", file=sys.stderr)
    head = [c[0] for c in COLUMNS]
    print("\n### Accuracy on real data (ours / crowd-kit 1.4.2)\n")
    print("| dataset | " + " | ".join(head) + " | MV random tie-break (expected) |")
    print("|---|" + "---:|" * (len(head) + 1))
    print("\n".join(acc_rows))
    print("\n### Wall time on real data, seconds (ours / crowd-kit 1.4.2)\n")
    print("| dataset | " + " | ".join(head) + " |")
    print("|---|" + "---:|" * len(head))
    print("\n".join(time_rows))


def simulate(
    n_labels: int, seed: int, n_annotators: int = 1000, n_classes: int = 5, per_item: int = 5
) -> tuple[np.ndarray, ...]:
    """Dawid-Skene data: n_labels / per_item items, each labelled by per_item distinct annotators."""
    rng = np.random.default_rng(seed)
    n_items = n_labels // per_item
    M, K = n_annotators, n_classes
    noise = rng.dirichlet(np.ones(K), size=(M, K)).transpose(0, 2, 1)
    diag = rng.uniform(0.3, 0.9, size=M)[:, None, None]
    conf = diag * np.eye(K)[None] + (1 - diag) * noise
    truth = rng.integers(0, K, n_items)
    # distinct annotators per item: a random start plus per_item distinct offsets (rejection on repeats)
    offs = rng.integers(1, M, size=(n_items, per_item - 1))
    while True:
        s = np.sort(offs, axis=1)
        bad = (s[:, 1:] == s[:, :-1]).any(axis=1)
        if not bad.any():
            break
        offs[bad] = rng.integers(1, M, size=(int(bad.sum()), per_item - 1))
    start = rng.integers(0, M, size=(n_items, 1))
    annotators = ((start + np.concatenate([np.zeros((n_items, 1), dtype=np.int64), offs], axis=1)) % M).reshape(-1)
    items = np.repeat(np.arange(n_items), per_item)
    # sample each label: inverse CDF of the column conf[m, :, truth]
    u = rng.random(len(items))
    labels = np.zeros(len(items), dtype=np.int64)
    cum = np.zeros(len(items))
    for k in range(K - 1):  # K passes, no (n_labels, K) array
        cum += conf[annotators, k, truth[items]]
        labels += u > cum
    order = rng.permutation(len(items))  # crowd data rarely arrives sorted by item
    return items[order], annotators[order], labels[order], truth


def scale(args: argparse.Namespace, tmp: Path) -> None:
    rows = []
    for n_labels in args.sizes:
        items, annotators, labels, _ = simulate(n_labels, seed=n_labels)
        npz = tmp / f"sim-{n_labels}.npz"
        save_npz(npz, items, annotators, labels, (n_labels // 5, 1000, 5))
        del items, annotators, labels
        repeats = args.repeats if n_labels <= 1_000_000 else 1
        res: dict[tuple[str, str], dict[str, Any]] = {}
        for side in ("ours", "crowdkit"):
            if side == "crowdkit" and args.no_crowdkit:
                continue
            for spec in ("mv", f"ds:{args.ds_iter}"):
                best: dict[str, Any] | None = None
                for _ in range(repeats):
                    info, _ = run_child(side, npz, [spec], args.timeout if side == "crowdkit" else None)
                    r = info[spec]
                    if "seconds" in r and (best is None or r["seconds"] < best["seconds"]):
                        best = r
                    if "seconds" not in r:
                        best = r
                        break
                res[(side, spec)] = best or {"error": "error"}
        ds = f"ds:{args.ds_iter}"

        def t(side: str, spec: str, res: dict[tuple[str, str], dict[str, Any]] = res) -> str:
            r = res.get((side, spec), {"error": "-"})
            return f"{r['seconds']:.3f}" if "seconds" in r else r["error"]

        def m(side: str, spec: str, res: dict[tuple[str, str], dict[str, Any]] = res) -> str:
            r = res.get((side, spec), {})
            return f"{r['peak_rss_mb']:.0f}" if "peak_rss_mb" in r else "-"

        def ratio(spec: str, res: dict[tuple[str, str], dict[str, Any]] = res) -> str:
            a, b = res.get(("ours", spec), {}), res.get(("crowdkit", spec), {})
            return f"{b['seconds'] / a['seconds']:.1f}x" if "seconds" in a and "seconds" in b else "-"

        rows.append(
            f"| {n_labels:,} | {t('ours', 'mv')} | {t('crowdkit', 'mv')} | {ratio('mv')} | "
            f"{t('ours', ds)} | {t('crowdkit', ds)} | {ratio(ds)} | {m('ours', ds)} | {m('crowdkit', ds)} |"
        )
        print(f"done {n_labels}", file=sys.stderr)
        npz.unlink()
    print(
        f"\n### Scale (simulated: 1,000 annotators, K=5, 5 labels per item; DawidSkene {args.ds_iter} "
        f"iterations on both sides, tol disabled; best of {args.repeats} up to 1M labels, 1 run at 10M)\n"
    )
    print(
        "| labels | MV ours s | MV crowd-kit s | MV speed-up | DS ours s | DS crowd-kit s | DS speed-up "
        "| DS ours peak RSS MB | DS crowd-kit peak RSS MB |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))


def best_of(repeats: int, run: Any) -> dict[str, Any]:
    """The fastest of ``repeats`` results of ``run()`` (a dict with "seconds"), or its first error."""
    return best_interleaved(repeats, {"only": run})["only"]


def best_interleaved(repeats: int, runs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The fastest of ``repeats`` results of each ``runs[name]()``, the runs taking turns (A B A B ...),
    so that a change in the machine's load hits every side alike; a side's first error is its result."""
    best: dict[str, dict[str, Any]] = {}
    for _ in range(repeats):
        for name, run in runs.items():
            if name in best and "seconds" not in best[name]:
                continue
            r = run()
            if "seconds" not in r or name not in best or r["seconds"] < best[name]["seconds"]:
                best[name] = r
    return best


def compile_sources(src: Path) -> None:
    """Write the bytecode of a crowdlearn source tree (``__pycache__``, as an installed package has).

    Without it, and with ``PYTHONDONTWRITEBYTECODE`` set (as on this project's machine), every
    child compiles every crowdlearn module it imports: 0.1-0.2 s of each ``validate``, not code's cost.
    """
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(src / "crowdlearn")], check=True)


def time_validate(csv: Path, src: Path, reader: str) -> dict[str, Any]:
    """Wall and CPU time (user + system, all threads) and minor page faults of one
    ``python -m crowdlearn validate CSV``, interpreter start and imports included."""
    env = dict(os.environ, **THREAD_ENV, PYTHONPATH=str(src), CROWDLEARN_READER=reader)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-m", "crowdlearn", "validate", str(csv)], env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        print(f"warning: validate failed: {res.stderr.strip()[:300]}", file=sys.stderr)
        return {"error": "error"}
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"seconds": seconds, "cpu_seconds": cpu, "minflt": after.ru_minflt - before.ru_minflt}


def ingest(args: argparse.Namespace, tmp: Path) -> None:
    """The DataFrame API against crowd-kit (both sides in this run), MV at 10M, ``validate`` of a CSV."""
    import pandas as pd

    sides = [("ours", REPO / "src")] + ([("before", Path(args.before))] if args.before else [])
    for _, src in sides:
        compile_sources(src)
    rows: list[tuple[str, dict[str, dict[str, Any]]]] = []

    def case(label: str, n_labels: int, spec: str, ck_spec: str | None, ck_timeout: float | None = None) -> None:
        items, annotators, labels, _ = simulate(n_labels, seed=n_labels)
        npz = tmp / f"ingest-{n_labels}.npz"
        if not npz.exists():
            save_npz(npz, items, annotators, labels, (n_labels // 5, 1000, 5))
        res = best_interleaved(
            args.repeats,
            {name: (lambda src=src: run_child("ours", npz, [spec], None, src)[0][spec]) for name, src in sides},
        )
        if ck_spec is not None and not args.no_crowdkit:
            res["crowdkit"] = best_of(
                args.repeats, lambda: run_child("crowdkit", npz, [ck_spec], ck_timeout or args.timeout)[0][ck_spec]
            )
        rows.append((label, res))
        print(f"done {label}", file=sys.stderr)

    ds = f"ds:{args.ds_iter}"
    big, huge, small = (20_000, 50_000, 5_000) if args.quick else (1_000_000, 10_000_000, 100_000)
    case(f"DawidSkene ({args.ds_iter} it), DataFrame API, {big:,} labels", big, f"df-{ds}", ds)
    case(f"MajorityVote, DataFrame API, {big:,} labels", big, "df-mv", "mv")
    case(f"MajorityVote, DataFrame API, {huge:,} labels", huge, "df-mv", "mv")
    case(f"MajorityVote, Annotations from int arrays, {huge:,} labels", huge, "mv", None)
    case(f"MajorityVote.fit_predict on built Annotations, {huge:,} labels", huge, "fit-mv", None)
    it = f":{args.ds_iter}"
    for name, spec in (
        (f"OneCoinDawidSkene ({args.ds_iter} it)", "onecoin" + it),
        (f"GLAD ({args.ds_iter} it)", "glad" + it),
        ("MACE (defaults)", "mace"),
    ):
        case(f"{name}, DataFrame API, {small:,} labels", small, f"df-{spec}", spec, args.glad_timeout)
    for f in tmp.glob("ingest-*.npz"):
        f.unlink()
    n_csv = 20_000 if args.quick else args.csv_lines
    items, annotators, labels, _ = simulate(n_csv, seed=n_csv)
    csv = tmp / "labels.csv"
    pd.DataFrame({"item": items, "annotator": annotators, "label": labels}).to_csv(csv, index=False)
    del items, annotators, labels
    runs = {
        f"{name} {reader}": (lambda src=src, reader=reader: time_validate(csv, src, reader))
        for reader in ("pyarrow", "pandas")
        for name, src in sides
    }
    best = best_interleaved(args.repeats, runs)
    for reader in ("pyarrow", "pandas"):
        res = {name: best[f"{name} {reader}"] for name, _ in sides}
        rows.append((f"`crowdlearn validate` of a {n_csv:,}-line CSV (CROWDLEARN_READER={reader})", res))
    print("done validate", file=sys.stderr)
    csv.unlink()

    def t(r: dict[str, Any] | None, key: str = "seconds") -> str:
        if r is None:
            return "-"
        if "seconds" not in r:
            return str(r.get("error", "-"))
        return f"{r[key]:.3f}" if key in r else "-"

    def ratio(o: dict[str, Any] | None, c: dict[str, Any] | None, key: str) -> str:
        return f"{c[key] / o[key]:.1f}x" if o and c and key in o and key in c else "-"

    sides_head = ["ours"] + (["before"] if args.before else []) + ["crowd-kit"]
    print(
        f"\n### Ingest and the DataFrame API (simulated: 1,000 annotators, K=5, 5 labels per item; best of "
        f"{args.repeats} by wall time; CPU = user + system time of that run)\n"
    )
    print(
        "| case | "
        + " | ".join(f"{side} s | {side} CPU s" for side in sides_head)
        + " | crowd-kit / ours | crowd-kit / ours, CPU |"
    )
    print("|---|" + "---:|---:|" * len(sides_head) + "---:|---:|")
    for label, res in rows:
        o, c = res.get("ours"), res.get("crowdkit")
        cells = [f"{t(res.get(k))} | {t(res.get(k), 'cpu_seconds')}" for k in ("ours", "before", "crowdkit")]
        if not args.before:
            del cells[1]
        print(f"| {label} | " + " | ".join(cells) + f" | {ratio(o, c, 'seconds')} | {ratio(o, c, 'cpu_seconds')} |")
    print("\nMinor page faults of the same runs (the timed span; a fault maps up to one 2 MB huge page):\n")
    print("| case | " + " | ".join(f"{side} faults" for side in sides_head[:-1]) + " |")
    print("|---|" + "---:|" * (len(sides_head) - 1))
    for label, res in rows:
        faults = [str(res.get(k, {}).get("minflt", "-")) for k in ("ours", "before")][: len(sides_head) - 1]
        print(f"| {label} | " + " | ".join(faults) + " |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="3 small datasets and 100k labels only")
    p.add_argument("--datasets", nargs="*", default=None)
    p.add_argument("--sizes", type=lambda s: [int(float(x)) for x in s.split(",")], default=None)
    p.add_argument("--no-crowdkit", action="store_true")
    p.add_argument("--no-real", action="store_true")
    p.add_argument("--no-scale", action="store_true")
    p.add_argument("--ingest", action="store_true", help="only the ingest / DataFrame API / validate table")
    p.add_argument("--before", default=None, help="another crowdlearn src folder timed beside ours (e.g. main's)")
    p.add_argument("--csv-lines", type=int, default=5_000_000, help="lines of the CSV given to validate")
    p.add_argument("--ds-iter", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per crowd-kit child")
    p.add_argument(
        "--glad-timeout",
        type=float,
        default=60.0,
        help="seconds for crowd-kit GLAD per dataset (--ingest: GLAD, MACE, OneCoin)",
    )
    args = p.parse_args()
    if args.datasets is None:
        args.datasets = ["bluebirds", "dog", "rte"] if args.quick else DATASETS
    if args.sizes is None:
        args.sizes = [100_000] if args.quick else [100_000, 1_000_000, 10_000_000]
    if not args.no_crowdkit:
        ensure_crowdkit()
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="crowdlearn-agg-") as d:
        if args.ingest:
            ingest(args, Path(d))
        else:
            if not args.no_real:
                real_data(args, Path(d))
            if not args.no_scale:
                scale(args, Path(d))
    print(
        f"\nCommand: `PYTHONPATH=src python benchmarks/aggregation.py {' '.join(sys.argv[1:])}`".rstrip()
        + f" ({time.time() - t0:.0f} s)"
    )


if __name__ == "__main__":
    main()
