#!/usr/bin/env bash
# Starts and stops a throwaway ClickHouse server for the tests that need one.
#
#   scripts/clickhouse.sh start DIR   prints http://127.0.0.1:PORT once the server answers
#   scripts/clickhouse.sh stop DIR    stops it and waits until it is gone
#
# The server runs from DIR only: its config, data, logs and pid file all live there, it listens
# on 127.0.0.1 alone, on free ports picked at start, so several can run side by side and none
# touches a system ClickHouse. Installs Debian's clickhouse-server when it is missing.
set -euo pipefail

usage() {
    echo "usage: $0 start DIR | stop DIR" >&2
    exit 2
}

[ $# -eq 2 ] || usage
command="$1"
dir="$2"

server=/usr/sbin/clickhouse-server

install_server() {
    if [ -x "$server" ]; then
        return
    fi
    echo "installing clickhouse-server (Debian package)" >&2
    export DEBIAN_FRONTEND=noninteractive
    # The package lists may be missing on a fresh machine; update once and retry.
    if ! apt-get install -y clickhouse-server >&2; then
        apt-get update >&2
        apt-get install -y clickhouse-server >&2
    fi
}

# A free TCP port on the loopback: bind port 0 and read what the kernel chose. The port is
# released before the server binds it, which is a small race but fine on a test machine.
free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# Copies the packaged config into DIR with every path, port and listen address rewritten.
write_config() {
    local http_port="$1" tcp_port="$2" interserver_port="$3"
    python3 - "$dir" "$http_port" "$tcp_port" "$interserver_port" <<'PY'
import sys
import xml.etree.ElementTree as ET

directory, http_port, tcp_port, interserver_port = sys.argv[1:5]

tree = ET.parse("/etc/clickhouse-server/config.xml")
root = tree.getroot()

def set_text(path, value):
    node = root.find(path)
    if node is None:
        parent_path, _, name = path.rpartition("/")
        parent = root.find(parent_path) if parent_path else root
        node = ET.SubElement(parent, name)
    node.text = value

set_text("logger/log", f"{directory}/log/clickhouse-server.log")
set_text("logger/errorlog", f"{directory}/log/clickhouse-server.err.log")
set_text("logger/level", "information")
set_text("path", f"{directory}/data/")
set_text("tmp_path", f"{directory}/data/tmp/")
set_text("user_files_path", f"{directory}/data/user_files/")
set_text("format_schema_path", f"{directory}/data/format_schemas/")
set_text("http_port", http_port)
set_text("tcp_port", tcp_port)
set_text("interserver_http_port", interserver_port)
set_text("interserver_http_host", "127.0.0.1")
set_text("timezone", "UTC")
# A test server: small caches (the packaged defaults reserve gigabytes on demand).
set_text("mark_cache_size", str(256 * 1024 * 1024))
set_text("uncompressed_cache_size", str(256 * 1024 * 1024))
for port in ("https_port", "tcp_port_secure", "mysql_port", "postgresql_port"):
    for node in root.findall(port):
        root.remove(node)
for node in root.findall("listen_host"):
    root.remove(node)
ET.SubElement(root, "listen_host").text = "127.0.0.1"
# No ZooKeeper here: the distributed DDL queue would only log errors.
for node in root.findall("distributed_ddl"):
    root.remove(node)
tree.write(f"{directory}/config.xml", encoding="utf-8", xml_declaration=True)

users = ET.parse("/etc/clickhouse-server/users.xml")
for networks in users.getroot().iter("networks"):
    for child in list(networks):
        networks.remove(child)
    ET.SubElement(networks, "ip").text = "127.0.0.1"
    ET.SubElement(networks, "ip").text = "::1"
users.write(f"{directory}/users.xml", encoding="utf-8", xml_declaration=True)
PY
}

start() {
    install_server
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
        echo "a ClickHouse server is already running from $dir (pid $(cat "$dir/pid"))" >&2
        exit 1
    fi
    mkdir -p "$dir/log" "$dir/data"
    local http_port tcp_port interserver_port
    http_port="$(free_port)"
    tcp_port="$(free_port)"
    interserver_port="$(free_port)"
    write_config "$http_port" "$tcp_port" "$interserver_port"
    echo "$http_port" >"$dir/http_port"

    # In the foreground (no --daemon), as a background child of this script; its console
    # output goes to a file so the caller's stdout carries the URL alone. setsid detaches it
    # from the caller's process group so the caller's shell ending does not take it along.
    setsid "$server" --config-file="$dir/config.xml" >"$dir/log/console.log" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$dir/pid"

    local url="http://127.0.0.1:$http_port"
    local deadline=$((SECONDS + 60))
    until [ "$(curl -fsS --max-time 2 "$url/ping" 2>/dev/null || true)" = "Ok." ]; do
        local why=""
        if ! kill -0 "$pid" 2>/dev/null; then
            why="exited before answering on $url/ping"
        elif [ "$SECONDS" -ge "$deadline" ]; then
            why="did not answer on $url/ping within 60s"
        fi
        if [ -n "$why" ]; then
            echo "ClickHouse $why; its log ends with:" >&2
            tail -n 40 "$dir/log/console.log" "$dir/log/clickhouse-server.err.log" >&2 2>/dev/null || true
            kill "$pid" 2>/dev/null || true
            exit 1
        fi
        sleep 0.2
    done
    echo "$url"
}

stop() {
    if [ ! -f "$dir/pid" ]; then
        echo "no ClickHouse server was started from $dir (no pid file)" >&2
        exit 1
    fi
    local pid
    pid="$(cat "$dir/pid")"
    if kill "$pid" 2>/dev/null; then
        # SIGTERM lets it finish merges and flush logs; give it 30s before SIGKILL.
        local deadline=$((SECONDS + 30))
        while kill -0 "$pid" 2>/dev/null; do
            if [ "$SECONDS" -ge "$deadline" ]; then
                kill -9 "$pid" 2>/dev/null || true
            fi
            sleep 0.2
        done
    fi
    rm -f "$dir/pid"
}

case "$command" in
start) start ;;
stop) stop ;;
*) usage ;;
esac
