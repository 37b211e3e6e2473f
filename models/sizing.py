"""How big a model is before it exists: parameters per component, training FLOPs and a memory estimate.

The one home of this arithmetic: `GPTConfig.num_params()` / `Seq2SeqConfig.num_params()` and their
`flops_per_token()` call it. Everything here is arithmetic on a config, so a 175B-parameter model is sized
in microseconds; `meta_num_params` builds the real module on the meta device (no memory) to check it.

Shapes: B batch, T sequence length, C = n_embd, H = n_head, D = C // H, L = n_layer, V = vocab_size (for the
GPT: padded_vocab_size, the rows its embedding and head really have).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch

from errors import ConfigError

if TYPE_CHECKING:
    from models.gpt import GPTConfig
    from models.seq2seq import Seq2SeqConfig


@dataclass(frozen=True)
class Precision:
    """Bytes per value of one Lightning precision setting."""

    param: int  # weights, gradients and AdamW states
    act: int  # matmul inputs/outputs (the autocast dtype under mixed precision)
    resid: int  # the residual stream: float32 under mixed precision (embeddings are not autocast)
    weight_copy: int  # autocast's low-precision copy of each matmul weight (0 without autocast)


PRECISIONS: dict[str, Precision] = {
    "64-true": Precision(8, 8, 8, 0),
    "32-true": Precision(4, 4, 4, 0),
    "bf16-mixed": Precision(4, 2, 4, 2),
    "16-mixed": Precision(4, 2, 4, 2),
    "bf16-true": Precision(2, 2, 2, 0),
    "16-true": Precision(2, 2, 2, 0),
}
_ALIASES = {"64": "64-true", "32": "32-true", "bf16": "bf16-mixed", "16": "16-mixed"}


def precision_of(precision: str | int) -> Precision:
    key = _ALIASES.get(str(precision), str(precision))
    if key not in PRECISIONS:
        known = list(PRECISIONS)
        raise ConfigError(f"trainer.precision={precision!r} is unknown to the memory estimate; use one of {known}")
    return PRECISIONS[key]


# ---------------------------------------------------------------------------------------------------------
# Parameters


COMPONENTS: dict[str, str] = {
    "token_embedding": "token embedding (the output head too when tied)",
    "position_embedding": "position embedding (0 for fixed sinusoidal positions)",
    "attn_query": "attention query",
    "attn_key": "attention key",
    "attn_value": "attention value",
    "attn_output": "attention output",
    "mlp_up": "MLP up (C -> d_ff, 4C by default)",
    "mlp_down": "MLP down (d_ff -> C)",
    "norms": "layer norms",
    "head": "output head (its weight counts 0 when tied to the token embedding; its bias if any)",
}


def layer_matrices(cfg: GPTConfig) -> dict[str, tuple[int, int]]:
    """(fan_in, fan_out) of every Linear in one GPT block, by component."""
    c, f = cfg.n_embd, cfg.hidden
    square = (c, c)
    return {
        "attn_query": square,
        "attn_key": square,
        "attn_value": square,
        "attn_output": square,
        "mlp_up": (c, f),
        "mlp_down": (f, c),
    }


def num_norms(cfg: GPTConfig) -> int:
    """LayerNorms of the GPT: two per block, plus the final one of a pre-LN stack."""
    return 2 * cfg.n_layer + int(cfg.norm == "pre")


def param_counts(cfg: GPTConfig) -> dict[str, int]:
    """Parameters per component (weights + biases); the tied output head counts 0. Sums to the model's count."""
    c, b, v = cfg.n_embd, int(cfg.bias), cfg.padded_vocab_size
    linears = {
        k: cfg.n_layer * (fan_in * fan_out + b * fan_out) for k, (fan_in, fan_out) in layer_matrices(cfg).items()
    }
    return {
        "token_embedding": v * c,
        "position_embedding": cfg.block_size * c if cfg.positions == "learned" else 0,
        **linears,
        "norms": num_norms(cfg) * (c + b * c),
        "head": (0 if cfg.tie_embeddings else v * c) + int(cfg.head_bias) * v,
    }


