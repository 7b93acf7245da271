#!/usr/bin/env bash
# Per-task overhead of remote placement, measured on this machine, loopback
# only, side by side in one run:
#   (a) standalone   one node, resize.pool-size=2 (config/development.ini)
#   (b) cluster      API node with resize.pool-size=0 (config/cluster-api.ini)
#                    + one worker with resize.pool-size=2
#                    (config/cluster-worker.ini)
#   (c) cluster-tls  the same with TLS on the cluster port (openssl.*, a test
#                    CA made by tests/support/make_test_certs.sh)
# Both use one private redis-server on a free port.
#
# For each setup, two phases with N tasks of one small photo (default
# opencv__messi5.jpg, 73 KB, resized to JPEG thumbnails of about 100x100:
# width 101..100+N, height 100 or 101, fill):
#   sequential  one task at a time (submit, poll every 2 ms until final,
#               next): the latency of a task with nothing queued, i.e. the
#               overhead
#   burst       N tasks submitted from 8 client threads, then wait:
#               throughput, and latency including queueing
# The client is bench/cluster_client.cpp (libcurl, built by this script):
# curl + jq processes per request would cost more CPU than a small resize.
# Latency is taken from each task's record (finished_at - submitted_at, as
# the API node stamps them, ms resolution): polling granularity does not
# enter. Throughput = N / (last finished_at - first submitted_at).
# Bytes per task: tcp_info counters (ss) of the sockets on the API node's
# cluster port (BASP, both directions) and on the Redis port, and Redis's
# total_commands_processed, each as a delta over the burst phase / N.
#
# Usage: bench/cluster_overhead.sh [N] [photo]
#   RESIZED_BIN (default build/resized), REDIS_SERVER_BIN (redis-server).
# Needs c++ and libcurl (dev), curl, jq, ss (iproute2), redis-server,
# redis-cli, openssl. Bounded: at most 6 x N tasks, every wait has a
# deadline; processes it started are stopped on exit (by pid).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
N="${1:-60}"
photo="${2:-$root/../shared/corpus/photos/opencv__messi5.jpg}"
bin="${RESIZED_BIN:-$root/build/resized}"
redis_bin="${REDIS_SERVER_BIN:-redis-server}"
deadline_s=120 # per wait

for tool in c++ curl jq ss redis-cli awk column "$redis_bin"; do
  command -v "$tool" >/dev/null || { echo "bench: needs $tool" >&2; exit 1; }
done
[[ -x "$bin" ]] || { echo "bench: no resized binary at $bin (set RESIZED_BIN)" >&2; exit 1; }
[[ -f "$photo" ]] || { echo "bench: no photo $photo" >&2; exit 1; }
((N >= 1 && N <= 1000)) || { echo "bench: N must be 1..1000" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/resized-bench-XXXXXX")"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

# A loopback TCP port no socket uses, below the ephemeral range (so no
# outgoing connection takes it meanwhile), and not handed out before.
used_ports=" "
free_port() {
  local p low
  low=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range)
  while :; do
    p=$((10000 + RANDOM % (low - 10000)))
    [[ "$used_ports" == *" $p "* ]] && continue
    ss -Htan "( sport = :$p )" | grep -q . && continue
    used_ports+="$p "
    echo "$p"
    return
  done
}

# wait_for <what> <pid> <command...>: polls every 20 ms until the command
# succeeds; gives up when process <pid> (a node being waited for) exits.
wait_for() {
  local what="$1" pid="$2"; shift 2
  local end=$((SECONDS + deadline_s))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= end)); then
      echo "bench: timed out waiting for $what (logs in $work)" >&2
      exit 1
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "bench: process $pid exited while waiting for $what (logs in $work)" >&2
      exit 1
    fi
    sleep 0.02
  done
}

ms_of() { # ISO-8601 with ms -> epoch ms (jq filter on a string)
  echo '(.[0:19] + "Z" | fromdateiso8601) * 1000 + (.[20:23] | tonumber)'
}

# -- Redis ---------------------------------------------------------------------
redis_port=$(free_port)
"$redis_bin" --bind 127.0.0.1 --port "$redis_port" --save "" \
  --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
