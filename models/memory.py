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


# What the MLP saves, in F-wide tensors: its up projection's output and the activation's output (the down
# projection's input); ReLU's output is both; SwiGLU's up projection is 2F wide, plus silu(gate) and the product.
MLP_WIDTHS = {"relu": 1, "swiglu": 4}


def norm_bytes(cfg: GPTConfig, rows: int, width: int, dtype: int, *, device: str) -> int:
    """What one norm over `rows` vectors of `width` values (`dtype` bytes each) saves besides its input: a
    LayerNorm its float32 mean and rstd; an RMSNorm its rstd, and on CPU, where torch runs it as a composite of
    float32 ops, the normalised tensor too (CUDA's fused kernel keeps only the rstd). A norm that computes in
    float32 on a lower-precision input (any norm under CUDA autocast; the RMSNorm composite) keeps a float32 copy
    of its input instead of the input itself."""
    upcast = dtype != 4 and (device == "cuda" or cfg.normalization == "rmsnorm")
    copy = rows * width * 4 if upcast else 0
    if cfg.normalization == "rmsnorm":
        return copy + rows * 4 + (0 if device == "cuda" else rows * width * 4)
    return copy + 2 * rows * 4


def activation_bytes(
    cfg: GPTConfig, batch_size: int, seq_len: int, *, precision: str | int = "32-true", device: str = "cuda"
) -> int:
    """Bytes of the tensors a training forward pass saves for backward (each term checked against what autograd
    saves, for every GPT option: tests/models/test_sizing.py, test_gpt_options.py, test_modern_gpt.py).

    Per layer, in units of B·T·C: the two norm inputs (residual dtype) and, in the activation dtype, the inputs
    of c_attn and c_fc, the c_attn output (q, k, v: C + 2·G·D wide, G = n_kv_head) that SDPA's views keep, its
    output (c_proj's input), and the MLP's F-wide tensors (MLP_WIDTHS): 2·resid + 14·act for GPT-2's layer.
    Rotary positions and QK-norm make q and k new tensors, which SDPA saves besides the projection; its output
    then needs a contiguous copy for c_proj. An explicit softmax (math attention; CPU SDPA with dropout, in
    float32) keeps n_head-headed copies of q, k, v instead, and its (B, H, T, T) probabilities. Plus what the
    norms keep (norm_bytes), the attention log-sum-exp, dropout masks (bool on CUDA, a full-width tensor on
    CPU), and at the end the head's input, the float32 log-probs and, with a soft-cap, its tanh.
    """
    p = precision_of(precision)
    b, t, c, h, v = batch_size, seq_len, cfg.n_embd, cfg.n_head, cfg.padded_vocab_size
    btc, bt, bhtt, btf = b * t * c, b * t, b * h * t * t, b * t * cfg.hidden
    kv = cfg.kv_heads * cfg.head_dim  # key and value widths
    drop = cfg.dropout > 0
    mask = 1 if device == "cuda" else p.act  # dropout mask bytes per element
    scores = attention_stores_scores(cfg.attention, dropout=cfg.dropout, device=device)
    rope = cfg.positions == "rope"
    transformed = cfg.qk_norm or rope  # q and k are new tensors, not views of the projection

    # CPU SDPA with dropout runs its own explicit softmax, in float32 even under autocast
    inner = 4 if scores and cfg.attention != "math" else p.act
    qk_upcast = cfg.qk_norm and p.act != 4 and (device == "cuda" or cfg.normalization == "rmsnorm")  # see norm_bytes
    if scores:  # explicit softmax: q, k, v as n_head-headed copies; c_proj's input a copy; a QK-norm's view
        attention = inner * 3 * c + p.act * ((c + 2 * kv if cfg.qk_norm and not qk_upcast else 0) + c)
    else:  # the projection (kept by SDPA's views of v, at least), new q and k, the output (and c_proj's copy)
        attention = p.act * ((c + 2 * kv) + ((c + kv) if transformed else 0) + c * (2 if transformed else 1))
    layer = 2 * p.resid * btc + bt * (2 * p.act * c + attention) + MLP_WIDTHS.get(cfg.activation, 2) * p.act * btf
    layer += 2 * norm_bytes(cfg, bt, c, p.resid, device=device)
    if cfg.qk_norm:  # over each head's D values: n_head query rows and n_kv_head key rows per token
        layer += norm_bytes(cfg, bt * (h + cfg.kv_heads), cfg.head_dim, p.act, device=device)
    if rope and p.act != 4:
        layer += 2 * t * cfg.head_dim * p.act  # cos and sin cast to the activation dtype, for q and for k
    if scores:
        # float32 softmax output and the causal mask; then what the value matmul saves: the dropped
        # probabilities and their mask, or the probabilities cast back to the activation dtype
        layer += bhtt * 4 + t * t
        if drop:
            layer += bhtt * ((1 if device == "cuda" else inner) + inner)
        elif p.act != 4:
            layer += bhtt * p.act
    else:
        layer += b * h * t * 4  # log-sum-exp of the fused kernels
    if drop:
        layer += 2 * mask * btc  # residual dropouts after attention and MLP

    embed_mask = 1 if device == "cuda" else p.resid  # the embedding sum is not autocast
    positions = t * 8 if cfg.positions == "learned" else t * cfg.head_dim * 4 if rope and p.act == 4 else 0
    embed = bt * 8 + positions + (embed_mask * btc if drop else 0)  # token ids, positions (or cos, sin), dropout
    final = p.act * btc  # lm_head input
    if cfg.norm == "pre":
        final += p.resid * btc + norm_bytes(cfg, bt, c, p.resid, device=device)  # ln_f input + its own
    loss = 4 * bt * v + bt * 8  # float32 log-probs, targets
    if cfg.logit_softcap is not None:
        loss += p.act * bt * v  # tanh's output
    return cfg.n_layer * layer + embed + final + loss


def backward_buffer_bytes(cfg: GPTConfig, batch_size: int, seq_len: int, *, precision: str | int = "32-true") -> int:
    """Gradients alive on top of the activations early in backward, the larger of two moments:
    the loss (two float32 (B, T, V) gradients: log-probs and logits) and the last layer's MLP (the residual
    gradient, the gradient of the up projection's output, and the head's and that MLP's weight gradients; ReLU²'s
    backward, grad · 2 · x, adds two F-wide temporaries)."""
    p = precision_of(precision)
    bt, c, f = batch_size * seq_len, cfg.n_embd, cfg.hidden
    up = f * (2 if cfg.activation == "swiglu" else 1)  # the up projection's width
    temporaries = 2 * f if cfg.activation == "relu2" else 0
    loss = 2 * 4 * bt * cfg.padded_vocab_size
    layer = (p.act * (up + temporaries) + p.resid * c) * bt + (cfg.padded_vocab_size * c + (up + f) * c) * p.param
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
