package weir_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weirstream/weir"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/sinks"
	"github.com/weirstream/weir/sources"
	"github.com/weirstream/weir/statebackend"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func ints(n int) []int {
	v := make([]int, n)
	for i := range v {
		v[i] = i
	}
	return v
}

func TestStatelessChain(t *testing.T) {
	for _, par := range []int{1, 3} {
		t.Run(fmt.Sprint("parallelism=", par), func(t *testing.T) {
			job := weir.NewJob("chain", weir.DefaultParallelism(par))
			src := weir.From(job, "numbers", sources.Slice(ints(10_000)))
			sq := weir.Map(src, "square", func(v int) int { return v * v })
			even := weir.Filter(sq, "even", func(v int) bool { return v%2 == 0 })
			strs := weir.FlatMap(even, "twice", func(v int, out weir.Emitter[string]) {
				out.Emit(fmt.Sprint(v))
				out.Emit(fmt.Sprint(v))
			})
			got := sinks.Collect[string]()
			weir.To(strs, "collect", got)
			if err := job.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			var want []string
			for i := 0; i < 10_000; i += 2 {
				want = append(want, fmt.Sprint(i*i), fmt.Sprint(i*i))
			}
			vals := got.Values()
			slices.Sort(vals)
			slices.Sort(want)
			if !slices.Equal(vals, want) {
				t.Fatalf("got %d records, want %d", len(vals), len(want))
			}
			if got.Finished() != par {
				t.Fatalf("%d sink subtasks finished, want %d", got.Finished(), par)
			}
		})
	}
}

// seen records which subtask processed each key.
type seen struct {
	Key     string
	Subtask int
	KG      int
	Count   int64
}

func TestKeyByRoutesByKeyGroup(t *testing.T) {
	const keys, perKey, par, maxPar = 500, 20, 3, 64
	var in []string
	for i := 0; i < perKey; i++ {
		for k := 0; k < keys; k++ {
			in = append(in, fmt.Sprintf("key-%d", k))
		}
	}
	job := weir.NewJob("keyed", weir.DefaultParallelism(par), weir.MaxParallelism(maxPar))
	src := weir.From(job, "keys", sources.Slice(in), weir.Parallelism(2))
	counted := weir.Process(weir.KeyBy(src, func(s string) string { return s }), "count",
		func(ctx weir.KeyedContext[string], k string, out weir.Emitter[seen]) error {
			n := weir.Value[int64](ctx, "n")
			n.Set(n.Get() + 1)
			out.Emit(seen{Key: ctx.Key(), Subtask: ctx.Subtask(), KG: ctx.KeyGroup(), Count: n.Get()})
			return nil
		})
	got := sinks.Collect[seen]()
	weir.To(counted, "collect", got)
	if err := job.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	final := map[string]seen{}
	for _, s := range got.Values() {
		if prev, ok := final[s.Key]; ok && prev.Subtask != s.Subtask {
			t.Fatalf("key %s processed by subtasks %d and %d", s.Key, prev.Subtask, s.Subtask)
		}
		if want := statebackend.KeyGroupOf([]byte(s.Key), maxPar); int(want) != s.KG {
			t.Fatalf("key %s: key group %d, want %d", s.Key, s.KG, want)
		}
		if want := statebackend.SubtaskForKeyGroup(maxPar, par, s.KG); want != s.Subtask {
			t.Fatalf("key %s (key group %d) on subtask %d, want %d", s.Key, s.KG, s.Subtask, want)
		}
		if s.Count > final[s.Key].Count {
			final[s.Key] = s
		}
	}
	if len(final) != keys {
		t.Fatalf("%d keys, want %d", len(final), keys)
	}
	for k, s := range final {
		if s.Count != perKey {
			t.Fatalf("key %s counted %d, want %d", k, s.Count, perKey)
		}
	}
}

type sumAgg struct{}

func (sumAgg) Zero() int64                { return 0 }
func (sumAgg) Add(acc int64, v int) int64 { return acc + int64(v) }
func (sumAgg) Result(acc int64) string    { return fmt.Sprint(acc) }

