"""A generated English -> German corpus with gold word alignments, for a download-free demo.

Short sentences about counted things, prices, arithmetic, dates and times of day, built from the
grammar in `seq2seq.demo.grammar`: German compounds numbers with the units first, inflects
"ein", ordinals and articles, moves participles and verb particles to the end of the clause
and says "halb neun" for half past eight. Deterministic by seed.

Files written to `out_dir`, for each split in train, valid, test:
  {split}.en, {split}.de   one sentence per line, UTF-8
  {split}.align            gold word alignments in Pharaoh format (see `seq2seq.data.pharaoh`):
                           "i-j" sure, "ipj" possible; i = English word, j = German word,
                           0-based, words = whitespace-separated tokens.
The splits are disjoint (no English sentence occurs twice in the corpus).

Usage: python -m seq2seq.demo --out data/demo --seed 1
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from seq2seq.data.pharaoh import format_alignment
from seq2seq.demo.grammar import (
    PERIODS,
    Phrase,
    clock,
    date,
    links,
    number,
    phrase,
    render,
    uninflected_one_ok,
    words,
)
from seq2seq.fileio import write_atomic

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")

# English singular, plural; German singular, plural; gender; kind (a: animal, p: person,
# s: small thing, b: big thing)
_NOUNS = """
cat cats Katze Katzen f a | dog dogs Hund Hunde m a | bird birds Vogel Vögel m a
horse horses Pferd Pferde n a | child children Kind Kinder n p | book books Buch Bücher n s
apple apples Apfel Äpfel m s | bottle bottles Flasche Flaschen f s
glass glasses Glas Gläser n s | egg eggs Ei Eier n s | letter letters Brief Briefe m s
key keys Schlüssel Schlüssel m s | pencil pencils Bleistift Bleistifte m s
cup cups Tasse Tassen f s | flower flowers Blume Blumen f s
ticket tickets Fahrkarte Fahrkarten f s | house houses Haus Häuser n b | car cars Auto Autos n b
chair chairs Stuhl Stühle m b | table tables Tisch Tische m b
"""
ONE_ACC = {"m": "einen", "f": "eine", "n": "ein"}
ARTICLE = {"m": "der", "f": "die", "n": "das"}
# fmt: off
# subject phrase, person (1s, 1p, 3s, 3p)
SUBJECTS = [
    ("I/s", "ich/s", "1s"), ("we/s", "wir/s", "1p"), ("he/s", "er/s", "3s"),
    ("she/s", "sie/s", "3s"), ("they/s", "sie/s", "3p"),
    ("my/s brother/s2", "mein/s Bruder/s2", "3s"),
    ("my/s sister/s2", "meine/s Schwester/s2", "3s"),
    ("the/s children/s2", "die/s Kinder/s2", "3p"),
    ("our/s neighbours/s2", "unsere/s Nachbarn/s2", "3p"),
]
# English base, 3rd singular, past; German ich, wir, er, sie (pl), participle; noun kinds
VERBS = [
    ("have has had", "habe haben hat haben -", "apsb"),
    ("see sees saw", "sehe sehen sieht sehen gesehen", "apsb"),
    ("need needs needed", "brauche brauchen braucht brauchen gebraucht", "sb"),
    ("buy buys bought", "kaufe kaufen kauft kaufen gekauft", "asb"),
    ("sell sells sold", "verkaufe verkaufen verkauft verkaufen verkauft", "asb"),
    ("find finds found", "finde finden findet finden gefunden", "as"),
]
HABEN = {"1s": "habe", "1p": "haben", "3s": "hat", "3p": "haben"}
PAST_ADVERBS = ["yesterday/t|gestern/t", "last/t week/t2|letzte/t Woche/t2",
                "last/t year/t2|letztes/t Jahr/t2", "on/t Sunday/t2|am/t Sonntag/t2"]
PLACES = [  # (place, possible links, noun kinds that fit)
    ("in/i the/t garden/g|im/i Garten/g", "t:i", "ap"),
    ("in/i the/t park/g|im/i Park/g", "t:i", "ap"),
    ("in/i the/t kitchen/g|in/i der/t Küche/g", "", "s"),
    ("on/i the/t table/g|auf/i dem/t Tisch/g", "", "s"),
    ("in/i the/t box/g|in/i der/t Kiste/g", "", "s"),
    ("in/i the/t street/g|auf/i der/t Straße/g", "", "ab"),
]
EVENTS = ["my/a birthday/b|mein/a Geburtstag/b", "the/a wedding/b|die/a Hochzeit/b",
          "the/a meeting/b|die/a Besprechung/b", "the/a concert/b|das/a Konzert/b",
          "the/a party/b|die/a Party/b",
          "the/a exam/b|die/a Prüfung/b", "the/a film/b|der/a Film/b",
          "the/a game/b|das/a Spiel/b"]
VEHICLES = ["the/a train/b leaves/v|der/a Zug/b fährt/v | ab/v",
            "the/a bus/b leaves/v|der/a Bus/b fährt/v | ab/v",
            "the/a ferry/b leaves/v|die/a Fähre/b fährt/v | ab/v",
            "the/a plane/b leaves/v|das/a Flugzeug/b fliegt/v | ab/v"]
SHOPS = ["the/a shop/b|der/a Laden/b", "the/a bank/b|die/a Bank/b",
         "the/a museum/b|das/a Museum/b", "the/a library/b|die/a Bibliothek/b"]
# fmt: on


@dataclass(frozen=True)
class Noun:
    en_sg: str
    en_pl: str
    de_sg: str
    de_pl: str
    gender: str
    kind: str


NOUNS = [Noun(*item.split()) for item in _NOUNS.replace("\n", " | ").split("|") if item.strip()]


@dataclass(frozen=True)
class Example:
    en: str
    de: str
    sure: frozenset[tuple[int, int]]
    possible: frozenset[tuple[int, int]]  # possible-only links (sure links not repeated)

    @property
    def alignment(self) -> str:
        return format_alignment(self.sure, self.possible)


def _pair(spec: str, possible: str = "") -> Phrase:
    en, de = spec.split("|", 1)
    return phrase(en, de, possible)


def _count(rng: random.Random) -> int:
    """Mostly small numbers, some hundreds and thousands."""
    r = rng.random()
    if r < 0.45:
        return rng.randint(1, 20)
    if r < 0.80:
        return rng.randint(21, 99)
    return rng.randint(100, 999) if r < 0.93 else rng.randint(1000, 9999)


def _countable(rng: random.Random) -> int:
    n = _count(rng)
    while not uninflected_one_ok(n):
        n = _count(rng)
    return n


def counted(n: int, noun: Noun, *, de_one: str | None = None, de_pl: str | None = None) -> Phrase:
    """n things: "one cat" -> "eine Katze", "three cats" -> "drei Katzen" (accusative)."""
    if n == 1:
        return phrase(f"one/n {noun.en_sg}/c", f"{de_one or ONE_ACC[noun.gender]}/n {noun.de_sg}/c")
    num = number(n)
    return Phrase((*num.en, (noun.en_pl, "c")), (*num.de, (de_pl or noun.de_pl, "c")), num.possible)


def _subject(rng: random.Random) -> tuple[Phrase, str]:
    en, de, person = rng.choice(SUBJECTS)
    return phrase(en, de), person


def t_possession(rng: random.Random) -> Phrase:
    """She needs three cups. / Yesterday we bought twenty-one books."""
    subj, person = _subject(rng)
    en_forms, de_forms, kinds = rng.choice(VERBS)
    noun = rng.choice([n for n in NOUNS if n.kind in kinds])
    base, third, past = en_forms.split()
    ich, wir, er, sie, participle = de_forms.split()
    obj = counted(_countable(rng), noun)
    if participle != "-" and rng.random() < 0.35:
        verb = phrase(f"{past}/v", f"{HABEN[person]}/v | {participle}/v")
        slots = {"t": _pair(rng.choice(PAST_ADVERBS)), "s": subj, "v": verb, "o": obj}
        return render("{t} {s} {v} {o}", "{t} {v:0} {s} {o} {v:1}", slots)
    de_verb = {"1s": ich, "1p": wir, "3s": er, "3p": sie}[person]
    verb = phrase(f"{third if person == '3s' else base}/v", f"{de_verb}/v")
    return render("{s} {v} {o}", "{s} {v} {o}", {"s": subj, "v": verb, "o": obj})


def t_there_are(rng: random.Random) -> Phrase:
    """There are five birds in the garden. -> Im Garten gibt es fünf Vögel."""
    place, possible, kinds = rng.choice(PLACES)
    noun = rng.choice([n for n in NOUNS if n.kind in kinds])
    n = _countable(rng)
    en = f"there/x {'is' if n == 1 else 'are'}/v {{o}} {{p}}"
    slots = {"o": counted(n, noun), "p": _pair(place, possible)}
    return render(en, "{p} gibt/v es/x {o}", slots)


def t_price(rng: random.Random) -> Phrase:
    """The book costs twelve euros. -> Das Buch kostet zwölf Euro."""
    noun = rng.choice([n for n in NOUNS if n.kind in "sb"])
    currency = Noun("euro", "euros", "Euro", "Euro", "m", "")
    if rng.random() < 0.3:
        currency = Noun("dollar", "dollars", "Dollar", "Dollar", "m", "")
    plural = rng.random() < 0.3
    thing = phrase(
        f"the/a {noun.en_pl if plural else noun.en_sg}/b cost{'' if plural else 's'}/v",
        f"{'die' if plural else ARTICLE[noun.gender]}/a {noun.de_pl if plural else noun.de_sg}/b"
        f" {'kosten' if plural else 'kostet'}/v",
    )
    return render("{t} {p}", "{t} {p}", {"t": thing, "p": counted(_countable(rng), currency)})


def t_arithmetic(rng: random.Random) -> Phrase:
    """Twelve plus thirty is forty-two. -> Zwölf plus dreißig ist zweiundvierzig."""
    op = rng.choice(["plus/o|plus/o", "times/o|mal/o", "minus/o|minus/o"])
    if op.startswith("times"):
        a, b = rng.randint(0, 99), rng.randint(0, 99)
        c = a * b
    else:
        a, b = sorted((_count(rng) % 1000, _count(rng) % 1000), reverse=op.startswith("minus"))
        c = a - b if op.startswith("minus") else a + b
    slots = {"a": number(a), "o": _pair(op), "b": number(b), "c": number(c)}
    return render("{a} {o} {b} is/v {c}", "{a} {o} {b} ist/v {c}", slots)


def _random_date(rng: random.Random, dative: bool) -> Phrase:
    day = datetime.date(rng.randint(1950, 2039), 1, 1) + datetime.timedelta(rng.randrange(365))
    form = rng.choices(["of", "md", "digits"], weights=[0.45, 0.3, 0.25])[0]
    show_year = rng.random() < 0.4
    weekday = day.weekday() if rng.random() < 0.25 else None
    year = day.year if show_year else None
    return date(day.day, day.month, form=form, dative=dative, year=year, weekday=weekday)


def _random_time(rng: random.Random, at: bool = True) -> Phrase:
    kind = rng.choices(
        ["oclock", "past", "to", "half", "digital", "midnight"],
        weights=[0.2, 0.25, 0.2, 0.2, 0.1, 0.05],
    )[0]
    if kind == "digital":
        return clock(kind, rng.randint(6, 23), rng.randrange(0, 60, 5), at=at)
    hour, minutes = rng.randint(1, 12), rng.choice([5, 10, 15, 20])
    fitting = [p for p, (_, hours) in PERIODS.items() if hour in hours]
    period = rng.choice(fitting) if kind != "midnight" and rng.random() < 0.35 else None
    return clock(kind, hour, minutes, period=period, at=at)


def t_date(rng: random.Random) -> Phrase:
    """The concert is on the third of March. / Today is Monday, the first of May."""
    kind = rng.choices(
        ["event", "today", "born", "arrive", "event_time"], weights=[0.35, 0.2, 0.2, 0.15, 0.1]
    )[0]
    if kind == "today":
        return render("today/t is/v {d}", "heute/t ist/v {d}", {"d": _random_date(rng, False)})
    if kind == "born":
        en, de, person = rng.choice([s for s in SUBJECTS if s[2] == "1s" or s[2] == "3s"])
        slots = {"s": phrase(en, de), "d": _random_date(rng, True)}
        aux = "bin" if person == "1s" else "ist"
        return render("{s} was/v born/b {d}", f"{{s}} {aux}/v {{d}} geboren/b", slots)
    if kind == "arrive":
        subj, person = _subject(rng)
        verb = {"1s": "komme", "1p": "kommen", "3s": "kommt", "3p": "kommen"}[person]
        en_verb = "arrives" if person == "3s" else "arrive"
        verb_phrase = phrase(f"{en_verb}/v", f"{verb}/v | an/v")
        slots = {"s": subj, "v": verb_phrase, "d": _random_date(rng, True)}
        return render("{s} {v} {d}", "{s} {v:0} {d} {v:1}", slots)
    past = rng.random() < 0.3
    en_v, de_v = ("was", "war") if past else ("is", "ist")
    slots = {"e": _pair(rng.choice(EVENTS)), "d": _random_date(rng, True)}
    if kind == "event_time":
        slots["t"] = _random_time(rng)
        return render(f"{{e}} {en_v}/v {{d}} {{t}}", f"{{e}} {de_v}/v {{d}} {{t}}", slots)
    return render(f"{{e}} {en_v}/v {{d}}", f"{{e}} {de_v}/v {{d}}", slots)


def t_time(rng: random.Random) -> Phrase:
    """The train leaves at quarter past seven. -> Der Zug fährt um Viertel nach sieben ab."""
    kind = rng.choice(["vehicle", "start", "meet", "get_up", "it_is", "shop"])
    if kind == "it_is":
        return render("it/x is/v {t}", "es/x ist/v {t}", {"t": _random_time(rng, at=False)})
    slots = {"t": _random_time(rng)}
    if kind == "vehicle":
        slots["v"] = _pair(rng.choice(VEHICLES))
        return render("{v} {t}", "{v:0} {t} {v:1}", slots)
    if kind in ("start", "shop"):
        subject = rng.choice(EVENTS[2:] if kind == "start" else SHOPS)  # not "my birthday"
        verb = rng.choice(
            ["starts/v|beginnt/v", "ends/v|endet/v"]
            if kind == "start"
            else ["opens/v|öffnet/v", "closes/v|schließt/v"]
        )
        slots |= {"e": _pair(subject), "v": _pair(verb)}
        return render("{e} {v} {t}", "{e} {v} {t}", slots)
    if kind == "meet":
        en, de, reflexive = rng.choice([("we", "wir", "uns"), ("they", "sie", "sich")])
        slots["s"] = phrase(f"{en}/s meet/v", f"{de}/s treffen/v {reflexive}/r", "v:r")
        return render("{s} {t}", "{s} {t}", slots)
    subj, person = _subject(rng)
    verb = {"1s": "stehe", "1p": "stehen", "3s": "steht", "3p": "stehen"}[person]
    en_verb = "gets" if person == "3s" else "get"
    slots |= {"s": subj, "v": phrase(f"{en_verb}/v up/u", f"{verb}/v | auf/u", "v:u u:v")}
    return render("{s} {v} {t}", "{s} {v:0} {t} {v:1}", slots)


TEMPLATES: list[tuple[Callable[[random.Random], Phrase], float]] = [
    (t_possession, 0.3),
    (t_there_are, 0.08),
    (t_price, 0.08),
    (t_arithmetic, 0.08),
    (t_date, 0.26),
    (t_time, 0.2),
]


def _sentence(tokens: list[str]) -> str:
    text = " ".join(tokens) + "."
    return text[0].upper() + text[1:]


def make_example(rng: random.Random) -> Example:
    """One random sentence pair with its alignment."""
    template = rng.choices([t for t, _ in TEMPLATES], weights=[w for _, w in TEMPLATES])[0]
    ph = template(rng)
    sure, possible = links(ph)
    return Example(
        _sentence(words(ph.en)), _sentence(words(ph.de)), frozenset(sure), frozenset(possible)
    )


def generate_examples(n: int, seed: int = 1) -> list[Example]:
    """n examples with pairwise different English sentences, deterministic by seed."""
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[Example] = []
    for _ in range(50 * n + 1000):
        if len(out) == n:
            break
        example = make_example(rng)
        if example.en not in seen:
            seen.add(example.en)
            out.append(example)
    if len(out) < n:
        raise ValueError(f"could only generate {len(out)} distinct sentences, {n} requested")
    return out


def _write(path: Path, lines: list[str]) -> None:
    write_atomic("".join(f"{line}\n" for line in lines), path)


def generate_demo(
    out_dir: str | os.PathLike[str] = "data/demo",
    seed: int = 1,
    n_train: int = 30_000,
    n_valid: int = 500,
    n_test: int = 500,
) -> dict[str, int]:
    """Write {train,valid,test}.{en,de,align} to out_dir; returns the number of pairs per split.

    valid and test are drawn first, then train, from one stream of distinct sentences.
    """
    sizes = {"valid": n_valid, "test": n_test, "train": n_train}
    if any(n < 1 for n in sizes.values()):
        raise ValueError(f"generate_demo: every split needs at least one sentence, got {sizes}")
    examples = generate_examples(sum(sizes.values()), seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = 0
    for split, n in sizes.items():
        part = examples[start : start + n]
        start += n
        _write(out / f"{split}.en", [e.en for e in part])
        _write(out / f"{split}.de", [e.de for e in part])
        _write(out / f"{split}.align", [e.alignment for e in part])
    logger.info("wrote the demo corpus to %s: %s", out, sizes)
    return {split: sizes[split] for split in SPLITS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m seq2seq.demo",
        description="Generate the English -> German demo corpus with gold word alignments.",
    )
    parser.add_argument("--out", default="data/demo", help="output directory (default: data/demo)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    parser.add_argument("--train", type=int, default=30_000, help="training pairs (default: 30000)")
    parser.add_argument("--valid", type=int, default=500, help="validation pairs (default: 500)")
    parser.add_argument("--test", type=int, default=500, help="test pairs (default: 500)")
    args = parser.parse_args(argv)
    sizes = generate_demo(args.out, args.seed, args.train, args.valid, args.test)
    for split in SPLITS:
        print(f"{args.out}/{split}.{{en,de,align}}: {sizes[split]} sentence pairs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
