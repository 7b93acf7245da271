#!/usr/bin/env bash
# bench/run.sh — issue 6's benchmark in one command, loopback only.
#
#   bench/run.sh [--with-original] [--profile] [--no-curve] [--no-build]
#                [--passes=3] [--concurrency=8] [--pool-size=2] [--io-threads=2]
#                [--curve-count=80] [--rounds=2] [--tune="<resized args>"]
#                [--tune-env="VAR=value ..."] [--no-results]
#                [--no-throughput] (only the RSS curve and/or the profile)
#                [--corpus=DIR] (other photos; default ../shared/corpus/photos)
#                [--variants] ("photos like them": make_variants writes one
#                re-cropped, re-encoded variant of each corpus photo to
#                build-bench/variants/, and every step runs on those)
#                [--plain-poll] (resized polled like the original: GET every
#                5-20 ms; default: its long poll, GET ...?wait=10)
#                [--warm] (every measured run follows one untimed pass over
#                the photos on the same processes: raw_pipeline --warmup,
#                resized and the original at other qualities, 95/94/93, so
#                no result can be reused; default: fresh processes, cold)
#                [--aof] (one more JSON and raw-bytes run per round with
#                resized's Redis writing an AOF, appendfsync everysec, as
#                scripts/run and docker-compose run it)
#                [--service-bin=PATH] [--tools-dir=DIR] (a resized binary and
#                the bench tools built elsewhere: nothing is built; scripts/test
#                runs a short benchmark so on its own build)
#
# 1. Builds resized (Release, build-bench/service, tests off) and the bench
#    tools (build-bench/tools: raw_pipeline, loadgen, make_variants).
# 2. Throughput, side by side in this run, on ../shared/corpus/photos (or
#    --corpus, or --variants): passes x 31 photos, default 100x100 fill JPEG
#    q85; each pass asks a different quality, 85/84/83, so no pass can be
#    served from a cache:
#      raw_pipeline (in-process, pool-size threads, resized's malloc
#      settings) — before and after; raw_pipeline --glibc-defaults (the
#      same with glibc's malloc defaults, the baseline of sessions 1-38)
#      after each raw run but the last;
#      raw_pipeline --plain-libvips (libvips' own thumbnail, progressive
#      JPEGs decoded whole) after each raw run but the last
#      resized via base64 JSON, resized via raw bytes (fresh resized and a
#      private redis-server each), concurrency 8; JSON first in odd rounds,
#      raw bytes first in even ones (use an even --rounds for a fair split)
#      --tune="...": one more JSON run per round with extra resized args
#      --tune-env="...": the same with resized's environment extended (both
#      may be given), e.g. GLIBC_TUNABLES=glibc.malloc.hugetlb=1
#      --aof: one more JSON and raw-bytes run per round, Redis with AOF
#      then resized via JSON with identical passes (content-hash hit path)
#      --with-original: the original Flask + Celery stack, same photos.
#    Prints service ÷ raw, resized ÷ original, POST p99 and peak RSS ratios.
# 3. RSS against queued bytes (unless --no-curve): pool-size 1, the photos
#    >= 1 MB submitted raw as fast as possible (503 -> retry), then drained;
#    once per allocator: the default (glibc, memory.arenas=1, malloc_trim
#    every second, buffers >= 32 MiB mapped), glibc untuned, arenas=2
#    only, jemalloc (LD_PRELOAD); with --tune/--tune-env, one more row:
#    the shipped settings plus those.
# 4. --profile: perf record of resized during one JSON run; top entries;
#    then perf record -a during raw_pipeline and during a raw-bytes run,
#    samples per thread name side by side (where the extra CPU goes).
# 5. Appends a dated section to bench/results/runs-<year>-<month>.md (unless
#    --no-results); bench/RESULTS.md, written by hand, cites runs by date.
# Logs, CSVs and profiles go to build-bench/runs/<timestamp>/.
#
# Redis: a private redis-server per resized start, on a free loopback port,
# with persistence off (--save '' --appendonly no): the benchmark measures
# the service, not the disk. Production runs AOF (see README); --aof
# measures that too, side by side (AOF files in the run's directory).
# Everything started here is stopped by pid on exit (trap), every wait is
# bounded.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
shared_corpus=$(cd "$root/../shared/corpus/photos" 2>/dev/null && pwd || true)
corpus=$shared_corpus
orig_dir=$(cd "$root/../shared/peers/original-stack" 2>/dev/null && pwd || true)

