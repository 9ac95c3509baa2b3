package bench

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir"
	"github.com/weirstream/weir/sinks"
	"github.com/weirstream/weir/sources"
)

// run runs job and reports records/s and records/s per core (GOMAXPROCS
// cores may all be busy; per-core divides by the parallelism used).
func run(b *testing.B, job *weir.Job, records int, cores int) {
	b.Helper()
	b.ResetTimer()
	start := time.Now()
	if err := job.Run(context.Background()); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	rate := float64(records) / elapsed.Seconds()
	b.ReportMetric(rate, "records/s")
	b.ReportMetric(rate/float64(cores), "records/s/core")
}

// BenchmarkStatelessChain: generator → map → filter → discard, chained in
// one goroutine at parallelism 1. One op is one record.
func BenchmarkStatelessChain(b *testing.B) {
	job := weir.NewJob("chain", weir.DefaultParallelism(1))
	seq := weir.From(job, "gen", sources.Sequence(sources.SequenceConfig{Keys: 1, Count: int64(b.N)}))
	m := weir.Map(seq, "map", func(s sources.Seq) int64 { return s.Seq * 3 })
	f := weir.Filter(m, "filter", func(v int64) bool { return v&1 == 0 })
	d := sinks.Discard[int64]()
	weir.To(f, "discard", d)
	b.ReportAllocs()
	run(b, job, b.N, 1)
	if want := int64(b.N / 2); d.Count() != want && d.Count() != want+1 {
		b.Fatalf("discarded %d, want ~%d", d.Count(), want)
	}
}

// BenchmarkExchange measures the hand-off of batches between goroutines:
// generator → rebalance → discard at parallelism 1 (two goroutines), for
// several batch sizes. ns/op is per record; ns/batch is the cost of one
// batch crossing a channel, including filling it.
func BenchmarkExchange(b *testing.B) {
	for _, size := range []int{64, 256, 1024, 4096} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			job := weir.NewJob("exchange", weir.DefaultParallelism(1), weir.BatchSize(size))
			seq := weir.From(job, "gen", sources.Sequence(sources.SequenceConfig{Keys: 1, Count: int64(b.N)}))
			d := sinks.Discard[sources.Seq]()
			weir.To(weir.Rebalance(seq), "discard", d)
			b.ReportAllocs()
			start := time.Now()
			run(b, job, b.N, 2)
			b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N)*float64(size), "ns/batch")
			if d.Count() != int64(b.N) {
				b.Fatalf("discarded %d, want %d", d.Count(), b.N)
			}
		})
	}
}

// BenchmarkKeyedCount: generator → keyBy → count in Pebble keyed state →
// discard, 1M distinct keys, keyed operator at parallelism 2. One op is
// one state update (a get and a set). Reports peak RSS of the process.
func BenchmarkKeyedCount(b *testing.B) {
	const keys = 1_000_000
	for _, par := range []int{1, 2} {
		b.Run(fmt.Sprintf("parallelism=%d", par), func(b *testing.B) {
			count := int64(b.N)/keys + 1
			records := int(count) * keys
			if b.N < keys {
				// Small b.N: fewer keys, same shape.
				count, records = 1, b.N
			}
			nkeys := min(keys, b.N)
			job := weir.NewJob("keyed", weir.DefaultParallelism(par))
			d := keyedCount(job, nkeys, count)
			b.ReportAllocs()
			run(b, job, records, min(par+1, runtime.NumCPU()))
			b.ReportMetric(float64(records)/float64(b.N), "records/op")
			if rss := peakRSS(); rss > 0 {
				b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MiB")
			}
			if d.Count() != int64(records) {
				b.Fatalf("counted %d, want %d", d.Count(), records)
			}
		})
	}
}

// keyedCount adds generator → keyBy → count in keyed state → discard to
// job: keys keys, count records each.
func keyedCount(job *weir.Job, keys int, count int64) *sinks.Discarder[int64] {
	seq := weir.From(job, "gen", sources.Sequence(sources.SequenceConfig{Keys: keys, Count: count}), weir.Parallelism(1))
	counted := weir.Process(weir.KeyBy(seq, func(s sources.Seq) int64 { return s.Key }), "count",
		func(ctx weir.KeyedContext[int64], s sources.Seq, out weir.Emitter[int64]) error {
			n := weir.Value[int64](ctx, "n")
			v := n.Get() + 1
			n.Set(v)
			out.Emit(v)
			return nil
		})
	d := sinks.Discard[int64]()
	weir.To(counted, "discard", d)
	return d
}

// peakRSS is the process's peak resident set size (VmHWM) in bytes, or 0
// where /proc is not available.
func peakRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
