#!/usr/bin/env bash
# jaeger.sh - run a real Jaeger for weir's tests: Jaeger v2 (OTLP receivers,
# in-memory storage, query API) on 127.0.0.1, on free ports.
#
#   jaeger.sh start DIR   build jaeger once (cached in <this dir>/.bin,
#                         git-ignored), start it with its config in DIR and
#                         print "OTLP_HTTP_ENDPOINT QUERY_URL", e.g.
#                         "http://127.0.0.1:4318 http://127.0.0.1:16686".
#   jaeger.sh stop DIR    stop it (SIGTERM, SIGKILL after 10 s).
#
# `go install github.com/jaegertracing/jaeger/cmd/jaeger@v1.76.0` refuses
# the module's replace directive, so the module is downloaded and built in
# a copy of it, which honours it.
set -euo pipefail

readonly VERSION=v1.76.0
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly BIN="${WEIR_JAEGER_BIN:-$SCRIPT_DIR/.bin/jaeger-$VERSION}"

die() { echo "jaeger.sh: $*" >&2; exit 1; }

[[ $# -eq 2 ]] || { echo "usage: jaeger.sh start|stop DIR" >&2; exit 2; }
cmd=$1
mkdir -p "$2"
DIR="$(cd "$2" && pwd)"

# running, port_open, stop_service
# shellcheck source=../service.sh
. "$SCRIPT_DIR/../service.sh"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

case "$cmd" in
start)
	if running; then
		cat "$DIR/endpoints"
		exit 0
	fi
	if [[ ! -x "$BIN" ]]; then
		command -v go >/dev/null || die "go not found, and $BIN is not built"
		echo "jaeger.sh: building jaeger $VERSION (several minutes, once)" >&2
		src="$(go mod download -json "github.com/jaegertracing/jaeger@$VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
		tmp="$(mktemp -d)"
		cp -r "$src" "$tmp/jaeger" && chmod -R u+w "$tmp/jaeger"
		(cd "$tmp/jaeger" && go build -o "$tmp/jaeger-bin" ./cmd/jaeger) >&2 || { rm -rf "$tmp"; die "building jaeger failed"; }
		mkdir -p "$(dirname "$BIN")"
		mv "$tmp/jaeger-bin" "$BIN"
		rm -rf "$tmp"
	fi
	otlp_http=$(free_port) otlp_grpc=$(free_port) query=$(free_port) query_grpc=$(free_port)
	cat >"$DIR/config.yaml" <<CONFIG
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
extensions:
  jaeger_storage:
    backends:
      mem:
        memory:
          max_traces: 100000
  jaeger_query:
    storage:
      traces: mem
    http:
      endpoint: 127.0.0.1:$query
    grpc:
      endpoint: 127.0.0.1:$query_grpc
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:$otlp_grpc
      http:
        endpoint: 127.0.0.1:$otlp_http
processors:
  batch:
exporters:
  jaeger_storage_exporter:
    trace_storage: mem
CONFIG
	"$BIN" --config "$DIR/config.yaml" >"$DIR/server.log" 2>&1 &
	echo $! >"$DIR/pid"
	for _ in $(seq 1 300); do
		if port_open "$query" && port_open "$otlp_http"; then
			echo "http://127.0.0.1:$otlp_http http://127.0.0.1:$query" | tee "$DIR/endpoints"
			exit 0
		fi
		running || { tail -20 "$DIR/server.log" >&2; die "jaeger exited during startup"; }
		sleep 0.1
	done
	tail -20 "$DIR/server.log" >&2
	die "jaeger did not listen within 30 s"
	;;
stop)
	stop_service
	;;
*)
	echo "usage: jaeger.sh start|stop DIR" >&2
	exit 2
	;;
esac
