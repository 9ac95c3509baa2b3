package integration

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// otlpSink collects the spans OTLP exporters send it.
type otlpSink struct {
	collectortrace.UnimplementedTraceServiceServer
	mu      sync.Mutex
	spans   []*tracepb.Span
	service []string
}

func (s *otlpSink) add(req *collectortrace.ExportTraceServiceRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		for _, a := range rs.GetResource().GetAttributes() {
			if a.Key == "service.name" {
				s.service = append(s.service, a.GetValue().GetStringValue())
			}
		}
		for _, ss := range rs.ScopeSpans {
			s.spans = append(s.spans, ss.Spans...)
		}
	}
}

func (s *otlpSink) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	s.add(req)
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// check asserts that a completed checkpoint and a recovery of service
// arrived, with the checkpoint's subtask spans in its trace.
func (s *otlpSink) check(t *testing.T, service string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	names := map[string]int{}
	var root *tracepb.Span
	for _, sp := range s.spans {
		names[sp.Name]++
		if sp.Name == "checkpoint" && root == nil {
			for _, a := range sp.Attributes {
				if a.Key == "weir.outcome" && a.GetValue().GetStringValue() == "completed" {
					root = sp
				}
			}
		}
	}
	if root == nil || names["recovery"] == 0 {
		t.Fatalf("no completed checkpoint or no recovery among the spans received: %v", names)
	}
	inTrace := map[string]int{}
	for _, sp := range s.spans {
		if string(sp.TraceId) == string(root.TraceId) {
			inTrace[sp.Name]++
		}
	}
	for _, want := range []string{"trigger", "snapshot", "ack", "manifest commit", "notify", "sink commit"} {
		if inTrace[want] == 0 {
			t.Errorf("the trace of a checkpoint lacks %q spans: %v", want, inTrace)
		}
	}
	if len(s.service) == 0 {
		t.Errorf("no resource of the exported spans has a service.name")
	}
	for _, name := range s.service {
		if name != service {
			t.Errorf("service.name %q, want %q", name, service)
		}
	}
}

// TestOTLPExport runs the word count with the standard OTLP environment
// variables pointing at a collector over HTTP and over gRPC: the spans of
// its checkpoints and of its recovery arrive.
func TestOTLPExport(t *testing.T) {
	t.Run("http", func(t *testing.T) {
		sink := &otlpSink{}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(r.Body)
			req := &collectortrace.ExportTraceServiceRequest{}
			if err != nil || r.URL.Path != "/v1/traces" || proto.Unmarshal(body, req) != nil {
				http.Error(w, "bad export", http.StatusBadRequest)
				return
			}
			sink.add(req)
			w.Header().Set("Content-Type", "application/x-protobuf")
			b, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
			w.Write(b)
		}))
		defer srv.Close()
		exportWordcount(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + srv.URL, "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"})
		sink.check(t, "wordcount")
	})
	t.Run("grpc", func(t *testing.T) {
		sink := &otlpSink{}
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		gs := grpc.NewServer()
		collectortrace.RegisterTraceServiceServer(gs, sink)
		go gs.Serve(lis)
		defer gs.Stop()
		exportWordcount(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + lis.Addr().String(), "OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
			"OTEL_SERVICE_NAME=wc-grpc"})
		sink.check(t, "wc-grpc")
	})
	t.Run("bad exporter", func(t *testing.T) {
		r := run(t, []string{"OTEL_TRACES_EXPORTER=zipkin"}, "wordcount", "--lines", "10", "--output", filepath.Join(t.TempDir(), "out"))
		if r.code != 2 || !strings.Contains(r.stderr, `OTEL_TRACES_EXPORTER="zipkin"`) {
			t.Fatalf("exit %d, want 2 naming the variable; stderr:\n%s", r.code, r.stderr)
		}
	})
}

// exportWordcount runs a bounded word count with checkpoints twice (the
// second run restores the first's final checkpoint), with env.
func exportWordcount(t *testing.T, env []string) {
	t.Helper()
	dir := t.TempDir()
	args := append([]string{"--lines", "20000", "--output", filepath.Join(dir, "out")},
		checkpointArgs(filepath.Join(dir, "ckpt"), filepath.Join(dir, "state"), "50ms")...)
	for range 2 {
		if r := run(t, env, "wordcount", args...); r.code != 0 {
			t.Fatalf("exit %d; stderr:\n%s", r.code, tail(r.stderr))
		}
	}
}