with_original=0 profile=0 curve=1 build=1 write_results=1 throughput=1 variants=0
aof=0 redis_aof=0 warm=0
poll_args=(--wait-s=10)
bin=$root/build-bench/service/resized
tools=$root/build-bench/tools
passes=3 concurrency=8 pool=2 io_threads=2 curve_count=80 rounds=2 tune="" tune_env=""
svc_env=()
lg_extra=()
for arg in "$@"; do
  case $arg in
    --with-original) with_original=1 ;;
    --profile) profile=1 ;;
    --no-curve) curve=0 ;;
    --no-throughput) throughput=0 ;;
    --plain-poll) poll_args=() ;;
    --aof) aof=1 ;;
    --warm) warm=1 ;;
    --no-build) build=0 ;;
    --service-bin=*) bin=$(realpath "${arg#*=}"); build=0 ;;
    --tools-dir=*) tools=$(realpath "${arg#*=}"); build=0 ;;
    --corpus=*) corpus=$(cd "${arg#*=}" && pwd) ;;
    --variants) variants=1 ;;
    --no-results) write_results=0 ;;
    --passes=*) passes=${arg#*=} ;;
    --concurrency=*) concurrency=${arg#*=} ;;
    --pool-size=*) pool=${arg#*=} ;;
    --io-threads=*) io_threads=${arg#*=} ;;
    --curve-count=*) curve_count=${arg#*=} ;;
    --rounds=*) rounds=${arg#*=} ;;
    --tune=*) tune=${arg#*=} ;;
    --tune-env=*) tune_env=${arg#*=} ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "run.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done
tuned_label="${tune_env}${tune_env:+${tune:+ }}${tune}"

build_shown="Release"
[[ $bin == "$root/build-bench/service/resized" ]] || build_shown="binary $bin"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=$root/build-bench/runs/$stamp
mkdir -p "$out"; : >>"$out/results.txt"
jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2

log() { echo "== $*" >&2; }

# -- build -------------------------------------------------------------------
if ((build)); then
  log "building resized (Release) and the bench tools"
  gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
  cmake -S "$root" -B "$root/build-bench/service" "${gen[@]}" \
    -DCMAKE_BUILD_TYPE=Release -DRESIZED_BUILD_TESTS=OFF >"$out/build.log"
  cmake --build "$root/build-bench/service" --target resized -j"$(nproc)" >>"$out/build.log"
  cmake -S "$here" -B "$tools" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release >>"$out/build.log"
  cmake --build "$tools" -j"$(nproc)" >>"$out/build.log"
fi
needed=("$bin" "$tools/loadgen" "$tools/raw_pipeline")
((variants)) && needed+=("$tools/make_variants")
for f in "${needed[@]}"; do [[ -x $f ]] || missing_bin=$f; done
[[ -z ${missing_bin:-} ]] ||
  { echo "run.sh: $missing_bin missing (build failed? see $out/build.log)" >&2; exit 1; }
[[ -n $corpus && -d $corpus ]] ||
  { echo "run.sh: no photo directory (../shared/corpus/photos missing? use --corpus=DIR)" >&2; exit 1; }
if ((variants)); then
  log "making variants of $corpus in build-bench/variants"
  rm -rf "$root/build-bench/variants"
  "$tools/make_variants" --dir="$corpus" --out="$root/build-bench/variants" \
    >"$out/variants.log" 2>&1 || { echo "run.sh: make_variants failed, see $out/variants.log" >&2; exit 1; }
  corpus=$root/build-bench/variants
fi
case $corpus in # how the results name it: relative to the repository
  "$shared_corpus") corpus_shown=../shared/corpus/photos ;;
  "$root"/*) corpus_shown=${corpus#"$root"/} ;;
  *) corpus_shown=$corpus ;;
esac
nfiles=$(find "$corpus" -maxdepth 1 -type f | wc -l)
((nfiles > 0)) || { echo "run.sh: no photos in $corpus" >&2; exit 1; }
count=$((passes * nfiles))
concurrency_asked=$concurrency count_asked=$count
# The largest photo's size: --min-bytes of it selects it alone.
largest_bytes=$(find "$corpus" -maxdepth 1 -type f -printf '%s\n' | sort -n | tail -1)
alone_count=6

# -- processes (by pid only) ------------------------------------------------------
redis_pid="" resized_pid="" orig_started=0 perf_pid=""
stop_pid() { # pid [seconds]
  local pid=$1 secs=${2:-20}
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq $((secs * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  stop_pid "$perf_pid" 10; perf_pid=""
  stop_pid "$resized_pid" 25; resized_pid=""
  stop_pid "$redis_pid" 10; redis_pid=""
  if ((orig_started)); then ORIG_STATE=$out/original "$orig_dir/stop.sh" >/dev/null 2>&1 || true; orig_started=0; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Below the kernel's ephemeral range (32768 and up by default): a port from
# it can be taken between this check and the bind by one of the run's own
# client connections (a Flask start failed so once, "Address already in use").
free_port() {
  local p
  for _ in $(seq 200); do
    p=$((20000 + RANDOM % 12000))
    ss -Hltn "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return 0; }
  done
  echo "run.sh: no free port" >&2; return 1
}

start_redis() { # up to 3 ports: another process may take a free port first
  for _ in 1 2 3; do
    redis_port=$(free_port)
    local persist=(--appendonly no)
    if ((redis_aof)); then
      mkdir -p "$out/redis-aof-$redis_port"
      persist=(--appendonly yes --appendfsync everysec --dir "$out/redis-aof-$redis_port")
    fi
    # As scripts/run and docker-compose start it (README, "Redis").
    MALLOC_CONF=dirty_decay_ms:-1,thp:always \
    redis-server --bind 127.0.0.1 --port "$redis_port" --save '' "${persist[@]}" \
      --disable-thp no \
      --logfile "$out/redis-$redis_port.log" >/dev/null 2>&1 &
    redis_pid=$!
    for _ in $(seq 100); do
      kill -0 "$redis_pid" 2>/dev/null || break
      redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null | grep -q PONG && return 0
      sleep 0.1
    done
    stop_pid "$redis_pid" 5; redis_pid=""
  done
  echo "run.sh: redis-server did not answer" >&2; return 1
}

# start_resized <log name> <env assignments...> -- <resized args...>
start_resized() {
  local name=$1; shift
  local envs=()
  while [[ $# -gt 0 && $1 != -- ]]; do envs+=("$1"); shift; done
  [[ ${1:-} == -- ]] && shift
  start_redis
  for _ in 1 2 3; do # a port found free may be taken before resized binds it
    http_port=$(free_port)
    env "${envs[@]}" "$bin" --config-file="$root/config/development.ini" \
      --http.address=127.0.0.1 --http.port="$http_port" \
      --redis.host=127.0.0.1 --redis.port="$redis_port" \
      --cluster.node-name="bench-$http_port" --log.level=warn \
      --resize.pool-size="$pool" --http.io-threads="$io_threads" "$@" \
      >"$out/resized-$name.log" 2>&1 &
    resized_pid=$!
    base=http://127.0.0.1:$http_port
    for _ in $(seq 150); do
      kill -0 "$resized_pid" 2>/dev/null || break
      if curl -fs -o /dev/null "$base/healthz" 2>/dev/null; then
        sleep 0.1 # the answer must be ours: resized still up, bind succeeded
        kill -0 "$resized_pid" 2>/dev/null && ! grep -q 'Address already in use' "$out/resized-$name.log" && return 0
        break
      fi
      sleep 0.1
    done
    stop_pid "$resized_pid" 5; resized_pid=""
    grep -q 'Address already in use' "$out/resized-$name.log" || break
  done
  echo "run.sh: resized did not start; see $out/resized-$name.log" >&2; return 1
}
stop_resized() {
  stop_pid "$resized_pid" 25; resized_pid=""; stop_pid "$redis_pid" 10; redis_pid=""
  rm -rf "$out"/redis-aof-* # --aof: the inputs, hundreds of MB
}

# field <line> <key> -> value of key=value in a result line
field() { sed -nE "s/.*[ ]$2=([^ ]+).*/\1/p" <<<"$1" | head -1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b+0 == 0) print "n/a"; else printf "%.3f", a/b }'; }

