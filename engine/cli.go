package engine

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/weirstream/weir/engine/checkpoint"
	"github.com/weirstream/weir/internal/telemetry"
	"github.com/weirstream/weir/statebackend"
	"github.com/weirstream/weir/storage"
)

// Exit codes of a job binary.
const (
	ExitOK     = 0 // the job finished, or was stopped gracefully
	ExitFailed = 1 // the job failed
	ExitUsage  = 2 // bad command line
)

// Program is what a job binary runs: its name, its own flags and a function
// that builds the graph once the flags are parsed.
type Program struct {
	Name  string
	Flags *flag.FlagSet // the job's own flags (may be nil)
	// Build builds the graph; cfg holds the job's defaults and may be
	// adjusted. It runs after the flags are parsed.
	Build  func(cfg *Config) (*Graph, error)
	Stdout io.Writer
	Stderr io.Writer
}

// Version is the module version of weir in this binary.
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	if bi.Main.Path == "github.com/weirstream/weir" {
		return bi.Main.Version
	}
	for _, d := range bi.Deps {
		if d.Path == "github.com/weirstream/weir" {
			return d.Version
		}
	}
	return "(unknown)"
}

// Main runs a job binary's command line and returns its exit code:
//
//	JOB [run] [flags]   run the job
//	JOB verify --from PATH [flags]
//	                    check that the job can restore a checkpoint or savepoint
//	JOB version         print the version (also --version)
//	JOB help            print usage (also -h, --help)
//
// Every flag can also be set through an environment variable WEIR_NAME
// (upper case, '-' as '_'); the command line wins.
func Main(args []string, p Program) int {
	if p.Stdout == nil {
		p.Stdout = os.Stdout
	}
	if p.Stderr == nil {
		p.Stderr = os.Stderr
	}
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	for _, a := range args {
		if a == "--version" || a == "-version" {
			cmd = "version"
		}
	}
	switch cmd {
	case "version":
		fmt.Fprintf(p.Stdout, "%s: weir %s, checkpoint format %d\n", p.Name, Version(), storage.ManifestVersion)
		return ExitOK
	case "help":
		fs, _ := p.flagSet()
		fs.SetOutput(p.Stdout)
		fs.Usage()
		return ExitOK
	case "run":
		return p.run(args)
	case "verify":
		return p.verify(args)
	}
	fmt.Fprintf(p.Stderr, "%s: unknown command %q\n", p.Name, cmd)
	fs, _ := p.flagSet()
	fs.Usage()
	return ExitUsage
}

type runFlags struct {
	parallelism    int
	maxParallelism int
	stateDir       string
	stateCacheMB   int
	logFormat      string
	logLevel       string
	traceStdout    bool
	httpAddr       string
	httpToken      string

	checkpointDir      string
	s3Endpoint         string
	s3Region           string
	s3PathStyle        bool
	checkpointInterval time.Duration
	checkpointTimeout  time.Duration
	checkpointMinPause time.Duration
	checkpointRetain   int
	orphanGrace        time.Duration
	savepointDir       string
	stopWithSavepoint  bool
	allowUnclaimed     bool
	tolerableFailures  int
	restore            string
	restartAttempts    int
	restartDelay       time.Duration
	restartBackoff     string
	clash              []string        // job flags named like one of weir's
	fromEnv            map[string]bool // flags set from WEIR_* variables
}

// source names where a flag's value came from, for error messages.
func (rf *runFlags) source(name string) string {
	if rf.fromEnv[name] {
		return envName(name)
	}
	return "--" + name
}

