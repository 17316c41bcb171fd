#!/usr/bin/env bash
# Pack a results folder for the trip back from the GPU machine, which returns at most 8 files
# of at most 16 MiB each: one gzipped tar, split into 15 MiB parts named NAME.tgz.aa, .ab, ...
# Usage (on the GPU machine): bash bench/h200/pack.sh DIR "$OUT" [NAME]
# Unpack here:                cat NAME.tgz.* | tar -xz
set -euo pipefail
DIR=${1:?usage: pack.sh DIR OUTDIR [NAME]}
DEST=${2:?usage: pack.sh DIR OUTDIR [NAME]}
NAME=${3:-$(basename "$DIR")}
mkdir -p "$DEST"
tar -C "$(dirname "$DIR")" -cz "$(basename "$DIR")" | split -b 15M - "$DEST/$NAME.tgz."
n=$(ls "$DEST/$NAME".tgz.* | wc -l)
[ "$n" -le 8 ] || echo "warning: $n parts; the device tool returns 8 files at most" >&2
ls -l "$DEST/$NAME".tgz.*
