"""seq2seq: an attention-centred neural machine translation toolkit in PyTorch."""

__version__ = "0.1.0"