func (p *Program) flagSet() (*flag.FlagSet, *runFlags) {
	fs := flag.NewFlagSet(p.Name, flag.ContinueOnError)
	fs.SetOutput(p.Stderr)
	rf := &runFlags{}
	fs.IntVar(&rf.parallelism, "parallelism", 0, "default parallelism of the job's operators (0: number of CPUs)")
	fs.IntVar(&rf.maxParallelism, "max-parallelism", 0, "number of key groups, fixed for the life of the job's state (0: 128)")
	fs.StringVar(&rf.stateDir, "state-dir", "", "directory for keyed state (default: a temporary directory removed at exit)")
	fs.IntVar(&rf.stateCacheMB, "state-cache-mb", statebackend.DefaultValueCacheSize>>20, "MiB of value and reducing state cached in memory per stateful operator subtask, in front of Pebble (0: no cache)")
	fs.StringVar(&rf.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&rf.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&rf.httpAddr, "http", "", "serve /healthz, /readyz, /metrics (Prometheus) and the JSON API (/api/job, /api/checkpoints; POST /api/checkpoints triggers one) at this address, e.g. :8080 (a missing host is 127.0.0.1)")
	fs.StringVar(&rf.httpToken, "http-token", "", "bearer token that POST requests to --http need (required to POST when --http listens beyond loopback)")
	fs.BoolVar(&rf.traceStdout, "trace-stdout", false, "print the spans of checkpoints and recoveries to stdout as JSON, for debugging (OTLP export is configured by the OTEL_* environment variables)")
	fs.StringVar(&rf.checkpointDir, "checkpoint-dir", "", "directory for checkpoints, or s3://bucket/prefix; turns checkpoints and recovery on")
	fs.StringVar(&rf.s3Endpoint, "s3-endpoint", "", "with an s3:// --checkpoint-dir: the S3 server's URL (default: AWS, or AWS_ENDPOINT_URL_S3); credentials come from the AWS environment (AWS_ACCESS_KEY_ID, ~/.aws, ...)")
	fs.StringVar(&rf.s3Region, "s3-region", "", "with an s3:// --checkpoint-dir: the region (default: AWS_REGION, else us-east-1)")
	fs.BoolVar(&rf.s3PathStyle, "s3-path-style", false, "with an s3:// --checkpoint-dir: address buckets by path (ENDPOINT/BUCKET), as MinIO, Ceph and versitygw need")
	fs.DurationVar(&rf.checkpointInterval, "checkpoint-interval", 10*time.Second, "time between periodic checkpoints")
	fs.DurationVar(&rf.checkpointTimeout, "checkpoint-timeout", 10*time.Minute, "a checkpoint not complete after this long fails")
	fs.DurationVar(&rf.checkpointMinPause, "checkpoint-min-pause", 0, "least time between the end of one checkpoint and the start of the next")
	fs.IntVar(&rf.checkpointRetain, "checkpoint-retain", DefaultRetain, "completed checkpoints to keep")
	fs.StringVar(&rf.savepointDir, "savepoint-dir", "", "directory (or s3://bucket/prefix) for savepoints: self-contained copies of a checkpoint that weir never deletes, taken on SIGUSR1, POST /api/savepoints, or at a stop with --stop-with-savepoint; restore one with --restore DIR/chk-ID")
	fs.BoolVar(&rf.allowUnclaimed, "allow-unclaimed-state", false, "restore a checkpoint that holds state of operators the job no longer has, dropping that state")
	fs.BoolVar(&rf.stopWithSavepoint, "stop-with-savepoint", false, "on SIGTERM or SIGINT, after the final checkpoint, copy it into --savepoint-dir before exiting")
	fs.DurationVar(&rf.orphanGrace, "checkpoint-orphan-grace", DefaultOrphanGrace, "at start, delete objects in --checkpoint-dir that no checkpoint references (left by a process killed while uploading) once they are this old (0: all of them; only when no other process writes the directory)")
	fs.IntVar(&rf.tolerableFailures, "checkpoint-tolerable-failures", 3, "consecutive failed checkpoints tolerated before the job fails (-1: any number)")
	fs.StringVar(&rf.restore, "restore", "latest", "what to start from: latest (the newest valid checkpoint in --checkpoint-dir, if any), none, or the path of a checkpoint (DIR/chk-ID)")
	fs.IntVar(&rf.restartAttempts, "restart-attempts", 3, "with checkpoints, how many times in a row a failed job restarts in-process from its latest checkpoint (0: never); an attempt that completes a checkpoint resets the count")
	fs.DurationVar(&rf.restartDelay, "restart-delay", time.Second, "delay before the first restart")
	fs.StringVar(&rf.restartBackoff, "restart-backoff", "fixed", "restart delays: fixed, or exponential (doubling up to 1m)")
	own := map[string]bool{}
	if p.Flags != nil {
		p.Flags.VisitAll(func(f *flag.Flag) {
			if fs.Lookup(f.Name) != nil {
				rf.clash = append(rf.clash, f.Name)
				return
			}
			fs.Var(f.Value, f.Name, f.Usage)
			own[f.Name] = true
		})
	}
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: %s [run] [flags]\n       %s version\n\n", p.Name, p.Name)
		fmt.Fprintf(w, "Every flag can also be set with the environment variable WEIR_<FLAG> (e.g. WEIR_STATE_DIR).\n\n")
		if len(own) > 0 {
			fmt.Fprintf(w, "Flags of %s:\n", p.Name)
			printFlags(fs, w, func(name string) bool { return own[name] })
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "Flags of weir:\n")
		printFlags(fs, w, func(name string) bool { return !own[name] })
	}
	return fs, rf
}

