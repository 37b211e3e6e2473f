"""Sizing against the real module: parameters, FLOPs, and the memory a training step holds."""

from __future__ import annotations

import pytest
import torch

from models import memory, sizing
from models.gpt import GPT, GPTConfig
from models.seq2seq import Seq2SeqConfig

CONFIGS = [
    GPTConfig(vocab_size=65, block_size=32, n_layer=2, n_head=2, n_embd=32, bias=False),
    GPTConfig(vocab_size=65, block_size=32, n_layer=2, n_head=2, n_embd=32, bias=True),
    GPTConfig(vocab_size=101, block_size=17, n_layer=3, n_head=3, n_embd=48, bias=True),
    GPTConfig(vocab_size=50257, block_size=64, n_layer=1, n_head=4, n_embd=64, bias=False),
    GPTConfig(vocab_size=7, block_size=128, n_layer=5, n_head=1, n_embd=16, bias=True, dropout=0.1),
]


def component_of(name: str) -> str:
    """Which sizing component a parameter of models.gpt.GPT belongs to."""
    if name == "transformer.wte.weight":
        return "token_embedding"
    if name == "transformer.wpe.weight":
        return "position_embedding"
    if ".ln_" in name:
        return "norms"
    if ".attn.c_attn." in name:
        return "qkv"
    if ".attn.c_proj." in name:
        return "attn_output"
    if ".mlp.c_fc." in name:
        return "mlp_up"
    if ".mlp.c_proj." in name:
        return "mlp_down"
    raise AssertionError(f"unexpected parameter {name}")


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"L{c.n_layer}-C{c.n_embd}-V{c.vocab_size}-bias{c.bias}")
def test_component_counts_match_the_module(cfg):
    model = GPT(cfg)
    actual: dict[str, int] = {}
    for name, p in model.named_parameters():  # tied head: named_parameters yields the shared tensor once
        actual[component_of(name)] = actual.get(component_of(name), 0) + p.numel()
    counts = sizing.param_counts(cfg)
    assert counts["attn_query"] + counts["attn_key"] + counts["attn_value"] == actual.pop("qkv")
    assert counts["attn_query"] == counts["attn_key"] == counts["attn_value"]
    for key, value in actual.items():
        assert counts[key] == value, key
    assert counts["head"] == counts["other"] == 0  # tied with the token embedding
    n = sum(p.numel() for p in model.parameters())
    assert sizing.num_params(cfg) == cfg.num_params() == n
    assert cfg.num_params(non_embedding=True) == n - model.transformer.wte.weight.numel() - cfg.block_size * cfg.n_embd
    assert sizing.num_param_tensors(cfg) == len(list(model.parameters()))
    assert sum(r.total for r in sizing.matrix_breakdown(cfg)) == n


@pytest.mark.parametrize("cfg", CONFIGS[:4])
@pytest.mark.parametrize("seq_len", [None, 8])
def test_flops_per_token_is_6n_plus_12ltd(cfg, seq_len):
    model = GPT(cfg)
    t = seq_len or cfg.block_size
    n = sum(p.numel() for p in model.parameters()) - model.transformer.wpe.weight.numel()  # every one in a matmul
    expected = 6 * n + 12 * cfg.n_layer * t * cfg.n_embd
    assert cfg.flops_per_token(seq_len) == sizing.flops_per_token(cfg, t) == expected


@pytest.mark.parametrize("tied", [True, False])
def test_seq2seq_flops_count_every_attention_and_the_head(tied):
    kw = dict(tie_embeddings=tied) if tied else dict(tie_embeddings=False, src_vocab_size=40, tgt_vocab_size=30)
    cfg = Seq2SeqConfig(vocab_size=50, max_len=16, n_enc_layer=2, n_dec_layer=3, n_head=2, n_embd=16, d_ff=32, **kw)
    m = cfg.build()
    tables = {id(e.weight) for e in (m.src_emb, m.tgt_emb)} - {id(m.lm_head.weight)}  # a tied head is a matmul
    n = sum(p.numel() for p in m.parameters() if id(p) not in tables)
    attention = 2 + 2 * 3  # encoder self; decoder self and cross
    assert cfg.flops_per_token(10) == 6 * n + 12 * 10 * 16 * attention


def test_gpt3_is_175_billion_parameters_counted_on_the_meta_device():
    gpt3 = GPTConfig(vocab_size=50257, block_size=2048, n_layer=96, n_head=96, n_embd=12288, bias=True)
    assert all(p.is_meta for p in sizing.meta_module(gpt3).parameters())  # shapes only, no memory
    n = sizing.num_params(gpt3)
    assert n == 174_604_259_328
    c, layers = 12288, 96
    assert n == 50257 * c + 2048 * c + layers * (12 * c * c + 13 * c) + 2 * c  # weights, biases, norms
    rows = {r.name: r for r in sizing.matrix_breakdown(gpt3)}
    assert rows["query W_Q"].total == layers * c * c and rows["query W_Q"].shape == "12288 x 12288 (96 heads x 128)"
    assert rows["MLP up W_1"].per_layer == rows["MLP down W_2"].per_layer == 4 * c * c
    assert rows["biases"].per_layer == 9 * c and rows["norms"].per_layer == 4 * c and rows["final norm"].total == 2 * c
    assert rows["unembedding W_U (= embedding W_E, tied)"].total == 0


