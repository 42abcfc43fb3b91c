#!/usr/bin/env bash
# A fedsb run on the Flower Deployment Engine (flwr 1.41) on this machine, with TLS and
# SuperNode authentication: a CA and a server certificate, one EC key pair per SuperNode, one
# SuperLink, K SuperNodes (partition-id 0..K-1), `flwr run flower local-deployment`, then every
# started process is stopped again (by its process group id; also on error or Ctrl-C).
# With --data-dirs D0,D1,... the data stay at the sites: SuperNode i reads only Di (its
# node-config data-path) and the server reads none of them (run config data-at-sites = true).
#
# Sourcing the file (`source scripts/flower_local_deployment.sh`) defines the functions only
# (gen_certs, gen_node_key, write_connection, ...); tests/federated use them.
#
# Real machines: run gen_certs once with --san holding the server's IP/DNS name, copy
# certs/ca.crt to every node, start flower-superlink on the server with --host 0.0.0.0, register
# each node's public key there, and start each flower-supernode with --superlink <server>:<port>
# (see --help).

FLOWER_CONNECTION=local-deployment

usage() {
    cat <<'EOF'
Usage: scripts/flower_local_deployment.sh [options]

Runs one fedsb federated job on a local Flower deployment (TLS + SuperNode auth) and stops it.

Options:
  --nodes K            SuperNodes (= clients; sets partition.clients=K)           [3]
  --data-dirs D0,D1,.. data at the sites: one SuperNode per directory (or data file),
                       node i started with data-path=Di; the server reads none of them
                       and evaluates on the nodes (federated evaluation)
  --test-data PATHS    with --data-dirs: a global test set the server evaluates on
                       (files or directories joined by ',')
  --run-dir DIR        run directory to write (must not hold a run)      [WORK/run]
  --config TOML        RunConfig TOML (e.g. configs/run.toml)          [defaults]
  --set KEY=VALUE      RunConfig override; repeatable (TOML values, as fedsb --set)
  --overrides 'A;B'    more overrides, joined by ';'
  --pretrained PATH    backbone: a pretrain run dir or .safetensors (sets pretrained=)
  --demo               tiny job for a smoke test: pretrain a tiny backbone into
                       WORK/pretrained (once, ~5 s) and run 2 rounds at rank 4 on
                       16x16 images of 3 classes, 60 records per client
  --cache-dir DIR      data/backbone cache of the server and the nodes   [WORK/cache]
  --work-dir DIR       certificates, keys, logs, Flower home    [a new /tmp dir]
  --host HOST          SuperLink bind address                         [127.0.0.1]
  --port PORT          SuperLink port (Fleet, Control and Runtime API)      [9092]
  --node-port PORT     runtime API port of SuperNode 0; node i uses PORT+i  [9094]
  --san LIST           extra subjectAltName entries of the server certificate,
                       e.g. 'IP:10.0.0.5,DNS:fl.example.org'
  --timeout SECONDS    bound for the whole job after the nodes are up       [1800]
  --connect-timeout S  how long the ServerApp waits for all K nodes          [120]
  -h, --help           this help

Environment: VENV_BIN (default <repo>/.venv/bin) holds flower-superlink, flower-supernode,
flwr, fedsb and python. The script sets FLWR_HOME=WORK/flwr-home, FLWR_TELEMETRY_ENABLED=0,
FLWR_DISABLE_UPDATE_CHECK=1, FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1.

Exit status: 0 when metrics.jsonl of the run dir ends with the final row; nonzero otherwise.
Logs: WORK/logs/{superlink,supernode-<i>,flwr-run}.log.
EOF
}