func TestReduceAggregateUnionRebalance(t *testing.T) {
	job := weir.NewJob("ops", weir.DefaultParallelism(2))
	a := weir.From(job, "a", sources.Slice(ints(1000)), weir.Parallelism(1))
	b := weir.From(job, "b", sources.Slice(ints(1000)), weir.Parallelism(3))
	all := weir.Union("all", a, weir.Rebalance(b))
	spread := weir.Map(weir.Rebalance(all), "id", func(v int) int { return v }, weir.Parallelism(3))
	byMod := weir.KeyBy(spread, func(v int) int { return v % 10 })
	sums := weir.Reduce(byMod, "sum", func(acc, v int) int { return acc + v })
	aggs := weir.Aggregate(byMod, "agg", weir.Aggregator[int, int64, string](sumAgg{}))
	gotSums := sinks.Collect[int]()
	gotAggs := sinks.Collect[string]()
	weir.To(sums, "sums", gotSums)
	weir.To(aggs, "aggs", gotAggs)
	if err := job.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(gotSums.Values()); n != 2000 {
		t.Fatalf("reduce emitted %d updates, want 2000", n)
	}
	// The largest running sum per key class is its total; the total over
	// all classes is twice the sum of 0..999.
	total := 0
	maxes := map[int]int{}
	finals := map[string]bool{}
	for _, s := range gotAggs.Values() {
		finals[s] = true
	}
	for mod := 0; mod < 10; mod++ {
		want := 0
		for v := mod; v < 1000; v += 10 {
			want += 2 * v
		}
		maxes[mod] = want
		total += want
		if !finals[fmt.Sprint(want)] {
			t.Fatalf("aggregate never reached the total %d of class %d", want, mod)
		}
	}
	sums2 := gotSums.Values()
	slices.Sort(sums2)
	if top := sums2[len(sums2)-1]; top != maxes[9] {
		t.Fatalf("largest running sum %d, want %d", top, maxes[9])
	}
	// The check above covered every class; the aggregate, like the
	// reduce, emits one update per record.
	if n := len(gotAggs.Values()); n != 2000 {
		t.Fatalf("aggregate emitted %d updates, want 2000 (total of all classes %d)", n, total)
	}
}

func TestOperatorErrorNamesOperatorAndSubtask(t *testing.T) {
	job := weir.NewJob("failing", weir.DefaultParallelism(2))
	src := weir.From(job, "numbers", sources.Slice(ints(1000)))
	keyed := weir.KeyBy(src, func(v int) int { return v })
	out := weir.Process(keyed, "picky", func(ctx weir.KeyedContext[int], v int, out weir.Emitter[int]) error {
		if v == 777 {
			return errors.New("777 is not welcome")
		}
		out.Emit(v)
		return nil
	})
	weir.To(out, "sink", sinks.Discard[int]())
	err := job.Run(context.Background())
	var oe *engine.OperatorError
	if !errors.As(err, &oe) {
		t.Fatalf("error %v is not an OperatorError", err)
	}
	wantSub := statebackend.SubtaskForKeyGroup(128, 2, int(keyGroupOfInt(777)))
	if oe.Operator != "picky" || oe.Subtask != wantSub || oe.Parallelism != 2 {
		t.Fatalf("error names %q subtask %d of %d, want picky subtask %d of 2", oe.Operator, oe.Subtask, oe.Parallelism, wantSub)
	}
	if !strings.Contains(err.Error(), "777 is not welcome") || !strings.Contains(err.Error(), `"picky"`) {
		t.Fatalf("message %q lacks the operator or the cause", err)
	}
}

func keyGroupOfInt(v int) uint16 {
	c, err := statebackend.CodecFor[int]()
	if err != nil {
		panic(err)
	}
	return statebackend.KeyGroupOf(c.Append(nil, v), 128)
}

