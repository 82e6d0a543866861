#!/usr/bin/env bash
# The OpenAPI contract, checked against the live server:
#   1. openapi/openapi.json is a valid OpenAPI 3.1 document (openapi-spec-validator);
#   2. a Python client generated from it (openapi-python-client) compiles, and
#      openapi/client_tour.py drives an engagement through CB selection and stage 1 with it;
#   3. schemathesis sends generated requests to every operation with an admin token and checks
#      that none is a 5xx, that every status and body is the documented one, and that every
#      error is problem+json. Its summary is printed at the end (the README quotes it).
# The Python tools are pinned and installed into a virtualenv under ~/.cache on first use.
# CONTRACT_MAX_EXAMPLES (default 25) bounds the generated requests per operation and phase.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/certflow-target}"
VENV="$HOME/.cache/certflow-contract-venv"
TOOLS=(schemathesis==4.32.5 openapi-python-client==0.29.1 openapi-spec-validator==0.9.0)
if ! "$VENV/bin/pip" freeze 2>/dev/null | grep -qx "schemathesis==4.32.5"; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "${TOOLS[@]}"
fi

echo "== 1. openapi/openapi.json is valid OpenAPI 3.1"
"$VENV/bin/openapi-spec-validator" openapi/openapi.json

cargo build --quiet -p certflow
BIN="$CARGO_TARGET_DIR/debug/certflow"
WORK="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export DATABASE_URL="sqlite://$WORK/contract.db?mode=rwc" LISTEN_ADDR="127.0.0.1:$PORT" OUTBOX_DIR="$WORK/outbox"
export JWT_SECRET="contract-tests-secret-of-at-least-32-characters" WORKER_EMBEDDED=false RUST_LOG=info,sqlx=warn
# The contract run is one caller on one address sending as fast as it can: limits it never meets
# (the rate limits have their own end-to-end tests).
export RATE_LIMIT_CALLER_PER_SECOND=100000 RATE_LIMIT_CALLER_BURST=100000
export RATE_LIMIT_ANONYMOUS_PER_SECOND=100000 RATE_LIMIT_ANONYMOUS_BURST=100000
"$BIN" serve > "$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$PORT/readyz" > /dev/null && break
    sleep 0.1
done
curl -sf "http://127.0.0.1:$PORT/readyz" > /dev/null

echo "== 2. a generated Python client drives CB selection and stage 1"
"$VENV/bin/openapi-python-client" generate --path openapi/openapi.json --meta none \
    --output-path "$WORK/client/certflow_client" > "$WORK/generate.log" 2>&1 || { cat "$WORK/generate.log"; exit 1; }
"$VENV/bin/python" -m compileall -q "$WORK/client/certflow_client"
CERTFLOW_URL="http://127.0.0.1:$PORT" CERTFLOW_BIN="$BIN" PYTHONPATH="$WORK/client" CONTRACT_IDS="$WORK/ids.sh" \
    "$VENV/bin/python" openapi/client_tour.py

echo "== 3. schemathesis: no 5xx, documented statuses and bodies, problem+json errors"
TOKEN="$("$BIN" token --role admin --sub schemathesis@certflow.example)"
fuzz() {
    local pass=$1
    shift
    "$VENV/bin/st" "$@" run openapi/openapi.json --url "http://127.0.0.1:$PORT" \
        --header "Authorization: Bearer $TOKEN" \
        --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
        --phases examples,coverage,fuzzing --max-examples "${CONTRACT_MAX_EXAMPLES:-25}" --seed 20261124 \
        --workers 2 --no-color --report ndjson --report-ndjson-path "$WORK/$pass.ndjson" | tee "$WORK/$pass.out"
}
# Pass 1: ids as generated (mostly unknown: 404s, bad UUIDs, bad bodies).
fuzz unknown-ids
# Pass 2: the client tour's records (see openapi/schemathesis.toml).
# shellcheck disable=SC1091
source "$WORK/ids.sh"
fuzz known-ids --config-file openapi/schemathesis.toml
for pass in unknown-ids known-ids; do
    echo "schemathesis $pass: $(grep -E "^ *[0-9]+ generated" "$WORK/$pass.out" | tr -s ' ')"
done
if grep -qE "status=5[0-9]{2}" "$WORK/server.log"; then
    echo "the server logged a 5xx during the contract run:" >&2
    grep -E "status=5[0-9]{2}" "$WORK/server.log" >&2
    exit 1
fi
echo "server responses during the contract run: $(grep -cE "status=[0-9]{3}" "$WORK/server.log"), none 5xx"
