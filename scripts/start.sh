#!/usr/bin/env bash
# Start Tollgate on the example config, with the built-in mock provider behind it.
#   bash scripts/start.sh            # gateway on http://127.0.0.1:4000, mock provider on :8090
# Environment: PORT (default 4000), MOCK_PORT (8090), LITELLM_MASTER_KEY (generated if unset),
# OPENAI_API_KEY (optional: enables the real gpt-4o-mini and openai/* routes of the example).
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${PORT:-4000}"
MOCK_PORT="${MOCK_PORT:-8090}"
cargo build --release --bin tollgate
BIN=target/release/tollgate

if [ -z "${LITELLM_MASTER_KEY:-}" ]; then
  LITELLM_MASTER_KEY="sk-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  export LITELLM_MASTER_KEY
  echo "Generated a master key for this run: $LITELLM_MASTER_KEY"
fi

"$BIN" mock-provider --host 127.0.0.1 --port "$MOCK_PORT" &
MOCK_PID=$!
trap 'kill "$MOCK_PID" 2>/dev/null || true' EXIT

sed "s#http://127.0.0.1:8090/v1#http://127.0.0.1:${MOCK_PORT}/v1#g" config/example.yaml > target/example.runtime.yaml
echo "Try: curl http://127.0.0.1:${PORT}/v1/chat/completions -H \"Authorization: Bearer \$LITELLM_MASTER_KEY\" -H 'Content-Type: application/json' -d '{\"model\":\"mock-gpt\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}'"
echo "Admin UI: http://127.0.0.1:${PORT}/ui (sign in as admin with the master key)"
"$BIN" --config target/example.runtime.yaml --host 127.0.0.1 --port "$PORT" "$@"
