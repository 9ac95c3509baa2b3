package weir_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir"
	"github.com/weirstream/weir/sinks"
	"github.com/weirstream/weir/sources"
)

// ev is a timestamped record of key K.
type ev struct {
	K  int64
	TS int64
}

type countAgg struct{}

func (countAgg) Zero() int64               { return 0 }
func (countAgg) Add(acc int64, _ ev) int64 { return acc + 1 }
func (countAgg) Result(acc int64) int64    { return acc }
func (countAgg) Merge(a, b int64) int64    { return a + b }

// plainCount counts without merging: sliding windows keep one accumulator
// per window.
type plainCount struct{}

func (plainCount) Zero() int64               { return 0 }
func (plainCount) Add(acc int64, _ ev) int64 { return acc + 1 }
func (plainCount) Result(acc int64) int64    { return acc }

// events returns n records over keys keys, event times increasing by 0-9 ms
// with some records up to 50 ms out of order.
func windowEvents(n, keys int) []ev {
	r := rand.New(rand.NewPCG(1, 2))
	out := make([]ev, n)
	ts := int64(1_000_000)
	for i := range out {
		ts += r.Int64N(10)
		out[i] = ev{K: r.Int64N(int64(keys)), TS: ts - r.Int64N(50)}
	}
	return out
}

// TestWindowsMatchAReference counts records per key in tumbling and
// sliding windows and compares every window's count with one computed
// from the records. The watermark allows 100 ms of disorder, more than
// the data has, so nothing is late.
func TestWindowsMatchAReference(t *testing.T) {
	data := windowEvents(20_000, 7)
	for _, tc := range []struct {
		w   weir.Windows
		agg weir.Aggregator[ev, int64, int64]
	}{
		{weir.Tumbling(100 * time.Millisecond), countAgg{}},
		{weir.Sliding(300*time.Millisecond, 100*time.Millisecond), countAgg{}},   // sliced
		{weir.Sliding(300*time.Millisecond, 100*time.Millisecond), plainCount{}}, // per window
	} {
		w := tc.w
		t.Run(fmt.Sprintf("size=%v,slide=%v,%T", w.Size, w.Slide, tc.agg), func(t *testing.T) {
			job := weir.NewJob("windows", weir.DefaultParallelism(2))
			src := weir.From(job, "src", weir.WithWatermarks(sources.Slice(data), weir.WatermarkStrategy[ev]{
				Timestamp: func(e ev) int64 { return e.TS }, OutOfOrderness: 100 * time.Millisecond,
			}))
			res := weir.WindowAggregate(weir.KeyBy(src, func(e ev) int64 { return e.K }), "count", w,
				func(e ev) int64 { return e.TS }, tc.agg)
			c := sinks.Collect[weir.WindowResult[int64, int64]]()
			weir.To(res, "out", c)
			if err := job.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			want := map[string]int64{}
			size, slide := w.Size.Milliseconds(), w.Slide.Milliseconds()
			for _, e := range data {
				for s := e.TS - e.TS%slide; s > e.TS-size; s -= slide {
					want[fmt.Sprintf("%d [%d,%d)", e.K, s, s+size)]++
				}
			}
			got := map[string]int64{}
			for _, r := range c.Values() {
				k := fmt.Sprintf("%d [%d,%d)", r.Key, r.Window.Start, r.Window.End)
				if _, dup := got[k]; dup {
					t.Fatalf("window %s fired twice", k)
				}
				got[k] = r.Value
			}
			if len(got) != len(want) {
				t.Fatalf("%d windows fired, want %d", len(got), len(want))
			}
			for k, n := range want {
				if got[k] != n {
					t.Fatalf("window %s: count %d, want %d", k, got[k], n)
				}
			}
		})
	}
}

