package bench

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weirstream/weir"
	"github.com/weirstream/weir/engine/checkpoint"
	"github.com/weirstream/weir/sinks"
	"github.com/weirstream/weir/storage"
)

// BenchmarkKeyedCountCheckpoints is BenchmarkKeyedCount at parallelism 2,
// without checkpoints and with a checkpoint every second into a local
// directory, for benchstat to compare:
//
//	go test -run '^$' -bench KeyedCountCheckpoints -benchtime 30000000x -count 6 ./bench/ | tee /tmp/ck.txt
//	benchstat -col /checkpoints /tmp/ck.txt
//
// records/s is over the whole run, which includes the first pass over the
// keys, and, with checkpoints, the final checkpoint of the bounded input,
// which the job waits for: one-time costs that weigh more the shorter the
// run. steady-records/s is the rate between the 10% and the 90% mark of
// the records counted at the sink, a stretch of 6-7 checkpoints at 30M
// records: the throughput of a job that runs for long. WEIR_BENCH_KEYS sets
// the number of distinct keys (default 1M, whose state fits the write-back
// cache).
func BenchmarkKeyedCountCheckpoints(b *testing.B) {
	keys := 1_000_000
	if s := os.Getenv("WEIR_BENCH_KEYS"); s != "" {
		var err error
		if keys, err = strconv.Atoi(s); err != nil || keys < 1 {
			b.Fatalf("WEIR_BENCH_KEYS=%q: want a positive number", s)
		}
	}
	for _, every := range []time.Duration{0, time.Second} {
		name := "off"
		if every > 0 {
			name = every.String()
		}
		b.Run("checkpoints="+name, func(b *testing.B) {
			count := int64(b.N/keys) + 1
			records := int(count) * keys
			if b.N < keys {
				count, records = 1, b.N
			}
			nkeys := min(keys, b.N)
			opts := []weir.JobOption{weir.DefaultParallelism(2)}
			var completed atomic.Int64
			if every > 0 {
				store, err := storage.NewLocal(b.TempDir())
				if err != nil {
					b.Fatal(err)
				}
				opts = append(opts, weir.Checkpoints(weir.CheckpointConfig{
					Store:      store,
					Policy:     checkpoint.Policy{Interval: every},
					OnComplete: func(weir.CheckpointStats) { completed.Add(1) },
				}))
			}
			job := weir.NewJob("keyed", opts...)
			d := keyedCount(job, nkeys, count)
			steady := steadyRate(d.Count, int64(records))
			run(b, job, records, 2)
			b.ReportMetric(steady(), "steady-records/s")
			if every > 0 {
				b.ReportMetric(float64(completed.Load()), "checkpoints")
			}
			if d.Count() != int64(records) {
				b.Fatalf("counted %d, want %d", d.Count(), records)
			}
		})
	}
}

