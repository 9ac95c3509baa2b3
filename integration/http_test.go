package integration

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// httpJob starts the word count with --http and the extra args, and
// returns its base URL, read from its log.
func httpJob(t *testing.T, args ...string) (*proc, string) {
	t.Helper()
	dir := t.TempDir()
	a := append([]string{"--lines", "50000000", "--output", filepath.Join(dir, "out")},
		checkpointArgs(filepath.Join(dir, "ckpt"), filepath.Join(dir, "state"), "200ms")...)
	p := startJob(t, nil, "wordcount", append(a, args...)...)
	p.waitLog(t, "serving HTTP", 30*time.Second)
	m := regexp.MustCompile(`serving HTTP" url=(http://\S+)`).FindStringSubmatch(p.stderr.String())
	if m == nil {
		t.Fatalf("no URL in the log:\n%s", p.stderr.String())
	}
	return p, m[1]
}

func httpDo(t *testing.T, method, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestHTTPAPI: health, readiness, the job graph, a checkpoint triggered by
// POST that shows up in the history as a completed manual checkpoint, and
// the metrics in Prometheus text format.
func TestHTTPAPI(t *testing.T) {
	p, url := httpJob(t, "--http", "127.0.0.1:0")
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("listening at %s, want 127.0.0.1", url)
	}
	if code, body := httpDo(t, "GET", url+"/healthz", ""); code != 200 || !strings.Contains(body, "ok") {
		t.Fatalf("/healthz: %d %s", code, body)
	}
	deadline := time.Now().Add(30 * time.Second)
	for code, _ := httpDo(t, "GET", url+"/readyz", ""); code != 200; code, _ = httpDo(t, "GET", url+"/readyz", "") {
		if time.Now().After(deadline) {
			t.Fatalf("/readyz: %d for 30 s", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
	code, body := httpDo(t, "GET", url+"/api/job", "")
	var job struct {
		Job   string `json:"job"`
		State string `json:"state"`
		Nodes []struct {
			UID         string `json:"uid"`
			Parallelism int    `json:"parallelism"`
		} `json:"nodes"`
		Edges []struct {
			Part string `json:"partitioning"`
		} `json:"edges"`
	}
	if err := json.Unmarshal([]byte(body), &job); code != 200 || err != nil || job.Job != "wordcount" || job.State != "running" || len(job.Nodes) != 4 || len(job.Edges) != 3 {
		t.Fatalf("/api/job: %d %v\n%s", code, err, body)
	}
	code, body = httpDo(t, "POST", url+"/api/checkpoints", "")
	var res struct {
		Outcome    string `json:"outcome"`
		Checkpoint uint64 `json:"checkpoint"`
	}
	if err := json.Unmarshal([]byte(body), &res); code != http.StatusAccepted || err != nil || res.Outcome == "rejected" {
		t.Fatalf("POST /api/checkpoints: %d %v\n%s", code, err, body)
	}
	var manual bool
	for deadline := time.Now().Add(30 * time.Second); !manual && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		_, body = httpDo(t, "GET", url+"/api/checkpoints", "")
		var hist []struct {
			ID     uint64  `json:"id"`
			Kind   string  `json:"kind"`
			Status string  `json:"status"`
			Dur    float64 `json:"duration_ms"`
			Size   int64   `json:"size_bytes"`
		}
		if err := json.Unmarshal([]byte(body), &hist); err != nil {
			t.Fatalf("/api/checkpoints: %v\n%s", err, body)
		}
		for _, h := range hist {
			if h.Kind == "manual" && h.Status == "completed" && h.Size > 0 && h.Dur > 0 && (res.Checkpoint == 0 || h.ID == res.Checkpoint) {
				manual = true
			}
		}
	}
	if !manual {
		t.Fatalf("the manual checkpoint %d is not in the history:\n%s", res.Checkpoint, body)
	}
	if code, body := httpDo(t, "POST", url+"/api/savepoints", ""); code != http.StatusConflict || !strings.Contains(body, "--savepoint-dir") {
		t.Fatalf("POST /api/savepoints without --savepoint-dir: %d %s; want 409 naming the flag", code, body)
	}
	code, body = httpDo(t, "GET", url+"/metrics", "")
	for _, want := range []string{`weir_operator_records_in_total{weir_job="wordcount",weir_operator="count"`, "weir_checkpoint_duration_seconds_count",
		"weir_task_busy_time_seconds_total", "weir_checkpoint_last_completed_age_seconds", `weir_checkpoints_total{weir_job="wordcount",weir_outcome="completed"}`} {
		if code != 200 || !strings.Contains(body, want) {
			t.Fatalf("/metrics lacks %s: %d\n%.2000s", want, code, body)
		}
	}
	p.cmd.Process.Kill()
	p.wait(t)
}

// TestHTTPToken: beyond loopback, POST needs a token; without one it is
// refused; with one, a wrong or missing bearer is 401.
func TestHTTPToken(t *testing.T) {
	p, url := httpJob(t, "--http", "0.0.0.0:0")
	if code, body := httpDo(t, "POST", strings.Replace(url, "0.0.0.0", "127.0.0.1", 1)+"/api/checkpoints", ""); code != http.StatusForbidden || !strings.Contains(body, "--http-token") {
		t.Fatalf("POST beyond loopback without a token: %d %s; want 403 naming --http-token", code, body)
	}
	p.cmd.Process.Kill()
	p.wait(t)

	p, url = httpJob(t, "--http", "127.0.0.1:0", "--http-token", "s3cret")
	if code, _ := httpDo(t, "POST", url+"/api/checkpoints", ""); code != http.StatusUnauthorized {
		t.Fatalf("POST without the token: %d, want 401", code)
	}
	if code, _ := httpDo(t, "POST", url+"/api/checkpoints", "wrong"); code != http.StatusUnauthorized {
		t.Fatalf("POST with a wrong token: %d, want 401", code)
	}
	if code, body := httpDo(t, "POST", url+"/api/checkpoints", "s3cret"); code != http.StatusAccepted && code != http.StatusConflict {
		t.Fatalf("POST with the token: %d %s", code, body)
	}
	if code, _ := httpDo(t, "GET", url+"/api/job", ""); code != 200 {
		t.Fatalf("GET needs no token: %d", code)
	}
	if strings.Contains(p.stderr.String(), "s3cret") {
		t.Fatal("the token is in the log")
	}
	p.cmd.Process.Kill()
	p.wait(t)
}
