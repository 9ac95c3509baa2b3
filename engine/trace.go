package engine

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/weirstream/weir/barrier"
)

// The engine's spans (docs/architecture.md, "Traces"): one trace per
// checkpoint, rooted in the coordinator's "checkpoint" span, whose context
// travels in barrier n so that each subtask records its own spans of n as
// it works; and one trace per recovery.

const tracerName = "github.com/weirstream/weir/engine"

// Span names. SpanSeekSource and SpanRedoCommits are for the connectors'
// steps of a recovery (OpContext.TraceRecovery).
const (
	spanCheckpoint   = "checkpoint"
	spanTrigger      = "trigger"
	spanAlignment    = "alignment"
	spanSnapshot     = "snapshot"
	spanDurable      = "pre-commit durable"
	spanPersist      = "persist"
	spanUpload       = "upload"
	spanUploadFile   = "upload file"
	spanAck          = "ack"
	spanDecline      = "decline"
	spanManifest     = "manifest commit"
	spanNotify       = "notify"
	spanSinkCommit   = "sink commit"
	spanSourceCommit = "source commit"
	spanRecovery     = "recovery"
	spanChoose       = "choose checkpoint"
	spanDownload     = "download"
	spanOpenState    = "open state"
	SpanSeekSource   = "seek source"
	SpanRedoCommits  = "redo pending commits"
)

// Attribute keys.
const (
	attrJob        = attribute.Key("weir.job")
	attrCheckpoint = attribute.Key("weir.checkpoint.id")
	attrKind       = attribute.Key("weir.checkpoint.kind")
	attrOperator   = attribute.Key("weir.operator")
	attrUID        = attribute.Key("weir.operator.uid")
	attrSubtask    = attribute.Key("weir.subtask")
	attrBytes      = attribute.Key("weir.bytes")
	attrFiles      = attribute.Key("weir.files")
	attrFile       = attribute.Key("weir.file")
	attrOutcome    = attribute.Key("weir.outcome")
	attrReason     = attribute.Key("weir.failure.reason")
	attrInput      = attribute.Key("weir.input")
	attrInputs     = attribute.Key("weir.inputs")
	attrWait       = attribute.Key("weir.wait_ms")
)

func newTracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	return tp.Tracer(tracerName, trace.WithInstrumentationVersion(Version()))
}

// toBarrier packs a span's context into the barrier's trace context.
func toBarrier(sc trace.SpanContext) barrier.TraceContext {
	if !sc.IsValid() {
		return barrier.TraceContext{}
	}
	return barrier.TraceContext{TraceID: sc.TraceID(), SpanID: sc.SpanID(), Flags: byte(sc.TraceFlags())}
}

// fromBarrier returns a context whose parent span is the one tc names (a
// remote parent: the coordinator may run in another process).
func fromBarrier(tc barrier.TraceContext) context.Context {
	return withTrace(context.Background(), tc)
}

// withTrace returns ctx with the span tc names as its parent span.
func withTrace(ctx context.Context, tc barrier.TraceContext) context.Context {
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tc.TraceID, SpanID: tc.SpanID, TraceFlags: trace.TraceFlags(tc.Flags), Remote: true})
	if !sc.IsValid() {
		return ctx
	}
	return trace.ContextWithRemoteSpanContext(ctx, sc)
}

// opAttrs are the attributes naming an operator subtask.
func opAttrs(oc *OpContext) []attribute.KeyValue {
	return []attribute.KeyValue{attrOperator.String(oc.Operator), attrUID.String(oc.UID), attrSubtask.Int(oc.Index)}
}

// endSpan ends span with the outcome of err: "ok", or "failed" with the
// error as status and reason.
func endSpan(span trace.Span, err error, attrs ...attribute.KeyValue) {
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		attrs = append(attrs, attrOutcome.String("failed"), attrReason.String(err.Error()))
	} else {
		attrs = append(attrs, attrOutcome.String("ok"))
	}
	span.SetAttributes(attrs...)
	span.End()
}

// recordSpan records a span that already happened, from start to end.
func recordSpan(tr trace.Tracer, parent context.Context, name string, start, end time.Time, attrs ...attribute.KeyValue) {
	_, span := tr.Start(parent, name, trace.WithTimestamp(start), trace.WithAttributes(attrs...))
	span.End(trace.WithTimestamp(end))
}