func printFlags(fs *flag.FlagSet, w io.Writer, keep func(string) bool) {
	fs.VisitAll(func(f *flag.Flag) {
		if !keep(f.Name) {
			return
		}
		name, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  --%s %s\n    \t%s", f.Name, name, usage)
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" {
			fmt.Fprintf(w, " (default %q)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// envName is the environment variable of a flag.
func envName(flagName string) string {
	return "WEIR_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// errReported is an error the flag package already printed with usage.
type errReported struct{ error }

// parse parses args, then fills the flags not given from WEIR_*.
func parse(fs *flag.FlagSet, rf *runFlags, args []string) error {
	rf.fromEnv = map[string]bool{}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errReported{err}
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("invalid value %q for %s (flag --%s): %v", v, envName(f.Name), f.Name, serr)
			}
			rf.fromEnv[f.Name] = true
		}
	})
	return err
}

func (p *Program) run(args []string) int {
	fs, rf := p.flagSet()
	if code, ok := p.parseArgs(fs, rf, args); !ok {
		return code
	}
	logger, err := newLogger(p.Stderr, rf.logFormat, rf.logLevel, rf)
	if err == nil && rf.parallelism < 0 {
		err = fmt.Errorf("%s %d: must be positive", rf.source("parallelism"), rf.parallelism)
	}
	if err == nil && rf.maxParallelism < 0 {
		err = fmt.Errorf("%s %d: must be positive", rf.source("max-parallelism"), rf.maxParallelism)
	}
	if err == nil && rf.stateCacheMB < 0 {
		err = fmt.Errorf("%s %d: must not be negative", rf.source("state-cache-mb"), rf.stateCacheMB)
	}
	var ckpt *CheckpointConfig
	if err == nil {
		ckpt, err = rf.checkpointConfig()
	}
	if err != nil {
		fmt.Fprintf(p.Stderr, "%s: %v\n", p.Name, err)
		fs.Usage()
		return ExitUsage
	}
	var cfg Config
	g, err := p.buildJob(rf, &cfg)
	if err != nil {
		fmt.Fprintf(p.Stderr, "%s: %v\n", p.Name, err)
		return ExitUsage
	}
	cfg.Logger = logger
	if rf.stateDir != "" {
		cfg.StateDir = rf.stateDir
	}
	cfg.StateCacheBytes = int64(rf.stateCacheMB) << 20
	if rf.stateCacheMB == 0 {
		cfg.StateCacheBytes = -1
	}
	if ckpt != nil {
		cfg.Checkpoint = ckpt
	}
	if cfg.Checkpoint != nil && cfg.StateDir == "" {
		// One directory for all attempts, so a restart in this process
		// restores from its local snapshots.
		dir, err := os.MkdirTemp("", "weir-state-")
		if err != nil {
			fmt.Fprintf(p.Stderr, "%s: state directory: %v\n", p.Name, err)
			return ExitFailed
		}
		defer os.RemoveAll(dir)
		cfg.StateDir = dir
	}
	if err := cfg.fill(); err != nil {
		fmt.Fprintf(p.Stderr, "%s: %v\n", p.Name, err)
		return ExitUsage
	}
	if _, err := NewPlan(g, cfg); err != nil {
		fmt.Fprintf(p.Stderr, "%s: %v\n", p.Name, err)
		return ExitUsage
	}
	var metricsHandler http.Handler
	if cfg.MeterProvider == nil {
		mp, h, shutdown, err := telemetry.Metrics(context.Background(), p.Name, Version(), rf.httpAddr != "")
		if err != nil {
			fmt.Fprintf(p.Stderr, "%s: %v\n", p.Name, err)
			return ExitUsage
		}
		if mp != nil {
			cfg.MeterProvider, metricsHandler = mp, h
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := shutdown(ctx); err != nil {
					logger.Warn("flushing metrics", "err", err)
				}
			}()
		}
	}
	// The status is kept for signals too (SIGUSR1 asks it for a savepoint).
	cfg.Status = NewStatus(p.Name)
	if rf.httpAddr != "" {
		srv, err := startHTTP(rf.httpAddr, rf.httpToken, cfg.Status, metricsHandler, logger)
		if err != nil {
			fmt.Fprintf(p.Stderr, "%s: %s %q: %v\n", p.Name, rf.source("http"), rf.httpAddr, err)
			return ExitUsage
		}
		logger.Info("serving HTTP", "url", httpURL(srv.addr))
		defer func() {
			// Answer a stop request that waits for the end.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if srv.srv.Shutdown(ctx) != nil {
				srv.srv.Close()
			}
		}()
	}
	if cfg.TracerProvider == nil {
		var stdout io.Writer
		if rf.traceStdout {
			stdout = p.Stdout
		}
		tp, shutdown, err := telemetry.Traces(context.Background(), p.Name, Version(), stdout)
		if err != nil {
			fmt.Fprintf(p.Stderr, "%s: %v\n", p.Name, err)
			return ExitUsage
		}
		if tp != nil {
			cfg.TracerProvider = tp
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := shutdown(ctx); err != nil {
					logger.Warn("flushing spans", "err", err)
				}
			}()
		}
	}

	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	stop := make(chan struct{})
	cfg.Stop = stop
	var (
		stopOnce sync.Once
		stopped  atomic.Bool
	)
	stopJob := func(by string) {
		stopOnce.Do(func() {
			logger.Info("stopping: sources end, records in flight drain, sinks commit", "by", by)
			stopped.Store(true)
			close(stop)
		})
	}
	cfg.Status.SetStop(func() { stopJob("stop request") })
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)
	defer signal.Stop(sigs)
	go func() {
		for {
			select {
			case s := <-sigs:
				if s == syscall.SIGUSR1 {
					res, err := cfg.Status.RequestSavepoint(ctx)
					if err != nil {
						logger.Warn("SIGUSR1: no savepoint", "err", err)
					} else {
						logger.Info("SIGUSR1: savepoint requested", "outcome", res.Outcome, "checkpoint", res.Checkpoint, "reason", res.Reason)
					}
					continue
				}
				if !stopped.Load() {
					stopJob(s.String())
					continue
				}
				if s == syscall.SIGINT {
					logger.Warn("second interrupt: cancelling at once")
					cancel(ErrStopped)
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	logger.Info("job starting", "job", p.Name, "parallelism", cfg.Parallelism, "version", Version())
	err = runWithRestarts(ctx, g, cfg, rf, logger)
	cfg.Status.End(err)
	if err != nil {
		if errors.Is(err, ErrStopped) {
			logger.Error("job cancelled by a second interrupt: output since the last commit is not committed", "job", p.Name)
			return ExitFailed
		}
		logger.Error("job failed", "job", p.Name, "err", err)
		var oe *OperatorError
		if errors.As(err, &oe) && len(oe.Stack) > 0 {
			logger.Debug("panic stack", "stack", string(oe.Stack))
		}
		return ExitFailed
	}
	logger.Info("job finished", "job", p.Name)
	return ExitOK
}

// checkpointConfig turns the checkpoint flags into a configuration; nil
// without --checkpoint-dir.
func (rf *runFlags) checkpointConfig() (*CheckpointConfig, error) {
	if rf.checkpointDir == "" {
		if rf.restore != "latest" {
			return nil, fmt.Errorf("%s %q needs --checkpoint-dir", rf.source("restore"), rf.restore)
		}
		if rf.savepointDir != "" || rf.stopWithSavepoint {
			return nil, fmt.Errorf("savepoints (%s) need --checkpoint-dir", rf.source("savepoint-dir"))
		}
		return nil, nil
	}
	switch {
	case rf.checkpointInterval <= 0:
		return nil, fmt.Errorf("%s %v: must be positive", rf.source("checkpoint-interval"), rf.checkpointInterval)
	case rf.checkpointTimeout < 0:
		return nil, fmt.Errorf("%s %v: must not be negative", rf.source("checkpoint-timeout"), rf.checkpointTimeout)
	case rf.checkpointMinPause < 0:
		return nil, fmt.Errorf("%s %v: must not be negative", rf.source("checkpoint-min-pause"), rf.checkpointMinPause)
	case rf.checkpointRetain < 1:
		return nil, fmt.Errorf("%s %d: must be at least 1", rf.source("checkpoint-retain"), rf.checkpointRetain)
	case rf.stopWithSavepoint && rf.savepointDir == "":
		return nil, fmt.Errorf("%s needs --savepoint-dir", rf.source("stop-with-savepoint"))
	case rf.orphanGrace < 0:
		return nil, fmt.Errorf("%s %v: must not be negative", rf.source("checkpoint-orphan-grace"), rf.orphanGrace)
	case rf.restartAttempts < 0:
		return nil, fmt.Errorf("%s %d: must not be negative", rf.source("restart-attempts"), rf.restartAttempts)
	case rf.restartDelay < 0:
		return nil, fmt.Errorf("%s %v: must not be negative", rf.source("restart-delay"), rf.restartDelay)
	case rf.restartBackoff != "fixed" && rf.restartBackoff != "exponential":
		return nil, fmt.Errorf("%s %q: want fixed or exponential", rf.source("restart-backoff"), rf.restartBackoff)
	}
	store, err := rf.openStore(rf.checkpointDir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rf.source("checkpoint-dir"), err)
	}
	maxDelay := rf.restartDelay
	if rf.restartBackoff == "exponential" {
		maxDelay = max(maxDelay, maxBackoff)
	}
	cc := &CheckpointConfig{
		Store:               store,
		Retain:              rf.checkpointRetain,
		OrphanGrace:         rf.orphanGrace,
		SavepointDir:        rf.savepointDir,
		SavepointOnFinal:    rf.stopWithSavepoint,
		AllowUnclaimedState: rf.allowUnclaimed,
		MaxRestartDelay:     maxDelay,
		Policy: checkpoint.Policy{
			Interval:          rf.checkpointInterval,
			Timeout:           rf.checkpointTimeout,
			MinPause:          rf.checkpointMinPause,
			TolerableFailures: rf.tolerableFailures,
		},
	}
	if cc.OrphanGrace == 0 {
		cc.OrphanGrace = -1 // every orphan
	}
	if rf.savepointDir != "" {
		if !isS3(rf.savepointDir) {
			if err := os.MkdirAll(rf.savepointDir, 0o755); err != nil {
				return nil, fmt.Errorf("%s: %w", rf.source("savepoint-dir"), err)
			}
		}
		sp, err := rf.openStore(rf.savepointDir)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", rf.source("savepoint-dir"), err)
		}
		cc.SavepointStore = sp
	}
	switch rf.restore {
	case "latest":
	case "none":
		cc.Restore.Mode = RestoreNone
	default:
		path := filepath.Clean(rf.restore)
		id, ok := storage.ParseCheckpointDir(filepath.Base(path))
		if !ok {
			return nil, fmt.Errorf("%s %q: want latest, none, or a checkpoint directory DIR/chk-ID", rf.source("restore"), rf.restore)
		}
		cc.Restore = Restore{Mode: RestoreID, ID: id}
		if isS3(rf.restore) || isS3(rf.checkpointDir) {
			// s3://bucket/prefix/chk-ID: the parent is the store.
			parent := rf.restore[:strings.LastIndex(strings.TrimRight(rf.restore, "/"), "/")]
			if parent != strings.TrimRight(rf.checkpointDir, "/") {
				from, err := rf.openStore(parent)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", rf.source("restore"), err)
				}
				cc.Restore.From = from
			}
			return cc, nil
		}
		parent, err1 := filepath.Abs(filepath.Dir(path))
		dir, err2 := filepath.Abs(rf.checkpointDir)
		if err := errors.Join(err1, err2); err != nil {
			return nil, err
		}
		if parent != dir {
			from, err := storage.NewLocal(parent)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", rf.source("restore"), err)
			}
			cc.Restore.From = from
		}
	}
	return cc, nil
}

