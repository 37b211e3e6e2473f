"""Seq2SeqTorch: the encoder-decoder on torch.nn.Transformer, as the official PyTorch translation tutorial
builds it ("Language Translation with nn.Transformer": post-LN layers, nn.Transformer's final encoder and
decoder LayerNorms, separate source/target embeddings scaled by sqrt(C), one sinusoidal table, an untied
Linear generator with a bias, Xavier-uniform init of every matrix: tie_embeddings=false, head_bias=true).

It exposes the interface of models/decoding.py (encode, memory_kv, decode), so it trains and decodes
through the same LightningModule, greedy and beam search as the native model. nn.Transformer's decoder
has no KV cache: `kv_cache = False`, and every decoding step recomputes the whole target prefix
(the searches' use_cache=False path), O(T^2) per sentence instead of O(T).

Shapes: B batch, S source length, T target length, C = n_embd, V = target vocabulary.
"""

from __future__ import annotations

import functools
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from errors import ConfigError
from models.seq2seq import Seq2SeqBase, Seq2SeqConfig

# nn.Transformer takes "relu" / "gelu" by name, any other activation as a callable.
TORCH_ACTIVATIONS = {"relu": "relu", "gelu": "gelu", "gelu_tanh": functools.partial(F.gelu, approximate="tanh")}


class Seq2SeqTorch(Seq2SeqBase):
    kv_cache = False

    def build_stacks(self, c: Seq2SeqConfig) -> None:
        with warnings.catch_warnings():
            # pre-LN layers cannot use the encoder's nested-tensor fast path; it is turned off below anyway
            warnings.filterwarnings("ignore", message="enable_nested_tensor is True")
            self.transformer = nn.Transformer(
                d_model=c.n_embd,
                nhead=c.n_head,
                num_encoder_layers=c.n_enc_layer,
                num_decoder_layers=c.n_dec_layer,
                dim_feedforward=c.d_ff,
                dropout=c.dropout,
                activation=TORCH_ACTIVATIONS[c.activation],
                batch_first=True,
                norm_first=c.norm == "pre",
                bias=c.bias,
            )
        # The nested-tensor fast path (eval mode only) would run other kernels than training does.
        self.transformer.encoder.use_nested_tensor = False

    def init_weights(self) -> None:
        # The tutorial: Xavier-uniform on every matrix (embeddings and generator too), biases as built.
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def encode(self, src: torch.Tensor, src_pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        """src (B, S) token ids -> memory (B, S, C), after nn.Transformer's final encoder LayerNorm."""
        x = self._embed(src, self.src_emb, "source")
        return self.transformer.encoder(x, src_key_padding_mask=src_pad_mask)

    def memory_kv(self, memory: torch.Tensor) -> torch.Tensor:
        """nn.MultiheadAttention projects the memory inside every decoder layer: the memory itself is what
        decode() needs (the native model precomputes each layer's keys and values here instead)."""
        return memory

    def decode(
        self,
        tgt: torch.Tensor,
        memory_kv: torch.Tensor,
        src_pad_mask: torch.Tensor | None = None,
        *,
        cache: None = None,
    ) -> torch.Tensor:
        """tgt (B, T) the whole decoder input so far -> logits (B, T, V); there is no cache to continue."""
        if cache is not None:
            raise ConfigError("model.impl=torch has no KV cache: decode the whole prefix (use_cache=False)")
        x = self._embed(tgt, self.tgt_emb, "target")
        t = tgt.size(1)
        causal = torch.ones(t, t, dtype=torch.bool, device=tgt.device).triu(1)  # True = may not attend
        x = self.transformer.decoder(
            x, memory_kv, tgt_mask=causal, memory_key_padding_mask=src_pad_mask, tgt_is_causal=True
        )
        return self.lm_head(x)
