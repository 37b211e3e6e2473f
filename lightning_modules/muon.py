"""optim.name=muon: torch.optim.Muon on the hidden matrices, AdamW on everything else, as one optimizer."""

from __future__ import annotations

import torch
from torch import nn

from errors import ConfigError
from lightning_modules.optim import OptimConfig, adamw_settings, param_groups


def hidden_matrices(model: nn.Module) -> list[nn.Parameter]:
    """The weights Muon orthogonalises: every nn.Linear weight (and nn.MultiheadAttention's input projections,
    model.impl=torch) except the output head `lm_head` and any weight tied to an nn.Embedding.

    Chosen by module, not by p.dim(): under FSDP the optimizer sees 1-D shards (make_muon refuses those).
    """
    head = getattr(model, "lm_head", None)
    if not isinstance(head, nn.Linear):
        raise TypeError(f"optim.name=muon needs the model's output layer as an nn.Linear `lm_head`: {type(model)}")
    outer = {id(head.weight)} | {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    hidden: set[int] = set()
    for m in model.modules():
        if isinstance(m, nn.Linear):
            hidden.add(id(m.weight))
        elif isinstance(m, nn.MultiheadAttention):  # its q/k/v projections are raw Parameters, not Linears
            projections = (m.in_proj_weight, m.q_proj_weight, m.k_proj_weight, m.v_proj_weight)
            hidden |= {id(w) for w in projections if w is not None}
    hidden -= outer
    return [p for p in model.parameters() if p.requires_grad and id(p) in hidden]


def make_muon(model: nn.Module, cfg: OptimConfig, *, device_type: str) -> MuonWithAdamW:
    """Groups `muon` (hidden matrices: optim.muon_*), `decay` (embeddings and head) and `no_decay` (norm gains,
    biases): the last two are AdamW's, with optim.lr, betas, eps and weight_decay as for optim.name=adamw."""
    hidden = hidden_matrices(model)
    if any(p.dim() != 2 for p in hidden):
        raise ConfigError(
            "optim.name=muon needs whole 2-D weight matrices, but the optimizer was given flattened shards "
            "(trainer.strategy=fsdp): train Muon with trainer=ddp, or use FSDP with optim.name=adamw"
        )
    taken = {id(p) for p in hidden}
    groups = param_groups(model, cfg.weight_decay)  # decay: here the embeddings and the head only
    adamw = [{**g, "params": [p for p in g["params"] if id(p) not in taken]} for g in groups]
    muon = dict(
        lr=cfg.muon_lr,
        momentum=cfg.muon_momentum,
        weight_decay=cfg.muon_weight_decay,
        nesterov=True,
        adjust_lr_fn=cfg.muon_adjust_lr,
    )
    return MuonWithAdamW([{"params": hidden, "name": "muon"}], adamw, muon=muon, adamw=adamw_settings(cfg, device_type))


class MuonWithAdamW(torch.optim.Optimizer):
    """torch.optim.Muon and torch.optim.AdamW stepped together as one torch Optimizer (Muon's groups first).

    One object, not two optimizers as the modded-nanogpt speedrun steps them (Keller Jordan's MuonWithAuxAdam is
    one too): Lightning's automatic optimization takes one optimizer, and with one the project's machinery stays as
    it is: gradient accumulation, the clipping hook over all parameters, the GradScaler's unscaling, one LambdaLR
    that scales each group's own peak lr, the LR monitor's train/lr/<group>. The maths stays torch's: the two inner
    optimizers share this object's group dicts and state, so state_dict() and load_state_dict() are torch's own
    (one list of groups, one state) and a resumed run restores exactly what the uninterrupted run holds.
    """

    def __init__(self, muon_groups: list[dict], adamw_groups: list[dict], *, muon: dict, adamw: dict):
        self.muon = torch.optim.Muon(muon_groups, **muon)
        self.adamw = torch.optim.AdamW(adamw_groups, **adamw)
        super().__init__([*self.muon.param_groups, *self.adamw.param_groups], {})  # the same dicts
        self._share()

    def _share(self) -> None:
        """Point the inner optimizers at this object's groups and state (again after load_state_dict)."""
        n = len(self.muon.param_groups)
        self.muon.param_groups, self.adamw.param_groups = self.param_groups[:n], self.param_groups[n:]
        self.muon.state = self.adamw.state = self.state

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)  # new group dicts and a new state
        self._share()

    def step(self, closure=None):
        loss = None
        if closure is not None:  # Lightning's closure: forward, backward and the clipping hook, once
            with torch.enable_grad():
                loss = closure()
        self.muon.step()
        self.adamw.step()
        return loss
