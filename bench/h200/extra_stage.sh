#!/usr/bin/env bash
# On the GPU machine: collect the chunks made by carry_plan.py from the carried folders
# given, and rebuild every file whose chunks have all arrived as $EXTRA_DIR/NAME (default
# /tmp/extra; checked against its sha256). Chunks wait in $EXTRA_DIR/parts between calls
# (same warm machine).
# Usage (there): bash bench/h200/extra_stage.sh DIR [DIR ...]
set -euo pipefail
X=${EXTRA_DIR:-/tmp/extra}
P=$X/parts
mkdir -p "$P"
for d in "$@"; do
  [ -d "$d" ] && find "$d" -maxdepth 1 -type f \( -name '*.part-*' -o -name '*.manifest' \) -exec cp {} "$P/" \;
done
for m in "$P"/*.manifest; do
  [ -e "$m" ] || continue
  name=$(basename "$m" .manifest)
  read -r need sha <"$m"
  [ -s "$X/$name" ] && { echo "extra: $name ready"; continue; }
  have=$(find "$P" -maxdepth 1 -name "$name.part-*" | wc -l)
  if [ "$have" -lt "$need" ]; then echo "extra: $name $have of $need chunks"; continue; fi
  cat "$P/$name".part-* >"$X/$name.tmp"
  got=$(sha256sum "$X/$name.tmp" | cut -d' ' -f1)
  [ "$got" = "$sha" ] || { echo "extra: $name sha256 mismatch ($got != $sha)"; rm -f "$X/$name.tmp"; exit 1; }
  mv "$X/$name.tmp" "$X/$name" && rm -f "$P/$name".part-*
  echo "extra: $name ready ($(du -h "$X/$name" | cut -f1))"
done