// TestLateRecordsAreDropped: with no allowed disorder, records older than
// the newest seen by more than a window are late and do not count.
func TestLateRecordsAreDropped(t *testing.T) {
	data := []ev{{1, 1000}, {1, 1050}, {1, 1250}, {1, 1010}, {1, 1260}, {1, 2000}}
	// Batches of one record: the watermark advances after each.
	job := weir.NewJob("late", weir.DefaultParallelism(1), weir.BatchSize(1))
	src := weir.From(job, "src", weir.WithWatermarks(sources.Slice(data), weir.WatermarkStrategy[ev]{Timestamp: func(e ev) int64 { return e.TS }}))
	res := weir.WindowAggregate(weir.KeyBy(src, func(e ev) int64 { return e.K }), "count", weir.Tumbling(100*time.Millisecond),
		func(e ev) int64 { return e.TS }, weir.Aggregator[ev, int64, int64](countAgg{}), weir.Parallelism(1))
	c := sinks.Collect[weir.WindowResult[int64, int64]]()
	weir.To(res, "out", c)
	if err := job.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range c.Values() {
		got = append(got, fmt.Sprintf("[%d,%d)=%d", r.Window.Start, r.Window.End, r.Value))
	}
	slices.Sort(got)
	// 1010 arrives after the watermark passed 1099 (its window's last
	// millisecond; 1250 took it to 1249): dropped.
	want := []string{"[1000,1100)=2", "[1200,1300)=2", "[2000,2100)=1"}
	if !slices.Equal(got, want) {
		t.Fatalf("windows %v, want %v", got, want)
	}
}

// TestTimersFire: a keyed process function sets a timer 100 ms after each
// key's first record and emits the key's count when it fires.
func TestTimersFire(t *testing.T) {
	data := windowEvents(5000, 5)
	job := weir.NewJob("timers", weir.DefaultParallelism(2))
	src := weir.From(job, "src", weir.WithWatermarks(sources.Slice(data), weir.WatermarkStrategy[ev]{
		Timestamp: func(e ev) int64 { return e.TS }, OutOfOrderness: 100 * time.Millisecond,
	}))
	type fired struct{ K, At, Count int64 }
	out := weir.KeyedProcess(weir.KeyBy(src, func(e ev) int64 { return e.K }), "timer",
		func(ctx weir.KeyedContext[int64], e ev, _ weir.Emitter[fired]) error {
			n := weir.Value[int64](ctx, "n")
			if n.Get() == 0 {
				ctx.Timers().Register(e.TS + 100)
			}
			n.Set(n.Get() + 1)
			return nil
		},
		func(ctx weir.KeyedContext[int64], at int64, out weir.Emitter[fired]) error {
			n := weir.Value[int64](ctx, "n")
			out.Emit(fired{K: ctx.Key(), At: at, Count: n.Get()})
			if ctx.Timers().Watermark() < at {
				return fmt.Errorf("timer at %d fired at watermark %d", at, ctx.Timers().Watermark())
			}
			n.Clear()
			return nil
		})
	c := sinks.Collect[fired]()
	weir.To(out, "out", c)
	if err := job.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, f := range c.Values() {
		total += f.Count
	}
	if total != int64(len(data)) || len(c.Values()) < 5 {
		t.Fatalf("timers fired %d times counting %d records, want every one of %d", len(c.Values()), total, len(data))
	}
}

// TestAllowedLateness: a window keeps its state for the allowed lateness
// after its end, fires again for each late record in that time, and drops
// records that come later.
func TestAllowedLateness(t *testing.T) {
	data := []ev{{1, 1000}, {1, 1050}, {1, 1250}, {1, 1010}, {1, 1400}, {1, 1020}, {1, 2000}}
	job := weir.NewJob("lateness", weir.DefaultParallelism(1), weir.BatchSize(1))
	src := weir.From(job, "src", weir.WithWatermarks(sources.Slice(data), weir.WatermarkStrategy[ev]{Timestamp: func(e ev) int64 { return e.TS }}))
	res := weir.WindowAggregate(weir.KeyBy(src, func(e ev) int64 { return e.K }), "count",
		weir.Tumbling(100*time.Millisecond).Lateness(200*time.Millisecond),
		func(e ev) int64 { return e.TS }, weir.Aggregator[ev, int64, int64](countAgg{}))
	c := sinks.Collect[weir.WindowResult[int64, int64]]()
	weir.To(res, "out", c)
	if err := job.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range c.Values() {
		got = append(got, fmt.Sprintf("[%d,%d)=%d", r.Window.Start, r.Window.End, r.Value))
	}
	// 1250 fires [1000,1100) with 2; 1010 is late but within 200 ms of its
	// end: it fires again with 3; 1400 ends its lateness, so 1020 is
	// dropped.
	want := []string{"[1000,1100)=2", "[1000,1100)=3", "[1200,1300)=1", "[1400,1500)=1", "[2000,2100)=1"}
	if !slices.Equal(got, want) {
		t.Fatalf("emitted %v, want %v", got, want)
	}
}

