package sinks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/weirstream/weir"
)

func subtask(i, p int) weir.SubtaskInfo {
	return weir.SubtaskInfo{Job: "test", Operator: "sink", UID: "sink", Index: i, Parallelism: p, MaxParallelism: 128}
}

func open[T any](t *testing.T, s weir.Sink[T], i, p int) weir.SinkWriter[T] {
	t.Helper()
	w, err := s.Open(context.Background(), subtask(i, p))
	if err != nil {
		t.Fatalf("Open(subtask %d/%d): %v", i, p, err)
	}
	return w
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestBadSubtaskInfo(t *testing.T) {
	sinks := map[string]weir.Sink[int]{
		"print":      Print[int](&bytes.Buffer{}),
		"json files": JSONFiles[int](t.TempDir()),
		"collect":    Collect[int](),
		"discard":    Discard[int](),
	}
	for name, s := range sinks {
		for _, tc := range []struct {
			index, p int
			want     string
		}{
			{0, 0, "parallelism must be >= 1, got 0"},
			{3, 3, "subtask index 3 out of range [0, 3)"},
		} {
			_, err := s.Open(context.Background(), subtask(tc.index, tc.p))
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), name+": "+tc.want) {
				t.Errorf("%s: Open(index %d, p %d) = %v; want ErrConfig with %q", name, tc.index, tc.p, err, tc.want)
			}
		}
	}
}

type point struct{ X, Y int }

func TestPrint(t *testing.T) {
	tests := []struct {
		name     string
		index, p int
		batches  [][]any
		want     string
	}{
		{"parallelism 1 has no prefix", 0, 1, [][]any{{1, "two"}, {point{3, 4}}}, "1\ntwo\n{3 4}\n"},
		{"parallelism 3 prefixes index+1", 1, 3, [][]any{{"a", "b"}}, "2> a\n2> b\n"},
		{"subtask 10", 9, 12, [][]any{{1.5}}, "10> 1.5\n"},
		{"empty batch writes nothing", 0, 2, [][]any{{}}, ""},
		{"nil", 0, 1, [][]any{{nil}}, "<nil>\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := open(t, Print[any](&buf), tc.index, tc.p)
			for _, b := range tc.batches {
				must(t, w.Write(b))
			}
			must(t, w.Finish())
			must(t, w.Close())
			if got := buf.String(); got != tc.want {
				t.Errorf("got %q; want %q", got, tc.want)
			}
		})
	}
}

// unsafeWriter fails the test when two writes overlap; bytes.Buffer alone
// would only be caught by the race detector.
type unsafeWriter struct {
	t      *testing.T
	inside sync.Mutex
	buf    bytes.Buffer
}

func (w *unsafeWriter) Write(p []byte) (int, error) {
	if !w.inside.TryLock() {
		w.t.Error("concurrent Write calls")
		return 0, errors.New("concurrent write")
	}
	defer w.inside.Unlock()
	return w.buf.Write(p)
}

func TestPrintConcurrentSubtasks(t *testing.T) {
	out := &unsafeWriter{t: t}
	sink := Print[string](out)
	const p, batches = 4, 200
	long := strings.Repeat("x", printChunk/3) // batches span several chunks
	var wg sync.WaitGroup
	for i := range p {
		w := open(t, sink, i, p)
		wg.Go(func() {
			for b := range batches {
				batch := []string{fmt.Sprint(b), long, fmt.Sprint(b)}
				if err := w.Write(batch); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(out.buf.String(), "\n"), "\n")
	if len(lines) != p*batches*3 {
		t.Fatalf("got %d lines; want %d", len(lines), p*batches*3)
	}
	perSubtask := map[string]int{}
	for _, l := range lines {
		prefix, rest, ok := strings.Cut(l, "> ")
		if !ok || len(prefix) != 1 || (rest != long && strings.Trim(rest, "0123456789") != "") {
			t.Fatalf("malformed line %.40q", l)
		}
		perSubtask[prefix]++
	}
	for i := 1; i <= p; i++ {
		if n := perSubtask[fmt.Sprint(i)]; n != batches*3 {
			t.Errorf("subtask %d: %d lines; want %d", i, n, batches*3)
		}
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestPrintError(t *testing.T) {
	w := open(t, Print[int](failingWriter{}), 0, 1)
	if err := w.Write([]int{1}); err == nil || err.Error() != "sinks: print: disk full" {
		t.Errorf("Write = %v; want sinks: print: disk full", err)
	}
}

func TestCollect(t *testing.T) {
	c := Collect[int]()
	const p, per = 4, 1000
	var wg sync.WaitGroup
	for i := range p {
		w := open(t, weir.Sink[int](c), i, p)
		wg.Go(func() {
			for j := range per {
				if err := w.Write([]int{i*per + j}); err != nil {
					t.Error(err)
				}
				_ = c.Len()
			}
			if i%2 == 0 {
				must(t, w.Finish())
			}
			must(t, w.Close())
		})
	}
	wg.Wait()
	got := c.Values()
	if len(got) != p*per || c.Len() != p*per {
		t.Fatalf("got %d values; want %d", len(got), p*per)
	}
	// Arrival order: each subtask's records in its order.
	last := map[int]int{}
	for _, v := range got {
		i := v / per
		if prev, ok := last[i]; ok && v <= prev {
			t.Fatalf("subtask %d: %d arrived after %d", i, v, prev)
		}
		last[i] = v
	}
	if c.Finished() != p/2 {
		t.Errorf("Finished() = %d; want %d", c.Finished(), p/2)
	}
	got[0] = -1
	if c.Values()[0] == -1 {
		t.Error("Values does not return a copy")
	}
}

func TestCollectDoesNotRetainBatch(t *testing.T) {
	c := Collect[int]()
	w := open(t, weir.Sink[int](c), 0, 1)
	batch := []int{1, 2}
	must(t, w.Write(batch))
	batch[0] = 9 // the runtime reuses batches
	if got := c.Values(); got[0] != 1 {
		t.Errorf("Values() = %v; want [1 2]", got)
	}
}

func TestDiscard(t *testing.T) {
	d := Discard[string]()
	var wg sync.WaitGroup
	for i := range 3 {
		w := open(t, weir.Sink[string](d), i, 3)
		wg.Go(func() {
			for range 100 {
				must(t, w.Write(make([]string, 7)))
			}
			must(t, w.Finish())
			must(t, w.Close())
		})
	}
	wg.Wait()
	if d.Count() != 3*100*7 {
		t.Errorf("Count() = %d; want %d", d.Count(), 3*100*7)
	}
}
