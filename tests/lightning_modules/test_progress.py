"""StepProgressBar: progress in optimizer steps (not batches of an epoch), tokens/s, a resumed run's start."""

from __future__ import annotations

import re

import lightning as L
import torch
from torch.utils.data import DataLoader, IterableDataset

from lightning_modules.callbacks.progress import StepProgressBar, _token_count


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


def bar_output(capsys, max_steps: int, accumulate: int = 1) -> str:
    trainer = L.Trainer(max_steps=max_steps, accumulate_grad_batches=accumulate, callbacks=[StepProgressBar(2)],
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
