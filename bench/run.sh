#!/usr/bin/env bash
# Tollgate benchmark: direct-to-mock vs through nginx vs through the gateway, measured in the same run.
#
#   bash bench/run.sh              # default run (~4 min): direct, nginx, gateway and its extra configs
#   bash bench/run.sh --peers      # the same plus LiteLLM's proxy (installed into a venv under target/)
#   bash bench/run.sh --streams    # streaming soak only: STREAMS concurrent streams of SOAK_SECONDS each
#   bash bench/run.sh --soak       # memory soak only: the virtual key at CONNS conns for SOAK_MINUTES,
#                                  # gateway RSS sampled every SOAK_SAMPLE s (idle, warm-up, growth after)
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
#   NGINX_PORT [14100]                    nginx relay to the mock (pinned to GATEWAY_CPUS, 1 worker)
#   NGINX [auto]                          nginx binary; installed with apt-get when missing; 0 = skip
#   UNPINNED [0]                          1 = also measure direct, nginx, gateway and virtual key
#                                         with no process pinned (64 and 1 conns)
#   PEERS [0]                             1 = same as --peers
#   PEER_PORT [14200]  PEER_DURATION [DURATION]   LiteLLM proxy port / length of its runs
#   PEER_VENV [target/bench-venv]         venv LiteLLM is installed into (pip install 'litellm[proxy]')
#   STREAMS [2000]  SOAK_SECONDS [20]     --streams: concurrent streams, length of each stream
#   SOAK_CHUNKS [10]  SOAK_RAMP [2]       content chunks per stream (1-12); seconds to open them all
#   SOAK_MINUTES [5]  SOAK_SAMPLE [5]     --soak: minutes of load (one wrk run); seconds between RSS samples
set -euo pipefail

MODE=default
PEERS=${PEERS:-0}
for arg in "$@"; do
    case $arg in
        --streams) MODE=streams ;;
        --soak) MODE=soak ;;
        --peers) PEERS=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $arg (expected --streams, --soak or --peers)" >&2; exit 2 ;;
    esac
done

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
NGINX_PORT=${NGINX_PORT:-14100}
NGINX=${NGINX:-}
UNPINNED=${UNPINNED:-0}
PEER_PORT=${PEER_PORT:-14200}
PEER_DURATION=${PEER_DURATION:-$DURATION}
STREAMS=${STREAMS:-2000}
SOAK_SECONDS=${SOAK_SECONDS:-20}
SOAK_CHUNKS=${SOAK_CHUNKS:-10}
SOAK_RAMP=${SOAK_RAMP:-2}
SOAK_MINUTES=${SOAK_MINUTES:-5}
SOAK_SAMPLE=${SOAK_SAMPLE:-5}

# Bare numbers are seconds.
[[ $DURATION =~ ^[0-9]+$ ]] && DURATION="${DURATION}s"
[[ $WARMUP =~ ^[0-9]+$ ]] && WARMUP="${WARMUP}s"
[[ $PEER_DURATION =~ ^[0-9]+$ ]] && PEER_DURATION="${PEER_DURATION}s"
(( SOAK_CHUNKS >= 1 && SOAK_CHUNKS <= 12 )) || { echo "SOAK_CHUNKS must be 1-12 (the mock's reply has 12 words)" >&2; exit 2; }
[[ $SOAK_MINUTES =~ ^[1-9][0-9]*$ && $SOAK_SAMPLE =~ ^[1-9][0-9]*$ ]] || { echo "SOAK_MINUTES and SOAK_SAMPLE must be whole numbers >= 1" >&2; exit 2; }

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
NGINX_PID=""
PEER_PID=""     # started with setsid: its process group is its own
SAMPLER_PID=""
cleanup() {
    local rc=$?
    [[ -n $SAMPLER_PID ]] && kill "$SAMPLER_PID" 2>/dev/null
    [[ -n $PEER_PID ]] && kill -INT -- "-$PEER_PID" 2>/dev/null
    for p in $GW_PID $NGINX_PID $MOCK_PID; do
        if kill -0 "$p" 2>/dev/null; then
            kill -INT "$p" 2>/dev/null || true
        fi
    done
    for p in $GW_PID $NGINX_PID $MOCK_PID $PEER_PID; do
        for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
        kill -KILL "$p" 2>/dev/null || true
    done
    [[ -n $PEER_PID ]] && kill -KILL -- "-$PEER_PID" 2>/dev/null
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

pin() {   # pin CPUS CMD...: run CMD on CPUS (taskset), or unpinned when CPUS is empty
    local cpus=$1; shift
    if [[ -n $cpus ]]; then taskset -c "$cpus" "$@"; else "$@"; fi
}
pin_prefix() {   # pin_prefix CPUS: sets PIN to the command prefix that pins to CPUS (for `&`
    # starts: a backgrounded function would run in a subshell, and $! would not be the process)
    if [[ -n $1 ]]; then PIN=(taskset -c "$1"); else PIN=(env); fi
}

tree_pids() {   # tree_pids PID...: these processes and all their descendants
    local p
    for p in "$@"; do
        [[ -n $p ]] || continue
        echo "$p"
        tree_pids $(ps -o pid= --ppid "$p" 2>/dev/null)
    done
}

# ---------------------------------------------------------------------------------------------
# Build
if [[ $SKIP_BUILD != 1 ]]; then
    log "building: cargo build --release --bin tollgate"
    cargo build --release --bin tollgate 2>&1 | tail -n 3 >&2
fi
[[ -x $BIN ]] || die "$BIN not found"

# ---------------------------------------------------------------------------------------------
# Load generator
# --soak runs wrk itself (one run with --latency).
[[ $MODE == soak && -n $LOADGEN && $LOADGEN != wrk ]] && die "--soak runs wrk (LOADGEN=$LOADGEN)"
if [[ -z $LOADGEN ]]; then
    if [[ $MODE != soak ]] && command -v oha >/dev/null; then LOADGEN=oha
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

wrk_parse() {   # wrk_parse FILE: sets R_RPS R_P50 R_P99 (µs) R_REQS R_NON2XX R_ERRORS from wrk --latency output
    local f=$1
    R_RPS=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$f")
    R_P50=$(to_us "$(awk '$1 == "50%" {print $2}' "$f")")
    R_P99=$(to_us "$(awk '$1 == "99%" {print $2}' "$f")")
    R_REQS=$(awk '/requests in/ {print $1}' "$f")
    R_NON2XX=$(awk -F: '/Non-2xx or 3xx responses/ {gsub(/ /, "", $2); print $2}' "$f")
    R_NON2XX=${R_NON2XX:-0}
    R_ERRORS=$(awk '/Socket errors:/ {gsub(/,/, ""); print $4 + $6 + $8 + $10}' "$f")
    R_ERRORS=${R_ERRORS:-0}
}

# run_load NAME CONNS URL KIND(chat|keychat|get) -> writes $OUT/NAME.txt (or .json) and sets
# R_RPS R_P50 R_P99 R_NON2XX R_ERRORS R_REQS, and R_HOP_US / R_MOCK_US (CPU µs per request of the
# hop under test, HOP_PIDS, and of the mock). RUN_DURATION overrides DURATION.
run_load() {
    local name=$1 conns=$2 url=$3 kind=$4 duration=${RUN_DURATION:-$DURATION}
    local threads=$LOAD_THREADS
    (( threads > conns )) && threads=$conns
    case $url in   # the hop whose CPU is counted
        *":$GW_PORT/"*) HOP_PIDS=$GW_PID ;;
        *":$NGINX_PORT/"*) HOP_PIDS=$NGINX_PID ;;
        *":$PEER_PORT/"*) HOP_PIDS=$PEER_PID ;;
        *) HOP_PIDS="" ;;
    esac
    if [[ $LOADGEN == wrk ]]; then
        local script=()
        [[ $kind == chat ]] && script=(-s "$OUT/chat.lua")
        [[ $kind == keychat ]] && script=(-s "${LUA_OVERRIDE:-$OUT/keychat.lua}")
        # RUN_TIMEOUT: wrk's per-request timeout (its default, 2 s, for every run but the peers').
        [[ -n ${RUN_TIMEOUT:-} ]] && script+=(--timeout "$RUN_TIMEOUT")
        pin "$LOAD_CPUS" wrk -t"$threads" -c"$conns" -d"$WARMUP" "${script[@]}" "$url" >"$OUT/$name.warmup.txt" 2>&1
        cpu_begin
        pin "$LOAD_CPUS" wrk -t"$threads" -c"$conns" -d"$duration" --latency "${script[@]}" "$url" >"$OUT/$name.txt" 2>&1
        cpu_end
        wrk_parse "$OUT/$name.txt"
    else
        local args=(--no-tui -j -c "$conns")
        [[ $kind == chat ]] && args+=(-m POST -H "Content-Type: application/json" -H "Authorization: Bearer $MASTER_KEY" -d "$BODY")
        [[ $kind == keychat ]] && args+=(-m POST -H "Content-Type: application/json" -H "Authorization: Bearer ${KEY_OVERRIDE:-$VIRTUAL_KEY}" -d "$BODY")
        pin "$LOAD_CPUS" oha "${args[@]}" -z "$WARMUP" "$url" >"$OUT/$name.warmup.json" 2>&1 || true
        cpu_begin
        pin "$LOAD_CPUS" oha "${args[@]}" -z "$duration" "$url" >"$OUT/$name.json"
        cpu_end
        local f=$OUT/$name.json
        R_RPS=$(jq -r '.summary.requestsPerSec | floor' "$f")
        R_P50=$(jq -r '.latencyPercentiles.p50 * 1000000 | round' "$f")
        R_P99=$(jq -r '.latencyPercentiles.p99 * 1000000 | round' "$f")
        R_REQS=$(jq -r '[.statusCodeDistribution[]] | add // 0' "$f")
        R_NON2XX=$(jq -r '[.statusCodeDistribution | to_entries[] | select(.key | startswith("2") | not) | .value] | add // 0' "$f")
        R_ERRORS=$(jq -r '[.errorDistribution[]?] | add // 0' "$f")
    fi
    cpu_record "$name" "$R_REQS"
    log "$name: ${R_RPS} req/s, p50 ${R_P50} us, p99 ${R_P99} us, non-2xx ${R_NON2XX}, errors ${R_ERRORS}, hop CPU ${R_HOP_US} us/req"
}

