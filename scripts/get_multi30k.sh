#!/usr/bin/env bash
# Fetch the Multi30k task-1 corpus (Elliott et al. 2016, arXiv:1605.00459): train, val and
# test_2016_flickr in English, German, French and Czech, gzip-compressed, into data/multi30k/.
#
#   scripts/get_multi30k.sh                  download from github.com/multi30k/dataset
#   scripts/get_multi30k.sh --from DIR       copy from a local folder holding the same .gz files
#   scripts/get_multi30k.sh --out DIR ...    write somewhere else (default: <repo>/data/multi30k)
#
# Every file is checked against its SHA-256 checksum below, whichever way it arrives; a mismatch
# stops the script with an error and leaves no bad file behind. Files already present with the
# right checksum are kept, so running the script again does nothing.
set -euo pipefail

BASE_URL="https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$REPO_ROOT/data/multi30k"
FROM=""

CHECKSUMS="
d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f  train.en.gz
726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6  train.de.gz
622e75069e9f4c577425c4f277116ce66e63a2401c0a2312d90073cb12379a3c  train.fr.gz
a65adb8b32e3bc664f21ecba7a6e7f6950fd1f405e135f7c312faabdb6255077  train.cs.gz
14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28  val.en.gz
f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a  val.de.gz
ca3106f1a72390591d25f6c45cb4cd39dec4cd3f123e099748a3ce5256c160e9  val.fr.gz
b63226e05c4bd5dd6a42897d74b86a1b9d2c31498252c572b1ea7f7996927fcc  val.cs.gz
611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9  test_2016_flickr.en.gz
9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8  test_2016_flickr.de.gz
6d326e188d259fb1d04ac19eae3af956559b3a0b93d7635e56c90987c40c8b90  test_2016_flickr.fr.gz
200a4a74cc9560f051924abb9803be008d1908d77f747e9141aeb86dfd2797f1  test_2016_flickr.cs.gz
"

usage() {
    sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

die() {
    echo "get_multi30k.sh: error: $*" >&2
    exit 1
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --from) [[ $# -ge 2 ]] || die "--from needs a directory"; FROM="$2"; shift 2 ;;
        --out) [[ $# -ge 2 ]] || die "--out needs a directory"; OUT="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$1'; expected --from DIR, --out DIR or --help" ;;
    esac
done

sha256() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    elif command -v shasum >/dev/null 2>&1; then
        shasum -a 256 "$1" | cut -d' ' -f1
    else
        die "neither sha256sum nor shasum is installed; cannot verify checksums"
    fi
}

fetch() {  # fetch NAME DEST: copy from --from or download
    local name="$1" dest="$2"
    if [[ -n "$FROM" ]]; then
        [[ -f "$FROM/$name" ]] || die "$FROM/$name: file not found (expected the Multi30k task-1 .gz files in $FROM)"
        cp "$FROM/$name" "$dest"
    elif command -v curl >/dev/null 2>&1; then
        curl -fsSL --retry 3 -o "$dest" "$BASE_URL/$name" \
            || die "download of $BASE_URL/$name failed (no network? use --from DIR)"
    elif command -v wget >/dev/null 2>&1; then
        wget -q -O "$dest" "$BASE_URL/$name" \
            || die "download of $BASE_URL/$name failed (no network? use --from DIR)"
    else
        die "neither curl nor wget is installed; download the files by hand and use --from DIR"
    fi
}

if [[ -n "$FROM" ]]; then
    [[ -d "$FROM" ]] || die "--from $FROM: not a directory"
fi
mkdir -p "$OUT"
source_desc="${FROM:-$BASE_URL}"
kept=0
fetched=0
while read -r expected name; do
    [[ -n "$name" ]] || continue
    target="$OUT/$name"
    if [[ -f "$target" && "$(sha256 "$target")" == "$expected" ]]; then
        kept=$((kept + 1))
        continue
    fi
    tmp="$(mktemp "$OUT/.$name.XXXXXX")"
    trap 'rm -f "$tmp"' EXIT
    fetch "$name" "$tmp"
    actual="$(sha256 "$tmp")"
    if [[ "$actual" != "$expected" ]]; then
        rm -f "$tmp"
        die "checksum mismatch for $name from $source_desc: expected sha256 $expected, got $actual"
    fi
    chmod 644 "$tmp"
    mv -f "$tmp" "$target"
    trap - EXIT
    fetched=$((fetched + 1))
done <<< "$CHECKSUMS"

echo "Multi30k task 1 in $OUT: $fetched file(s) fetched from $source_desc, $kept already present; all 12 checksums verified."