// halfIdle is a source whose subtask 0 emits one record per millisecond of
// event time (n of them, then nothing) and whose other subtasks never emit:
// without idleness they would hold the watermark back forever.
type halfIdle struct{ n int }

func (h halfIdle) Open(_ context.Context, info weir.SubtaskInfo) (weir.SourceReader[ev], error) {
	return &halfIdleReader{emit: info.Index == 0, n: h.n}, nil
}

type halfIdleReader struct {
	emit bool
	n, i int
}

func (r *halfIdleReader) Read(ctx context.Context, buf []ev) ([]ev, error) {
	if !r.emit || r.i >= r.n {
		select {
		case <-ctx.Done():
			return buf, ctx.Err()
		case <-time.After(5 * time.Millisecond):
			return buf, nil
		}
	}
	r.i++
	return append(buf, ev{K: 1, TS: int64(r.i)}), nil
}

func (r *halfIdleReader) Close() error { return nil }

// TestIdleSubtasksDoNotStallWindows: windows fire while the job runs
// although a source subtask never reads anything, once it is idle.
func TestIdleSubtasksDoNotStallWindows(t *testing.T) {
	stop := make(chan struct{})
	job := weir.NewJob("idle", weir.DefaultParallelism(2), weir.StopWhen(stop))
	src := weir.From(job, "src", weir.WithWatermarks[ev](halfIdle{n: 1000}, weir.WatermarkStrategy[ev]{
		Timestamp: func(e ev) int64 { return e.TS }, IdleTimeout: 50 * time.Millisecond,
	}))
	res := weir.WindowAggregate(weir.KeyBy(src, func(e ev) int64 { return e.K }), "count", weir.Tumbling(100*time.Millisecond),
		func(e ev) int64 { return e.TS }, weir.Aggregator[ev, int64, int64](countAgg{}))
	c := sinks.Collect[weir.WindowResult[int64, int64]]()
	weir.To(res, "out", c)
	done := make(chan error, 1)
	go func() { done <- job.Run(context.Background()) }()
	deadline := time.Now().Add(20 * time.Second)
	for c.Len() < 9 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	fired := c.Len()
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Records 1..1000: windows [0,100) ... [900,1000) close as the
	// watermark reaches 999; [1000,1100) holds the last record.
	if fired < 9 {
		t.Fatalf("%d windows fired while the job ran, want at least 9: the idle subtask held the watermark back", fired)
	}
}

// TestSessionWindows compares session windows over disordered records with
// sessions computed from the sorted records of each key.
func TestSessionWindows(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var data []ev
	ts := int64(1_000_000)
	for range 5000 {
		ts += r.Int64N(40) // gaps of 0-39 ms per step, over 4 keys
		data = append(data, ev{K: r.Int64N(4), TS: ts - r.Int64N(30)})
	}
	const gap = 60
	job := weir.NewJob("sessions", weir.DefaultParallelism(2))
	src := weir.From(job, "src", weir.WithWatermarks(sources.Slice(data), weir.WatermarkStrategy[ev]{
		Timestamp: func(e ev) int64 { return e.TS }, OutOfOrderness: 100 * time.Millisecond,
	}))
	res := weir.WindowAggregate(weir.KeyBy(src, func(e ev) int64 { return e.K }), "count", weir.Sessions(gap*time.Millisecond),
		func(e ev) int64 { return e.TS }, weir.Aggregator[ev, int64, int64](countAgg{}))
	c := sinks.Collect[weir.WindowResult[int64, int64]]()
	weir.To(res, "out", c)
	if err := job.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	byKey := map[int64][]int64{}
	for _, e := range data {
		byKey[e.K] = append(byKey[e.K], e.TS)
	}
	var want []string
	for k, tss := range byKey {
		slices.Sort(tss)
		start, n := tss[0], int64(1)
		for i := 1; i <= len(tss); i++ {
			if i == len(tss) || tss[i]-tss[i-1] >= gap {
				want = append(want, fmt.Sprintf("%d [%d,%d)=%d", k, start, tss[i-1]+gap, n))
				if i < len(tss) {
					start, n = tss[i], 0
				}
			}
			n++
		}
	}
	var got []string
	for _, r := range c.Values() {
		got = append(got, fmt.Sprintf("%d [%d,%d)=%d", r.Key, r.Window.Start, r.Window.End, r.Value))
	}
	sameSorted(t, "sessions", got, want, 50)
}