// maxBackoff caps the exponential restart delay.
const maxBackoff = time.Minute

func isS3(dir string) bool { return strings.HasPrefix(dir, "s3://") }

// openStore opens checkpoint storage: a local directory, or an S3 bucket
// and prefix (s3://bucket/prefix) with --s3-endpoint, --s3-region and
// --s3-path-style, and credentials from the AWS SDK's environment.
func (rf *runFlags) openStore(dir string) (storage.BlobStore, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return storage.OpenDir(ctx, dir, storage.S3Config{Endpoint: rf.s3Endpoint, Region: rf.s3Region, PathStyle: rf.s3PathStyle})
}

// runWithRestarts runs the job and, with checkpoints, restarts it from its
// latest checkpoint after a failure, as the restart flags allow. An attempt
// that completed a checkpoint made progress: the count of attempts and the
// delay start again, so a long-running job survives any number of
// failures that are far apart (a broker restart a week) but not a crash
// loop.
func runWithRestarts(ctx context.Context, g *Graph, cfg Config, rf *runFlags, logger *slog.Logger) error {
	delay := rf.restartDelay
	var completed atomic.Int64
	if cfg.Checkpoint != nil {
		cc := *cfg.Checkpoint
		user := cc.OnComplete
		cc.OnComplete = func(st CheckpointStats) {
			completed.Add(1)
			if user != nil {
				user(st)
			}
		}
		cfg.Checkpoint = &cc
	}
	restarts, err := restartCounter(cfg.MeterProvider)
	if err != nil {
		return err
	}
	// One set of metrics for every run: counters go on across restarts.
	if cfg.metrics, err = newRunMetrics(cfg.MeterProvider, cfg.Job); err != nil {
		return fmt.Errorf("engine: metrics: %w", err)
	}
	defer cfg.metrics.close()
	failures := 0
	for {
		before := completed.Load()
		err := Run(ctx, g, cfg)
		if err == nil || cfg.Checkpoint == nil || ctx.Err() != nil {
			return err
		}
		if IsPermanent(err) {
			logger.Error("job failed with an error a restart cannot cure; not restarting", "err", err)
			return err
		}
		if completed.Load() > before {
			failures, delay = 0, rf.restartDelay
		}
		failures++
		if failures > rf.restartAttempts {
			if rf.restartAttempts > 0 {
				logger.Error("restart attempts exhausted", "attempts", rf.restartAttempts)
			}
			return err
		}
		logger.Error("job failed; restarting from the latest checkpoint", "err", err, "attempt", failures, "of", rf.restartAttempts, "delay", delay)
		restarts.Add(ctx, 1, metric.WithAttributes(attrJob.String(cfg.Job)))
		if cfg.Status != nil {
			cfg.Status.setState(StateRestarting, err)
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return err
		}
		if rf.restartBackoff == "exponential" {
			delay = min(2*delay, maxBackoff)
		}
		// Once an attempt completed a checkpoint, later ones restore the
		// newest; until then they start as the user asked (--restore).
		if completed.Load() > 0 {
			cfg.Checkpoint.Restore = Restore{Mode: RestoreLatest}
		}
	}
}

