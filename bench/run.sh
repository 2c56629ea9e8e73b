#!/usr/bin/env bash
# Tollgate benchmark: direct-to-mock vs through-the-gateway, measured in the same run.
#
#   bash bench/run.sh
#
# Writes everything to bench/results/<timestamp>/ and prints a markdown summary (also saved as
# summary.md there). See bench/README.md and docs/BENCHMARKS.md.
#
# Environment (defaults in brackets):
#   DURATION [10s]  WARMUP [2s]           length of each measured run / of the discarded warm-up
#   CONNS [64]                            connections for the throughput runs
#   MOCK_PORT [18090]  GW_PORT [14000]    ports (127.0.0.1)
#   GATEWAY_CPUS [0]  MOCK_CPUS [1]  LOAD_CPUS [1]   taskset CPU lists
#   GATEWAY_WORKERS [1]  MOCK_WORKERS [1]  LOAD_THREADS [1]
#   STARTUP_RUNS [5]                      gateway cold starts timed
#   QUIET_WAIT [300]  LOAD_MAX [0.5]      wait up to QUIET_WAIT s for the 1-min load average to
#                                         drop to LOAD_MAX (and the CPUs to be <10% busy) before
#                                         measuring (0 = do not wait)
#   NOISE_MAX [10]                        flag runs where other processes used more than this % of a core
#   LOADGEN [auto]                        force "oha" or "wrk"
#   SKIP_BUILD [0]                        1 = use the existing target/release/tollgate
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNS=${CONNS:-64}
MOCK_PORT=${MOCK_PORT:-18090}
GW_PORT=${GW_PORT:-14000}
GATEWAY_CPUS=${GATEWAY_CPUS:-0}
MOCK_CPUS=${MOCK_CPUS:-1}
LOAD_CPUS=${LOAD_CPUS:-1}
GATEWAY_WORKERS=${GATEWAY_WORKERS:-1}
MOCK_WORKERS=${MOCK_WORKERS:-1}
LOAD_THREADS=${LOAD_THREADS:-1}
STARTUP_RUNS=${STARTUP_RUNS:-5}
QUIET_WAIT=${QUIET_WAIT:-300}
LOAD_MAX=${LOAD_MAX:-0.5}
LOADGEN=${LOADGEN:-}
NOISE_MAX=${NOISE_MAX:-10}
SKIP_BUILD=${SKIP_BUILD:-0}

# Bare numbers are seconds.
[[ $DURATION =~ ^[0-9]+$ ]] && DURATION="${DURATION}s"
[[ $WARMUP =~ ^[0-9]+$ ]] && WARMUP="${WARMUP}s"

BIN=$ROOT/target/release/tollgate
TS=$(date -u +%Y%m%dT%H%M%SZ)
NPROC=$(nproc --all)   # before this script pins itself (plain nproc honours the affinity mask)
OUT=$ROOT/bench/results/$TS
mkdir -p "$OUT"
MASTER_KEY="sk-bench-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"   # 9 + 48 chars
BODY='{"model":"bench-gpt","messages":[{"role":"user","content":"hi"}]}'
MOCK_URL="http://127.0.0.1:$MOCK_PORT/v1/chat/completions"
GW_URL="http://127.0.0.1:$GW_PORT/v1/chat/completions"
LIVE_URL="http://127.0.0.1:$GW_PORT/health/liveliness"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------------------------------------
# Process bookkeeping: everything we start is killed on exit, success or failure.
MOCK_PID=""
GW_PID=""
cleanup() {
    local rc=$?
    for p in $GW_PID $MOCK_PID; do
        if kill -0 "$p" 2>/dev/null; then
            kill -INT "$p" 2>/dev/null || true
        fi
    done
    for p in $GW_PID $MOCK_PID; do
        for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
        kill -KILL "$p" 2>/dev/null || true
    done
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_pid() {   # stop_pid PID: SIGINT, wait for exit
    local p=$1
    kill -INT "$p" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.02; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---------------------------------------------------------------------------------------------
# Build
if [[ $SKIP_BUILD != 1 ]]; then
    log "building: cargo build --release --bin tollgate"
    cargo build --release --bin tollgate 2>&1 | tail -n 3 >&2
fi
[[ -x $BIN ]] || die "$BIN not found"

# ---------------------------------------------------------------------------------------------
# Load generator
if [[ -z $LOADGEN ]]; then
    if command -v oha >/dev/null; then LOADGEN=oha
    elif command -v wrk >/dev/null; then LOADGEN=wrk
    else
        log "neither oha nor wrk on PATH: installing wrk with apt-get"
        SUDO=""
        if [[ $(id -u) != 0 ]]; then command -v sudo >/dev/null && SUDO=sudo || die "not root and no sudo: install wrk or oha"; fi
        $SUDO apt-get install -y wrk >&2 || { $SUDO apt-get update >&2 && $SUDO apt-get install -y wrk >&2; }
        LOADGEN=wrk
    fi
fi
command -v "$LOADGEN" >/dev/null || die "$LOADGEN not on PATH"
LOADGEN_VERSION=$("$LOADGEN" --version 2>&1 | head -n 1 | awk '{print $1, $2}' || true)
log "load generator: $LOADGEN_VERSION"

write_lua() {   # write_lua FILE KEY: POST one small chat completion with this bearer key
    cat >"$1" <<EOF
-- POST one small chat completion (the same request to the mock and to the gateway).
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $2"
EOF
}
write_lua "$OUT/chat.lua" "$MASTER_KEY"

# wrk latency string (e.g. 812.00us, 1.23ms, 1.01s) -> integer microseconds
to_us() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") f = 1; else if (u == "ms") f = 1000; else if (u == "s") f = 1000000;
        else if (u == "m") f = 60000000; else f = -1
        if (f < 0) print "NA"; else printf "%d\n", n * f + 0.5 }'
}

