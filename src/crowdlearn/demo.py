"""The end-to-end demo behind ``make demo`` / ``crowdlearn demo``.

Data that ships with an installed package: scikit-learn's handwritten digits (1,797 images of
8x8 pixels, 10 classes). A crowd of simulated annotators labels the training images, each image
seen by a few of them; the annotators are a realistic mix of decent workers, workers who
systematically confuse one digit with the next, and spammers. Every method then sees only the
crowd labels (never the truth) and is scored against the truth:

- truth inference without features: majority vote and Dawid-Skene (accuracy of the inferred
  training labels, and Dawid-Skene's confusion estimation error);
- two-stage learning: an MLP trained on the majority-vote / Dawid-Skene labels;
- end-to-end learning from the crowd: CCEM, GeoCrowdNet(F) and GeoCrowdNet(W), which learn the
  MLP and every annotator's confusion matrix at once;
- the same MLP trained on the true labels, as an upper bound.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from crowdlearn.aggregate import DawidSkene, MajorityVote
from crowdlearn.annotations import Annotations
from crowdlearn.estimators import CrowdClassifier, Method
from crowdlearn.io import atomic_write
from crowdlearn.metrics import accuracy, confusion_estimation_error
from crowdlearn.nn.registry import BASE_TRAINING
from crowdlearn.report import render_html
from crowdlearn.simulate import (
    SimulatedCrowd,
    diagonally_dominant_confusions,
    hammer_spammer_confusions,
    pair_flip_confusions,
    simulate_crowd,
)

__all__ = ["DemoResult", "MethodResult", "run_demo", "write_report"]


@dataclass
class MethodResult:
    """One row of the demo table."""

    method: str
    kind: str
    train_label_accuracy: float | None = None
    test_accuracy: float | None = None
    confusion_error: float | None = None
    seconds: float = 0.0


@dataclass
class DemoResult:
    """Everything the demo measured."""

    n_train: int
    n_test: int
    n_annotators: int
    n_classes: int
    n_labels: int
    #: the seed of the run (``crowdlearn demo --seed``)
    random_state: int
    rows: list[MethodResult] = field(default_factory=list)
    confusions_true: npt.NDArray[np.float64] | None = None
    confusions_ccem: npt.NDArray[np.float64] | None = None
    confusions_ds: npt.NDArray[np.float64] | None = None
    #: the HTML report (:func:`crowdlearn.report.render_html`) of the GeoCrowdNet(F) model
    report_html: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": "scikit-learn digits (8x8 images, 10 classes) with simulated annotators",
            "n_train": self.n_train,
            "n_test": self.n_test,
            "n_annotators": self.n_annotators,
            "n_classes": self.n_classes,
            "n_labels": self.n_labels,
            "seed": self.random_state,  # the CLI's name: results.json is written by `crowdlearn demo --seed`
            "results": [asdict(r) for r in self.rows],
        }


def make_crowd(y_train: npt.NDArray[np.int64], *, n_classes: int = 10, random_state: int = 0) -> SimulatedCrowd:
    """The demo crowd: 30 annotators, 3 labels per training image.

    12 decent workers (diagonally dominant, 45-75 % correct), 8 workers who report digit
    ``j + 1`` for ``j`` 35 % of the time (pair flipping), 2 near-perfect workers and 8 spammers.
    """
    rng = np.random.default_rng(random_state)
    A = np.concatenate(
        [
            diagonally_dominant_confusions(12, n_classes, accuracy=(0.45, 0.75), random_state=rng),
            pair_flip_confusions(8, n_classes, flip_rate=0.35),
            hammer_spammer_confusions(10, n_classes, hammer_fraction=0.2, hammer_accuracy=0.95, random_state=rng),
        ]
    )
    onehot = np.eye(n_classes)[y_train]
    return simulate_crowd(A, n_items=len(y_train), per_item=3, truth=onehot, random_state=rng)


def run_demo(*, random_state: int = 0, epochs: int = 60, log: Callable[[str], None] | None = None) -> DemoResult:
    """Run every method on the digits crowd and return the measurements.

    ``random_state`` seeds the train/test split, the crowd and every model (an int: the deep
    models seed torch with it).
    """
    from sklearn.datasets import load_digits

    say = log or (lambda _msg: None)
    X_all, y_all = load_digits(return_X_y=True)
    X_all = (X_all / 16.0).astype(np.float32)
    y_all = y_all.astype(np.int64)
    rng = np.random.default_rng(random_state)
    perm = rng.permutation(len(y_all))
    test_idx, train_idx = perm[:500], perm[500:]
    X_tr, y_tr, X_te, y_te = X_all[train_idx], y_all[train_idx], X_all[test_idx], y_all[test_idx]
    crowd = make_crowd(y_tr, random_state=random_state)
    ann: Annotations = crowd.annotations
    K = 10
    result = DemoResult(
        n_train=len(y_tr),
        n_test=len(y_te),
        n_annotators=ann.n_annotators,
        n_classes=K,
        n_labels=ann.n_labels,
        random_state=random_state,
        confusions_true=crowd.confusions,
    )
    say(
        f"digits: {len(y_tr)} training images labelled by {ann.n_annotators} simulated annotators "
        f"({ann.n_labels} labels), {len(y_te)} test images"
    )
    # the demo's own fixed recipe (the base training values: lr 1e-3, batch 128, weight decay 1e-4,
    # constant schedule, identity init, no mixup), so that its table does not move with a method's
    # default recipe (docs/training.md, "Default recipes")
    common: dict[str, Any] = {
        "epochs": epochs,
        "random_state": random_state,
        "verbose": 0,
        **{k: v for k, v in BASE_TRAINING.items() if k not in ("epochs", "confusion_lr")},
    }

    def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
        t0 = time.perf_counter()
        out = fn()
        return out, time.perf_counter() - t0

    mv, t = _timed(lambda: MajorityVote(random_state=random_state).fit(ann))
    result.rows.append(MethodResult("majority vote", "truth inference", accuracy(y_tr, mv.labels_), seconds=t))
    ds, t = _timed(lambda: DawidSkene().fit(ann))
    result.confusions_ds = np.asarray(ds.confusions_)
    result.rows.append(
        MethodResult(
            "Dawid-Skene",
            "truth inference",
            accuracy(y_tr, ds.labels_),
            confusion_error=confusion_estimation_error(ds.confusions_, crowd.confusions),
            seconds=t,
        )
    )
    say("truth inference done")
    for name, labels in (("MV -> MLP", mv.labels_), ("DS -> MLP", ds.labels_), ("MLP on true labels", y_tr)):
        single = Annotations(np.arange(len(labels)), np.zeros(len(labels)), labels, n_classes=K)
        clf, t = _fit_timed(CrowdClassifier(method="ce", **common), X_tr, single)
        kind = "upper bound" if name.startswith("MLP on") else "two-stage"
        result.rows.append(MethodResult(name, kind, test_accuracy=clf.score(X_te, y_te), seconds=t))
        say(f"{name} done")
    end_to_end: tuple[tuple[str, Method, float], ...] = (
        ("CCEM", "ccem", 0.0),
        ("GeoCrowdNet(F)", "geocrowdnet-f", 0.01),
        ("GeoCrowdNet(W)", "geocrowdnet-w", 0.01),
    )
    for name, method, lam in end_to_end:
        # identity-initialised confusions with their own, larger learning rate: the confusion
        # logits otherwise barely leave their start in 60 epochs (docs/benchmarks.md, Music/LabelMe)
        clf, t = _fit_timed(CrowdClassifier(method=method, lam=lam, confusion_lr=1e-2, **common), X_tr, ann)
        inferred = clf.predict(X_tr)
        result.rows.append(
            MethodResult(
                name,
                "end to end",
                accuracy(y_tr, inferred),
                clf.score(X_te, y_te),
                confusion_estimation_error(clf.confusions_, crowd.confusions),
                seconds=t,
            )
        )
        if method == "ccem":
            result.confusions_ccem = np.asarray(clf.confusions_)
        if method == "geocrowdnet-f":
            result.report_html = render_html(
                ann,
                model=clf,
                truth=y_tr,
                X=X_tr,
                title=f"crowdlearn demo: {name} on scikit-learn digits with {ann.n_annotators} simulated annotators",
            )
        say(f"{name} done")
    return result


def _fit_timed(clf: CrowdClassifier, X: npt.NDArray[np.float32], ann: Annotations) -> tuple[CrowdClassifier, float]:
    t0 = time.perf_counter()
    clf.fit(X, ann)
    return clf, time.perf_counter() - t0


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


def table_markdown(result: DemoResult) -> str:
    """The results as a markdown table."""
    lines = [
        "| method | kind | train-label accuracy | test accuracy | confusion error | seconds |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in result.rows:
        lines.append(
            f"| {r.method} | {r.kind} | {_fmt(r.train_label_accuracy)} | {_fmt(r.test_accuracy)} | "
            f"{_fmt(r.confusion_error)} | {r.seconds:.1f} |"
        )
    return "\n".join(lines)


def write_report(result: DemoResult, out: str | Path) -> list[Path]:
    """Write ``results.json``, ``report.md``, ``report.html`` (GeoCrowdNet(F)) and (with matplotlib)
    ``confusions.png`` into ``out``."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with atomic_write(folder / "results.json") as fh:
        json.dump(result.to_dict(), fh, indent=2)
    written.append(folder / "results.json")
    picture = _plot_confusions(result, folder / "confusions.png")
    text = [
        "# crowdlearn demo report",
        "",
        f"scikit-learn digits: {result.n_train} training images labelled by {result.n_annotators} simulated "
        f"annotators ({result.n_labels} labels, 3 per image), {result.n_test} test images, seed {result.random_state}.",
        "Each method sees only the crowd labels; accuracies are against the truth.",
        "",
        table_markdown(result),
        "",
        "- *train-label accuracy*: share of training images whose inferred label is the true one.",
        "- *confusion error*: mean over annotators of ||A_hat - A||_F / ||A||_F after one shared class alignment.",
        "",
    ]
    if picture is not None:
        written.append(picture)
        text += ["![true and estimated confusion matrices](confusions.png)", ""]
    if result.report_html is not None:
        with atomic_write(folder / "report.html") as fh:
            fh.write(result.report_html)
        written.append(folder / "report.html")
        text += [
            "The GeoCrowdNet(F) model in detail (annotators, confusions, training): [report.html](report.html)",
            "",
        ]
    with atomic_write(folder / "report.md") as fh:
        fh.write("\n".join(text))
    written.append(folder / "report.md")
    return written


