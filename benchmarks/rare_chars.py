"""How many characters the vocabulary lacks come through translation, and how many are reported.

Takes the first N lines of a test source, inserts one item per line after its second word (an
emoji, a rare letter or a name with rare letters, in turn), translates them with a model, and
counts the lines whose translation contains the item, and the lines with a warning naming it.

    python benchmarks/rare_chars.py RUN_OR_MODEL.pt D/test_2016_flickr.de [--lines 20]
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from nmt_cli.translate import Translator

ITEMS = ["🐕", "ŋ", "Øystein", "🎉", "ə", "Nguyễn", "🚲", "Ω", "Żaneta", "🌧"]


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


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
    warned = {int(w.split(":")[0].split()[1]) for w in warnings.lines if w.startswith("line ")}
    result = {
        "model": str(args.model),
        "byte_fallback": getattr(translator.src_tok, "byte_fallback", False),  # older nmt: none
        "vocab_size": translator.src_tok.vocab_size,
        "lines": len(inputs),
        "came_through": sum(through),
        "reported": len(warned),
        "silently_lost": sum(1 for i, t in enumerate(through) if not t and i + 1 not in warned),
        "examples": [
            {"input": i, "output": o} for i, o in list(zip(inputs, outputs, strict=True))[:6]
        ],
    }
    print(json.dumps(result, indent=1, ensure_ascii=False))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
