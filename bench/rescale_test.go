package bench

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weirstream/weir"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/engine/checkpoint"
	"github.com/weirstream/weir/sinks"
	"github.com/weirstream/weir/statebackend"
	"github.com/weirstream/weir/storage"
)

// BenchmarkRescaleRestore loads WEIR_BENCH_STATE_MB (default 256) of keyed
// state (100-byte values) at parallelism 2 and updates random keys for 5 s
// with a checkpoint every second, so the last checkpoint is a base and
// change logs. Then it restores that checkpoint from storage (an empty state
// directory: every file is read from the checkpoint directory) at
// parallelism 2 (plain) and at 4 (rescaled: every new subtask takes half of
// an old one's key groups), alternating, WEIR_BENCH_ROUNDS times (default
// 3). Each restore is timed from the start of the run until every keyed
// subtask processed a record; it reports the median of each and the bytes
// the restore read from storage (every Get of an object of the checkpoint,
// counted through storage.Logging):
//
//	WEIR_BENCH_STATE_MB=1024 go test -run '^$' -bench RescaleRestore -benchtime 1x -timeout 60m ./bench/
func BenchmarkRescaleRestore(b *testing.B) {
	mb := envInt(b, "WEIR_BENCH_STATE_MB", 256)
	rounds := envInt(b, "WEIR_BENCH_ROUNDS", 3)
	const valueBytes = 100
	keys := int64(mb) << 20 / (valueBytes + 16)
	dir := b.TempDir()
	store, err := storage.NewLocal(filepath.Join(dir, "checkpoints"))
	if err != nil {
		b.Fatal(err)
	}
	cc := weir.CheckpointConfig{Store: store, Policy: checkpoint.Policy{Interval: time.Second}}
	for range b.N {
		ctx, cancel := context.WithCancel(context.Background())
		var first atomic.Int64
		start := time.Now()
		if err := largeStateJob(keys, valueBytes, filepath.Join(dir, "state"), cc, &first, cancel, 5*time.Second).Run(ctx); err != nil && ctx.Err() == nil {
			b.Fatal(err)
		}
		b.Logf("load and updates: %v", time.Since(start).Round(time.Millisecond))
		// The newest complete checkpoint (the cancel may leave a newer one
		// without its manifest).
		_, m, err := storage.FindRestorePoint(context.Background(), store)
		if err != nil || m == nil {
			b.Fatalf("no checkpoint to restore: %v", err)
		}
		id := m.CheckpointID
		size := map[string]int64{} // object -> bytes, of the restored checkpoint
		for _, op := range m.Operators {
			for _, st := range op.Subtasks {
				for _, f := range st.Files {
					size[f.Object] = f.Size
				}
			}
		}
		times, read := map[int][]time.Duration{}, map[int]int64{}
		for r := range rounds {
			for _, q := range []int{2, 4} {
				logged := storage.NewLogging(store)
				rc := cc
				rc.Store = logged
				rc.Restore = engine.Restore{Mode: engine.RestoreID, ID: id}
				state := filepath.Join(dir, "restore-"+strconv.Itoa(r)+"-"+strconv.Itoa(q))
				d := restoreAt(b, q, state, rc)
				times[q] = append(times[q], d)
				read[q] = 0
				for _, c := range logged.Calls() {
					if c.Op == storage.OpGet {
						read[q] += size[c.Name]
					}
				}
				os.RemoveAll(state)
				b.Logf("round %d, parallelism %d: %v, %d MiB read", r, q, d.Round(time.Millisecond), read[q]>>20)
			}
		}
		b.ReportMetric(float64(median(times[2]).Milliseconds()), "plain-2-ms")
		b.ReportMetric(float64(median(times[4]).Milliseconds()), "rescale-2to4-ms")
		b.ReportMetric(float64(read[2])/(1<<20), "plain-read-MiB")
		b.ReportMetric(float64(read[4])/(1<<20), "rescale-read-MiB")
	}
}

func envInt(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive number", name, s)
	}
	return n
}

func median(ds []time.Duration) time.Duration {
	s := slices.Sorted(slices.Values(ds))
	return s[len(s)/2]
}

// restoreAt runs the large-state job at parallelism q from the checkpoint
// rc restores, with an empty state directory, until every keyed subtask
// processed a record, and returns that time from the start of the run.
func restoreAt(b *testing.B, q int, stateDir string, rc weir.CheckpointConfig) time.Duration {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	job := weir.NewJob("large-state", weir.DefaultParallelism(q), weir.StateDir(stateDir), weir.Checkpoints(rc))
	src := weir.From(job, "gen", &updates{valueBytes: 100, spread: true}, weir.Parallelism(1))
	keyed := weir.KeyBy(src, func(u update) int64 { return u.Key })
	codec := statebackend.MustCodecFor[int64]()
	seen := make([]atomic.Bool, q)
	var n atomic.Int32
	var done atomic.Int64
	out := weir.Process(keyed, "store", func(ctx weir.KeyedContext[int64], u update, _ weir.Emitter[int64]) error {
		kg := statebackend.KeyGroupOf(codec.Append(nil, u.Key), statebackend.DefaultMaxParallelism)
		if i := statebackend.SubtaskForKeyGroup(statebackend.DefaultMaxParallelism, q, int(kg)); !seen[i].Swap(true) && int(n.Add(1)) == q {
			done.Store(time.Now().UnixNano())
			cancel()
		}
		weir.Value[string](ctx, "v").Set(u.Value)
		return nil
	})
	weir.To(out, "discard", sinks.Discard[int64]())
	start := time.Now()
	if err := job.Run(ctx); err != nil && ctx.Err() == nil {
		b.Fatal(err)
	}
	if done.Load() == 0 {
		b.Fatal("not every subtask processed a record")
	}
	return time.Duration(done.Load() - start.UnixNano())
}
