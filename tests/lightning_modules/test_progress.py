"""StepProgressBar: progress in optimizer steps (not batches of an epoch), tokens/s, a resumed run's start; without
a terminal, plain lines instead of a redrawn bar (WorkProgress likewise)."""

from __future__ import annotations

import logging
import re

import lightning as L
import torch
from torch.utils.data import DataLoader, IterableDataset

from lightning_modules.callbacks import progress
from lightning_modules.callbacks.progress import StepProgressBar, WorkProgress, _token_count, progress_line


class Windows(IterableDataset):
    """An endless stream of (x, y) windows of 8 tokens, as the GPT DataModules give."""

    def __iter__(self):
        while True:
            yield torch.randint(0, 10, (8,)), torch.randint(0, 10, (8,))


class Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(10, 4)

    def training_step(self, batch, batch_idx):
        loss = self.emb(batch[0]).pow(2).mean()
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def bar_output(capsys, max_steps: int, accumulate: int = 1, bar: StepProgressBar | None = None) -> str:
    bar = bar or StepProgressBar(2, lines=False)
    trainer = L.Trainer(max_steps=max_steps, accumulate_grad_batches=accumulate, callbacks=[bar],
                        logger=False, enable_checkpointing=False, enable_model_summary=False,
                        accelerator="cpu")  # fmt: skip
    trainer.fit(Tiny(), DataLoader(Windows(), batch_size=3))
    captured = capsys.readouterr()
    return (captured.out + captured.err).replace("\r", "\n")


def test_the_bar_counts_optimizer_steps_with_tokens_per_second(capsys):
    out = bar_output(capsys, max_steps=4, accumulate=2)  # 8 batches, 4 optimizer steps
    last = [line for line in out.splitlines() if line.startswith("step:")][-1]
    assert re.search(r"\| 4/4 \[", last), last
    assert "train/loss=" in last and "tok/s=" in last
    assert "Epoch" not in out and "Training" not in out and "/8 [" not in out


def test_token_count_reads_gpt_and_translation_batches():
    assert _token_count((torch.zeros(3, 8), torch.zeros(3, 8))) == 24
    assert _token_count({"tgt_out": torch.zeros(2, 5), "src": torch.zeros(2, 9)}) == 10
    assert _token_count({"src": torch.zeros(2, 9)}) == 0


class Validated(Tiny):
    def validation_step(self, batch, batch_idx):
        self.log("val/loss", self.emb(batch[0]).pow(2).mean(), prog_bar=True)


def test_without_a_terminal_progress_is_plain_lines_not_a_bar(capsys, caplog):
    bar = StepProgressBar(2, lines=True, line_every_s=3600)  # no line is due by time: the last step and validations
    trainer = L.Trainer(max_steps=5, val_check_interval=3, limit_val_batches=1, num_sanity_val_steps=1,
                        callbacks=[bar], logger=False, enable_checkpointing=False, enable_model_summary=False,
                        accelerator="cpu")  # fmt: skip
    loader = DataLoader(Windows(), batch_size=3)
    with caplog.at_level(logging.INFO, logger="tformer"):
        trainer.fit(Validated(), loader, loader)
    captured = capsys.readouterr()
    assert "it/s" not in captured.out + captured.err and "\r" not in captured.out + captured.err  # no bar drawn
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("step ")]
    assert [line.split("  ")[0] for line in lines] == ["step 3/5 (60%)", "step 5/5 (100%)"]
    assert "val/loss" in lines[0] and "ETA" in lines[0] and "train/loss" in lines[1] and "ETA" not in lines[1]


def test_lines_come_every_so_many_seconds(monkeypatch, caplog):
    clock = iter(range(0, 10_000, 10))  # each look at the clock: 10 s later
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    bar = StepProgressBar(1, lines=True, line_every_s=25)
    trainer = L.Trainer(max_steps=12, callbacks=[bar], logger=False, enable_checkpointing=False,
                        enable_model_summary=False, limit_val_batches=0, accelerator="cpu")  # fmt: skip
    with caplog.at_level(logging.INFO, logger="tformer"):
        trainer.fit(Tiny(), DataLoader(Windows(), batch_size=3))
    steps = [int(r.getMessage().split()[1].split("/")[0]) for r in caplog.records if r.getMessage().startswith("step")]
    assert 2 <= len(steps) < 12 and steps[-1] == 12 and steps == sorted(set(steps))  # some steps, not every one


class Timed(Validated):
    """Each training step takes 1 s of the clock, each validation batch 100 s."""

    def __init__(self, now: list[float]):
        super().__init__()
        self.now = now

    def training_step(self, batch, batch_idx):
        self.now[0] += 1.0
        return super().training_step(batch, batch_idx)

    def validation_step(self, batch, batch_idx):
        self.now[0] += 100.0
        return super().validation_step(batch, batch_idx)


def test_tokens_per_second_leave_out_validation_time_but_not_the_tokens_before_it(monkeypatch, caplog):
    now = [0.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: now[0])
    bar = StepProgressBar(1, lines=True, line_every_s=3600)  # lines after validations and at the last step
    trainer = L.Trainer(max_steps=6, val_check_interval=2, limit_val_batches=1, num_sanity_val_steps=0,
                        callbacks=[bar], logger=False, enable_checkpointing=False, enable_model_summary=False,
                        accelerator="cpu")  # fmt: skip
    loader = DataLoader(Windows(), batch_size=3)
    with caplog.at_level(logging.INFO, logger="tformer"):
        trainer.fit(Timed(now), loader, loader)
    last = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("step 6/6"))
    assert "tok/s 24 " in last + " ", last  # 6 steps x 24 tokens in 6 s of training (not 144 tokens in 2 s: 72)


def test_progress_line_reads_like_the_bar():
    line = progress_line(250, 1250, {"train/loss": 2.2701, "tok/s": "10,012"}, eta_s=212)
    assert line == "step 250/1,250 (20%)  train/loss 2.270  tok/s 10,012  ETA 4 min"
    assert progress_line(7, -1, {}, None) == "step 7"


def test_work_progress_logs_lines_with_a_growing_total(monkeypatch, caplog):
    clock = iter(range(0, 1000, 4))
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    with caplog.at_level(logging.INFO, logger="tformer"), WorkProgress("generation", 100, "tok", every_s=10,
                                                                       lines=True) as work:  # fmt: skip
        for _ in range(5):
            work.update(20)
        work.add(50)
        for _ in range(3):
            work.update(10)
    messages = [r.getMessage() for r in caplog.records]
    assert messages and all(m.startswith("generation: ") for m in messages)
    assert "/150 tok" in messages[-1] and work.n == 130 and work.total == 150