machine="$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
log "machine: $machine"
log "output: $out"
cmds=()

# -- 2. throughput ---------------------------------------------------------------
# round [plain|glibc]: plain = libvips' own thumbnail, no DC-scan decode;
# glibc = glibc's malloc defaults instead of resized's (sessions 1-38)
run_raw() {
  local tag=$1 label=raw
  local cmd=("$tools/raw_pipeline" --dir="$corpus" --threads="$pool" --count="$count")
  ((warm)) && cmd+=(--warmup="$nfiles")
  [[ ${2:-} == plain ]] && { cmd+=(--plain-libvips); label=plain; }
  [[ ${2:-} == glibc ]] && { cmd+=(--glibc-defaults); label=raw_glibc; }
  cmds+=("${cmd[*]}")
  local stat0 res; stat0=$(head -1 /proc/stat)
  res=$("${cmd[@]}" 2>>"$out/raw.err" | sed "s/^result raw /result $label round=$tag /")
  sed -E "s/^(result .*)$/\1 machine_busy=$(busy_since "$stat0")/" <<<"$res" | tee -a "$out/results.txt" | tail -1
}

# --warm: one untimed pass of loadgen command "$@" (less its pid and
# metrics reading) at qualities 95/94/93 first, output to $1.txt/.err.
warm_up() {
  ((warm)) || return 0
  local to=$1; shift
  local args=() a
  for a in "$@"; do
    case $a in --pid=*|--metrics|--curve=*|--label=*) ;; *) args+=("$a") ;; esac
  done
  "${args[@]}" --label=warmup --quality=95 >"$to.txt" 2>"$to.err" || true
}

# busy_since <first line of /proc/stat earlier> -> the share of the
# machine's CPU time since then that was not idle (every process's).
busy_since() {
  printf '%s\n%s\n' "$1" "$(head -1 /proc/stat)" | awk '
    { t = 0; for (i = 2; i <= NF; i++) t += $i; idle[NR] = $5 + $6; tot[NR] = t }
    END { d = tot[2] - tot[1]; printf "%.3f", (d > 0 ? 1 - (idle[2] - idle[1]) / d : 0) }'
}

# proc_cpu_s <pid> -> user + system CPU seconds of a running process
proc_cpu_s() {
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.3f", ($12 + $13) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0
}

run_service() { # mode [label suffix, resized args...] -> result line; fresh resized + redis
  local mode=$1 suffix=${2:-}; shift; shift || true
  start_resized "$mode$suffix" "${svc_env[@]}" -- "$@"
  local cmd=("$tools/loadgen" --url="$base" --mode="$mode" --label="service_$mode$suffix"
             --concurrency="$concurrency" --count="$count" --dir="$corpus"
             --pid="$resized_pid" --metrics "${poll_args[@]}" "${lg_extra[@]}")
  cmds+=("${cmd[*]/--pid=$resized_pid/--pid=<resized pid>}${*:+ (resized $*)}${svc_env[*]:+ (environment of resized: ${svc_env[*]})}")
  warm_up "$out/loadgen-$mode$suffix-warmup" "${cmd[@]}"
  local redis_cpu0 stat0; redis_cpu0=$(proc_cpu_s "$redis_pid"); stat0=$(head -1 /proc/stat)
  "${cmd[@]}" >"$out/loadgen-$mode$suffix.txt" 2>"$out/loadgen-$mode$suffix.err" || true
  # Redis' CPU over the measured pass (its share of the cores is part of
  # what the service costs: it receives every input before the 202), and
  # how busy the machine's cores were: idle cores mean waits, not work.
  local redis_cpu busy
  redis_cpu=$(awk -v a="$redis_cpu0" -v b="$(proc_cpu_s "$redis_pid")" 'BEGIN{printf "%.3f", b-a}')
  busy=$(busy_since "$stat0")
  sed -i -E "s/^(result .*)$/\1 redis_cpu_s=$redis_cpu machine_busy=$busy/" "$out/loadgen-$mode$suffix.txt"
  grep -h '' "$out/loadgen-$mode$suffix.txt" >>"$out/results.txt"
  stop_resized
  grep '^result ' "$out/loadgen-$mode$suffix.txt"
  cat "$out/loadgen-$mode$suffix.txt" >>"$out/loadgen-$mode$suffix-all.txt"
}

