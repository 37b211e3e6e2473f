"""Translate with a seq2seq checkpoint: `python translate.py ckpt_path=... text="Ein Mann fährt Fahrrad."`.

Or `input=file.txt` (one sentence a line, translations in the same order, empty lines kept empty).
Sentences longer than the model's maximum length are truncated with a warning.
Score a test set: `input=test.de reference=test.en [output=hyps.en]` prints sacreBLEU's corpus BLEU (detokenized,
cased) with its signature and the decoding time per sentence; score_json=file.json keeps them.
"""

import gc
import json
import sys
import time
from pathlib import Path

from omegaconf import DictConfig

from errors import ConfigError, MissingFileError
from training.cli import entry_point


def read_input(cfg: DictConfig) -> list[str]:
    if (cfg.text is None) == (cfg.input is None):
        raise ConfigError('give exactly one of text="a sentence" or input=path/to/file.txt (one sentence a line)')
    if cfg.text is not None:
        return [str(cfg.text)]
    path = Path(str(cfg.input)).expanduser()
    if not path.is_file():
        raise MissingFileError(f"input={cfg.input} does not exist (no such file)")
    from datamodules.files import read_lines  # the corpus reader: same line splitting and stripping

    try:
        return read_lines(path)
    except ValueError as err:  # not UTF-8
        raise ConfigError(f"input={cfg.input}: {err}") from err


def read_reference(cfg: DictConfig, n: int) -> list[str] | None:
    """The reference translations (reference=file, one a line, aligned with input=), or None."""
    if cfg.reference is None:
        if cfg.score_json:
            raise ConfigError("score_json= writes the score of reference=file.txt; give reference= too")
        return None
    if cfg.input is None:
        raise ConfigError("reference= scores the translations of input=file.txt; give input= too")
    path = Path(str(cfg.reference)).expanduser()
    if not path.is_file():
        raise MissingFileError(f"reference={cfg.reference} does not exist (no such file)")
    from datamodules.files import read_lines

    try:
        lines = read_lines(path)
    except ValueError as err:
        raise ConfigError(f"reference={cfg.reference}: {err}") from err
    if len(lines) != n:
        raise ConfigError(f"reference={cfg.reference} has {len(lines)} lines but input={cfg.input} has {n}")
    return lines


FREE_TEXT_KEYS = ("text", "input", "output", "reference", "score_json")  # any text, no Hydra quoting needed


def translate(cfg: DictConfig) -> None:
    import torch

    from training.checkpoint import load_module
    from training.startup import frozen_start_up

    sentences = read_input(cfg)
    references = read_reference(cfg, len(sentences))
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    module = load_module(cfg.ckpt_path, "seq2seq", device=device)
    start = time.perf_counter()
    with frozen_start_up():  # the collector back on, never walking what start-up built
        translations = module.translate(
            sentences,
            beam_size=int(cfg.beam_size),
            batch_size=int(cfg.batch_size),
            length_penalty=float(cfg.length_penalty),
            max_len_a=float(cfg.max_len_a),
            max_len_b=int(cfg.max_len_b),
        )
    seconds = time.perf_counter() - start  # translate() returns text: the device has finished
    text = "".join(t + "\n" for t in translations)
    if cfg.output:
        Path(str(cfg.output)).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    if references is not None:
        report = score(cfg, translations, references, seconds, device)
        # the score goes to stdout unless the hypotheses do: then to stderr, so stdout stays one line each
        print(report["summary"], file=sys.stdout if cfg.output else sys.stderr)
        if cfg.score_json:
            Path(str(cfg.score_json)).write_text(json.dumps(report, indent=2), encoding="utf-8")


def score(cfg: DictConfig, hypotheses: list[str], references: list[str], seconds: float, device: str) -> dict:
    """Corpus BLEU of the hypotheses, the decoding settings and time: what a test-set score must state."""
    from lightning_modules.metrics import corpus_bleu

    bleu, signature = corpus_bleu(hypotheses, references)
    n = len(hypotheses)
    decoding = (
        f"beam_size={cfg.beam_size} length_penalty={cfg.length_penalty} max_len={cfg.max_len_a}*src+{cfg.max_len_b}"
    )
    summary = (
        f"{bleu}\n{signature}\n{decoding}\n"
        f"decoded {n} sentences in {seconds:.2f} s on {device} ({1000 * seconds / max(n, 1):.2f} ms per sentence, "
        f"batch_size={cfg.batch_size})"
    )
    return {
        "bleu": bleu.score,
        "bleu_text": str(bleu),
        "signature": signature,
        "sentences": n,
        "seconds": seconds,
        "ms_per_sentence": 1000 * seconds / max(n, 1),
        "beam_size": int(cfg.beam_size),
        "length_penalty": float(cfg.length_penalty),
        "max_len_a": float(cfg.max_len_a),
        "max_len_b": int(cfg.max_len_b),
        "batch_size": int(cfg.batch_size),
        "device": device,
        "ckpt_path": str(cfg.ckpt_path),
        "input": str(cfg.input),
        "reference": str(cfg.reference),
        "summary": summary,
    }


if __name__ == "__main__":
    gc.disable()  # until the checkpoint is loaded (training/startup.py, frozen_start_up)
    entry_point(translate, "translate", free_text=FREE_TEXT_KEYS)
