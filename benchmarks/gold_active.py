"""Gold labels, incremental updates and active learning on simulated crowds (issue #16, second half).

Three parts, each printing markdown tables and the command that made them:

* ``gold``: accuracy on the non-gold items against the number of gold items (``known_labels``),
  for every aggregator of :mod:`crowdlearn.aggregate` (KOS is binary-only and left out) and for
  ``CrowdClassifier`` (CCEM, GeoCrowdNet(F)) on a hard simulated crowd.
* ``incremental``: ``partial_fit`` against a fit from scratch on all labels: EM iterations and
  the largest posterior difference (aggregators), and for ``CrowdClassifier`` the distance of the
  confusions to a full fit after a few warm or cold epochs.
* ``active``: an oracle crowd (each simulated annotator answers a query from its true confusion
  matrix) queried in rounds; labels needed to reach a target consensus accuracy with ActiveLab-like
  item choice and the best available annotator (``crowdlearn.active.suggest_queries``) against
  random choices; half the annotators, drawn anew each round, are available.

Usage::

    python benchmarks/gold_active.py                   # all three parts
    python benchmarks/gold_active.py --part active --seeds 3
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from crowdlearn import Annotations
from crowdlearn.active import suggest_queries
from crowdlearn.aggregate import (
    GLAD,
    MACE,
    MMSR,
    BaseAggregator,
    DawidSkene,
    GoldMajorityVote,
    MajorityVote,
    OneCoinDawidSkene,
    Wawa,
    ZeroBasedSkill,
)
from crowdlearn.simulate import diagonally_dominant_confusions, item_features, simulate_crowd

AGGREGATORS: dict[str, Callable[[], BaseAggregator]] = {
    "MV": MajorityVote,
    "Wawa": Wawa,
    "ZBS": ZeroBasedSkill,
    "GoldMV": GoldMajorityVote,
    "DS": DawidSkene,
    "OneCoinDS": OneCoinDawidSkene,
    "GLAD": GLAD,
    "MACE": MACE,
    "MMSR": MMSR,
}


DESIGNS = {
    "weak": "Crowd 'weak': 20 annotators of accuracy 0.3-0.6 (diagonally dominant) on 4 classes, 2 labels per item;",
    "swapped": "Crowd 'swapped': 10 annotators of accuracy 0.6-0.85 on 3 classes, 4 labels per item, 6 of whom swap "
    "classes 0 and 1 (the majority is wrong there);",
}


def _hard_crowd(
    seed: int, n_items: int = 1000, design: str = "weak"
) -> tuple[Annotations, np.ndarray, np.ndarray, np.ndarray]:
    """A crowd with 10 Gaussian features of the items (separation 2).

    ``"weak"``: 20 annotators of accuracy 0.3-0.6 on 4 classes, 2 labels per item.
    ``"swapped"``: 10 annotators of accuracy 0.6-0.85 on 3 classes, 4 labels per item, of whom 6
    swap classes 0 and 1 (the majority is wrong on those classes: only gold can tell).
    """
    if design == "weak":
        conf = diagonally_dominant_confusions(20, 4, accuracy=(0.3, 0.6), random_state=seed)
        per_item = 2
    else:
        conf = diagonally_dominant_confusions(10, 3, accuracy=(0.6, 0.85), random_state=seed)
        conf[:6] = conf[:6][:, [1, 0, 2]]
        per_item = 4
    crowd = simulate_crowd(conf, n_items=n_items, per_item=per_item, random_state=seed + 100)
    X = item_features(crowd.true_posteriors, 10, separation=2.0, random_state=seed + 200)
    return crowd.annotations, crowd.true_labels, X, conf


# ---------------------------------------------------------------------------- gold
def part_gold(seeds: int, epochs: int, design: str) -> None:
    import torch

    from crowdlearn import CrowdClassifier

    torch.set_num_threads(1)
    golds = (0, 25, 50, 100, 200)
    rows: dict[str, list[list[float]]] = {}
    errors: dict[tuple[str, int], str] = {}
    for seed in range(seeds):
        ann, truth, X, _ = _hard_crowd(seed, design=design)
        order = np.random.default_rng(seed).permutation(ann.n_items)
        for n_gold in golds:
            known = np.full(ann.n_items, -1)
            known[order[:n_gold]] = truth[order[:n_gold]]
            rest = known < 0
            for name, make in AGGREGATORS.items():
                try:
                    if name == "GoldMV" and n_gold == 0:
                        raise ValueError("needs gold")
                    labels = make().fit(ann, known_labels=known if n_gold else None).labels_
                    acc = float((labels[rest] == truth[rest]).mean())
                except ValueError as exc:
                    errors[(name, n_gold)] = str(exc).split(":")[0]
                    acc = float("nan")
                rows.setdefault(name, [[] for _ in golds])[golds.index(n_gold)].append(acc)
            for method in ("ccem", "geocrowdnet-f"):
                # mixup=0 for every column: a fit with gold labels trains without the recipe's mixup 0.2, so the
                # runs without gold must too (like for like)
                clf = CrowdClassifier(method=method, epochs=epochs, validation="none", random_state=seed, mixup=0.0)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    clf.fit(X, ann, known_labels=known if n_gold else None)
                acc = float((clf.predict(X)[rest] == truth[rest]).mean())
                rows.setdefault(f"CrowdClassifier {method}", [[] for _ in golds])[golds.index(n_gold)].append(acc)
    print(
        f"### Accuracy on the non-gold items against the number of gold items, design {design!r} "
        f"({seeds} seeds, mean)\n"
    )
    print(DESIGNS[design] + " 1000 items; 10 Gaussian features (separation 2) for CrowdClassifier (30 epochs,")
    print("its recipe otherwise, validation='none'). Gold items drawn at random; accuracy on the other items.\n")
    print("| method | " + " | ".join(f"{g} gold" for g in golds) + " |")
    print("|---|" + "---:|" * len(golds))
    for name, cells in rows.items():
        shown = []
        for g, vals in zip(golds, cells, strict=True):
            v = np.asarray(vals)
            if np.isnan(v).all():
                shown.append("n/a" if (name, g) not in errors else f"error ({errors[(name, g)][:40]})")
            elif np.isnan(v).any():
                shown.append(f"{np.nanmean(v):.3f} ({int(np.isnan(v).sum())} errors)")
            else:
                shown.append(f"{v.mean():.3f}")
        print(f"| {name} | " + " | ".join(shown) + " |")
    print()


# ---------------------------------------------------------------------------- incremental
def _split(seed: int, frac: float, new_annotator: bool) -> tuple[Annotations, Annotations, Annotations]:
    rng = np.random.default_rng(seed)
    conf = diagonally_dominant_confusions(8, 3, accuracy=(0.6, 0.8), random_state=seed)
    ann = simulate_crowd(conf, n_items=3000, per_item=3, random_state=seed + 100).annotations
    df = ann.to_frame(ids=False)
    late = (df["item"] >= 3000 - int(750 * (1 - frac))) | ((df["annotator"] == 7) & new_annotator)
    first = (~late) & (rng.random(len(df)) < frac / (1 - late.mean()))
    df["item"] = "i" + df["item"].astype(str)
    df["annotator"] = "w" + df["annotator"].astype(str)

    def make(d: pd.DataFrame) -> Annotations:
        return Annotations.from_ids(d["item"], d["annotator"], d["label"], classes=[0, 1, 2])

    return make(df), make(df[first]), make(df[~first])


def part_incremental(seeds: int) -> None:
    settings = (
        ("80% + rest (new items, a new annotator)", 0.8, True),
        ("95% + rest (new items)", 0.95, False),
        ("99% + rest (new items)", 0.99, False),
    )
    print(f"### partial_fit against fit on all labels: EM iterations ({seeds} seeds, mean; default tol=1e-7)\n")
    print("| update | method | fit on all: iterations | partial_fit: iterations | max abs posterior difference |")
    print("|---|---|---:|---:|---:|")
    for label, frac, new_ann in settings:
        for cls in (DawidSkene, OneCoinDawidSkene, GLAD, MACE):
            full_it, inc_it, diff = [], [], []
            for seed in range(seeds):
                full_ann, first, rest = _split(seed, frac, new_ann)
                full = cls().fit(full_ann)
                inc = cls().fit(first).partial_fit(rest)
                full_it.append(full.n_iter_)
                inc_it.append(inc.n_iter_)
                pos = pd.Series(np.arange(len(inc.item_ids_)), index=inc.item_ids_).loc[full.item_ids_].to_numpy()
                diff.append(float(np.abs(inc.probas_[pos] - full.probas_).max()))
            print(f"| {label} | {cls.__name__} | {np.mean(full_it):.1f} | {np.mean(inc_it):.1f} | {max(diff):.1e} |")
    print()
    _classifier_incremental(seeds)


def _classifier_incremental(seeds: int) -> None:
    import torch

    from crowdlearn import CrowdClassifier

    torch.set_num_threads(1)
    kw: dict[str, Any] = {
        "method": "ccem",
        "validation": "none",
        "init": "identity",
        "schedule": "constant",
        "lr": 1e-2,
    }
    gaps: dict[str, list[float]] = {}
    for seed in range(seeds):
        conf = diagonally_dominant_confusions(10, 3, accuracy=(0.5, 0.8), random_state=seed)
        crowd = simulate_crowd(conf, n_items=800, per_item=3, random_state=seed)
        X = item_features(crowd.true_posteriors, 10, separation=2.0, random_state=seed)
        ann = crowd.annotations
        df = ann.to_frame()
        first = (df["annotator"] != 9) & (np.random.default_rng(seed).random(len(df)) < 0.85)
        part = Annotations.from_ids(
            df["item"][first], df["annotator"][first], df["label"][first], item_ids=ann.item_ids.tolist()
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            full = CrowdClassifier(epochs=40, random_state=seed, **kw).fit(X, ann)
            for extra in (5, 10):
                inc = CrowdClassifier(epochs=40, random_state=seed, **kw).fit(X, part)
                inc.partial_fit(X, ann, epochs=extra)
                pos = [inc.annotator_ids_.tolist().index(a) for a in full.annotator_ids_.tolist()]
                gaps.setdefault(f"warm {extra}", []).append(
                    float(np.abs(inc.confusions_[pos] - full.confusions_).mean())
                )
                cold = CrowdClassifier(epochs=extra, random_state=seed, **kw).fit(X, ann)
                gaps.setdefault(f"cold {extra}", []).append(float(np.abs(cold.confusions_ - full.confusions_).mean()))
    print(
        "### CrowdClassifier (CCEM) partial_fit: mean |confusion - full fit's| after a few epochs "
        f"({seeds} seeds, mean)\n"
    )
    print("Full fit: 40 epochs on all labels. Warm: 40 epochs on 85% of the labels without annotator 9, then")
    print("`partial_fit` on all labels for 5 or 10 epochs. Cold: a fresh fit of 5 or 10 epochs on all labels.\n")
    print("| epochs on all labels | warm (partial_fit) | cold (fit from scratch) |")
    print("|---:|---:|---:|")
    for extra in (5, 10):
        print(f"| {extra} | {np.mean(gaps[f'warm {extra}']):.4f} | {np.mean(gaps[f'cold {extra}']):.4f} |")
    print()


# ---------------------------------------------------------------------------- active
class Oracle:
    """The simulated crowd answering queries: annotator ``m`` says class ``i`` of item ``n`` with
    probability ``confusions[m, i, truth[n]]``."""

    def __init__(self, confusions: np.ndarray, truth: np.ndarray, seed: int) -> None:
        self.confusions = confusions
        self.truth = truth
        self.rng = np.random.default_rng(seed)

    def __call__(self, items: np.ndarray, annotators: np.ndarray) -> np.ndarray:
        cum = self.confusions[annotators, :, self.truth[items]].cumsum(axis=1)
        k = self.confusions.shape[1]
        out: np.ndarray = np.minimum((self.rng.random(len(items))[:, None] > cum).sum(axis=1), k - 1)
        return out


def _random_pairs(
    ann: Annotations, items: np.ndarray, available: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A random available annotator for each item who has not labelled it (items without one are skipped)."""
    done = set(zip(ann.items.tolist(), ann.annotators.tolist(), strict=True))
    out_i, out_a = [], []
    for n in items.tolist():
        free = [a for a in rng.permutation(available).tolist() if (n, a) not in done]
        if free:
            out_i.append(n)
            out_a.append(free[0])
    return np.asarray(out_i, dtype=np.int64), np.asarray(out_a, dtype=np.int64)


