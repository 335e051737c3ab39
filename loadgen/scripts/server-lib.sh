# Sourced by the scripts beside it: start and stop a server on loopback.
#
#   start_server LOG CMD...   runs CMD in the background (pid in $server)
#                             and waits until $url answers
#   stop_server               stops it (safe when none runs)
#   cpu_ticks PID             utime + stime of a process, in clock ticks

server=

start_server() {
    local log=$1; shift
    "$@" > "$log" 2>&1 &
    server=$!
    # Up to 120 s: a large snapshot is mapped before the listener opens.
    for _ in $(seq 1 1200); do
        if curl -s -o /dev/null "$url/" 2>/dev/null; then return 0; fi
        if ! kill -0 "$server" 2>/dev/null; then break; fi
        sleep 0.1
    done
    echo "server on $url did not start; its log:" >&2
    cat "$log" >&2
    return 1
}

stop_server() {
    if [ -n "$server" ]; then
        kill "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
        server=
    fi
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
