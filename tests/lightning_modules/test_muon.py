"""optim.name=muon: which parameters Muon gets, that the one combined optimizer is torch's Muon and AdamW stepped
with their own scheduled peaks, that its state round-trips, and that flattened (FSDP) shards are refused.
Resume: test_equivalence.py; clipping: test_clipping.py; 2 DDP ranks: tests/e2e/test_distributed_equivalence.py."""

from __future__ import annotations

import csv
import io

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from torch.optim.lr_scheduler import LambdaLR

from lightning_modules.callbacks.lr_monitor import StepLearningRateMonitor
from lightning_modules.gpt import GPTLitModule
from lightning_modules.muon import MuonWithAdamW, make_muon
from lightning_modules.optim import OptimConfig, lr_lambda, make_optimizer
from models.gpt import GPT, GPTConfig
from models.seq2seq import Seq2SeqConfig

CFG = OptimConfig(name="muon", lr=1e-2, min_lr=1e-3, muon_lr=0.05, warmup_steps=2, muon_weight_decay=0.01)
HIDDEN = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def gpt(**kw) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16, bias=True, **kw))


def group_names(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, set[str]]:
    names = {id(p): n for n, p in model.named_parameters()}
    return {g["name"]: {names[id(p)] for p in g["params"]} for g in optimizer.param_groups}


@pytest.mark.parametrize("tied", [True, False], ids=["tied-head", "untied-head-with-bias"])
def test_hidden_matrices_go_to_muon_embeddings_head_norms_biases_to_adamw(tied):
    model = gpt(tie_embeddings=tied, head_bias=not tied)
    opt = make_optimizer(model, CFG, device_type="cpu")
    groups = group_names(model, opt)
    assert list(groups) == ["muon", "decay", "no_decay"]
    assert groups["muon"] == {f"transformer.h.{i}.{w}" for i in range(2) for w in HIDDEN}
    head = set() if tied else {"lm_head.weight"}  # tied: the head is wte (listed once, under its first name)
    assert groups["decay"] == {"transformer.wte.weight", "transformer.wpe.weight"} | head
    assert groups["no_decay"] == {n for n, p in model.named_parameters() if p.dim() == 1}  # norms, biases
    assert any("lm_head.bias" in n for n in groups["no_decay"]) is not tied
    assert sum(map(len, groups.values())) == len(list(model.parameters()))  # every parameter exactly once
    muon, decay, no_decay = opt.param_groups
    assert (muon["lr"], muon["momentum"], muon["weight_decay"], muon["nesterov"]) == (0.05, 0.95, 0.01, True)
    assert muon["adjust_lr_fn"] == "original"
    assert (decay["lr"], decay["betas"], decay["weight_decay"], no_decay["weight_decay"]) == (0.01, (0.9, 0.95), 0.1, 0)
    assert isinstance(opt.muon, torch.optim.Muon) and isinstance(opt.adamw, torch.optim.AdamW)


