"""2 CPU ranks with batch B each train exactly as one process with batch 2B on the same windows: DDP (gloo) and
FSDP (Lightning's FSDPStrategy on CPU processes, see distributed_equivalence.cpu_fsdp). Every step clips
(optim.grad_clip below the gradient norm), so FSDP's clipping must use the norm over all shards. optim.name=muon
under DDP likewise; under FSDP (flattened shards, no whole matrices for Muon) it is refused with one line.
The ranks run as subprocesses (tests/e2e/distributed_equivalence.py); the one-process reference runs in pytest.
"""

from __future__ import annotations

import json
import sys

import pytest
import torch

from tests.e2e import distributed_equivalence as run
from tests.e2e.procs import ROOT, finish, start, train_env

pytestmark = pytest.mark.slow


def one_process(out, optim: str) -> tuple[dict, dict]:
    threads = torch.get_num_threads()
    run.main("single", out, optim)  # on one thread, as each rank
    torch.set_num_threads(threads)
    return json.loads((out / "single.json").read_text()), torch.load(out / "single.pt")


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    return one_process(tmp_path_factory.mktemp("single"), "adamw")


def launch(mode: str, tmp_path, optim: str) -> tuple[int, str]:
    cmd = [sys.executable, str(ROOT / "tests" / "e2e" / "distributed_equivalence.py"), mode, str(tmp_path), optim]
    (code,) = finish([start(cmd, env=train_env(tmp_path), log=tmp_path / f"{mode}.log")], timeout=300)
    return code, (tmp_path / f"{mode}.log").read_text(errors="replace")


def two_ranks(mode: str, tmp_path, optim: str = "adamw") -> tuple[dict, dict]:
    code, log = launch(mode, tmp_path, optim)
    assert code == 0, log[-4000:]
    return json.loads((tmp_path / f"{mode}.json").read_text()), torch.load(tmp_path / f"{mode}.pt")


def assert_same_training(got: tuple[dict, dict], reference: tuple[dict, dict], atol: float = 1e-5) -> None:
    (record, weights), (ref_record, ref_weights) = got, reference
    assert record["grad_norm"] == pytest.approx(ref_record["grad_norm"], rel=1e-5)  # the whole gradient's norm
    assert min(ref_record["grad_norm"]) > run.GRAD_CLIP  # ... above the limit: every step clipped
    assert record["applied_norm"] == pytest.approx(run.GRAD_CLIP, rel=1e-4)
    assert sorted(weights) == sorted(ref_weights)
    for name, value in ref_weights.items():
        torch.testing.assert_close(weights[name], value, rtol=1e-4, atol=atol, msg=lambda m, n=name: f"{n}: {m}")


def test_ddp_two_ranks_equal_one_process_on_the_union_batch(single, tmp_path):
    ddp = two_ranks("ddp", tmp_path)
    gradient, reference = torch.tensor(ddp[0]["gradient"]), torch.tensor(single[0]["gradient"])
    torch.testing.assert_close(gradient, reference, rtol=1e-5, atol=1e-7)  # the averaged gradient of step 0
    assert_same_training(ddp, single)


def test_fsdp_two_ranks_clip_the_global_norm_and_equal_one_process(single, tmp_path):
    assert_same_training(two_ranks("fsdp", tmp_path), single)


def test_muon_on_two_ddp_ranks_equals_one_process(tmp_path):
    """optim.name=muon: Muon orthogonalises the all-reduced gradient of each hidden matrix, as one process does."""
    (tmp_path / "single").mkdir()
    reference = one_process(tmp_path / "single", "muon")
    ddp = two_ranks("ddp", tmp_path, "muon")
    gradient, ref_gradient = torch.tensor(ddp[0]["gradient"]), torch.tensor(reference[0]["gradient"])
    torch.testing.assert_close(gradient, ref_gradient, rtol=1e-5, atol=1e-7)
    # Newton-Schulz runs in bfloat16 (torch's Muon): a gradient that differs in its last float bits (the order of the
    # ranks' sum) can round one bf16 element the other way, and that matrix's update then differs by about 1% of a
    # Muon step (a step moves an element by ~2e-2 here). An unaveraged or rank-local gradient differs by whole steps.
    assert_same_training(ddp, reference, atol=2e-3)


def test_muon_under_fsdp_is_refused_with_one_line(tmp_path):
    """Muon needs whole matrices; FSDP gives the optimizer flattened shards (train.py refuses trainer=fsdp with
    optim.name=muon before any work: tests/training/test_checks.py; this is the optimizer's own refusal)."""
    code, log = launch("fsdp", tmp_path, "muon")
    assert code != 0
    assert "optim.name=muon needs whole 2-D weight matrices, but the optimizer was given flattened shards" in log
