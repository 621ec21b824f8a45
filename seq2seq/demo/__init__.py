"""The demo corpus: a generated English -> German corpus with gold word alignments.

:mod:`~seq2seq.demo.grammar` holds the grammar of numbers, dates and times;
:mod:`~seq2seq.demo.corpus` draws sentences from it and writes the splits
(``python -m seq2seq.demo --out data/demo``). Nothing else in the package imports it.
"""
