#!/usr/bin/env bash
# A dancu cluster on loopback: a primary, two followers and nginx, on free
# ports, all state in $CLUSTER_DIR. A throw-away CA signs nginx's
# certificate and the followers' client certificates; the followers read
# the change feed through nginx's mTLS feed port (FOLLOW_VIA=direct: from
# the primary's own listener in plain HTTP instead).
#
#   deploy/local-cluster.sh up          # start; prints the URLs and keys
#   deploy/local-cluster.sh down        # stop everything, delete the state
#   deploy/local-cluster.sh kill9 f1    # SIGKILL a node (p, f1, f2)
#   deploy/local-cluster.sh stop p      # SIGTERM a node, wait until it exits
#   deploy/local-cluster.sh start f1    # (re)start a node
#
# Environment: DANCU_BIN (default target/release/dancu-server),
# DANCU_SNAPSHOT (default data/demo/demo-1m.snap: run dancu-server once to
# build it), CLUSTER_DIR (default /tmp/dancu-cluster). After `up`,
# $CLUSTER_DIR/env holds NGINX_URL, FEED_URL, PRIMARY_URL, F1_URL, F2_URL,
# ADMIN_KEY, FOLLOWER_KEY; $CLUSTER_DIR/tls/ca.crt is the CA. nginx comes from Debian's package; without it
# `up` exits 3 with a message (the cluster test then skips).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${DANCU_BIN:-$ROOT/target/release/dancu-server}
SNAPSHOT=${DANCU_SNAPSHOT:-$ROOT/data/demo/demo-1m.snap}
DIR=${CLUSTER_DIR:-/tmp/dancu-cluster}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
FOLLOW_VIA=${FOLLOW_VIA:-nginx}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_ready() { # URL, seconds
    local deadline=$((SECONDS + $2))
    until curl -sf "$1/readyz" >/dev/null; do
        if ((SECONDS > deadline)); then
            echo "local-cluster: $1 not ready after $2 s" >&2
            return 1
        fi
        sleep 0.1
    done
}

node_args() { # node name -> its dancu-server arguments
    # shellcheck disable=SC1091
    source "$DIR/env"
    local n=$1 port
    case $n in
        p) port=$PRIMARY_PORT ;;
        f1) port=$F1_PORT ;;
        f2) port=$F2_PORT ;;
        *) echo "local-cluster: no node $n (p, f1, f2)" >&2; exit 2 ;;
    esac
    echo --snapshot "$DIR/$n/snapshots/$(basename "$SNAPSHOT")" --changes "$DIR/$n/changes" \
        --keys "$DIR/keys.toml" --audit "$DIR/$n/audit.log" --listen "127.0.0.1:$port" \
        --runtime multi:1 --compact-after 0
    if [[ $n != p ]]; then
        echo --follow-key-file "$DIR/follower.key" --max-lag-s 10
        if [[ $FOLLOW_VIA == direct ]]; then
            echo --follow "http://127.0.0.1:$PRIMARY_PORT"
        else
            echo --follow "$FEED_URL" --follow-ca "$DIR/tls/ca.crt" \
                --follow-cert "$DIR/tls/$n.crt" --follow-cert-key "$DIR/tls/$n.key"
        fi
    fi
}

start_node() {
    local n=$1
    # shellcheck disable=SC2046
    nohup "$BIN" $(node_args "$n") >>"$DIR/$n/server.log" 2>&1 &
    echo $! >"$DIR/$n/pid"
    source "$DIR/env"
    local url_var=${n^^}_URL
    [[ $n == p ]] && url_var=PRIMARY_URL
    wait_ready "${!url_var}" 60
}

