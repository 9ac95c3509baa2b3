# service.sh - shared by the scripts that run test services
# (s3/versitygw.sh, jaeger/jaeger.sh): sourced after they set DIR, the
# service's directory, which holds its pid file.

# running: the service of DIR runs.
running() { [[ -f "$DIR/pid" ]] && kill -0 "$(cat "$DIR/pid")" 2>/dev/null; }

# port_open PORT: something listens on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# stop_service: SIGTERM the service of DIR, SIGKILL it after 10 s.
stop_service() {
	running || return 0
	local pid
	pid="$(cat "$DIR/pid")"
	kill "$pid" 2>/dev/null || true
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || { rm -f "$DIR/pid"; return 0; }
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null || true
	rm -f "$DIR/pid"
}
