"""The generated English -> German demo corpus: German grammar, alignments, splits, files."""

from __future__ import annotations

import re

import pytest

from seq2seq.data import read_lines
from seq2seq.data.pharaoh import parse_alignment, read_alignments
from seq2seq.demo.corpus import (
    NOUNS,
    counted,
    generate_demo,
    generate_examples,
    main,
)
from seq2seq.demo.grammar import (
    cardinal_de,
    cardinal_en,
    clock,
    date,
    links,
    ordinal_de,
    ordinal_en,
    render,
    words,
)

# An independent reading of number words, to check the generator's spelling both ways.
# fmt: off
UNITS_DE = dict(ein=1, zwei=2, drei=3, vier=4, fünf=5, sechs=6, sieben=7, acht=8, neun=9)
TEENS_DE = dict(zehn=10, elf=11, zwölf=12, dreizehn=13, vierzehn=14, fünfzehn=15, sechzehn=16,
                siebzehn=17, achtzehn=18, neunzehn=19)
TENS_DE = dict(zwanzig=20, dreißig=30, vierzig=40, fünfzig=50, sechzig=60, siebzig=70,
               achtzig=80, neunzig=90)
UNITS_EN = dict(one=1, two=2, three=3, four=4, five=5, six=6, seven=7, eight=8, nine=9, ten=10,
                eleven=11, twelve=12, thirteen=13, fourteen=14, fifteen=15, sixteen=16,
                seventeen=17, eighteen=18, nineteen=19)
TENS_EN = dict(twenty=20, thirty=30, forty=40, fifty=50, sixty=60, seventy=70, eighty=80,
               ninety=90)
# fmt: on


def read_de(word: str) -> int:
    """A German number word (0..9999) -> value; KeyError/ValueError when malformed."""
    if word == "null":
        return 0
    value = 0
    for unit, scale in (("tausend", 1000), ("hundert", 100)):
        if unit in word:
            head, word = word.split(unit)
            value += scale * UNITS_DE[head]  # "eins" is not allowed before tausend/hundert
    if word:
        if word == "eins":
            value += 1
        elif word in TEENS_DE or word in TENS_DE:
            value += TEENS_DE.get(word, 0) + TENS_DE.get(word, 0)
        elif "und" in word:
            unit, tens = word.split("und")
            value += UNITS_DE[unit] + TENS_DE[tens]
        elif word == "ein":
            raise ValueError("'ein' only inside a compound")
        else:
            value += UNITS_DE[word]
    return value


def read_en(tokens: list[str]) -> int:
    value = current = 0
    for token in tokens:
        if token == "thousand":
            value, current = value + current * 1000, 0
        elif token == "hundred":
            current *= 100
        elif token != "and":
            tens, _, unit = token.partition("-")
            current += TENS_EN.get(tens, 0) + UNITS_EN.get(tens, 0) + UNITS_EN.get(unit, 0)
            if tens not in TENS_EN and tens not in UNITS_EN and tens != "zero":
                raise ValueError(token)
    return value + current


def is_cardinal(token: str) -> bool:
    tens, dash, unit = token.partition("-")
    if dash:
        return tens in TENS_EN and unit in UNITS_EN and UNITS_EN[unit] < 10
    return token in UNITS_EN or token in TENS_EN or token in ("zero", "hundred", "thousand")


def test_numbers_hand_checked():
    assert cardinal_de(23) == "dreiundzwanzig" and cardinal_en(23) == ["twenty-three"]
    assert cardinal_en(345) == ["three", "hundred", "and", "forty-five"]
    assert cardinal_de(345) == "dreihundertfünfundvierzig"
    expected = {
        0: "null",
        1: "eins",
        16: "sechzehn",
        17: "siebzehn",
        21: "einundzwanzig",
        30: "dreißig",
        60: "sechzig",
        70: "siebzig",
        77: "siebenundsiebzig",
        101: "einhunderteins",
        1000: "eintausend",
        1021: "eintausendeinundzwanzig",
        2345: "zweitausenddreihundertfünfundvierzig",
        9999: "neuntausendneunhundertneunundneunzig",
    }
    assert {n: cardinal_de(n) for n in expected} == expected
    assert cardinal_en(1005) == ["one", "thousand", "and", "five"]
    assert cardinal_en(1100) == ["one", "thousand", "one", "hundred"]


