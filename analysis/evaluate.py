"""Score a trained model from its checkpoint alone (eval.py): GPT loss and perplexity, seq2seq BLEU and chrF.

The model and its tokenizer come from the checkpoint; the data config is the training run's own
(`<run>/config.yaml`, beside `checkpoints/`) changed by `data.*` overrides, or a fresh `data=<corpus>`.
Everything goes to an output directory: scores.json, and per seq2seq test set and decoding the hypotheses
(`<set>.greedy.txt`, `<set>.beam5.txt`), per GPT evaluation samples.txt.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from datamodules.text_tokenizers import UnknownCharacters, default_tiktoken_cache
from datamodules.windows import EvalWindows, load_tokens
from errors import ConfigError
from lightning_modules.metrics import VOCAB_TEXT_TOKENS, complete_words, corpus_bleu, corpus_chrf, vocabulary
from training.checkpoint import load_module
from training.run import DATA_CONFIG_ONLY
from training.startup import frozen_start_up

log = logging.getLogger("tformer")

DEFAULT_SPLITS = {"gpt": ["val"], "seq2seq": ["test"]}
STAGES = {"train": "fit", "val": "validate", "test": "test"}  # seq2seq: which setup() reads a split


def run_data_config(ckpt_path: str | Path) -> DictConfig | None:
    """The data config of the run that wrote a checkpoint (<run>/checkpoints/x.ckpt -> <run>/config.yaml)."""
    config = Path(str(ckpt_path)).expanduser().resolve().parent.parent / "config.yaml"
    return OmegaConf.load(config).get("data") if config.is_file() else None


def data_config(cfg: DictConfig) -> DictConfig:
    """data=<corpus> as composed, else the training run's data config with the data.* overrides on top."""
    given = cfg.get("data")
    if given is not None and "_target_" in given:
        return given
    base = run_data_config(cfg.ckpt_path)
    if base is None:
        raise ConfigError(
            f"no data config: {cfg.ckpt_path} has no training run's config.yaml two folders up; give the corpus "
            f"with data=<name> (e.g. data=text data.val=held_out.txt, or data=parallel data.test_tsv=test.tsv)"
        )
    return OmegaConf.merge(base, given or {})