# run_load NAME CONNS URL KIND(chat|get) -> writes $OUT/NAME.txt (or .json) and sets
# R_RPS R_P50 R_P99 R_NON2XX R_ERRORS R_REQS
run_load() {
    local name=$1 conns=$2 url=$3 kind=$4
    local threads=$LOAD_THREADS
    (( threads > conns )) && threads=$conns
    if [[ $LOADGEN == wrk ]]; then
        local script=()
        [[ $kind == chat ]] && script=(-s "$OUT/chat.lua")
        [[ $kind == keychat ]] && script=(-s "$OUT/keychat.lua")
        taskset -c "$LOAD_CPUS" wrk -t"$threads" -c"$conns" -d"$WARMUP" "${script[@]}" "$url" >"$OUT/$name.warmup.txt" 2>&1
        cpu_begin
        taskset -c "$LOAD_CPUS" wrk -t"$threads" -c"$conns" -d"$DURATION" --latency "${script[@]}" "$url" >"$OUT/$name.txt" 2>&1
        cpu_end "$name"
        local f=$OUT/$name.txt
        R_RPS=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$f")
        R_P50=$(to_us "$(awk '$1 == "50%" {print $2}' "$f")")
        R_P99=$(to_us "$(awk '$1 == "99%" {print $2}' "$f")")
        R_REQS=$(awk '/requests in/ {print $1}' "$f")
        R_NON2XX=$(awk -F: '/Non-2xx or 3xx responses/ {gsub(/ /, "", $2); print $2}' "$f")
        R_NON2XX=${R_NON2XX:-0}
        R_ERRORS=$(awk '/Socket errors:/ {gsub(/,/, ""); print $4 + $6 + $8 + $10}' "$f")
        R_ERRORS=${R_ERRORS:-0}
    else
        local args=(--no-tui -j -c "$conns")
        [[ $kind == chat ]] && args+=(-m POST -H "Content-Type: application/json" -H "Authorization: Bearer $MASTER_KEY" -d "$BODY")
        [[ $kind == keychat ]] && args+=(-m POST -H "Content-Type: application/json" -H "Authorization: Bearer $VIRTUAL_KEY" -d "$BODY")
        taskset -c "$LOAD_CPUS" oha "${args[@]}" -z "$WARMUP" "$url" >"$OUT/$name.warmup.json" 2>&1 || true
        cpu_begin
        taskset -c "$LOAD_CPUS" oha "${args[@]}" -z "$DURATION" "$url" >"$OUT/$name.json"
        cpu_end "$name"
        local f=$OUT/$name.json
        R_RPS=$(jq -r '.summary.requestsPerSec | floor' "$f")
        R_P50=$(jq -r '.latencyPercentiles.p50 * 1000000 | round' "$f")
        R_P99=$(jq -r '.latencyPercentiles.p99 * 1000000 | round' "$f")
        R_REQS=$(jq -r '[.statusCodeDistribution[]] | add // 0' "$f")
        R_NON2XX=$(jq -r '[.statusCodeDistribution | to_entries[] | select(.key | startswith("2") | not) | .value] | add // 0' "$f")
        R_ERRORS=$(jq -r '[.errorDistribution[]?] | add // 0' "$f")
    fi
    log "$name: ${R_RPS} req/s, p50 ${R_P50} us, p99 ${R_P99} us, non-2xx ${R_NON2XX}, errors ${R_ERRORS}"
}

