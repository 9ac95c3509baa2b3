package engine

import (
	"context"
	"errors"
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
// input, backpressured time spent waiting to send; the rest of the time
// it ran is busy. One taskStats serves the task in every run of the job,
// so the counters never go back after a restart.
type taskStats struct {
	attrs         attribute.Set
	idle, blocked atomic.Int64 // nanoseconds

	// Guarded by runMetrics.mu.
	started time.Time     // of the running task; zero when not running
	ran     time.Duration // of the runs that ended
}

// elapsed is the time the task ran, in every run. Holds runMetrics.mu.
func (t *taskStats) elapsed(now time.Time) time.Duration {
	d := t.ran
	if !t.started.IsZero() {
		d += now.Sub(t.started)
	}
	return d
}

type statsKey struct {
	uid     string
	subtask int
}

// lagSource is a source subtask that reports its lag.
type lagSource struct {
	attrs []attribute.KeyValue
	r     LagReporter
}

// runMetrics are the metrics of a job: of one Run, or of every run of a
// job binary that restarts in-process (the counters go on from where the
// failed run left them).
type runMetrics struct {
	job        attribute.KeyValue
	ckDuration metric.Float64Histogram
	ckSize     metric.Int64Histogram
	ckUploaded metric.Int64Counter
	ckAlign    metric.Float64Histogram
	ckCount    metric.Int64Counter
	reg        metric.Registration

	mu    sync.Mutex
	ops   map[statsKey]*opStats
	tasks map[statsKey]*taskStats
	lags  []lagSource // of the current run
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
	r := &runMetrics{job: attrJob.String(job), ops: map[statsKey]*opStats{}, tasks: map[statsKey]*taskStats{}}
	var errs [12]error
	seconds := metric.WithExplicitBucketBoundaries(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
	var sizes []float64
	for b := float64(1 << 10); b <= 1<<40; b *= 4 {
		sizes = append(sizes, b) // 1 KiB to 1 TiB
	}
	r.ckDuration, errs[0] = m.Float64Histogram(metricCkDuration, metric.WithUnit("s"), seconds, metric.WithDescription("time from a checkpoint's trigger to its manifest written"))
	r.ckSize, errs[1] = m.Int64Histogram(metricCkSize, metric.WithUnit("By"), metric.WithExplicitBucketBoundaries(sizes...), metric.WithDescription("bytes of all the files a completed checkpoint references"))
	r.ckUploaded, errs[2] = m.Int64Counter(metricCkUploaded, metric.WithUnit("By"), metric.WithDescription("bytes uploaded for checkpoints"))
	r.ckAlign, errs[3] = m.Float64Histogram(metricCkAlignment, metric.WithUnit("s"), seconds, metric.WithDescription("time a gate waited from the first barrier of a checkpoint to the last"))
	r.ckCount, errs[4] = m.Int64Counter(metricCkCount, metric.WithDescription("checkpoints ended, by outcome (completed, aborted)"))
	var (
		in, out             metric.Int64ObservableCounter
		busy, idle, blocked metric.Float64ObservableCounter
		lag                 metric.Int64ObservableGauge
		age                 metric.Float64ObservableGauge
	)
	in, errs[5] = m.Int64ObservableCounter(metricRecordsIn, metric.WithUnit("{record}"), metric.WithDescription("records an operator subtask received"))
	out, errs[6] = m.Int64ObservableCounter(metricRecordsOut, metric.WithUnit("{record}"), metric.WithDescription("records an operator subtask emitted"))
	busy, errs[7] = m.Float64ObservableCounter(metricBusy, metric.WithUnit("s"), metric.WithDescription("time a task (a chain of operators, one goroutine) worked"))
	idle, errs[8] = m.Float64ObservableCounter(metricIdle, metric.WithUnit("s"), metric.WithDescription("time a task waited for input"))
	blocked, errs[9] = m.Float64ObservableCounter(metricBackpressured, metric.WithUnit("s"), metric.WithDescription("time a task waited to send (backpressure)"))
	lag, errs[10] = m.Int64ObservableGauge(metricSourceLag, metric.WithUnit("{record}"), metric.WithDescription("records available in a partition that the source has not read yet"))
	age, errs[11] = m.Float64ObservableGauge(metricCkAge, metric.WithUnit("s"), metric.WithDescription("age of the newest completed checkpoint"))
	if err := errors.Join(errs[:]...); err != nil {
		return nil, err
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
			o.ObserveFloat64(busy, max(t.elapsed(now)-i-b, 0).Seconds(), metric.WithAttributeSet(t.attrs))
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

// close stops the callbacks.
func (r *runMetrics) close() { r.reg.Unregister() }

// op returns the record counters of an operator subtask.
func (r *runMetrics) op(uid, name string, subtask int) *opStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return stats(r.ops, r.job, uid, name, subtask, func(a attribute.Set) *opStats { return &opStats{attrs: a} })
}

// task returns the timers of a task, started.
func (r *runMetrics) task(uid, name string, subtask int) *taskStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := stats(r.tasks, r.job, uid, name, subtask, func(a attribute.Set) *taskStats { return &taskStats{attrs: a} })
	s.started = time.Now()
	return s
}

// stats returns the entry of an operator subtask in m, made by mk the
// first time: one per subtask for every run of the job.
func stats[S any](m map[statsKey]*S, job attribute.KeyValue, uid, name string, subtask int, mk func(attribute.Set) *S) *S {
	k := statsKey{uid, subtask}
	if s := m[k]; s != nil {
		return s
	}
	s := mk(attribute.NewSet(job, attrUID.String(uid), attrOperator.String(name), attrSubtask.Int(subtask)))
	m[k] = s
	return s
}

// taskEnded stops the clock of a task.
func (r *runMetrics) taskEnded(s *taskStats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !s.started.IsZero() {
		s.ran += time.Since(s.started)
		s.started = time.Time{}
	}
}

// runEnded forgets what belongs to one run only.
func (r *runMetrics) runEnded() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lags = nil
}

func (r *runMetrics) sourceLag(oc *OpContext, lr LagReporter) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lags = append(r.lags, lagSource{attrs: oc.stats.attrs.ToSlice(), r: lr})
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