// sameSorted compares two lists of rows in any order: got must equal want,
// and want hold at least least rows (or the test data tests too little).
func sameSorted(t *testing.T, what string, got, want []string, least int) {
	t.Helper()
	slices.Sort(got)
	slices.Sort(want)
	if len(want) < least {
		t.Fatalf("only %d %s in the test data", len(want), what)
	}
	if !slices.Equal(got, want) {
		diff := "the end"
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				diff = fmt.Sprintf("%q vs %q", got[i], want[i])
				break
			}
		}
		t.Fatalf("%d %s, want %d; first difference at %s", len(got), what, len(want), diff)
	}
}

func TestSessionsNeedAMerger(t *testing.T) {
	job := weir.NewJob("sessions", weir.DefaultParallelism(1))
	src := weir.From(job, "src", weir.WithWatermarks(sources.Slice([]ev{{1, 1}}), weir.WatermarkStrategy[ev]{Timestamp: func(e ev) int64 { return e.TS }}))
	res := weir.WindowAggregate(weir.KeyBy(src, func(e ev) int64 { return e.K }), "count", weir.Sessions(time.Second),
		func(e ev) int64 { return e.TS }, weir.Aggregator[ev, int64, int64](plainCount{}))
	weir.To(res, "out", sinks.Discard[weir.WindowResult[int64, int64]]())
	if err := job.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "Merger") {
		t.Fatalf("sessions with an aggregator that does not merge: %v", err)
	}
}

// TestWindowProcess: a window function over all records of each sliding
// window sees exactly the records a reference assigns to it.
func TestWindowProcess(t *testing.T) {
	data := windowEvents(5000, 3)
	job := weir.NewJob("process", weir.DefaultParallelism(2))
	src := weir.From(job, "src", weir.WithWatermarks(sources.Slice(data), weir.WatermarkStrategy[ev]{
		Timestamp: func(e ev) int64 { return e.TS }, OutOfOrderness: 100 * time.Millisecond,
	}))
	out := weir.WindowProcess(weir.KeyBy(src, func(e ev) int64 { return e.K }), "span", weir.Sliding(200*time.Millisecond, 100*time.Millisecond),
		func(e ev) int64 { return e.TS },
		func(key int64, w weir.Window, records []ev, out weir.Emitter[string]) error {
			lo, hi := records[0].TS, records[0].TS
			for _, r := range records {
				if r.K != key || r.TS < w.Start || r.TS >= w.End {
					return fmt.Errorf("record %+v in window %+v of key %d", r, w, key)
				}
				lo, hi = min(lo, r.TS), max(hi, r.TS)
			}
			out.Emit(fmt.Sprintf("%d [%d,%d) n=%d min=%d max=%d", key, w.Start, w.End, len(records), lo, hi))
			return nil
		})
	c := sinks.Collect[string]()
	weir.To(out, "out", c)
	if err := job.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	type agg struct{ n, lo, hi int64 }
	ref := map[string]*agg{}
	for _, e := range data {
		for s := e.TS - e.TS%100; s > e.TS-200; s -= 100 {
			k := fmt.Sprintf("%d [%d,%d)", e.K, s, s+200)
			a := ref[k]
			if a == nil {
				a = &agg{lo: e.TS, hi: e.TS}
				ref[k] = a
			}
			a.n++
			a.lo, a.hi = min(a.lo, e.TS), max(a.hi, e.TS)
		}
	}
	var want []string
	for k, a := range ref {
		want = append(want, fmt.Sprintf("%s n=%d min=%d max=%d", k, a.n, a.lo, a.hi))
	}
	got := c.Values()
	sameSorted(t, "windows", got, want, 0)
}

