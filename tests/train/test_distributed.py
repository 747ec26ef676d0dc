"""Data-parallel training (torch.distributed, gloo on CPU, 2 processes) in the one Trainer.

The 2-rank scenarios run once, in one spawned process group (see ``_ddp_worker.py``), under a
timeout so a hang fails the test instead of blocking the suite; each test checks one result.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from _ddp_worker import exact_model, run, simulated, toy

from crowdlearn.estimators import CrowdClassifier
from crowdlearn.nn import CrowdLoss, CrowdModel, GeoCrowdNetFLoss
from crowdlearn.train import Inputs, Trainer, ValidationSet, item_batches, make_batch, shard_batches
from crowdlearn.train import distributed as dist_utils

WORLD = 2
TIMEOUT_S = 600.0  # a hang detector, generous for a loaded machine: never a timing assumption
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Spawn 2 ranks, wait at most TIMEOUT_S (then kill them and fail), load their results."""
    outdir = tmp_path_factory.mktemp("ddp")
    ctx = mp.start_processes(
        run, args=(WORLD, free_port(), str(outdir)), nprocs=WORLD, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not ctx.join(timeout=max(deadline - time.monotonic(), 0.1)):
            if time.monotonic() > deadline:
                pytest.fail(f"the 2-rank run did not finish within {TIMEOUT_S:.0f} s (hang?)")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
                p.join()
    out = [torch.load(outdir / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    for r, res in enumerate(out):
        res["outdir"] = outdir
        assert res["rank"] == r and res["world"] == WORLD
    return out


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float = 0.0) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=0.0, msg=lambda m, k=k: f"{k}: {m}")


# ------------------------------------------------------------------ 2-rank scenarios
def test_one_step_equals_single_process_average_of_the_two_batches(ranks: list[dict[str, Any]]) -> None:
    x, _, ann = toy(n=16)
    model = exact_model()
    model.head.sparse = False  # as on the ranks: a distributed Trainer makes the head dense (DDP, Adam)
    ref = Trainer(model, GeoCrowdNetFLoss(0.01), epochs=1, batch_size=8, lr=1e-2, device="cpu", random_state=3)
    labelled = np.flatnonzero(ann.item_counts > 0).astype(np.int64)
    batches = item_batches(labelled, 8, generator=torch.Generator().manual_seed(3))
    assert len(batches) == WORLD
    ref.optimizer.zero_grad(set_to_none=True)
    losses = []
    for idx in batches:  # rank r trained on batch r; DDP averages the two gradients
        b = make_batch(Inputs(x), ann, idx)
        loss = ref.get_loss(model(b.x), b)["loss"]
        (loss / WORLD).backward()
        losses.append(float(loss.detach()))
    ref.optimizer.step()
    grads = {k: p.grad for k, p in model.named_parameters() if p.grad is not None}
    assert "head.logits" in grads  # the confusion head's gradient is averaged too
    for res in ranks:
        assert res["exact_is_crowdmodel"]
        assert_same(res["exact_grads"], grads, atol=1e-6)
        assert_same(res["exact_params"], {k: p.detach() for k, p in model.named_parameters()}, atol=1e-6)
        assert res["exact_train_loss"] == pytest.approx(np.mean(losses), abs=1e-6)


def test_ranks_end_identical_and_learn(ranks: list[dict[str, Any]]) -> None:
    r0, r1 = ranks
    assert_same(r0["learn_state"], r1["learn_state"])  # incl. batch-norm running statistics
    assert r0["learn_history"] == r1["learn_history"]  # averaged losses, all-reduced validation
    assert r0["learn_best_epoch"] == r1["learn_best_epoch"] is not None
    assert r0["learn_acc"] == r1["learn_acc"] > 0.8  # chance is 1/3
    assert r0["learn_saved_after_save"] and r1["learn_saved_after_save"]
    back = CrowdClassifier.load(r0["outdir"] / "model.safetensors")
    assert_same({k: v for k, v in back.model_.state_dict().items()}, r0["learn_state"])
    assert_same(r0["mixup_state"], r1["mixup_state"])
    assert r0["learn_messages"] == 12 and r1["learn_messages"] == 0  # one line per epoch, from rank 0 only


def test_every_registered_method_trains_data_parallel_to_identical_ranks(ranks: list[dict[str, Any]]) -> None:
    r0, r1 = ranks
    assert len(r0["methods"]) >= 11 and r0["methods"] == r1["methods"]
    errors = {k: v for k, v in r0.items() if k.startswith("method_error/")}
    assert not errors
    for name in r0["methods"]:
        assert_same(r0[f"method_state/{name}"], r1[f"method_state/{name}"])
        assert r0[f"method_loss/{name}"] == r1[f"method_loss/{name}"]
        assert all(math.isfinite(v) for v in r0[f"method_loss/{name}"])


def test_sharded_validation_equals_single_process_validation(ranks: list[dict[str, Any]]) -> None:
    """The held-out NLL summed over the ranks' shares = the single-process value of the same weights."""
    r0 = ranks[0]
    back = CrowdClassifier.load(r0["outdir"] / "model.safetensors")
    x, _, ann = simulated()
    _, held = ann.split_holdout(0.1, random_state=0)
    tr = Trainer(back.model_, CrowdLoss(), device="cpu", batch_size=32)
    single = tr.run_validation(ValidationSet(Inputs(x), annotations=held))
    best = r0["learn_best_epoch"]
    assert r0["learn_history"][best]["valid_loss"] == pytest.approx(single["valid_loss"], abs=1e-6)


def test_checkpoint_written_by_rank0_only_and_resume_is_exact(ranks: list[dict[str, Any]]) -> None:
    r0, r1 = ranks
    assert r0["ckpt_writes"] == 4 + 2 + 2 and r1["ckpt_writes"] == 0
    assert r0["ckpt_batches_per_epoch"] == r1["ckpt_batches_per_epoch"] == 4  # 7 batches padded to 8, 4 per rank
    for res in ranks:
        assert_same(res["ckpt_resumed"], res["ckpt_full"])
        assert res["ckpt_resumed_history"] == res["ckpt_full_history"]
    assert_same(r0["ckpt_full"], r1["ckpt_full"])
    assert not torch.equal(r0["ckpt_rng_at_start"], r1["ckpt_rng_at_start"])  # dropout seeded seed + rank


def test_nan_on_one_rank_raises_on_every_rank(ranks: list[dict[str, Any]]) -> None:
    for res in ranks:
        assert res["diverge_raised"]
        assert res["diverge_where"] == [0, 2]
        assert res["diverge_ranks"] == [1]
        assert "on rank(s) [1]" in res["diverge_message"]
        assert res["diverge_reset"] and res["diverge_history_len"] == 0
        assert res["group_alive"] == pytest.approx(0.5)
        assert res["destroyed"]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="thread names are read from /proc")