def test_all_numbers_read_back_in_both_languages():
    seen = set()
    for n in range(10_000):
        word = cardinal_de(n)
        assert read_de(word) == n, word
        assert read_en(cardinal_en(n)) == n, cardinal_en(n)
        seen.add(word)
    assert len(seen) == 10_000


def test_ordinals_hand_checked():
    assert [ordinal_en(n) for n in (1, 2, 3, 8, 12, 20, 21, 23, 30, 31)] == [
        "first",
        "second",
        "third",
        "eighth",
        "twelfth",
        "twentieth",
        "twenty-first",
        "twenty-third",
        "thirtieth",
        "thirty-first",
    ]
    assert [ordinal_de(n, "e") for n in (1, 3, 7, 8, 16, 19, 20, 21)] == [
        "erste",
        "dritte",
        "siebte",
        "achte",
        "sechzehnte",
        "neunzehnte",
        "zwanzigste",
        "einundzwanzigste",
    ]
    assert ordinal_de(3, "en") == "dritten" and ordinal_de(31, "en") == "einunddreißigsten"


def de_words(phrase):
    return " ".join(words(phrase.de))


def test_times_hand_checked():
    assert de_words(clock("half", 8)) == "um halb neun"
    assert de_words(clock("half", 12, at=False)) == "halb eins"
    assert de_words(clock("past", 7, 15, period="in/i the/t evening/p")) == (
        "um Viertel nach sieben am Abend"
    )
    assert de_words(clock("to", 1, 15)) == "um Viertel vor eins"
    assert de_words(clock("oclock", 1)) == "um ein Uhr"
    assert de_words(clock("past", 1, 10)) == "um zehn nach eins"
    assert de_words(clock("digital", 19, 45)) == "um 19:45 Uhr"
    assert " ".join(words(clock("to", 6, 20).en)) == "at twenty to six"


def test_dates_hand_checked():
    assert de_words(date(3, 3, form="of", dative=True)) == "am dritten März"
    assert " ".join(words(date(3, 3, form="of", dative=True).en)) == "on the third of March"
    assert de_words(date(3, 3, form="of", dative=False, year=2021)) == "der dritte März 2021"
    assert de_words(date(3, 3, form="digits", dative=True, year=2021)) == "am 3. März 2021"
    assert " ".join(words(date(3, 3, form="digits", dative=True, year=2021).en)) == (
        "on March 3, 2021"
    )
    assert de_words(date(1, 5, form="md", dative=True, weekday=0)) == "am Montag, dem ersten Mai"
    assert de_words(date(1, 5, form="md", dative=False, weekday=0)) == "Montag, der erste Mai"


def test_counted_nouns_inflect_ein():
    cat, dog, book = (next(n for n in NOUNS if n.en_sg == w) for w in ("cat", "dog", "book"))
    assert de_words(counted(1, cat)) == "eine Katze"
    assert de_words(counted(1, dog)) == "einen Hund"
    assert de_words(counted(1, book)) == "ein Buch"
    assert de_words(counted(21, cat)) == "einundzwanzig Katzen"
    assert " ".join(words(counted(3, book).en)) == "three books"


def test_sentence_alignment_hand_checked():
    ph = render("it/x is/v {t}", "es/x ist/v {t}", {"t": clock("half", 8, at=False)})
    assert words(ph.en) == ["it", "is", "half", "past", "eight"]
    assert words(ph.de) == ["es", "ist", "halb", "neun"]
    assert links(ph) == ({(0, 0), (1, 1), (2, 2), (4, 3)}, {(3, 2)})
    # a participle moved to the end: bought -> habe ... gekauft
    from seq2seq.demo.grammar import phrase

    slots = {
        "t": phrase("yesterday/t", "gestern/t"),
        "s": phrase("I/s", "ich/s"),
        "v": phrase("bought/v", "habe/v | gekauft/v"),
        "o": counted(23, NOUNS[5]),
    }
    ph = render("{t} {s} {v} {o}", "{t} {v:0} {s} {o} {v:1}", slots)
    assert " ".join(words(ph.de)) == "gestern habe ich dreiundzwanzig Bücher gekauft"
    assert links(ph)[0] == {(0, 0), (1, 2), (2, 1), (2, 5), (3, 3), (4, 4)}