func TestPanicsNameTheOperator(t *testing.T) {
	cases := []struct {
		name, want string
		build      func(job *weir.Job)
	}{
		{"map", "boom", func(job *weir.Job) {
			src := weir.From(job, "src", sources.Slice(ints(100)))
			m := weir.Map(src, "boom", func(v int) int {
				if v == 50 {
					panic("fifty")
				}
				return v
			})
			weir.To(weir.Map(m, "after", func(v int) int { return v }), "sink", sinks.Discard[int]())
		}},
		{"flatmap-after-emit", "fm", func(job *weir.Job) {
			src := weir.From(job, "src", sources.Slice(ints(100)))
			f := weir.FlatMap(src, "fm", func(v int, out weir.Emitter[int]) {
				out.Emit(v)
				if v == 99 {
					panic("after emit")
				}
			})
			weir.To(f, "sink", sinks.Discard[int]())
		}},
		{"key-selector", `src (key selector of "count")`, func(job *weir.Job) {
			src := weir.From(job, "src", sources.Slice(ints(100)))
			k := weir.KeyBy(src, func(v int) int {
				if v == 3 {
					panic("bad key")
				}
				return v
			})
			weir.To(weir.Reduce(k, "count", func(a, b int) int { return a + b }), "sink", sinks.Discard[int]())
		}},
		{"sink", "sink", func(job *weir.Job) {
			src := weir.From(job, "src", sources.Slice(ints(100)))
			weir.To(src, "sink", panicSink{})
		}},
		{"state-type-mismatch", "typed", func(job *weir.Job) {
			src := weir.From(job, "src", sources.Slice(ints(100)))
			k := weir.KeyBy(src, func(v int) int { return v % 3 })
			p := weir.Process(k, "typed", func(ctx weir.KeyedContext[int], v int, out weir.Emitter[int]) error {
				weir.Value[int64](ctx, "x").Set(1)
				weir.Value[string](ctx, "x").Set("no")
				return nil
			})
			weir.To(p, "sink", sinks.Discard[int]())
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			job := weir.NewJob("panics", weir.DefaultParallelism(2))
			c.build(job)
			err := job.Run(context.Background())
			var oe *engine.OperatorError
			var pe *engine.PanicError
			if !errors.As(err, &oe) || !errors.As(err, &pe) {
				t.Fatalf("error %v: want an OperatorError caused by a panic", err)
			}
			if oe.Operator != c.want {
				t.Fatalf("panic attributed to %q, want %q (%v)", oe.Operator, c.want, err)
			}
		})
	}
}

type panicSink struct{}

func (panicSink) Open(context.Context, weir.SubtaskInfo) (weir.SinkWriter[int], error) {
	return panicWriter{}, nil
}

type panicWriter struct{}

func (panicWriter) Write([]int) error { panic("sink write") }
func (panicWriter) Finish() error     { return nil }
func (panicWriter) Close() error      { return nil }

// endless produces records until cancelled and counts them.
type endless struct{ produced *atomic.Int64 }

func (e endless) Open(context.Context, weir.SubtaskInfo) (weir.SourceReader[int], error) {
	return e, nil
}

func (e endless) Read(ctx context.Context, buf []int) ([]int, error) {
	if err := ctx.Err(); err != nil {
		return buf, err
	}
	for len(buf) < cap(buf) {
		buf = append(buf, len(buf))
	}
	e.produced.Add(int64(len(buf)))
	return buf, nil
}

func (endless) Close() error { return nil }

// blockingSink blocks every write until released or cancelled.
type blockingSink struct {
	release chan struct{}
	written *atomic.Int64
}

func (b blockingSink) Open(ctx context.Context, _ weir.SubtaskInfo) (weir.SinkWriter[int], error) {
	return blockingWriter{b, ctx}, nil
}

type blockingWriter struct {
	blockingSink
	ctx context.Context
}

func (w blockingWriter) Write(batch []int) error {
	select {
	case <-w.release:
	case <-w.ctx.Done():
		return w.ctx.Err()
	}
	w.written.Add(int64(len(batch)))
	return nil
}
func (blockingWriter) Finish() error { return nil }
func (blockingWriter) Close() error  { return nil }

func TestBackpressureBoundsRecordsInFlight(t *testing.T) {
	produced := &atomic.Int64{}
	written := &atomic.Int64{}
	job := weir.NewJob("backpressure", weir.DefaultParallelism(1), weir.BatchSize(100))
	src := weir.From(job, "endless", endless{produced})
	// A rebalance puts a channel between source and sink.
	weir.To(weir.Rebalance(src), "slow", blockingSink{release: make(chan struct{}), written: written}, weir.Parallelism(2))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- job.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	var last int64 = -1
	for time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		n := produced.Load()
		if n == last && n > 0 {
			break
		}
		last = n
	}
	// Each of 2 sinks holds one batch in Write and the queue of each gate
	// (8 batches) is full; the source holds one batch per target plus the
	// one it is pushing. Everything beyond is backpressure.
	bound := int64((2*(1+engine.DefaultQueueSize) + 2 + 2) * 1024)
	if n := produced.Load(); n == 0 || n > bound {
		t.Fatalf("source produced %d records while the sinks were blocked, want 0 < n <= %d", n, bound)
	}
	if written.Load() != 0 {
		t.Fatalf("blocked sinks wrote %d", written.Load())
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled job returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("job did not stop within 10s of cancellation")
	}
}

func TestCancelStopsEveryGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t)
	produced := &atomic.Int64{}
	job := weir.NewJob("cancel", weir.DefaultParallelism(3))
	src := weir.From(job, "endless", endless{produced})
	k := weir.KeyBy(weir.Map(src, "m", func(v int) int { return v * 7 }), func(v int) int { return v % 1000 })
	counts := weir.Reduce(k, "sum", func(a, b int) int { return a + b })
	weir.To(weir.Union("u", counts, weir.Rebalance(src)), "discard", sinks.Discard[int](), weir.Parallelism(2))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- job.Run(ctx) }()
	for produced.Load() < 20_000 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled job returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("job did not stop within 10s of cancellation")
	}
}

func TestStopDrainsAndFinishes(t *testing.T) {
	produced := &atomic.Int64{}
	stop := make(chan struct{})
	job := weir.NewJob("stop", weir.DefaultParallelism(2), weir.StopWhen(stop))
	src := weir.From(job, "endless", endless{produced})
	d := sinks.Discard[int]()
	weir.To(weir.Rebalance(src), "discard", d, weir.Parallelism(3))
	done := make(chan error, 1)
	go func() { done <- job.Run(context.Background()) }()
	for produced.Load() < 50_000 {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("stopped job returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("job did not stop within 10s")
	}
	if got, want := d.Count(), produced.Load(); got != want {
		t.Fatalf("sink saw %d records, sources produced %d: records in flight were lost", got, want)
	}
}

func TestStateDirIsExclusive(t *testing.T) {
	dir := t.TempDir()
	release := make(chan struct{})
	written := &atomic.Int64{}
	job1 := weir.NewJob("one", weir.StateDir(dir), weir.DefaultParallelism(1))
	weir.To(weir.Rebalance(weir.From(job1, "endless", endless{&atomic.Int64{}})), "block", blockingSink{release, written})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- job1.Run(ctx) }()
	time.Sleep(100 * time.Millisecond)

	job2 := weir.NewJob("two", weir.StateDir(dir), weir.DefaultParallelism(1))
	weir.To(weir.From(job2, "src", sources.Slice(ints(10))), "sink", sinks.Discard[int]())
	err := job2.Run(context.Background())
	if !errors.Is(err, engine.ErrStateDirLocked) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second job on a held state directory: %v, want ErrStateDirLocked naming %s", err, dir)
	}
	cancel()
	<-done
}

func TestBuildErrors(t *testing.T) {
	job := weir.NewJob("bad")
	src := weir.From(job, "src", sources.Slice(ints(10)))
	weir.To(src, "", sinks.Discard[int]())
	type noKey struct{ F func() }
	k := weir.KeyBy(src, func(int) noKey { return noKey{} })
	weir.To(weir.Reduce(k, "r", func(a, b int) int { return a }), "s2", sinks.Discard[int]())
	err := job.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "empty name") || !strings.Contains(err.Error(), "key type") {
		t.Fatalf("build errors: %v", err)
	}

	job = weir.NewJob("dup")
	src = weir.From(job, "x", sources.Slice(ints(10)))
	weir.To(src, "x", sinks.Discard[int]())
	if err := job.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "same UID") {
		t.Fatalf("duplicate UIDs: %v", err)
	}
}

func TestUnionOfEqualParallelism(t *testing.T) {
	for _, pars := range [][3]int{{2, 2, 2}, {2, 3, 2}, {1, 1, 3}} {
		t.Run(fmt.Sprint(pars), func(t *testing.T) {
			job := weir.NewJob("union")
			a := weir.From(job, "a", sources.Slice(ints(1000)), weir.Parallelism(pars[0]))
			b := weir.From(job, "b", sources.Slice(ints(1000)), weir.Parallelism(pars[1]))
			got := sinks.Collect[int]()
			weir.To(weir.Union("u", a, b), "sink", got, weir.Parallelism(pars[2]))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := job.Run(ctx); err != nil {
				t.Fatal(err)
			}
			if n := len(got.Values()); n != 2000 {
				t.Fatalf("%d records, want 2000", n)
			}
		})
	}
}

// trickle returns a few records, then an empty batch, many times.
type trickle struct{}

func (trickle) Open(context.Context, weir.SubtaskInfo) (weir.SourceReader[int], error) {
	return &trickleReader{}, nil
}

type trickleReader struct{ n int }

func (r *trickleReader) Read(_ context.Context, buf []int) ([]int, error) {
	r.n++
	switch {
	case r.n > 400:
		return buf, io.EOF
	case r.n%2 == 0:
		return buf, nil
	}
	for i := 0; i < 10; i++ {
		buf = append(buf, r.n)
	}
	return buf, nil
}

