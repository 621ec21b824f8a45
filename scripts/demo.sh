#!/usr/bin/env bash
# The download-free demo, end to end: install, generate the English -> German demo corpus,
# train a small Transformer (at most 5 minutes on 2 CPU cores), evaluate it on the test split,
# translate a few sentences, and draw their attention.
#
#   bash scripts/demo.sh                      # everything, run directory runs/demo
#   bash scripts/demo.sh --set train.max_steps=50 --overwrite   # extra arguments go to `train`
#
# Environment: RUN_DIR (default runs/demo), SKIP_INSTALL=1 to use the installed package as is.
set -euo pipefail
cd "$(dirname "$0")/.."

RUN_DIR=${RUN_DIR:-runs/demo}
if [ "${SKIP_INSTALL:-0}" != 1 ]; then
    bash scripts/setup.sh > /dev/null
fi

echo "== 1/5 generate the demo corpus (data/demo)"
python -m seq2seq.demo --out data/demo --seed 1

echo "== 2/5 train ($RUN_DIR)"
python -m seq2seq train configs/demo.yaml --run-dir "$RUN_DIR" --quiet "$@"

echo "== 3/5 evaluate on the test split"
python -m seq2seq evaluate "$RUN_DIR" --src data/demo/test.en --ref data/demo/test.de \
    --gold-alignments data/demo/test.align --hyp-out "$RUN_DIR/test.hyp"

echo "== 4/5 translate"
printf '%s\n' "I have twenty-three cats." "The train leaves at half past eight in the evening." \
    | python -m seq2seq translate "$RUN_DIR" --alignments "$RUN_DIR/examples.align"

echo "== 5/5 plot attention"
python -m seq2seq plot "$RUN_DIR" --src "I have twenty-three cats." --words \
    --out "$RUN_DIR/attention.png"
python -m seq2seq plot "$RUN_DIR" --src "I have twenty-three cats." \
    --layer all --head all --out "$RUN_DIR/attention_grid.png"
head -n 20 data/demo/test.en > "$RUN_DIR/examples.en"
python -m seq2seq plot "$RUN_DIR" --input "$RUN_DIR/examples.en" --out "$RUN_DIR/attention.html"
echo "done: see $RUN_DIR (attention.png, attention_grid.png, attention.html, curves.png)"
