#!/usr/bin/env bash
# versitygw.sh - run a real S3 server for weir's tests: the Versity S3
# Gateway (github.com/versity/versitygw) over a local directory, POSIX
# backend, on 127.0.0.1.
#
#   versitygw.sh start DIR   build versitygw once (go install, cached in
#                            <this dir>/.bin, git-ignored), start it with its
#                            data in DIR/data and print its endpoint URL
#                            http://127.0.0.1:PORT. The port is kept in DIR, so
#                            start after stop serves the same data at the same
#                            address. A server already running for DIR is
#                            reused.
#   versitygw.sh stop DIR    stop it (SIGTERM, SIGKILL after 10 s).
#
# Credentials (test-only): access key weir-test, secret weir-test-secret,
# region us-east-1.
set -euo pipefail

readonly VERSION=v1.8.0
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly BIN="${WEIR_VERSITYGW_BIN:-$SCRIPT_DIR/.bin/versitygw-$VERSION}"

die() { echo "versitygw.sh: $*" >&2; exit 1; }

usage() {
	echo "usage: versitygw.sh start|stop DIR" >&2
	exit 2
}

[[ $# -eq 2 ]] || usage
cmd=$1
mkdir -p "$2"
DIR="$(cd "$2" && pwd)"

# running, port_open, stop_service
# shellcheck source=../service.sh
. "$SCRIPT_DIR/../service.sh"

case "$cmd" in
start)
	if running; then
		echo "http://127.0.0.1:$(cat "$DIR/port")"
		exit 0
	fi
	if [[ ! -x "$BIN" ]]; then
		command -v go >/dev/null || die "go not found, and $BIN is not built"
		echo "versitygw.sh: building versitygw $VERSION (a few minutes, once)" >&2
		tmp="$(mktemp -d)"
		GOBIN="$tmp" go install "github.com/versity/versitygw/cmd/versitygw@$VERSION" >&2 || die "go install versitygw failed"
		mkdir -p "$(dirname "$BIN")"
		mv "$tmp/versitygw" "$BIN"
		rm -rf "$tmp"
	fi
	if [[ ! -f "$DIR/port" ]]; then
		python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' >"$DIR/port"
	fi
	port="$(cat "$DIR/port")"
	port_open "$port" && die "port $port (from $DIR/port) is in use"
	mkdir -p "$DIR/data" "$DIR/meta"
	"$BIN" --access weir-test --secret weir-test-secret --region us-east-1 --port "127.0.0.1:$port" \
		posix --sidecar "$DIR/meta" "$DIR/data" >"$DIR/server.log" 2>&1 &
	echo $! >"$DIR/pid"
	for _ in $(seq 1 100); do
		if port_open "$port"; then
			echo "http://127.0.0.1:$port"
			exit 0
		fi
		running || { tail -20 "$DIR/server.log" >&2; die "versitygw exited during startup"; }
		sleep 0.1
	done
	tail -20 "$DIR/server.log" >&2
	die "versitygw did not listen on 127.0.0.1:$port within 10 s"
	;;
stop)
	stop_service
	;;
*)
	usage
	;;
esac