# CPU accounting around each measured run, to show who used the CPUs and to expose interference
# (e.g. a compile started by someone else). Jiffies from /proc/stat and /proc/<pid>/stat; the load
# generator's share from bash's `times` (children of this shell: only it runs during a measurement).
CLK_TCK=$(getconf CLK_TCK)
: >"$OUT/cpu.tsv"
printf 'run\twall_s\tgateway_core%%\tmock_core%%\tloadgen_core%%\tother_core%%\n' >"$OUT/cpu.tsv"
sys_busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
pid_jiffies() { if [[ -n $1 && -r /proc/$1/stat ]]; then awk '{print $14 + $15}' "/proc/$1/stat"; else echo 0; fi; }
children_s() {   # user+sys seconds of this shell's waited-for children, from the `times` builtin;
    # sets CH_S. (`times` must run in this shell: a $(...) subshell would report its own zeros.)
    times >"$OUT/.times"
    CH_S=$(awk 'NR == 2 {s = 0; for (i = 1; i <= 2; i++) {x = $i; m = x; sub(/m.*/, "", m); sub(/^[0-9]+m/, "", x); sub(/s$/, "", x); s += m * 60 + x}; print s}' "$OUT/.times")
}
cpu_begin() {
    children_s
    C_T0=$EPOCHREALTIME C_SYS0=$(sys_busy) C_GW0=$(pid_jiffies "$GW_PID") C_MOCK0=$(pid_jiffies "$MOCK_PID") C_CH0=$CH_S
}
cpu_end() {
    local t1=$EPOCHREALTIME sys1 gw1 mock1 ch1
    sys1=$(sys_busy); gw1=$(pid_jiffies "$GW_PID"); mock1=$(pid_jiffies "$MOCK_PID"); children_s; ch1=$CH_S
    awk -v n="$1" -v t0="$C_T0" -v t1="$t1" -v hz="$CLK_TCK" -v s0="$C_SYS0" -v s1="$sys1" -v g0="$C_GW0" -v g1="$gw1" \
        -v m0="$C_MOCK0" -v m1="$mock1" -v c0="$C_CH0" -v c1="$ch1" 'BEGIN {
            w = t1 - t0; g = (g1 - g0) / hz; m = (m1 - m0) / hz; l = c1 - c0; o = (s1 - s0) / hz - g - m - l
            if (o < 0) o = 0
            printf "%s\t%.1f\t%.0f\t%.0f\t%.0f\t%.0f\n", n, w, 100 * g / w, 100 * m / w, 100 * l / w, 100 * o / w }' >>"$OUT/cpu.tsv"
}

rss_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

# ---------------------------------------------------------------------------------------------
# Quiet window
# Quiet = 1-min load average <= LOAD_MAX and, because the load average lags, the machine also less
# than 10% busy over the last 2 s (from /proc/stat).
busy_pct_2s() {
    local a b
    a=$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6}' /proc/stat); sleep 2
    b=$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6}' /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN {split(a, x, " "); split(b, y, " "); d = (y[1] - x[1]) + (y[2] - x[2]); printf "%.0f", (d > 0) ? (100 * (y[1] - x[1]) / d) : 0}'
}
is_quiet() {
    read -r L1 L5 L15 _ </proc/loadavg
    BUSY=$(busy_pct_2s)
    awk -v l="$L1" -v m="$LOAD_MAX" -v b="$BUSY" 'BEGIN {exit !(l <= m && b < 10)}'
}
if [[ $QUIET_WAIT != 0 ]] && ! is_quiet; then
    log "load average $L1 (limit $LOAD_MAX), machine ${BUSY}% busy: waiting up to ${QUIET_WAIT}s for a quiet window"
    waited=0
    while (( waited < QUIET_WAIT )); do
        sleep 8; waited=$((waited + 10))
        is_quiet && break
    done
    log "load average now $L1, ${BUSY}% busy (waited ~${waited}s)"
fi
read -r L1 L5 L15 _ </proc/loadavg
LOAD_AT_START="$L1 $L5 $L15"
ps -eo pid,pcpu,etime,comm --sort=-pcpu | head -n 8 >"$OUT/top_at_start.txt"

# ---------------------------------------------------------------------------------------------
# Config and mock
cat >"$OUT/config.yaml" <<EOF
model_list:
  - model_name: bench-gpt
    litellm_params:
      model: openai/bench-gpt
      api_base: http://127.0.0.1:$MOCK_PORT/v1
      api_key: sk-mock
general_settings:
  master_key: $MASTER_KEY
  # A fresh embedded database per run, so earlier runs' spend logs do not weigh on this one.
  database_url: sqlite:///$OUT/tollgate.db
EOF

port_free "$MOCK_PORT" || die "port $MOCK_PORT is in use (set MOCK_PORT)"
port_free "$GW_PORT" || die "port $GW_PORT is in use (set GW_PORT)"

log "starting mock on CPU $MOCK_CPUS (workers $MOCK_WORKERS, latency 0 ms) at :$MOCK_PORT"
taskset -c "$MOCK_CPUS" "$BIN" mock-provider --host 127.0.0.1 --port "$MOCK_PORT" \
    --workers "$MOCK_WORKERS" --latency-ms 0 >"$OUT/mock.stdout" 2>"$OUT/mock.stderr" &
MOCK_PID=$!
for _ in $(seq 1 200); do grep -q "listening on" "$OUT/mock.stdout" 2>/dev/null && break; sleep 0.025; done
grep -q "listening on" "$OUT/mock.stdout" || die "mock did not start (see $OUT/mock.stderr)"

start_gateway() {   # start_gateway LOGPREFIX [CONFIG]; sets GW_PID, T_EXEC (EPOCHREALTIME just before the fork)
    local prefix=$1 config=${2:-$OUT/config.yaml}
    T_EXEC=$EPOCHREALTIME
    taskset -c "$GATEWAY_CPUS" "$BIN" --config "$config" --host 127.0.0.1 --port "$GW_PORT" \
        --num_workers "$GATEWAY_WORKERS" \
        > >(while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done >"$OUT/$prefix.stdout") \
        2>"$OUT/$prefix.stderr" &
    GW_PID=$!
}

