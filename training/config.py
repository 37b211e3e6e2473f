"""OmegaConf resolvers used by conf/, and helpers to read and log resolved configs safely."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from training.secrets import REDACTED, redact  # noqa: F401  (the rule: training/secrets.py)


def auto_precision(accelerator: str = "auto") -> str:
    """bf16 mixed precision where a CUDA GPU supports it, fp32 everywhere else."""
    import torch

    wants_gpu = accelerator in ("auto", "gpu", "cuda")
    if wants_gpu and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def auto_compile(accelerator: str = "auto", model_target: str = "", strategy=None) -> bool:
    """torch.compile where it pays: a CUDA GPU and a model of fixed batch shapes (the GPT). Seq2seq batches
    vary in shape (token-budget buckets), so every new shape would recompile; FSDP shards the model after
    the compiled view is made, so it stays eager there unless compile=true is asked for."""
    import torch

    if "fsdp" in str(strategy).lower():
        return False
    wants_gpu = accelerator in ("auto", "gpu", "cuda")
    return wants_gpu and torch.cuda.is_available() and model_target.endswith("GPTConfig")


def wandb_credentials() -> bool:
    """True when a W&B API key is configured (environment or ~/.netrc); no network call."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text()
    except OSError:
        return False


def wandb_offline() -> bool:
    """Offline unless credentials exist; WANDB_MODE=offline|online|disabled always wins."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in ("offline", "dryrun", "disabled"):
        return True
    if mode == "online":
        return False
    return not wandb_credentials()


# Environment variables by which launchers (Lightning, torchrun, srun) tell a process its rank.
RANK_ENV = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID")


def env_rank_is_zero() -> bool:
    """False in a process that a launcher (Lightning, torchrun, srun) started as a non-zero rank.

    Read from the environment only (no torch, no Lightning: config resolvers call it before logging is set up)."""
    return all(os.environ.get(key, "0") in ("", "0") for key in RANK_ENV)


def rank_zero(value, otherwise=None):
    """`value` in the global-rank-zero process, `otherwise` in the extra ranks a launcher started (from the
    environment: RANK, LOCAL_RANK, NODE_RANK, SLURM_PROCID, ...): Hydra's .hydra/ and log file once per run."""
    return value if env_rank_is_zero() else otherwise


RUN_SUFFIX = secrets.token_hex(3)


def run_suffix() -> str:
    """Six random hex digits, the same for the whole process: the end of a run or multirun directory's name,
    so that runs started in the same second (by a script, on several machines) never share a directory."""
    return RUN_SUFFIX


def register_resolvers() -> None:
    from datamodules.files import corpus_name  # data configs name runs after their corpus

    resolvers = (
        ("auto_precision", auto_precision),
        ("auto_compile", auto_compile),
        ("wandb_offline", wandb_offline),
        ("rank_zero", rank_zero),
        ("corpus_name", corpus_name),
    )
    for name, fn in resolvers:
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
    if not OmegaConf.has_resolver("run_suffix"):
        OmegaConf.register_new_resolver("run_suffix", run_suffix, use_cache=True)


def loggable(cfg: DictConfig) -> dict:
    """The resolved config as a plain dict, secrets redacted: what loggers may see."""
    return redact(OmegaConf.to_container(cfg, resolve=True))


register_resolvers()