@pytest.fixture(scope="module")
def examples():
    return generate_examples(3000, seed=2)


def test_number_words_align_to_the_same_number(examples):
    """Every English number (value >= 2, not the hour of "half past") links to one German word
    that reads back as the same number: alignment and spelling checked together."""
    checked = 0
    for ex in examples:
        en = [w.strip(".,").lower() for w in ex.en.split()]
        de = [w.strip(".,") for w in ex.de.split()]
        i = 0
        while i < len(en):
            j = i
            while j < len(en) and (is_cardinal(en[j]) or (en[j] == "and" and j > i)):
                j += 1
            if j == i:
                i += 1
                continue
            value = read_en(en[i:j])
            targets = {t for s, t in ex.sure if i <= s < j}
            if value >= 2 and en[i - 2 : i] != ["half", "past"]:
                assert len(targets) == 1, (ex.en, ex.de, i, j)
                assert read_de(de[targets.pop()].lower()) == value, (ex.en, ex.de)
                checked += 1
            i = j
    assert checked > 1000


def test_generated_german_is_well_formed(examples):
    for ex in examples:
        assert ex.en[0].isupper() and ex.de[0].isupper(), ex
        assert ex.en.endswith(".") and ex.de.endswith("."), ex
        assert "  " not in ex.de and " eins Uhr" not in ex.de, ex
        assert not re.search(r"\beins [A-ZÄÖÜ]", ex.de), ex  # "eins Katzen"
        if "half past" in ex.en:
            assert "halb" in ex.de.split()
    assert len({ex.en for ex in examples}) == len(examples)


def test_alignments_stay_within_the_sentences(examples):
    for ex in examples:
        n_en, n_de = len(ex.en.split()), len(ex.de.split())
        sure, possible = parse_alignment(ex.alignment)
        assert sure == set(ex.sure) and possible == set(ex.sure) | set(ex.possible)
        assert sure, ex
        assert all(0 <= i < n_en and 0 <= j < n_de for i, j in possible), ex


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    sizes = generate_demo(out, seed=1, n_train=400, n_valid=60, n_test=50)
    assert sizes == {"train": 400, "valid": 60, "test": 50}
    return out


def test_files_splits_and_determinism(demo_dir, tmp_path):
    names = sorted(p.name for p in demo_dir.iterdir())
    assert names == sorted(
        f"{s}.{x}" for s in ("train", "valid", "test") for x in ("en", "de", "align")
    )
    splits = {s: read_lines(demo_dir / f"{s}.en") for s in ("train", "valid", "test")}
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [400, 60, 50]
    assert not set(splits["train"]) & set(splits["valid"])
    assert not set(splits["train"]) & set(splits["test"])
    assert not set(splits["valid"]) & set(splits["test"])
    for split in ("train", "valid", "test"):
        de = read_lines(demo_dir / f"{split}.de")
        gold = read_alignments(demo_dir / f"{split}.align")
        assert len(de) == len(gold) == len(splits[split])
    generate_demo(tmp_path / "again", seed=1, n_train=400, n_valid=60, n_test=50)
    for name in names:
        assert (tmp_path / "again" / name).read_bytes() == (demo_dir / name).read_bytes()
    generate_demo(tmp_path / "other", seed=2, n_train=400, n_valid=60, n_test=50)
    assert (tmp_path / "other" / "train.en").read_bytes() != (demo_dir / "train.en").read_bytes()


def test_command_line(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "d"), "--train", "30", "--valid", "5", "--test", "5"]) == 0
    assert "30 sentence pairs" in capsys.readouterr().out
    assert len(read_lines(tmp_path / "d" / "train.de")) == 30
    with pytest.raises(ValueError, match="at least one"):
        generate_demo(tmp_path / "e", n_train=10, n_valid=0, n_test=5)
