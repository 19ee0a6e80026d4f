"""How many characters the vocabulary lacks come through translation, and how many are reported.

Takes the first N lines of a test source, inserts one item per line after its second word (an
emoji, a rare letter or a name with rare letters, in turn), translates them with a model, and
counts the lines whose translation contains the item, or at least the item's characters that the
vocabulary lacks, and the lines with a warning naming them.

    python benchmarks/rare_chars.py RUN_OR_MODEL.pt D/test_2016_flickr.de [--lines 20]
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from nmt_cli.special_ids import UNK_ID
from nmt_cli.translate import Translator

ITEMS = ["🐕", "ŋ", "Øystein", "🎉", "ə", "Nguyễn", "🚲", "Ω", "Żaneta", "🌧"]


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def vocabulary_lacks(tok: Any, item: str) -> list[str]:
    """The characters of `item` that the tokenizer spells as bytes or reads as <unk>."""
    is_byte = getattr(tok, "is_byte", None) or tok._processor.is_byte  # older nmt: no is_byte
    return [c for c in item if any(i == UNK_ID or is_byte(i) for i in tok.encode(c))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("source", type=Path)
    parser.add_argument("--lines", type=int, default=20)
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    args = parser.parse_args()

    lines = args.source.read_text(encoding="utf-8").splitlines()[: args.lines]
    items = [ITEMS[i % len(ITEMS)] for i in range(len(lines))]
    inputs = []
    for line, item in zip(lines, items, strict=True):
        words = line.split()
        inputs.append(" ".join([*words[:2], item, *words[2:]]))
    warnings = _Warnings()
    logging.getLogger("nmt_cli").addHandler(warnings)
    translator = Translator.load(args.model)
    outputs = [h[0].text for h in translator.translate_lines(inputs, beam=args.beam)]
    through = [item in out for item, out in zip(items, outputs, strict=True)]
    unknown = [vocabulary_lacks(translator.src_tok, item) for item in items]
    chars_through = [
        all(c in out for c in chars) for chars, out in zip(unknown, outputs, strict=True)
    ]
    warned = {int(w.split(":")[0].split()[1]) for w in warnings.lines if w.startswith("line ")}
    result = {
        "model": str(args.model),
        "byte_fallback": getattr(translator.src_tok, "byte_fallback", False),  # older nmt: none
        "vocab_size": translator.src_tok.vocab_size,
        "lines": len(inputs),
        "came_through": sum(through),
        "unknown_characters_came_through": sum(chars_through),
        "reported": len(warned),
        "silently_lost": sum(
            1 for i, ok in enumerate(chars_through) if not ok and i + 1 not in warned
        ),
        "unknown_characters": ["".join(chars) for chars in unknown],
        "examples": [
            {"input": i, "output": o} for i, o in list(zip(inputs, outputs, strict=True))[:6]
        ],
    }
    print(json.dumps(result, indent=1, ensure_ascii=False))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
