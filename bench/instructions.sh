#!/usr/bin/env bash
# Instructions the gateway executes per chat request, by configuration, counted by callgrind.
#
#   bash bench/instructions.sh            # off, prometheus, observability
#   N=1000 bash bench/instructions.sh prometheus
#   bash bench/instructions.sh off otel generic_api langfuse   # each part of "observability" alone
#
# Throughput on a shared 2-core machine moves with whatever else runs; an instruction count does
# not (callgrind counts the same for the same binary, inputs and environment). So this is how a
# change to the request path is weighed while the machine is busy; bench/run.sh then measures the
# throughput in a quiet window. Every thread of the gateway is counted, so the work its actors do
# off the request path (callback payloads, span export) is in the figure.
#
# Method: for each configuration the gateway (target/release/tollgate, under valgrind) serves a
# warm-up of W requests and then N more, one connection with keep-alive, against the mock provider
# (native, not under valgrind). Two runs, W and W+N requests; the difference of their totals over
# N is the cost of one request, start-up and shutdown cancelled out.
#
# Environment: N [1000], W [200], MOCK_PORT [18091], GW_PORT [14001], SKIP_BUILD [1].
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
N=${N:-1000}
W=${W:-200}
MOCK_PORT=${MOCK_PORT:-18091}
GW_PORT=${GW_PORT:-14001}
BIN=$ROOT/target/release/tollgate
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
[[ ${SKIP_BUILD:-1} == 1 && -x $BIN ]] || cargo build --release --bin tollgate
OUT=$ROOT/bench/results/instructions-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
CONFIGS=("$@")
[[ ${#CONFIGS[@]} -gt 0 ]] || CONFIGS=(off prometheus observability)
MASTER_KEY="sk-bench-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
SINK="http://127.0.0.1:$MOCK_PORT/mock/sink"

"$BIN" mock-provider --host 127.0.0.1 --port "$MOCK_PORT" --workers 1 --latency-ms 0 \
    >"$OUT/mock.stdout" 2>"$OUT/mock.stderr" &
MOCK_PID=$!
trap 'kill $MOCK_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 200); do grep -q "listening on" "$OUT/mock.stdout" 2>/dev/null && break; sleep 0.05; done

config() { # config NAME RUN -> path
    local f=$OUT/$1.$2.yaml
    cat >"$f" <<EOF
model_list:
  - model_name: bench-gpt
    litellm_params:
      model: openai/bench-gpt
      api_base: http://127.0.0.1:$MOCK_PORT/v1
      api_key: sk-mock
general_settings:
  master_key: $MASTER_KEY
  database_url: sqlite:///$OUT/$1.$2.db
EOF
    case $1 in
        off) ;;
        prometheus) printf 'litellm_settings:\n  callbacks: ["prometheus"]\n' >>"$f" ;;
        observability) printf 'litellm_settings:\n  callbacks: ["prometheus", "otel", "generic_api", "langfuse"]\n' >>"$f" ;;
        # One part of the observability configuration at a time, to weigh each.
        otel | generic_api | langfuse) printf 'litellm_settings:\n  callbacks: ["%s"]\n' "$1" >>"$f" ;;
        *) echo "unknown configuration $1 (off, prometheus, observability, otel, generic_api, langfuse)" >&2; exit 1 ;;
    esac
    echo "$f"
}

# count NAME REQUESTS -> total instructions of a gateway that served REQUESTS requests
count() {
    local name=$1 requests=$2 cfg
    cfg=$(config "$name" "$requests")
    OTEL_EXPORTER=otlp_http OTEL_ENDPOINT="$SINK" GENERIC_LOGGER_ENDPOINT="$SINK/generic" \
        LANGFUSE_HOST="$SINK" LANGFUSE_PUBLIC_KEY=pk-bench LANGFUSE_SECRET_KEY=sk-bench \
        valgrind --tool=callgrind --callgrind-out-file="$OUT/$name.$requests.callgrind" \
        "$BIN" --config "$cfg" --host 127.0.0.1 --port "$GW_PORT" --num_workers 1 \
        >"$OUT/$name.$requests.stdout" 2>"$OUT/$name.$requests.stderr" &
    local pid=$!
    python3 - "$GW_PORT" "$MASTER_KEY" "$requests" <<'PY'
import http.client, json, sys, time
port, key, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
deadline = time.time() + 180
while True:
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("GET", "/health/liveliness")
        if c.getresponse().status == 200:
            break
    except OSError:
        pass
    if time.time() > deadline:
        sys.exit("the gateway did not start")
    time.sleep(0.5)
body = json.dumps({"model": "bench-gpt", "messages": [{"role": "user", "content": "hi"}]})
headers = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
for _ in range(n):
    c.request("POST", "/v1/chat/completions", body, headers)
    r = c.getresponse()
    r.read()
    if r.status != 200:
        sys.exit(f"status {r.status}")
PY
    sleep 2 # queued callback batches and spans leave
    kill -TERM "$pid"
    wait "$pid" || true
    awk '/^(summary|totals):/ {print $2; exit}' "$OUT/$name.$requests.callgrind"
}

printf '| configuration | instructions per request | vs off |\n|---|---:|---:|\n' | tee "$OUT/summary.md"
OFF=""
for name in "${CONFIGS[@]}"; do
    a=$(count "$name" "$W")
    b=$(count "$name" $((W + N)))
    per=$(( (b - a) / N ))
    [[ $name == off ]] && OFF=$per
    ratio=$([[ -n $OFF ]] && awk -v p="$per" -v o="$OFF" 'BEGIN {printf "%.2f×", p / o}' || echo "")
    printf '| %s | %d | %s |\n' "$name" "$per" "$ratio" | tee -a "$OUT/summary.md"
done
echo "results: $OUT" >&2