pids+=($!)
wait_for "redis" $! redis-cli -p "$redis_port" ping
# CPU seconds used so far: of a process (utime + stime) and of Redis.
proc_cpu() {
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f\n", ($14 + $15) / hz }' \
    "/proc/$1/stat"
}
redis_cpu() {
  redis-cli -p "$redis_port" info cpu |
    awk -F: '/^used_cpu_(sys|user):/ { s += $2 } END { printf "%.3f\n", s }'
}
cpu_ms_per_task() { awk -v a="$1" -v b="$2" -v n="$N" 'BEGIN { printf "%.2f", (b - a) * 1000 / n }'; }

redis_commandstats() { # "command calls" lines
  redis-cli -p "$redis_port" info commandstats |
    sed -nE 's/^cmdstat_([a-z|]+):calls=([0-9]+),.*/\1 \2/p'
}
redis_memory() {
  redis-cli -p "$redis_port" info memory |
    awk -F: '/^used_memory:/ { gsub("\r", ""); print $2 }'
}
redis_commands() {
  redis-cli -p "$redis_port" info stats |
    awk -F: '/^total_commands_processed/ {gsub("\r",""); print $2}'
}

# Sum of tcp_info bytes_sent / bytes_received over sockets whose local port
# is $1 (the listening side's view): "sent received".
sock_bytes() {
  ss -Htin state established "( sport = :$1 )" |
    awk '{ for (i = 1; i <= NF; ++i) {
             if ($i ~ /^bytes_sent:/)     { split($i, a, ":"); s += a[2] }
             if ($i ~ /^bytes_received:/) { split($i, a, ":"); r += a[2] } } }
         END { printf "%d %d\n", s, r }'
}

status_of() { curl -sS "http://127.0.0.1:$1/api/v1/resize/$2"; }

# stats <http port> <tokens file> <label>: one table row from the records.
stats() {
  local port="$1" tokens="$2" label="$3"
  local recs="$work/${label//\//-}.records"
  : >"$recs"
  while read -r t; do
    status_of "$port" "$t" >>"$recs"
    echo >>"$recs"
  done <"$tokens"
  local failed
  failed=$(jq -s '[.[] | select(.status != "SUCCESS")] | length' "$recs")
  jq -r -s --arg name "$label" --argjson failed "$failed" "
    def ms: $(ms_of);
    def pct(p): sort | .[((length * p / 100) | ceil) - 1];
    [.[] | {s: (.submitted_at | ms), b: (.started_at | ms),
            f: (.finished_at | ms)}] as \$r
    | (\$r | map(.f - .s)) as \$lat
    | (\$r | map(.f - .b)) as \$run
    | (\$r | map(.b - .s)) as \$queue
    | ((\$r | map(.f) | max) - (\$r | map(.s) | min)) as \$span
    | [\$name, (\$r | length), \$failed,
       (\$lat | pct(50)), (\$lat | pct(99)), (\$lat | max),
       (\$queue | pct(50)), (\$run | pct(50)), (\$run | pct(99)),
       (if \$span > 0 then ((\$r | length) * 1000 / \$span * 10 | round / 10)
        else 0 end)]
    | @tsv" "$recs" >>"$work/table"
}

