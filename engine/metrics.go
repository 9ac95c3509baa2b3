package engine

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// The engine's metrics (docs/architecture.md, "Metrics"). The hot path
// only adds to atomic counters, once per batch; the meter reads them when
// it collects.

const meterName = "github.com/weirstream/weir/engine"

// Metric names.
const (
	metricRecordsIn     = "weir.operator.records.in"
	metricRecordsOut    = "weir.operator.records.out"
	metricBusy          = "weir.task.busy_time"
	metricIdle          = "weir.task.idle_time"
	metricBackpressured = "weir.task.backpressured_time"
	metricCkDuration    = "weir.checkpoint.duration"
	metricCkSize        = "weir.checkpoint.size"
	metricCkUploaded    = "weir.checkpoint.uploaded"
	metricCkAlignment   = "weir.checkpoint.alignment"
	metricCkCount       = "weir.checkpoints"
	metricCkAge         = "weir.checkpoint.last_completed_age"
	metricRestarts      = "weir.job.restarts"
	metricSourceLag     = "weir.source.lag"
)

// opStats counts the records of one operator subtask.
type opStats struct {
	attrs   attribute.Set
	in, out atomic.Int64
}

// taskStats times one task (goroutine): idle is time spent waiting for
// input, backpressured time spent waiting to send; the rest is busy.
type taskStats struct {
	attrs         attribute.Set
	start         time.Time
	idle, blocked atomic.Int64 // nanoseconds
}

// lagSource is a source subtask that reports its lag.
type lagSource struct {
	attrs []attribute.KeyValue
	r     LagReporter
}

// runMetrics are the metrics of one run.
type runMetrics struct {
	job        attribute.KeyValue
	ckDuration metric.Float64Histogram
	ckSize     metric.Int64Histogram
	ckUploaded metric.Int64Counter
	ckAlign    metric.Float64Histogram
	ckCount    metric.Int64Counter
	reg        metric.Registration

	mu    sync.Mutex
	ops   []*opStats
	tasks []*taskStats
	lags  []lagSource
	// lastCompleted is when the newest checkpoint completed (unix
	// nanoseconds; 0: none yet) — at start, when the restored one was
	// taken.
	lastCompleted atomic.Int64
}