func (*trickleReader) Close() error { return nil }

func TestRebalanceSpreadsATrickle(t *testing.T) {
	counts := make([]atomic.Int64, 4)
	job := weir.NewJob("trickle")
	src := weir.From(job, "trickle", trickle{}, weir.Parallelism(1))
	k := weir.Map(weir.Rebalance(src), "where", func(v int) int { return v }, weir.Parallelism(4))
	weir.To(k, "count", subtaskCounter{counts}, weir.Parallelism(4))
	if err := job.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := range counts {
		if n := counts[i].Load(); n < 300 {
			t.Fatalf("subtask %d got %d of 2000 records: %d %d %d %d", i, n, counts[0].Load(), counts[1].Load(), counts[2].Load(), counts[3].Load())
		}
	}
}

type subtaskCounter struct{ counts []atomic.Int64 }

func (s subtaskCounter) Open(_ context.Context, info weir.SubtaskInfo) (weir.SinkWriter[int], error) {
	return counterWriter{&s.counts[info.Index]}, nil
}

type counterWriter struct{ n *atomic.Int64 }

func (w counterWriter) Write(b []int) error { w.n.Add(int64(len(b))); return nil }
func (counterWriter) Finish() error         { return nil }
func (counterWriter) Close() error          { return nil }

// finishSink records whether Finish ran, and can panic or fail in Close.
type finishSink struct {
	finished   *atomic.Int64
	closePanic bool
}

func (f finishSink) Open(context.Context, weir.SubtaskInfo) (weir.SinkWriter[int], error) {
	return finishWriter{f}, nil
}

type finishWriter struct{ finishSink }

func (finishWriter) Write([]int) error { return nil }
func (w finishWriter) Finish() error   { w.finished.Add(1); return nil }
func (w finishWriter) Close() error {
	if w.closePanic {
		panic("close panicked")
	}
	return nil
}

func TestNothingCommitsWhenAnotherSubtaskFails(t *testing.T) {
	finished := &atomic.Int64{}
	job := weir.NewJob("late-failure", weir.DefaultParallelism(2))
	src := weir.From(job, "src", sources.Slice(ints(10)))
	m := weir.FlatMap(src, "late", func(v int, out weir.Emitter[int]) {
		if v == 9 {
			time.Sleep(200 * time.Millisecond)
			panic("late failure")
		}
		out.Emit(v)
	})
	weir.To(m, "sink", finishSink{finished: finished})
	if err := job.Run(context.Background()); err == nil {
		t.Fatal("job with a failing operator succeeded")
	}
	if n := finished.Load(); n != 0 {
		t.Fatalf("%d sink subtasks committed although the job failed", n)
	}
}

func TestPanicInCloseFailsTheJobNotTheProcess(t *testing.T) {
	job := weir.NewJob("close-panic", weir.DefaultParallelism(1))
	weir.To(weir.From(job, "src", sources.Slice(ints(10))), "sink", finishSink{finished: &atomic.Int64{}, closePanic: true})
	err := job.Run(context.Background())
	var oe *engine.OperatorError
	if !errors.As(err, &oe) || oe.Operator != "sink" {
		t.Fatalf("panic in Close: %v, want an OperatorError naming the sink", err)
	}
}

func TestCancellationIsNotAnOperatorError(t *testing.T) {
	job := weir.NewJob("cancel", weir.DefaultParallelism(1))
	src := weir.From(job, "endless", endless{&atomic.Int64{}})
	m := weir.Map(src, "m", func(v int) int { return v })
	weir.To(weir.Rebalance(m), "block", blockingSink{make(chan struct{}), &atomic.Int64{}})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	err := job.Run(ctx)
	var oe *engine.OperatorError
	if !errors.Is(err, context.Canceled) || errors.As(err, &oe) {
		t.Fatalf("cancelled job: %v, want context.Canceled naming no operator", err)
	}
}

func TestUIDsThatLookAlikeGetTheirOwnState(t *testing.T) {
	job := weir.NewJob("alike", weir.DefaultParallelism(1))
	src := weir.From(job, "src", sources.Slice(ints(100)))
	k := weir.KeyBy(src, func(v int) int { return v % 5 })
	a := weir.Reduce(k, "count words", func(x, y int) int { return x + y })
	b := weir.Reduce(k, "count_words", func(x, y int) int { return x + y })
	weir.To(a, "a", sinks.Discard[int]())
	weir.To(b, "b", sinks.Discard[int]())
	if err := job.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
}
