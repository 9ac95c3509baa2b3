package weir_test

import (
	"context"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/weirstream/weir"
	"github.com/weirstream/weir/engine/checkpoint"
	"github.com/weirstream/weir/sinks"
	"github.com/weirstream/weir/storage"
)

// TestCheckpointAndRecoveryTraces records the spans of a run of the
// sequence job (a source, a keyed operator and an exactly-once sink, two
// subtasks each) and of a second run that restores it, and checks the span
// trees: one trace per checkpoint under the coordinator's span, with every
// subtask's spans in it; one trace per recovery.
func TestCheckpointAndRecoveryTraces(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	dir := t.TempDir()
	store := storage.NewMem()
	cc := weir.CheckpointConfig{Store: store, Policy: checkpoint.Policy{Interval: 50 * time.Millisecond}}
	run := func() {
		t.Helper()
		job := sequenceJob(4, 1000, filepath.Join(dir, "out"), filepath.Join(dir, "state"), cc, weir.Tracing(tp))
		if err := job.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	run()
	spans := rec.Ended()

	// A completed checkpoint: the coordinator's root span.
	var root sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.Name() == "checkpoint" && attr(s, "weir.outcome") == "completed" {
			root = s
			break
		}
	}
	if root == nil {
		t.Fatalf("no completed checkpoint span among %d spans: %v", len(spans), names(spans))
	}
	if root.Parent().IsValid() {
		t.Errorf("the checkpoint span has a parent: %v", root.Parent())
	}
	id := attr(root, "weir.checkpoint.id")
	if got := attr(root, "weir.job"); got != "sequence" {
		t.Errorf("checkpoint span: weir.job = %q, want sequence", got)
	}
	if n, err := strconv.ParseUint(id, 10, 64); err != nil || n == 0 {
		t.Errorf("checkpoint span: weir.checkpoint.id = %q, want a checkpoint id", id)
	}
	if attr(root, "weir.size_bytes") == "0" || attr(root, "weir.files") == "0" {
		t.Errorf("checkpoint span without size or files: %v", root.Attributes())
	}
	trace := root.SpanContext().TraceID()
	var inTrace []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.SpanContext().TraceID() == trace {
			inTrace = append(inTrace, s)
		}
	}
	children := map[string][]sdktrace.ReadOnlySpan{}
	byID := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range inTrace {
		byID[s.SpanContext().SpanID().String()] = s
		if s.Parent().SpanID() == root.SpanContext().SpanID() {
			children[s.Name()] = append(children[s.Name()], s)
		}
	}
	// The coordinator's spans, and every operator subtask's: 2 sources,
	// 2 keyed operators and 2 sinks ack and snapshot; the keyed
	// operators' gates align and their state uploads; the sinks commit.
	for name, n := range map[string]int{"trigger": 1, "manifest commit": 1, "notify": 1, "ack": 6, "snapshot": 6,
		"alignment": 2, "persist": 2, "upload": 2, "sink commit": 2} {
		if got := len(children[name]); got != n {
			t.Errorf("checkpoint %s: %d %q spans under the checkpoint span, want %d (spans of the trace: %v)", id, got, name, n, names(inTrace))
		}
	}
	for _, s := range children["snapshot"] {
		if attr(s, "weir.operator") == "" || attr(s, "weir.subtask") == "" || attr(s, "weir.checkpoint.id") != id {
			t.Errorf("snapshot span without operator, subtask or checkpoint: %v", s.Attributes())
		}
	}
	for _, s := range children["alignment"] {
		if attr(s, "weir.inputs") != "2" || len(s.Events()) != 2 {
			t.Errorf("alignment span: inputs %s, %d barrier events; want 2 and 2 (the wait of each input)", attr(s, "weir.inputs"), len(s.Events()))
		}
	}
	for _, s := range children["ack"] {
		if attr(s, "weir.outcome") != "ok" {
			t.Errorf("ack span of %s[%s]: outcome %q", attr(s, "weir.operator.uid"), attr(s, "weir.subtask"), attr(s, "weir.outcome"))
		}
	}
	// Files uploaded by a keyed subtask are spans under its upload span.
	files := 0
	for _, s := range inTrace {
		if s.Name() == "upload file" {
			files++
			if p := byID[s.Parent().SpanID().String()]; p == nil || p.Name() != "upload" {
				t.Errorf("upload file span %s not under an upload span", attr(s, "weir.file"))
			}
			if attr(s, "weir.file") == "" || attr(s, "weir.bytes") == "" {
				t.Errorf("upload file span without file or bytes: %v", s.Attributes())
			}
		}
	}
	if files == 0 {
		t.Errorf("checkpoint %s uploaded no file spans", id)
	}

	// The second run restores the final checkpoint: one recovery trace.
	rec2 := tracetest.NewSpanRecorder()
	tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec2))
	run()
	var recovery sdktrace.ReadOnlySpan
	for _, s := range rec2.Ended() {
		if s.Name() == "recovery" {
			recovery = s
		}
	}
	if recovery == nil || attr(recovery, "weir.outcome") != "restored" || attr(recovery, "weir.checkpoint.id") == "" {
		t.Fatalf("no recovery span that restored a checkpoint among %v", names(rec2.Ended()))
	}
	steps := map[string]int{}
	for _, s := range rec2.Ended() {
		if s.Parent().SpanID() == recovery.SpanContext().SpanID() {
			steps[s.Name()]++
			if s.Name() != "choose checkpoint" && attr(s, "weir.operator") == "" {
				t.Errorf("recovery step %q without its operator: %v", s.Name(), s.Attributes())
			}
		}
	}
	for name, n := range map[string]int{"choose checkpoint": 1, "download": 2, "open state": 2, "seek source": 2, "redo pending commits": 2} {
		if steps[name] != n {
			t.Errorf("recovery: %d %q spans, want %d (steps %v)", steps[name], name, n, steps)
		}
	}
	for _, s := range rec2.Ended() {
		if s.Parent().SpanID() == recovery.SpanContext().SpanID() &&
			(s.StartTime().Before(recovery.StartTime()) || s.EndTime().After(recovery.EndTime())) {
			t.Errorf("recovery step %q (%v to %v) is not within the recovery (%v to %v)", s.Name(), s.StartTime(), s.EndTime(), recovery.StartTime(), recovery.EndTime())
		}
	}
	recs, err := sinks.ReadJSONFiles[seqOut](filepath.Join(dir, "out"))
	if err != nil || len(recs) != 4*1000 {
		t.Fatalf("output: %d records, %v", len(recs), err)
	}
}

func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if kv.Key == attribute.Key(key) {
			return kv.Value.String()
		}
	}
	return ""
}

func names(spans []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name())
	}
	slices.Sort(out)
	return slices.Compact(out)
}