func newRunMetrics(mp metric.MeterProvider, job string) (*runMetrics, error) {
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	m := mp.Meter(meterName, metric.WithInstrumentationVersion(Version()))
	r := &runMetrics{job: attrJob.String(job)}
	var errs [11]error
	r.ckDuration, errs[0] = m.Float64Histogram(metricCkDuration, metric.WithUnit("s"), metric.WithDescription("time from a checkpoint's trigger to its manifest written"))
	r.ckSize, errs[1] = m.Int64Histogram(metricCkSize, metric.WithUnit("By"), metric.WithDescription("bytes of all the files a completed checkpoint references"))
	r.ckUploaded, errs[2] = m.Int64Counter(metricCkUploaded, metric.WithUnit("By"), metric.WithDescription("bytes uploaded for checkpoints"))
	r.ckAlign, errs[3] = m.Float64Histogram(metricCkAlignment, metric.WithUnit("s"), metric.WithDescription("time a gate waited from the first barrier of a checkpoint to the last"))
	r.ckCount, errs[4] = m.Int64Counter(metricCkCount, metric.WithDescription("checkpoints ended, by outcome (completed, aborted)"))
	in, e5 := m.Int64ObservableCounter(metricRecordsIn, metric.WithUnit("{record}"), metric.WithDescription("records an operator subtask received"))
	out, e6 := m.Int64ObservableCounter(metricRecordsOut, metric.WithUnit("{record}"), metric.WithDescription("records an operator subtask emitted"))
	busy, e7 := m.Float64ObservableCounter(metricBusy, metric.WithUnit("s"), metric.WithDescription("time a task (a chain of operators, one goroutine) worked"))
	idle, e8 := m.Float64ObservableCounter(metricIdle, metric.WithUnit("s"), metric.WithDescription("time a task waited for input"))
	blocked, e9 := m.Float64ObservableCounter(metricBackpressured, metric.WithUnit("s"), metric.WithDescription("time a task waited to send (backpressure)"))
	lag, e11 := m.Int64ObservableGauge(metricSourceLag, metric.WithUnit("{record}"), metric.WithDescription("records available in a partition that the source has not read yet"))
	if e11 != nil {
		return nil, e11
	}
	age, e10 := m.Float64ObservableGauge(metricCkAge, metric.WithUnit("s"), metric.WithDescription("age of the newest completed checkpoint"))
	errs[5], errs[6], errs[7], errs[8], errs[9], errs[10] = e5, e6, e7, e8, e9, e10
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, s := range r.ops {
			o.ObserveInt64(in, s.in.Load(), metric.WithAttributeSet(s.attrs))
			o.ObserveInt64(out, s.out.Load(), metric.WithAttributeSet(s.attrs))
		}
		now := time.Now()
		for _, t := range r.tasks {
			i, b := time.Duration(t.idle.Load()), time.Duration(t.blocked.Load())
			o.ObserveFloat64(idle, i.Seconds(), metric.WithAttributeSet(t.attrs))
			o.ObserveFloat64(blocked, b.Seconds(), metric.WithAttributeSet(t.attrs))
			o.ObserveFloat64(busy, max(now.Sub(t.start)-i-b, 0).Seconds(), metric.WithAttributeSet(t.attrs))
		}
		for _, l := range r.lags {
			for _, p := range l.r.Lag() {
				o.ObserveInt64(lag, p.Lag, metric.WithAttributes(append(l.attrs, attribute.String("weir.topic", p.Topic), attribute.Int("weir.partition", int(p.Partition)))...))
			}
		}
		if last := r.lastCompleted.Load(); last != 0 {
			o.ObserveFloat64(age, now.Sub(time.Unix(0, last)).Seconds(), metric.WithAttributes(r.job))
		}
		return nil
	}, in, out, busy, idle, blocked, age, lag)
	if err != nil {
		return nil, err
	}
	r.reg = reg
	return r, nil
}

// restartCounter counts the in-process restarts of a job binary.
func restartCounter(mp metric.MeterProvider) (metric.Int64Counter, error) {
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	return mp.Meter(meterName, metric.WithInstrumentationVersion(Version())).Int64Counter(metricRestarts,
		metric.WithDescription("in-process restarts of the job after a failure"))
}

// close stops the callbacks: the next run registers its own.
func (r *runMetrics) close() { r.reg.Unregister() }

func (r *runMetrics) op(job, uid, name string, subtask int) *opStats {
	s := &opStats{attrs: attribute.NewSet(attrJob.String(job), attrUID.String(uid), attrOperator.String(name), attrSubtask.Int(subtask))}
	r.mu.Lock()
	r.ops = append(r.ops, s)
	r.mu.Unlock()
	return s
}

func (r *runMetrics) task(job, uid, name string, subtask int) *taskStats {
	s := &taskStats{attrs: attribute.NewSet(attrJob.String(job), attrUID.String(uid), attrOperator.String(name), attrSubtask.Int(subtask)), start: time.Now()}
	r.mu.Lock()
	r.tasks = append(r.tasks, s)
	r.mu.Unlock()
	return s
}

func (r *runMetrics) sourceLag(oc *OpContext, lr LagReporter) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lags = append(r.lags, lagSource{attrs: []attribute.KeyValue{attrJob.String(oc.Job), attrUID.String(oc.UID), attrOperator.String(oc.Operator), attrSubtask.Int(oc.Index)}, r: lr})
}

// counted counts the records pushed to out.
type counted[T any] struct {
	Output[T]
	n *atomic.Int64
}

func (c counted[T]) Push(b []T) error {
	c.n.Add(int64(len(b)))
	return c.Output.Push(b)
}
