#!/usr/bin/env bash
# The API contract check: the OpenAPI document the server serves is valid
# (openapi-spec-validator), and schemathesis finds no schema-valid request the server
# rejects, no undocumented status, no response off its schema and no server error.
#
#   bash tests/contract/run.sh [path/to/reelforge]    (default: target/debug/reelforge)
#
# Needs REELFORGE_CONTRACT_VENV (a virtualenv with schemathesis and openapi-spec-validator;
# scripts/test.sh makes one). REELFORGE_CONTRACT_EXAMPLES (default 15) bounds the examples
# per operation, REELFORGE_CONTRACT_SEED (default fixed) the seed: set it to explore.
# The server runs on a free loopback port with no worker, on a throw-away data dir. Its SMTP
# server is a closed loopback port: password resets are accepted (their e-mails wait for
# retries that fail), so the reset routes are exercised as they are where e-mail works.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

bin=${1:-${CARGO_TARGET_DIR:-target}/debug/reelforge}
venv=${REELFORGE_CONTRACT_VENV:?set REELFORGE_CONTRACT_VENV (scripts/test.sh does)}
examples=${REELFORGE_CONTRACT_EXAMPLES:-15}
seed=${REELFORGE_CONTRACT_SEED:-20261207}

work=$(mktemp -d)
server=
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

REELFORGE_DATA_DIR=$work/data REELFORGE_LISTEN=127.0.0.1:0 REELFORGE_WORKERS=0 \
    REELFORGE_JWT_SECRET=contract-test-secret-contract-test \
    REELFORGE_FETCH_ALLOW='*.reelforge.test' RUST_LOG=info \
    REELFORGE_SMTP_URL='smtp://127.0.0.1:9?tls=none' REELFORGE_MAIL_FROM=contract@localhost \
    "$bin" serve 2>"$work/log" &
server=$!
base=
for _ in $(seq 1 200); do
    base=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$work/log" | head -n1 || true)
    [ -n "$base" ] && break
    kill -0 "$server" 2>/dev/null || { cat "$work/log" >&2; exit 1; }
    sleep 0.1
done
[ -n "$base" ] || { echo "contract: the server did not start" >&2; cat "$work/log" >&2; exit 1; }

curl -fsS "$base/api/openapi.json" >"$work/openapi.json"
"$venv/bin/openapi-spec-validator" "$work/openapi.json"

password='Contract-Test-1'
curl -fsS -X POST "$base/api/auth/signup" -H 'Content-Type: application/json' \
    -d "{\"username\":\"contract\",\"email\":\"contract@example.com\",\"password\":\"$password\",\"password_2\":\"$password\"}" >/dev/null
token=$(curl -fsS -X POST "$base/api/auth/login" -H 'Content-Type: application/json' \
    -d "{\"username\":\"contract\",\"password\":\"$password\"}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')

# An admin, so the admin routes are exercised too (not only refused).
REELFORGE_DATA_DIR=$work/data "$bin" user promote contract >/dev/null
SCHEMATHESIS_HOOKS=hooks PYTHONPATH=tests/contract \
    "$venv/bin/schemathesis" --config-file tests/contract/schemathesis.toml \
    run "$work/openapi.json" --url "$base" \
    -H "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,positive_data_acceptance \
    --phases examples,coverage,fuzzing \
    --mode positive \
    --max-examples "$examples" --seed "$seed" \
    --no-color