@pytest.mark.parametrize("impl", ["native", "torch"])
def test_seq2seq_hidden_matrices_are_muons_and_it_trains(impl):
    """The same rule for the encoder-decoder; model.impl=torch: nn.MultiheadAttention's fused in_proj_weight too."""
    torch.manual_seed(0)
    c = Seq2SeqConfig(vocab_size=12, max_len=16, n_enc_layer=1, n_dec_layer=1, n_head=2, n_embd=16, d_ff=32,
                      dropout=0.0, impl=impl, tie_embeddings=impl == "native", head_bias=impl == "torch")  # fmt: skip
    model = c.build()
    opt = make_optimizer(model, CFG, device_type="cpu")
    groups = group_names(model, opt)
    names = {n for n, p in model.named_parameters() if p.dim() == 2}
    outer = {n for n in names if n.startswith(("src_emb", "tgt_emb", "enc_pos", "dec_pos", "lm_head"))}
    assert groups["muon"] == names - outer and groups["decay"] == outer
    assert (impl == "torch") == any(n.endswith("in_proj_weight") for n in groups["muon"])
    src = torch.randint(3, 12, (8, 6), generator=torch.Generator().manual_seed(0))
    before = [p.detach().clone() for p in model.parameters()]
    losses = []
    for _ in range(8):  # learn to copy the source
        logits = model(src, src[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), src[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5
    assert all(not torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))  # both stepped


def test_flattened_fsdp_shards_are_refused_with_one_line():
    model = gpt()
    with torch.no_grad():  # FSDP(use_orig_params=True) shows the optimizer a 1-D shard of every parameter
        for p in model.parameters():
            p.data = p.data.flatten()
    with pytest.raises(ValueError, match=r"^optim.name=muon needs whole 2-D weight matrices, .*trainer.strategy=fsdp"):
        make_optimizer(model, CFG, device_type="cpu")


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randint(0, 11, (4, 8), generator=torch.Generator().manual_seed(0))
    return x, torch.roll(x, -1, dims=1)


def train(model: GPT, optimizers: list, schedulers: list, steps: int) -> list[list[float]]:
    """`steps` steps on one batch; the learning rate of every group at each step."""
    lrs = []
    for _ in range(steps):
        lrs.append([g["lr"] for o in optimizers for g in o.param_groups])
        _, loss = model(*batch())
        for o in optimizers:
            o.zero_grad()
        loss.backward()
        for o in optimizers:
            o.step()
        for s in schedulers:
            s.step()
    return lrs


def test_one_optimizer_equals_torch_muon_and_adamw_stepped_as_two_with_their_own_peaks():
    """The speedrun's way (two torch optimizers, one schedule each) gives the same weights, bit for bit."""
    ours_model, ref_model = gpt(), gpt()
    ours = make_muon(ours_model, CFG, device_type="cpu")
    ours_lrs = train(ours_model, [ours], [LambdaLR(ours, lr_lambda(CFG, 6))], 5)
    names, ref = {id(p): n for n, p in ours_model.named_parameters()}, dict(ref_model.named_parameters())
    muon_group, *adamw_groups = [{**g, "params": [ref[names[id(p)]] for p in g["params"]]} for g in ours.param_groups]
    keys = ("momentum", "weight_decay", "nesterov", "adjust_lr_fn")
    muon = torch.optim.Muon(muon_group["params"], lr=CFG.muon_lr, **{k: muon_group[k] for k in keys})
    adamw = torch.optim.AdamW([{"params": g["params"], "weight_decay": g["weight_decay"]} for g in adamw_groups],
                              lr=CFG.lr, betas=(CFG.beta1, CFG.beta2), eps=CFG.eps)  # fmt: skip
    ref_lrs = train(ref_model, [muon, adamw], [LambdaLR(o, lr_lambda(CFG, 6)) for o in (muon, adamw)], 5)
    assert ours_lrs == ref_lrs
    schedule = lr_lambda(CFG, 6)
    for step, lrs in enumerate(ours_lrs):  # each group its own peak, one schedule: warmup, cosine to min_lr / lr
        assert lrs == pytest.approx([CFG.muon_lr * schedule(step)] + [CFG.lr * schedule(step)] * 2, rel=1e-12)
    for (name, a), b in zip(ref_model.named_parameters(), ours_model.parameters(), strict=True):
        assert torch.equal(a, b), name
    assert not torch.equal(ref_model.transformer.h[0].mlp.c_fc.weight, gpt().transformer.h[0].mlp.c_fc.weight)


def test_state_dict_round_trip_continues_exactly():
    """2 steps, save, a new optimizer loads it and takes 2 more: the 4-step run's weights and state."""
    model = gpt()
    opt = make_muon(model, CFG, device_type="cpu")
    sched = LambdaLR(opt, lr_lambda(CFG, 6))
    train(model, [opt], [sched], 2)
    saved = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict()}, saved)
    train(model, [opt], [sched], 2)

    saved.seek(0)
    ckpt = torch.load(saved, weights_only=False)
    resumed_model = gpt()
    resumed_model.load_state_dict(ckpt["model"])
    resumed = make_muon(resumed_model, OptimConfig(name="muon"), device_type="cpu")  # settings from the state
    resumed_sched = LambdaLR(resumed, lr_lambda(OptimConfig(name="muon"), 100))
    resumed.load_state_dict(ckpt["opt"])
    resumed_sched.load_state_dict(ckpt["sched"])
    assert resumed.muon.param_groups[0] is resumed.param_groups[0] and resumed.adamw.state is resumed.state
    train(resumed_model, [resumed], [resumed_sched], 2)
    for (name, a), b in zip(model.named_parameters(), resumed_model.parameters(), strict=True):
        assert torch.equal(a, b), name
    state, resumed_state = opt.state_dict(), resumed.state_dict()
    assert state["param_groups"] == resumed_state["param_groups"]
    for i, s in state["state"].items():
        assert s.keys() == resumed_state["state"][i].keys()
        assert all(torch.equal(resumed_state["state"][i][k], v) for k, v in s.items()), i


def test_the_lr_monitor_logs_each_group_with_its_own_peak(tmp_path):
    torch.manual_seed(0)
    model = dict(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16)
    module = GPTLitModule(model=model, tokenizer={"kind": "char", "chars": "abcdefghij\n"}, optim=vars(CFG))
    trainer = L.Trainer(
        accelerator="cpu", max_steps=3, logger=CSVLogger(tmp_path, "csv", ""), log_every_n_steps=1,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
        callbacks=[StepLearningRateMonitor(logging_interval="step")],
    )  # fmt: skip
    trainer.fit(module, torch.utils.data.DataLoader([batch()] * 3, batch_size=None))
    assert isinstance(trainer.optimizers[0], MuonWithAdamW)
    with open(tmp_path / "csv" / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/lr/muon")]
    schedule = lr_lambda(CFG, 3)
    for key, peak in (("train/lr/muon", CFG.muon_lr), ("train/lr/decay", CFG.lr), ("train/lr/no_decay", CFG.lr)):
        assert [float(r[key]) for r in rows] == pytest.approx([peak * schedule(s) for s in range(3)]), key
