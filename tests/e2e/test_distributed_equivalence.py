"""2 CPU ranks with batch B each train exactly as one process with batch 2B on the same windows: DDP (gloo) and
FSDP (Lightning's FSDPStrategy on CPU processes, see distributed_equivalence.cpu_fsdp). Every step clips
(optim.grad_clip below the gradient norm), so FSDP's clipping must use the norm over all shards.
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


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    threads = torch.get_num_threads()
    run.main("single", out)  # on one thread, as each rank
    torch.set_num_threads(threads)
    return json.loads((out / "single.json").read_text()), torch.load(out / "single.pt")


def two_ranks(mode: str, tmp_path) -> tuple[dict, dict]:
    cmd = [sys.executable, str(ROOT / "tests" / "e2e" / "distributed_equivalence.py"), mode, str(tmp_path)]
    (code,) = finish([start(cmd, env=train_env(tmp_path), log=tmp_path / f"{mode}.log")], timeout=300)
    assert code == 0, (tmp_path / f"{mode}.log").read_text(errors="replace")[-4000:]
    return json.loads((tmp_path / f"{mode}.json").read_text()), torch.load(tmp_path / f"{mode}.pt")


def assert_same_training(got: tuple[dict, dict], reference: tuple[dict, dict]) -> None:
    (record, weights), (ref_record, ref_weights) = got, reference
    assert record["grad_norm"] == pytest.approx(ref_record["grad_norm"], rel=1e-5)  # the whole gradient's norm
    assert min(ref_record["grad_norm"]) > run.GRAD_CLIP  # ... above the limit: every step clipped
    assert record["applied_norm"] == pytest.approx(run.GRAD_CLIP, rel=1e-4)
    assert sorted(weights) == sorted(ref_weights)
    for name, value in ref_weights.items():
        torch.testing.assert_close(weights[name], value, rtol=1e-4, atol=1e-5, msg=lambda m, n=name: f"{n}: {m}")


def test_ddp_two_ranks_equal_one_process_on_the_union_batch(single, tmp_path):
    ddp = two_ranks("ddp", tmp_path)
    gradient, reference = torch.tensor(ddp[0]["gradient"]), torch.tensor(single[0]["gradient"])
    torch.testing.assert_close(gradient, reference, rtol=1e-5, atol=1e-7)  # the averaged gradient of step 0
    assert_same_training(ddp, single)


def test_fsdp_two_ranks_clip_the_global_norm_and_equal_one_process(single, tmp_path):
    assert_same_training(two_ranks("fsdp", tmp_path), single)