def test_destroy_joins_the_gloo_threads(ranks: list[dict[str, Any]]) -> None:
    """After DDP training, leaving process_group() destroys the group for real: its threads are gone.

    A group that outlives its destroy_process_group() keeps gloo worker threads that can drop a
    collective's tensors during interpreter finalization and abort the process (the
    ``terminate called without an active exception`` of a torchrun job whose work was done).
    """
    for res in ranks:
        assert res["gloo_threads_after_destroy"] == []


EXIT_PROBE = """
import atexit, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from _ddp_worker import gloo_threads, toy

def probe():  # registered before crowdlearn's teardown, so it runs after it (atexit is LIFO)
    print("gloo threads at exit:", gloo_threads(), flush=True)

atexit.register(probe)
import torch
from crowdlearn.estimators import CrowdClassifier
torch.set_num_threads(1)
x, _, ann = toy(n=32)
clf = CrowdClassifier(epochs=2, batch_size=8, validation="none", device="cpu", distributed=True).fit(x, ann)
print("fitted", flush=True)
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="thread names are read from /proc")
def test_group_made_by_the_library_is_destroyed_before_interpreter_exit(tmp_path: Path) -> None:
    """``distributed=True`` without destroy (as `crowdlearn train --distributed`): joined at exit."""
    script = tmp_path / "probe.py"
    script.write_text(EXIT_PROBE.format(tests=str(Path(__file__).parent)))
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1")
    env.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "fitted" in done.stdout
    assert "gloo threads at exit: []" in done.stdout, done.stdout


def test_example_runs_under_torchrun() -> None:
    """``torchrun --standalone --nproc_per_node=2 examples/ddp_train.py``, small; rank 0 prints once."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}"]
    cmd += [str(REPO / "examples" / "ddp_train.py"), "--items", "400", "--annotators", "10", "--epochs", "2"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("world size")]
    assert len(lines) == 1 and lines[0].startswith("world size 2: accuracy ")
    assert "effective batch 128" in lines[0]


