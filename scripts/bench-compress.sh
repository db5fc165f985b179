#!/usr/bin/env bash
# Benchmarks `imctl compress` against gzip on ~100 MB of chat-like text, and runs the
# permessage-deflate study on ~20k chat messages.
#
# usage: scripts/bench-compress.sh [IMCTL] [SIZE_MB] [WORKDIR]
#   IMCTL    the binary to test (default: .build/release/imctl; build with `swift build -c release`)
#   SIZE_MB  size of the generated text (default 100)
#   WORKDIR  where the data goes (default: a temporary directory, removed at exit)
# Uses hyperfine when installed, else 5 interleaved runs each and the median. Needs python3 for the
# data; compares with pigz when it is installed (apt-get install pigz).
set -euo pipefail

IMCTL=${1:-.build/release/imctl}
SIZE_MB=${2:-100}
WORKDIR=${3:-}
RUNS=5
if [[ -z "$WORKDIR" ]]; then
    WORKDIR=$(mktemp -d)
    trap 'rm -rf "$WORKDIR"' EXIT
fi
[[ -x "$IMCTL" ]] || { echo "bench-compress: $IMCTL is not executable (swift build -c release?)" >&2; exit 1; }

TEXT="$WORKDIR/chat.txt"
JSONL="$WORKDIR/chat.jsonl"

# Chat-like text: usernames, short sentences, numbers, URLs and emoji from a seeded PRNG, so every
# run measures the same bytes.
python3 - "$TEXT" "$JSONL" "$SIZE_MB" <<'PY'
import json, random, sys
text_path, jsonl_path, size_mb = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(7700)
users = [f"{n}{rng.randint(1, 99) if rng.random() < .3 else ''}" for n in
         "alice bob carol dave erin frank grace heidi ivan judy mallory niaj olivia peggy rupert sybil trent victor walter".split()]
words = ("the a is to and of it in on at for with you we i this that ok yes no thanks please deploy build "
         "failed passed merged review PR branch main server latency restart lunch noon meeting tomorrow today "
         "standup ticket bug fix ship release rollback logs error timeout cache database query index looks good "
         "me can could should will just now later again done check see sure np lol haha nice great").split()
emoji = ["👍", "🎉", "😂", "🚀", "🔥", "❤️", "🙏", "👀", "✅", "😅"]
hosts = ["https://github.com/acme/", "https://docs.example.com/", "https://grafana.acme.io/d/", "https://jira.acme.io/browse/"]
rooms = ["general", "dev", "ops", "random", "release"]

def message():
    parts = []
    if rng.random() < .3:
        parts.append("@" + rng.choice(users))
    parts += [rng.choice(words) for _ in range(rng.randint(1, 14))]
    r = rng.random()
    if r < .12:
        parts.append(rng.choice(hosts) + f"{rng.choice(['api', 'web', 'infra'])}/{rng.randint(1, 20000)}")
    elif r < .3:
        parts.append(rng.choice(emoji))
    s = " ".join(parts)
    return s[0].upper() + s[1:] if rng.random() < .5 else s

target = size_mb * 1_000_000
with open(text_path, "w", encoding="utf-8") as out:
    written, t = 0, 1_700_000_000
    while written < target:
        lines = []
        for _ in range(10000):
            t += rng.randint(0, 30)
            lines.append(f"{t} <{rng.choice(users)}> {message()}\n")
        chunk = "".join(lines)
        out.write(chunk)
        written += len(chunk.encode())
with open(jsonl_path, "w", encoding="utf-8") as out:
    for i in range(20000):
        out.write(json.dumps({"id": i + 1, "room": rng.choice(rooms), "from": rng.choice(users),
                              "body": message()}, ensure_ascii=False) + "\n")
PY

bytes=$(wc -c < "$TEXT")
echo "## machine"
echo "- $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "- $(gzip --version | head -1), zlib $(python3 -c 'import zlib; print(zlib.ZLIB_RUNTIME_VERSION)')"
echo "- input: $bytes bytes of chat-like text; $(wc -l < "$JSONL") JSON chat messages"
echo

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2)}'; }
time_runs() { # command... ; prints the median wall time of $RUNS runs in seconds
    local times=()
    for _ in $(seq "$RUNS"); do
        local start end
        start=$(date +%s.%N)
        "$@" > /dev/null
        end=$(date +%s.%N)
        times+=("$(echo "$end - $start" | bc -l)")
    done
    printf '%s\n' "${times[@]}" | median
}

