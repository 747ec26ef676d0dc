"""The Dask backend of MajorityVote / DawidSkene / OneCoinDawidSkene equals the in-memory fit."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

from _agg_sim import random_confusions, simulate
from crowdlearn.aggregate import GLAD, MACE, DawidSkene, MajorityVote, OneCoinDawidSkene
from crowdlearn.annotations import AnnotationsError

dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

from crowdlearn.aggregate.dask_backend import fit_dask, read_parquet_labels  # noqa: E402

TOL = 1e-10


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """A 2-worker LocalCluster (one thread each, HTTP server on a free port).

    Threaded workers: worker processes would each import crowdlearn (scipy.stats, ...: 10+ s on a
    loaded 2-core machine); the pickling they add is checked by test_parts_pickle.
    """
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0", scheduler_port=0
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """Simulated labels (K=4, 30 annotators, 3 per item), sorted by item; string annotator ids."""
    rng = np.random.default_rng(7)
    ann, _ = simulate(1500, random_confusions(rng, 30, 4, diag=0.6), 3, seed=3)
    df = ann.to_frame(ids=False)
    df.columns = ["task", "worker", "label"]
    df["worker"] = "w" + df["worker"].astype(str)
    return df.sort_values("task", kind="stable").reset_index(drop=True)


def to_dask(df: pd.DataFrame, n: int = 4) -> Any:
    return dd.from_pandas(df, npartitions=n, sort=False)


def assert_same(mem: Any, dsk: Any) -> None:
    """Same fitted parameters (aligned by annotator id) and per-item posteriors (by item id)."""
    assert mem.classes_.tolist() == dsk.classes_.tolist()
    assert mem.annotator_ids_.tolist() == dsk.annotator_ids_.tolist()
    np.testing.assert_allclose(dsk.priors_, mem.priors_, rtol=0, atol=TOL)
    np.testing.assert_allclose(dsk.confusions_, mem.confusions_, rtol=0, atol=TOL)
    np.testing.assert_allclose(dsk.skills_, mem.skills_, rtol=0, atol=TOL)
    probas = dsk.probas_frame_.compute()
    expected = mem._probas_output()
    probas = probas.loc[expected.index]
    np.testing.assert_allclose(probas.to_numpy(), expected.to_numpy(), rtol=0, atol=TOL)
    labels = dsk.labels_frame_.compute().loc[expected.index]
    assert (labels.to_numpy() == mem._labels_output().to_numpy()).all()


def test_one_coin_on_local_cluster_equals_in_memory(client: Any, frame: pd.DataFrame) -> None:
    mem = OneCoinDawidSkene(n_iter=12).fit(frame)
    dsk = OneCoinDawidSkene(n_iter=12).fit(to_dask(frame))
    assert dsk.n_iter_ == mem.n_iter_
    np.testing.assert_allclose(dsk.log_likelihood_, mem.log_likelihood_, rtol=TOL, atol=0)
    assert_same(mem, dsk)


def test_stopping_rule_and_known_labels_on_cluster(client: Any, frame: pd.DataFrame) -> None:
    known = pd.Series([0, 1, 2, 3, 1], index=[0, 10, 400, 800, 1499])
    mem = DawidSkene(n_iter=100, tol=1e-4).fit(frame, known_labels=known)
    dsk = DawidSkene(n_iter=100, tol=1e-4).fit(to_dask(frame), known_labels=known)
    assert 1 < mem.n_iter_ < 100 and dsk.n_iter_ == mem.n_iter_  # stopped by the rule
    np.testing.assert_allclose(dsk.log_likelihood_, mem.log_likelihood_, rtol=TOL, atol=0)
    assert_same(mem, dsk)
    probas = dsk.probas_frame_.compute()
    assert probas.loc[400].tolist() == [0.0, 0.0, 1.0, 0.0]


def test_majority_vote_and_init_confusions_synchronous(frame: pd.DataFrame) -> None:
    with dask.config.set(scheduler="synchronous"):
        mem = MajorityVote(tie_break="first").fit(frame)
        dsk = MajorityVote(tie_break="first").fit(to_dask(frame, 3))
        np.testing.assert_allclose(dsk.confusions_, mem.confusions_, rtol=0, atol=TOL)
        np.testing.assert_allclose(dsk.priors_, mem.priors_, rtol=0, atol=TOL)
        got = dsk.fit_predict(to_dask(frame, 3)).compute()
        assert (got.loc[mem.item_ids_].to_numpy() == mem._labels_output().to_numpy()).all()
        random_tie = MajorityVote().fit_predict(to_dask(frame, 3)).compute()  # per-partition seeded
        assert (random_tie == MajorityVote().fit_predict(to_dask(frame, 3)).compute()).all()

        init = np.asarray(mem.confusions_)
        a = DawidSkene(n_iter=5, tol=0, init_confusions=init).fit(frame)
        b = DawidSkene(n_iter=5, tol=0, init_confusions=init).fit(to_dask(frame, 3))
        assert len(b.log_likelihood_) == 6 and b.n_iter_ == 5
        np.testing.assert_allclose(b.log_likelihood_, a.log_likelihood_, rtol=TOL, atol=0)
        assert_same(a, b)
        # n_iter=0: the soft vote, then one M-step
        a0, b0 = DawidSkene(n_iter=0).fit(frame), DawidSkene(n_iter=0).fit(to_dask(frame, 3))
        assert b0.n_iter_ == 0 and b0.log_likelihood_ == []
        assert_same(a0, b0)
        # out-of-core mode: nothing persisted, the same result
        c = fit_dask(DawidSkene(n_iter=5, tol=0), to_dask(frame, 3), persist=False)
        d = DawidSkene(n_iter=5, tol=0).fit(frame)
        assert_same(d, c)


def test_parquet_dataset_hash_partitioned_and_split_items(tmp_path: Any, frame: pd.DataFrame) -> None:
    src = tmp_path / "labels"
    src.mkdir()
    shuffled = frame.sample(frac=1.0, random_state=0)
    # hash-partitioned by item: overlapping id ranges, still one partition per item
    for b in range(3):
        part = shuffled[shuffled["task"] % 3 == b].rename(columns={"task": "item", "worker": "annotator"})
        part.to_parquet(src / f"part-{b}.parquet", index=False)
    with dask.config.set(scheduler="synchronous"):
        ddf = read_parquet_labels(src)  # item / annotator / label: guessed
        assert ddf.npartitions == 3
        dsk = DawidSkene(n_iter=10, tol=0).fit(ddf)
        mem = DawidSkene(n_iter=10, tol=0).fit(ddf.compute())
        assert_same(mem, dsk)
        # an item split over two partitions is an error naming it
        bad = dd.from_pandas(shuffled, npartitions=2, sort=False)
        with pytest.raises(AnnotationsError, match=r"item \d+ has labels in partitions 0 and 1; .*shuffle\('task'\)"):
            DawidSkene(n_iter=1).fit(bad)
        with pytest.raises(
            AnnotationsError,
            match=r"column\(s\) \['who'\] not found; the files have \['item', 'annotator', 'label'\]",
        ):
            read_parquet_labels(src, annotator_col="who")


def test_unsupported_inputs_are_clear_errors(frame: pd.DataFrame) -> None:
    ddf = to_dask(frame, 2)
    with dask.config.set(scheduler="synchronous"):
        with pytest.raises(TypeError, match="GLAD has no Dask backend"):
            GLAD().fit(ddf)
        with pytest.raises(ValueError, match="init='spectral' is not supported by the Dask backend"):
            DawidSkene(init="spectral").fit(ddf)
        with pytest.raises(AnnotationsError, match="must be a pandas Series or dict"):
            DawidSkene().fit(ddf, known_labels=np.zeros(1500, dtype=int))
        with pytest.raises(AnnotationsError, match="item id 99999 has no labels"):
            DawidSkene().fit(ddf, known_labels={99999: 0})
        with pytest.raises(AnnotationsError, match="class 7 is not one of the classes"):
            DawidSkene().fit(ddf, known_labels={0: 7})
        with pytest.raises(ValueError, match="'tol' parameter of DawidSkene"):
            DawidSkene(tol=float("nan")).fit(ddf)
        missing = frame.copy()
        missing.loc[5, "worker"] = None
        with pytest.raises(AnnotationsError, match="partition 0, row 5: missing annotator id"):
            DawidSkene().fit(to_dask(missing, 2))
        dup = pd.concat([frame.iloc[:1], frame]).sort_values("task", kind="stable")
        with pytest.raises(AnnotationsError, match="partition 0.*duplicate \\(item, annotator\\) pair"):
            DawidSkene().fit(to_dask(dup, 2))


def test_parts_pickle(frame: pd.DataFrame) -> None:
    """What worker processes exchange (encoded partitions, models, results) survives cloudpickle."""
    import cloudpickle

    from crowdlearn.aggregate import dask_backend as backend

    part = backend._encode(frame.iloc[:30], 0, pd.unique(frame["worker"]), np.arange(4), pd.Series({0: 1}))
    again = cloudpickle.loads(cloudpickle.dumps(part))
    assert (again.X != part.X).nnz == 0 and again.known_cls.tolist() == [1]
    model = cloudpickle.loads(cloudpickle.dumps(backend._DSModel(30, 4, 1e-6, None)))
    stats = backend._em_pass(again, model, None)
    assert stats[0].shape == (30 * 4, 4) and stats[-3].sum() == pytest.approx(again.n_items) == stats[-2]


@pytest.mark.parametrize(
    "params", [{"n_iter": 200, "tol": 1e-5}, {"method": "vb", "n_iter": 6, "tol": 0}, {"n_iter": 0}]
)
def test_mace_equals_in_memory(frame: pd.DataFrame, params: dict[str, Any]) -> None:
    with dask.config.set(scheduler="synchronous"):
        mem = MACE(**params).fit(frame)
        dsk = MACE(**params).fit(to_dask(frame, 3))
    assert dsk.n_iter_ == mem.n_iter_ and (params["n_iter"] != 200 or 1 < mem.n_iter_ < 200)
    np.testing.assert_allclose(dsk.log_likelihood_, mem.log_likelihood_, rtol=TOL, atol=0)
    np.testing.assert_allclose(dsk.competences_, mem.competences_, rtol=0, atol=TOL)
    np.testing.assert_allclose(dsk.strategies_, mem.strategies_, rtol=0, atol=TOL)
    assert_same(mem, dsk)


def test_pooled_shrinkage_equals_in_memory(frame: pd.DataFrame) -> None:
    with dask.config.set(scheduler="synchronous"):
        params: dict[str, Any] = {"n_iter": 6, "tol": 0, "smoothing": 0.5, "shrinkage": "pooled"}
        mem = DawidSkene(**params).fit(frame)
        dsk = DawidSkene(**params).fit(to_dask(frame, 3))
        np.testing.assert_allclose(dsk.log_likelihood_, mem.log_likelihood_, rtol=TOL, atol=0)
        assert_same(mem, dsk)
        uniform = DawidSkene(**{**params, "shrinkage": "uniform"}).fit(frame)
        assert np.abs(uniform.confusions_ - mem.confusions_).max() > 1e-3  # the option reached the M-step
