"""``python -m seq2seq.demo``: write the demo corpus (see :mod:`seq2seq.demo.corpus`)."""

from seq2seq.demo.corpus import main

raise SystemExit(main())