def evaluate(cfg: DictConfig) -> list[dict]:
    """Score the checkpoint on the splits asked; write scores.json (and hypotheses / samples) to output_dir."""
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    data_cfg = data_config(cfg)
    default_tiktoken_cache(data_cfg.get("tiktoken_dir"))  # a tiktoken tokenizer in the checkpoint finds its files
    module = load_module(cfg.ckpt_path, None, device=device)
    settings = OmegaConf.to_container(data_cfg, resolve=True)
    datamodule = instantiate({k: v for k, v in settings.items() if k not in DATA_CONFIG_ONLY})
    data_family = getattr(datamodule, "family", "gpt")
    if data_family != module.family:
        raise ConfigError(
            f"{cfg.ckpt_path} holds a {module.family} model, but data={settings.get('name')} is a corpus for "
            f"{data_family} models: give a {module.family} corpus"
        )
    datamodule.use_tokenizer(module.tokenizer)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    splits = list(cfg.splits or DEFAULT_SPLITS[module.family])
    score = score_gpt if module.family == "gpt" else score_seq2seq
    with frozen_start_up():  # eval.py turns the collector off as it starts: back on, never walking start-up
        rows = score(module, datamodule, splits, cfg, out)
    summary = {"checkpoint": str(cfg.ckpt_path), "family": module.family, "data": settings, "scores": rows}
    (out / "scores.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    log.info("Scores and outputs: %s", out.resolve())
    return rows


# -- GPT: loss and perplexity of every target token of a split, word accuracy of samples
@torch.no_grad()
def score_gpt(module, datamodule, splits: list[str], cfg: DictConfig, out: Path) -> list[dict]:
    context = module.config.block_size
    block = int(cfg.block_size or context)
    if block > context:
        raise ConfigError(f"block_size={block} is larger than the model's context ({context}): lower it")
    datamodule.block_size = block
    rows = []
    for split in splits:
        try:
            path = datamodule.tokens_path(split)
        except UnknownCharacters as err:
            label = datamodule.split(split).source.label  # data.val=held_out.txt
            where = label if "=" in label else f"data.{split} ({label})"
            raise ConfigError(
                f"{where}: {err}; the checkpoint's model knows only the characters of its training text: remove "
                f"those characters from the file, or score text written with the model's characters"
            ) from err
        datamodule.check_block_size(split, len(load_tokens(path)))
        loader = DataLoader(EvalWindows(path, block), batch_size=datamodule.val_batch_size, shuffle=False)
        total, count = 0.0, 0
        for x, y in loader:
            _, loss = module(x.to(module.device), y.to(module.device))
            n = int((y >= 0).sum())
            total, count = total + float(loss) * n, count + n
        loss = total / count
        text = datamodule.split(split).source.label
        rows.append({"split": split, "text": text, "tokens": count, "block_size": block, "loss": loss})
        rows[-1]["perplexity"] = math.exp(loss)
        log.info("%s (%s): loss %.4f, perplexity %.2f over %d tokens", split, text, loss, math.exp(loss), count)
    if cfg.num_samples > 0:
        accuracy = _sample_word_accuracy(module, datamodule, cfg, out)
        for row in rows:
            row["word_accuracy"] = accuracy
    return rows


def _sample_word_accuracy(module, datamodule, cfg: DictConfig, out: Path) -> float | None:
    """Share of the samples' words found in the training text (None without a training text)."""
    options = ("num_samples", "max_new_tokens", "temperature", "top_k", "seed")
    samples = module.sample(str(cfg.prompt), **{key: cfg[key] for key in options})
    texts = [s[len(cfg.prompt) :] if s.startswith(cfg.prompt) else s for s in samples]
    (out / "samples.txt").write_text("".join(f"--- sample {i} ---\n{t}\n" for i, t in enumerate(texts)), "utf-8")
    try:
        vocab = vocabulary(datamodule.text_sample(VOCAB_TEXT_TOKENS))
    except (ValueError, OSError) as err:
        log.info("No word accuracy: the training text is not available (%s)", err)
        return None
    found = [w for t in texts for w in complete_words(t)]
    accuracy = sum(w in vocab for w in found) / len(found) if found else None
    log.info("Word accuracy of %d samples: %s", len(texts), "n/a" if accuracy is None else f"{accuracy:.3f}")
    return accuracy


# -- seq2seq: BLEU and chrF of every test set, per decoding
@torch.no_grad()
def score_seq2seq(module, datamodule, splits: list[str], cfg: DictConfig, out: Path) -> list[dict]:
    beams = list(cfg.beam_size) if OmegaConf.is_list(cfg.beam_size) else [cfg.beam_size]
    decoding = dict(length_penalty=float(cfg.length_penalty), max_len_a=float(cfg.max_len_a))
    decoding["max_len_b"] = int(cfg.max_len_b)
    rows, signatures = [], {}
    for split in splits:
        if split not in STAGES:
            raise ConfigError(f"splits: {split!r} is not a split; choose from {list(STAGES)}")
        datamodule.setup(STAGES[split])
        sets = datamodule.sets.get(split)
        if not sets:
            raise ConfigError(f"this corpus has no {split} split to score (see the data.{split}* keys)")
        for name, data in sets.items():
            loader = datamodule.loader(data, shuffle=False, max_tokens=datamodule.val_max_tokens)
            for beam in map(int, beams):
                hyps = _translate(module, loader, len(data), beam, decoding)
                tag = "greedy" if beam == 1 else f"beam{beam}"
                hyp_file = out / f"{name}.{tag}.txt"
                hyp_file.write_text("".join(h + "\n" for h in hyps), encoding="utf-8")
                bleu, signatures["bleu"] = corpus_bleu(hyps, data.tgt_text)
                chrf, signatures["chrf"] = corpus_chrf(hyps, data.tgt_text)
                row = {"split": split, "set": name, "pairs": len(data), "beam_size": beam, **decoding}
                rows.append({**row, "bleu": bleu.score, "chrf": chrf.score, "hypotheses": hyp_file.name})
                log.info(
                    "%s %s: BLEU %.2f chrF %.2f (%d pairs) -> %s",
                    name,
                    tag,
                    bleu.score,
                    chrf.score,
                    len(data),
                    hyp_file,
                )
    for metric, signature in signatures.items():
        log.info("%s signature: %s", metric, signature)
        for row in rows:
            row[f"{metric}_signature"] = signature
    return rows


def _translate(module, loader: DataLoader, n: int, beam: int, decoding: dict) -> list[str]:
    """Hypotheses of every pair the loader batches, in corpus order."""
    hyps = [""] * n
    for batch in loader:
        ids = module.generate_ids(batch["src"].to(module.device), beam_size=beam, **decoding)
        for i, hyp in zip(batch["idx"].tolist(), ids):
            hyps[i] = module.tokenizer.decode(hyp)
    return hyps