echo "## pipe mode: imctl compress -c -6 vs gzip -6 ($RUNS runs each)"
if command -v hyperfine > /dev/null; then
    hyperfine --warmup 1 --runs "$RUNS" --style basic --export-markdown "$WORKDIR/hyperfine.md" \
        --command-name "imctl compress -c -6" "$IMCTL compress -c -6 < $TEXT > /dev/null" \
        --command-name "gzip -6" "gzip -6 -c < $TEXT > /dev/null" \
        --command-name "imctl compress -d" "$IMCTL compress -d < $WORKDIR/imctl.gz > /dev/null" \
        --command-name "gzip -d" "gzip -d -c < $WORKDIR/gzip.gz > /dev/null" \
        --prepare "test -f $WORKDIR/imctl.gz || $IMCTL compress -c -6 < $TEXT > $WORKDIR/imctl.gz; test -f $WORKDIR/gzip.gz || gzip -6 -c < $TEXT > $WORKDIR/gzip.gz" \
        >&2
    cat "$WORKDIR/hyperfine.md"
else
    "$IMCTL" compress -c -6 < "$TEXT" > "$WORKDIR/imctl.gz"
    gzip -6 -c < "$TEXT" > "$WORKDIR/gzip.gz"
    # Interleaved, so that the shared machine's noise falls on every command alike.
    declare -A runs
    names=("imctl compress -c -6" "imctl compress -c -6 -p 1" "gzip -6" "pigz -6" "imctl compress -d" "gzip -d" "pigz -d")
    commands=("'$IMCTL' compress -c -6 < '$TEXT'" "'$IMCTL' compress -c -6 -p 1 < '$TEXT'" "gzip -6 -c < '$TEXT'"
              "pigz -6 -c < '$TEXT'" "'$IMCTL' compress -d < '$WORKDIR/imctl.gz'" "gzip -d -c < '$WORKDIR/gzip.gz'"
              "pigz -d -c < '$WORKDIR/gzip.gz'")
    for _ in $(seq "$RUNS"); do
        for i in "${!names[@]}"; do
            [[ "${names[$i]}" == pigz* ]] && ! command -v pigz > /dev/null && continue
            start=$(date +%s.%N)
            sh -c "${commands[$i]}" > /dev/null
            end=$(date +%s.%N)
            runs[$i]+="$(echo "$end - $start" | bc -l) "
        done
    done
    declare -A med
    echo "| command | median s |"
    echo "|---|---|"
    for i in "${!names[@]}"; do
        [[ -z "${runs[$i]:-}" ]] && continue
        med[$i]=$(printf '%s\n' ${runs[$i]} | median)
        echo "| ${names[$i]} | ${med[$i]} |"
    done
    echo
    echo "time ratio imctl/gzip (compress): $(echo "${med[0]} / ${med[2]}" | bc -l | cut -c1-5)"
    [[ -n "${med[3]:-}" ]] && echo "time ratio imctl/pigz (compress): $(echo "${med[0]} / ${med[3]}" | bc -l | cut -c1-5)"
    echo "time ratio imctl/gzip (decompress): $(echo "${med[4]} / ${med[5]}" | bc -l | cut -c1-5)"
fi
echo
imctl_size=$(wc -c < "$WORKDIR/imctl.gz")
gzip_size=$(wc -c < "$WORKDIR/gzip.gz")
echo "output bytes: imctl $imctl_size, gzip $gzip_size, ratio imctl/gzip $(echo "$imctl_size / $gzip_size" | bc -l | cut -c1-6)"
if command -v pigz > /dev/null; then
    pigz_size=$(pigz -6 -c < "$TEXT" | wc -c)
    echo "output bytes: pigz $pigz_size, ratio pigz/gzip $(echo "$pigz_size / $gzip_size" | bc -l | cut -c1-6)"
fi
gzip -d -c < "$WORKDIR/imctl.gz" | cmp -s - "$TEXT" && echo "gzip -d reads imctl's output back exactly: yes"
"$IMCTL" compress -d < "$WORKDIR/gzip.gz" | cmp -s - "$TEXT" && echo "imctl compress -d reads gzip's output back exactly: yes"
peak=$( { /usr/bin/time -f %M "$IMCTL" compress -c -6 < "$TEXT" > /dev/null; } 2>&1 | tail -1 )
echo "peak RSS of imctl compress -c -6: $peak KiB"
echo

echo "## measurement mode: imctl compress --levels 1,6,9 (whole file in memory, median of ≥3 runs)"
echo '```'
"$IMCTL" compress --levels 1,6,9 "$TEXT"
echo '```'
echo

echo "## message study: imctl compress --messages --train ($(wc -l < "$JSONL") messages)"
echo '```'
"$IMCTL" compress --messages --train --train-out "$WORKDIR/chat.dict" "$JSONL" 2>&1
echo '```'
for bits in 12 10; do
    echo
    echo "### --window-bits $bits, same dictionary"
    echo '```'
    "$IMCTL" compress --messages --dict "$WORKDIR/chat.dict" --window-bits "$bits" "$JSONL" | sed -n '1,7p'
    echo '```'
done