func newLogger(w io.Writer, format, level string, rf *runFlags) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("%s %q: want debug, info, warn or error", rf.source("log-level"), level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("%s %q: want text or json", rf.source("log-format"), format)
}

// parseArgs parses a command's flags (and WEIR_* variables); when it
// fails, ok is false and code is the exit code, the problem reported.
func (p *Program) parseArgs(fs *flag.FlagSet, rf *runFlags, args []string) (code int, ok bool) {
	if len(rf.clash) > 0 {
		fmt.Fprintf(p.Stderr, "%s: the job defines flags that weir defines too: %s; rename them\n", p.Name, strings.Join(rf.clash, ", "))
		return ExitUsage, false
	}
	if err := parse(fs, rf, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK, false
		}
		var reported errReported
		if !errors.As(err, &reported) {
			fmt.Fprintf(p.Stderr, "%s: %v\n", p.Name, err)
			fs.Usage()
		}
		return ExitUsage, false
	}
	return 0, true
}

// buildJob builds the job's graph into cfg: the job's own options are
// defaults, the command line overrides them.
func (p *Program) buildJob(rf *runFlags, cfg *Config) (*Graph, error) {
	g, err := p.Build(cfg)
	if err != nil {
		return nil, err
	}
	cfg.Job = p.Name
	if rf.parallelism > 0 {
		cfg.Parallelism = rf.parallelism
	}
	if rf.maxParallelism > 0 {
		cfg.MaxParallelism = rf.maxParallelism
	}
	return g, nil
}