# CPU accounting around each measured run, to show who used the CPUs and to expose interference
# (e.g. a compile started by someone else). Jiffies from /proc/stat and /proc/<pid>/stat; the load
# generator's share from bash's `times` (children of this shell: only it runs during a measurement).
# The "hop" is the process (tree) under test, HOP_PIDS: the gateway, nginx (master and worker) or
# the peer proxy; none in the direct runs. Its utime+stime over the run, divided by the requests
# served, is the CPU per request.
CLK_TCK=$(getconf CLK_TCK)
HOP_PIDS=""
: >"$OUT/cpu.tsv"
printf 'run\twall_s\thop_core%%\tmock_core%%\tloadgen_core%%\tother_core%%\thop_cpu_s\trequests\thop_us_per_req\tmock_us_per_req\n' >"$OUT/cpu.tsv"
sys_busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
pid_jiffies() {   # pid_jiffies PID...: utime+stime of these processes, summed
    local p t=0 j
    for p in "$@"; do
        [[ -n $p && -r /proc/$p/stat ]] || continue
        # Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
        j=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}') || j=0
        t=$((t + ${j:-0}))
    done
    echo "$t"
}
children_s() {   # user+sys seconds of this shell's waited-for children, from the `times` builtin;
    # sets CH_S. (`times` must run in this shell: a $(...) subshell would report its own zeros.)
    times >"$OUT/.times"
    CH_S=$(awk 'NR == 2 {s = 0; for (i = 1; i <= 2; i++) {x = $i; m = x; sub(/m.*/, "", m); sub(/^[0-9]+m/, "", x); sub(/s$/, "", x); s += m * 60 + x}; print s}' "$OUT/.times")
}
cpu_begin() {
    children_s
    C_HOP=$(tree_pids $HOP_PIDS | tr '\n' ' ')   # the hop's processes, fixed for this run
    C_T0=$EPOCHREALTIME C_SYS0=$(sys_busy) C_GW0=$(pid_jiffies $C_HOP) C_MOCK0=$(pid_jiffies "$MOCK_PID") C_CH0=$CH_S
}
cpu_end() {
    C_T1=$EPOCHREALTIME
    C_SYS1=$(sys_busy); C_GW1=$(pid_jiffies $C_HOP); C_MOCK1=$(pid_jiffies "$MOCK_PID"); children_s; C_CH1=$CH_S
}
cpu_record() {   # cpu_record NAME REQUESTS: one cpu.tsv line for the run between cpu_begin and cpu_end
    local line
    line=$(awk -v n="$1" -v r="${2:-0}" -v t0="$C_T0" -v t1="$C_T1" -v hz="$CLK_TCK" -v s0="$C_SYS0" -v s1="$C_SYS1" \
        -v g0="$C_GW0" -v g1="$C_GW1" -v m0="$C_MOCK0" -v m1="$C_MOCK1" -v c0="$C_CH0" -v c1="$C_CH1" 'BEGIN {
            w = t1 - t0; g = (g1 - g0) / hz; m = (m1 - m0) / hz; l = c1 - c0; o = (s1 - s0) / hz - g - m - l
            if (o < 0) o = 0
            hu = (r > 0 && g > 0) ? sprintf("%.1f", 1e6 * g / r) : "NA"
            mu = (r > 0) ? sprintf("%.1f", 1e6 * m / r) : "NA"
            printf "%s\t%.1f\t%.0f\t%.0f\t%.0f\t%.0f\t%.2f\t%d\t%s\t%s\n", n, w, 100 * g / w, 100 * m / w, 100 * l / w, 100 * o / w, g, r, hu, mu }')
    printf '%s\n' "$line" >>"$OUT/cpu.tsv"
    R_HOP_US=$(cut -f9 <<<"$line") R_MOCK_US=$(cut -f10 <<<"$line")
}

rss_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
tree_rss_kb() {   # tree_rss_kb PID FIELD: FIELD (VmRSS, VmHWM) summed over PID and its descendants
    local p t=0 v
    for p in $(tree_pids "$1"); do v=$(rss_kb "$p" "$2" 2>/dev/null || true); t=$((t + ${v:-0})); done
    echo "$t"
}

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

MOCK_ARGS=(--workers "$MOCK_WORKERS" --latency-ms 0)
if [[ $MODE == streams ]]; then
    # Each stream: the role event at once, then SOAK_CHUNKS content events, the finish event and
    # [DONE], CHUNK_MS apart: SOAK_SECONDS in all.
    CHUNK_MS=$(( SOAK_SECONDS * 1000 / (SOAK_CHUNKS + 2) ))
    MOCK_ARGS+=(--chunk-delay-ms "$CHUNK_MS" --stream-chunks "$SOAK_CHUNKS")
fi
log "starting mock on CPU $MOCK_CPUS (${MOCK_ARGS[*]}) at :$MOCK_PORT"
pin_prefix "$MOCK_CPUS"
"${PIN[@]}" "$BIN" mock-provider --host 127.0.0.1 --port "$MOCK_PORT" "${MOCK_ARGS[@]}" \
    >"$OUT/mock.stdout" 2>"$OUT/mock.stderr" &
MOCK_PID=$!
for _ in $(seq 1 200); do grep -q "listening on" "$OUT/mock.stdout" 2>/dev/null && break; sleep 0.025; done
grep -q "listening on" "$OUT/mock.stdout" || die "mock did not start (see $OUT/mock.stderr)"

