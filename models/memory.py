"""The memory of one training step before it runs: weights, gradients, AdamW states and activations.

Parameter counts come from models/sizing.py (the module on the meta device); the activations are arithmetic on
the config, term by term what autograd saves (tests/models/test_sizing.py checks them against the tensors saved
for backward, bench/memory_check.py the total against a measured peak).

Shapes: B batch, T sequence length, C = n_embd, H = n_head, D = C // H, L = n_layer, V = padded_vocab_size
(the rows the GPT's embedding and head really have), F = the MLP's hidden width.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from errors import ConfigError
from models import sizing

if TYPE_CHECKING:
    from models.gpt import GPTConfig


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
    n = sizing.num_params(cfg)
    r, heads, d, s = cfg.n_layer, cfg.n_head, cfg.head_dim, seq_len
    textbook_values = 4 * r * heads**2 * d**2 + r * batch_size * heads * s * (s + 2 * d)
    return MemoryEstimate(
        weights=n * p.param,
        gradients=n * p.param,
        optimizer=2 * n * p.param + 4 * sizing.num_param_tensors(cfg),
        activations=activation_bytes(cfg, batch_size, seq_len, precision=precision, device=device),
        weight_copies=sizing.linear_params(cfg) * p.weight_copy,
        backward_buffers=backward_buffer_bytes(cfg, batch_size, seq_len, precision=precision),
        textbook=textbook_values * p.act,
    )


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} TiB"
