#!/usr/bin/env bash
# The collector's HTTP intake against its own TCP intake, on the same events in the same run:
# host agents' Windows events (Sysmon, Winlogbeat/NXLog JSON shapes) arrive over HTTP, and no
# peer for that path is packaged in Debian (Vector, Fluent Bit), so the TCP path of the same
# build is the yardstick. Each round starts the collector afresh (pinned to core 1), sends N
# NDJSON events (requests of REQUEST events each from CLIENTS agents at once on core 0, default
# 1, each sending its requests one after another; or one TCP
# connection), waits until its sink has counted them all, and prints events per CPU-second of
# the collector (utime + stime from /proc, 10 ms ticks) and its peak resident memory (VmHWM).
# PATHS (default "http tcp") may add `bulk`: the same requests as Elasticsearch `_bulk` bodies,
# an action line before each event, as Winlogbeat sends them. CONNECTIONS (default
# per-request, as the first entries measured) may be `keep-alive`: each agent sends all its
# requests on one connection, as agents do.
#
#   scripts/http-intake-bench.sh BIN CONFIG TCP_PORT HTTP_PORT METRICS_ADDR [N] [ROUNDS] [REQUEST] [CLIENTS] [PATHS] [CONNECTIONS]
#   scripts/http-intake-bench.sh target/release/citysoc /tmp/perf/ours-H.toml 16531 16532 127.0.0.1:9801
#   scripts/http-intake-bench.sh target/release/citysoc /tmp/perf/ours-H.toml 16531 16532 127.0.0.1:9801 200000 3 2000 1 "http bulk"
#
# CONFIG must have a `tcp` source (newline framing) on TCP_PORT, an `http` source on
# HTTP_PORT, `metrics_listen = METRICS_ADDR` and a buffer large enough for 2 × N events; its
# buffer directory is deleted before each round (`[collector] data_dir`/buffer). Needs curl,
# socat, python3 and taskset.
set -euo pipefail
if [ $# -lt 5 ]; then
    sed -n '2,24p' "$0" >&2
    exit 2
fi
bin=$1 config=$2 tcp_port=$3 http_port=$4 metrics=$5 n=${6:-200000} rounds=${7:-3} per_request=${8:-2000} clients=${9:-1} paths=${10:-http tcp} connections=${11:-per-request}
data_dir=$(sed -n 's/^data_dir *= *"\(.*\)"/\1/p' "$config" | head -1)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Sysmon process creations as Winlogbeat ships them (~600 bytes), varied so no two repeat.
python3 - "$n" "$per_request" "$work" <<'EOF'
import json, sys
n, per, work = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
with open(f"{work}/events.ndjson", "w") as out:
    for i in range(n):
        out.write(json.dumps({
            "@timestamp": f"2026-11-22T03:{i % 60:02d}:{(i * 7) % 60:02d}.{i % 1000:03d}Z",
            "winlog": {
                "channel": "Microsoft-Windows-Sysmon/Operational",
                "event_id": 1,
                "computer_name": f"PC-{i % 500:03d}.ubnd.local",
                "event_data": {
                    "Image": "C:\\Windows\\System32\\cmd.exe",
                    "CommandLine": f"cmd.exe /c whoami /all {i}",
                    "ParentImage": "C:\\Windows\\explorer.exe",
                    "User": f"UBND\\nv{i % 80}",
                    "ProcessId": str(4000 + i % 30000),
                    "Hashes": f"SHA256={i:064x}",
                },
            },
            "host": {"name": f"PC-{i % 500:03d}"},
        }, separators=(",", ":")) + "\n")
lines = open(f"{work}/events.ndjson").read().splitlines(keepends=True)
action = '{"create":{"_index":"winlogbeat-8.17.0"}}\n'
for start in range(0, n, per):
    with open(f"{work}/request-{start // per:06d}.ndjson", "w") as body:
        body.writelines(lines[start:start + per])
    with open(f"{work}/bulk-{start // per:06d}.ndjson", "w") as body:
        body.writelines(action + line for line in lines[start:start + per])
EOF
bytes=$(stat -c %s "$work/events.ndjson")

sink_events() {
    curl -s "http://$metrics/metrics" | awk '/^citysoc_collector_sink_events_total/ {print $2}'
}

cpu_ticks() {
    awk '{print $14 + $15}' "/proc/$1/stat"
}

# Sends the files given after URL_PATH as requests; prints each answer's status.
send_requests() {
    local url_path=$1
    shift
    if [ "$connections" = per-request ]; then
        printf '%s\n' "$@" | taskset -c 0 xargs -P "$clients" -I{} \
            curl -s -o /dev/null -w '%{http_code}\n' -X POST \
                -H 'Content-Type: application/x-ndjson' --data-binary "@{}" \
                "http://127.0.0.1:$http_port$url_path"
        return
    fi
    local client index
    for client in $(seq 0 $((clients - 1))); do
        local args=()
        index=0
        for file in "$@"; do
            if [ $((index % clients)) -eq "$client" ]; then
                [ ${#args[@]} -eq 0 ] || args+=(--next)
                args+=(-s -o /dev/null -w '%{http_code}\n' -X POST
                    -H 'Content-Type: application/x-ndjson' --data-binary "@$file"
                    "http://127.0.0.1:$http_port$url_path")
            fi
            index=$((index + 1))
        done
        [ ${#args[@]} -eq 0 ] || taskset -c 0 curl "${args[@]}" &
    done
    wait
}

one_round() {
    local path=$1
    rm -rf "$data_dir/buffer"
    taskset -c 1 "$bin" collector run --config "$config" 2>"$work/collector.log" &
    local pid=$!
    for _ in $(seq 100); do
        sink_events >/dev/null 2>&1 && [ -n "$(sink_events)" ] && break
        sleep 0.1
    done
    local start counted=0
    start=$(cpu_ticks "$pid")
    if [ "$path" = http ] || [ "$path" = bulk ]; then
        local files=("$work"/request-*.ndjson) url_path=/
        if [ "$path" = bulk ]; then
            files=("$work"/bulk-*.ndjson) url_path=/_bulk
        fi
        # CLIENTS agents at once, each sending its requests one after another: on a connection
        # of its own kept alive (as Beats, NXLog and Fluent Bit do), or a new one per request.
        if ! send_requests "$url_path" "${files[@]}" | awk '$1 != 200 {bad = 1} END {exit bad}'; then
            echo "a request was not answered 200" >&2
            kill "$pid"
            exit 1
        fi
    else
        taskset -c 0 socat -u "FILE:$work/events.ndjson" "TCP:127.0.0.1:$tcp_port"
    fi
    for _ in $(seq 600); do
        counted=$(sink_events)
        [ "${counted:-0}" -ge "$n" ] && break
        sleep 0.1
    done
    local ticks peak_kib
    ticks=$(( $(cpu_ticks "$pid") - start ))
    peak_kib=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    if [ "${counted:-0}" -lt "$n" ]; then
        echo "$path: the sink counted ${counted:-0} of $n events" >&2
        exit 1
    fi
    python3 -c "print('$path', int($n / ($ticks / 100)), round($bytes / ($ticks / 100) / 1e6, 1), round($peak_kib / 1024, 1))"
}

echo "events $n, $bytes bytes, $per_request events a request, $clients clients, $connections connections"
for _ in $(seq "$rounds"); do
    for path in $paths; do
        one_round "$path"
    done
done | python3 -c '
import statistics, sys
runs = {}
for line in sys.stdin:
    path, events, mb, peak = line.split()
    runs.setdefault(path, []).append((int(events), float(mb), float(peak)))
for path, values in runs.items():
    events = [value[0] for value in values]
    peaks = [value[2] for value in values]
    print(f"{path}: events per CPU-second {events} median {int(statistics.median(events)):,} "
          f"({statistics.median(value[1] for value in values)} MB per CPU-second), "
          f"peak RSS {min(peaks)}–{max(peaks)} MiB")
for a, b in (("http", "tcp"), ("bulk", "tcp"), ("bulk", "http")):
    if {a, b} <= runs.keys():
        ratio = statistics.median(v[0] for v in runs[a]) / statistics.median(v[0] for v in runs[b])
        print(f"{a} / {b}: {ratio:.2f}")
'