log() { printf '[flower-deploy %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# gen_certs DIR [EXTRA_SAN]: DIR/ca.crt, ca.key, server.pem, server.key (SAN localhost, 127.0.0.1).
gen_certs() {
    local dir=$1 san="DNS:localhost,IP:127.0.0.1${2:+,$2}"
    mkdir -p "$dir"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$dir/ca.key" -out "$dir/ca.crt" \
        -days 30 -subj "/CN=fedsb-flower-ca" 2>/dev/null || return 1
    openssl req -newkey rsa:2048 -nodes -keyout "$dir/server.key" -out "$dir/server.csr" \
        -subj "/CN=localhost" 2>/dev/null || return 1
    printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\n' "$san" >"$dir/server.ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
        -CAcreateserial -out "$dir/server.pem" -days 30 -extfile "$dir/server.ext" 2>/dev/null ||
        return 1
    chmod 600 "$dir/ca.key" "$dir/server.key"
}

# gen_node_key DIR NAME: an EC (NIST P-384) key pair DIR/NAME (private) and DIR/NAME.pub, both
# in OpenSSH format, which is what flower-supernode --auth-supernode-private-key and
# `flwr supernode register` load (PEM keys from `openssl genpkey` are rejected by them).
gen_node_key() {
    local dir=$1 name=$2
    mkdir -p "$dir"
    rm -f "${dir:?}/$name" "$dir/$name.pub"
    if command -v ssh-keygen >/dev/null; then
        ssh-keygen -q -t ecdsa -b 384 -N "" -C "" -f "$dir/$name" || return 1
    else # the cryptography package comes with flwr
        "$VENV_BIN/python" - "$dir/$name" <<'PY' || return 1
import sys
from cryptography.hazmat.primitives import serialization as s
from cryptography.hazmat.primitives.asymmetric import ec
key = ec.generate_private_key(ec.SECP384R1())
private = key.private_bytes(s.Encoding.PEM, s.PrivateFormat.OpenSSH, s.NoEncryption())
open(sys.argv[1], "wb").write(private)
pub = key.public_key().public_bytes(s.Encoding.OpenSSH, s.PublicFormat.OpenSSH)
open(sys.argv[1] + ".pub", "wb").write(pub + b"\n")
PY
        chmod 600 "$dir/$name"
    fi
}

# write_connection FLWR_HOME ADDRESS CA_CERT: the Flower configuration with the TLS connection
# $FLOWER_CONNECTION (default) to ADDRESS (host:port).
write_connection() {
    mkdir -p "$1"
    cat >"$1/config.toml" <<EOF
[superlink]
default = "$FLOWER_CONNECTION"

[superlink.$FLOWER_CONNECTION]
address = "$2"
root-certificates = "$3"
EOF
}

# port_open HOST PORT: something listens there.
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# wait_port HOST PORT SECONDS PID: wait until the port is open (fails if PID died or on timeout).
wait_port() {
    local end=$((SECONDS + $3))
    until port_open "$1" "$2"; do
        kill -0 "$4" 2>/dev/null || return 1
        ((SECONDS < end)) || return 1
        sleep 0.3
    done
}

STARTED=() # process group ids of everything started (each process leads its own group)

# spawn LOGFILE CMD...: start CMD in its own session/process group, log to LOGFILE; sets SPAWNED.
spawn() {
    local logfile=$1
    shift
    setsid "$@" >"$logfile" 2>&1 </dev/null &
    SPAWNED=$!
    STARTED+=("$SPAWNED")
}

# stop_all: TERM each started process group, wait up to 10 s, then KILL what is left.
stop_all() {
    local pid end
    ((${#STARTED[@]})) || return 0
    for pid in "${STARTED[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
    end=$((SECONDS + 10))
    for pid in "${STARTED[@]}"; do
        while kill -0 -- "-$pid" 2>/dev/null && ((SECONDS < end)); do sleep 0.2; done
        kill -KILL -- "-$pid" 2>/dev/null || true
    done
    STARTED=()
}

# online_nodes: number of SuperNodes the SuperLink lists as online.
online_nodes() {
    timeout 60 "$VENV_BIN/flwr" supernode list "$FLOWER_CONNECTION" --format json 2>/dev/null |
        "$VENV_BIN/python" -c '
import json, sys
try:
    nodes = json.load(sys.stdin).get("nodes", [])
except ValueError:
    nodes = []
print(sum(1 for n in nodes if n.get("status") == "online"))'
}

main() {
    set -euo pipefail
    local root nodes=3 run_dir="" config="" pretrained="" demo=0 cache_dir="" work=""
    local host=127.0.0.1 port=9092 node_port=9094 san="" timeout=1800 connect_timeout=120
    local nodes_given="" test_data=""
    local -a sets=() more=() data_dirs=()
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    while (($#)); do
        case $1 in
        --nodes) nodes=$2 && nodes_given=1 && shift ;;
        --data-dirs) IFS=',' read -r -a data_dirs <<<"$2" && shift ;;
        --test-data) test_data=$2 && shift ;;
        --run-dir) run_dir=$2 && shift ;;
        --config) config=$2 && shift ;;
        --set) sets+=("$2") && shift ;;
        --overrides) IFS=';' read -r -a more <<<"$2" && sets+=("${more[@]}") && shift ;;
        --pretrained) pretrained=$2 && shift ;;
        --demo) demo=1 ;;
        --cache-dir) cache_dir=$2 && shift ;;
        --work-dir) work=$2 && shift ;;
        --host) host=$2 && shift ;;
        --port) port=$2 && shift ;;
        --node-port) node_port=$2 && shift ;;
        --san) san=$2 && shift ;;
        --timeout) timeout=$2 && shift ;;
        --connect-timeout) connect_timeout=$2 && shift ;;
        -h | --help) usage && return 0 ;;
        *) usage >&2 && die "unknown option $1" ;;
        esac
        shift
    done
    if ((${#data_dirs[@]})); then
        [[ -z $nodes_given || $nodes == "${#data_dirs[@]}" ]] ||
            die "--nodes $nodes but ${#data_dirs[@]} --data-dirs (one SuperNode per directory)"
        nodes=${#data_dirs[@]}
        local d
        for d in "${!data_dirs[@]}"; do
            [[ -e ${data_dirs[d]} ]] || die "--data-dirs: ${data_dirs[d]} does not exist"
            [[ ${data_dirs[d]} != *"'"* ]] || die "--data-dirs: ${data_dirs[d]} holds a quote"
            data_dirs[d]=$(cd "$(dirname "${data_dirs[d]}")" && pwd)/$(basename "${data_dirs[d]}")
        done
    fi
    [[ -z $test_data || ${#data_dirs[@]} -gt 0 ]] || die "--test-data needs --data-dirs"
    [[ $nodes =~ ^[1-9][0-9]*$ ]] || die "--nodes must be a positive integer"
    VENV_BIN=${VENV_BIN:-$root/.venv/bin}
    for exe in flower-superlink flower-supernode flwr fedsb python; do
        [[ -x $VENV_BIN/$exe ]] || die "$VENV_BIN/$exe not found (set VENV_BIN)"
    done
    command -v openssl >/dev/null || die "openssl not found"
    command -v setsid >/dev/null || die "setsid (util-linux) not found"
    [[ -n $work ]] || work=$(mktemp -d /tmp/fedsb-flower-XXXXXX)
    mkdir -p "$work/logs"
    work=$(cd "$work" && pwd)
    [[ -n $run_dir ]] || run_dir=$work/run
    [[ -n $cache_dir ]] || cache_dir=$work/cache
    mkdir -p "$cache_dir" "$(dirname "$run_dir")"
    run_dir=$(cd "$(dirname "$run_dir")" && pwd)/$(basename "$run_dir")
    cache_dir=$(cd "$cache_dir" && pwd)
    [[ -z $config ]] || config=$(cd "$(dirname "$config")" && pwd)/$(basename "$config")
    [[ -e $run_dir/metrics.jsonl ]] && die "$run_dir already holds a run"

    export PATH="$VENV_BIN:$PATH" FLWR_HOME="$work/flwr-home" FLWR_TELEMETRY_ENABLED=0 \
        FLWR_DISABLE_UPDATE_CHECK=1 FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1
    trap stop_all EXIT
    trap 'exit 130' INT TERM
    log "work dir $work, run dir $run_dir"

    local -a overrides=()
    if ((demo)); then
        overrides+=(
            "data.classes='bpsk,qpsk,gfsk'" "data.generator.length=256" "data.images.size=16"
            "data.images.channels='spectrogram,constellation_comp'"
            "partition.records_per_client=60" "partition.val_per_class=2"
            "partition.test_per_class=8" "rounds=2" "adapter.rank=4" "adapter.init_samples=32"
            "client.batch_size=16" "threads=1"
        )
        if [[ -z $pretrained ]]; then
            pretrained=$work/pretrained
            if [[ ! -e $pretrained/model.safetensors ]]; then
                log "pretraining a tiny backbone into $pretrained"
                "$VENV_BIN/fedsb" pretrain --out "$pretrained" --cache "$cache_dir" \
                    --set "data.classes='bpsk,qpsk,gfsk'" --set data.generator.length=256 \
                    --set data.images.size=16 \
                    --set "data.images.channels='spectrogram,constellation_comp'" \
                    --set data.per_class=150 --set "data.generator.snr_db=[0.0, 20.0]" \
                    --set val_per_class=8 --set test_per_class=30 --set train.epochs=4 \
                    --set train.batch_size=32 --set train.threads=1 \
                    --set "model.widths=[16, 32]" --set "model.blocks=[1, 1]" \
                    >"$work/logs/pretrain.log" 2>&1 || die "pretraining failed (logs/pretrain.log)"
            fi
        fi
    fi
    if [[ -n $pretrained ]]; then
        [[ -e $pretrained ]] || die "--pretrained $pretrained does not exist"
        pretrained=$(cd "$(dirname "$pretrained")" && pwd)/$(basename "$pretrained")
        overrides+=("pretrained='$pretrained'")
    fi
    ((nodes > 1)) || overrides+=("server.min_clients=1")
    overrides+=(${sets[@]+"${sets[@]}"} "partition.clients=$nodes")

    local -a tests=()
    if [[ -n $test_data ]]; then
        IFS=',' read -r -a tests <<<"$test_data"
        for d in "${!tests[@]}"; do
            [[ -e ${tests[d]} ]] || die "--test-data: ${tests[d]} does not exist"
            tests[d]=$(cd "$(dirname "${tests[d]}")" && pwd)/$(basename "${tests[d]}")
        done
        test_data=$(IFS=',' && echo "${tests[*]}")
    fi

    log "certificates and $nodes SuperNode key pairs"
    gen_certs "$work/certs" "$san" || die "openssl failed"
    local i
    for ((i = 0; i < nodes; i++)); do
        gen_node_key "$work/keys" "node$i" || die "key generation failed"
    done
    local address=$host
    [[ $host == 0.0.0.0 ]] && address=127.0.0.1
    address=$address:$port
    write_connection "$FLWR_HOME" "$address" "$work/certs/ca.crt"
    port_open "${address%:*}" "$port" && die "port $port is in use (--port)"

    log "SuperLink on $host:$port (TLS, SuperNode auth)"
    spawn "$work/logs/superlink.log" "$VENV_BIN/flower-superlink" \
        --ssl-ca-certfile "$work/certs/ca.crt" --ssl-certfile "$work/certs/server.pem" \
        --ssl-keyfile "$work/certs/server.key" --enable-supernode-auth \
        --disable-runtime-dependency-installation --host "$host" --port "$port"
    wait_port "${address%:*}" "$port" 60 "$SPAWNED" ||
        die "SuperLink did not start (logs/superlink.log)"

    for ((i = 0; i < nodes; i++)); do
        timeout 60 "$VENV_BIN/flwr" supernode register "$work/keys/node$i.pub" \
            "$FLOWER_CONNECTION" >>"$work/logs/register.log" 2>&1 ||
            die "registering node$i failed (logs/register.log)"
        port_open 127.0.0.1 $((node_port + i)) && die "port $((node_port + i)) is in use"
        local node_config="partition-id=$i cache-dir='$cache_dir'"
        if ((${#data_dirs[@]})); then
            node_config="partition-id=$i num-partitions=$nodes data-path='${data_dirs[i]}'"
            node_config+=" cache-dir='$cache_dir'"
            log "SuperNode $i: data-path ${data_dirs[i]}"
        fi
        spawn "$work/logs/supernode-$i.log" "$VENV_BIN/flower-supernode" \
            --root-certificates "$work/certs/ca.crt" --superlink "$address" \
            --auth-supernode-private-key "$work/keys/node$i" --port $((node_port + i)) \
            --node-config "$node_config"
    done
    local end=$((SECONDS + 60)) online=0
    while ((online < nodes)); do
        ((SECONDS < end)) || die "only $online of $nodes SuperNodes online (logs/supernode-*.log)"
        sleep 1
        online=$(online_nodes)
    done
    log "$nodes SuperNodes online"

    local rc_file=$work/run-config.toml overrides_text
    overrides_text=$(IFS=';' && echo "${overrides[*]}")
    "$VENV_BIN/python" - "$rc_file" "$run_dir" "$config" "$cache_dir" "$connect_timeout" \
        "$overrides_text" "${#data_dirs[@]}" "$test_data" <<'PY' || die "cannot write $rc_file"
import sys
import tomli_w
path, run_dir, config, cache_dir, timeout, overrides, sites, test_data = sys.argv[1:]
conf = {"run-dir": run_dir, "config": config, "overrides": overrides, "cache-dir": cache_dir,
        "connect-timeout": float(timeout)}
if int(sites):
    conf.update({"data-at-sites": True, "test-data": test_data})
open(path, "wb").write(tomli_w.dumps(conf).encode())
PY
    log "flwr run flower $FLOWER_CONNECTION --run-config $rc_file (bounded by $timeout s)"
    # In the background and waited for, so that a signal to this script stops it at once.
    spawn "$work/logs/flwr-run.log" timeout "$timeout" "$VENV_BIN/flwr" run "$root/flower" \
        "$FLOWER_CONNECTION" --stream --run-config "$rc_file"
    local run_pid=$SPAWNED status=0
    tail -n +1 -f --pid="$run_pid" "$work/logs/flwr-run.log" &
    wait "$run_pid" || status=$?
    wait $! 2>/dev/null || true # tail ends with the run
    ((status != 124)) || log "the run did not end within $timeout s"
    local metrics=$run_dir/metrics.jsonl
    if [[ -s $metrics ]] && tail -n 1 "$metrics" | grep -q '"stage": "final"'; then
        log "done: $run_dir ($(grep -c '"stage": "round"' "$metrics") rounds)"
        return 0
    fi
    die "the run did not finish (flwr run exit $status; logs in $work/logs)"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    main "$@"
fi