def num_params(cfg: GPTConfig, *, non_embedding: bool = False) -> int:
    """Every parameter of the GPT (the tied head once); non_embedding leaves out both embeddings."""
    counts = param_counts(cfg)
    n = sum(counts.values())
    return n - counts["token_embedding"] - counts["position_embedding"] if non_embedding else n


def num_param_tensors(cfg: GPTConfig) -> int:
    """Parameter tensors (weights and biases are separate tensors): AdamW keeps one step counter for each."""
    per_weight = 1 + int(cfg.bias)
    embeddings = 1 + int(cfg.positions == "learned")  # wte, wpe
    head = int(not cfg.tie_embeddings) + int(cfg.head_bias)
    return embeddings + cfg.n_layer * 4 * per_weight + num_norms(cfg) * per_weight + head  # 4 linears per layer


def meta_num_params(cfg: GPTConfig) -> int:
    """Build the real module on the meta device (no memory, no init work) and count its parameters."""
    from models.gpt import GPT

    with torch.device("meta"):
        return GPT(cfg).num_params()


@dataclass(frozen=True)
class MatrixRow:
    name: str
    shape: str
    per_layer: int
    layers: int

    @property
    def total(self) -> int:
        return self.per_layer * self.layers


def matrix_breakdown(cfg: GPTConfig) -> list[MatrixRow]:
    """The per-matrix table usually drawn for GPT-3: embedding, q, k, v, output, MLP, unembedding."""
    c, h, d, v, layers, b = cfg.n_embd, cfg.n_head, cfg.head_dim, cfg.padded_vocab_size, cfg.n_layer, int(cfg.bias)
    names = {"attn_query": "query W_Q", "attn_key": "key W_K", "attn_value": "value W_V", "attn_output": "output W_O",
             "mlp_up": "MLP up W_1", "mlp_down": "MLP down W_2"}  # fmt: skip
    matrices = layer_matrices(cfg)
    rows = [MatrixRow("embedding W_E", f"{v} x {c}", v * c, 1)]
    if cfg.positions == "learned":
        rows.append(MatrixRow("position embedding W_P", f"{cfg.block_size} x {c}", cfg.block_size * c, 1))
    for key, (fan_in, fan_out) in matrices.items():
        heads = f" ({h} heads x {d})" if key in ("attn_query", "attn_key", "attn_value") else ""
        rows.append(MatrixRow(names[key], f"{fan_in} x {fan_out}{heads}", fan_in * fan_out, layers))
    if b:
        bias_width = sum(fan_out for _, fan_out in matrices.values())
        rows.append(MatrixRow("biases (q, k, v, o, up, down)", f"{bias_width} values", bias_width, layers))
    rows.append(MatrixRow("layer norms", f"{2 * (1 + b)} x {c}", 2 * (1 + b) * c, layers))
    if cfg.norm == "pre":
        rows.append(MatrixRow("final layer norm", f"{1 + b} x {c}", (1 + b) * c, 1))
    tied = " (= W_E, tied)" if cfg.tie_embeddings else ""
    rows.append(MatrixRow(f"unembedding W_U{tied}", f"{c} x {v}", 0 if tied else c * v, 1))
    if cfg.head_bias:
        rows.append(MatrixRow("unembedding bias", f"{v}", v, 1))
    return rows


# ---------------------------------------------------------------------------------------------------------
# FLOPs


def flops_per_token(cfg: GPTConfig, seq_len: int | None = None) -> int:
    """Training FLOPs per token, forward + backward: 6·N + 12·L·T·C (PaLM, appendix B; nanoGPT's MFU).

    N counts every parameter that takes part in a matmul: all of them except the position embedding
    (a lookup) and, when the head is untied, the token embedding (a lookup too); the tied head counts
    once. 12·L·T·C is the attention score and value matmuls.
    """
    t = seq_len or cfg.block_size
    return 6 * matmul_params(cfg) + 12 * cfg.n_layer * t * cfg.n_embd


def matmul_params(cfg: GPTConfig) -> int:
    """The N of 6·N: all parameters but the lookups (position embedding; token embedding unless tied)."""
    counts = param_counts(cfg)
    lookups = counts["position_embedding"] + (0 if cfg.tie_embeddings else counts["token_embedding"])
    return num_params(cfg) - lookups