# Poll GET /health/liveliness with bash's /dev/tcp (no fork per attempt) until a 200 comes back.
# Prints ms from T_EXEC to the first 200.
wait_first_200() {
    local deadline=$(( ${EPOCHREALTIME/./} + 10000000 )) status
    while (( ${EPOCHREALTIME/./} < deadline )); do
        if { exec 3<>"/dev/tcp/127.0.0.1/$GW_PORT"; } 2>/dev/null; then
            printf 'GET /health/liveliness HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
            status=""
            IFS= read -r -t 2 status <&3 || true
            exec 3<&- 3>&-
            if [[ $status == "HTTP/1.1 200"* ]]; then
                local now=$EPOCHREALTIME
                awk -v a="$T_EXEC" -v b="$now" 'BEGIN {printf "%.1f\n", (b - a) * 1000}'
                return 0
            fi
        fi
        kill -0 "$GW_PID" 2>/dev/null || return 1
    done
    return 1
}

# ---------------------------------------------------------------------------------------------
# From here on this script (the startup poller, the stdout timestamper, curl) runs on LOAD_CPUS;
# the mock and the gateway are started with their own taskset.
taskset -cp "$LOAD_CPUS" $$ >/dev/null

# d. Time to first served request.
log "timing $STARTUP_RUNS gateway cold starts"
: >"$OUT/startup.txt"
STARTUP_MS=()
LISTEN_MS=()
for i in $(seq 1 "$STARTUP_RUNS"); do
    port_free "$GW_PORT" || die "port $GW_PORT still in use"
    start_gateway "startup$i"
    ms=$(wait_first_200) || die "gateway did not serve /health/liveliness (see $OUT/startup$i.stderr)"
    sleep 0.2
    lms=NA
    line=$(grep -m1 "tollgate listening on" "$OUT/startup$i.stdout" || true)
    [[ -n $line ]] && lms=$(awk -v a="$T_EXEC" -v b="${line%% *}" 'BEGIN {printf "%.1f", (b - a) * 1000}')
    stop_pid "$GW_PID"; GW_PID=""
    STARTUP_MS+=("$ms"); LISTEN_MS+=("$lms")
    echo "run $i: first 200 after $ms ms; 'tollgate listening on' line after $lms ms" | tee -a "$OUT/startup.txt" >&2
done
median() { printf '%s\n' "$@" | { grep -v NA || true; } | sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "NA"; else if (NR % 2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2] + a[NR/2+1]) / 2}'; }
START_MED=$(median "${STARTUP_MS[@]}")
LISTEN_MED=$(median "${LISTEN_MS[@]}")
echo "median: first 200 $START_MED ms; listening line $LISTEN_MED ms" | tee -a "$OUT/startup.txt" >&2

# ---------------------------------------------------------------------------------------------
# Gateway for the load runs
log "starting gateway on CPU $GATEWAY_CPUS (num_workers $GATEWAY_WORKERS) at :$GW_PORT"
port_free "$GW_PORT" || die "port $GW_PORT still in use"
start_gateway gateway
wait_first_200 >/dev/null || die "gateway did not start (see $OUT/gateway.stderr)"
sleep 1
RSS_IDLE=$(rss_kb "$GW_PID" VmRSS); HWM_IDLE=$(rss_kb "$GW_PID" VmHWM)
log "gateway idle: VmRSS ${RSS_IDLE} kB, VmHWM ${HWM_IDLE} kB"

# Smoke test: one request each way must be a 200 chat.completion.
for u in "$MOCK_URL" "$GW_URL"; do
    code=$(curl -s -o "$OUT/smoke.json" -w '%{http_code}' --max-time 5 -H "Content-Type: application/json" \
        -H "Authorization: Bearer $MASTER_KEY" -d "$BODY" "$u" || true)
    [[ $code == 200 ]] || die "smoke test $u returned HTTP $code: $(head -c 300 "$OUT/smoke.json")"
done
curl -s -H "Authorization: Bearer $MASTER_KEY" -H "Content-Type: application/json" -d "$BODY" "$GW_URL" >"$OUT/smoke_gateway.json"
curl -s -H "Content-Type: application/json" -d "$BODY" "$MOCK_URL" >"$OUT/smoke_direct.json"
curl -s "http://127.0.0.1:$MOCK_PORT/mock/reset" -X POST >/dev/null || true

# a. 64 connections
run_load direct_c$CONNS "$CONNS" "$MOCK_URL" chat
D64_RPS=$R_RPS D64_P50=$R_P50 D64_P99=$R_P99 D64_NON2XX=$R_NON2XX D64_ERR=$R_ERRORS D64_REQS=$R_REQS
run_load gateway_c$CONNS "$CONNS" "$GW_URL" chat
G64_RPS=$R_RPS G64_P50=$R_P50 G64_P99=$R_P99 G64_NON2XX=$R_NON2XX G64_ERR=$R_ERRORS G64_REQS=$R_REQS
RSS_LOAD=$(rss_kb "$GW_PID" VmRSS); HWM_LOAD=$(rss_kb "$GW_PID" VmHWM)
log "gateway after ${CONNS}c load: VmRSS ${RSS_LOAD} kB, VmHWM ${HWM_LOAD} kB"