// TestProcessingTimeTimers: a keyed function sets a wall-clock timer 50 ms
// after each key's first record; each fires once, in the processing-time
// domain, while the job waits for input that does not come.
func TestProcessingTimeTimers(t *testing.T) {
	stop := make(chan struct{})
	job := weir.NewJob("proctime", weir.DefaultParallelism(2), weir.StopWhen(stop))
	src := weir.From(job, "src", halfIdle{n: 50})
	type fired struct {
		K      int64
		Domain weir.TimeDomain
		Early  bool
	}
	out := weir.KeyedProcess(weir.KeyBy(src, func(e ev) int64 { return e.TS % 5 }), "timer",
		func(ctx weir.KeyedContext[int64], e ev, _ weir.Emitter[fired]) error {
			first := weir.Value[int64](ctx, "at")
			if _, ok := first.Lookup(); !ok {
				at := time.Now().UnixMilli() + 50
				first.Set(at)
				ctx.Timers().RegisterProcessingTime(at)
			}
			return nil
		},
		func(ctx weir.KeyedContext[int64], at int64, out weir.Emitter[fired]) error {
			out.Emit(fired{K: ctx.Key(), Domain: ctx.Timers().Domain(), Early: time.Now().UnixMilli() < at})
			return nil
		})
	c := sinks.Collect[fired]()
	weir.To(out, "out", c)
	done := make(chan error, 1)
	go func() { done <- job.Run(context.Background()) }()
	deadline := time.Now().Add(20 * time.Second)
	for c.Len() < 5 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // a timer firing twice would show now
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	keys := map[int64]int{}
	for _, f := range c.Values() {
		if f.Domain != weir.ProcessingTime || f.Early {
			t.Fatalf("timer of key %d: domain %v, fired before its time %v", f.K, f.Domain, f.Early)
		}
		keys[f.K]++
	}
	if len(keys) != 5 {
		t.Fatalf("timers fired for keys %v, want 5 keys once each", keys)
	}
	for k, n := range keys {
		if n != 1 {
			t.Fatalf("key %d: timer fired %d times", k, n)
		}
	}
}

// TestIntervalJoin joins two disordered streams on key and a time interval
// and compares the pairs with a nested loop.
func TestIntervalJoin(t *testing.T) {
	type click struct {
		User, TS int64
	}
	type view struct {
		User, TS, Page int64
	}
	r := rand.New(rand.NewPCG(7, 8))
	var clicks []click
	var views []view
	ts := int64(1_000_000)
	for i := range 3000 {
		ts += r.Int64N(5)
		if i%3 == 0 {
			clicks = append(clicks, click{User: r.Int64N(10), TS: ts - r.Int64N(40)})
		} else {
			views = append(views, view{User: r.Int64N(10), TS: ts - r.Int64N(40), Page: int64(i)})
		}
	}
	const lower, upper = -20, 30 // a view 20 ms before to 30 ms after a click
	job := weir.NewJob("join", weir.DefaultParallelism(2))
	cs := weir.From(job, "clicks", weir.WithWatermarks(sources.Slice(clicks), weir.WatermarkStrategy[click]{
		Timestamp: func(c click) int64 { return c.TS }, OutOfOrderness: 50 * time.Millisecond}))
	vs := weir.From(job, "views", weir.WithWatermarks(sources.Slice(views), weir.WatermarkStrategy[view]{
		Timestamp: func(v view) int64 { return v.TS }, OutOfOrderness: 50 * time.Millisecond}))
	joined := weir.IntervalJoin(weir.KeyBy(cs, func(c click) int64 { return c.User }), weir.KeyBy(vs, func(v view) int64 { return v.User }),
		"join", lower*time.Millisecond, upper*time.Millisecond,
		func(c click) int64 { return c.TS }, func(v view) int64 { return v.TS },
		func(user int64, c click, v view) string { return fmt.Sprintf("%d %d %d", user, c.TS, v.Page) })
	out := sinks.Collect[string]()
	weir.To(joined, "out", out)
	if err := job.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, c := range clicks {
		for _, v := range views {
			if v.User == c.User && v.TS >= c.TS+lower && v.TS <= c.TS+upper {
				want = append(want, fmt.Sprintf("%d %d %d", c.User, c.TS, v.Page))
			}
		}
	}
	got := out.Values()
	sameSorted(t, "pairs", got, want, 100)
}