start_gateway() {   # start_gateway LOGPREFIX [CONFIG]; sets GW_PID, T_EXEC (EPOCHREALTIME just before the fork)
    local prefix=$1 config=${2:-$OUT/config.yaml}
    pin_prefix "$GATEWAY_CPUS"
    T_EXEC=$EPOCHREALTIME
    "${PIN[@]}" "$BIN" --config "$config" --host 127.0.0.1 --port "$GW_PORT" \
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

# The benchmark's virtual key, on the running gateway (GW_PID): rpm/tpm limits far above what a run
# reaches (so every request is admitted but counted), a budget, and spend tracking. Sets
# VIRTUAL_KEY, writes $OUT/keychat.lua, and checks one request with it is a 200 with rate-limit headers.
make_virtual_key() {
    local code
    VIRTUAL_KEY=$(curl -s --max-time 5 -H "Authorization: Bearer $MASTER_KEY" -H "Content-Type: application/json" \
        -d '{"rpm_limit": 100000000, "tpm_limit": 10000000000, "max_budget": 1000000, "key_alias": "bench-'"$TS"'"}' \
        "http://127.0.0.1:$GW_PORT/key/generate" | jq -r '.key // empty')
    [[ $VIRTUAL_KEY == sk-* ]] || die "could not create the benchmark's virtual key"
    write_lua "$OUT/keychat.lua" "$VIRTUAL_KEY"
    code=$(curl -s -o "$OUT/smoke_key.json" -D "$OUT/smoke_key.headers" -w '%{http_code}' --max-time 5 \
        -H "Content-Type: application/json" -H "Authorization: Bearer $VIRTUAL_KEY" -d "$BODY" "$GW_URL" || true)
    [[ $code == 200 ]] || die "virtual-key smoke test returned HTTP $code"
    grep -qi '^x-ratelimit-remaining-requests' "$OUT/smoke_key.headers" || die "virtual-key response has no x-ratelimit headers"
}

# ---------------------------------------------------------------------------------------------
# From here on this script (the startup poller, the stdout timestamper, curl) runs on LOAD_CPUS;
# the mock and the gateway are started with their own taskset.
taskset -cp "$LOAD_CPUS" $$ >/dev/null

# ---------------------------------------------------------------------------------------------
# nginx: the same hop done by a plain reverse proxy, pinned like the gateway, relaying to the same
# mock over keep-alive upstream connections. It runs in the foreground from its own prefix and
# config in $OUT/nginx; when this script runs as root, nginx runs as nobody (setpriv).
NGINX_URL="http://127.0.0.1:$NGINX_PORT/v1/chat/completions"
find_nginx() {   # sets NGINX to a binary, installing nginx-light with apt-get if needed; "" if none
    [[ $NGINX == 0 ]] && { NGINX=""; return; }
    [[ -n $NGINX ]] && return
    NGINX=$(command -v nginx || true)
    [[ -z $NGINX && -x /usr/sbin/nginx ]] && NGINX=/usr/sbin/nginx
    if [[ -z $NGINX ]]; then
        log "nginx not found: installing nginx-light with apt-get"
        local sudo=""
        [[ $(id -u) != 0 ]] && sudo=$(command -v sudo || true)
        { $sudo apt-get install -y nginx-light || { $sudo apt-get update && $sudo apt-get install -y nginx-light; }; } >"$OUT/nginx_install.log" 2>&1 || true
        NGINX=$(command -v nginx || true)
        [[ -z $NGINX && -x /usr/sbin/nginx ]] && NGINX=/usr/sbin/nginx
        [[ -n $NGINX ]] || log "nginx could not be installed (see $OUT/nginx_install.log): the nginx rows are skipped"
    fi
}
start_nginx() {   # start_nginx CPUS: sets NGINX_PID (the master; one worker is its child)
    local ngx=$OUT/nginx asuser=()
    mkdir -p "$ngx"
    cat >"$OUT/nginx.conf" <<EOF
daemon off;
worker_processes 1;
worker_rlimit_nofile 65536;
pid $ngx/nginx.pid;
error_log $ngx/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $ngx/client_body;
    proxy_temp_path $ngx/proxy;
    fastcgi_temp_path $ngx/fastcgi;
    uwsgi_temp_path $ngx/uwsgi;
    scgi_temp_path $ngx/scgi;
    keepalive_requests 100000000;
    upstream mock {
        server 127.0.0.1:$MOCK_PORT;
        keepalive 64;
        keepalive_requests 100000000;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT backlog=4096;
        location / {
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
    if [[ $(id -u) == 0 ]] && command -v setpriv >/dev/null; then
        chmod 0777 "$ngx"
        asuser=(setpriv --reuid=nobody --regid="$(id -gn nobody)" --clear-groups)
    fi
    port_free "$NGINX_PORT" || die "port $NGINX_PORT is in use (set NGINX_PORT)"
    pin_prefix "$1"
    "${PIN[@]}" "${asuser[@]}" "$NGINX" -p "$ngx" -c "$OUT/nginx.conf" -e "$ngx/error.log" \
        >"$OUT/nginx.stdout" 2>"$OUT/nginx.stderr" &
    NGINX_PID=$!
    local code=""
    for _ in $(seq 1 100); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -H "Content-Type: application/json" -d "$BODY" "$NGINX_URL" || true)
        [[ $code == 200 ]] && break
        kill -0 "$NGINX_PID" 2>/dev/null || break
        sleep 0.05
    done
    [[ $code == 200 ]] || die "nginx did not relay to the mock (HTTP $code; see $OUT/nginx.stderr and $OUT/nginx/error.log)"
}

# ---------------------------------------------------------------------------------------------
# --streams: the streaming soak. STREAMS concurrent streaming chat completions, each SOAK_SECONDS
# long (the mock paces its events), opened over SOAK_RAMP seconds by bench/soak.py: first directly
# to the mock (baseline), then through the gateway. Checks every stream arrives intact; measures
# time to first chunk, the relaying process's RSS (before, peak, after) and its CPU per chunk.
if [[ $MODE == streams ]]; then
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    CLIENT_FDS=$(ulimit -n)
    (( CLIENT_FDS >= STREAMS + 64 )) || log "warning: this shell may open $CLIENT_FDS files, fewer than $STREAMS streams need"
    port_free "$GW_PORT" || die "port $GW_PORT is in use (set GW_PORT)"
    start_gateway gateway
    wait_first_200 >/dev/null || die "gateway did not start (see $OUT/gateway.stderr)"
    GW_FDS=$(awk '/^Max open files/ {print $4 " (hard " $5 ")"}' "/proc/$GW_PID/limits")
    MOCK_FDS=$(awk '/^Max open files/ {print $4 " (hard " $5 ")"}' "/proc/$MOCK_PID/limits")
    EXPECT_TEXT=$(curl -s -H "Content-Type: application/json" -d "$BODY" "$MOCK_URL" | jq -r '.choices[0].message.content')
    [[ -n $EXPECT_TEXT && $EXPECT_TEXT != null ]] || die "no reply from the mock"
    # The content splits into at most one chunk per word.
    EXPECT_PARTS=$(awk -v n="$SOAK_CHUNKS" -v w="$(wc -w <<<"$EXPECT_TEXT")" 'BEGIN {print (n < w) ? n : w}')
    SBODY='{"model":"bench-gpt","messages":[{"role":"user","content":"hi"}],"stream":true}'
    # Warm the gateway's worker and upstream pool with non-streaming requests (not paced).
    pin "$LOAD_CPUS" wrk -t1 -c64 -d"$WARMUP" -s "$OUT/chat.lua" "$GW_URL" >"$OUT/gateway_warmup.txt" 2>&1
    sleep 1

    soak_run() {   # soak_run NAME URL KEY PID: sets S_* from the client's report and PID's figures
        local name=$1 url=$2 key=$3 pid=$4 t0 t1 c0 c1
        S_RSS0=$(rss_kb "$pid" VmRSS)
        (
            while kill -0 "$pid" 2>/dev/null; do
                while read -r k v _; do [[ $k == VmRSS: ]] && echo "$v"; done <"/proc/$pid/status"
                sleep 0.25
            done
        ) >"$OUT/$name.rss" 2>/dev/null &
        SAMPLER_PID=$!
        c0=$(pid_jiffies "$pid"); t0=$EPOCHREALTIME
        log "$name: $STREAMS streams of ${SOAK_SECONDS}s ($((SOAK_CHUNKS + 2)) events ${CHUNK_MS} ms apart, then [DONE]) to $url"
        pin "$LOAD_CPUS" python3 "$ROOT/bench/soak.py" --url "$url" --streams "$STREAMS" --ramp "$SOAK_RAMP" \
            --key "$key" --body "$SBODY" --expect-text "$EXPECT_TEXT" --expect-parts "$EXPECT_PARTS" \
            --timeout $((SOAK_SECONDS * 3 + 60)) --out "$OUT/$name.json" 2> >(tee "$OUT/$name.log" >&2) \
            || die "the soak client failed (see $OUT/$name.log)"
        c1=$(pid_jiffies "$pid"); t1=$EPOCHREALTIME
        sleep 3
        kill "$SAMPLER_PID" 2>/dev/null; wait "$SAMPLER_PID" 2>/dev/null || true; SAMPLER_PID=""
        S_RSS_AFTER=$(rss_kb "$pid" VmRSS)
        S_RSS_PEAK=$(sort -n "$OUT/$name.rss" | tail -n 1)
        local j=$OUT/$name.json
        S_OK=$(jq -r .ok "$j") S_FAILED=$(jq -r .failed "$j") S_FAILURES=$(jq -c .failures "$j")
        S_OPEN=$(jq -r .max_open "$j") S_EVENTS=$(jq -r .events "$j") S_WALL=$(jq -r .wall_s "$j")
        S_FC50=$(jq -r .first_chunk_ms.p50 "$j") S_FC99=$(jq -r .first_chunk_ms.p99 "$j")
        S_FT50=$(jq -r .first_token_ms.p50 "$j") S_FT99=$(jq -r .first_token_ms.p99 "$j")
        S_LEN50=$(jq -r .stream_s.p50 "$j") S_LENMAX=$(jq -r .stream_s.max "$j")
        S_CPU=$(awk -v a="$c0" -v b="$c1" -v hz="$CLK_TCK" 'BEGIN {printf "%.2f", (b - a) / hz}')
        S_CORE=$(awk -v c="$S_CPU" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", 100 * c / (b - a)}')
        S_US_CHUNK=$(awk -v c="$S_CPU" -v n="$S_EVENTS" 'BEGIN {if (n > 0) printf "%.1f", 1e6 * c / n; else print "NA"}')
        S_GROWTH=$(awk -v a="$S_RSS0" -v p="$S_RSS_PEAK" -v n="$S_OPEN" 'BEGIN {if (n > 0) printf "%.1f", (p - a) / n; else print "NA"}')
        printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$S_CPU" "$S_EVENTS" "$S_US_CHUNK" "$S_CORE" >>"$OUT/cpu_streams.tsv"
    }
    printf 'run\tcpu_s\tevents\tus_per_event\tcore%%\n' >"$OUT/cpu_streams.tsv"
    soak_run streams_direct "$MOCK_URL" "" "$MOCK_PID"
    for v in OK FAILED FAILURES OPEN EVENTS WALL FC50 FC99 FT50 FT99 LEN50 LENMAX CPU CORE US_CHUNK GROWTH RSS0 RSS_PEAK RSS_AFTER; do
        eval "SD_$v=\$S_$v"
    done
    soak_run streams_gateway "$GW_URL" "$MASTER_KEY" "$GW_PID"
    stop_pid "$GW_PID"; GW_PID=""
    read -r E1 E5 E15 _ </proc/loadavg
    mb() { awk -v k="$1" 'BEGIN {printf "%.1f MB", k / 1024}'; }
    added() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "null" || b == "null") print "NA"; else printf "%+.1f ms", a - b}'; }
    {
    cat <<EOF
## Tollgate streaming soak $TS

$STREAMS concurrent streaming chat completions (\`"stream": true\`), opened over ${SOAK_RAMP} s, each
${SOAK_SECONDS} s long: the mock sends the role event at once, then $EXPECT_PARTS content events, the finish event and
\`[DONE]\`, ${CHUNK_MS} ms apart (\`mock-provider --chunk-delay-ms $CHUNK_MS --stream-chunks $SOAK_CHUNKS\`). Client: \`bench/soak.py\`
(Python asyncio, one HTTP/1.1 connection per stream). "Intact" = HTTP 200, every content chunk (joined
text equal to the mock's reply), a finish_reason and \`[DONE]\` last.

| measurement | direct (mock) | through the gateway | added |
| --- | ---: | ---: | ---: |
| streams intact / opened | $SD_OK / $STREAMS | $S_OK / $STREAMS | |
| failures | $SD_FAILURES | $S_FAILURES | |
| most streams open at once | $SD_OPEN | $S_OPEN | |
| time to first chunk (role event), p50 / p99 | $SD_FC50 / $SD_FC99 ms | $S_FC50 / $S_FC99 ms | $(added "$S_FC50" "$SD_FC50") / $(added "$S_FC99" "$SD_FC99") |
| time to first content token, p50 / p99 | $SD_FT50 / $SD_FT99 ms | $S_FT50 / $S_FT99 ms | $(added "$S_FT50" "$SD_FT50") / $(added "$S_FT99" "$SD_FT99") |
| stream length p50 / max | $SD_LEN50 / $SD_LENMAX s | $S_LEN50 / $S_LENMAX s | |
| RSS of the serving process (mock / gateway): before / peak / 3 s after | $(mb "$SD_RSS0") / $(mb "$SD_RSS_PEAK") / $(mb "$SD_RSS_AFTER") | $(mb "$S_RSS0") / $(mb "$S_RSS_PEAK") / $(mb "$S_RSS_AFTER") | |
| RSS growth per open stream ((peak − before) / most open) | $SD_GROWTH KB | $S_GROWTH KB | |
| events received (data: lines, [DONE] included) | $SD_EVENTS | $S_EVENTS | |
| CPU of the serving process during the soak | $SD_CPU s ($SD_CORE% of a core) | $S_CPU s ($S_CORE% of a core) | |
| CPU per relayed chunk | $SD_US_CHUNK µs (the mock producing it) | $S_US_CHUNK µs | |
| open-file limit (soft) of the process | mock $MOCK_FDS | gateway $GW_FDS | client $CLIENT_FDS |

The gateway's CPU per chunk is its own (every thread: relaying, usage accounting, spend logs); the
direct column's RSS and CPU are the mock's, for scale. Through the gateway a stream lasts one chunk
interval longer: the gateway asks the provider for the usage chunk (\`stream_options.include_usage\`,
for spend), which the mock paces like the others, and does not pass it on unless the client asked.

Setup: mock \`--workers $MOCK_WORKERS\` on CPU $MOCK_CPUS; gateway \`--num_workers $GATEWAY_WORKERS\` on CPU $GATEWAY_CPUS;
client on CPU $LOAD_CPUS. Machine: nproc $NPROC; kernel $(uname -r); tollgate commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown).
Load average at start: $LOAD_AT_START; at end: $E1 $E5 $E15. Raw output: bench/results/$TS/
EOF
    } | tee "$OUT/summary.md"
    log "results in $OUT"
    exit 0
fi

# The gateway for the load runs (the default config), up and idle: sets GW_PID, RSS_IDLE, HWM_IDLE.
start_idle_gateway() {
    start_gateway gateway
    wait_first_200 >/dev/null || die "gateway did not start (see $OUT/gateway.stderr)"
    sleep 1
    RSS_IDLE=$(rss_kb "$GW_PID" VmRSS); HWM_IDLE=$(rss_kb "$GW_PID" VmHWM)
    log "gateway idle: VmRSS ${RSS_IDLE} kB, VmHWM ${HWM_IDLE} kB"
}

# ---------------------------------------------------------------------------------------------
# --soak: the memory soak. The gateway alone (the default run's config, SQLite spend logs), its RSS
# idle, then one wrk run of SOAK_MINUTES minutes at CONNS connections with the default run's virtual
# key, while a sampler writes the gateway's VmRSS (and VmHWM, its CPU jiffies and the mock's request
# count) every SOAK_SAMPLE s to soak_rss.tsv. Minute 1 is the warm-up; after it the RSS should stay flat.
if [[ $MODE == soak ]]; then
    SOAK_S=$((SOAK_MINUTES * 60))
    SLOPE_MAX=0.1   # MB/min: below it, the RSS after the warm-up counts as steady
    port_free "$GW_PORT" || die "port $GW_PORT is in use (set GW_PORT)"
    start_idle_gateway
    make_virtual_key

    soak_sampler() {   # soak_sampler T0_US: one line every SOAK_SAMPLE s (on the T0 grid) while the gateway lives
        local t0=$1 i=0 now next d k v rss hwm jif stats total
        while kill -0 "$GW_PID" 2>/dev/null; do
            now=${EPOCHREALTIME/./}
            rss=NA hwm=NA
            while read -r k v _; do
                case $k in VmRSS:) rss=$v ;; VmHWM:) hwm=$v ;; esac
            done <"/proc/$GW_PID/status" || break
            jif=$(pid_jiffies "$GW_PID")
            stats=$(curl -s --max-time 1 "http://127.0.0.1:$MOCK_PORT/mock/stats" || true)
            total=NA; [[ $stats =~ \"total\":([0-9]+) ]] && total=${BASH_REMATCH[1]}
            printf '%d.%03d\t%s\t%s\t%s\t%s\t%s\n' $(((now - t0) / 1000000)) $(((now - t0) % 1000000 / 1000)) \
                "${EPOCHREALTIME%.*}" "$rss" "$hwm" "$jif" "$total"
            i=$((i + 1)); next=$((t0 + i * SOAK_SAMPLE * 1000000)); now=${EPOCHREALTIME/./}
            d=$((next - now))
            (( d > 0 )) && sleep "$((d / 1000000)).$(printf '%06d' $((d % 1000000)))"
        done
    }
    printf 't_s\tunix_time\trss_kb\thwm_kb\tgateway_cpu_jiffies\tmock_requests\n' >"$OUT/soak_rss.tsv"
    SOAK_THREADS=$LOAD_THREADS
    (( SOAK_THREADS > CONNS )) && SOAK_THREADS=$CONNS
    log "soak: wrk -t$SOAK_THREADS -c$CONNS -d${SOAK_S}s with the virtual key; gateway RSS every ${SOAK_SAMPLE}s to $OUT/soak_rss.tsv"
    SOAK_T0=${EPOCHREALTIME/./}
    soak_sampler "$SOAK_T0" >>"$OUT/soak_rss.tsv" 2>/dev/null &
    SAMPLER_PID=$!
    HOP_PIDS=$GW_PID
    cpu_begin
    pin "$LOAD_CPUS" wrk -t"$SOAK_THREADS" -c"$CONNS" -d"${SOAK_S}s" --latency -s "$OUT/keychat.lua" "$GW_URL" >"$OUT/soak.txt" 2>&1 \
        || die "wrk failed (see $OUT/soak.txt)"
    cpu_end
    RSS_AFTER=$(rss_kb "$GW_PID" VmRSS)
    wrk_parse "$OUT/soak.txt"
    cpu_record soak "$R_REQS"
    log "soak: ${R_RPS} req/s, p50 ${R_P50} us, p99 ${R_P99} us, non-2xx ${R_NON2XX}, errors ${R_ERRORS}; gateway VmRSS right after ${RSS_AFTER} kB"
    sleep 10   # the sampler goes on: soak_rss.tsv shows the RSS after the load too
    RSS_AFTER10=$(rss_kb "$GW_PID" VmRSS); HWM_END=$(rss_kb "$GW_PID" VmHWM)
    kill "$SAMPLER_PID" 2>/dev/null; wait "$SAMPLER_PID" 2>/dev/null || true; SAMPLER_PID=""
    curl -s "http://127.0.0.1:$MOCK_PORT/mock/stats" >"$OUT/mock_stats.json" || true
    stop_pid "$GW_PID"; GW_PID=""
    read -r E1 E5 E15 _ </proc/loadavg

    # Minute m holds the samples with t in (60(m-1), 60m], with up to 1 s of slack for the sampler's
    # lateness (so the sample due at 60 s ends minute 1); t = 0 is the start, later than the load = after.
    # soak_minutes.tsv: one line per minute; the last line of the output: the figures for the summary.
    SOAK_FIGS=$(awk -F'\t' -v D="$SOAK_S" -v M="$SOAK_MINUTES" -v S="$SOAK_SAMPLE" -v hz="$CLK_TCK" \
        -v minutes="$OUT/soak_minutes.tsv" '
        NR == 1 || $3 == "NA" { next }
        {
            t = $1 + 0; tol = (S < 2) ? S / 2 : 1
            if (t > D + tol) next
            m = (t < tol) ? 0 : int((t - tol) / 60) + 1
            if (m > M) m = M
            n[m]++; endt[m] = t; endr[m] = $3; endj[m] = $5; endq[m] = $6
            if (!(m in mx) || $3 > mx[m]) mx[m] = $3
            if (m >= 1 && (all == "" || $3 > all)) all = $3
            T[++k] = t; R[k] = $3; Mi[k] = m
            last = $3
        }
        END {
            print "minute\tt_end_s\trss_end_kb\trss_max_kb\treq_per_s\tgateway_core_pct" > minutes
            for (m = 1; m <= M; m++) {
                if (!(m in n)) { print m "\tNA\tNA\tNA\tNA\tNA" > minutes; continue }
                p = m - 1; rps = "NA"; core = "NA"
                if ((p in n) && endt[m] > endt[p]) {
                    dt = endt[m] - endt[p]
                    if (endq[m] != "NA" && endq[p] != "NA") rps = sprintf("%.0f", (endq[m] - endq[p]) / dt)
                    core = sprintf("%.0f", 100 * (endj[m] - endj[p]) / hz / dt)
                }
                printf "%d\t%.1f\t%d\t%d\t%s\t%s\n", m, endt[m], endr[m], mx[m], rps, core > minutes
            }
            m1 = (1 in n) ? endr[1] : "NA"; m1t = (1 in n) ? endt[1] : "NA"
            maxw = "NA"
            for (m = 2; m <= M; m++) if ((m in mx) && (maxw == "NA" || mx[m] > maxw)) maxw = mx[m]
            endkb = (M in n) ? endr[M] : "NA"; endtt = (M in n) ? endt[M] : "NA"
            # Least squares of RSS (MB) on time (min) over the samples from the end of minute 1 on.
            sn = sx = sy = sxx = sxy = 0
            for (i = 1; i <= k; i++) if (m1t != "NA" && Mi[i] >= 1 && T[i] >= m1t) {
                x = T[i] / 60; y = R[i] / 1024; sn++; sx += x; sy += y; sxx += x * x; sxy += x * y
            }
            den = sn * sxx - sx * sx
            slope = (sn >= 2 && den > 0) ? sprintf("%.3f", (sn * sxy - sx * sy) / den) : "NA"
            print m1, m1t, maxw, endkb, endtt, (all == "" ? "NA" : all), slope, sn
        }' "$OUT/soak_rss.tsv")
    read -r M1_KB M1_T MAXW_KB END_KB END_T MAXALL_KB SLOPE SLOPE_N <<<"$SOAK_FIGS"

    mb() { if [[ $1 == NA || -z $1 ]]; then echo NA; else awk -v k="$1" 'BEGIN {printf "%.1f MB", k / 1024}'; fi; }
    verdict() { if [[ $2 == *NA* ]]; then echo "n/a ($1)"; elif awk "BEGIN {exit !($2)}"; then echo "**met**"; else echo "**missed**"; fi; }
    GROWTH="NA"
    if [[ $M1_KB != NA && $END_KB != NA && $END_T != "$M1_T" ]]; then
        GROWTH=$(awk -v a="$M1_KB" -v b="$END_KB" -v ta="$M1_T" -v tb="$END_T" \
            'BEGIN {printf "%+.2f MB (%+.3f MB/min over %.1f min)", (b - a) / 1024, (b - a) / 1024 / ((tb - ta) / 60), (tb - ta) / 60}')
    fi
    SHORT="needs SOAK_MINUTES ≥ 2"
    AFTER_WARMUP="minutes 2..$SOAK_MINUTES"; (( SOAK_MINUTES < 2 )) && AFTER_WARMUP="none in a 1-minute run"
    SLOPE_TXT="$SLOPE MB/min"; [[ $SLOPE == NA ]] && SLOPE_TXT=NA
    CPU_LINE=$(tail -n 1 "$OUT/cpu.tsv")
    IFS=$'\t' read -r _ C_WALL C_GW C_MOCK C_LOAD C_OTHER C_GW_S _ C_GW_US _ <<<"$CPU_LINE"
    MINUTE_ROWS=$(tail -n +2 "$OUT/soak_minutes.tsv" | while IFS=$'\t' read -r m t r x q c; do
        printf '| %s | %s | %s | %s | %s | %s |\n' "$m" "$t" "$(mb "$r")" "$(mb "$x")" "$q" "${c}$([[ $c != NA ]] && echo %)"
    done)
    {
    cat <<EOF
## Tollgate memory soak $TS

One \`wrk -t$SOAK_THREADS -c$CONNS -d${SOAK_S}s --latency\` run ($SOAK_MINUTES min) through the gateway with the
default run's virtual key (rpm/tpm limits far above the load, a budget, spend logs to SQLite), the same
request as the default run, to the mock (\`--latency-ms 0\`). The gateway's \`VmRSS\` is sampled every
${SOAK_SAMPLE} s (\`soak_rss.tsv\`, with its VmHWM, CPU jiffies and the mock's request count). Minute 1
is the warm-up; "steady" means the least-squares slope of the RSS over the samples from the end of
minute 1 to the end of the load is below $SLOPE_MAX MB/min.

| measurement | value | target | met? |
| --- | ---: | --- | --- |
| gateway RSS idle (after start, before load) | $(mb "$RSS_IDLE") | ≤ 30 MB idle | $(verdict "no sample" "$RSS_IDLE <= 30720") |
| RSS at the end of minute 1 (warm-up) | $(mb "$M1_KB") | | |
| max RSS after warm-up ($AFTER_WARMUP) | $(mb "$MAXW_KB") | ≤ 40 MB under load | $(verdict "$SHORT" "$MAXW_KB <= 40960") |
| RSS at the end of the load (last sample, t = $END_T s) | $(mb "$END_KB") | | |
| growth, end of minute 1 → end of the load | $GROWTH | | |
| RSS slope after warm-up (least squares over $SLOPE_N samples) | $SLOPE_TXT | steady: < $SLOPE_MAX MB/min | $(verdict "$SHORT" "$SLOPE < $SLOPE_MAX") |
| max RSS sampled over the whole load / VmHWM (kernel's peak) at the end | $(mb "$MAXALL_KB") / $(mb "$HWM_END") | | |
| RSS right after the load / 10 s after | $(mb "$RSS_AFTER") / $(mb "$RSS_AFTER10") | | |
| requests (wrk), req/s | $R_REQS, $R_RPS req/s | | |
| p50 / p99 latency | $R_P50 / $R_P99 µs | | |
| non-2xx / socket errors | $R_NON2XX / $R_ERRORS | 0 | $(verdict "" "$R_NON2XX + $R_ERRORS == 0") |
| gateway CPU during the load | $C_GW_S s ($C_GW% of a core), $C_GW_US µs/req | | |

### Per minute

| minute | t at its end (s) | RSS at its end | max RSS in it | req/s (mock's count) | gateway CPU |
| --- | ---: | ---: | ---: | ---: | ---: |
$MINUTE_ROWS

CPU during the load (% of one core, over ${C_WALL} s): gateway $C_GW%, mock $C_MOCK%, wrk $C_LOAD%, other $C_OTHER%.
$(awk -v o="$C_OTHER" -v lim="$NOISE_MAX" 'BEGIN {if (o > lim) print "\n**WARNING: other processes used more than " lim "% of a core during the load: req/s and latency are disturbed (the RSS much less so).**\n"}')
Setup: mock \`--workers $MOCK_WORKERS --latency-ms 0\` on CPU $MOCK_CPUS; gateway \`--num_workers $GATEWAY_WORKERS\` on CPU $GATEWAY_CPUS;
$LOADGEN_VERSION on CPU $LOAD_CPUS. Machine: nproc $NPROC; kernel $(uname -r); tollgate commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$([[ $SKIP_BUILD == 1 ]] && echo " (SKIP_BUILD=1: binary not rebuilt by this run)").
Load average at start: $LOAD_AT_START; at end: $E1 $E5 $E15. Raw output: bench/results/$TS/
EOF
    } | tee "$OUT/summary.md"
    log "results in $OUT"
    exit 0
fi

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
start_idle_gateway

# Smoke test: one request each way must be a 200 chat.completion.
for u in "$MOCK_URL" "$GW_URL"; do
    code=$(curl -s -o "$OUT/smoke.json" -w '%{http_code}' --max-time 5 -H "Content-Type: application/json" \
        -H "Authorization: Bearer $MASTER_KEY" -d "$BODY" "$u" || true)
    [[ $code == 200 ]] || die "smoke test $u returned HTTP $code: $(head -c 300 "$OUT/smoke.json")"
done
curl -s -H "Authorization: Bearer $MASTER_KEY" -H "Content-Type: application/json" -d "$BODY" "$GW_URL" >"$OUT/smoke_gateway.json"
curl -s -H "Content-Type: application/json" -d "$BODY" "$MOCK_URL" >"$OUT/smoke_direct.json"
curl -s "http://127.0.0.1:$MOCK_PORT/mock/reset" -X POST >/dev/null || true

NGINX_RSS_IDLE=NA
find_nginx
if [[ -n $NGINX ]]; then
    log "starting nginx ($("$NGINX" -v 2>&1 | sed 's/.*: //')) on CPU $GATEWAY_CPUS at :$NGINX_PORT"
    start_nginx "$GATEWAY_CPUS"
    sleep 1
    NGINX_RSS_IDLE=$(tree_rss_kb "$NGINX_PID" VmRSS)
fi
# nginx_runs CONNS: the nginx hop at CONNS connections; sets N_* (NA without nginx)
nginx_runs() {
    N_RPS=NA N_P50=NA N_P99=NA N_NON2XX=NA N_ERR=NA N_US=NA
    [[ -n $NGINX_PID ]] || return 0
    run_load "${NGINX_PREFIX:-nginx}_c$1" "$1" "$NGINX_URL" chat
    N_RPS=$R_RPS N_P50=$R_P50 N_P99=$R_P99 N_NON2XX=$R_NON2XX N_ERR=$R_ERRORS N_US=$R_HOP_US
}

# a. 64 connections
run_load direct_c$CONNS "$CONNS" "$MOCK_URL" chat
D64_RPS=$R_RPS D64_P50=$R_P50 D64_P99=$R_P99 D64_NON2XX=$R_NON2XX D64_ERR=$R_ERRORS D64_REQS=$R_REQS D64_MOCK_US=$R_MOCK_US
nginx_runs "$CONNS"
N64_RPS=$N_RPS N64_P50=$N_P50 N64_P99=$N_P99 N64_NON2XX=$N_NON2XX N64_ERR=$N_ERR N64_US=$N_US
NGINX_RSS_LOAD=NA NGINX_HWM_LOAD=NA
if [[ -n $NGINX_PID ]]; then
    NGINX_RSS_LOAD=$(tree_rss_kb "$NGINX_PID" VmRSS) NGINX_HWM_LOAD=$(tree_rss_kb "$NGINX_PID" VmHWM)
    log "nginx after ${CONNS}c load: VmRSS ${NGINX_RSS_LOAD} kB (master + worker)"
fi
run_load gateway_c$CONNS "$CONNS" "$GW_URL" chat
G64_RPS=$R_RPS G64_P50=$R_P50 G64_P99=$R_P99 G64_NON2XX=$R_NON2XX G64_ERR=$R_ERRORS G64_REQS=$R_REQS G64_US=$R_HOP_US
RSS_LOAD=$(rss_kb "$GW_PID" VmRSS); HWM_LOAD=$(rss_kb "$GW_PID" VmHWM)
log "gateway after ${CONNS}c load: VmRSS ${RSS_LOAD} kB, VmHWM ${HWM_LOAD} kB"

# c. 64 connections with a virtual key that has rpm/tpm limits (far above what the run reaches, so
# every request is admitted but counted), a budget, and spend tracking.
make_virtual_key
run_load gateway_key_c$CONNS "$CONNS" "$GW_URL" keychat
K64_RPS=$R_RPS K64_P50=$R_P50 K64_P99=$R_P99 K64_NON2XX=$R_NON2XX K64_ERR=$R_ERRORS K64_REQS=$R_REQS K64_US=$R_HOP_US
RSS_KEY=$(rss_kb "$GW_PID" VmRSS); HWM_KEY=$(rss_kb "$GW_PID" VmHWM)
log "gateway after virtual-key load: VmRSS ${RSS_KEY} kB, VmHWM ${HWM_KEY} kB"

# b. 1 connection
run_load direct_c1 1 "$MOCK_URL" chat
D1_RPS=$R_RPS D1_P50=$R_P50 D1_P99=$R_P99 D1_NON2XX=$R_NON2XX D1_ERR=$R_ERRORS
nginx_runs 1
N1_RPS=$N_RPS N1_P50=$N_P50 N1_P99=$N_P99 N1_NON2XX=$N_NON2XX N1_ERR=$N_ERR
run_load gateway_c1 1 "$GW_URL" chat
G1_RPS=$R_RPS G1_P50=$R_P50 G1_P99=$R_P99 G1_NON2XX=$R_NON2XX G1_ERR=$R_ERRORS
run_load gateway_key_c1 1 "$GW_URL" keychat
K1_P50=$R_P50 K1_P99=$R_P99 K1_ERR=$((R_NON2XX + R_ERRORS))

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
    C64_RPS=$R_RPS C64_P50=$R_P50 C64_P99=$R_P99 CERR=$((R_NON2XX + R_ERRORS)) C64_US=$R_HOP_US
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
P64_RPS=$R_RPS P64_P50=$R_P50 P64_P99=$R_P99 P64_ERR=$((R_NON2XX + R_ERRORS)) P64_US=$R_HOP_US
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
O64_RPS=$R_RPS O64_P50=$R_P50 O64_P99=$R_P99 O64_ERR=$((R_NON2XX + R_ERRORS)) O64_US=$R_HOP_US
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
HL64_RPS=$C64_RPS HL64_P50=$C64_P50 HL64_P99=$C64_P99 HL1_P50=$C1_P50 HL1_P99=$C1_P99 HL_ERR=$CERR HL_CALLS=$CALLS HL64_US=$C64_US
if (exec 3<>"/dev/tcp/$BENCH_REDIS_HOST/$BENCH_REDIS_PORT") 2>/dev/null; then
    cache_runs redis "    type: redis\n    host: $BENCH_REDIS_HOST\n    port: $BENCH_REDIS_PORT\n    namespace: bench-$TS\n"
    HR64_RPS=$C64_RPS HR64_P50=$C64_P50 HR64_P99=$C64_P99 HR1_P50=$C1_P50 HR1_P99=$C1_P99 HR_ERR=$CERR HR_CALLS=$CALLS HR64_US=$C64_US
else
    log "no Redis at $BENCH_REDIS_HOST:$BENCH_REDIS_PORT: the Redis cache rows are skipped"
    HR64_RPS=NA HR64_P50=NA HR64_P99=NA HR1_P50=NA HR1_P99=NA HR_ERR=NA HR_CALLS=NA HR64_US=NA
fi
# j. Limits shared in Redis: the virtual key with rpm/tpm and max_parallel_requests (far above what
# the run reaches) and a budget, first with the limits counted in the gateway alone, then shared
# through Redis (router_settings.redis_url), one after the other on the same mock.
limits_runs() {   # limits_runs NAME ROUTER_YAML; sets L64_RPS L64_P50 L64_P99 L1_P50 LERR L64_US LRT_ADMIT LRT_SETTLE
    local name=$1 router=$2 cfg=$OUT/config_limits_$1.yaml key code before_a before_s
    { cat "$OUT/config.yaml"; printf '%b' "$router"; } >"$cfg"
    sed -i "s#sqlite:///$OUT/tollgate.db#sqlite:///$OUT/tollgate_limits_$name.db#" "$cfg"
    port_free "$GW_PORT" || die "port $GW_PORT still in use"
    start_gateway "gateway_limits_$name" "$cfg"
    wait_first_200 >/dev/null || die "gateway with $name limits did not start (see $OUT/gateway_limits_$name.stderr)"
    key=$(curl -s --max-time 5 -H "Authorization: Bearer $MASTER_KEY" -H "Content-Type: application/json" \
        -d '{"rpm_limit": 100000000, "tpm_limit": 10000000000, "max_parallel_requests": 100000, "max_budget": 1000000}' \
        "http://127.0.0.1:$GW_PORT/key/generate" | jq -r '.key // empty')
    [[ $key == sk-* ]] || die "could not create the $name limits key"
    write_lua "$OUT/limits_$name.lua" "$key"
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Content-Type: application/json" \
        -H "Authorization: Bearer $key" -d "$BODY" "$GW_URL" || true)
    [[ $code == 200 ]] || die "$name limits smoke test returned HTTP $code"
    round_trip() { curl -s "http://127.0.0.1:$GW_PORT/metrics" | awk -v p="purpose=\"$1\"" 'index($0, "tollgate_redis_round_trips_total{" p "}") == 1 {print $NF; f=1} END {if (!f) print 0}'; }
    # Per request served: every admitted request reaches the mock once (warm-up included).
    local calls_before reqs
    before_a=$(round_trip admit) before_s=$(round_trip settle)
    calls_before=$(curl -s "http://127.0.0.1:$MOCK_PORT/mock/stats" | jq -r '.total // 0')
    LUA_OVERRIDE="$OUT/limits_$name.lua" KEY_OVERRIDE=$key run_load "limits_${name}_c$CONNS" "$CONNS" "$GW_URL" keychat
    L64_RPS=$R_RPS L64_P50=$R_P50 L64_P99=$R_P99 LERR=$((R_NON2XX + R_ERRORS)) L64_US=$R_HOP_US
    sleep 0.5   # the last settlements leave
    reqs=$(( $(curl -s "http://127.0.0.1:$MOCK_PORT/mock/stats" | jq -r '.total // 0') - calls_before ))
    LRT_ADMIT=$(awk -v a="$(round_trip admit)" -v b="$before_a" -v n="$reqs" 'BEGIN {if (n > 0) printf "%.2f", (a - b) / n; else print "NA"}')
    LRT_SETTLE=$(awk -v a="$(round_trip settle)" -v b="$before_s" -v n="$reqs" 'BEGIN {if (n > 0) printf "%.2f", (a - b) / n; else print "NA"}')
    LUA_OVERRIDE="$OUT/limits_$name.lua" KEY_OVERRIDE=$key run_load "limits_${name}_c1" 1 "$GW_URL" keychat
    L1_P50=$R_P50 LERR=$((LERR + R_NON2XX + R_ERRORS))
    stop_pid "$GW_PID"; GW_PID=""
    log "$name limits: $L64_RPS req/s at $CONNS conns; Redis round trips per request: admit $LRT_ADMIT, settle $LRT_SETTLE"
}
if (exec 3<>"/dev/tcp/$BENCH_REDIS_HOST/$BENCH_REDIS_PORT") 2>/dev/null; then
    limits_runs local ''
    LL64_RPS=$L64_RPS LL64_P50=$L64_P50 LL64_P99=$L64_P99 LL1_P50=$L1_P50 LL_ERR=$LERR LL64_US=$L64_US
    limits_runs redis "router_settings:\n  redis_url: redis://$BENCH_REDIS_HOST:$BENCH_REDIS_PORT\n"
    LR64_RPS=$L64_RPS LR64_P50=$L64_P50 LR64_P99=$L64_P99 LR1_P50=$L1_P50 LR_ERR=$LERR LR64_US=$L64_US LR_ADMIT=$LRT_ADMIT LR_SETTLE=$LRT_SETTLE
else
    log "no Redis at $BENCH_REDIS_HOST:$BENCH_REDIS_PORT: the shared-limits rows are skipped"
    LL64_RPS=NA LL64_P50=NA LL64_P99=NA LL1_P50=NA LL_ERR=NA LL64_US=NA
    LR64_RPS=NA LR64_P50=NA LR64_P99=NA LR1_P50=NA LR_ERR=NA LR64_US=NA LR_ADMIT=NA LR_SETTLE=NA
fi

# i. Peer (--peers): LiteLLM's proxy on the same mock, pinned like the gateway, measured like it
# (64 and 1 connections, PEER_DURATION), then again with LITELLM_RUST=true. Installed with pip into
# PEER_VENV; if that fails, the rows say so and the run goes on.
PEER_URL="http://127.0.0.1:$PEER_PORT/v1/chat/completions"
PEER_VENV=${PEER_VENV:-$ROOT/target/bench-venv}
PEER_ROWS=()      # "label|rps64|p50_64|p99_64|p50_1|hop_us|errors|rss_kb"
PEER_NOTE=""
peer_install() {
    [[ -x $PEER_VENV/bin/litellm ]] && return 0
    log "installing litellm[proxy] into $PEER_VENV (pip)"
    { python3 -m venv "$PEER_VENV" && "$PEER_VENV/bin/pip" install --quiet 'litellm[proxy]'; } >"$OUT/peer_install.log" 2>&1
}
peer_runs() {   # peer_runs NAME LABEL [VAR=value...]: start LiteLLM with these variables, measure, stop
    local name=$1 label=$2; shift 2
    local code="" rss errs
    port_free "$PEER_PORT" || die "port $PEER_PORT is in use (set PEER_PORT)"
    # setsid: LiteLLM's process group is its own, so stopping it reaches any worker it forks.
    setsid env LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_TELEMETRY=False "$@" \
        taskset -c "$GATEWAY_CPUS" "$PEER_VENV/bin/litellm" --config "$OUT/litellm_config.yaml" \
        --host 127.0.0.1 --port "$PEER_PORT" --num_workers 1 --log_config "$OUT/litellm_logging.json" \
        >"$OUT/$name.stdout" 2>"$OUT/$name.stderr" &
    PEER_PID=$!
    for _ in $(seq 1 240); do
        code=$(curl -s -o "$OUT/smoke_$name.json" -w '%{http_code}' --max-time 5 -H "Content-Type: application/json" \
            -H "Authorization: Bearer $MASTER_KEY" -d "$BODY" "$PEER_URL" || true)
        [[ $code == 200 ]] && break
        kill -0 "$PEER_PID" 2>/dev/null || break
        sleep 0.5
    done
    if [[ $code != 200 ]]; then
        log "$label did not answer (HTTP $code; see $OUT/$name.stderr): its rows are skipped"
        PEER_ROWS+=("$label (did not start: see $name.stderr)|NA|NA|NA|NA|NA|NA|NA")
    else
        RUN_TIMEOUT=10s RUN_DURATION=$PEER_DURATION run_load "${name}_c$CONNS" "$CONNS" "$PEER_URL" chat
        local rps=$R_RPS p50=$R_P50 p99=$R_P99 us=$R_HOP_US
        errs=$((R_NON2XX + R_ERRORS))
        rss=$(tree_rss_kb "$PEER_PID" VmRSS)
        RUN_TIMEOUT=10s RUN_DURATION=$PEER_DURATION run_load "${name}_c1" 1 "$PEER_URL" chat
        errs=$((errs + R_NON2XX + R_ERRORS))
        PEER_ROWS+=("$label|$rps|$p50|$p99|$R_P50|$us|$errs|$rss")
    fi
    kill -INT -- "-$PEER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$PEER_PID" 2>/dev/null || break; sleep 0.05; done
    kill -KILL -- "-$PEER_PID" 2>/dev/null || true
    wait "$PEER_PID" 2>/dev/null || true
    PEER_PID=""
}
if [[ $PEERS == 1 ]]; then
    if peer_install; then
        PEER_VERSION=$("$PEER_VENV/bin/pip" show litellm 2>/dev/null | awk '/^Version:/ {print $2}')
        cat >"$OUT/litellm_config.yaml" <<EOF
model_list:
  - model_name: bench-gpt
    litellm_params:
      model: openai/bench-gpt
      api_base: http://127.0.0.1:$MOCK_PORT/v1
      api_key: sk-mock
general_settings:
  master_key: $MASTER_KEY
EOF
        # No per-request access log lines (uvicorn's), as the gateway logs none at its default level.
        echo '{"version": 1, "disable_existing_loggers": false, "loggers": {"uvicorn.access": {"level": "WARNING"}}}' \
            >"$OUT/litellm_logging.json"
        peer_runs litellm "LiteLLM proxy $PEER_VERSION"
        peer_runs litellm_rust "LiteLLM proxy $PEER_VERSION, LITELLM_RUST=true" LITELLM_RUST=true
    else
        PEER_NOTE="LiteLLM could not be installed (pip install 'litellm[proxy]' failed; see peer_install.log): no peer rows."
        log "$PEER_NOTE"
    fi
fi

# j. Unpinned (UNPINNED=1): the key paths again with no process pinned (the mock, nginx and this
# script are moved to every CPU; a fresh gateway on the same database, so the virtual key holds).
U_DONE=0
if [[ $UNPINNED == 1 ]]; then
    ALL_CPUS="0-$((NPROC - 1))"
    log "unpinned runs: every process may use CPUs $ALL_CPUS"
    taskset -apc "$ALL_CPUS" "$MOCK_PID" >/dev/null
    taskset -pc "$ALL_CPUS" $$ >/dev/null
    for p in $(tree_pids "$NGINX_PID"); do taskset -pc "$ALL_CPUS" "$p" >/dev/null; done
    PINNED_GATEWAY_CPUS=$GATEWAY_CPUS PINNED_LOAD_CPUS=$LOAD_CPUS
    GATEWAY_CPUS="" LOAD_CPUS=""
    port_free "$GW_PORT" || die "port $GW_PORT still in use"
    start_gateway gateway_unpinned
    wait_first_200 >/dev/null || die "unpinned gateway did not start (see $OUT/gateway_unpinned.stderr)"
    run_load direct_unpinned_c$CONNS "$CONNS" "$MOCK_URL" chat
    UD64_RPS=$R_RPS UD64_P50=$R_P50 UD64_P99=$R_P99 UD64_MOCK_US=$R_MOCK_US
    NGINX_PREFIX=nginx_unpinned nginx_runs "$CONNS"
    UN64_RPS=$N_RPS UN64_P50=$N_P50 UN64_P99=$N_P99 UN64_US=$N_US
    run_load gateway_unpinned_c$CONNS "$CONNS" "$GW_URL" chat
    UG64_RPS=$R_RPS UG64_P50=$R_P50 UG64_P99=$R_P99 UG64_US=$R_HOP_US U_ERR=$((R_NON2XX + R_ERRORS))
    run_load gateway_key_unpinned_c$CONNS "$CONNS" "$GW_URL" keychat
    UK64_RPS=$R_RPS UK64_P50=$R_P50 UK64_P99=$R_P99 UK64_US=$R_HOP_US U_ERR=$((U_ERR + R_NON2XX + R_ERRORS))
    run_load direct_unpinned_c1 1 "$MOCK_URL" chat
    UD1_P50=$R_P50
    NGINX_PREFIX=nginx_unpinned nginx_runs 1
    UN1_P50=$N_P50
    run_load gateway_unpinned_c1 1 "$GW_URL" chat
    UG1_P50=$R_P50 U_ERR=$((U_ERR + R_NON2XX + R_ERRORS))
    run_load gateway_key_unpinned_c1 1 "$GW_URL" keychat
    UK1_P50=$R_P50 U_ERR=$((U_ERR + R_NON2XX + R_ERRORS))
    stop_pid "$GW_PID"; GW_PID=""
    GATEWAY_CPUS=$PINNED_GATEWAY_CPUS LOAD_CPUS=$PINNED_LOAD_CPUS
    U_DONE=1
fi
[[ -n $NGINX_PID ]] && { stop_pid "$NGINX_PID"; NGINX_PID=""; }
read -r E1 E5 E15 _ </proc/loadavg
LOAD_AT_END="$E1 $E5 $E15"
GW_STDERR_LINES=$(wc -l <"$OUT/gateway.stderr")

# ---------------------------------------------------------------------------------------------
# Summary
mb() { awk -v k="$1" 'BEGIN {printf "%.1f MB", k / 1024}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b + 0 == 0) print "NA"; else if (a / b < 0.1) printf "%.3f×", a / b; else printf "%.2f×", a / b}'; }
yesno() { if awk "BEGIN {exit !($1)}"; then echo "**met**"; else echo "**missed**"; fi; }
ADD_P50=$((G1_P50 - D1_P50))
ADD_P99=$((G1_P99 - D1_P99))
ADD64_P50=$((G64_P50 - D64_P50))
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)

# One row of the paths table: path_row LABEL RPS64 P50_64 P99_64 P50_1 HOP_US DIRECT_RPS NGINX_RPS DIRECT_P50_1
num() { [[ $1 =~ ^[0-9]+(\.[0-9]+)?$ ]]; }
path_row() {
    local label=$1 rps=$2 p50=$3 p99=$4 p1=$5 us=$6 drps=$7 nrps=$8 d1=$9 xd="—" xn="—" lat="—" add="—" cpu="—"
    if num "$rps"; then
        num "$drps" && xd=$(ratio "$rps" "$drps")
        num "$nrps" && xn=$(ratio "$rps" "$nrps")
    fi
    num "$p50" && num "$p99" && lat="$p50 / $p99 µs"
    num "$p1" && num "$d1" && add="$(printf '%+d' $((p1 - d1))) µs"
    num "$us" && cpu="$us µs"
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$rps" "$xd" "$xn" "$lat" "$add" "$cpu"
}
paths_table() {
    echo "| path | req/s, $CONNS conns | × direct | × nginx | p50 / p99, $CONNS conns | added p50, 1 conn (vs direct) | hop CPU per request |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    path_row "direct (mock; its own CPU: ${D64_MOCK_US} µs/req)" "$D64_RPS" "$D64_P50" "$D64_P99" "$D1_P50" NA "$D64_RPS" "$N64_RPS" "$D1_P50"
    path_row "nginx (1 worker, keepalive 64)" "$N64_RPS" "$N64_P50" "$N64_P99" "$N1_P50" "$N64_US" "$D64_RPS" "$N64_RPS" "$D1_P50"
    path_row "gateway, master key" "$G64_RPS" "$G64_P50" "$G64_P99" "$G1_P50" "$G64_US" "$D64_RPS" "$N64_RPS" "$D1_P50"
    path_row "gateway, virtual key (rpm/tpm limits + budget + spend logs)" "$K64_RPS" "$K64_P50" "$K64_P99" "$K1_P50" "$K64_US" "$D64_RPS" "$N64_RPS" "$D1_P50"
    path_row "gateway + Prometheus series" "$P64_RPS" "$P64_P50" "$P64_P99" NA "$P64_US" "$D64_RPS" "$N64_RPS" "$D1_P50"
    path_row "gateway + observability (Prometheus, OTLP, generic_api, langfuse)" "$O64_RPS" "$O64_P50" "$O64_P99" NA "$O64_US" "$D64_RPS" "$N64_RPS" "$D1_P50"
    path_row "gateway, cache hit in memory" "$HL64_RPS" "$HL64_P50" "$HL64_P99" "$HL1_P50" "$HL64_US" "$D64_RPS" "$N64_RPS" "$D1_P50"
    path_row "gateway, cache hit in Redis" "$HR64_RPS" "$HR64_P50" "$HR64_P99" "$HR1_P50" "$HR64_US" "$D64_RPS" "$N64_RPS" "$D1_P50"
    path_row "gateway, virtual key with max_parallel_requests too, limits in the gateway" "$LL64_RPS" "$LL64_P50" "$LL64_P99" "$LL1_P50" "$LL64_US" "$D64_RPS" "$N64_RPS" "$D1_P50"
    path_row "gateway, the same key, limits shared in Redis ($LR_ADMIT + $LR_SETTLE round trips/req; $(ratio "$LR64_RPS" "$LL64_RPS") of in the gateway)" "$LR64_RPS" "$LR64_P50" "$LR64_P99" "$LR1_P50" "$LR64_US" "$D64_RPS" "$N64_RPS" "$D1_P50"
    local row f
    for row in "${PEER_ROWS[@]}"; do
        IFS='|' read -r -a f <<<"$row"
        path_row "${f[0]}" "${f[1]}" "${f[2]}" "${f[3]}" "${f[4]}" "${f[5]}" "$D64_RPS" "$N64_RPS" "$D1_P50"
    done
    if [[ $U_DONE == 1 ]]; then
        path_row "unpinned: direct (mock: ${UD64_MOCK_US} µs/req)" "$UD64_RPS" "$UD64_P50" "$UD64_P99" "$UD1_P50" NA "$UD64_RPS" "$UN64_RPS" "$UD1_P50"
        path_row "unpinned: nginx" "$UN64_RPS" "$UN64_P50" "$UN64_P99" "$UN1_P50" "$UN64_US" "$UD64_RPS" "$UN64_RPS" "$UD1_P50"
        path_row "unpinned: gateway, master key" "$UG64_RPS" "$UG64_P50" "$UG64_P99" "$UG1_P50" "$UG64_US" "$UD64_RPS" "$UN64_RPS" "$UD1_P50"
        path_row "unpinned: gateway, virtual key" "$UK64_RPS" "$UK64_P50" "$UK64_P99" "$UK1_P50" "$UK64_US" "$UD64_RPS" "$UN64_RPS" "$UD1_P50"
    fi
}
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
| nginx req/s, $CONNS conns / p50 / p99 | $D64_RPS | $N64_RPS (p50 ${N64_P50} µs, p99 ${N64_P99} µs) | $(ratio "$N64_RPS" "$D64_RPS") of direct | | |
| nginx p50 / p99, 1 conn | ${D1_P50} / ${D1_P99} µs | ${N1_P50} / ${N1_P99} µs | $(num "$N1_P50" && echo "+$((N1_P50 - D1_P50)) µs" || echo NA) | | |
| nginx non-2xx / socket errors ($CONNS conns; 1 conn) | | $N64_NON2XX / $N64_ERR; $N1_NON2XX / $N1_ERR | | 0 | |
| nginx RSS idle / after $CONNS-conn load (VmRSS, master + worker) | | $(num "$NGINX_RSS_LOAD" && echo "$(mb "$NGINX_RSS_IDLE") / $(mb "$NGINX_RSS_LOAD")" || echo NA) | | | |
| gateway, virtual key, p50 / p99, 1 conn | ${D1_P50} / ${D1_P99} µs | ${K1_P50} / ${K1_P99} µs | +$((K1_P50 - D1_P50)) µs | | errors $K1_ERR |
$(for row in "${PEER_ROWS[@]}"; do IFS='|' read -r -a f <<<"$row"; echo "| ${f[0]}: req/s, $CONNS conns; p50, 1 conn; errors; RSS after load | $D64_RPS | ${f[1]} req/s; ${f[4]} µs; ${f[6]}; $(num "${f[7]}" && mb "${f[7]}" || echo NA) | $(ratio "${f[1]}" "$D64_RPS") of direct | | |"; done)
$(if [[ $U_DONE == 1 ]]; then echo "| unpinned: errors in the gateway runs | | $U_ERR | | 0 | |"; fi)

### Paths compared

Requests/s and latency at $CONNS connections; "added p50" is the path's p50 at 1 connection minus the
direct p50 at 1 connection; "hop CPU per request" is the user+system CPU time of the hop's processes
(the gateway; nginx's master and worker; the peer's process tree) during the measured run, divided
by the requests it served (\`/proc/<pid>/stat\`, so it counts every thread of the process, the spend
writer and exporters included). $([[ -n $PEER_NOTE ]] && echo "$PEER_NOTE")

$(paths_table)

CPU use during each measured run (% of one core; "other" = everything else on the machine, i.e. interference):
$(awk -F'\t' -v lim="$NOISE_MAX" 'NR > 1 && $6 > lim {bad = bad " " $1 " (" $6 "%)"} END {if (bad != "") print "\n**WARNING: other processes used more than " lim "% of a core during:" bad ". Those numbers are disturbed; rerun in a quiet window.**\n"}' "$OUT/cpu.tsv")

| run | wall s | hop (gateway, nginx or peer) | mock | load generator | other | hop CPU s | requests | hop µs/req |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
$(tail -n +2 "$OUT/cpu.tsv" | awk -F'\t' '{printf "| %s | %s | %s%% | %s%% | %s%% | %s%% | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9}')

Startup runs (ms to first 200): ${STARTUP_MS[*]}; ("listening" line: ${LISTEN_MS[*]}).

Setup: mock \`--workers $MOCK_WORKERS --latency-ms 0\` on CPU $MOCK_CPUS; gateway \`--num_workers $GATEWAY_WORKERS\` on CPU $GATEWAY_CPUS; nginx ${NGINX:+$("$NGINX" -v 2>&1 | sed 's/.*: //'), 1 worker, }on CPU $GATEWAY_CPUS$([[ -z $NGINX ]] && echo " (not run)");
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
