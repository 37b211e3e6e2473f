"""model.impl=torch: the encoder-decoder on torch.nn.Transformer, decoded by the same searches without a KV cache."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from models.decoding import Decoding, beam_search, greedy_search
from models.seq2seq import Seq2SeqConfig
from models.seq2seq_torch import Seq2SeqTorch

PAD, BOS, EOS = 0, 1, 2
# The PyTorch translation tutorial's choices, at a tiny size.
TUTORIAL = dict(impl="torch", norm="post", activation="relu", tie_embeddings=False, head_bias=True)


def torch_model(seed=0, **kw) -> Seq2SeqTorch:
    torch.manual_seed(seed)
    base = dict(vocab_size=30, src_vocab_size=30, tgt_vocab_size=25, max_len=32, n_enc_layer=2, n_dec_layer=2,
                n_head=2, n_embd=16, d_ff=32, dropout=0.0)  # fmt: skip
    return Seq2SeqConfig(**{**base, **TUTORIAL, **kw}).build().eval()


def sources(b=5, s=8, vocab=25, seed=0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(3, vocab, (b, s), generator=g)
    for r in range(b):
        n = max(2, s - r)
        src[r, n - 1] = EOS
        src[r, n:] = PAD
    return src, src.eq(PAD)


def test_it_is_nn_transformer_with_the_tutorials_layers():
    m = torch_model()
    assert isinstance(m, Seq2SeqTorch) and isinstance(m.transformer, nn.Transformer) and m.kv_cache is False
    assert isinstance(m.transformer.encoder.norm, nn.LayerNorm) and isinstance(m.transformer.decoder.norm, nn.LayerNorm)
    layer = m.transformer.encoder.layers[0]
    assert layer.norm_first is False and layer.activation_relu_or_gelu == 1  # post-LN, ReLU
    assert m.lm_head.bias is not None and m.lm_head.weight is not m.tgt_emb.weight
    assert torch_model(norm="pre").transformer.decoder.layers[0].norm_first is True


def test_forward_is_nn_transformer_forward_on_scaled_embeddings_plus_positions():
    m = torch_model()
    src, mask = sources()
    tgt = torch.randint(3, 25, (5, 6), generator=torch.Generator().manual_seed(3))
    scale = math.sqrt(16)
    src_x = m.src_emb(src) * scale + m.pe[: src.size(1)]
    tgt_x = m.tgt_emb(tgt) * scale + m.pe[: tgt.size(1)]
    causal = nn.Transformer.generate_square_subsequent_mask(6)  # the tutorial's float mask
    with torch.no_grad():
        expected = m.lm_head(
            m.transformer(src_x, tgt_x, tgt_mask=causal, src_key_padding_mask=mask, memory_key_padding_mask=mask)
        )
        torch.testing.assert_close(m(src, tgt, mask), expected, rtol=1e-5, atol=1e-5)


def test_decode_refuses_a_cache():
    m = torch_model()
    src, mask = sources()
    memory = m.memory_kv(m.encode(src, mask))
    with pytest.raises(ValueError, match="model.impl=torch has no KV cache"):
        m.decode(torch.full((5, 1), BOS), memory, mask, cache=[])


@pytest.mark.parametrize("seed", [1, 2])
def test_searches_run_without_a_cache_and_beam_one_is_greedy(seed):
    m = torch_model(seed=seed)
    with torch.no_grad():
        m.lm_head.weight[EOS] *= 1.5  # sentences of different lengths (seeds picked for it)
    src, mask = sources(seed=seed)
    ids = dict(bos_id=BOS, eos_id=EOS, pad_id=PAD)
    greedy = greedy_search(m, src, mask, Decoding(**ids))  # use_cache=True is asked for, and cannot apply
    assert greedy == greedy_search(m, src, mask, Decoding(**ids, use_cache=False))
    assert beam_search(m, src, mask, Decoding(**ids), beam_size=1) == greedy
    assert len({len(h) for h in greedy}) >= 2
    beams = beam_search(m, src, mask, Decoding(**ids), beam_size=3)
    assert len(beams) == 5 and all(PAD not in h and BOS not in h and EOS not in h for h in beams)
    # greedy's first token is the argmax of the full model's first-step logits
    with torch.no_grad():
        first = m(src, torch.full((5, 1), BOS), mask)[:, 0]
    first[:, [PAD, BOS]] = float("-inf")
    assert [h[0] if h else EOS for h in greedy] == first.argmax(-1).tolist()
