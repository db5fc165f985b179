#!/usr/bin/env bash
# Fuzzes the client frame decoder with libFuzzer (swiftc -sanitize=fuzzer): the fast path and
# Foundation's decoder must agree on every input. New finds are added to the kept corpus
# Fuzz/corpus/frames (commit the interesting ones; a crash leaves crash-* here to replay).
#
# usage: scripts/fuzz-frames.sh [SECONDS]      (default 60)
#        scripts/fuzz-frames.sh replay FILE    reruns one input
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${TMPDIR:-/tmp}/imctl-fuzz
mkdir -p "$OUT"
swiftc -sanitize=fuzzer,address -parse-as-library -O -module-name IMWire \
    Sources/IMWire/*.swift Fuzz/FrameFuzzer.swift -o "$OUT/frame-fuzzer"
if [[ "${1:-}" == replay ]]; then
    exec "$OUT/frame-fuzzer" "$2"
fi
"$OUT/frame-fuzzer" -max_total_time="${1:-60}" -max_len=512 -dict=Fuzz/frames.dict Fuzz/corpus/frames