// TestWindowJoin pairs two streams' records of a key in the same tumbling
// window and compares with a nested loop.
func TestWindowJoin(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	var ls, rs []ev
	ts := int64(1_000_000)
	for i := range 2000 {
		ts += r.Int64N(4)
		e := ev{K: r.Int64N(8), TS: ts - r.Int64N(30)}
		if i%2 == 0 {
			ls = append(ls, e)
		} else {
			rs = append(rs, e)
		}
	}
	const size = 50
	job := weir.NewJob("wjoin", weir.DefaultParallelism(2))
	strategy := weir.WatermarkStrategy[ev]{Timestamp: func(e ev) int64 { return e.TS }, OutOfOrderness: 40 * time.Millisecond}
	left := weir.From(job, "left", weir.WithWatermarks(sources.Slice(ls), strategy))
	right := weir.From(job, "right", weir.WithWatermarks(sources.Slice(rs), strategy))
	tsOf := func(e ev) int64 { return e.TS }
	joined := weir.WindowJoin(weir.KeyBy(left, func(e ev) int64 { return e.K }), weir.KeyBy(right, func(e ev) int64 { return e.K }),
		"join", weir.Tumbling(size*time.Millisecond), tsOf, tsOf,
		func(k int64, w weir.Window, l, r ev) string {
			return fmt.Sprintf("%d [%d,%d) %d %d", k, w.Start, w.End, l.TS, r.TS)
		})
	out := sinks.Collect[string]()
	weir.To(joined, "out", out)
	if err := job.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, l := range ls {
		for _, r := range rs {
			if l.K == r.K && l.TS/size == r.TS/size {
				s := l.TS - l.TS%size
				want = append(want, fmt.Sprintf("%d [%d,%d) %d %d", l.K, s, s+size, l.TS, r.TS))
			}
		}
	}
	got := out.Values()
	sameSorted(t, "pairs", got, want, 100)
}

// TestLateSideOutput: the record that TestLateRecordsAreDropped drops comes
// out of the late stream, and the results are the same.
func TestLateSideOutput(t *testing.T) {
	data := []ev{{1, 1000}, {1, 1050}, {1, 1250}, {1, 1010}, {1, 1260}, {1, 2000}}
	job := weir.NewJob("late", weir.DefaultParallelism(1), weir.BatchSize(1))
	src := weir.From(job, "src", weir.WithWatermarks(sources.Slice(data), weir.WatermarkStrategy[ev]{Timestamp: func(e ev) int64 { return e.TS }}))
	res, late := weir.WindowAggregateWithLate(weir.KeyBy(src, func(e ev) int64 { return e.K }), "count", weir.Tumbling(100*time.Millisecond),
		func(e ev) int64 { return e.TS }, weir.Aggregator[ev, int64, int64](countAgg{}))
	c := sinks.Collect[weir.WindowResult[int64, int64]]()
	weir.To(res, "out", c)
	l := sinks.Collect[ev]()
	weir.To(late, "late", l)
	if err := job.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range c.Values() {
		got = append(got, fmt.Sprintf("[%d,%d)=%d", r.Window.Start, r.Window.End, r.Value))
	}
	slices.Sort(got)
	if want := []string{"[1000,1100)=2", "[1200,1300)=2", "[2000,2100)=1"}; !slices.Equal(got, want) {
		t.Fatalf("windows %v, want %v", got, want)
	}
	if lv := l.Values(); len(lv) != 1 || lv[0] != (ev{1, 1010}) {
		t.Fatalf("late records %v, want [{1 1010}]", lv)
	}
}

