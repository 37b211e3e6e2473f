"""Translate with a seq2seq checkpoint: `python translate.py ckpt_path=... text="Ein Mann fährt Fahrrad."`.

Or `input=file.txt` (one sentence a line, translations in the same order, empty lines kept empty).
Sentences longer than the model's maximum length are truncated with a warning.
"""

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from training.cli import quote_free_text, user_errors


def read_input(cfg: DictConfig) -> list[str]:
    if (cfg.text is None) == (cfg.input is None):
        raise ValueError('give exactly one of text="a sentence" or input=path/to/file.txt (one sentence a line)')
    if cfg.text is not None:
        return [str(cfg.text)]
    path = Path(str(cfg.input)).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"input={cfg.input} does not exist (no such file)")
    from datamodules.files import read_lines  # the corpus reader: same line splitting and stripping

    try:
        return read_lines(path)
    except ValueError as err:  # not UTF-8
        raise ValueError(f"input={cfg.input}: {err}") from err


FREE_TEXT_KEYS = ("text", "input", "output")  # any text, no Hydra quoting needed (training/cli.quote_free_text)


def translate(cfg: DictConfig) -> None:
    import torch

    from training.checkpoint import load_module

    sentences = read_input(cfg)
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    module = load_module(cfg.ckpt_path, "seq2seq", device=device)
    translations = module.translate(
        sentences,
        beam_size=int(cfg.beam_size),
        batch_size=int(cfg.batch_size),
        length_penalty=float(cfg.length_penalty),
        max_len_a=float(cfg.max_len_a),
        max_len_b=int(cfg.max_len_b),
    )
    text = "".join(t + "\n" for t in translations)
    if cfg.output:
        Path(str(cfg.output)).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


@hydra.main(version_base="1.3", config_path="conf", config_name="translate")
def main(cfg: DictConfig) -> None:
    with user_errors():  # bad input: one line, exit 1
        translate(cfg)


if __name__ == "__main__":
    sys.argv = quote_free_text(sys.argv, FREE_TEXT_KEYS)
    main()
