"""training/console.py: the console's formatter and the extra ranks' filter, as conf/hydra/default.yaml wires them."""

from __future__ import annotations

import logging

import yaml

from tests.conftest import ROOT
from training.console import ConsoleFormatter, ExtraRankConsole


def record(name: str, level: int, message: str = "m") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, None, None)


def test_extra_ranks_leave_the_projects_warnings_to_rank_zero():
    keep = ExtraRankConsole().filter
    assert not keep(record("tformer", logging.WARNING))  # optim.warmup_steps longer than the run, ...
    assert not keep(record("datamodules.parallel_text", logging.WARNING))
    assert keep(record("tformer", logging.ERROR))  # an error may be this rank's own
    assert keep(record("lightning.pytorch.strategies.ddp", logging.WARNING))  # a library's: maybe this rank's
    assert keep(record("torch.distributed", logging.WARNING))
    assert keep(record("tformers_elsewhere", logging.WARNING))  # a prefix is not a package


def test_warnings_keep_their_level_and_info_is_plain():
    fmt = ConsoleFormatter("%(message)s")
    assert fmt.format(record("tformer", logging.INFO, "Run directory: x")) == "Run directory: x"
    assert fmt.format(record("tformer", logging.WARNING, "careful")) == "WARNING: careful"


def test_the_hydra_config_filters_only_the_extra_ranks_console():
    job_logging = yaml.safe_load((ROOT / "conf" / "hydra" / "default.yaml").read_text())["job_logging"]
    assert job_logging["filters"]["extra_rank"]["()"] == "training.console.ExtraRankConsole"
    assert job_logging["handlers"]["console"]["filters"] == "${rank_zero:[],[extra_rank]}"


def test_a_preset_name_is_printed_only_with_the_presets_sizes(tmp_path):
    from models.gpt import GPTConfig
    from models.seq2seq import Seq2SeqConfig
    from training.console import model_label

    def gpt(**sizes):
        return GPTConfig(vocab_size=65, block_size=64, **{"n_layer": 3, "n_head": 4, "n_embd": 64, **sizes})

    assert model_label(gpt(name="gpt_nano")) == "gpt_nano (n_layer=3, n_head=4, n_embd=64)"
    # the CPU recipe: model=gpt_nano with its sizes overridden to 4/4/128 is no gpt_nano
    assert model_label(gpt(name="gpt_nano", n_layer=4, n_embd=128)) == "GPT (n_layer=4, n_head=4, n_embd=128)"
    assert model_label(gpt(name="gpt_nano", d_ff=100)).startswith("GPT (")  # the MLP too
    assert model_label(gpt(name="mine", n_layer=4)) == "mine (n_layer=4, n_head=4, n_embd=64)"  # not a preset
    small = dict(vocab_size=300, max_len=64, n_enc_layer=4, n_dec_layer=4, n_head=4, n_embd=256, d_ff=1024)
    assert model_label(Seq2SeqConfig(name="seq2seq_small", **small)).startswith("seq2seq_small (n_enc_layer=4")
    tiny = {**small, "n_enc_layer": 1, "n_dec_layer": 1}
    assert model_label(Seq2SeqConfig(name="seq2seq_small", **tiny)).startswith("Seq2Seq (n_enc_layer=1")


def test_preset_sizes_follow_the_presets_they_build_on(tmp_path):
    from training.console import preset_sizes

    (tmp_path / "base.yaml").write_text("name: base\nn_layer: 6\nn_head: 6\nn_embd: 384\nd_ff: null\n")
    (tmp_path / "small.yaml").write_text("defaults:\n  - base\n  - _self_\n  - override /data@_global_.data: x\n"
                                         "name: small\nn_layer: 2\n")  # fmt: skip
    assert preset_sizes("small", tmp_path) == {"n_layer": 2, "n_head": 6, "n_embd": 384, "d_ff": None}
    assert preset_sizes("absent", tmp_path) is None
    assert preset_sizes("gpt_nano") == {"n_layer": 3, "n_head": 4, "n_embd": 64, "d_ff": None}  # conf/model
