"""``python -m seq2seq``: the same entry point as the ``seq2seq`` console script."""

from seq2seq.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