if ((throughput)); then
for r in $(seq "$rounds"); do
  log "round $r/$rounds: raw pipeline ($pool threads, $count images), with glibc's malloc defaults, then plain libvips"
  run_raw "$r" >/dev/null
  run_raw "$r" glibc >/dev/null
  run_raw "$r" plain >/dev/null
  # Which of the two goes first alternates by round: the first service run
  # after the raw pipeline's pays more for its memory (on the AMD EPYC guest
  # of sessions 32-35, Redis' CPU over the passes 0.26-0.30 s against
  # 0.08-0.11, and a POST p99 two to three times as long, whichever mode
  # went first), which fixed first place charged to JSON alone.
  for mode in $( ((r % 2)) && echo json raw || echo raw json); do
    if [[ $mode == json ]]; then
      log "round $r/$rounds: resized via base64 JSON (concurrency $concurrency)"
    else
      log "round $r/$rounds: resized via raw bytes"
    fi
    run_service "$mode" >/dev/null
  done
  if [[ -n $tune || -n $tune_env ]]; then
    log "round $r/$rounds: resized via base64 JSON, tuned: $tune_env $tune"
    read -r -a svc_env <<<"$tune_env"
    # shellcheck disable=SC2086
    run_service json _tuned $tune >/dev/null
    svc_env=()
  fi
  if ((aof)); then
    log "round $r/$rounds: resized via base64 JSON and raw bytes, Redis with AOF (everysec)"
    redis_aof=1
    run_service json _aof >/dev/null
    run_service raw _aof >/dev/null
    redis_aof=0
  fi
done
log "raw pipeline again (brackets the last service runs)"
run_raw $((rounds + 1)) >/dev/null
# Hit path (issue 6 item 4): the same requests every pass, so passes 2..n
# can reuse the first pass's results through the content hash.
log "resized via base64 JSON, identical passes (content-hash hit path)"
lg_extra=(--same-passes)
run_service json _same >/dev/null
lg_extra=()
# The POST p99 at concurrency 8 is the largest upload's. The same upload on
# an idle service, one at a time (each task finished before the next POST;
# six distinct qualities, so none is a hit), is the floor under it.
log "resized via base64 JSON, the largest photo alone (concurrency 1, $alone_count uploads)"
concurrency=1 count=$alone_count lg_extra=(--min-bytes="$largest_bytes")
run_service json _alone >/dev/null
concurrency=$concurrency_asked count=$count_asked lg_extra=()
fi
orig=""
if ((with_original)); then
  if [[ -z $orig_dir ]]; then
    log "original stack not found next to the repo; skipped"
  else
    missing=()
    for p in python3-flask python3-celery python3-pil python3-redis; do
      dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if ((${#missing[@]})); then
      log "installing ${missing[*]}"
      apt-get install -y -q "${missing[@]}" >"$out/apt.log" 2>&1
    fi
    export ORIG_STATE=$out/original ORIG_PORT ORIG_REDIS_PORT
    ORIG_PORT=$(free_port); ORIG_REDIS_PORT=$(free_port) # private redis, no persistence
    log "original stack on :$ORIG_PORT (its own redis on :$ORIG_REDIS_PORT)"
    "$orig_dir/start.sh" >"$out/original-start.log" 2>&1
    orig_started=1
    fpid=$(cat "$ORIG_STATE/run/flask.pid"); cpid=$(cat "$ORIG_STATE/run/celery.pid")
    cmd=("$tools/loadgen" --url="http://127.0.0.1:$ORIG_PORT" --original --mode=json
         --label=original --concurrency="$concurrency" --count="$count" --dir="$corpus"
         --result-dir="$ORIG_STATE/out/resized" --pid="$fpid" --pid="$cpid"
         --pid-children --timeout-s=600)
    cmds+=("${cmd[*]}")
    warm_up "$out/loadgen-original-warmup" "${cmd[@]}"
    "${cmd[@]}" >"$out/loadgen-original.txt" 2>"$out/loadgen-original.err" || true
    cat "$out/loadgen-original.txt" >>"$out/results.txt"
    if ((throughput)); then
      log "original stack, the largest photo alone (concurrency 1, $alone_count uploads)"
      cmd=("$tools/loadgen" --url="http://127.0.0.1:$ORIG_PORT" --original --mode=json
           --label=original_alone --concurrency=1 --count="$alone_count" --dir="$corpus"
           --min-bytes="$largest_bytes" --result-dir="$ORIG_STATE/out/resized" --timeout-s=120)
      cmds+=("${cmd[*]}")
      "${cmd[@]}" >"$out/loadgen-original_alone.txt" 2>"$out/loadgen-original_alone.err" || true
      cat "$out/loadgen-original_alone.txt" >>"$out/results.txt"
    fi
    "$orig_dir/rss.sh" >"$out/original-rss.txt" 2>&1 || true
    "$orig_dir/stop.sh" >/dev/null 2>&1 || true
    orig_started=0
    orig=$(grep '^result ' "$out/loadgen-original.txt" || true)
  fi
fi

# -- 3. RSS against queued bytes, per allocator -----------------------------------
curve_rows=()
if ((curve)); then
  # default = what resized ships (memory.arenas=1, malloc_trim every second
  # of what lies free beyond 16 MiB, 128 MiB while work goes on, buffers
  # >= 32 MiB in their own mappings); the others switch all that off:
  # glibc untuned, arenas only, jemalloc.
  # --tune / --tune-env: one more row, the shipped settings plus those.
  allocs=(default glibc arena2 jemalloc)
  [[ -n $tune || -n $tune_env ]] && allocs+=(tuned)
  for alloc in "${allocs[@]}"; do
    envs=() margs=()
    case $alloc in
      tuned) read -r -a envs <<<"$tune_env"; read -r -a margs <<<"$tune" ;;
      glibc) margs=(--memory.arenas=0 --memory.trim-interval-ms=0 --memory.mmap-threshold=0 --memory.heap-top-bytes=0) ;;
      arena2) margs=(--memory.arenas=2 --memory.trim-interval-ms=0 --memory.mmap-threshold=0 --memory.heap-top-bytes=0) ;;
      jemalloc)
        [[ -e $jemalloc ]] || apt-get install -y -q libjemalloc2 >"$out/apt-jemalloc.log" 2>&1 || true
        [[ -e $jemalloc ]] || { log "libjemalloc2 missing and not installable; row skipped"; continue; }
        envs=("LD_PRELOAD=$jemalloc") margs=(--memory.arenas=0 --memory.trim-interval-ms=0 --memory.mmap-threshold=0 --memory.heap-top-bytes=0) ;;
    esac
    log "RSS curve, allocator $alloc (pool-size 1, photos >= 1 MB, $curve_count submissions)"
    pool_saved=$pool; pool=1
    start_resized "curve-$alloc" "${envs[@]}" -- --queue.max-bytes=268435456 --queue.capacity=256 "${margs[@]}"
    pool=$pool_saved
    cmd=("$tools/loadgen" --url="$base" --mode=raw --label="curve_$alloc" --submit-only
         --min-bytes=1000000 --concurrency=4 --count="$curve_count" --dir="$corpus"
         --pid="$resized_pid" --metrics --curve="$out/curve-$alloc.csv" --timeout-s=400
         "${poll_args[@]}")
    cmds+=("${envs[*]} ${cmd[*]/--pid=$resized_pid/--pid=<resized pid>} (resized ${margs[*]})")
    "${cmd[@]}" >"$out/loadgen-curve-$alloc.txt" 2>"$out/loadgen-curve-$alloc.err" || true
    # Three trim intervals (memory.trim-interval-ms): the first look after
    # the last request still sees work and keeps up to busy-trim-threshold.
    sleep 3
    idle=$(awk '/^VmRSS/{print $2}' "/proc/$resized_pid/status")
    stop_resized
    line=$(grep '^result ' "$out/loadgen-curve-$alloc.txt" || true)
    # RSS (MiB) by queued-bytes band, from the CSV (rows with a metrics read)
    bands=$(awk -F, 'NR>1 && $3>=0 { b=int($3/67108864); if (b>4) b=4;
             if ($2>m[b]) m[b]=$2; if ($3>qmax) qmax=$3 }
             END { for (b=0;b<=4;b++) printf "%s ", (b in m) ? sprintf("%.0f", m[b]/1024) : "-";
                   printf "qmax=%.0f", qmax/1048576 }' "$out/curve-$alloc.csv")
    curve_rows+=("$alloc|$(field "$line" peak_rss_kib)|$idle|$bands|$(field "$line" ok)|$(field "$line" rejected_503)|$(field "$line" seconds)")
  done