def saved_bytes(model: torch.nn.Module, x, y, *, autocast: bool = False) -> int:
    """Distinct storages autograd saves for backward during one forward, parameters excluded."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            seen[ptr] = max(seen.get(ptr, 0), t.untyped_storage().nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            model(x, y)
    return sum(seen.values())


@pytest.mark.parametrize(
    "attention,dropout,vocab,bias",
    [("sdpa", 0.0, 65, False), ("math", 0.0, 65, True), ("sdpa", 0.2, 65, False), ("math", 0.1, 1000, True)],
)
def test_activation_estimate_equals_the_tensors_saved_for_backward(attention, dropout, vocab, bias):
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=vocab, block_size=32, n_layer=2, n_head=4, n_embd=64, dropout=dropout,
                    bias=bias, attention=attention)  # fmt: skip
    model = GPT(cfg).train()
    x = torch.randint(0, vocab, (3, 32))
    measured = saved_bytes(model, x, x)
    estimated = memory.activation_bytes(cfg, 3, 32, precision="32-true", device="cpu")
    assert estimated == pytest.approx(measured, rel=0.005)


def test_activation_estimate_under_bf16_autocast():
    cfg = GPTConfig(vocab_size=65, block_size=32, n_layer=2, n_head=4, n_embd=64, attention="math")
    model = GPT(cfg).train()
    x = torch.randint(0, 65, (2, 32))
    est = memory.memory_estimate(cfg, 2, 32, precision="bf16-mixed", device="cpu")
    # autocast's bf16 weight copies are saved for backward too: they are part of what is measured
    assert est.activations + est.weight_copies == pytest.approx(saved_bytes(model, x, x, autocast=True), rel=0.005)


def test_memory_estimate_parts_and_total():
    cfg = GPTConfig(vocab_size=65, block_size=64, n_layer=2, n_head=2, n_embd=32)
    n, tensors = sum(p.numel() for p in GPT(cfg).parameters()), len(list(GPT(cfg).parameters()))
    est = memory.memory_estimate(cfg, 4, 64, precision="32-true")
    assert est.weights == est.gradients == 4 * n
    assert est.optimizer == 8 * n + 4 * tensors
    assert est.weight_copies == 0
    during = est.activations + est.backward_buffers
    assert est.total == est.weights + est.optimizer + max(during, est.gradients)
    # the textbook formula in 4-byte values: 4·R·N²·D² + R·B·N·S·(S + 2D)
    assert est.textbook == 4 * (4 * 2 * 2**2 * 16**2 + 2 * 4 * 2 * 64 * (64 + 2 * 16))
    half = memory.memory_estimate(cfg, 4, 64, precision="bf16-true")
    assert half.weights == 2 * n and half.activations < est.activations
    mixed = memory.memory_estimate(cfg, 4, 64, precision="bf16-mixed")
    assert mixed.weights == 4 * n and mixed.weight_copies > 0


def test_flash_keeps_no_score_matrix_but_math_does():
    base = dict(vocab_size=65, block_size=256, n_layer=2, n_head=4, n_embd=64)
    flash = memory.activation_bytes(GPTConfig(**base, attention="flash"), 2, 256, precision="bf16-mixed")
    math = memory.activation_bytes(GPTConfig(**base, attention="math"), 2, 256, precision="bf16-mixed")
    scores = 2 * 2 * 4 * 256 * 256 * (4 + 2)  # layers x B·H·T·T x (float32 softmax + its bf16 copy)
    mask, lse = 2 * 256 * 256, 2 * 2 * 4 * 256 * 4  # math: a bool causal mask; flash: a float32 log-sum-exp
    assert math - flash == scores + mask - lse


def test_unknown_precision_names_the_field():
    with pytest.raises(ValueError, match=r"trainer\.precision='transformer-engine'"):
        memory.memory_estimate(CONFIGS[0], 1, 8, precision="transformer-engine")


def test_the_meta_module_skips_parameter_init(monkeypatch):
    """Filling a meta tensor runs torch's Python reference kernels (their first use imports torch._dynamo): the
    meta module never calls torch.nn.init's work, the real module still does."""
    calls = []
    real_fill = torch.nn.init._no_grad_normal_
    monkeypatch.setattr(torch.nn.init, "_no_grad_normal_", lambda *a, **k: calls.append(1) or real_fill(*a, **k))
    cfg = CONFIGS[0]
    meta = sizing.meta_module(cfg)
    assert calls == [] and all(p.is_meta for p in meta.parameters())
    shapes = [(n, p.shape) for n, p in meta.named_parameters()]
    assert shapes == [(n, p.shape) for n, p in cfg.build().named_parameters()]
    assert calls  # the real module's init went through the same function
