package engine

import (
	"context"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The job binary's HTTP server (--http): health, readiness, metrics, and a
// JSON API for the job graph and the checkpoint history. It binds to
// 127.0.0.1 unless the address names another host. Requests that change
// something (POST) need "Authorization: Bearer TOKEN" when a token is set
// (--http-token), and are refused when the server listens beyond loopback
// without one.

// indexHTML is the status page: the job graph and the checkpoint history
// as a chart, drawn by a little JavaScript from the JSON API.
//
//go:embed web/index.html
var indexHTML []byte

// httpServer is a running HTTP server of a job binary.
type httpServer struct {
	srv  *http.Server
	addr net.Addr
}

// listenAddr resolves --http: a missing host is 127.0.0.1.
func listenAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

func startHTTP(addr, token string, st *Status, metrics http.Handler, log *slog.Logger) (*httpServer, error) {
	bind, err := listenAddr(addr)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	// Loopback is what the listener bound, not what the name said.
	tcp, _ := ln.Addr().(*net.TCPAddr)
	loopback := tcp != nil && tcp.IP.IsLoopback()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(indexHTML)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !st.Ready() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "state": st.Job().State})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	mux.HandleFunc("GET /api/job", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, st.Job())
	})
	mux.HandleFunc("GET /api/checkpoints", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, st.Checkpoints())
	})
	// allowed answers a request that changes the job and returns false
	// unless it may.
	allowed := func(w http.ResponseWriter, r *http.Request) bool {
		switch {
		case token == "" && !loopback:
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "the server listens beyond loopback without --http-token: requests that change the job are refused"})
			return false
		case token != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+token)) != 1:
			w.Header().Set("WWW-Authenticate", `Bearer realm="weir"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong bearer token"})
			return false
		case token == "" && !local(r):
			// Without a token, a web page the user opens (or a DNS
			// rebinding) must not reach a loopback server's POST.
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "cross-origin request, or a Host that is not localhost or an address: refused without --http-token"})
			return false
		}
		return true
	}
	post := func(request func(context.Context) (RequestResult, error)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if !allowed(w, r) {
				return
			}
			res, err := request(r.Context())
			switch {
			case errors.Is(err, ErrNoCheckpoints):
				writeJSON(w, http.StatusConflict, map[string]string{"error": "the job takes no checkpoints now (no --checkpoint-dir, or it is not running)"})
			case errors.Is(err, ErrNoSavepoints):
				writeJSON(w, http.StatusConflict, map[string]string{"error": err.Error()})
			case err != nil:
				writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			case res.Outcome == "rejected":
				writeJSON(w, http.StatusConflict, res)
			default:
				writeJSON(w, http.StatusAccepted, res)
			}
		}
	}
	// POST /api/stop[?savepoint=true] stops the job as SIGTERM does (with a
	// savepoint, as --stop-with-savepoint) and answers once it has ended.
	mux.HandleFunc("POST /api/stop", func(w http.ResponseWriter, r *http.Request) {
		if !allowed(w, r) {
			return
		}
		savepoint := false
		if v := r.URL.Query().Get("savepoint"); v != "" {
			var err error
			if savepoint, err = strconv.ParseBool(v); err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("savepoint=%q: want true or false", v)})
				return
			}
		}
		ended, err := st.RequestStop(savepoint)
		if err != nil {
			writeJSON(w, http.StatusConflict, map[string]string{"error": err.Error()})
			return
		}
		select {
		case <-ended:
		case <-r.Context().Done():
			return
		}
		res := st.Stopped()
		code := http.StatusOK
		switch {
		case res.State != StateFinished:
			code = http.StatusInternalServerError
		case savepoint && res.Savepoint == "":
			// SIGTERM or another stop got there first, without a
			// savepoint.
			code = http.StatusConflict
			res.Error = "the job stopped without a savepoint: it was already stopping when the savepoint was asked for"
		}
		writeJSON(w, code, res)
	})
	mux.HandleFunc("POST /api/checkpoints", post(st.RequestCheckpoint))
	mux.HandleFunc("POST /api/savepoints", post(st.RequestSavepoint))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("HTTP server", "err", err)
		}
	}()
	return &httpServer{srv: srv, addr: ln.Addr()}, nil
}

// local reports whether a request comes from a client of this host by
// name: its Host is localhost or an IP address (not a name that a DNS
// rebinding could point here), and an Origin, if any, is the same host.
func local(r *http.Request) bool {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host != "localhost" && net.ParseIP(strings.Trim(host, "[]")) == nil {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return false
		}
	}
	return r.Header.Get("Sec-Fetch-Site") != "cross-site"
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// httpURL is the base URL of a listener's address, for logs.
func httpURL(a net.Addr) string {
	return "http://" + strings.TrimSuffix(fmt.Sprint(a), "/")
}
