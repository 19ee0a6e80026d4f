"""The four token ids every tokenizer and model in nmt reserves.

A module of its own, free of sentencepiece and torch, so the model, the data pipeline, the loss
and the search can name the ids without loading the tokenizer (`tokenizer.py` trains every
sentencepiece model with exactly these ids).
"""

PAD_ID = 0
UNK_ID = 1
BOS_ID = 2
EOS_ID = 3
