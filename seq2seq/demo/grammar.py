"""A small English -> German grammar of numbers, dates and times, with word alignments.

Phrases carry their own alignment: every word has a label, and an English and a German word
with the same label are a sure link; `possible` lists (English label, German label) pairs that
are possible links. A phrase may be split into parts by `PART` so that a sentence pattern can
place the parts apart (German separable verbs and participles: "leaves" -> "fährt ... ab").

German facts encoded here: cardinals are written as one word with the units before the tens
("twenty-three" -> "dreiundzwanzig"), "eins" alone but "ein" inside compounds and before "Uhr";
ordinals are the cardinal + "t" below 20 (erst-, dritt-, siebt-, acht- irregular) and + "st"
from 20, with a weak ending "-e" after "der" and "-en" after "dem"/"am"; "half past eight" is
"halb neun" (half *to* the next hour).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

Token = tuple[str, str]  # (word, label); label "" = unaligned
PART = ("|", "")  # separates the parts of a phrase side

# fmt: off
ONES_EN = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
)
ONES_DE = (
    "null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun", "zehn",
    "elf", "zwölf", "dreizehn", "vierzehn", "fünfzehn", "sechzehn", "siebzehn", "achtzehn",
    "neunzehn",
)
TENS_EN = (
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
)
TENS_DE = (
    "", "", "zwanzig", "dreißig", "vierzig", "fünfzig", "sechzig", "siebzig", "achtzig",
    "neunzig",
)
ORDINALS_EN = (
    "zeroth", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth",
    "ninth", "tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth",
    "sixteenth", "seventeenth", "eighteenth", "nineteenth",
)
ORDINAL_STEMS_DE = {1: "erst", 3: "dritt", 7: "siebt", 8: "acht"}
MONTHS_EN = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)
MONTHS_DE = (
    "Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September",
    "Oktober", "November", "Dezember",
)
WEEKDAYS_EN = (
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
)
WEEKDAYS_DE = (
    "Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag",
)
# fmt: on
MONTHS = tuple(zip(MONTHS_EN, MONTHS_DE, strict=True))
WEEKDAYS = tuple(zip(WEEKDAYS_EN, WEEKDAYS_DE, strict=True))
_ITEM = re.compile(r"\{(\w+)(?::(\d+))?\}")


@dataclass(frozen=True)
class Phrase:
    en: tuple[Token, ...]
    de: tuple[Token, ...]
    possible: frozenset[tuple[str, str]] = frozenset()


def phrase(en: str, de: str, possible: str = "") -> Phrase:
    """Phrase from "word/label word ..." strings ("|" splits parts); possible: "a:b c:d"."""

    def side(text: str) -> tuple[Token, ...]:
        return tuple(
            PART
            if item == "|"
            else (item.rpartition("/")[0] or item, item.rpartition("/")[2])
            if "/" in item
            else (item, "")
            for item in text.split()
        )

    pairs = frozenset(tuple(p.split(":")) for p in possible.split())
    return Phrase(side(en), side(de), pairs)  # type: ignore[arg-type]


def words(tokens: Sequence[Token]) -> list[str]:
    return [w for w, _ in tokens if (w, _) != PART]


def _parts(tokens: Sequence[Token]) -> list[list[Token]]:
    parts: list[list[Token]] = [[]]
    for token in tokens:
        if token == PART:
            parts.append([])
        else:
            parts[-1].append(token)
    return parts


def render(en: str, de: str, slots: dict[str, Phrase], possible: str = "") -> Phrase:
    """Fill two sentence patterns. Pattern items: "word/label", "word", "{slot}" (the whole
    slot side) or "{slot:k}" (its k-th part). Slot labels are prefixed "slot." so that they
    stay apart; pattern-level possible pairs may name them that way ("on:date.the")."""
    pairs = {tuple(p.split(":")) for p in possible.split()}
    for name, ph in slots.items():
        pairs |= {(f"{name}.{a}", f"{name}.{b}") for a, b in ph.possible}

    def side(pattern: str, pick: str) -> tuple[Token, ...]:
        out: list[Token] = []
        for item in pattern.split():
            match = _ITEM.fullmatch(item)
            if match is None:
                word, _, label = item.partition("/")
                out.append((word, label))
                continue
            name, part = match.group(1), match.group(2)
            tokens = getattr(slots[name], pick)
            chosen = [t for t in tokens if t != PART] if part is None else _parts(tokens)[int(part)]
            out.extend((w, f"{name}.{lab}" if lab else "") for w, lab in chosen)
        return tuple(out)

    return Phrase(side(en, "en"), side(de, "de"), frozenset(pairs))  # type: ignore[arg-type]


def links(ph: Phrase) -> tuple[set[tuple[int, int]], set[tuple[int, int]]]:
    """(sure, possible-only) word links (English index, German index) of a flat phrase."""
    sure: set[tuple[int, int]] = set()
    maybe: set[tuple[int, int]] = set()
    for i, (_, a) in enumerate(ph.en):
        for j, (_, b) in enumerate(ph.de):
            if a and a == b:
                sure.add((i, j))
            elif a and b and (a, b) in ph.possible:
                maybe.add((i, j))
    return sure, maybe


# Numbers ---------------------------------------------------------------------------------


def cardinal_en(n: int) -> list[str]:
    """0..9999 in British English words: 345 -> three hundred and forty-five."""
    if not 0 <= n <= 9999:
        raise ValueError(f"cardinal_en: expected 0..9999, got {n}")
    if n < 20:
        return [ONES_EN[n]]
    if n < 100:
        return [TENS_EN[n // 10] + (f"-{ONES_EN[n % 10]}" if n % 10 else "")]
    big, unit = (n // 1000, "thousand") if n >= 1000 else (n // 100, "hundred")
    rest = n % 1000 if n >= 1000 else n % 100
    tail = [] if rest == 0 else cardinal_en(rest) if rest >= 100 else ["and", *cardinal_en(rest)]
    return [ONES_EN[big], unit, *tail]


def cardinal_de(n: int) -> str:
    """0..9999 as one German word: 345 -> dreihundertfünfundvierzig, 1 -> eins, 21 -> ein..."""
    if not 0 <= n <= 9999:
        raise ValueError(f"cardinal_de: expected 0..9999, got {n}")
    if n < 20:
        return ONES_DE[n]
    if n < 100:
        ones, tens = n % 10, TENS_DE[n // 10]
        return tens if ones == 0 else ("ein" if ones == 1 else ONES_DE[ones]) + "und" + tens
    if n >= 1000:
        big, unit, rest = n // 1000, "tausend", n % 1000
    else:
        big, unit, rest = n // 100, "hundert", n % 100
    head = "ein" if big == 1 else ONES_DE[big]
    return head + unit + (cardinal_de(rest) if rest else "")


def number(n: int) -> Phrase:
    """All English number words align to the one German word ("and" only possibly)."""
    en = [(w, "and" if w == "and" else "n") for w in cardinal_en(n)]
    return Phrase(tuple(en), ((cardinal_de(n), "n"),), frozenset({("and", "n")}))


def ordinal_en(n: int) -> str:
    """1..31: first, ..., twenty-third, thirtieth, thirty-first."""
    if n < 20:
        return ORDINALS_EN[n]
    if n % 10 == 0:
        return TENS_EN[n // 10][:-1] + "ieth"
    return f"{TENS_EN[n // 10]}-{ORDINALS_EN[n % 10]}"


def ordinal_de(n: int, ending: str) -> str:
    """1..31 with a weak adjective ending ("e" after der, "en" after dem/am): dritten."""
    if n < 20:
        return ORDINAL_STEMS_DE.get(n, ONES_DE[n] + "t") + ending
    return cardinal_de(n) + "st" + ending


def uninflected_one_ok(n: int) -> bool:
    """False for 101, 201, 1001, ...: "hunderteins Katzen" is not standard German."""
    return not (n > 100 and n % 100 == 1)


# Dates -----------------------------------------------------------------------------------


def date(
    day: int,
    month: int,
    *,
    form: str,
    dative: bool,
    year: int | None = None,
    weekday: int | None = None,
) -> Phrase:
    """A date; form "of" (the third of March), "md" (March third) or "digits" (March 3).

    dative: with "on" -> "am"/"dem"; else nominative "der" (as in "Today is ...").
    weekday: 0 = Monday, written before the date ("on Monday, the third of March").
    """
    month_en, month_de = MONTHS[month - 1]
    comma = "," if year is not None else ""
    en: list[str] = ["on/on"] if dative else []
    de: list[str] = ["am/on"] if dative else []
    if weekday is not None:
        en.append(f"{WEEKDAYS[weekday][0]},/wd")
        de.append(f"{WEEKDAYS[weekday][1]},/wd")
    article = "dem" if dative else "der"
    if dative and weekday is None:
        article = ""  # contracted into "am"
    if form == "digits":
        en += [f"{month_en}/m", f"{day}{comma}/d"]
        de += [f"{article}/the" if article else "", f"{day}./d", f"{month_de}/m"]
    else:
        day_de = ordinal_de(day, "en" if dative else "e")
        if form == "of":
            en += ["the/the", f"{ordinal_en(day)}/d", "of", f"{month_en}/m"]
        elif form == "md":
            en += [f"{month_en}/m", f"{ordinal_en(day)}{comma}/d"]
        else:
            raise ValueError(f"date: unknown form {form!r}; expected 'of', 'md' or 'digits'")
        de += [f"{article}/the" if article else "", f"{day_de}/d", f"{month_de}/m"]
    if year is not None:
        en.append(f"{year}/y")
        de.append(f"{year}/y")
    possible = "the:on" if dative and weekday is None else ""
    return phrase(" ".join(en), " ".join(w for w in de if w), possible)


# Times -----------------------------------------------------------------------------------

PERIODS = {  # English period -> (German, English hours it fits)
    "in/i the/t morning/p": ("am/i Morgen/p", range(6, 12)),
    "in/i the/t afternoon/p": ("am/i Nachmittag/p", range(1, 6)),
    "in/i the/t evening/p": ("am/i Abend/p", range(6, 11)),
    "at/i night/p": ("in/i der/a Nacht/p", (11, 12, 1, 2, 3)),
}


def clock(
    kind: str, hour: int, minutes: int = 0, *, period: str | None = None, at: bool = True
) -> Phrase:
    """A time of day, after "at" -> "um" unless `at` is False ("It is half past eight").

    kind: oclock | past | to | half | digital | midnight. hour: 1..12 (digital: 0..23);
    minutes: 5, 10, 20 or 15 (quarter) for past/to, 0..59 for digital. period: a key of
    PERIODS, appended to the analogue kinds.
    """
    h_en, h_de = ONES_EN[hour] if hour < 20 else "", cardinal_de(hour) if hour < 20 else ""
    m_en = "quarter" if minutes == 15 else ONES_EN[minutes] if minutes < 20 else "twenty"
    m_de = "Viertel" if minutes == 15 else cardinal_de(minutes)
    if kind == "oclock":
        en, de = f"{h_en}/h o'clock/u", f"{'ein' if hour == 1 else h_de}/h Uhr/u"
    elif kind in ("past", "to"):
        en = f"{m_en}/m {'past' if kind == 'past' else 'to'}/r {h_en}/h"
        de = f"{m_de}/m {'nach' if kind == 'past' else 'vor'}/r {h_de}/h"
    elif kind == "half":
        en, de = f"half/m past/r {h_en}/h", f"halb/m {cardinal_de(hour % 12 + 1)}/h"
    elif kind == "digital":
        en = de = f"{hour}:{minutes:02d}/h"
        de += " Uhr/u"
    elif kind == "midnight":
        en, de = "midnight/h", "Mitternacht/h"
    else:
        raise ValueError(f"clock: unknown kind {kind!r}")
    possible = "r:m h:u" if kind == "half" else "h:u"
    if period is not None:
        en, de = f"{en} {period}", f"{de} {PERIODS[period][0]}"
        possible += " t:i p:a"
    if at:
        en, de = f"at/at {en}", f"um/at {de}"
    return phrase(en, de, possible)