def flops_per_step(cfg: GPTConfig, batch_size: int, seq_len: int) -> int:
    return flops_per_token(cfg, seq_len) * batch_size * seq_len


# ---------------------------------------------------------------------------------------------------------
# The encoder-decoder


def seq2seq_num_params(cfg: Seq2SeqConfig, *, non_embedding: bool = False) -> int:
    """Parameters of the encoder-decoder (tied embeddings counted once); non_embedding: blocks and norms only.

    Both implementations have the same layers (nn.Transformer's fused in_proj is q, k, v); the native one
    ends a pre-LN stack in a LayerNorm, nn.Transformer (impl=torch) ends every stack in one.
    """
    c, f, b = cfg.n_embd, cfg.d_ff, int(cfg.bias)
    ln = c + b * c
    attn = 4 * c * c + b * 4 * c  # q, k, v and output projections
    mlp = c * f + b * f + f * c + b * c
    n = cfg.n_enc_layer * (attn + mlp + 2 * ln) + cfg.n_dec_layer * (2 * attn + mlp + 3 * ln)
    if cfg.norm == "pre" or cfg.impl == "torch":
        n += 2 * ln  # final norms of the encoder and decoder stacks
    if not non_embedding:
        if cfg.tie_embeddings:
            n += cfg.tgt_vocab * c
        else:
            n += (cfg.src_vocab + 2 * cfg.tgt_vocab) * c  # source, target embeddings and the head
        n += int(cfg.head_bias) * cfg.tgt_vocab
        if cfg.positions == "learned":
            n += 2 * cfg.max_len * c
    return n


def seq2seq_flops_per_token(cfg: Seq2SeqConfig, seq_len: int | None = None) -> int:
    """Rough training FLOPs per target token (forward + backward), source of the same length."""
    t = seq_len or cfg.max_len
    attention = 12 * (cfg.n_enc_layer + 2 * cfg.n_dec_layer) * t * cfg.n_embd
    return 6 * seq2seq_num_params(cfg, non_embedding=True) + 6 * cfg.tgt_vocab * cfg.n_embd + attention


