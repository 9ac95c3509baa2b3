package weir_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/weirstream/weir"
	"github.com/weirstream/weir/engine/checkpoint"
	"github.com/weirstream/weir/storage"
)

// TestMetrics runs the sequence job with a manual metric reader and
// collects when the final checkpoint completes, when every record has
// passed: the records in and out of each operator equal what the job
// processed, checkpoints are counted and timed, tasks report busy and
// idle time, and the age of the last checkpoint is there.
func TestMetrics(t *testing.T) {
	const keys, count = 4, 1000
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	dir := t.TempDir()
	var (
		mu  sync.Mutex
		got metricdata.ResourceMetrics
	)
	cc := weir.CheckpointConfig{Store: storage.NewMem(), Policy: checkpoint.Policy{Interval: 50 * time.Millisecond},
		OnComplete: func(st weir.CheckpointStats) {
			if st.Kind == checkpoint.Final {
				mu.Lock()
				defer mu.Unlock()
				if err := reader.Collect(context.Background(), &got); err != nil {
					t.Error(err)
				}
			}
		}}
	job := sequenceJob(keys, count, filepath.Join(dir, "out"), filepath.Join(dir, "state"), cc, weir.Metrics(mp))
	if err := job.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	sums := map[string]map[string]float64{} // metric → operator uid → sum over subtasks
	found := map[string]bool{}
	for _, sm := range got.ScopeMetrics {
		for _, m := range sm.Metrics {
			found[m.Name] = true
			add := func(attrs attribute.Set, v float64) {
				uid, _ := attrs.Value("weir.operator.uid")
				if sums[m.Name] == nil {
					sums[m.Name] = map[string]float64{}
				}
				sums[m.Name][uid.AsString()] += v
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					add(p.Attributes, float64(p.Value))
				}
			case metricdata.Sum[float64]:
				for _, p := range d.DataPoints {
					add(p.Attributes, p.Value)
				}
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					add(p.Attributes, p.Value)
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					add(p.Attributes, float64(p.Count))
				}
			case metricdata.Histogram[int64]:
				for _, p := range d.DataPoints {
					add(p.Attributes, float64(p.Count))
				}
			}
		}
	}
	total := float64(keys * count)
	for _, c := range []struct {
		metric, uid string
		want        float64
	}{
		{"weir.operator.records.out", "sequence", total},
		{"weir.operator.records.in", "sequence", 0},
		{"weir.operator.records.in", "last-seq", total},
		{"weir.operator.records.out", "last-seq", total},
		{"weir.operator.records.in", "out", total},
		{"weir.operator.records.out", "out", 0},
	} {
		if got := sums[c.metric][c.uid]; got != c.want {
			t.Errorf("%s of %s = %v, want %v", c.metric, c.uid, got, c.want)
		}
	}
	for _, name := range []string{"weir.checkpoint.duration", "weir.checkpoint.size", "weir.checkpoint.uploaded", "weir.checkpoint.alignment",
		"weir.checkpoints", "weir.checkpoint.last_completed_age", "weir.task.busy_time", "weir.task.idle_time", "weir.task.backpressured_time"} {
		if !found[name] {
			t.Errorf("no %s among %v", name, found)
		}
	}
	if n := sums["weir.checkpoint.duration"][""]; n < 1 {
		t.Errorf("%v checkpoint durations recorded, want at least one", n)
	}
	if busy := sums["weir.task.busy_time"]["last-seq"]; busy <= 0 {
		t.Errorf("busy time of last-seq = %v, want > 0", busy)
	}
}
