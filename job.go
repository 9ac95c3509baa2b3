package weir

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/statebackend"
	"github.com/weirstream/weir/storage"
)

// Job is a dataflow under construction. Build it with From, the
// transformations and To, then run it with Main (a job binary) or Run.
type Job struct {
	name string
	cfg  engine.Config
	g    engine.Graph
	errs []error
}

// JobOption configures a Job.
type JobOption func(*Job)

// DefaultParallelism sets the parallelism of operators that set none. The
// job binary's --parallelism flag overrides it; the default is the number
// of CPUs.
func DefaultParallelism(n int) JobOption { return func(j *Job) { j.cfg.Parallelism = n } }

// MaxParallelism sets the number of key groups, the upper bound of any
// keyed operator's parallelism. It is fixed for the life of the job's state;
// the default is 128.
func MaxParallelism(n int) JobOption { return func(j *Job) { j.cfg.MaxParallelism = n } }

// BatchSize sets how many records travel together between tasks (default
// 1024).
func BatchSize(n int) JobOption { return func(j *Job) { j.cfg.BatchSize = n } }

// StateDir sets the directory of the job's keyed state. The default is a
// temporary directory removed when the job ends.
func StateDir(dir string) JobOption { return func(j *Job) { j.cfg.StateDir = dir } }

// Logger sets the job's logger (default: none).
func Logger(l *slog.Logger) JobOption { return func(j *Job) { j.cfg.Logger = l } }

// StopWhen stops the job gracefully when stop is closed: the sources end as
// if their input were exhausted, the records in flight drain to the sinks,
// the sinks finish and Run returns nil.
func StopWhen(stop <-chan struct{}) JobOption { return func(j *Job) { j.cfg.Stop = stop } }

// Tracing records the spans of every checkpoint and recovery with tp (see
// docs/architecture.md, "Traces"); without it nothing is recorded. A job
// binary (Main) sets it up from the OTEL_* environment and --trace-stdout.
func Tracing(tp trace.TracerProvider) JobOption {
	return func(j *Job) { j.cfg.TracerProvider = tp }
}

// Metrics sends the job's metrics to mp (see docs/architecture.md,
// "Metrics"); without it none are kept. A job binary (Main) sets it up
// from the OTEL_* environment and serves them on --http.
func Metrics(mp metric.MeterProvider) JobOption {
	return func(j *Job) { j.cfg.MeterProvider = mp }
}

// CheckpointConfig configures checkpoints: the store, the policy (interval,
// timeout, ...), retention and what to restore at start.
type CheckpointConfig = engine.CheckpointConfig

// CheckpointStats describes a completed checkpoint (CheckpointConfig.OnComplete).
type CheckpointStats = engine.CheckpointStats

// Checkpoints turns on checkpoints and recovery for a job run with Run. A
// job binary (Main) configures them with --checkpoint-dir and the other
// --checkpoint-* flags, which override this option.
func Checkpoints(cfg CheckpointConfig) JobOption {
	return func(j *Job) { j.cfg.Checkpoint = &cfg }
}

// NewJob starts an empty job.
func NewJob(name string, opts ...JobOption) *Job {
	j := &Job{name: name}
	j.cfg.Job = name
	for _, o := range opts {
		o(j)
	}
	return j
}

// Name is the job's name.
func (j *Job) Name() string { return j.name }

func (j *Job) fail(err error) { j.errs = append(j.errs, err) }

// Err reports the errors found while the job was built (an unsupported key
// type, a missing name, ...), or nil.
func (j *Job) Err() error { return errors.Join(j.errs...) }

// Run runs the job in this process until its bounded sources are exhausted
// and every record reached its sink, until an operator fails, or until ctx is
// cancelled.
func (j *Job) Run(ctx context.Context) error {
	return j.run(ctx, j.cfg)
}

// Verdict says whether an operator's state in a checkpoint can be restored
// by a job (engine.Verdict).
type Verdict = engine.Verdict

// OperatorCheck is the verdict of CheckCompatibility on one operator.
type OperatorCheck = engine.OperatorCheck

// CheckCompatibility compares the job with the checkpoint whose manifest is
// m, operator by operator, as `JOB verify --from PATH` does: a test can check
// a new version of a job against a savepoint of the running one.
func (j *Job) CheckCompatibility(m *storage.Manifest) ([]OperatorCheck, error) {
	if err := j.Err(); err != nil {
		return nil, fmt.Errorf("weir: job %q: %w", j.name, err)
	}
	p, err := engine.NewPlan(&j.g, j.cfg)
	if err != nil {
		return nil, err
	}
	maxPar := j.cfg.MaxParallelism
	if maxPar == 0 {
		maxPar = statebackend.DefaultMaxParallelism
	}
	return engine.CheckCompatibility(p, maxPar, m), nil
}

func (j *Job) run(ctx context.Context, cfg engine.Config) error {
	if err := j.Err(); err != nil {
		return fmt.Errorf("weir: job %q: %w", j.name, err)
	}
	return engine.Run(ctx, &j.g, cfg)
}

// Verdicts of CheckCompatibility.
const (
	Restorable   = engine.Restorable
	New          = engine.New
	Missing      = engine.Missing
	Incompatible = engine.Incompatible
)