# run_phases <label> <http port> <cluster port or ""> <API/standalone pid>
#            [worker pid]
run_phases() {
  local label="$1" port="$2" cport="$3" pid_api="$4" pid_worker="${5:-}"
  local url="http://127.0.0.1:$port"
  # Every setup runs the same sizes of the same photo, and identical work is
  # done once (the content index in Redis): without this, the second setup
  # would only copy the first one's results.
  redis-cli -p "$redis_port" FLUSHALL >/dev/null
  # Warm-up (not measured): libvips caches, first BASP messages.
  "$client" seq "$url" "$photo" 4 99 >"$work/warm"

  # sequential
  "$client" seq "$url" "$photo" "$N" 100 >"$work/$label-seq.tokens"
  stats "$port" "$work/$label-seq.tokens" "$label/sequential"

  # burst
  local before_cmd before_redis before_basp
  before_cmd=$(redis_commands)
  local mem0 mem1
  mem0=$(redis_memory)
  local cpu_api0 cpu_w0=0 cpu_r0
  cpu_api0=$(proc_cpu "$pid_api"); cpu_r0=$(redis_cpu)
  [[ -n "$pid_worker" ]] && cpu_w0=$(proc_cpu "$pid_worker")
  redis_commandstats >"$work/$label.cmdstats.before"
  before_redis=$(sock_bytes "$redis_port")
  [[ -n "$cport" ]] && before_basp=$(sock_bytes "$cport")
  "$client" burst "$url" "$photo" "$N" 101 8 >"$work/$label-burst.tokens"
  local after_cmd after_redis
  after_cmd=$(redis_commands)
  mem1=$(redis_memory)
  local cpu_api1 cpu_w1=0 cpu_r1
  cpu_api1=$(proc_cpu "$pid_api"); cpu_r1=$(redis_cpu)
  [[ -n "$pid_worker" ]] && cpu_w1=$(proc_cpu "$pid_worker")
  printf '%s\t%s\t%s\t%s\n' "$label" "$(cpu_ms_per_task "$cpu_api0" "$cpu_api1")" \
    "$(cpu_ms_per_task "$cpu_w0" "$cpu_w1")" "$(cpu_ms_per_task "$cpu_r0" "$cpu_r1")" \
    >>"$work/cpu_table"
  redis_commandstats >"$work/$label.cmdstats.after"
  # calls per task of each command during the burst
  awk -v n="$N" -v label="$label" '
    NR == FNR { before[$1] = $2; next }
    { d = $2 - before[$1]; if (d > 0) out = out sprintf(" %s=%.2f", $1, d / n) }
    END { print label ":" out }' \
    "$work/$label.cmdstats.before" "$work/$label.cmdstats.after" \
    >>"$work/cmd_table"
  after_redis=$(sock_bytes "$redis_port")
  read -r rs0 rr0 <<<"$before_redis"
  read -r rs1 rr1 <<<"$after_redis"
  # Redis side: bytes Redis received (writes of inputs, results, records)
  # and sent, per task; commands per task.
  printf '%s\t%d\t%d\t%s\t%d\n' "$label" $(((rr1 - rr0) / N)) \
    $(((rs1 - rs0) / N)) "$(awk "BEGIN { print ($after_cmd - $before_cmd) / $N }")" \
    $(((mem1 - mem0) / N)) >>"$work/redis_table"
  if [[ -n "$cport" ]]; then
    local after_basp
    after_basp=$(sock_bytes "$cport")
    read -r bs0 br0 <<<"$before_basp"
    read -r bs1 br1 <<<"$after_basp"
    # Payload per task: input bytes (the photo) and output bytes (mean of
    # the records): the rest is options, token, CAF serialization, BASP.
    local out_mean
    out_mean=$(for t in $(cat "$work/$label-burst.tokens"); do
                 status_of "$port" "$t"; echo; done |
               jq -s 'map(.bytes) | add / length | round')
    printf '%s\t%d\t%d\t%d\t%d\t%d\t%d\n' "$label" \
      $(((bs1 - bs0) / N)) "$(stat -c %s "$photo")" \
      $(((bs1 - bs0) / N - $(stat -c %s "$photo"))) \
      $(((br1 - br0) / N)) "$out_mean" $(((br1 - br0) / N - out_mean)) \
      >>"$work/basp_table"
  fi
  stats "$port" "$work/$label-burst.tokens" "$label/burst"
}

: >"$work/table"; : >"$work/redis_table"; : >"$work/basp_table"; : >"$work/cmd_table"; : >"$work/cpu_table"

# The load generator (bench/cluster_client.cpp), built here.
client="$work/cluster_client"
c++ -std=c++17 -O2 -pthread "$root/bench/cluster_client.cpp" -lcurl -o "$client"

# -- (a) standalone ------------------------------------------------------------
http_a=$(free_port)
"$bin" --config-file="$root/config/development.ini" --http.address=127.0.0.1 \
  --http.port="$http_a" --redis.port="$redis_port" --resize.pool-size=2 \
  --cluster.node-name=bench-standalone --log.level=warn \
  >"$work/standalone.log" 2>&1 &
