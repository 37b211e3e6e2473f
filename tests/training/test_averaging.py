"""Checkpoint averaging: the arithmetic, the files average.py writes, the callback's averaged.ckpt."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from lightning_modules.callbacks.averaging import AverageCheckpoints, average_state_dicts
from lightning_modules.gpt import GPTLitModule
from training.averaging import average_checkpoints, save_average
from training.checkpoint import load_module

MODEL = dict(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16)
TOKENIZER = {"kind": "char", "chars": "abcdefghij\n"}


def state(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"w": torch.randn(3, 4, generator=g), "h": torch.randn(5, generator=g).half(), "n": torch.tensor(seed)}


def test_average_of_identical_states_is_that_state():
    s = state(0)
    out = average_state_dicts([s, {k: v.clone() for k, v in s.items()}, s, s])
    for key in s:
        assert out[key].dtype == s[key].dtype and torch.equal(out[key], s[key]), key


def test_average_is_the_elementwise_mean_and_keeps_integers_from_the_last():
    a, b, c = state(1), state(2), state(3)
    out = average_state_dicts([a, b, c])
    torch.testing.assert_close(out["w"], (a["w"].double() + b["w"].double() + c["w"].double()).div(3).float())
    torch.testing.assert_close(out["h"], ((a["h"].double() + b["h"].double() + c["h"].double()) / 3).half())
    assert int(out["n"]) == 3  # a counter is not averaged: the last state's


def test_states_that_do_not_match_are_refused():
    with pytest.raises(ValueError, match="other parameters than the last"):
        average_state_dicts([{"w": torch.zeros(2)}, {"v": torch.zeros(2)}])
    with pytest.raises(ValueError, match="w has different shapes"):
        average_state_dicts([{"w": torch.zeros(2)}, {"w": torch.zeros(3)}])
    with pytest.raises(ValueError, match="nothing to average"):
        average_state_dicts([])


def save(module: GPTLitModule, path) -> None:
    trainer = L.Trainer(max_steps=0, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(path)


@pytest.fixture
def checkpoints(tmp_path):
    paths = []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        save(GPTLitModule(model=MODEL, tokenizer=TOKENIZER), tmp_path / f"{seed}.ckpt")
        paths.append(tmp_path / f"{seed}.ckpt")
    return paths


def test_averaged_checkpoint_file_loads_and_holds_the_mean(checkpoints, tmp_path):
    out = save_average(checkpoints, tmp_path / "avg.ckpt")
    loaded = load_module(out, "gpt")  # what sample.py / translate.py do
    ckpts = [torch.load(p, weights_only=False) for p in checkpoints]
    key = "model.lm_head.weight"
    mean = sum(c["state_dict"][key].double() for c in ckpts) / 3
    torch.testing.assert_close(loaded.state_dict()[key], mean.float())
    raw = torch.load(out, weights_only=False)
    assert raw["averaged_from"] == [str(p) for p in checkpoints] and "optimizer_states" not in raw
    # the same checkpoint three times: the very same weights
    same = load_module(save_average([checkpoints[0]] * 3, tmp_path / "same.ckpt"), "gpt")
    for k, v in load_module(checkpoints[0], "gpt").state_dict().items():
        assert torch.equal(same.state_dict()[k], v), k


def test_checkpoints_of_other_models_or_families_are_refused(checkpoints, tmp_path):
    save(GPTLitModule(model={**MODEL, "n_embd": 32}, tokenizer=TOKENIZER), tmp_path / "wide.ckpt")
    with pytest.raises(ValueError, match="another model configuration"):
        average_checkpoints([checkpoints[0], tmp_path / "wide.ckpt"])
    other = torch.load(checkpoints[1], weights_only=False)
    other["tformer_family"] = "seq2seq"
    torch.save(other, tmp_path / "s2s.ckpt")
    with pytest.raises(ValueError, match="holds a gpt model, .*s2s.ckpt a seq2seq"):
        average_checkpoints([checkpoints[0], tmp_path / "s2s.ckpt"])
    with pytest.raises(ValueError, match="is one of the inputs"):
        save_average(checkpoints, checkpoints[0])
    with pytest.raises(FileNotFoundError, match="checkpoint=.*does not exist"):
        average_checkpoints([tmp_path / "missing.ckpt"])


def test_callback_averages_the_weights_of_the_last_validations(tmp_path, corpora, cache_dir):
    from tests.lightning_modules.test_measure import fit

    class Seen(L.Callback):
        """The module's weights at each validation end, as the averaging callback sees them."""

        def __init__(self):
            self.states = []

        def on_validation_end(self, trainer, pl_module):
            self.states.append({k: v.detach().clone() for k, v in pl_module.state_dict().items()})

    seen = Seen()
    averaging = AverageCheckpoints(str(tmp_path / "checkpoints"), last_n=2)
    trainer, module, _ = fit(tmp_path, corpora, cache_dir, [seen, averaging], steps=6)  # validations at 2, 4, 6
    assert list(averaging.steps) == [4, 6] and len(seen.states) == 3
    raw = torch.load(tmp_path / "checkpoints" / "averaged.ckpt", weights_only=False)
    assert raw["averaged_steps"] == [4, 6] and raw["tformer_family"] == "gpt" and "optimizer_states" not in raw
    expected = average_state_dicts(seen.states[1:])
    for k, v in expected.items():
        torch.testing.assert_close(raw["state_dict"][k], v)
    for k, v in seen.states[-1].items():  # the run itself keeps its own (last) weights
        assert torch.equal(module.state_dict()[k], v), k
    with pytest.raises(ValueError, match="callbacks.averaging.last_n must be a positive integer"):
        AverageCheckpoints("x", last_n=0)