# ---------------------------------------------------------------------------------------------------------
# Memory


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes of one training step on one device (AdamW, automatic optimization)."""

    weights: int
    gradients: int
    optimizer: int  # AdamW exp_avg + exp_avg_sq, plus one float32 step counter per parameter tensor
    activations: int  # tensors saved for backward by the forward pass (incl. the float32 log-probs)
    weight_copies: int  # autocast's bf16/fp16 copies of the matmul weights, held until backward
    backward_buffers: int  # gradients in flight at the peak of backward (see `backward_buffer_bytes`)
    textbook: int  # 4·R·N²·D² + R·B·N·S·(S + 2D) values, in activation bytes

    @property
    def states(self) -> int:
        """What the trainer holds between steps: weights + gradients + optimizer states."""
        return self.weights + self.gradients + self.optimizer

    @property
    def total(self) -> int:
        """Estimated peak: early in backward every activation is alive (and few gradients yet); after
        backward every gradient is (and no activation); the weights and optimizer states always are."""
        during_backward = self.activations + self.weight_copies + self.backward_buffers
        return self.weights + self.optimizer + max(during_backward, self.gradients)

    def to_dict(self) -> dict[str, int]:
        return {**asdict(self), "total": self.total}


def attention_stores_scores(attention: str, *, dropout: float, device: str) -> bool:
    """Does the attention kernel keep the (B, H, T, T) probabilities for backward?

    math always does; flash and the fused SDPA kernels recompute them, except that on CPU SDPA with
    dropout falls back to the math path.
    """
    return attention == "math" or (device != "cuda" and dropout > 0)


def activation_bytes(
    cfg: GPTConfig, batch_size: int, seq_len: int, *, precision: str | int = "32-true", device: str = "cuda"
) -> int:
    """Bytes of the tensors a training forward pass saves for backward.

    Per layer (sdpa/flash), in units of B·T·C: the two layer-norm inputs (residual dtype), the inputs
    of the four linears (C, C, C, F wide; F = d_ff, 4C by default), q, k, v and the GELU's input
    (F wide; a ReLU saves nothing new): 2·resid + (6 + 2F/C)·act, 2·resid + 14·act at F = 4C, plus float32 norm
    statistics and the attention log-sum-exp. Dropout adds its masks (bool on CUDA, a full-width float
    tensor on CPU); math attention adds the (B, H, T, T) probabilities.
    """
    p = precision_of(precision)
    b, t, c, h, v = batch_size, seq_len, cfg.n_embd, cfg.n_head, cfg.padded_vocab_size
    btc, bt, bhtt, btf = b * t * c, b * t, b * h * t * t, b * t * cfg.hidden
    drop = cfg.dropout > 0
    mask = 1 if device == "cuda" else p.act  # dropout mask bytes per element
    scores = attention_stores_scores(cfg.attention, dropout=cfg.dropout, device=device)

    wide = 1 if cfg.activation == "relu" else 2  # ReLU saves its output, which is the down projection's input
    layer = (2 * p.resid + 6 * p.act) * btc + wide * p.act * btf + 2 * 2 * bt * 4  # tensors + LN mean/rstd (float32)
    if scores:
        # float32 softmax output and the causal mask; then what the value matmul saves: the dropped
        # probabilities and their mask, or the probabilities cast back to the activation dtype
        layer += bhtt * 4 + t * t
        if drop:
            layer += bhtt * (mask + p.act)
        elif p.act != 4:
            layer += bhtt * p.act
    else:
        layer += b * h * t * 4  # log-sum-exp of the fused kernels
    if drop:
        layer += 2 * mask * btc  # residual dropouts after attention and MLP

    embed_mask = 1 if device == "cuda" else p.resid  # the embedding sum is not autocast
    embed = bt * 8 + t * 8 + (embed_mask * btc if drop else 0)  # token ids, positions, embedding dropout
    final = p.act * btc  # lm_head input
    if cfg.norm == "pre":
        final += p.resid * btc + 2 * bt * 4  # ln_f input + stats
    loss = 4 * bt * v + bt * 8  # float32 log-probs, targets
    return cfg.n_layer * layer + embed + final + loss


def backward_buffer_bytes(cfg: GPTConfig, batch_size: int, seq_len: int, *, precision: str | int = "32-true") -> int:
    """Gradients alive on top of the activations early in backward, the larger of two moments:
    the loss (two float32 (B, T, V) gradients: log-probs and logits) and the last layer's MLP (the
    residual gradient, the 4C-wide GELU-output gradient, and the head's and that MLP's weight gradients)."""
    p = precision_of(precision)
    bt, c, f = batch_size * seq_len, cfg.n_embd, cfg.hidden
    loss = 2 * 4 * bt * cfg.padded_vocab_size
    layer = (p.act * f + p.resid * c) * bt + (cfg.padded_vocab_size * c + 2 * f * c) * p.param
    return max(loss, layer)


def memory_estimate(
    cfg: GPTConfig,
    batch_size: int,
    seq_len: int,
    *,
    precision: str | int = "32-true",
    device: str = "cuda",
) -> MemoryEstimate:
    """Weights, gradients, AdamW states and activations of a training step (per device)."""
    p = precision_of(precision)
    n = num_params(cfg)
    linear_weights = matmul_params(cfg) - num_norms(cfg) * (1 + int(cfg.bias)) * cfg.n_embd  # minus norms
    r, heads, d, s = cfg.n_layer, cfg.n_head, cfg.head_dim, seq_len
    textbook_values = 4 * r * heads**2 * d**2 + r * batch_size * heads * s * (s + 2 * d)
    return MemoryEstimate(
        weights=n * p.param,
        gradients=n * p.param,
        optimizer=2 * n * p.param + 4 * num_param_tensors(cfg),
        activations=activation_bytes(cfg, batch_size, seq_len, precision=precision, device=device),
        weight_copies=linear_weights * p.weight_copy,
        backward_buffers=backward_buffer_bytes(cfg, batch_size, seq_len, precision=precision),
        textbook=textbook_values * p.act,
    )


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} TiB"


def human_count(n: float) -> str:
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:.0f}"
