#!/usr/bin/env bash
# SCIM 2.0 conformance run: build scimd, start it on a throw-away data dir and a
# free loopback port, and run scim2-tester (pinned in requirements.txt) against
# /scim/v2 with the bootstrap admin key. Exits with the checker's exit code
# (0 iff no check failed). See conformance/README.md for the variables.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
VENV="${CONFORMANCE_VENV:-$HERE/.venv}"
REQUIREMENTS="$HERE/requirements.txt"
STARTUP_TIMEOUT="${SCIMD_STARTUP_TIMEOUT:-60}"
STOP_TIMEOUT="${SCIMD_STOP_TIMEOUT:-15}"
SHOW_SERVER_LOG="${CONFORMANCE_SHOW_SERVER_LOG:-failure}" # always | failure | never

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'run.sh: error: %s\n' "$*" >&2; exit 1; }

DATA_DIR=""
SERVER_PID=""
SERVER_LOG=""

print_server_log() {
    if [[ -n "$SERVER_LOG" && -s "$SERVER_LOG" ]]; then
        printf '==> scimd log (%s), last %s lines:\n' "$1" "${CONFORMANCE_LOG_LINES:-100}" >&2
        tail -n "${CONFORMANCE_LOG_LINES:-100}" "$SERVER_LOG" >&2
        printf '==> end of scimd log\n' >&2
    elif [[ -n "$SERVER_LOG" ]]; then
        printf '==> scimd log (%s) is empty\n' "$1" >&2
    fi
}

# shellcheck disable=SC2329 # invoked by the EXIT trap
cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null
        local waited=0
        while kill -0 "$SERVER_PID" 2>/dev/null && (( waited < STOP_TIMEOUT * 10 )); do
            sleep 0.1
            waited=$((waited + 1))
        done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            log "scimd (pid $SERVER_PID) did not stop within ${STOP_TIMEOUT}s of SIGTERM; killing it"
            kill -KILL "$SERVER_PID" 2>/dev/null
        fi
        wait "$SERVER_PID" 2>/dev/null
    fi
    if [[ -n "${CONFORMANCE_SERVER_LOG:-}" && -n "$SERVER_LOG" && -f "$SERVER_LOG" ]]; then
        cp "$SERVER_LOG" "$CONFORMANCE_SERVER_LOG" && log "scimd log saved to $CONFORMANCE_SERVER_LOG"
    fi
    if [[ -n "$DATA_DIR" && -d "$DATA_DIR" ]]; then
        rm -rf -- "$DATA_DIR"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- 1. Python virtualenv with the pinned checker ---------------------------------

find_python() {
    local candidate
    for candidate in ${PYTHON:-} python3.13 python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

venv_stamp() {
    # Changes whenever the pins or the interpreter change.
    {
        cat "$REQUIREMENTS"
        "$1" -c 'import sys; print(sys.version)'
    } | sha256sum | cut -d' ' -f1
}

setup_venv() {
    local py stamp_file="$VENV/.conformance-stamp"
    if [[ -x "$VENV/bin/python" ]] &&
        "$VENV/bin/python" -c 'import scim2_tester, scim2_client, httpx2' 2>/dev/null &&
        [[ -f "$stamp_file" && "$(cat "$stamp_file")" == "$(venv_stamp "$VENV/bin/python")" ]]; then
        log "reusing virtualenv $VENV"
        return 0
    fi
    py="$(find_python)" || die "Python >= 3.11 is required (set PYTHON=/path/to/python3.11+)"
    log "creating virtualenv $VENV with $py"
    rm -rf -- "$VENV"
    "$py" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet -r "$REQUIREMENTS"
    "$VENV/bin/python" -m pip check --disable-pip-version-check >/dev/null
    venv_stamp "$VENV/bin/python" >"$stamp_file"
}

setup_venv
PY="$VENV/bin/python"

# --- 2. The scimd binary -----------------------------------------------------------

if [[ -n "${SCIMD_BIN:-}" ]]; then
    BIN="$SCIMD_BIN"
    [[ -x "$BIN" ]] || die "SCIMD_BIN=$BIN is not an executable file"
    log "using prebuilt $BIN"
else
    profile="${CARGO_PROFILE:-release}"
    case "$profile" in
        dev | debug) profile_dir=debug; profile=dev ;;
        *) profile_dir="$profile" ;;
    esac
    log "building scimd (cargo build --profile $profile --bin scimd)"
    (cd "$ROOT" && cargo build --profile "$profile" --bin scimd)
    BIN="${CARGO_TARGET_DIR:-$ROOT/target}/$profile_dir/scimd"
    [[ -x "$BIN" ]] || die "cargo build succeeded but $BIN does not exist"
fi
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"

# --- 3. Start scimd on a temp data dir and a free port --------------------------

DATA_DIR="$(mktemp -d "${TMPDIR:-/tmp}/scimd-conformance.XXXXXX")"
SERVER_LOG="$DATA_DIR/scimd.log"
PORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
BASE_URL="http://127.0.0.1:$PORT"

