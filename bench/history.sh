#!/usr/bin/env bash
# bench/history.sh — every benchmark run recorded under bench/results/, one
# table row each: date, commit, options, the raw pipeline's malloc (glibc's
# defaults until 2026-12-04 11:28, resized's since), and the ratios issue 6 sets targets
# for (service ÷ raw through JSON and raw bytes, resized ÷ the original, the
# POST p99 and peak RSS ratios), plus the original stack's own images/s
# (its setup changed over time). Runs without the original show "-" there.
#
#   bench/history.sh                 # all runs, oldest first
#   bench/history.sh 2026-12-03      # runs whose date starts so
#
# Reads the sections bench/run.sh appends ("## Run <date>"); prints Markdown.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
prefix=${1:-}
shopt -s nullglob
files=("$here"/results/runs-*.md)
((${#files[@]})) || { echo "no runs recorded under $here/results" >&2; exit 1; }

echo "| run (UTC) | commit | options | raw pipeline's malloc | JSON ÷ raw | bytes ÷ raw | × original (JSON / bytes) | original images/s | POST p99 ÷ original | peak RSS ÷ original |"
echo "|---|---|---|---|---|---|---|---|---|---|"
awk -v prefix="$prefix" '
  function flush() {
    if (date != "" && index(date, prefix) == 1)
      printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", date, commit, opts, malloc, j, b, x, orig, p, r
    date = ""
  }
  # Until 2026-12-04 11:28 the raw pipeline ran with the glibc malloc
  # defaults; since, with the resized settings (the old one printed beside).
  function reset() { commit = opts = j = b = xj = xb = x = orig = p = r = "-"; malloc = "glibc" }
  /^## Run / { flush(); reset(); date = substr($0, 8); sub(/ UTC$/, "", date); next }
  date == "" { next }
  /^- resized / { commit = $3; sub(/,$/, "", commit); if ($0 ~ /uncommitted/) commit = commit "+" }
  /^- command: / {
    o = $0; sub(/^- command: `bench\/run.sh */, "", o); sub(/ *` .*$/, "", o)
    gsub(/--with-original|--no-build|--no-curve|--rounds=[0-9]+/, "", o); gsub(/  +/, " ", o); sub(/^ /, "", o); sub(/ $/, "", o)
    gsub(/\|/, "\\|", o); opts = (o == "" ? "" : o)
  }
  /^raw pipeline with glibc.s malloc defaults/ { malloc = "resized" }
  /^ratio service\/raw  JSON :/ { j = $5 }
  /^ratio service\/raw  bytes:/ { b = $4 }
  /^ratio resized\/original throughput JSON :/ { xj = $6 }
  /^ratio resized\/original throughput bytes:/ { xb = $5; x = xj " / " xb }
  /^original     :/ { orig = $3 }
  /^ratio POST p99 resized JSON\/original/ { p = $NF; if ($0 ~ /target/) p = $(NF - 3) }
  /^ratio peak RSS resized\/original/ { r = $NF; if ($0 ~ /target/) r = $(NF - 3) }
  END { flush() }
' "${files[@]}"