fi

# -- 4. profile ---------------------------------------------------------------------
prof_top="" prof_dso="" prof_system=""

# Where the service's CPU beyond the raw pipeline goes: perf record -a (every
# process on the machine) during raw_pipeline and during one raw-bytes
# loadgen run, samples counted per thread name inside the busy window (first
# to last sample of a libvips worker), side by side.
busy_window() { # <perf.data> -> "start,end" in seconds
  perf script -i "$1" -F comm,time 2>/dev/null |
    awk '{ c = substr($0, 1, 16); gsub(/^ +/, "", c)
           if (c != "libvips worker") next
           t = $NF; sub(/:$/, "", t); if (first == "") first = t; last = t }
         END { print first "," last }'
}
samples_by_comm() { # <perf.data> <window> -> "samples<TAB>comm" lines
  perf report -i "$1" --time "$2" --sort comm -n --stdio 2>/dev/null |
    awk '/^ +[0-9.]+%/ { n = $2; $1 = ""; $2 = ""; sub(/^ +/, ""); print n "\t" $0 }'
}
top_symbols() { # <perf.data> <window> <comm> -> "samples<TAB>symbol (dso)"
  perf script -i "$1" --time "$2" -F comm,ip,sym,dso 2>/dev/null |
    awk -v want="$3" '{ c = substr($0, 1, 16); gsub(/^ +/, "", c); if (c != want) next
                        s = substr($0, 17); sub(/^ +[0-9a-f]+ /, "", s)
                        gsub(/\+0x[0-9a-f]+/, "", s); n[s]++ }
                      END { for (k in n) print n[k] "\t" k }' | sort -rn | head -12
}
span() { awk -F, '{ printf "%.2f", $2 - $1 }' <<<"$1"; }
system_profile() {
  perf record -a -F 999 -o "$out/sys-raw_pipeline.data" -- "$tools/raw_pipeline" \
    --dir="$corpus" --threads="$pool" --count="$count" \
    >"$out/sys-raw_pipeline.txt" 2>"$out/sys-raw_pipeline.err" || return 0
  start_resized sysprof
  perf record -a -F 999 -o "$out/sys-service.data" -- "$tools/loadgen" --url="$base" \
    --mode=raw --label=sysprof --concurrency="$concurrency" --count="$count" \
    --dir="$corpus" "${poll_args[@]}" >"$out/sys-service.txt" 2>"$out/sys-service.err" || true
  stop_resized
  local wr ws
  wr=$(busy_window "$out/sys-raw_pipeline.data"); ws=$(busy_window "$out/sys-service.data")
  samples_by_comm "$out/sys-raw_pipeline.data" "$wr" >"$out/sys-raw_pipeline-comm.txt"
  samples_by_comm "$out/sys-service.data" "$ws" >"$out/sys-service-comm.txt"
  top_symbols "$out/sys-service.data" "$ws" resized >"$out/sys-service-io.txt"
  prof_system=$(
    echo "samples (perf -F 999, all CPUs) per thread name while libvips works: raw_pipeline $(span "$wr") s, resized (raw bytes, $count images) $(span "$ws") s"
    echo
    printf '%-18s %14s %14s\n' "thread name" "raw_pipeline" "resized run"
    # busiest first, by the larger of the two counts (a thread of only one
    # run, like raw_pipeline's own, must not fall off the end)
    awk -F '\t' 'FNR == NR { r[$2] = $1; names[$2] = 1; next } { s[$2] = $1; names[$2] = 1 }
      END { for (n in names) printf "%d\t%-18s %14d %14d\n", (r[n] > s[n] ? r[n] : s[n]), n, r[n], s[n] }' \
      "$out/sys-raw_pipeline-comm.txt" "$out/sys-service-comm.txt" | sort -t$'\t' -k1,1nr | cut -f2- | head -12
    echo "(\"resized\": its io threads; \"caf.actor\": resize actors, the status actor;"
    echo " \"raw_pipeline\": the threads that call libvips there; \"swapper\": idle)"
    echo
    echo "resized's io threads, top symbols:"
    cat "$out/sys-service-io.txt")
}
if ((profile)); then
  if perf stat -e instructions true >/dev/null 2>&1; then
    log "profiling resized (perf record) during a JSON run"
    start_resized profile
    perf record -F 499 -g -p "$resized_pid" -o "$out/perf.data" >"$out/perf-record.log" 2>&1 &
    perf_pid=$!
    sleep 0.5
    "$tools/loadgen" --url="$base" --mode=json --label=profile --concurrency="$concurrency" \
      --count="$count" --dir="$corpus" --metrics "${poll_args[@]}" >"$out/loadgen-profile.txt" 2>&1 || true
    kill -INT "$perf_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$perf_pid" 2>/dev/null || break; sleep 0.1; done
    wait "$perf_pid" 2>/dev/null || true; perf_pid=""
    stop_resized
    perf report -i "$out/perf.data" --no-children --sort dso,sym --stdio -g none \
      --percent-limit 0.7 2>/dev/null | grep -E '^ +[0-9]' | head -30 >"$out/perf-top.txt" || true
    perf report -i "$out/perf.data" --no-children --sort dso --stdio -g none \
      2>/dev/null | grep -E '^ +[0-9]' | head -15 >"$out/perf-dso.txt" || true
    perf report -i "$out/perf.data" --no-children --sort comm --stdio -g none \
      2>/dev/null | grep -E '^ +[0-9]' | head -15 >"$out/perf-comm.txt" || true
    prof_top=$(cat "$out/perf-top.txt"); prof_dso=$(cat "$out/perf-dso.txt")
    system_profile
  else
    log "perf does not work here (perf_event_paranoid?); profile skipped"
  fi
