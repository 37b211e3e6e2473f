"""A diverged run stops, never overwrites: a non-finite training loss ends the run with one line, and no checkpoint
with non-finite weights is ever written (best.ckpt and last.ckpt keep their last good contents).

The loss is checked on the device, without a host sync per step: each step's finiteness is folded into one device
tensor (the first bad step), read every `trainer.log_every_n_steps` steps (when the progress bar reads the loss
anyway), before every validation and at the end of training; ModelCheckpoint saves only after a validation or at
the end, so it never sees a diverged model. `on_save_checkpoint` also refuses non-finite weights, whoever saves.
Under DDP the ranks agree through a max-reduction, at the same steps on every rank.
"""

from __future__ import annotations

import lightning as L
import torch

from errors import UserError


class DivergedError(UserError):
    """Training diverged: a non-finite loss (or weights); the message names the step, the causes and the last good
    checkpoint."""


def _loss(outputs) -> torch.Tensor | None:
    loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
    return loss.detach() if isinstance(loss, torch.Tensor) else None


class StopOnNonFinite(L.Callback):
    """Stops training at a non-finite train loss (see the module docstring for when it looks)."""

    def __init__(self) -> None:
        self.first_bad: torch.Tensor | None = None  # on the device: the first step whose loss was not finite, or -1
        self.checked_step = -1
        self.saved_step: int | None = None  # the step of the last checkpoint this run wrote

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        loss = _loss(outputs)
        if loss is None:
            return
        if self.first_bad is None:
            self.first_bad = torch.full((), -1, dtype=torch.long, device=loss.device)
        bad = (self.first_bad < 0) & ~torch.isfinite(loss).all()  # on the device: no host sync
        self.first_bad = torch.where(bad, self.first_bad.new_full((), trainer.global_step), self.first_bad)
        every = max(1, int(trainer.log_every_n_steps or 1))
        if trainer.global_step % every == 0 and trainer.global_step != self.checked_step:
            self.check(trainer, pl_module)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.check(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.check(trainer, pl_module)

    def check(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Raise DivergedError if any rank saw a non-finite loss so far (every rank calls this at the same point)."""
        self.checked_step = trainer.global_step
        if self.first_bad is None:
            return
        first = self.first_bad
        if trainer.world_size > 1:
            first = trainer.strategy.reduce(first.clone(), reduce_op="max")
        step = int(first.item())
        if step >= 0:
            what = f"train/loss is not finite (nan or inf) at step {step}"
            raise DivergedError(self.message(trainer, pl_module, what))

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        state = checkpoint.get("state_dict") or {}
        bad = [k for k, v in state.items() if _plain(v) and v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            what = f"the weights are not finite ({bad[0]}{' and others' if len(bad) > 1 else ''}) at step "
            raise DivergedError(self.message(trainer, pl_module, what + str(trainer.global_step)))
        self.saved_step = int(checkpoint.get("global_step", trainer.global_step))

    def message(self, trainer: L.Trainer, pl_module: L.LightningModule, what: str) -> str:
        optim = getattr(pl_module, "optim_cfg", None)
        lr = f"optim.lr={optim.lr:g}" if optim is not None else "optim.lr"
        precision = str(trainer.precision)
        causes = f"a learning rate too high ({lr}: lower it, or raise optim.warmup_steps)"
        if precision.startswith("16"):
            causes += f", or float16 overflowing (trainer.precision={precision}: use bf16-mixed or 32-true)"
        elif precision.startswith("bf16"):
            causes += f", or bfloat16's coarse rounding (trainer.precision={precision}: try 32-true)"
        else:
            causes += f" (trainer.precision={precision} cannot overflow as float16 does)"
        last = trainer.checkpoint_callback.last_model_path if trainer.checkpoint_callback else ""
        if self.saved_step is not None and last:
            good = f"the last good checkpoint is {last} (step {self.saved_step})"
        elif trainer.ckpt_path:
            good = f"the last good checkpoint is the one this run resumed from, {trainer.ckpt_path}"
        else:
            good = "no checkpoint was saved before it"
        steps = f" of {trainer.max_steps}" if trainer.max_steps and trainer.max_steps > 0 else ""
        return f"training diverged: {what}{steps}, likely {causes}; stopped with nothing saved after it; {good}"


def _plain(value) -> bool:
    """A tensor holding its own values (not a sharded DTensor, whose check would need every rank)."""
    return isinstance(value, torch.Tensor) and type(value) in (torch.Tensor, torch.nn.Parameter)
