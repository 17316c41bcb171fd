#!/usr/bin/env bash
# On the GPU machine: collect the chunks made by extra_split.sh from the carried folders
# given, and rebuild every file whose chunks have all arrived as /tmp/extra/NAME (checked
# against its sha256). Chunks wait in /tmp/extra/parts between calls (same warm machine).
# Usage (there): bash bench/h200/extra_stage.sh DIR [DIR ...]
set -euo pipefail
P=/tmp/extra/parts
mkdir -p "$P"
for d in "$@"; do
  [ -d "$d" ] && find "$d" -maxdepth 1 -type f \( -name '*.part-*' -o -name '*.manifest' \) -exec cp {} "$P/" \;
done
for m in "$P"/*.manifest; do
  [ -e "$m" ] || continue
  name=$(basename "$m" .manifest)
  read -r need sha <"$m"
  [ -s "/tmp/extra/$name" ] && { echo "extra: $name ready"; continue; }
  have=$(find "$P" -maxdepth 1 -name "$name.part-*" | wc -l)
  if [ "$have" -lt "$need" ]; then echo "extra: $name $have of $need chunks"; continue; fi
  cat "$P/$name".part-* >"/tmp/extra/$name.tmp"
  got=$(sha256sum "/tmp/extra/$name.tmp" | cut -d' ' -f1)
  [ "$got" = "$sha" ] || { echo "extra: $name sha256 mismatch ($got != $sha)"; rm -f "/tmp/extra/$name.tmp"; exit 1; }
  mv "/tmp/extra/$name.tmp" "/tmp/extra/$name" && rm -f "$P/$name".part-*
  echo "extra: $name ready ($(du -h "/tmp/extra/$name" | cut -f1))"
done
