package engine

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/engine/checkpoint"
)

func TestListenAddr(t *testing.T) {
	for _, c := range []struct {
		in, bind string
		bad      bool
	}{
		{":8080", "127.0.0.1:8080", false},
		{"127.0.0.1:0", "127.0.0.1:0", false},
		{"localhost:9", "localhost:9", false},
		{"[::1]:9", "[::1]:9", false},
		{"0.0.0.0:8080", "0.0.0.0:8080", false},
		{"8080", "", true},
	} {
		bind, err := listenAddr(c.in)
		if (err != nil) != c.bad || bind != c.bind {
			t.Errorf("listenAddr(%q) = %q, %v; want %q, error %v", c.in, bind, err, c.bind, c.bad)
		}
	}
}

func TestLocalRequest(t *testing.T) {
	for _, c := range []struct {
		host, origin, fetchSite string
		want                    bool
	}{
		{"127.0.0.1:8080", "", "", true},
		{"localhost:8080", "http://localhost:8080", "same-origin", true},
		{"[::1]:8080", "", "", true},
		{"evil.example:8080", "", "", false},                 // DNS rebinding: a name pointing here
		{"127.0.0.1:8080", "http://evil.example", "", false}, // a page elsewhere posting here
		{"127.0.0.1:8080", "", "cross-site", false},
	} {
		r := httptest.NewRequest("POST", "http://"+c.host+"/api/checkpoints", nil)
		r.Host = c.host
		if c.origin != "" {
			r.Header.Set("Origin", c.origin)
		}
		if c.fetchSite != "" {
			r.Header.Set("Sec-Fetch-Site", c.fetchSite)
		}
		if got := local(r); got != c.want {
			t.Errorf("Host %q, Origin %q, Sec-Fetch-Site %q: local = %v, want %v", c.host, c.origin, c.fetchSite, got, c.want)
		}
	}
}

func TestEmptyStatusIsJSONArrays(t *testing.T) {
	s := NewStatus("j")
	h, _ := json.Marshal(s.Checkpoints())
	j, _ := json.Marshal(s.Job())
	if string(h) != "[]" || !strings.Contains(string(j), `"nodes":[]`) || !strings.Contains(string(j), `"edges":[]`) {
		t.Fatalf("empty status: checkpoints %s, job %s; want empty arrays, not null", h, j)
	}
}

// TestMetricsGoOnAcrossRuns: the counters of an operator subtask and the
// time of a task carry over from one run to the next (an in-process
// restart), so they never go back.
func TestMetricsGoOnAcrossRuns(t *testing.T) {
	m, err := newRunMetrics(nil, "j")
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	a := m.op("op", "op", 0)
	a.in.Add(5)
	if b := m.op("op", "op", 0); b != a || b.in.Load() != 5 {
		t.Fatalf("a second run got other counters (%d records in)", b.in.Load())
	}
	ts := m.task("op", "op", 0)
	time.Sleep(5 * time.Millisecond)
	m.taskEnded(ts)
	m.mu.Lock()
	first := ts.elapsed(time.Now())
	m.mu.Unlock()
	if first < 5*time.Millisecond {
		t.Fatalf("task ran %v, want at least 5ms", first)
	}
	if ts2 := m.task("op", "op", 0); ts2 != ts {
		t.Fatal("a second run got another task clock")
	}
	time.Sleep(2 * time.Millisecond)
	m.mu.Lock()
	second := ts.elapsed(time.Now())
	m.mu.Unlock()
	if second < first+2*time.Millisecond {
		t.Fatalf("elapsed %v after %v: the second run did not add to the first", second, first)
	}
}

// TestStopRequest: POST /api/stop answers once the job has ended; with
// savepoint=true it reports the savepoint, or a conflict when the job
// ended without one (it was already stopping without a savepoint).
func TestStopRequest(t *testing.T) {
	for _, c := range []struct {
		name      string
		query     string
		savepoint string // what the job's final savepoint is
		code      int
		want      string
	}{
		{"plain", "", "", 200, `"state": "finished"`},
		{"savepoint", "?savepoint=true", "sp/chk-7", 200, `"savepoint": "sp/chk-7"`},
		{"no savepoint taken", "?savepoint=true", "", 409, "stopped without a savepoint"},
		{"bad flag", "?savepoint=maybe", "", 400, `savepoint=\"maybe\"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := NewStatus("j")
			st.setRequest(func(checkpoint.Kind) (RequestResult, error) { return RequestResult{}, nil }, true)
			st.SetStop(func() {
				go func() {
					st.addCheckpoint(CheckpointRecord{ID: 7, Kind: checkpoint.Final.String(), Status: "completed"})
					if c.savepoint != "" {
						st.savepointDone(7, c.savepoint, nil)
					}
					st.End(nil)
				}()
			})
			srv, err := startHTTP("127.0.0.1:0", "", st, nil, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			defer srv.srv.Close()
			res, err := http.Post("http://"+srv.addr.String()+"/api/stop"+c.query, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != c.code || !strings.Contains(string(body), c.want) {
				t.Fatalf("%d %s; want %d with %q", res.StatusCode, body, c.code, c.want)
			}
		})
	}
}
