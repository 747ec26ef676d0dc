"""Quality control (crowdlearn.quality) measured on the published examples and the real datasets.

Three parts, each printing a markdown table and the command that made it:

``--part agreement``
    Krippendorff's alpha (nominal, ordinal, interval, ratio), Fleiss' kappa and Cohen's kappa on
    the published worked examples (Krippendorff 2011, Fleiss 1971 as on Wikipedia, Cohen's
    two-reader textbook table), then crowdlearn's nominal alpha against crowd-kit 1.4.2's
    ``crowdkit.metrics.data.alpha_krippendorff`` (in its own virtualenv, ``--crowdkit-python``)
    on every real dataset with annotators, with our Fleiss' kappa, raw agreement and mean
    pairwise Cohen's kappa beside it.
``--part crowdlab``
    crowdlearn's :func:`~crowdlearn.quality.crowdlab` against cleanlab's CROWDLAB
    (``cleanlab.multiannotator.get_label_quality_multiannotator``, in its own virtualenv,
    ``--cleanlab-python``), both given the same predicted probabilities, on the ten real
    datasets with truth: consensus accuracy (items with truth), the AUROC of each item score at
    finding the items whose consensus is wrong (the method's own consensus; a lower score should
    mean more likely wrong), and the Spearman correlation of the annotator quality scores with
    each annotator's accuracy on the items with truth (annotators with >= 10 such labels).
    Predicted probabilities: Music and LabelMe, 5-fold out-of-fold ``CrowdClassifier`` (defaults,
    seed 0) predictions; the other eight datasets have no features here, so the "model" is the
    Dawid-Skene posterior (crowdlearn's ``DawidSkene()``) for both sides.
``--part filter``
    The ambiguity filter on Music and LabelMe: ``CrowdClassifier`` (defaults) trained with a
    :class:`~crowdlearn.train.MarginRecorder`, :func:`~crowdlearn.quality.waum` of every item,
    the lowest 5% / 10% dropped by :func:`~crowdlearn.quality.filter_ambiguous` and the model
    retrained on the rest (same seed); the same number of random items dropped as a control.
    Test accuracy, mean ± std over the seeds; and the share of dropped items whose majority vote
    is wrong (against the overall share).

Run (one torch thread; the machine is shared, see the load printed with each table):

    PYTHONPATH=src python benchmarks/quality.py --part agreement --crowdkit-python /tmp/h16a-ck-venv/bin/python
    PYTHONPATH=src python benchmarks/quality.py --part crowdlab --cleanlab-python /tmp/h16a-cl-venv/bin/python
    PYTHONPATH=src python benchmarks/quality.py --part filter --seeds 3

The children (``--child crowdkit|cleanlab IN OUT``) import only numpy, pandas and the peer.
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
WITH_TRUTH = [
    "music",
    "labelme",
    "bluebirds",
    "dog",
    "rte",
    "temp",
    "product",
    "trec-relevance",
    "adultcontent2",
    "cifar10n",
]
WITH_FEATURES = {"music", "labelme"}


# --------------------------------------------------------------------------- children (peer venvs)
def child(side: str, path: str, out: str) -> None:
    with np.load(path) as f:
        items, workers, labels = f["items"], f["annotators"], f["labels"]
        proba = f["proba"] if "proba" in f.files else None
    result: dict[str, Any] = {}
    if side == "crowdkit":
        from crowdkit.metrics.data import alpha_krippendorff

        t0 = time.perf_counter()  # the call only, not the import
        df = pd.DataFrame({"task": items, "worker": workers, "label": labels})
        result["alpha"] = float(alpha_krippendorff(df))
    else:
        from cleanlab.multiannotator import get_label_quality_multiannotator

        t0 = time.perf_counter()  # includes building cleanlab's dense (N, M) input
        n, m = int(items.max()) + 1, int(workers.max()) + 1
        dense = np.full((n, m), np.nan)  # cleanlab's input form (N x M with NaN)
        dense[items, workers] = labels
        res = get_label_quality_multiannotator(
            pd.DataFrame(dense), proba, consensus_method="best_quality", return_weights=True, verbose=False
        )
        lq = res["label_quality"]
        stats = res["annotator_stats"].sort_index()
        result = {
            "consensus": lq["consensus_label"].astype(int).tolist(),
            "consensus_quality": lq["consensus_quality_score"].astype(float).tolist(),
            "agreement": lq["annotator_agreement"].astype(float).tolist(),
            "annotator_quality": stats["annotator_quality"].astype(float).tolist(),
            "annotator_index": [int(i) for i in stats.index],
            "model_weight": float(res["model_weight"]),
            "annotator_weight": [float(v) for v in res["annotator_weight"]],
        }
    result["seconds"] = time.perf_counter() - t0
    Path(out).write_text(json.dumps(result))


def run_child(python: str, side: str, arrays: dict[str, np.ndarray], timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="crowdlearn-quality-") as tmp:
        npz, out = Path(tmp) / "in.npz", Path(tmp) / "out.json"
        np.savez(npz, **arrays)
        try:
            proc = subprocess.run(
                [python, __file__, "--child", side, str(npz), str(out)],
                env=dict(os.environ, **THREAD_ENV),
                timeout=timeout,
                capture_output=True,
                text=True,
            )
        except subprocess.TimeoutExpired:
            return {"error": f"timeout (>{timeout:.0f} s)"}
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["?"])[-1]
            return {"error": last[:120]}
        out_json: dict[str, Any] = json.loads(out.read_text())
        return out_json


# --------------------------------------------------------------------------- helpers
def load(name: str) -> Any:
    from crowdlearn.datasets import load_dataset

    return load_dataset(name)


def labelled_only(ann: Any, truth: np.ndarray) -> tuple[Any, np.ndarray]:
    """Items with labels and annotators with labels (cleanlab refuses empty ones), re-indexed."""
    keep = np.flatnonzero(ann.item_counts > 0)
    sub = ann.subset_items(keep)
    active = np.flatnonzero(sub.annotator_counts > 0)
    return sub.subset_annotators(active), truth[keep]


def load_line() -> str:
    try:
        return " ".join(os.getloadavg().__repr__().strip("()").split(", ")[:3])
    except OSError:
        return "n/a"


def fmt(v: float, digits: int = 3) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


# --------------------------------------------------------------------------- part: agreement
def part_agreement(args: argparse.Namespace) -> None:
    from crowdlearn import Annotations
    from crowdlearn import quality as q

    nan = float("nan")
    rows = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
        [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
    ]
    it, an, lb = zip(*[(u, c, int(v)) for c, row in enumerate(rows) for u, v in enumerate(row) if v == v])
    kr = Annotations.from_ids(it, an, lb, classes=[1, 2, 3, 4, 5])
    fl_table = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    fi, fa, fy = [], [], []
    for i, counts in enumerate(fl_table):
        r = 0
        for k, c in enumerate(counts):
            for _ in range(c):
                fi.append(i)
                fa.append(r)
                fy.append(k)
                r += 1
    fl = Annotations(fi, fa, fy, n_classes=5)
    pairs = [(1, 1)] * 20 + [(1, 0)] * 5 + [(0, 1)] * 10 + [(0, 0)] * 15
    ci = [i for i in range(50) for _ in (0, 1)]
    ca = [0, 1] * 50
    cy = [v for p in pairs for v in p]
    ck = q.cohen_kappa_pairs(Annotations(ci, ca, cy))["kappa"].iloc[0]
    print("### Published worked examples\n")
    print("| example | measure | published | crowdlearn |")
    print("|---|---|---:|---:|")
    for lv, pub in (("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)):
        print(
            f"| Krippendorff 2011, 4 coders x 12 units | alpha ({lv}) | {pub:.3f} | "
            f"{q.alpha_krippendorff(kr, level=lv):.3f} |"  # type: ignore[arg-type]
        )
    print(f"| Fleiss 1971 (Wikipedia), 10 subjects x 14 raters | kappa | 0.210 | {q.fleiss_kappa(fl):.3f} |")
    print(f"| Fleiss 1971 (Wikipedia) | P-bar | 0.378 | {q.percent_agreement(fl):.3f} |")
    print(f"| Cohen, 2 readers x 50 items (20/5/10/15) | kappa | 0.400 | {ck:.3f} |")
    print()
    names = args.datasets or WITH_TRUTH
    print("### Krippendorff's alpha (nominal): crowdlearn vs crowd-kit 1.4.2 on the real datasets\n")
    print(
        "| dataset | labels | crowdlearn alpha | crowd-kit alpha | abs. diff | crowdlearn s | crowd-kit s "
        "| Fleiss kappa | raw agreement | mean Cohen kappa (pairs) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in names:
        ann = load(name).annotations
        t0 = time.perf_counter()
        ours = q.alpha_krippendorff(ann)
        t_ours = time.perf_counter() - t0
        s = q.agreement_summary(ann)
        peer: dict[str, Any] = {"error": "not run (no --crowdkit-python)"}
        if args.crowdkit_python:
            arrays = {"items": ann.items, "annotators": ann.annotators, "labels": ann.labels}
            peer = run_child(args.crowdkit_python, "crowdkit", arrays, args.timeout)
        theirs = peer.get("alpha", float("nan"))
        diff = abs(ours - theirs) if "alpha" in peer else float("nan")
        their_s = fmt(peer["seconds"], 2) if "seconds" in peer else peer.get("error", "")
        print(
            f"| {name} | {ann.n_labels:,} | {ours:.6f} | {fmt(theirs, 6)} | {f'{diff:.1e}' if np.isfinite(diff) else 'n/a'} "
            f"| {t_ours:.3f} | {their_s} | {s.fleiss_kappa:.3f} | {s.percent_agreement:.3f} "
            f"| {fmt(s.mean_cohen_kappa)} ({s.n_annotator_pairs}) |",
            flush=True,
        )


# --------------------------------------------------------------------------- part: crowdlab
def out_of_fold_proba(ds: Any, ann: Any, keep: np.ndarray, folds: int = 5, seed: int = 0) -> np.ndarray:
    """5-fold out-of-fold CrowdClassifier predictions of the kept items (rows of ``ann``)."""
    from crowdlearn import CrowdClassifier

    X = ds.features["train"][keep].astype(np.float32)
    rng = np.random.default_rng(seed)
    fold = rng.permutation(len(X)) % folds
    proba = np.zeros((len(X), ann.n_classes))
    for f in range(folds):
        tr, te = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
        sub = ann.subset_items(tr)
        clf = CrowdClassifier(random_state=seed).fit(X[tr], sub)
        p = np.zeros((len(te), ann.n_classes))
        cls = [int(c) for c in clf.classes_.tolist()] if np.asarray(clf.classes_).dtype.kind in "iu" else None
        raw = clf.predict_proba(X[te])
        if cls is None or len(cls) == ann.n_classes:
            p = raw
        else:
            p[:, cls] = raw
        proba[te] = p
    return proba


def part_crowdlab(args: argparse.Namespace) -> None:
    import torch
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    from crowdlearn import quality as q
    from crowdlearn.aggregate import DawidSkene

    torch.set_num_threads(1)

    def auroc(wrong: np.ndarray, score: np.ndarray) -> float:
        if wrong.all() or not wrong.any():
            return float("nan")
        return float(roc_auc_score(wrong, -np.asarray(score)))

    print(
        "| dataset | items with truth | model | MV acc | DS acc | crowdlearn acc | cleanlab acc "
        "| AUROC crowdlearn quality | AUROC cleanlab quality | AUROC DS confidence | AUROC agreement (MV) "
        "| annot. Spearman crowdlearn | annot. Spearman cleanlab | crowdlearn s | cleanlab s |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.datasets or WITH_TRUTH:
        ds = load(name)
        keep = np.flatnonzero(ds.annotations.item_counts > 0)
        ann, truth = labelled_only(ds.annotations, ds.truth)
        known = truth >= 0
        agg = DawidSkene().fit(ann)
        if name in WITH_FEATURES:
            proba = out_of_fold_proba(ds, ann, keep)
            model = "CrowdClassifier (5-fold OOF)"
        else:
            proba = agg.probas_
            model = "DS posteriors"
        t0 = time.perf_counter()
        ours = q.crowdlab(ann, proba)
        t_ours = time.perf_counter() - t0
        votes = ann.vote_counts()
        mv = votes.argmax(axis=1)
        mv_agree = votes[np.arange(ann.n_items), mv] / ann.item_counts
        peer: dict[str, Any] = {"error": "not run"}
        if args.cleanlab_python:
            arrays = {"items": ann.items, "annotators": ann.annotators, "labels": ann.labels, "proba": proba}
            peer = run_child(args.cleanlab_python, "cleanlab", arrays, args.timeout)

        def acc(pred: np.ndarray, known: np.ndarray = known, truth: np.ndarray = truth) -> float:
            return float((pred[known] == truth[known]).mean())

        # annotators' accuracy on the items with truth (>= 10 such labels)
        on = known[ann.items]
        n_true = np.bincount(ann.annotators[on], minlength=ann.n_annotators)
        hit = np.bincount(
            ann.annotators[on],
            weights=(ann.labels[on] == truth[ann.items[on]]).astype(float),
            minlength=ann.n_annotators,
        )
        rated = n_true >= 10
        true_acc = np.divide(hit, n_true, out=np.full(ann.n_annotators, np.nan), where=n_true > 0)

        def spear(scores: np.ndarray, rated: np.ndarray = rated, true_acc: np.ndarray = true_acc) -> float:
            if rated.sum() < 3:
                return float("nan")
            return float(spearmanr(scores[rated], true_acc[rated]).statistic)

        row = [
            name,
            f"{int(known.sum()):,}",
            model,
            fmt(acc(mv)),
            fmt(acc(agg.labels_)),
            fmt(acc(ours.consensus)),
        ]
        if "consensus" in peer:
            cons = np.asarray(peer["consensus"])
            aq = np.full(ann.n_annotators, np.nan)
            aq[np.asarray(peer["annotator_index"])] = peer["annotator_quality"]
            row += [fmt(acc(cons))]
            wrong_theirs = cons[known] != truth[known]
            their_auc = auroc(wrong_theirs, np.asarray(peer["consensus_quality"])[known])
            their_spear = spear(aq)
            their_s = f"{peer['seconds']:.2f}"
        else:
            row += [peer.get("error", "n/a")]
            their_auc, their_spear, their_s = float("nan"), float("nan"), "n/a"
        wrong_ours = ours.consensus[known] != truth[known]
        row += [
            fmt(auroc(wrong_ours, ours.consensus_quality[known])),
            fmt(their_auc),
            fmt(auroc(agg.labels_[known] != truth[known], agg.probas_.max(axis=1)[known])),
            fmt(auroc(mv[known] != truth[known], mv_agree[known])),
            fmt(spear(ours.annotator_quality)),
            fmt(their_spear),
            f"{t_ours:.3f}",
            their_s,
        ]
        print("| " + " | ".join(row) + " |", flush=True)


# --------------------------------------------------------------------------- part: filter
def part_filter(args: argparse.Namespace) -> None:
    import torch

    from crowdlearn import CrowdClassifier
    from crowdlearn import quality as q
    from crowdlearn.train import MarginRecorder

    torch.set_num_threads(1)
    fractions = [float(f) for f in args.fractions.split(",")]
    print(
        "| dataset | dropped | rule | test accuracy (mean ± std) | change vs all items | "
        "MV wrong among dropped | MV wrong overall |"
    )
    print("|---|---:|---|---:|---:|---:|---:|")
    for name in args.datasets or ["music", "labelme"]:
        ds = load(name)
        ann, X = ds.annotations, ds.features["train"].astype(np.float32)
        Xt, yt = ds.features["test"].astype(np.float32), ds.targets["test"]
        truth = ds.truth
        votes = ann.vote_counts()
        mv_wrong = (votes.argmax(axis=1) != truth) & (truth >= 0) & (ann.item_counts > 0)
        base, res = [], {(f, r): [] for f in fractions for r in ("waum", "random")}
        caught = {(f, r): [] for f in fractions for r in ("waum", "random")}
        for seed in range(args.seeds):
            rec = MarginRecorder(X)
            clf = CrowdClassifier(random_state=seed, callbacks=[rec]).fit(X, ann)
            base.append(clf.score(Xt, yt))
            w = q.waum(ann, rec.aum_, clf.predict_proba(X), clf.confusions_)
            rng = np.random.default_rng(1000 + seed)
            for f in fractions:
                for rule in ("waum", "random"):
                    scores = w if rule == "waum" else np.where(ann.item_counts > 0, rng.random(ann.n_items), np.nan)
                    kept = q.filter_ambiguous(ann, scores, fraction=f)
                    clf2 = CrowdClassifier(random_state=seed).fit(X[kept.kept], kept.annotations)
                    res[(f, rule)].append(clf2.score(Xt, yt))
                    caught[(f, rule)].append(float(mv_wrong[kept.dropped].mean()) if kept.dropped.size else np.nan)
            print(f"  {name} seed {seed}: all {base[-1]:.4f}", file=sys.stderr, flush=True)
        b = np.asarray(base)
        overall = float(mv_wrong[ann.item_counts > 0].mean())
        print(f"| {name} | 0 | all items | {b.mean():.4f} ± {b.std():.4f} | - | - | {overall:.3f} |")
        for f in fractions:
            for rule in ("waum", "random"):
                a = np.asarray(res[(f, rule)])
                n_drop = int(np.floor(f * int((ann.item_counts > 0).sum())))
                print(
                    f"| {name} | {n_drop} ({f:.0%}) | {'lowest WAUM' if rule == 'waum' else 'random'} | "
                    f"{a.mean():.4f} ± {a.std():.4f} | {(a - b).mean():+.4f} | "
                    f"{np.nanmean(caught[(f, rule)]):.3f} | {overall:.3f} |",
                    flush=True,
                )


def main(argv: list[str]) -> None:
    if argv[:1] == ["--child"]:
        child(argv[1], argv[2], argv[3])
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=["agreement", "crowdlab", "filter"], required=True)
    p.add_argument("--crowdkit-python", default=None, help="python of a virtualenv with crowd-kit")
    p.add_argument("--cleanlab-python", default=None, help="python of a virtualenv with cleanlab")
    p.add_argument("--datasets", nargs="*", default=None)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--fractions", default="0.05,0.1")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per peer call")
    args = p.parse_args(argv)
    command = "PYTHONPATH=src python benchmarks/quality.py " + " ".join(argv)
    print(f"Command: `{command}`  \nLoad average at start (1, 5, 15 min): {load_line()}\n")
    {"agreement": part_agreement, "crowdlab": part_crowdlab, "filter": part_filter}[args.part](args)
    print(f"\nLoad average at end: {load_line()}")


if __name__ == "__main__":
    main(sys.argv[1:])
