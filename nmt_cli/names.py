"""The one registry of the model's variants and the precisions, as names.

Config validation checks against these tuples, and the model's builders pick classes from
dicts keyed by exactly these names (a unit test keeps the two equal). Free of torch, so that
reading a config (and `nmt --help`) never loads it.
"""

CELLS = ("lstm", "gru", "rnn")
ATTENTIONS = ("none", "dot", "general", "concat", "bahdanau")
BRIDGES = ("linear", "copy", "zero")

# Inference precisions; int8 (dynamic quantization) has no backward, so training takes the
# others only.
PRECISIONS = ("fp32", "bf16", "int8")
TRAINING_PRECISIONS = tuple(p for p in PRECISIONS if p != "int8")
# What `--precision` accepts: auto, the machine's choice (`precision.resolve_precision`), first.
AUTO_PRECISION = "auto"
INFERENCE_PRECISIONS = (AUTO_PRECISION, *PRECISIONS)