def _plot_confusions(result: DemoResult, path: Path) -> Path | None:
    """Write :func:`_confusion_figure` as a PNG (atomically); None without matplotlib or confusions."""
    fig = _confusion_figure(result)
    if fig is None:
        return None
    import matplotlib.pyplot as plt

    try:
        with atomic_write(path, mode="wb") as fh:
            fig.savefig(fh, format="png", dpi=90)
    finally:
        plt.close(fig)
    return path


def _confusion_figure(result: DemoResult) -> Any:
    """True and estimated confusion matrices of four annotators, with class ticks and a colour bar."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    if result.confusions_true is None:
        return None
    shown = [0, 12, 20, 28]  # a decent worker, a pair-flipper, a hammer, a spammer
    candidates = [
        ("true", result.confusions_true),
        ("Dawid-Skene", result.confusions_ds),
        ("CCEM", result.confusions_ccem),
    ]
    rows = [(n, a) for n, a in candidates if a is not None]
    k = rows[0][1].shape[1]
    ticks = list(range(k))
    fig, axes = plt.subplots(
        len(rows),
        len(shown),
        figsize=(2.4 * len(shown) + 1.0, 2.4 * len(rows) + 0.6),
        squeeze=False,
        layout="constrained",
    )
    images = []
    for r, (name, conf) in enumerate(rows):
        for c, m in enumerate(shown):
            ax = axes[r, c]
            images.append(ax.imshow(conf[m], vmin=0, vmax=1, cmap="viridis"))
            ax.set_xticks(ticks, [str(t) for t in ticks], fontsize=6)
            ax.set_yticks(ticks, [str(t) for t in ticks], fontsize=6)
            ax.tick_params(length=2, pad=1)
            if r == 0:
                ax.set_title(f"annotator {m}", fontsize=9)
            if r == len(rows) - 1:
                ax.set_xlabel("true class", fontsize=8)
            if c == 0:
                ax.set_ylabel(f"{name}\nlabel given", fontsize=8)
    fig.suptitle("confusion matrices: A[i, j] = P(label i | true class j), columns sum to 1", fontsize=10)
    bar = fig.colorbar(images[0], ax=axes, shrink=0.8)  # one scale: every image has vmin=0, vmax=1
    bar.set_label("probability", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    return fig