fi

# -- summary ------------------------------------------------------------------------
# agg <label> <key> <mean|max|list> over every "result <label> ..." line
agg() {
  { grep -h "^result $1 " "$out/results.txt" || true; } | sed -nE "s/.*[ ]$2=([^ ]+).*/\1/p" |
    awk -v how="$3" '{ v[NR]=$1; s+=$1; if (NR==1 || $1>m) m=$1 }
      END { if (NR==0) { print "n/a"; exit }
            if (how=="max") printf "%s\n", m
            else if (how=="list") { for (i=1;i<=NR;i++) printf "%s%s", v[i], (i<NR?" ":"\n") }
            else printf "%.2f\n", s/NR }'
}
mib() { awk -v k="$1" 'BEGIN{ if (k=="n/a") print k; else printf "%.0f", k/1024 }'; }
raw_ips=$(agg raw images_per_s mean)
json_ips=$(agg service_json images_per_s mean); bytes_ips=$(agg service_raw images_per_s mean)
# all_cpu <label> [total] -> "resized + Redis + client = sum" CPU seconds
# of the measured passes (means), or only the sum; n/a if one is missing
all_cpu() {
  local r d c
  r=$(agg "$1" cpu_s mean); d=$(agg "$1" redis_cpu_s mean); c=$(agg "$1" client_cpu_s mean)
  awk -v r="$r" -v d="$d" -v c="$c" -v only="${2:-}" 'BEGIN {
    if (r == "n/a" || d == "n/a" || c == "n/a") { print "n/a"; exit }
    if (only != "") printf "%.2f\n", r + d + c
    else printf "%s + %s + %s = %.2f\n", r, d, c, r + d + c }'
}
svc_line() { # label
  echo "$(agg "$1" images_per_s mean) images/s [$(agg "$1" images_per_s list)], POST p50/p99 $(agg "$1" post_p50_ms mean)/$(agg "$1" post_p99_ms mean) ms, done p50/p99 $(agg "$1" done_p50_ms mean)/$(agg "$1" done_p99_ms mean) ms, failed $(agg "$1" failed max), peak RSS $(mib "$(agg "$1" peak_rss_kib max)") MiB"
}
summary="throughput not measured (--no-throughput)"
((throughput)) && summary=$(
  echo "raw pipeline ($pool threads): $raw_ips images/s (mean of [$(agg raw images_per_s list)], run before each round and after the last)"
  echo "resized JSON : $(svc_line service_json)"
  echo "resized bytes: $(svc_line service_raw)"
  echo "ratio service/raw  JSON : $(ratio "$json_ips" "$raw_ips")   (target >= 0.90)"
  echo "ratio service/raw  bytes: $(ratio "$bytes_ips" "$raw_ips")   (target >= 0.95)"
  echo "raw pipeline with glibc's malloc defaults (the raw limit of sessions 1-38; the one above has resized's memory.* settings): $(agg raw_glibc images_per_s mean) images/s [$(agg raw_glibc images_per_s list)], CPU $(agg raw_glibc cpu_s mean) s"
  echo "ratio against it  JSON : $(ratio "$json_ips" "$(agg raw_glibc images_per_s mean)")   bytes: $(ratio "$bytes_ips" "$(agg raw_glibc images_per_s mean)")"
  echo "plain libvips thumbnail ($pool threads; the raw pipeline without decoding progressive JPEGs from their DC scans, i.e. any service on libvips 8.14): $(agg plain images_per_s mean) images/s [$(agg plain images_per_s list)], CPU $(agg plain cpu_s mean) s"
  echo "ratio service/plain libvips  JSON : $(ratio "$json_ips" "$(agg plain images_per_s mean)")   bytes: $(ratio "$bytes_ips" "$(agg plain images_per_s mean)")"
  echo "CPU seconds for the $count images (less noisy than wall time on a shared box): raw $(agg raw cpu_s mean), service JSON $(agg service_json cpu_s mean), bytes $(agg service_raw cpu_s mean)${tuned_label:+, JSON tuned $(agg service_json_tuned cpu_s mean)}"
  echo "the machine's cores busy (all processes, /proc/stat): raw pipeline $(agg raw machine_busy mean), service JSON $(agg service_json machine_busy mean), bytes $(agg service_raw machine_busy mean)${tuned_label:+, JSON tuned $(agg service_json_tuned machine_busy mean)}"
  echo "ratio raw CPU/service CPU  JSON : $(ratio "$(agg raw cpu_s mean)" "$(agg service_json cpu_s mean)")   bytes: $(ratio "$(agg raw cpu_s mean)" "$(agg service_raw cpu_s mean)")${tuned_label:+   JSON tuned: $(ratio "$(agg raw cpu_s mean)" "$(agg service_json_tuned cpu_s mean)")}"
  echo "Redis' CPU seconds over the same passes (not in the ratio above; it shares the two cores): JSON $(agg service_json redis_cpu_s mean), bytes $(agg service_raw redis_cpu_s mean)${tuned_label:+, JSON tuned $(agg service_json_tuned redis_cpu_s mean)}"
  echo "everything on the cores during the passes, resized + Redis + load generator (CPU s): JSON $(all_cpu service_json), bytes $(all_cpu service_raw)"
  echo "ratio raw CPU/all that CPU  JSON : $(ratio "$(agg raw cpu_s mean)" "$(all_cpu service_json total)")   bytes: $(ratio "$(agg raw cpu_s mean)" "$(all_cpu service_raw total)")   (the raw pipeline has the cores to itself; the throughput ratios follow these)"
  echo "resized JSON, identical passes (hits after pass 1): $(svc_line service_json_same)"
  if [[ -n $tuned_label ]]; then
    echo "resized JSON, tuned ($tuned_label): $(svc_line service_json_tuned)"
    echo "ratio service/raw  JSON tuned: $(ratio "$(agg service_json_tuned images_per_s mean)" "$raw_ips")"
  fi
  if ((aof)); then
    echo "resized JSON , Redis with AOF (appendfsync everysec): $(svc_line service_json_aof)"
    echo "resized bytes, Redis with AOF (appendfsync everysec): $(svc_line service_raw_aof)"
    echo "ratio AOF/no persistence  images/s JSON: $(ratio "$(agg service_json_aof images_per_s mean)" "$json_ips")  bytes: $(ratio "$(agg service_raw_aof images_per_s mean)" "$bytes_ips")   POST p99 JSON: $(ratio "$(agg service_json_aof post_p99_ms mean)" "$(agg service_json post_p99_ms mean)")  bytes: $(ratio "$(agg service_raw_aof post_p99_ms mean)" "$(agg service_raw post_p99_ms mean)")"
    echo "ratio service/raw with AOF  JSON: $(ratio "$(agg service_json_aof images_per_s mean)" "$raw_ips")  bytes: $(ratio "$(agg service_raw_aof images_per_s mean)" "$raw_ips")"
  fi
  if [[ -n $orig ]]; then
    orig_ips=$(agg original images_per_s mean)
    peak_resized=$(awk -v a="$(agg service_json peak_rss_kib max)" -v b="$(agg service_raw peak_rss_kib max)" 'BEGIN{print (a>b)?a:b}')
    echo "original     : $(svc_line original) (sum over flask + celery + its children, sampled every 50 ms; rss.sh HWM sum $(mib "$(awk '$1=="SUM"{print $3}' "$out/original-rss.txt" 2>/dev/null || echo 0)") MiB)"
    echo "ratio resized/original throughput JSON : $(ratio "$json_ips" "$orig_ips")   (target >= 6)"
    echo "ratio resized/original throughput bytes: $(ratio "$bytes_ips" "$orig_ips")"
    echo "ratio POST p99 resized JSON/original    : $(ratio "$(agg service_json post_p99_ms mean)" "$(agg original post_p99_ms mean)")   (target <= 0.05)"
    echo "ratio peak RSS resized/original         : $(ratio "$peak_resized" "$(agg original peak_rss_kib max)")   (target <= 0.30)"
  fi
  if [[ $(agg service_json_alone post_p50_ms mean) != n/a ]]; then
    echo "POST of the largest photo alone (concurrency 1, $alone_count uploads, JSON): resized p50/max $(agg service_json_alone post_p50_ms mean)/$(agg service_json_alone post_max_ms max) ms${orig:+, the original p50/max $(agg original_alone post_p50_ms mean)/$(agg original_alone post_max_ms max) ms}"
    if [[ -n $orig ]]; then
      echo "ratio resized alone p50/original p99 at c=$concurrency_asked: $(ratio "$(agg service_json_alone post_p50_ms mean)" "$(agg original post_p99_ms mean)")   (the POST p99 target's floor: <= 0.05 needs the upload under load faster than this)"
    fi
  fi
  # A p99 over a few dozen POSTs is their maximum: which uploads it was.
  for lg in json raw original; do
    slow=$(sed -n 's/^loadgen: slowest POSTs: *//p' "$out/loadgen-$lg.err" 2>/dev/null | tail -1)
    if [[ -n $slow ]]; then echo "slowest POSTs ($lg, last round): $slow"; fi
  done
)
echo
echo "$summary"
if ((${#curve_rows[@]})); then
  echo
  echo "RSS vs queued bytes (pool-size 1, raw uploads of the >= 1 MB photos):"
  printf '%-9s %9s %9s  %s\n' alloc peak_MiB idle_MiB "max RSS MiB per queued band [0-64 64-128 128-192 192-256 256+ MiB] qmax_MiB | ok rejected seconds"
  for r in "${curve_rows[@]}"; do
    IFS='|' read -r a pk idle bands ok rej secs <<<"$r"
    printf '%-9s %9s %9s  %s | %s %s %s\n' "$a" "$((pk / 1024))" "$((idle / 1024))" "$bands" "$ok" "$rej" "$secs"
  done
fi
stages=$(grep -hE '^(stage|http|cpu) ' "$out"/loadgen-*-all.txt 2>/dev/null || true)
echo; echo "per-stage (from /metrics deltas):"; echo "$stages"
[[ -n $prof_top ]] && { echo; echo "perf top (dso, symbol):"; echo "$prof_top" | head -20; }
[[ -n $prof_system ]] && { echo; echo "$prof_system"; }

# -- 5. bench/results/runs-<year>-<month>.md ---------------------------------------------
if ((write_results)); then
  runs_file=$here/results/runs-$(date -u +%Y-%m).md
  if [[ ! -e $runs_file ]]; then
    mkdir -p "$here/results"
    printf '# Benchmark runs, %s\n\nEvery `bench/run.sh` run'"'"'s full output as it appended it, oldest first. `../RESULTS.md` cites them by date.\n' \
      "$(date -u +%Y-%m)" >"$runs_file"
  fi
  {
    echo
    echo "## Run $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- machine: $machine"
    echo "- resized $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$root" diff --quiet -- src 2>/dev/null || echo ' + uncommitted src changes'), $build_shown; pool-size $pool, io-threads $io_threads, vips-concurrency 1; private redis-server, persistence off$( ((aof)) && echo ' (AOF everysec in the _aof runs)')"
    echo "- corpus: $corpus_shown, $nfiles photos ($(du -sh "$corpus" | cut -f1)), $passes passes = $count submissions, concurrency $concurrency, 100x100 fill JPEG, quality 85/84/83 by pass$( ((warm)) && echo '; warm: every measured run after one untimed pass at 95/94/93 on the same processes (raw_pipeline: --warmup)')"
    echo "- command: \`bench/run.sh $(printf "%q " "$@")\` (artefacts: build-bench/runs/$stamp/)"
    echo
    echo '```'
    echo "$summary"
    echo '```'
    if ((${#curve_rows[@]})); then
      echo
      echo "RSS against queued bytes (pool-size 1, queue.max-bytes 256 MiB, raw uploads of the photos >= 1 MB, 4 submitters, 503 -> retry after 100 ms):"
      echo
      echo "| allocator | peak RSS MiB | RSS after drain MiB | max RSS MiB with queued 0-64 / 64-128 / 128-192 / 192-256 / 256+ MiB, max queued | ok | 503s | seconds |"
      echo "|---|---|---|---|---|---|---|"
      for r in "${curve_rows[@]}"; do
        IFS='|' read -r a pk idle bands ok rej secs <<<"$r"
        echo "| $a | $((pk / 1024)) | $((idle / 1024)) | $bands | $ok | $rej | $secs |"
      done
    fi
    echo
    echo "Per-stage timings (resized_task_duration_seconds and resized_http_request_duration_seconds deltas over each run; quantiles interpolated in the buckets):"
    echo
    echo '```'
    echo "$stages"
    echo '```'
    if [[ -n $prof_top ]]; then
      echo
      echo "perf record -F 499 -g of resized during a JSON run (self time, dso + symbol, >= 0.7%):"
      echo
      echo '```'
      echo "$prof_top"
      echo '```'
      echo
      echo "by dso:"
      echo
      echo '```'
      echo "$prof_dso"
      echo '```'
    fi
    if [[ -n $prof_system ]]; then
      echo
      echo "System-wide, raw_pipeline against one raw-bytes run of resized:"
      echo
      echo '```'
      echo "$prof_system"
      echo '```'
    fi
    echo
    echo "Commands:"
    echo
    echo '```'
    printf '%s\n' "${cmds[@]}" | awk '!seen[$0]++' | sed "s#$corpus#$corpus_shown#g; s#$root/##g"
    echo '```'
  } >>"$runs_file"
  log "appended to ${runs_file#"$root"/}"
fi
