"""A few training steps of a tiny GPT on fixed windows, as one process or as 2 CPU ranks, for
tests/e2e/test_distributed_equivalence.py (never run DDP inside pytest: Lightning re-runs sys.argv for rank 1).

    python tests/e2e/distributed_equivalence.py single|ddp|fsdp <out_dir> [adamw|muon]

single: one process, batch 2B per step. ddp / fsdp: 2 ranks (gloo), rank r trains on rows [rB, (r+1)B) of the
same 2B windows. Writes <out_dir>/<mode>.pt (the model's parameters, gathered) and <mode>.json: the logged
train/grad_norm per step, the norm of the gradient the optimizer applied at step 0 (over all shards), and (single,
ddp) the whole averaged gradient at step 0. The optimizer: AdamW (default) or optim.name=muon (Muon + AdamW).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning as L
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from lightning_modules.gpt import GPTLitModule  # noqa: E402

B, T, STEPS, VOCAB = 4, 16, 3, 24
BETA1, GRAD_CLIP = 0.9, 0.05  # a limit every step must clip to
MODEL = dict(vocab_size=VOCAB, block_size=T, n_layer=2, n_head=2, n_embd=16, dropout=0.0, bias=False)
MUON_MOMENTUM = 0.9
OPTIMS = {
    "adamw": {"lr": 1e-2, "warmup_steps": 0, "beta1": BETA1, "grad_clip": GRAD_CLIP},
    "muon": {"lr": 1e-2, "warmup_steps": 0, "beta1": BETA1, "grad_clip": GRAD_CLIP, "name": "muon",
             "muon_lr": 0.05, "muon_momentum": MUON_MOMENTUM, "muon_weight_decay": 0.01},
}  # fmt: skip


def union_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, VOCAB, (STEPS, 2 * B, T + 1), generator=g)
    return [(w[:, :-1], w[:, 1:]) for w in tokens]


class Windows(L.LightningDataModule):
    """Each rank's rows of the union batches (the whole batches in a single process)."""

    def train_dataloader(self):
        world, rank = self.trainer.world_size, self.trainer.global_rank
        rows = slice(rank * (2 * B // world), (rank + 1) * (2 * B // world))
        return torch.utils.data.DataLoader([(x[rows], y[rows]) for x, y in union_batches()], batch_size=None)


class Probe(L.Callback):
    def __init__(self):
        self.record: dict = {"grad_norm": []}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):  # after DDP's all-reduce, before clipping
        if trainer.global_step == 0 and not isinstance(trainer.strategy.model, _fsdp()):
            self.record["gradient"] = torch.cat([p.grad.flatten() for p in pl_module.parameters()]).tolist()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.record["grad_norm"].append(float(trainer.callback_metrics["train/grad_norm"]))
        if trainer.global_step == 1:
            squares = applied_squares(trainer.optimizers[0])
            if isinstance(trainer.strategy.model, _fsdp()):  # each rank holds a shard (DDP: a replica)
                torch.distributed.all_reduce(squares)
            self.record["applied_norm"] = float(squares.sqrt())


def applied_squares(optimizer) -> torch.Tensor:
    """The squared norm of the gradient applied in the first step (of this rank's shard under FSDP): AdamW's
    exp_avg is then (1 - beta1) x that gradient, Muon's momentum_buffer (1 - muon_momentum) x it."""
    squares = torch.zeros(())
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state.get(p, {})
            if "exp_avg" in state:
                squares += (state["exp_avg"].float() ** 2).sum() / (1 - BETA1) ** 2
            elif "momentum_buffer" in state:
                squares += (state["momentum_buffer"].float() ** 2).sum() / (1 - MUON_MOMENTUM) ** 2
    return squares


def _fsdp():
    from torch.distributed.fsdp import FullyShardedDataParallel

    return FullyShardedDataParallel


def cpu_fsdp():
    """Lightning's FSDPStrategy on CPU processes: Lightning refuses accelerator='cpu' for FSDPStrategy itself (not for
    a subclass), and torch's FSDP needs device_id=cpu to run without an accelerator. Test-only."""
    from lightning.pytorch.strategies import FSDPStrategy
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy

    from models.blocks import Block

    class CPUFSDPStrategy(FSDPStrategy):
        def _setup_model(self, model):
            import torch.distributed.fsdp as fsdp

            original = fsdp.FullyShardedDataParallel

            class OnCPU(original):
                def __init__(self, *args, device_id=None, **kwargs):
                    super().__init__(*args, device_id=torch.device("cpu"), **kwargs)

            fsdp.FullyShardedDataParallel = OnCPU
            try:
                return super()._setup_model(model)
            finally:
                fsdp.FullyShardedDataParallel = original

    # as conf/trainer/fsdp.yaml: every Block its own FSDP unit, full state dict in the checkpoint
    return CPUFSDPStrategy(
        auto_wrap_policy=ModuleWrapPolicy({Block}), state_dict_type="full", process_group_backend="gloo"
    )


def main(mode: str, out: Path, optim: str = "adamw") -> None:
    torch.set_num_threads(1)
    L.seed_everything(0)
    strategy = {"single": {}, "ddp": {"strategy": "ddp", "devices": 2}, "fsdp": {"strategy": cpu_fsdp(), "devices": 2}}
    probe = Probe()
    trainer = L.Trainer(
        accelerator="cpu", max_steps=STEPS, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, use_distributed_sampler=False, callbacks=[probe], **strategy[mode],
        log_every_n_steps=1,  # train/grad_norm, which Probe reads, is logged on Lightning's logging steps
    )  # fmt: skip
    torch.manual_seed(0)
    module = GPTLitModule(
        model=MODEL, tokenizer={"kind": "char", "chars": "abcdefghijklmnopqrstuvwx"}, optim=OPTIMS[optim]
    )
    trainer.fit(module, datamodule=Windows())
    weights = full_parameters(trainer, module)
    if trainer.is_global_zero:
        torch.save(weights, out / f"{mode}.pt")
        (out / f"{mode}.json").write_text(json.dumps(probe.record))


def full_parameters(trainer, module) -> dict[str, torch.Tensor]:
    """The model's parameters, gathered from the shards under FSDP. (Not trainer.save_checkpoint: gathering FSDP's
    full state dict on CPU processes crashes torch 2.13's CPU build; on GPUs train.py saves it as usual.)"""
    root = trainer.strategy.model
    if not isinstance(root, _fsdp()):
        return {n: p.detach().clone() for n, p in module.model.named_parameters()}
    with _fsdp().summon_full_params(root, writeback=False):
        return {n.replace("_fsdp_wrapped_module.", ""): p.detach().clone() for n, p in module.model.named_parameters()}


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), *sys.argv[3:])
