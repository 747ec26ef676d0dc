"""MACE on the ten real datasets: ours (EM and variational Bayes) versus crowd-kit 1.4.2.

crowd-kit runs in ``benchmarks/.venv-crowdkit`` (see ``aggregation.py``) twice per dataset on the
same labels (interpreter: env ``CROWDKIT_PYTHON``, default that venv's python): with the integer labels / annotator ids as they are ("raw"), and with both recoded
in order of first appearance ("recoded", same classes, only the names change). crowd-kit's MACE
gathers its expected spam counts with a ``groupby`` (sorted names) but indexes the strategies with
``pandas.factorize`` codes (order of first appearance), so its result depends on the coding unless
the two orders agree; the recoded run is the model as written in the paper. crowd-kit is run with
``n_restarts=1``: its restarts re-use the same seed, so its default 10 restarts are identical runs.

Usage (from the repository root)::

    PYTHONPATH=src .venv/bin/python benchmarks/mace.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from aggregation import CK_PYTHON, DATASETS, THREAD_ENV  # the same ten datasets and crowd-kit venv

HERE = Path(__file__).resolve().parent


def child(npz: str, out: str) -> None:
    """Run in crowd-kit's venv: both codings, write predicted labels (original names) as JSON."""
    import pandas as pd
    from crowdkit.aggregation import MACE as CKMACE

    d = np.load(npz)
    res = {}
    for coding in ("raw", "recoded"):
        labels, annotators = d["labels"], d["annotators"]
        codes, names = pd.factorize(labels)
        if coding == "recoded":
            labels, annotators = codes, pd.factorize(annotators)[0]
        df = pd.DataFrame({"task": d["items"], "worker": annotators, "label": labels})
        pred = CKMACE(n_restarts=1).fit(df).labels_.sort_index()
        lab = pred.to_numpy().astype(np.int64)
        if coding == "recoded":
            lab = names[lab]
        res[coding] = {"items": pred.index.to_numpy().tolist(), "labels": np.asarray(lab).tolist()}
    Path(out).write_text(json.dumps(res))


def main() -> None:
    from crowdlearn.aggregate import MACE
    from crowdlearn.datasets import load_dataset

    root = os.environ.get("CROWDLEARN_DATA", str(HERE.parent.parent / "shared" / "data"))
    ck_python = os.environ.get("CROWDKIT_PYTHON", str(CK_PYTHON))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in DATASETS:
            ds = load_dataset(name, root=root)
            ann, truth = ds.annotations, ds.truth
            known = truth >= 0
            cells = []
            for agg in (MACE(), MACE(method="vb", priors="uniform")):
                t0 = time.perf_counter()
                lab = agg.fit(ann).labels_
                cells.append(f"{(lab[known] == truth[known]).mean():.4f} ({time.perf_counter() - t0:.2f} s)")
            npz, out = Path(tmp) / f"{name}.npz", Path(tmp) / f"{name}.json"
            np.savez(npz, items=ann.items, annotators=ann.annotators, labels=ann.labels)
            env = dict(os.environ, **THREAD_ENV)
            subprocess.run([ck_python, __file__, "--child", str(npz), str(out)], check=True, env=env)
            ck = json.loads(out.read_text())
            for coding in ("raw", "recoded"):
                items = np.asarray(ck[coding]["items"], dtype=np.int64)
                pred = np.asarray(ck[coding]["labels"], dtype=np.int64)
                k = truth[items] >= 0
                cells.append(f"{(pred[k] == truth[items][k]).mean():.4f}")
            rows.append(f"| {name} | " + " | ".join(cells) + " |")
            print(rows[-1], file=sys.stderr, flush=True)
    print(
        '| dataset | ours EM (default) | ours VB (`method="vb", priors="uniform"`) | crowd-kit raw | crowd-kit recoded |'
    )
    print("|---|---:|---:|---:|---:|")
    print("\n".join(rows))
    print("\nCommand: `PYTHONPATH=src python benchmarks/mace.py`")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main()
