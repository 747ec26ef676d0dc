"""Child process of benchmarks/aggregation.py: run one side (ours or crowd-kit) on one input.

Runs under either interpreter (our virtualenv, or the crowd-kit one), so only numpy and pandas are
imported at the top; crowdlearn or crowdkit are imported by the side that needs them. Reads an
``.npz`` with int arrays ``items``, ``annotators``, ``labels`` and sizes; writes a JSON with the
wall time of each method (including building the method's input object from the int arrays:
``Annotations`` for ours, the task/worker/label DataFrame for crowd-kit), the EM iterations and
this process's peak RSS, plus an ``.npz`` of predicted labels (-1 where a method gave none).

    python _aggregation_worker.py ours|crowdkit INPUT.npz OUTPUT_PREFIX [df-]METHOD[:N_ITER] ...

``df-ds:20`` runs ours through the DataFrame API (``fit_predict(df)`` with task/worker/label
columns built from the int arrays, the DataFrame included in the time), exactly as crowd-kit runs.
``fit-mv`` times ``fit_predict`` alone, on ``Annotations`` built before the clock starts. Every
method also reports ``cpu_seconds``, the CPU time of this process over the same span
(``time.process_time``), which a busy machine inflates less than the wall time, and (ours)
``minflt``, the minor page faults of that span (first touches of fresh memory).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from typing import Any

import numpy as np
import pandas as pd


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MB (Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_ours(data: Any, method: str, n_iter: int | None) -> tuple[np.ndarray, dict[str, Any]]:
    """``df-<method>``: through the crowd-kit style DataFrame API, as crowd-kit is called."""
    from crowdlearn.aggregate import GLAD, MACE, DawidSkene, MajorityVote, OneCoinDawidSkene, Wawa
    from crowdlearn.annotations import Annotations

    frame = method.startswith("df-")
    prebuilt = method.startswith("fit-")
    method = method.removeprefix("df-").removeprefix("fit-")

    def build() -> Any:
        if frame:
            return pd.DataFrame({"task": data["items"], "worker": data["annotators"], "label": data["labels"]})
        return Annotations(
            data["items"],
            data["annotators"],
            data["labels"],
            n_items=int(data["n_items"]),
            n_annotators=int(data["n_annotators"]),
            n_classes=int(data["n_classes"]),
        )

    ann: Any = build() if prebuilt else None
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t0, c0 = time.perf_counter(), time.process_time()
    if not prebuilt:
        ann = build()
    em: dict[str, Any] = {} if n_iter is None else {"n_iter": n_iter, "tol": 0.0}
    agg: Any = {
        "mv": lambda: MajorityVote(),
        "mv-first": lambda: MajorityVote(tie_break="first"),
        "wawa": lambda: Wawa(),
        "ds": lambda: DawidSkene(**em),
        "ds-spectral": lambda: DawidSkene(init="spectral", **em),
        "onecoin": lambda: OneCoinDawidSkene(**em),
        "glad": lambda: GLAD(**em),
        "mace": lambda: MACE(**em),
    }[method]()
    labels = agg.fit_predict(ann)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
    if frame:
        labels = labels.reindex(np.arange(int(data["n_items"]))).fillna(-1).to_numpy().astype(np.int64)
    info = {"seconds": seconds, "cpu_seconds": cpu, "minflt": faults, "n_iter": getattr(agg, "n_iter_", None)}
    return np.asarray(labels), info


def run_crowdkit(data: Any, method: str, n_iter: int | None) -> tuple[np.ndarray, dict[str, Any]]:
    import crowdkit.aggregation as ck
    import crowdkit.aggregation.classification.wawa as ck_wawa

    # Wawa calls sklearn's check_is_fitted on a non-estimator; it crashes under scikit-learn
    # >= 1.6 (see PEERS.md). Patch the check out, as PEERS.md did for its Wawa* column.
    ck_wawa.check_is_fitted = lambda *args, **kwargs: None  # type: ignore[attr-defined]
    t0, c0 = time.perf_counter(), time.process_time()
    df = pd.DataFrame({"task": data["items"], "worker": data["annotators"], "label": data["labels"]})
    em: dict[str, Any] = {} if n_iter is None else {"n_iter": n_iter, "tol": -np.inf}
    agg: Any = {
        "mv": lambda: ck.MajorityVote(),
        "wawa": lambda: ck.Wawa(),
        "ds": lambda: ck.DawidSkene(**em) if em else ck.DawidSkene(),
        "onecoin": lambda: ck.OneCoinDawidSkene(**em) if em else ck.OneCoinDawidSkene(),
        "glad": lambda: ck.GLAD(**em) if em else ck.GLAD(),
        "mace": lambda: ck.MACE(),
    }[method]()
    pred = agg.fit_predict(df)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    n_items = int(data["n_items"])
    labels = pred.reindex(np.arange(n_items)).fillna(-1).to_numpy().astype(np.int64)
    return labels, {"seconds": seconds, "cpu_seconds": cpu, "n_iter": None}


def main(argv: list[str]) -> None:
    side, path, out = argv[0], argv[1], argv[2]
    with np.load(path) as f:
        data = {k: f[k] for k in f.files}
    results: dict[str, Any] = {"rss_after_load_mb": peak_rss_mb(), "methods": {}}
    preds: dict[str, np.ndarray] = {}
    for spec in argv[3:]:
        method, _, it = spec.partition(":")
        n_iter = int(it) if it else None
        run = run_ours if side == "ours" else run_crowdkit
        labels, info = run(data, method if side == "ours" else method.removeprefix("df-"), n_iter)
        info["peak_rss_mb"] = peak_rss_mb()
        results["methods"][spec] = info
        preds[spec.replace(":", "_")] = labels
        # write after every method so a timeout keeps what finished
        np.savez(out + ".npz", **preds)
        with open(out + ".json", "w") as fh:
            json.dump(results, fh)


if __name__ == "__main__":
    main(sys.argv[1:])
