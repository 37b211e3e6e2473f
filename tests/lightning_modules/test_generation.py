"""GenerationMetrics with a scripted model: batches, the short samples extended together, the time limit."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest
import torch

from lightning_modules.callbacks import generation
from lightning_modules.callbacks.generation import GenerationMetrics
from lightning_modules.metrics import complete_words

FAST, SLOW = "ab ", "        ab"  # a word every 3 tokens; a word every 10 (a model writing mostly whitespace)


class Chars:
    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(chr(i) for i in ids)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class ScriptedGPT:
    """generate() as GPT.generate: appends tokens to every row of idx (B, T), on_token after each. A row writes
    FAST, or SLOW when its batch row index is odd; its first generated token says which."""

    def __init__(self, clock: Clock | None = None, seconds_per_token: float = 0.0):
        self.calls: list[tuple[int, int]] = []  # (rows, new tokens) of each call
        self.clock, self.seconds_per_token = clock, seconds_per_token

    def generate(self, idx, max_new_tokens, *, generator=None, on_token=None, **sampling):
        self.calls.append((idx.size(0), max_new_tokens))
        rows = [row.tolist() for row in idx]
        for _ in range(max_new_tokens):
            for r, row in enumerate(rows):
                p = len(row) - 1  # generated so far (the prompt is one token)
                slow = row[1] == ord(" ") if p else r % 2 == 1
                row.append(ord((SLOW if slow else FAST)[p % len(SLOW if slow else FAST)]))
            if self.clock is not None:
                self.clock.now += self.seconds_per_token
            if on_token is not None:
                on_token(len(rows[0]))
        return torch.tensor(rows)


def module(model: ScriptedGPT, block_size: int = 1024):
    return SimpleNamespace(model=model, tokenizer=Chars(), config=SimpleNamespace(block_size=block_size),
                           device=torch.device("cpu"), sample=None)  # fmt: skip


def run(tmp_path, model, block_size=1024, **settings) -> dict:
    trainer = SimpleNamespace(checkpoint_callback=None, datamodule=None, loggers=[], global_step=7)
    GenerationMetrics(str(tmp_path), seed=10, **settings).on_fit_end(trainer, module(model, block_size))
    return json.loads((tmp_path / "generation.json").read_text())


def test_chunks_grow_to_a_tenth_of_the_limit(tmp_path, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(generation.time, "perf_counter", clock)
    model = ScriptedGPT(clock, seconds_per_token=0.01)  # a tenth of 10 s: 100 tokens; 4 contexts of 16: 64
    run(tmp_path, model, block_size=16, num_samples=1, num_words=30, batch_size=1, time_limit_s=10)
    assert [n for _, n in model.calls] == [16, 64, 64, 64, 8]  # the budget: 30 words x 6 x 1.2 = 216 tokens


def test_short_samples_are_extended_together_by_what_they_still_need(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="tformer")
    model = ScriptedGPT()
    result = run(tmp_path, model, num_samples=6, num_words=5, batch_size=4, time_limit_s=None)  # no chunks
    budget = result["settings"]["token_budget"]
    assert budget == 36  # 5 words x 6 characters (no training text) x 1.2
    # batch of 4 (rows 1 and 3 slow: 3 words in 36 tokens) then those two together; batch of 2, its slow row
    # alone: each extension sized by their own rate (3 words / 36 tokens) for the 2 missing words, x 1.2
    assert model.calls == [(4, 36), (2, 29), (2, 36), (1, 29)]
    samples = result["samples"]
    assert [s["rounds"] for s in samples] == [1, 2, 1, 2, 1, 2]
    assert all(s["words"] == 5 and len(complete_words(s["text"])) >= 5 for s in samples)
    assert result["stopped"] is None and result["summary"]["samples"] == 6
    assert "Generation metrics: 6 samples in" in caplog.text and "s, 5 words each" in caplog.text  # said at the end


def test_extension_rounds_are_bounded(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="tformer")
    model = ScriptedGPT()
    result = run(tmp_path, model, num_samples=2, num_words=40, batch_size=2, max_rounds=0, time_limit_s=None)
    assert model.calls == [(2, 288)]  # the batch only: no extension round for its slow row
    slow = result["samples"][1]
    assert slow["rounds"] == 1 and slow["words"] == 28  # scored as it is: 288 tokens, a word every 10
    assert result["summary"]["words"] == pytest.approx((40 + 28) / 2)
    assert "34 words each" in caplog.text


def test_the_time_limit_stops_generation_and_keeps_what_was_done(tmp_path, monkeypatch, caplog):
    clock = Clock()
    monkeypatch.setattr(generation.time, "perf_counter", clock)
    model = ScriptedGPT(clock, seconds_per_token=0.1)
    # the budget of 20 words is 144 tokens; chunks of 16 (a tenth of the limit is 10 tokens: 16 at least); the
    # limit, 10 s, comes at token 100: in the 7th chunk
    result = run(tmp_path, model, num_samples=4, num_words=20, batch_size=2, time_limit_s=10)
    assert model.calls == [(2, 16)] * 7  # the 7th chunk is cut off, the second batch never starts
    assert [len(s["text"]) for s in result["samples"]] == [96, 96]  # the 6 chunks' tokens, scored
    assert "time_limit_s=10" in result["stopped"] and "1 of 4 samples reached 20 words" in result["stopped"]
    assert result["summary"]["samples"] == 2 and result["settings"]["time_limit_s"] == 10
    assert "stopped at callbacks.generation.time_limit_s=10" in caplog.text


def test_settings_are_checked():
    with pytest.raises(ValueError, match="callbacks.generation"):
        GenerationMetrics("out", num_words=0)
    with pytest.raises(ValueError, match="time_limit_s=0"):
        GenerationMetrics("out", time_limit_s=0)
    with pytest.raises(ValueError, match="max_rounds"):
        GenerationMetrics("out", max_rounds=-1)