// BenchmarkLargeState loads WEIR_BENCH_STATE_MB (default 256) of keyed
// state (100-byte values), keeps updating random keys for 20 s with a
// checkpoint every second, then measures recovery: from the local snapshot
// (same state directory) and from storage (empty state directory), each
// from the start of the run to the first record processed (WEIR_BENCH_LOG=debug
// logs the time of each recovery step). It reports the
// synchronous phase (the longest per checkpoint: p50, p99, max) and both
// recovery times. Run it once:
//
//	WEIR_BENCH_STATE_MB=1024 go test -run '^$' -bench LargeState -benchtime 1x -timeout 30m ./bench/
func BenchmarkLargeState(b *testing.B) {
	mb := envInt(b, "WEIR_BENCH_STATE_MB", 256)
	const valueBytes = 100
	keys := int64(mb) << 20 / (valueBytes + 16)
	dir := b.TempDir()
	store, err := storage.NewLocal(filepath.Join(dir, "checkpoints"))
	if err != nil {
		b.Fatal(err)
	}
	var (
		mu    sync.Mutex
		syncs []time.Duration
		sizes []int64
	)
	cc := weir.CheckpointConfig{
		Store:  store,
		Policy: checkpoint.Policy{Interval: time.Second},
		OnComplete: func(st weir.CheckpointStats) {
			mu.Lock()
			syncs = append(syncs, st.SyncMax)
			sizes = append(sizes, st.Size)
			mu.Unlock()
		},
	}
	for range b.N {
		// Load, then update for 20 s; cancelled like a crash.
		ctx, cancel := context.WithCancel(context.Background())
		var first atomic.Int64
		job := largeStateJob(keys, valueBytes, filepath.Join(dir, "state"), cc, &first, cancel, 20*time.Second)
		start := time.Now()
		if err := job.Run(ctx); err != nil && ctx.Err() == nil {
			b.Fatal(err)
		}
		b.Logf("load and updates: %v", time.Since(start).Round(time.Millisecond))

		for _, local := range []bool{true, false} {
			state := filepath.Join(dir, "state")
			if !local {
				state = filepath.Join(dir, "state-copy")
			}
			ctx, cancel := context.WithCancel(context.Background())
			var first atomic.Int64
			job := largeStateJob(0, valueBytes, state, cc, &first, cancel, 0)
			start := time.Now()
			if err := job.Run(ctx); err != nil && ctx.Err() == nil {
				b.Fatal(err)
			}
			rec := time.Duration(first.Load() - start.UnixNano())
			name := "recovery-local-ms"
			if !local {
				name = "recovery-storage-ms"
			}
			b.ReportMetric(float64(rec.Milliseconds()), name)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(syncs) == 0 {
		b.Fatal("no checkpoint completed")
	}
	s := slices.Clone(syncs)
	slices.Sort(s)
	pct := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	b.ReportMetric(float64(pct(0.5).Microseconds())/1000, "sync-p50-ms")
	b.ReportMetric(float64(pct(0.99).Microseconds())/1000, "sync-p99-ms")
	b.ReportMetric(float64(s[len(s)-1].Microseconds())/1000, "sync-max-ms")
	b.ReportMetric(float64(slices.Max(sizes))/(1<<20), "checkpoint-MiB")
	b.ReportMetric(float64(len(syncs)), "checkpoints")
}

// largeStateJob writes keys values (0: none; only restore) and then updates
// random keys until updateFor passed, then cancels; first is set to the
// time the keyed operator processed its first record, and with updateFor 0
// the job is cancelled then.
func largeStateJob(keys int64, valueBytes int, stateDir string, cc weir.CheckpointConfig, first *atomic.Int64, cancel func(), updateFor time.Duration) *weir.Job {
	opts := []weir.JobOption{weir.DefaultParallelism(2), weir.StateDir(stateDir), weir.Checkpoints(cc)}
	if os.Getenv("WEIR_BENCH_LOG") == "debug" {
		// The engine's debug log times the steps of a recovery ("chose the
		// checkpoint to restore": verify; "restored keyed state":
		// assemble, open_and_replay).
		opts = append(opts, weir.Logger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	}
	job := weir.NewJob("large-state", opts...)
	src := weir.From(job, "gen", &updates{keys: keys, valueBytes: valueBytes, updateFor: updateFor, done: cancel}, weir.Parallelism(1))
	keyed := weir.KeyBy(src, func(u update) int64 { return u.Key })
	out := weir.Process(keyed, "store", func(ctx weir.KeyedContext[int64], u update, _ weir.Emitter[int64]) error {
		if first.Load() == 0 && first.CompareAndSwap(0, time.Now().UnixNano()) && updateFor == 0 {
			cancel()
		}
		weir.Value[string](ctx, "v").Set(u.Value)
		return nil
	})
	weir.To(out, "discard", sinks.Discard[int64]())
	return job
}

type update struct {
	Key   int64
	Value string
}

// updates writes keys 0..keys-1 once, then random keys until updateFor
// passed (or, with keys 0, one record forever).
type updates struct {
	spread     bool // with keys 0: random keys, not only key 1
	keys       int64
	valueBytes int
	updateFor  time.Duration
	done       func() // called when the updates are over
}

func (u *updates) Open(context.Context, weir.SubtaskInfo) (weir.SourceReader[update], error) {
	r := &updateReader{u: u, rng: rand.New(rand.NewPCG(7, 8))}
	// Random values, so that the state does not compress away.
	for range 1024 {
		v := make([]byte, u.valueBytes)
		for i := range v {
			v[i] = byte(r.rng.Uint32())
		}
		r.values = append(r.values, string(v))
	}
	return r, nil
}

func (u *updates) Restore(ctx context.Context, info weir.SubtaskInfo, _ []byte) (weir.SourceReader[update], error) {
	return u.Open(ctx, info)
}

type updateReader struct {
	u      *updates
	rng    *rand.Rand
	next   int64
	until  time.Time
	values []string
}

func (r *updateReader) value() string { return r.values[r.rng.IntN(len(r.values))] }

func (r *updateReader) Read(ctx context.Context, buf []update) ([]update, error) {
	if r.u.keys == 0 {
		time.Sleep(time.Millisecond)
		key := int64(1)
		if r.u.spread {
			key = r.rng.Int64N(1 << 20)
		}
		return append(buf, update{Key: key, Value: r.value()}), nil
	}
	for len(buf) < cap(buf) {
		if r.next < r.u.keys {
			buf = append(buf, update{Key: r.next, Value: r.value()})
			r.next++
			continue
		}
		if r.until.IsZero() {
			r.until = time.Now().Add(r.u.updateFor)
		}
		if time.Now().After(r.until) {
			r.u.done() // cancelled like a crash
			<-ctx.Done()
			return buf, ctx.Err()
		}
		buf = append(buf, update{Key: r.rng.Int64N(r.u.keys), Value: r.value()})
	}
	return buf, nil
}

func (r *updateReader) Position() ([]byte, error) { return []byte(fmt.Sprint(r.next)), nil }
func (r *updateReader) Close() error              { return nil }

// steadyRate samples count every millisecond until it reaches total and
// returns a function that waits for that and returns the records per
// second between the 10% and the 90% mark.
func steadyRate(count func() int64, total int64) func() float64 {
	rate := make(chan float64, 1)
	go func() {
		lo, hi := total/10, total*9/10
		var tlo time.Time
		var clo int64
		for {
			n := count()
			if tlo.IsZero() && n >= lo {
				tlo, clo = time.Now(), n
			}
			if n >= hi {
				rate <- float64(n-clo) / time.Since(tlo).Seconds()
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	return func() float64 { return <-rate }
}