# c. 64 connections with a virtual key that has rpm/tpm limits (far above what the run reaches, so
# every request is admitted but counted), a budget, and spend tracking.
VIRTUAL_KEY=$(curl -s --max-time 5 -H "Authorization: Bearer $MASTER_KEY" -H "Content-Type: application/json" \
    -d '{"rpm_limit": 100000000, "tpm_limit": 10000000000, "max_budget": 1000000, "key_alias": "bench-'"$TS"'"}' \
    "http://127.0.0.1:$GW_PORT/key/generate" | jq -r '.key // empty')
[[ $VIRTUAL_KEY == sk-* ]] || die "could not create the benchmark's virtual key"
write_lua "$OUT/keychat.lua" "$VIRTUAL_KEY"
code=$(curl -s -o "$OUT/smoke_key.json" -D "$OUT/smoke_key.headers" -w '%{http_code}' --max-time 5 \
    -H "Content-Type: application/json" -H "Authorization: Bearer $VIRTUAL_KEY" -d "$BODY" "$GW_URL" || true)
[[ $code == 200 ]] || die "virtual-key smoke test returned HTTP $code"
grep -qi '^x-ratelimit-remaining-requests' "$OUT/smoke_key.headers" || die "virtual-key response has no x-ratelimit headers"
run_load gateway_key_c$CONNS "$CONNS" "$GW_URL" keychat
K64_RPS=$R_RPS K64_P50=$R_P50 K64_P99=$R_P99 K64_NON2XX=$R_NON2XX K64_ERR=$R_ERRORS K64_REQS=$R_REQS
RSS_KEY=$(rss_kb "$GW_PID" VmRSS); HWM_KEY=$(rss_kb "$GW_PID" VmHWM)
log "gateway after virtual-key load: VmRSS ${RSS_KEY} kB, VmHWM ${HWM_KEY} kB"

# b. 1 connection
run_load direct_c1 1 "$MOCK_URL" chat
D1_RPS=$R_RPS D1_P50=$R_P50 D1_P99=$R_P99 D1_NON2XX=$R_NON2XX D1_ERR=$R_ERRORS
run_load gateway_c1 1 "$GW_URL" chat
G1_RPS=$R_RPS G1_P50=$R_P50 G1_P99=$R_P99 G1_NON2XX=$R_NON2XX G1_ERR=$R_ERRORS

# e. liveliness throughput
run_load liveliness_c$CONNS "$CONNS" "$LIVE_URL" get
L_RPS=$R_RPS L_P50=$R_P50 L_P99=$R_P99 L_NON2XX=$R_NON2XX L_ERR=$R_ERRORS

RSS_END=$(rss_kb "$GW_PID" VmRSS); HWM_END=$(rss_kb "$GW_PID" VmHWM)
curl -s "http://127.0.0.1:$MOCK_PORT/mock/stats" >"$OUT/mock_stats.json" || true
stop_pid "$GW_PID"; GW_PID=""

# f. Response cache: the same request answered from the gateway's cache (in memory, then in Redis),
# against the direct-to-mock baseline above. One request stores the answer; every measured request
# is a hit.
BENCH_REDIS_HOST=${BENCH_REDIS_HOST:-127.0.0.1}
BENCH_REDIS_PORT=${BENCH_REDIS_PORT:-6379}
cache_runs() {   # cache_runs NAME CACHE_PARAMS_YAML; sets C64_RPS C64_P50 C64_P99 C1_P50 C1_P99 CERR
    local name=$1 params=$2 cfg=$OUT/config_cache_$1.yaml
    { cat "$OUT/config.yaml"; printf 'litellm_settings:\n  cache: true\n  cache_params:\n%b' "$params"; } >"$cfg"
    sed -i "s#sqlite:///$OUT/tollgate.db#sqlite:///$OUT/tollgate_cache_$name.db#" "$cfg"
    port_free "$GW_PORT" || die "port $GW_PORT still in use"
    start_gateway "gateway_cache_$name" "$cfg"
    wait_first_200 >/dev/null || die "gateway with the $name cache did not start (see $OUT/gateway_cache_$name.stderr)"
    curl -s -o /dev/null -H "Authorization: Bearer $MASTER_KEY" -H "Content-Type: application/json" -d "$BODY" "$GW_URL"
    sleep 0.5   # a Redis write is off the request path
    curl -s -D "$OUT/smoke_cache_$name.headers" -o /dev/null -H "Authorization: Bearer $MASTER_KEY" \
        -H "Content-Type: application/json" -d "$BODY" "$GW_URL"
    grep -qi '^x-litellm-response-cost: 0\b' "$OUT/smoke_cache_$name.headers" \
        || die "the $name cache did not answer the repeated request (see $OUT/smoke_cache_$name.headers)"
    local before after
    before=$(curl -s "http://127.0.0.1:$MOCK_PORT/mock/stats" | jq -r '.total // 0')
    run_load "cache_${name}_c$CONNS" "$CONNS" "$GW_URL" chat
    C64_RPS=$R_RPS C64_P50=$R_P50 C64_P99=$R_P99 CERR=$((R_NON2XX + R_ERRORS))
    run_load "cache_${name}_c1" 1 "$GW_URL" chat
    C1_P50=$R_P50 C1_P99=$R_P99 CERR=$((CERR + R_NON2XX + R_ERRORS))
    after=$(curl -s "http://127.0.0.1:$MOCK_PORT/mock/stats" | jq -r '.total // 0')
    CALLS=$((after - before))
    stop_pid "$GW_PID"; GW_PID=""
    log "$name cache: the mock was called $CALLS times during the hit runs"
}
# g. LiteLLM's per-request Prometheus series on (`callbacks: ["prometheus"]`), same request.
cfg=$OUT/config_prometheus.yaml
{ cat "$OUT/config.yaml"; printf 'litellm_settings:\n  callbacks: ["prometheus"]\n'; } >"$cfg"
sed -i "s#sqlite:///$OUT/tollgate.db#sqlite:///$OUT/tollgate_prometheus.db#" "$cfg"
port_free "$GW_PORT" || die "port $GW_PORT still in use"
start_gateway gateway_prometheus "$cfg"
wait_first_200 >/dev/null || die "gateway with prometheus did not start (see $OUT/gateway_prometheus.stderr)"
run_load "gateway_prometheus_c$CONNS" "$CONNS" "$GW_URL" chat
P64_RPS=$R_RPS P64_P50=$R_P50 P64_P99=$R_P99 P64_ERR=$((R_NON2XX + R_ERRORS))
curl -s "http://127.0.0.1:$GW_PORT/metrics" | grep -c '^litellm_requests_metric_total' >"$OUT/prometheus_series.txt" || true
stop_pid "$GW_PID"; GW_PID=""

