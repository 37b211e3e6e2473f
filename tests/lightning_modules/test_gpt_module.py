import pytest
import torch

from lightning_modules.gpt import GPTLitModule
from lightning_modules.optim import OptimConfig, cosine_factor, inverse_sqrt_factor, lr_lambda
from training.checkpoint import load_module
from training.config import REDACTED, loggable, redact

MODEL = dict(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16, bias=True)
TOKENIZER = {"kind": "char", "chars": "abcdefghij\n"}


@pytest.fixture
def module() -> GPTLitModule:
    torch.manual_seed(0)
    return GPTLitModule(model=MODEL, tokenizer=TOKENIZER, optim={"weight_decay": 0.1})


def test_cosine_schedule_shape():
    cfg = OptimConfig(lr=1e-3, min_lr=1e-4, warmup_steps=10)
    f = lr_lambda(cfg, total_steps=110)
    assert f(0) == pytest.approx(1 / 11)
    assert f(9) < f(10) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.1 + 0.5 * 0.9)  # halfway through the cosine
    assert f(110) == pytest.approx(0.1) and f(500) == pytest.approx(0.1)
    assert all(f(s) >= f(s + 1) for s in range(10, 120))


def test_inverse_sqrt_schedule_peaks_after_warmup():
    assert inverse_sqrt_factor(99, warmup=100) == pytest.approx(1.0)
    assert inverse_sqrt_factor(399, warmup=100) == pytest.approx(0.5)
    assert cosine_factor(0, warmup=0, total=10, min_ratio=0.0) == pytest.approx(1.0)


def test_unknown_schedule_raises():
    with pytest.raises(ValueError, match="optim.schedule='linear' is unknown"):
        OptimConfig(schedule="linear")


def test_checkpoint_alone_rebuilds_model_and_tokenizer(module, tmp_path):
    import lightning as L

    trainer = L.Trainer(max_steps=0, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(module)
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    loaded = load_module(path, "gpt")
    assert loaded.tokenizer.decode(loaded.tokenizer.encode("cab\nj")) == "cab\nj"
    idx = torch.tensor([[1, 2, 3]])
    torch.testing.assert_close(loaded(idx)[0], module.eval()(idx)[0])
    text = loaded.sample("abc", num_samples=2, max_new_tokens=5, seed=0)
    assert len(text) == 2 and all(t.startswith("abc") and len(t) == 8 for t in text)


def test_compiled_checkpoint_keys_are_accepted(module, tmp_path):
    ckpt = {
        "state_dict": {k.replace("model.", "model._orig_mod.", 1): v for k, v in module.state_dict().items()},
        "hyper_parameters": dict(module.hparams),
        "tformer_family": "gpt",
    }
    torch.save(ckpt, tmp_path / "c.ckpt")
    loaded = load_module(tmp_path / "c.ckpt", "gpt")
    torch.testing.assert_close(loaded.model.lm_head.weight, module.model.lm_head.weight)


def test_bad_checkpoints_raise_naming_the_field(tmp_path):
    with pytest.raises(FileNotFoundError, match="ckpt_path=.*does not exist"):
        load_module(tmp_path / "nope.ckpt", "gpt")
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint"):
        load_module(tmp_path / "junk.ckpt", "gpt")
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match="not a tformer-lab checkpoint"):
        load_module(tmp_path / "other.ckpt", "gpt")
    torch.save({"state_dict": {}, "tformer_family": "seq2seq", "hyper_parameters": {}}, tmp_path / "s.ckpt")
    with pytest.raises(ValueError, match="holds a seq2seq model, but this needs a gpt checkpoint"):
        load_module(tmp_path / "s.ckpt", "gpt")


def test_secrets_never_reach_logged_config():
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"logger": {"wandb": {"api_key": "abc123", "project": "p"}}, "hf_token": "t", "x": [1]})
    logged = loggable(cfg)
    assert logged["logger"]["wandb"] == {"api_key": REDACTED, "project": "p"}
    assert logged["hf_token"] == REDACTED and logged["x"] == [1]
    assert "abc123" not in str(redact({"nested": [{"password": "abc123"}]}))


