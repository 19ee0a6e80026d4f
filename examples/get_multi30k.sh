#!/usr/bin/env bash
# Download Multi30k task 1 (German/English image captions, Elliott et al., 2016) from its public
# repository, https://github.com/multi30k/dataset, and unpack it as plain text:
#   FOLDER/train.{de,en}  29,000 pairs      FOLDER/val.{de,en}  1,014 pairs
#   FOLDER/test_2016_flickr.{de,en}  1,000   FOLDER/test_2017_flickr.{de,en}  1,000
# Usage: bash examples/get_multi30k.sh [FOLDER=data/multi30k]
# then:  export MULTI30K_DIR=FOLDER   (examples/multi30k.sh and `make bench-quality` read it)
# Needs curl or wget and a network connection; about 2 MB to download. MULTI30K_URL overrides
# where the files come from (a mirror holding the same .gz files).
set -euo pipefail
OUT=${1:-data/multi30k}
URL=${MULTI30K_URL:-https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw}
mkdir -p "$OUT"
fetch() {  # fetch URL FILE
  if command -v curl >/dev/null; then curl -fsSL --retry 2 -o "$2" "$1"
  elif command -v wget >/dev/null; then wget -q -O "$2" "$1"
  else echo "get_multi30k.sh: needs curl or wget" >&2; exit 2
  fi
}
for split in train val test_2016_flickr test_2017_flickr; do
  for lang in de en; do
    file="$OUT/$split.$lang"
    [ -s "$file" ] && continue  # already there
    fetch "$URL/$split.$lang.gz" "$file.gz.part" || {
      echo "get_multi30k.sh: cannot download $URL/$split.$lang.gz (offline?)" >&2
      rm -f "$file.gz.part"; exit 1
    }
    gzip -dc "$file.gz.part" > "$file.part" && mv "$file.part" "$file" && rm -f "$file.gz.part"
  done
done
wc -l "$OUT"/*.de "$OUT"/*.en
echo "Multi30k is in $OUT: export MULTI30K_DIR=$OUT"