# h. Observability on: the Prometheus series, OpenTelemetry traces (OTLP/HTTP) and two logging
# callbacks (generic_api, langfuse), all sent to the mock's sink (/mock/sink/…: answers 200 without
# parsing, so the receiving side costs as little as it can and the gateway's side is measured).
cfg=$OUT/config_observability.yaml
{ cat "$OUT/config.yaml"; printf 'litellm_settings:\n  callbacks: ["prometheus", "otel", "generic_api", "langfuse"]\n'; } >"$cfg"
sed -i "s#sqlite:///$OUT/tollgate.db#sqlite:///$OUT/tollgate_observability.db#" "$cfg"
port_free "$GW_PORT" || die "port $GW_PORT still in use"
SINK="http://127.0.0.1:$MOCK_PORT/mock/sink"
OTEL_EXPORTER=otlp_http OTEL_ENDPOINT="$SINK" GENERIC_LOGGER_ENDPOINT="$SINK/generic" \
    LANGFUSE_HOST="$SINK" LANGFUSE_PUBLIC_KEY=pk-bench LANGFUSE_SECRET_KEY=sk-bench \
    start_gateway gateway_observability "$cfg"
wait_first_200 >/dev/null || die "gateway with observability did not start (see $OUT/gateway_observability.stderr)"
run_load "gateway_observability_c$CONNS" "$CONNS" "$GW_URL" chat
O64_RPS=$R_RPS O64_P50=$R_P50 O64_P99=$R_P99 O64_ERR=$((R_NON2XX + R_ERRORS))
sleep 6   # the last batches (callbacks every 0.5 s, spans every 5 s) leave
curl -s "http://127.0.0.1:$GW_PORT/metrics" >"$OUT/observability_metrics.txt" || true
metric_sum() { awk -v n="$1" '$1 == n || index($1, n "{") == 1 {s += $NF} END {printf "%d", s}' "$OUT/observability_metrics.txt"; }
O_SPANS=$(metric_sum tollgate_otel_spans_exported_total)
O_SPANS_DROPPED=$(metric_sum tollgate_otel_spans_dropped_total)
O_EVENTS=$(metric_sum tollgate_callback_events_sent_total)
O_EVENTS_FAILED=$(metric_sum litellm_callback_logging_failures_metric_total)
O_SINK=$(curl -s "http://127.0.0.1:$MOCK_PORT/mock/receivers" | jq -r '"\(.sink.requests) requests, \(.sink.bytes) bytes"')
stop_pid "$GW_PID"; GW_PID=""
log "observability: spans exported $O_SPANS dropped $O_SPANS_DROPPED; callback events sent $O_EVENTS failed $O_EVENTS_FAILED; sink $O_SINK"

cache_runs local '    type: local\n'
HL64_RPS=$C64_RPS HL64_P50=$C64_P50 HL64_P99=$C64_P99 HL1_P50=$C1_P50 HL1_P99=$C1_P99 HL_ERR=$CERR HL_CALLS=$CALLS
if (exec 3<>"/dev/tcp/$BENCH_REDIS_HOST/$BENCH_REDIS_PORT") 2>/dev/null; then
    cache_runs redis "    type: redis\n    host: $BENCH_REDIS_HOST\n    port: $BENCH_REDIS_PORT\n    namespace: bench-$TS\n"
    HR64_RPS=$C64_RPS HR64_P50=$C64_P50 HR64_P99=$C64_P99 HR1_P50=$C1_P50 HR1_P99=$C1_P99 HR_ERR=$CERR HR_CALLS=$CALLS
