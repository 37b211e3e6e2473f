"""train.py on Multi30k (tiny) then translate.py on its checkpoint; bad input to both entry points."""

from __future__ import annotations

import csv

import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from tests.e2e.conftest import ROOT, run_dirs
from training.checks import build_model_config, check_data_family, check_lengths
from training.families import module_for_config

ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # tiny models on a shared 2-core machine: one thread is fastest

TINY_SEQ2SEQ = [
    "model=seq2seq_small",
    "data=multi30k",
    "model.n_enc_layer=1",
    "model.n_dec_layer=1",
    "model.n_embd=32",
    "model.n_head=2",
    "model.d_ff=64",
    "data.limit=200",
    "data.vocab_size=500",
    "data.max_tokens=512",
    "trainer=debug",
    "logger=csv",
]


@pytest.mark.slow
def test_train_then_translate(run_script, tmp_path):
    run_script("train.py", *TINY_SEQ2SEQ, env=ONE_THREAD)
    (run,) = run_dirs(tmp_path)
    for name in ("config.yaml", "checkpoints/best.ckpt", "checkpoints/last.ckpt", "translations.txt"):
        assert (run / name).is_file(), name
    hyps = (run / "test_hypotheses.txt").read_text(encoding="utf-8").split("\n")
    assert len(hyps) == 201 and hyps[-1] == ""  # data.limit=200 test pairs, one line each
    assert "nrefs:1|case:mixed|eff:no|tok:13a" in (run / "test_bleu.txt").read_text()
    with open(run / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert any(r["val/bleu"] for r in rows) and any(r["val/loss"] for r in rows)
    assert [r["test/bleu"] for r in rows if r["test/bleu"]] != []
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["tformer_family"] == "seq2seq"

    ckpt = f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"
    out = run_script("translate.py", ckpt, "text=Ein Mann fährt Fahrrad.", "beam_size=3", env=ONE_THREAD)
    assert len(out.stdout.split("\n")) == 2 and out.stdout.endswith("\n")
    source = tmp_path / "in.txt"
    source.write_text("Ein Hund, eine Katze.\n\nZwei Männer spielen Fußball.\n", encoding="utf-8")
    target = tmp_path / "out.txt"
    run_script("translate.py", ckpt, f"input={source}", f"output={target}", "beam_size=1", env=ONE_THREAD)
    lines = target.read_text(encoding="utf-8").split("\n")
    assert len(lines) == 4 and lines[1] == "" and lines[3] == ""  # 3 translations, the empty line kept


def fake_checkpoint(path, family: str):
    torch.save({"state_dict": {}, "tformer_family": family, "hyper_parameters": {}}, path)
    return path


@pytest.mark.slow
def test_translate_refuses_a_gpt_checkpoint(run_script, tmp_path):
    gpt = fake_checkpoint(tmp_path / "gpt.ckpt", "gpt")
    out = run_script("translate.py", f"ckpt_path={gpt}", "text=Hallo", check=False)
    assert out.returncode != 0
    assert "holds a gpt model, but this needs a seq2seq checkpoint" in out.output


def compose(*overrides: str):
    from hydra import compose, initialize_config_dir

    import training.config  # noqa: F401  (resolvers)

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


def test_ddp_leaves_the_translation_batch_sampler_alone():
    """Lightning cannot wrap the token-budget batch sampler (it shards itself): the data config says so."""
    assert compose("model=seq2seq_small", "trainer=ddp").trainer.use_distributed_sampler is False
    assert compose("model=seq2seq_small", "data=parallel", "trainer=ddp").trainer.use_distributed_sampler is False
    assert compose("trainer=ddp").trainer.use_distributed_sampler is True  # GPT windows: Lightning shards val


def test_model_seq2seq_small_selects_multi30k_and_the_seq2seq_optimizer():
    cfg = compose("model=seq2seq_small")
    assert cfg.data.name == "multi30k" and cfg.optim.schedule == "inverse_sqrt" and cfg.optim.beta2 == 0.98
    assert compose("model=seq2seq_small", "data=parallel").data.name == "parallel"  # the command line wins
    assert compose("model=seq2seq_small", "optim=gpt").optim.schedule == "cosine"
    assert compose().model.name == "gpt_small" and compose().optim.beta2 == 0.99  # the GPT default is unchanged
    recipe = compose("experiment=translate_multi30k")
    assert recipe.model.name == "seq2seq_small" and recipe.module.beam_size == 5
    base = build_model_config(compose("model=seq2seq_base"))
    assert (base.n_enc_layer, base.n_dec_layer, base.n_embd, base.n_head, base.d_ff) == (6, 6, 512, 8, 2048)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model=seq2seq_small", "data=shakespeare_char"], "model=seq2seq_small does not fit data=shakespeare_char"),
        (["model=gpt_nano", "data=multi30k"], "model=gpt_nano does not fit data=multi30k"),
    ],
)
def test_train_rejects_a_model_and_data_of_different_families(overrides, message):
    with pytest.raises(ValueError, match=message):
        build_model_config(compose(*overrides))


