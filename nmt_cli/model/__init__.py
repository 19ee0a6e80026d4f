"""The LSTM/GRU/RNN encoder-decoder with attention."""

from nmt_cli.model.decoder import DecoderState
from nmt_cli.model.seq2seq import Seq2Seq, build_model, init_weights, skip_init

__all__ = ["DecoderState", "Seq2Seq", "build_model", "init_weights", "skip_init"]
