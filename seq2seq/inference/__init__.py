"""Decoding: greedy and beam search over the stepping interface, and file translation."""

from seq2seq.inference.search import Hypothesis, beam_search, forced_attention, greedy_search

__all__ = ["Hypothesis", "beam_search", "forced_attention", "greedy_search"]
