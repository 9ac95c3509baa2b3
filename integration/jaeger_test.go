package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/weirstream/weir/internal/testenv"
)

// jaegerTrace is a trace as Jaeger's query API returns it.
type jaegerTrace struct {
	TraceID string `json:"traceID"`
	Spans   []struct {
		SpanID        string `json:"spanID"`
		OperationName string `json:"operationName"`
		References    []struct {
			RefType string `json:"refType"`
			SpanID  string `json:"spanID"`
		} `json:"references"`
		Tags []struct {
			Key   string `json:"key"`
			Value any    `json:"value"`
		} `json:"tags"`
	} `json:"spans"`
}

// TestJaegerCheckpointTrace runs the word count with its spans sent over
// OTLP to a real Jaeger, then finds the trace of a completed checkpoint
// through Jaeger's query API: the coordinator's span with the subtasks'
// spans under it, and the recovery's trace.
func TestJaegerCheckpointTrace(t *testing.T) {
	otlp, query := testenv.Jaeger(t)
	service := fmt.Sprintf("wordcount-%d", time.Now().UnixNano())
	dir := t.TempDir()
	args := append([]string{"--lines", "200000", "--output", filepath.Join(dir, "out")},
		checkpointArgs(filepath.Join(dir, "ckpt"), filepath.Join(dir, "state"), "50ms")...)
	env := []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + otlp, "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf", "OTEL_SERVICE_NAME=" + service}
	if r := run(t, env, "wordcount", args...); r.code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", r.code, tail(r.stderr))
	}
	find := func(operation string) []jaegerTrace {
		u := query + "/api/traces?" + url.Values{"service": {service}, "operation": {operation}, "limit": {"20"}}.Encode()
		var got struct {
			Data []jaegerTrace `json:"data"`
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			resp, err := http.Get(u)
			if err == nil {
				err = json.NewDecoder(resp.Body).Decode(&got)
				resp.Body.Close()
			}
			if err == nil && len(got.Data) > 0 {
				return got.Data
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %q trace of service %s in Jaeger after 30 s (%s): %v", operation, service, u, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	var checked bool
	for _, tr := range find("checkpoint") {
		var root string
		names := map[string]int{}
		for _, s := range tr.Spans {
			names[s.OperationName]++
			if s.OperationName == "checkpoint" {
				for _, tag := range s.Tags {
					if tag.Key == "weir.outcome" && tag.Value == "completed" {
						root = s.SpanID
					}
				}
			}
		}
		if root == "" {
			continue
		}
		children := map[string]int{}
		for _, s := range tr.Spans {
			for _, r := range s.References {
				if r.RefType == "CHILD_OF" && r.SpanID == root {
					children[s.OperationName]++
				}
			}
		}
		for _, want := range []string{"trigger", "snapshot", "ack", "alignment", "manifest commit", "notify", "sink commit", "upload"} {
			if children[want] == 0 {
				t.Fatalf("trace %s: no %q span under the checkpoint span; children %v", tr.TraceID, want, children)
			}
		}
		if names["upload file"] == 0 {
			t.Fatalf("trace %s: no upload file spans: %v", tr.TraceID, names)
		}
		checked = true
		t.Logf("trace %s: %v", tr.TraceID, names)
		break
	}
	if !checked {
		t.Fatal("no trace of a completed checkpoint in Jaeger")
	}
	if rec := find("recovery"); len(rec[0].Spans) < 2 {
		t.Fatalf("the recovery trace has %d spans", len(rec[0].Spans))
	}
}