def _study(strategy: str, seed: int, rounds: int, batch: int, update: str = "partial_fit") -> list[tuple[int, float]]:
    """(labels so far, DS consensus accuracy) after each round of ``batch`` queries."""
    M, K, N = 30, 4, 1000
    conf = diagonally_dominant_confusions(M, K, accuracy=(0.35, 0.9), random_state=seed)
    crowd = simulate_crowd(conf, n_items=N, per_item=1, random_state=seed + 100)
    truth = crowd.true_labels
    oracle = Oracle(conf, truth, seed + 200)
    rng = np.random.default_rng(seed + 300)
    ann = crowd.annotations
    model = DawidSkene(smoothing=0.01).fit(ann)
    curve = [(ann.n_labels, float((model.labels_ == truth).mean()))]
    for _ in range(rounds):
        available = np.sort(rng.choice(M, M // 2, replace=False))
        if strategy == "activelab + best annotator":
            q = suggest_queries(model, ann, batch, available=available)
            items, who = q["item"].to_numpy(), q["annotator"].to_numpy()
        elif strategy == "activelab + random annotator":
            q = suggest_queries(model, ann, batch, available=available)
            items, who = _random_pairs(ann, q["item"].to_numpy(), available, rng)
        elif strategy == "random item + best annotator":
            from crowdlearn.active import best_annotators

            cand = rng.permutation(N)[:batch]
            who, _ = best_annotators(cand, model.probas_, model.confusions_, ann, available=available)
            items, who = cand[who >= 0], who[who >= 0]
        else:
            items, who = _random_pairs(ann, rng.permutation(N)[:batch], available, rng)
        said = oracle(items, who)
        new = Annotations(items, who, said, n_items=N, n_annotators=M, n_classes=K)
        if update == "partial_fit":
            model.partial_fit(new)  # the same id tables: items and annotators keep their indices
        else:
            model = DawidSkene(smoothing=0.01).fit(model.annotations_.concat(new))
        ann = model.annotations_
        curve.append((ann.n_labels, float((model.labels_ == truth).mean())))
    return curve


def part_active(seeds: int, rounds: int, batch: int) -> None:
    strategies = (
        "random item + random annotator",
        "activelab + random annotator",
        "random item + best annotator",
        "activelab + best annotator",
    )
    for update in ("fit", "partial_fit"):
        _active_table(strategies, seeds, rounds, batch, update)


def _active_table(strategies: tuple[str, ...], seeds: int, rounds: int, batch: int, update: str) -> None:
    targets = (0.85, 0.90, 0.95)
    curves = {s: [_study(s, seed, rounds, batch, update) for seed in range(seeds)] for s in strategies}
    how = (
        "a fresh `DawidSkene(smoothing=0.01).fit` on all labels after every round"
        if update == "fit"
        else "`DawidSkene(smoothing=0.01).partial_fit(new labels)` after every round (warm start)"
    )
    print(
        f"### Labels needed to reach a consensus accuracy (Dawid-Skene), {seeds} seeds: mean (and per seed); "
        f"model: {how}\n"
    )
    print(
        f"Crowd: 1000 items, 4 classes, 30 annotators of accuracy 0.35-0.9 (diagonally dominant), one random "
        f"label per item to start (1000 labels); rounds of {batch} queries, {rounds} rounds at most; each round a "
        "random half of the annotators is available. '>' = not reached within the rounds.\n"
    )
    print("| strategy | " + " | ".join(f"accuracy {t:.2f}" for t in targets) + " | accuracy at the end |")
    print("|---|" + "---:|" * (len(targets) + 1))
    for s, per_seed in curves.items():
        cells = []
        for t in targets:
            need = []
            for curve in per_seed:
                hit = [n for n, acc in curve if acc >= t]
                need.append(hit[0] if hit else None)
            if all(n is not None for n in need):
                cells.append(f"{np.mean([n for n in need if n is not None]):.0f} ({', '.join(str(n) for n in need)})")
            else:
                shown = ", ".join(str(n) if n is not None else f">{per_seed[0][-1][0]}" for n in need)
                cells.append(f"not always ({shown})")
        final = np.mean([c[-1][1] for c in per_seed])
        print(f"| {s} | " + " | ".join(cells) + f" | {final:.3f} at {per_seed[0][-1][0]} labels |")
    print()


def _classifier_study(strategy: str, seed: int, rounds: int, batch: int, epochs: int) -> list[tuple[int, float]]:
    """(labels so far, accuracy of the crowd posterior argmax) with a CrowdClassifier as the model."""
    import torch

    from crowdlearn import CrowdClassifier
    from crowdlearn.active import crowd_posteriors

    torch.set_num_threads(1)
    M, K, N = 20, 4, 600
    conf = diagonally_dominant_confusions(M, K, accuracy=(0.35, 0.9), random_state=seed)
    crowd = simulate_crowd(conf, n_items=N, per_item=1, random_state=seed + 100)
    X = item_features(crowd.true_posteriors, 10, separation=2.0, random_state=seed + 200)
    truth = crowd.true_labels
    oracle = Oracle(conf, truth, seed + 200)
    rng = np.random.default_rng(seed + 300)
    ann = crowd.annotations
    kw: dict[str, Any] = {"method": "ccem", "epochs": epochs, "validation": "none", "random_state": seed}

    def fit(a: Annotations) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return CrowdClassifier(**kw).fit(X, a)

    def accuracy(clf: Any, a: Annotations) -> float:
        q = crowd_posteriors(a, clf.predict_proba(X), clf.confusions_)
        return float((q.argmax(axis=1) == truth).mean())

    clf = fit(ann)
    curve = [(ann.n_labels, accuracy(clf, ann))]
    for _ in range(rounds):
        available = np.sort(rng.choice(M, M // 2, replace=False))
        if strategy == "activelab + best annotator":
            q = suggest_queries(clf, ann, batch, X=X, available=available)
            items, who = q["item"].to_numpy(), q["annotator"].to_numpy()
        else:
            items, who = _random_pairs(ann, rng.permutation(N)[:batch], available, rng)
        ann = ann.concat(Annotations(items, who, oracle(items, who), n_items=N, n_annotators=M, n_classes=K))
        clf = fit(ann)
        curve.append((ann.n_labels, accuracy(clf, ann)))
    return curve


def part_active_classifier(seeds: int, rounds: int, batch: int, epochs: int) -> None:
    strategies = ("random item + random annotator", "activelab + best annotator")
    curves = {s: [_classifier_study(s, seed, rounds, batch, epochs) for seed in range(seeds)] for s in strategies}
    print(f"### Active learning with CrowdClassifier (CCEM) as the model, {seeds} seeds: accuracy after n labels\n")
    print(
        f"Crowd: 600 items with 10 Gaussian features, 4 classes, 20 annotators of accuracy 0.35-0.9; one random "
        f"label per item to start; {rounds} rounds of {batch} queries (a random half of the annotators available); "
        f"after every round a fresh CrowdClassifier(method='ccem', epochs={epochs}) on all labels; accuracy = argmax "
        "of the crowd posterior (classifier prior and labels through its confusions) against the truth.\n"
    )
    marks = list(range(0, rounds + 1, max(rounds // 4, 1)))
    print("| strategy | " + " | ".join(f"{curves[strategies[0]][0][r][0]} labels" for r in marks) + " |")
    print("|---|" + "---:|" * len(marks))
    for s, per_seed in curves.items():
        cells = [f"{np.mean([c[r][1] for c in per_seed]):.3f}" for r in marks]
        print(f"| {s} | " + " | ".join(cells) + " |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("gold", "incremental", "active", "active-classifier", "all"), default="all")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30, help="CrowdClassifier epochs in the gold part")
    parser.add_argument("--design", choices=("weak", "swapped"), default="weak", help="the crowd of the gold part")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    print("Command: python " + " ".join(sys.argv) + "\n")
    if args.part in ("gold", "all"):
        part_gold(args.seeds, args.epochs, args.design)
    if args.part in ("incremental", "all"):
        part_incremental(args.seeds)
    if args.part in ("active", "all"):
        part_active(args.seeds, args.rounds, args.batch)
    if args.part in ("active-classifier", "all"):
        part_active_classifier(args.seeds, args.rounds, args.batch, args.epochs)


if __name__ == "__main__":
    main()