up() {
    if [[ ! -x $NGINX ]]; then
        echo "local-cluster: SKIP: nginx is not installed (apt-get install nginx-light)" >&2
        exit 3
    fi
    [[ -x $BIN ]] || { echo "local-cluster: no $BIN (cargo build --release -p dancu-server)" >&2; exit 2; }
    [[ -f $SNAPSHOT ]] || { echo "local-cluster: no $SNAPSHOT (run dancu-server once to build the demo snapshot)" >&2; exit 2; }
    [[ -e $DIR ]] && { echo "local-cluster: $DIR exists (down first)" >&2; exit 2; }
    mkdir -p "$DIR"/{p,f1,f2}/{snapshots,changes} "$DIR/nginx/tmp" "$DIR/tls"
    chmod 700 "$DIR"
    local admin follower
    admin=$(openssl rand -hex 16)
    follower=$(openssl rand -hex 16)
    umask 077
    echo "$follower" >"$DIR/follower.key"
    cat >"$DIR/keys.toml" <<KEYS
[[client]]
name = "cluster-admin"
key_sha256 = "$(echo "$admin" | "$BIN" hash-key)"
scopes = ["citizen:read", "citizen:verify", "admin", "registrar", "changes:read"]

[[client]]
name = "follower"
key_sha256 = "$(echo "$follower" | "$BIN" hash-key)"
scopes = ["changes:read"]
KEYS
    local pp f1p f2p np fp
    pp=$(free_port); f1p=$(free_port); f2p=$(free_port); np=$(free_port); fp=$(free_port)
    cat >"$DIR/env" <<ENV
PRIMARY_PORT=$pp
F1_PORT=$f1p
F2_PORT=$f2p
NGINX_PORT=$np
FEED_PORT=$fp
PRIMARY_URL=http://127.0.0.1:$pp
F1_URL=http://127.0.0.1:$f1p
F2_URL=http://127.0.0.1:$f2p
NGINX_URL=https://127.0.0.1:$np
FEED_URL=https://127.0.0.1:$fp
ADMIN_KEY=$admin
FOLLOWER_KEY=$follower
ENV
    for n in p f1 f2; do
        # A hard link: snapshots are never written in place (compaction
        # writes a new generation beside them).
        ln "$SNAPSHOT" "$DIR/$n/snapshots/$(basename "$SNAPSHOT")" 2>/dev/null ||
            cp "$SNAPSHOT" "$DIR/$n/snapshots/$(basename "$SNAPSHOT")"
    done
    start_node p
    make_certificates
    # The production config, pointed at this cluster.
    sed -e "/# @primary\$/s/10\.0\.0\.11:8080/127.0.0.1:$pp/" \
        -e "/# @primary-read\$/s/10\.0\.0\.11:8080/127.0.0.1:$pp/" \
        -e "/# @follower1\$/s/10\.0\.0\.12:8080/127.0.0.1:$f1p/" \
        -e "/# @follower2\$/s/10\.0\.0\.13:8080/127.0.0.1:$f2p/" \
        -e "s|listen 443 ssl;|listen 127.0.0.1:$np ssl;|" \
        -e "s|listen 10\.0\.0\.10:8443 ssl;|listen 127.0.0.1:$fp ssl;|" \
        -e "s|/etc/dancu/tls/|$DIR/tls/|" \
        "$ROOT/deploy/nginx/dancu.conf" >"$DIR/nginx/dancu.conf"
    local user_line=""
    [[ $(id -u) == 0 ]] && user_line="user root;"
    cat >"$DIR/nginx/nginx.conf" <<NGINX
$user_line
worker_processes ${NGINX_WORKERS:-1};
pid $DIR/nginx/nginx.pid;
error_log $DIR/nginx/error.log warn;
events { worker_connections 4096; }
http {
    client_body_temp_path $DIR/nginx/tmp/body;
    proxy_temp_path $DIR/nginx/tmp/proxy;
    fastcgi_temp_path $DIR/nginx/tmp/fastcgi;
    uwsgi_temp_path $DIR/nginx/tmp/uwsgi;
    scgi_temp_path $DIR/nginx/tmp/scgi;
    include $DIR/nginx/dancu.conf;
}
NGINX
    "$NGINX" -t -q -p "$DIR/nginx" -c "$DIR/nginx/nginx.conf"
    "$NGINX" -p "$DIR/nginx" -c "$DIR/nginx/nginx.conf"
    start_node f1
    start_node f2
    local deadline=$((SECONDS + 10))
    until curl -skf "https://127.0.0.1:$np/readyz" >/dev/null; do
        ((SECONDS < deadline)) || { echo "local-cluster: nginx does not answer" >&2; exit 1; }
        sleep 0.1
    done
    echo "local-cluster: up in $DIR"
    cat "$DIR/env"
}

# A CA; nginx's certificate for 127.0.0.1 and localhost; a client
# certificate per follower. In production the followers' CA is a different
# one from the server certificate's (dancu.conf names both files).
make_certificates() {
    local t=$DIR/tls
    key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
    key "$t/ca.key"
    openssl req -x509 -new -key "$t/ca.key" -days 2 -subj "/CN=dancu local-cluster CA" \
        -out "$t/ca.crt" 2>/dev/null
    cp "$t/ca.crt" "$t/followers-ca.crt"
    issue() { # name, subject, extensions
        key "$t/$1.key"
        openssl req -new -key "$t/$1.key" -subj "$2" 2>/dev/null |
            openssl x509 -req -CA "$t/ca.crt" -CAkey "$t/ca.key" -CAcreateserial -days 2 \
                -extfile <(printf '%s\n' "$3") -out "$t/$1.crt" 2>/dev/null
    }
    issue dancu /CN=localhost "basicConstraints=CA:FALSE
subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth"
    for n in f1 f2; do
        issue "$n" "/CN=dancu-follower-$n" "basicConstraints=CA:FALSE
extendedKeyUsage=clientAuth"
    done
}

stop_node() { # SIGTERM: the graceful shutdown a restart does
    local pid; pid=$(cat "$DIR/$1/pid")
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    echo "local-cluster: $1 did not stop in 30 s" >&2
    return 1
}

down() {
    [[ -d $DIR ]] || return 0
    if [[ -f $DIR/nginx/nginx.pid ]]; then
        kill "$(cat "$DIR/nginx/nginx.pid")" 2>/dev/null || true
    fi
    for n in f2 f1 p; do
        [[ -f $DIR/$n/pid ]] && kill "$(cat "$DIR/$n/pid")" 2>/dev/null || true
    done
    for n in f2 f1 p; do
        if [[ -f $DIR/$n/pid ]]; then
            local pid; pid=$(cat "$DIR/$n/pid")
            for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
    done
    rm -rf "$DIR"
    echo "local-cluster: down"
}

case ${1:-} in
    up) up ;;
    down) down ;;
    kill9) kill -9 "$(cat "$DIR/${2:?node}/pid")" ;;
    start) start_node "${2:?node}" ;;
    stop) stop_node "${2:?node}" ;;
    *) echo "usage: $0 up|down|kill9 NODE|stop NODE|start NODE" >&2; exit 2 ;;
esac