// TestWindowReduce: the latest time per key and session, by reduction.
func TestWindowReduce(t *testing.T) {
	data := []ev{{1, 100}, {2, 110}, {1, 150}, {1, 400}, {2, 120}, {1, 420}}
	job := weir.NewJob("reduce", weir.DefaultParallelism(1))
	src := weir.From(job, "src", weir.WithWatermarks(sources.Slice(data), weir.WatermarkStrategy[ev]{
		Timestamp: func(e ev) int64 { return e.TS }, OutOfOrderness: time.Second}))
	res := weir.WindowReduce(weir.KeyBy(src, func(e ev) int64 { return e.K }), "latest", weir.Sessions(100*time.Millisecond),
		func(e ev) int64 { return e.TS }, func(a, b ev) ev {
			if b.TS > a.TS {
				return b
			}
			return a
		})
	c := sinks.Collect[weir.WindowResult[int64, ev]]()
	weir.To(res, "out", c)
	if err := job.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range c.Values() {
		got = append(got, fmt.Sprintf("%d [%d,%d) %d", r.Key, r.Window.Start, r.Window.End, r.Value.TS))
	}
	slices.Sort(got)
	want := []string{"1 [100,250) 150", "1 [400,520) 420", "2 [110,220) 120"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// TestWatermarksRescaled: a source with watermarks restored at another
// parallelism starts from the lowest highest event time of the old
// subtasks, and from none at all if one of them read nothing, whatever
// their order.
func TestWatermarksRescaled(t *testing.T) {
	ctx := context.Background()
	src := weir.WithWatermarks(sources.Sequence(sources.SequenceConfig{Keys: 4, Count: 100}),
		weir.WatermarkStrategy[sources.Seq]{Timestamp: func(s sources.Seq) int64 { return s.Seq * 1000 }})
	info := func(i, p int) weir.SubtaskInfo {
		return weir.SubtaskInfo{Job: "j", Operator: "s", UID: "s", Index: i, Parallelism: p, MaxParallelism: 128}
	}
	position := func(i, p, reads int) []byte {
		r, err := src.Open(ctx, info(i, p))
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]sources.Seq, 0, 2)
		for range reads {
			if _, err := r.Read(ctx, buf[:0]); err != nil {
				t.Fatal(err)
			}
		}
		pos, err := r.(weir.CheckpointedReader).Position()
		if err != nil {
			t.Fatal(err)
		}
		return pos
	}
	highest := func(positions [][]byte) int64 {
		r, err := src.(weir.RescalableSource[sources.Seq]).RestoreRescaled(ctx, info(0, 2), positions)
		if err != nil {
			t.Fatal(err)
		}
		pos, err := r.(weir.CheckpointedReader).Position()
		if err != nil {
			t.Fatal(err)
		}
		hi, n := binary.Varint(pos[len("WM1"):])
		if n <= 0 {
			t.Fatalf("position %x: no watermark", pos)
		}
		return hi
	}
	// At parallelism 2: subtask 0 (keys 0, 2) read seq 1 and 2 of both
	// (highest time 2000), subtask 1 (keys 1, 3) seq 1 (1000).
	hi2 := highest([][]byte{position(0, 2, 2), position(1, 2, 1)})
	lo2 := highest([][]byte{position(0, 2, 1), position(1, 2, 2)})
	if hi2 != 1000 || lo2 != 1000 {
		t.Errorf("highest = %d and %d, want the lower of the two subtasks', 1000", hi2, lo2)
	}
	// At parallelism 3, one subtask read nothing: no watermark, in any order.
	// Positions belong to their subtask: permute how much each one read.
	for _, order := range [][]int{{0, 1, 2}, {2, 0, 1}, {0, 2, 1}} {
		positions := make([][]byte, 3)
		for i, o := range order {
			positions[i] = position(i, 3, []int{2, 1, 0}[o])
		}
		if got := highest(positions); got != weir.NoWatermark {
			t.Errorf("reads %v: highest = %d, want NoWatermark", order, got)
		}
	}
}
