#!/usr/bin/env bash
# Split a large file for the trip TO the GPU machine, whose calls carry at most 64 MiB of
# working tree: NAME.part-K chunks of CHUNK_MB each plus NAME.manifest (chunk count and
# sha256). Spread the chunks over the carry folders of several calls (git-excluded, e.g.
# .gpuwork/cN/) and run bench/h200/extra_stage.sh in each of those calls.
# Usage (here): bash bench/h200/extra_split.sh NAME FILE CHUNK_MB OUTDIR
set -euo pipefail
NAME=${1:?usage: extra_split.sh NAME FILE CHUNK_MB OUTDIR}
FILE=${2:?}; MB=${3:?}; DEST=${4:?}
mkdir -p "$DEST"
split -d -a 2 -b "${MB}M" "$FILE" "$DEST/$NAME.part-"
n=$(ls "$DEST/$NAME".part-* | wc -l)
echo "$n $(sha256sum "$FILE" | cut -d' ' -f1)" >"$DEST/$NAME.manifest"
ls -l "$DEST/$NAME".part-* "$DEST/$NAME.manifest"
