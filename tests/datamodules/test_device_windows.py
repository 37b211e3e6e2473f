"""DeviceWindows (training windows drawn where the model is) against RandomWindows, on the CPU device."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch

from datamodules.device_windows import DeviceWindows, use_device_windows, window_seed
from datamodules.shakespeare import ShakespeareDataModule
from datamodules.windows import RandomWindows
from lightning_modules.gpt import GPTLitModule


def starts_of(batches, n: int) -> np.ndarray:
    """Window starts of n batches over tokens 0..N-1 (a window's first token is its start)."""
    return torch.cat([next(batches)[0][:, 0] for _ in range(n)]).numpy()


def test_windows_are_shifted_pairs_of_the_corpus():
    tokens = np.arange(500, dtype=np.uint16)
    x, y = next(iter(DeviceWindows(tokens, block_size=16, batch_size=7, device="cpu", seed=0)))
    assert x.shape == y.shape == (7, 16) and x.dtype == y.dtype == torch.long and x.device.type == "cpu"
    assert torch.equal(y, x + 1)  # tokens are 0..499: the target of each position is the next token
    assert torch.equal(x[:, 1:], x[:, :-1] + 1)  # contiguous windows of the corpus
    assert int(x.min()) >= 0 and int(y.max()) <= 499


def test_same_distribution_as_random_windows(tmp_path):
    n, t, batch, draws = 120, 10, 64, 200  # 12,800 starts over the 110 possible ones
    tokens = np.arange(n, dtype=np.uint16)
    tokens.tofile(tmp_path / "t.bin")
    device = starts_of(iter(DeviceWindows(tokens, t, batch, device="cpu", seed=3)), draws)
    host = starts_of(iter(RandomWindows(tmp_path / "t.bin", t, batch, seed=3)), draws)
    for starts in (device, host):
        assert starts.min() == 0 and starts.max() == n - t - 1  # every valid start, none past the end
        counts = np.bincount(starts, minlength=n - t)
        expected = len(starts) / (n - t)
        chi2 = ((counts - expected) ** 2 / expected).sum()
        assert chi2 < 170, chi2  # uniform: 109 degrees of freedom, p ~ 1e-4 at 170
    # the two samplers agree with each other (two-sample chi-square over the same 110 cells)
    a, b = np.bincount(device, minlength=n - t), np.bincount(host, minlength=n - t)
    two_sample = (((a - b) ** 2) / (a + b)).sum()
    assert two_sample < 170, two_sample


def test_seeded_per_seed_rank_and_batch():
    tokens = np.arange(10_000, dtype=np.uint16)

    def first(**kw) -> torch.Tensor:
        return next(iter(DeviceWindows(tokens, 8, 16, device="cpu", **kw)))[0]

    assert torch.equal(first(seed=1, rank=0), first(seed=1, rank=0))  # reproducible
    assert not torch.equal(first(seed=1, rank=0), first(seed=1, rank=1))  # each DDP rank its own windows
    assert not torch.equal(first(seed=1), first(seed=2))
    assert not torch.equal(first(seed=1), first(seed=1, start_batch=100))  # a resumed run does not replay
    stream = iter(DeviceWindows(tokens, 8, 16, device="cpu", seed=1))
    uninterrupted = [next(stream)[0] for _ in range(5)]
    resumed = iter(DeviceWindows(tokens, 8, 16, device="cpu", seed=1, start_batch=3))
    assert torch.equal(next(resumed)[0], uninterrupted[3]) and torch.equal(next(resumed)[0], uninterrupted[4])
    assert len({window_seed(1, r, 0) for r in range(64)}) == 64
    # iterating again restarts the stream (Lightning re-iterates at each fit)
    windows = DeviceWindows(tokens, 8, 16, device="cpu", seed=5)
    assert torch.equal(next(iter(windows))[0], next(iter(windows))[0])


def test_setting_is_checked_and_auto_means_cuda_only():
    cpu = torch.device("cpu")
    assert use_device_windows(True, 10**6, cpu) and not use_device_windows(False, 10**6, cpu)
    assert not use_device_windows("auto", 10**6, cpu)  # auto: a CUDA device only
    for bad in ("yes", 1, None):
        with pytest.raises(ValueError, match="data.device_resident="):
            use_device_windows(bad, 10, cpu)
    with pytest.raises(ValueError, match="data.device_resident='on' is not one of true, false, auto"):
        ShakespeareDataModule(device_resident="on")
    with pytest.raises(ValueError, match="data.block_size=16 needs more than 10 training tokens"):
        DeviceWindows(np.arange(10), 16, 2, device="cpu")


def test_a_fit_trains_on_device_windows(corpora, cache_dir):
    dm = ShakespeareDataModule(
        data_dir=str(corpora), cache_dir=str(cache_dir), batch_size=4, block_size=16, device_resident=True
    )
    dm.prepare_data()
    dm.setup("fit")
    model = dict(vocab_size=dm.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=16)
    module = GPTLitModule(model=model, tokenizer=dm.tokenizer.state_dict(), optim={"warmup_steps": 0})
    trainer = L.Trainer(
        accelerator="cpu", max_steps=3, limit_val_batches=1, val_check_interval=3, check_val_every_n_epoch=None,
        num_sanity_val_steps=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(module, datamodule=dm)
    assert isinstance(dm.train_dataloader(), DeviceWindows)
    assert trainer.global_step == 3 and torch.isfinite(trainer.callback_metrics["val/loss"])