server_args=(serve --data-dir "$DATA_DIR" --listen "127.0.0.1:$PORT" --base-url "$BASE_URL")
if [[ -n "${SCIMD_DATABASE_URL:-}" ]]; then
    # Passed through the environment (scimd reads SCIMD_DATABASE_URL), not as
    # --database-url, so a password in the URL does not show up in `ps`.
    export SCIMD_DATABASE_URL
    log "database: ${SCIMD_DATABASE_URL%%://*}://… (from SCIMD_DATABASE_URL)"
else
    unset SCIMD_DATABASE_URL
fi

log "starting scimd on $BASE_URL (data dir $DATA_DIR)"
(cd "$DATA_DIR" && exec "$BIN" "${server_args[@]}") >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!

http_status() {
    if command -v curl >/dev/null 2>&1; then
        curl --noproxy '*' -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" 2>/dev/null || true
    else
        "$PY" - "$1" <<'EOF' 2>/dev/null || true
import sys, urllib.request, urllib.error
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    print(opener.open(sys.argv[1], timeout=2).status, end="")
except urllib.error.HTTPError as e:
    print(e.code, end="")
except Exception:
    print("000", end="")
EOF
    fi
}

deadline=$((SECONDS + STARTUP_TIMEOUT))
status=""
while :; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        server_rc=0
        wait "$SERVER_PID" || server_rc=$?
        SERVER_PID=""
        print_server_log "server exited with status $server_rc during startup"
        die "scimd exited (status $server_rc) before GET /healthz answered 200"
    fi
    status="$(http_status "$BASE_URL/healthz")"
    [[ "$status" == 200 ]] && break
    if (( SECONDS >= deadline )); then
        print_server_log "no healthy answer"
        die "GET $BASE_URL/healthz did not answer 200 within ${STARTUP_TIMEOUT}s (last status: ${status:-none})"
    fi
    sleep 0.25
done
log "scimd is healthy (pid $SERVER_PID)"

# --- 4. The bootstrap key ---------------------------------------------------------

KEY_FILE=""
if [[ -n "${SCIMD_API_KEY:-}" ]]; then
    KEY_FILE="$DATA_DIR/conformance.key"
    (umask 077 && printf '%s\n' "$SCIMD_API_KEY" >"$KEY_FILE")
    log "using the key from SCIMD_API_KEY"
else
    shopt -s nullglob
    for _ in $(seq 1 20); do # the file may land just after /healthz answers
        key_files=("$DATA_DIR"/APIKey-bootstrap-admin-*.key)
        ((${#key_files[@]})) && break
        sleep 0.25
    done
    shopt -u nullglob
    if ((${#key_files[@]})); then
        KEY_FILE="${key_files[0]}"
        log "using bootstrap key file $(basename "$KEY_FILE")"
    elif [[ -n "${SCIMD_DATABASE_URL:-}" ]]; then
        # An already-bootstrapped external database: no key file is written on
        # later starts, so mint a key for bootstrap-admin with the CLI.
        KEY_FILE="$DATA_DIR/conformance.key"
        log "no bootstrap key file (database already bootstrapped): creating a key with 'scimd keys create'"
        (umask 077 && cd "$DATA_DIR" && "$BIN" keys create --data-dir "$DATA_DIR" \
            --service-user bootstrap-admin \
            --name "conformance-$(date +%s)-$$" --expires-in-days 1 >"$KEY_FILE") ||
            die "could not create a key with 'scimd keys create'; set SCIMD_API_KEY"
    else
        print_server_log "no bootstrap key file"
        die "no $DATA_DIR/APIKey-bootstrap-admin-*.key after startup"
    fi
fi
[[ -s "$KEY_FILE" ]] || die "key file $KEY_FILE is empty"

# --- 5. scim2-tester ------------------------------------------------------------------

log "running scim2-tester against $BASE_URL/scim/v2"
CHECK_OUT="$DATA_DIR/scim2-tester.out"
check_rc=0
"$PY" -u "$HERE/scim2_tester_check.py" --url "$BASE_URL/scim/v2" --token-file "$KEY_FILE" |
    tee "$CHECK_OUT" || check_rc=${PIPESTATUS[0]}

if [[ -n "$SERVER_PID" ]] && ! kill -0 "$SERVER_PID" 2>/dev/null; then
    log "warning: scimd exited while the checks ran"
    [[ "$check_rc" == 0 ]] && check_rc=1
fi

if [[ "$SHOW_SERVER_LOG" == always || ( "$SHOW_SERVER_LOG" == failure && "$check_rc" != 0 ) ]]; then
    print_server_log "checker exit status $check_rc"
    # Keep the summary the last line of the output.
    grep '^scim2-tester: ' "$CHECK_OUT" | tail -n 1 || true
fi

exit "$check_rc"