# ------------------------------------------------------------------ single process
@pytest.mark.parametrize("missing", ["RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"])
def test_init_from_env_names_the_missing_variable(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    env = {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv(missing)
    with pytest.raises(ValueError, match=f"environment variable\\(s\\) {missing} .*torchrun"):
        dist_utils.init_from_env("gloo")
    assert not dist_utils.is_distributed()


@pytest.mark.parametrize(
    ("var", "value", "match"),
    [
        ("RANK", "x", "RANK must be an integer >= 0, got 'x'"),
        ("RANK", "2", "RANK must be < WORLD_SIZE=2, got '2'"),
        ("WORLD_SIZE", "0", "WORLD_SIZE must be an integer >= 1, got '0'"),
        ("LOCAL_RANK", "-1", "LOCAL_RANK must be an integer >= 0"),
        ("MASTER_PORT", "99999", "MASTER_PORT must be a port number <= 65535"),
    ],
)
def test_init_from_env_rejects_invalid_values(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, match: str
) -> None:
    env = {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    env[var] = value
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ValueError, match=match):
        dist_utils.init_from_env("gloo")


def test_distributed_true_without_torchrun_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in dist_utils.ENV_VARS:
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(ValueError, match="RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT"):
        Trainer(exact_model(), GeoCrowdNetFLoss(), device="cpu", distributed=True)
    x, _, ann = toy(n=16)
    with pytest.raises(ValueError, match="environment variable"):
        CrowdClassifier(epochs=1, validation="none", device="cpu", distributed=True).fit(x, ann)
    with pytest.raises(ValueError, match="The 'distributed' parameter of CrowdClassifier must be a bool"):
        CrowdClassifier(distributed=1).fit(x, ann)  # type: ignore[arg-type]


def test_helpers_without_a_process_group() -> None:
    assert not dist_utils.is_distributed()
    assert (dist_utils.rank(), dist_utils.world_size(), dist_utils.is_main_process()) == (0, 1, True)
    assert dist_utils.all_reduce_mean(2.5) == 2.5
    t = torch.tensor([1.0, 3.0])
    assert torch.equal(dist_utils.all_reduce_mean(t), t)
    dist_utils.barrier()
    dist_utils.destroy()


def test_shard_batches_pads_cyclically_and_drops_nothing() -> None:
    batches = [np.arange(i * 4, i * 4 + 4, dtype=np.int64) for i in range(7)]
    shards = [shard_batches(batches, r, 2) for r in range(2)]
    assert [len(s) for s in shards] == [4, 4]
    seen = np.concatenate([b for s in shards for b in s])
    assert set(seen.tolist()) == set(range(28))  # every item at least once
    assert np.array_equal(shards[1][-1], batches[0])  # the 8th batch repeats the 1st
    assert [len(shard_batches(batches[:1], r, 3)) for r in range(3)] == [1, 1, 1]
    with pytest.raises(ValueError, match="rank must be in \\[0, world_size=2\\), got 2"):
        shard_batches(batches, 2, 2)


def test_model_attribute_is_plain_crowd_model_without_group() -> None:
    tr = Trainer(exact_model(), GeoCrowdNetFLoss(), device="cpu", epochs=1)
    assert not tr.data_parallel and type(tr.model) is CrowdModel