def test_train_rejects_data_of_the_wrong_family_even_with_explicit_sizes():
    cfg = compose("model=seq2seq_small", "data=shakespeare_char", "model.max_len=64")
    model_cfg = build_model_config(cfg)
    datamodule = instantiate({k: v for k, v in cfg.data.items() if k != "name"})
    with pytest.raises(ValueError, match="data=shakespeare_char is a corpus for gpt models, but model=seq2seq_small"):
        check_data_family(datamodule, module_for_config(model_cfg).family, cfg)


def test_train_rejects_bad_lengths_and_languages():
    cfg = compose("model=seq2seq_small", "data.max_len=64", "model.max_len=32")
    with pytest.raises(ValueError, match=r"data.max_len=64 is larger than the model's model.max_len=32"):
        check_lengths(build_model_config(cfg), cfg.data)
    cfg = compose("model=seq2seq_small", "data.src_lang=xx")
    with pytest.raises(InstantiationException, match=r"data.src_lang='xx' is not a Multi30k language"):
        instantiate({k: v for k, v in cfg.data.items() if k != "name"})


def test_translate_input_errors(tmp_path):
    from omegaconf import OmegaConf

    from translate import read_input

    with pytest.raises(ValueError, match='give exactly one of text="a sentence" or input='):
        read_input(OmegaConf.create({"text": None, "input": None}))
    with pytest.raises(ValueError, match="give exactly one of"):
        read_input(OmegaConf.create({"text": "Hallo", "input": "x.txt"}))
    with pytest.raises(FileNotFoundError, match="input=.*missing.txt does not exist"):
        read_input(OmegaConf.create({"text": None, "input": str(tmp_path / "missing.txt")}))
    (tmp_path / "in.txt").write_text("Ein Hund.\n\n  Zwei Katzen. \n", encoding="utf-8")
    assert read_input(OmegaConf.create({"text": None, "input": str(tmp_path / "in.txt")})) == [
        "Ein Hund.",
        "",
        "Zwei Katzen.",
    ]


@pytest.mark.parametrize(
    "text", ["Ein Mann fährt Fahrrad.", "Hallo, Welt: [1, 2]", "It's a \\ back\\'slash\\", "cost ${x}", "a=b"]
)
def test_free_text_reaches_translate_verbatim(text):
    """Hydra's override parser rejects non-ASCII letters, commas etc. unquoted; translate.py quotes for it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from training.cli import quote_free_text
    from translate import FREE_TEXT_KEYS

    (arg,) = quote_free_text([f"text={text}"], FREE_TEXT_KEYS)
    (override,) = OverridesParser.create().parse_overrides([arg])
    assert OmegaConf.create({"text": override.value()}).text == text
