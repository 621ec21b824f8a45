"""Word alignments in Pharaoh format, with sure and possible links.

One line per sentence pair, links separated by spaces, 0-based word indices (words are the
whitespace-separated tokens of a line): `i-j` is a sure link between source word i and target
word j, `ipj` a possible link (the convention of the alignment-scripts of Zenkel et al. 2019,
arXiv:1901.11359, also read by awesome-align and SimAlign); `i?j` is read as possible too.
Sure links are possible links as well (S ⊆ P, Och & Ney 2003), so `parse_alignment` returns P
including S. A file without possible links has only sure links. An empty line is a sentence
without links.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from seq2seq.data.io import DataError, read_lines

Link = tuple[int, int]


def parse_alignment(line: str, *, where: str = "alignment") -> tuple[set[Link], set[Link]]:
    """ "0-0 1p2 3?4 ..." -> (sure, possible); possible includes the sure links."""
    sure: set[Link] = set()
    possible: set[Link] = set()
    for item in line.split():
        sep = "-" if "-" in item else "p"
        parts = item.replace("?", "p").split(sep)
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise DataError(
                f"{where}: bad link {item!r}; expected 'i-j' (sure) or 'ipj' (possible)"
            )
        link = (int(parts[0]), int(parts[1]))
        possible.add(link)
        if sep == "-":
            sure.add(link)
    return sure, possible


def format_alignment(sure: Iterable[Link], possible: Iterable[Link] = ()) -> str:
    """(sure, possible) -> "i-j ... ipj ..." sorted by (i, j); possible links already in `sure`
    are written once, as sure links."""
    sure = set(sure)
    links = [(i, j, "-") for i, j in sure] + [(i, j, "p") for i, j in set(possible) - sure]
    return " ".join(f"{i}{sep}{j}" for i, j, sep in sorted(links))


def read_alignments(path: str | os.PathLike[str]) -> list[tuple[set[Link], set[Link]]]:
    """All lines of a Pharaoh file as (sure, possible) pairs; errors name the file and line."""
    return [
        parse_alignment(line, where=f"{path}, line {n}")
        for n, line in enumerate(read_lines(path), start=1)
    ]