// verify is JOB verify --from PATH: it builds the job as run would (same
// flags), reads the checkpoint at PATH (DIR/chk-ID, or the newest valid one
// in DIR) and prints, per operator, whether the job can restore it.
// Exit 0 when a restore would succeed, 1 when it would fail, 2 on bad usage.
func (p *Program) verify(args []string) int {
	fs, rf := p.flagSet()
	var from string
	fs.StringVar(&from, "from", "", "the checkpoint or savepoint to check: DIR/chk-ID, or a directory (its newest valid checkpoint); s3:// works too")
	if code, ok := p.parseArgs(fs, rf, args); !ok {
		return code
	}
	if from == "" {
		fmt.Fprintf(p.Stderr, "%s verify: --from PATH is required\n", p.Name)
		return ExitUsage
	}
	var cfg Config
	g, err := p.buildJob(rf, &cfg)
	if err != nil {
		fmt.Fprintf(p.Stderr, "%s: %v\n", p.Name, err)
		return ExitUsage
	}
	if err := cfg.fill(); err != nil {
		fmt.Fprintf(p.Stderr, "%s: %v\n", p.Name, err)
		return ExitUsage
	}
	plan, err := NewPlan(g, cfg)
	if err != nil {
		fmt.Fprintf(p.Stderr, "%s: %v\n", p.Name, err)
		return ExitUsage
	}
	m, err := rf.readCheckpoint(from)
	if err != nil {
		fmt.Fprintf(p.Stderr, "%s verify: %s: %v\n", p.Name, from, err)
		return ExitFailed
	}
	fmt.Fprintf(p.Stdout, "checkpoint %d of job %q, max parallelism %d; this job: max parallelism %d\n", m.CheckpointID, m.JobName, m.MaxParallelism, cfg.MaxParallelism)
	failing := 0
	for _, op := range CheckCompatibility(plan, cfg.MaxParallelism, m) {
		line := fmt.Sprintf("%-24s %s", op.UID, op.Verdict)
		if op.Reason != "" {
			line += ": " + op.Reason
		}
		fmt.Fprintln(p.Stdout, line)
		for _, d := range op.States {
			codecs := "value " + d.ValueCodec
			if d.KeyCodec != "" {
				codecs = "key " + d.KeyCodec + ", " + codecs
			}
			fmt.Fprintf(p.Stdout, "    state %q: %s (%s)\n", d.Name, d.Kind, codecs)
		}
		if op.Fails(rf.allowUnclaimed) {
			failing++
		}
	}
	if failing > 0 {
		fmt.Fprintf(p.Stdout, "a restore would fail: %d operators\n", failing)
		return ExitFailed
	}
	fmt.Fprintln(p.Stdout, "a restore would succeed")
	return ExitOK
}

// readCheckpoint reads the manifest at path: DIR/chk-ID, or the newest
// valid checkpoint in DIR.
func (rf *runFlags) readCheckpoint(path string) (*storage.Manifest, error) {
	_, m, err := storage.OpenCheckpoint(context.Background(), path, rf.openStore)
	return m, err
}