pids+=($!)
pid_a=$!
wait_for "standalone /healthz" "$pid_a" curl -fsS "http://127.0.0.1:$http_a/healthz"
run_phases standalone "$http_a" "" "$pid_a"
kill -TERM "$pid_a"
wait "$pid_a" 2>/dev/null || true

# -- (b) API node + one worker, (c) the same with TLS on the cluster port ------
# run_cluster <label> [openssl.* arguments for both nodes]
run_cluster() {
  local label="$1"
  shift
  local http_b cport pid_api pid_worker
  http_b=$(free_port)
  cport=$(free_port)
  "$bin" --config-file="$root/config/cluster-api.ini" --http.address=127.0.0.1 \
    --http.port="$http_b" --cluster.port="$cport" \
    --cluster.bind-address=127.0.0.1 --redis.port="$redis_port" \
    --cluster.node-name="bench-api-$label" --log.level=warn "$@" \
    >"$work/api-$label.log" 2>&1 &
  pids+=($!)
  pid_api=$!
  wait_for "API /healthz ($label)" "$pid_api" \
    curl -fsS "http://127.0.0.1:$http_b/healthz"
  "$bin" --config-file="$root/config/cluster-worker.ini" \
    --cluster.api-nodes="127.0.0.1:$cport" --cluster.node-name=bench-worker \
    --resize.pool-size=2 --log.level=warn "$@" \
    >"$work/worker-$label.log" 2>&1 &
  pids+=($!)
  pid_worker=$!
  wait_for "worker to join ($label)" "$pid_worker" \
    bash -c "curl -fsS http://127.0.0.1:$http_b/api/v1/cluster |
             jq -e '.nodes | map(.id) | index(\"bench-worker\") != null'"
  run_phases "$label" "$http_b" "$cport" "$pid_api" "$pid_worker"
  kill -TERM "$pid_worker" "$pid_api"
  wait "$pid_worker" "$pid_api" 2>/dev/null || true
}
run_cluster cluster
# A test CA and one node certificate for both (tests/support/make_test_certs.sh).
bash "$root/tests/support/make_test_certs.sh" "$work/certs"
run_cluster cluster-tls --openssl.certificate="$work/certs/node.pem" \
  --openssl.key="$work/certs/node.key" --openssl.cafile="$work/certs/ca.pem"

# -- report --------------------------------------------------------------------
echo "# resized cluster overhead, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "# load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews figures)"
echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(uname -r)"
echo "# photo: $(basename "$photo") ($(stat -c %s "$photo") bytes), N=$N per phase, output (100+i)x100 JPEG, fill"
echo
echo "latency per task in ms from the task records (submitted -> finished);"
echo "queue = submitted -> started, run = started -> finished (incl. transfer);"
echo "throughput = tasks / (last finished - first submitted)"
echo
{
  printf 'setup/phase\ttasks\tfailed\tp50\tp99\tmax\tqueue_p50\trun_p50\trun_p99\ttasks/s\n'
  cat "$work/table"
} | column -t -s $'\t'
echo
echo "BASP bytes per task (burst phase, tcp_info of the API node's cluster-port sockets):"
{
  printf 'setup\tAPI->worker\tinput\toverhead\tworker->API\toutput\toverhead\n'
  cat "$work/basp_table"
} | column -t -s $'\t'
echo
echo "Redis per task (burst phase, Redis port sockets and INFO; memory_kept ="
echo "used_memory growth: results and records, which live redis.result-ttl):"
{
  printf 'setup\tbytes_to_redis\tbytes_from_redis\tcommands\tmemory_kept\n'
  cat "$work/redis_table"
} | column -t -s $'\t'
echo
echo "CPU ms per task (burst phase; standalone: all in the node column):"
{
  printf 'setup\tnode(api)\tworker\tredis\n'
  cat "$work/cpu_table"
} | column -t -s $'\t'
echo
echo "Redis calls per task by command (burst phase; info = this script):"
cat "$work/cmd_table"
echo
echo "(logs and records in $work)"
