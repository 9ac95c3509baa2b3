package bench

import (
	"context"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/weirstream/weir"
	"github.com/weirstream/weir/engine/checkpoint"
	"github.com/weirstream/weir/storage"
)

// BenchmarkTelemetry is the keyed count with a checkpoint every second,
// with tracing and metrics off, and on: the SDK's tracer provider with a
// batching span processor and the SDK's meter provider read every second,
// both exporting into nothing (the cost is in recording, not in the
// network). Compare with benchstat (docs/architecture.md, "Metrics"):
//
//	for i in 1 2 3 4 5 6; do for t in off on; do
//	  go test -run '^$' -bench "Telemetry/telemetry=$t\$" -benchtime 20000000x ./bench/
//	done; done | tee /tmp/tel.txt
//	benchstat -col /telemetry /tmp/tel.txt
func BenchmarkTelemetry(b *testing.B) {
	const keys = 200_000
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run("telemetry="+name, func(b *testing.B) {
			count := int64(b.N/keys) + 1
			records := int(count) * keys
			store, err := storage.NewLocal(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			opts := []weir.JobOption{weir.DefaultParallelism(2), weir.Checkpoints(weir.CheckpointConfig{
				Store: store, Policy: checkpoint.Policy{Interval: time.Second}})}
			if on {
				tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
				mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewPeriodicReader(discardMetrics{}, sdkmetric.WithInterval(time.Second))))
				defer tp.Shutdown(context.Background())
				defer mp.Shutdown(context.Background())
				opts = append(opts, weir.Tracing(tp), weir.Metrics(mp))
			}
			job := weir.NewJob("keyed", opts...)
			d := keyedCount(job, keys, count)
			steady := steadyRate(d.Count, int64(records))
			run(b, job, records, 2)
			b.ReportMetric(steady(), "steady-records/s")
			if d.Count() != int64(records) {
				b.Fatalf("counted %d, want %d", d.Count(), records)
			}
		})
	}
}

// discardMetrics is a metric exporter that drops what it is given.
type discardMetrics struct{}

func (discardMetrics) Temporality(k sdkmetric.InstrumentKind) metricdata.Temporality {
	return sdkmetric.DefaultTemporalitySelector(k)
}
func (discardMetrics) Aggregation(k sdkmetric.InstrumentKind) sdkmetric.Aggregation {
	return sdkmetric.DefaultAggregationSelector(k)
}
func (discardMetrics) Export(context.Context, *metricdata.ResourceMetrics) error { return nil }
func (discardMetrics) ForceFlush(context.Context) error                          { return nil }
func (discardMetrics) Shutdown(context.Context) error                            { return nil }