@pytest.fixture
def graphs(monkeypatch) -> list:
    """Every graph torch.compile builds (a recording backend instead of inductor: no C++ build)."""
    import functools

    built = []

    def record(gm, inputs):
        built.append(gm)
        return gm.forward

    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend=record))
    torch._dynamo.reset()
    torch.manual_seed(0)
    return built


def test_compile_options_are_checked_and_blocks_compile_in_place(graphs):
    with pytest.raises(ValueError, match="module.compile_scope='layers' is unknown"):
        GPTLitModule(model=MODEL, tokenizer=TOKENIZER, compile=True, compile_scope="layers")
    with pytest.raises(ValueError, match="module.compile_mode='fast' is unknown"):
        GPTLitModule(model=MODEL, tokenizer=TOKENIZER, compile=True, compile_mode="fast")
    plain = GPTLitModule(model={**MODEL, "n_layer": 3}, tokenizer=TOKENIZER)
    compiled = GPTLitModule(model={**MODEL, "n_layer": 3}, tokenizer=TOKENIZER, compile=True, compile_scope="blocks")
    compiled.load_state_dict(plain.state_dict())
    assert all(block._compiled_call_impl is not None for block in compiled.model.transformer.h)  # in place
    assert compiled.model._compiled_call_impl is None  # the model around them runs eagerly
    assert list(compiled.state_dict()) == list(plain.state_dict())  # checkpoints keep plain names
    idx = torch.randint(0, 11, (2, 8))
    torch.testing.assert_close(compiled.train()(idx, idx)[1], plain.train()(idx, idx)[1])
    assert len(graphs) == 1  # three identical blocks, one compiled graph
    compiled.eval()(idx, idx)
    assert len(graphs) == 2  # and one more for evaluation (no dropout)
    # sampling runs eagerly (no compile for every new length) and gives what the plain model gives
    a = compiled.sample("abc", num_samples=2, max_new_tokens=4, seed=0)
    assert a == plain.sample("abc", num_samples=2, max_new_tokens=4, seed=0)
    assert len(graphs) == 2


def test_the_whole_model_compiles_in_place_and_keeps_its_parameter_names(graphs):
    plain = GPTLitModule(model=MODEL, tokenizer=TOKENIZER)
    compiled = GPTLitModule(model=MODEL, tokenizer=TOKENIZER, compile=True)
    compiled.load_state_dict(plain.state_dict())
    assert compiled.model._compiled_call_impl is not None and "_forward" not in vars(compiled)
    assert list(compiled.state_dict()) == list(plain.state_dict())  # no _orig_mod. anywhere
    assert list(compiled.model.state_dict()) == list(plain.model.state_dict())
    idx = torch.randint(0, 11, (2, 8))
    torch.testing.assert_close(compiled.eval()(idx, idx)[1], plain.eval()(idx, idx)[1])
    assert len(graphs) == 1
    assert compiled.hparams == {"model": plain.config.to_dict(), "tokenizer": TOKENIZER, "optim": None,
                                "compile": True, "compile_mode": None, "compile_scope": "model"}  # fmt: skip


def test_a_modern_gpts_checkpoint_alone_rebuilds_it(tmp_path):
    import lightning as L

    speedrun = dict(positions="rope", normalization="rmsnorm", qk_norm=True, activation="relu2", n_kv_head=1,
                    tie_embeddings=False, zero_init_proj=True, logit_softcap=15.0)  # fmt: skip
    torch.manual_seed(0)
    module = GPTLitModule(model={**MODEL, **speedrun}, tokenizer=TOKENIZER)
    with torch.no_grad():  # away from the zero init, so that the blocks matter
        for p in module.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    trainer = L.Trainer(max_steps=0, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    loaded = load_module(tmp_path / "m.ckpt", "gpt")
    assert loaded.config == module.config and loaded.hparams.model["positions"] == "rope"
    idx = torch.tensor([[1, 2, 3, 4]])
    torch.testing.assert_close(loaded(idx)[0], module.eval()(idx)[0])
    assert loaded.sample("abc", num_samples=2, max_new_tokens=5, seed=0) == module.sample(
        "abc", num_samples=2, max_new_tokens=5, seed=0
    )