else
    log "no Redis at $BENCH_REDIS_HOST:$BENCH_REDIS_PORT: the Redis cache rows are skipped"
    HR64_RPS=NA HR64_P50=NA HR64_P99=NA HR1_P50=NA HR1_P99=NA HR_ERR=NA HR_CALLS=NA
fi
read -r E1 E5 E15 _ </proc/loadavg
LOAD_AT_END="$E1 $E5 $E15"
GW_STDERR_LINES=$(wc -l <"$OUT/gateway.stderr")

# ---------------------------------------------------------------------------------------------
# Summary
mb() { awk -v k="$1" 'BEGIN {printf "%.1f MB", k / 1024}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b + 0 == 0) print "NA"; else printf "%.2f×", a / b}'; }
yesno() { if awk "BEGIN {exit !($1)}"; then echo "**met**"; else echo "**missed**"; fi; }
ADD_P50=$((G1_P50 - D1_P50))
ADD_P99=$((G1_P99 - D1_P99))
ADD64_P50=$((G64_P50 - D64_P50))
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo " (+ uncommitted changes)" || true)
BIN_MTIME=$(date -u -r "$BIN" +%Y-%m-%dT%H:%M:%SZ)
CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)

{
cat <<EOF
## Tollgate benchmark $TS

| metric | direct (mock) | gateway | ratio / added | SPEC target | target met? |
| --- | ---: | ---: | ---: | --- | --- |
| chat req/s, $CONNS conns | $D64_RPS | $G64_RPS | $(ratio "$G64_RPS" "$D64_RPS") of direct | ≥ 15,000 req/s via gateway | $(yesno "$G64_RPS >= 15000") |
| p50 latency, $CONNS conns | ${D64_P50} µs | ${G64_P50} µs | +${ADD64_P50} µs | | |
| p99 latency, $CONNS conns | ${D64_P99} µs | ${G64_P99} µs | +$((G64_P99 - D64_P99)) µs | | |
| non-2xx / socket errors, $CONNS conns | $D64_NON2XX / $D64_ERR | $G64_NON2XX / $G64_ERR | | 0 | $(yesno "$D64_NON2XX + $D64_ERR + $G64_NON2XX + $G64_ERR == 0") |
| chat req/s, $CONNS conns, virtual key with rpm/tpm limits + budget | $D64_RPS | $K64_RPS | $(ratio "$K64_RPS" "$D64_RPS") of direct | ≥ 15,000 req/s via gateway | $(yesno "$K64_RPS >= 15000") |
| p50 / p99 latency, virtual key | ${D64_P50} / ${D64_P99} µs | ${K64_P50} / ${K64_P99} µs | +$((K64_P50 - D64_P50)) / +$((K64_P99 - D64_P99)) µs | | |
| non-2xx / socket errors, virtual key | | $K64_NON2XX / $K64_ERR | | 0 | $(yesno "$K64_NON2XX + $K64_ERR == 0") |
| p50 latency, 1 conn | ${D1_P50} µs | ${G1_P50} µs | **+${ADD_P50} µs added** | ≤ 100 µs added p50 | $(yesno "$ADD_P50 <= 100") |
| p99 latency, 1 conn | ${D1_P99} µs | ${G1_P99} µs | +${ADD_P99} µs | | |
| req/s, 1 conn | $D1_RPS | $G1_RPS | $(ratio "$G1_RPS" "$D1_RPS") | | |
| non-2xx / socket errors, 1 conn | $D1_NON2XX / $D1_ERR | $G1_NON2XX / $G1_ERR | | 0 | $(yesno "$D1_NON2XX + $D1_ERR + $G1_NON2XX + $G1_ERR == 0") |
| gateway RSS idle (VmRSS) | | $(mb "$RSS_IDLE") | | ≤ 30 MB idle | $(yesno "$RSS_IDLE <= 30720") |
| gateway RSS after $CONNS-conn load (VmRSS / VmHWM peak) | | $(mb "$RSS_LOAD") / $(mb "$HWM_LOAD") | | | |
| gateway RSS after virtual-key load (VmRSS / VmHWM peak) | | $(mb "$RSS_KEY") / $(mb "$HWM_KEY") | | | |
| gateway RSS at end (VmRSS / VmHWM peak) | | $(mb "$RSS_END") / $(mb "$HWM_END") | | | |
| start → first 200 on /health/liveliness (median of $STARTUP_RUNS) | | ${START_MED} ms | | ≤ 200 ms | $(yesno "$START_MED <= 200") |
| start → "tollgate listening on" stdout line (median) | | ${LISTEN_MED} ms | | | |
| GET /health/liveliness, $CONNS conns | | $L_RPS req/s (p50 ${L_P50} µs, p99 ${L_P99} µs, non-2xx $L_NON2XX, errors $L_ERR) | | sanity | |
| chat req/s, $CONNS conns, with LiteLLM's Prometheus series (\`callbacks: ["prometheus"]\`) | $D64_RPS | $P64_RPS | $(ratio "$P64_RPS" "$G64_RPS") of the gateway without | | |
| p50 / p99 latency with Prometheus, $CONNS conns | ${D64_P50} / ${D64_P99} µs | ${P64_P50} / ${P64_P99} µs | | | errors $P64_ERR |
| chat req/s, $CONNS conns, observability on: Prometheus + OTLP traces + \`generic_api\` + \`langfuse\` (to the mock's sink) | $D64_RPS | $O64_RPS | $(ratio "$O64_RPS" "$G64_RPS") of the gateway without | ≥ 0.90× of without (issue 13) | $(yesno "$O64_RPS >= 0.9 * $G64_RPS") |
| p50 / p99 latency, observability on, $CONNS conns | ${D64_P50} / ${D64_P99} µs | ${O64_P50} / ${O64_P99} µs | | | errors $O64_ERR |
| what observability sent during that run (and the 6 s after) | | spans exported $O_SPANS, dropped $O_SPANS_DROPPED; callback events sent $O_EVENTS, failed $O_EVENTS_FAILED; sink took $O_SINK | | | |
| cache hit (in memory) req/s, $CONNS conns | $D64_RPS | $HL64_RPS | $(ratio "$HL64_RPS" "$D64_RPS") of direct | a hit faster than the mock answering | $(yesno "$HL64_RPS > $D64_RPS") |
| cache hit (in memory) p50 / p99, $CONNS conns | ${D64_P50} / ${D64_P99} µs | ${HL64_P50} / ${HL64_P99} µs | | | |
| cache hit (in memory) p50 / p99, 1 conn | ${D1_P50} / ${D1_P99} µs | ${HL1_P50} / ${HL1_P99} µs | $(( HL1_P50 - D1_P50 )) µs vs direct p50 | | |
| cache hit (in memory): errors / mock calls during the runs | | $HL_ERR / $HL_CALLS | | 0 / 0 | $(yesno "$HL_ERR + $HL_CALLS == 0") |
| cache hit (Redis) req/s, $CONNS conns | $D64_RPS | $HR64_RPS | $(ratio "$HR64_RPS" "$D64_RPS") of direct | | |
| cache hit (Redis) p50 / p99, $CONNS conns | ${D64_P50} / ${D64_P99} µs | ${HR64_P50} / ${HR64_P99} µs | | | |
| cache hit (Redis) p50 / p99, 1 conn | ${D1_P50} / ${D1_P99} µs | ${HR1_P50} / ${HR1_P99} µs | | | |
| cache hit (Redis): errors / mock calls during the runs | | $HR_ERR / $HR_CALLS | | 0 / 0 | |

CPU use during each measured run (% of one core; "other" = everything else on the machine, i.e. interference):
$(awk -F'\t' -v lim="$NOISE_MAX" 'NR > 1 && $6 > lim {bad = bad " " $1 " (" $6 "%)"} END {if (bad != "") print "\n**WARNING: other processes used more than " lim "% of a core during:" bad ". Those numbers are disturbed; rerun in a quiet window.**\n"}' "$OUT/cpu.tsv")

| run | wall s | gateway | mock | load generator | other |
| --- | ---: | ---: | ---: | ---: | ---: |
$(tail -n +2 "$OUT/cpu.tsv" | awk -F'\t' '{printf "| %s | %s | %s%% | %s%% | %s%% | %s%% |\n", $1, $2, $3, $4, $5, $6}')

Startup runs (ms to first 200): ${STARTUP_MS[*]}; ("listening" line: ${LISTEN_MS[*]}).

Setup: mock \`--workers $MOCK_WORKERS --latency-ms 0\` on CPU $MOCK_CPUS; gateway \`--num_workers $GATEWAY_WORKERS\` on CPU $GATEWAY_CPUS;
load generator $LOADGEN_VERSION, $LOAD_THREADS thread(s), on CPU $LOAD_CPUS; warm-up $WARMUP, each run $DURATION.
Request: POST \`$BODY\` (same bytes direct and via the gateway).

Machine: nproc $NPROC; CPU: $CPU_MODEL; kernel $(uname -r); tollgate commit $COMMIT$DIRTY; binary built $BIN_MTIME$([[ $SKIP_BUILD == 1 ]] && echo " (SKIP_BUILD=1: not rebuilt by this run)").
Load average at start: $LOAD_AT_START (1/5/15 min); at end (includes this benchmark): $LOAD_AT_END.
Gateway stderr: $GW_STDERR_LINES lines. Raw output: bench/results/$TS/
EOF
} | tee "$OUT/summary.md"

{
    echo "timestamp=$TS"; echo "nproc=$NPROC"; echo "cpu_model=$CPU_MODEL"; echo "kernel=$(uname -a)"
    echo "commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)$DIRTY"; echo "binary_mtime=$BIN_MTIME skip_build=$SKIP_BUILD"; echo "loadavg_start=$LOAD_AT_START"
    echo "loadavg_end=$LOAD_AT_END"; echo "loadgen=$LOADGEN_VERSION"; echo "duration=$DURATION warmup=$WARMUP"
    echo "gateway_cpus=$GATEWAY_CPUS mock_cpus=$MOCK_CPUS load_cpus=$LOAD_CPUS gateway_workers=$GATEWAY_WORKERS mock_workers=$MOCK_WORKERS load_threads=$LOAD_THREADS"
    echo "--- git diff --stat (working tree the binary was built from)"; git diff --stat 2>/dev/null || true
} >"$OUT/machine.txt"

log "results in $OUT"
