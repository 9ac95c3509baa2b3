package sources

import (
	"context"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSequenceConfig(t *testing.T) {
	tests := []struct {
		cfg  SequenceConfig
		want string // "" = valid
	}{
		{SequenceConfig{Keys: 1}, ""},
		{SequenceConfig{Keys: 3, Count: 10, Rate: 1.5}, ""},
		{SequenceConfig{Keys: 0, Count: 10}, "SequenceConfig.Keys must be > 0, got 0"},
		{SequenceConfig{Keys: -2, Count: 10}, "SequenceConfig.Keys must be > 0, got -2"},
		{SequenceConfig{Keys: 1, Count: -1}, "SequenceConfig.Count must be >= 0, got -1"},
		{SequenceConfig{Keys: 1, Rate: -1}, "SequenceConfig.Rate must be a finite number >= 0, got -1"},
		{SequenceConfig{Keys: 1, Rate: math.NaN()}, "SequenceConfig.Rate must be a finite number >= 0, got NaN"},
		{SequenceConfig{Keys: 1, Rate: math.Inf(1)}, "SequenceConfig.Rate must be a finite number >= 0, got +Inf"},
		{SequenceConfig{Keys: 4, Count: math.MaxInt64}, "Keys*Count overflows int64"},
	}
	for _, tc := range tests {
		r, err := Sequence(tc.cfg).Open(context.Background(), subtask(0, 1))
		if tc.want == "" {
			if err != nil {
				t.Errorf("%+v: Open: %v", tc.cfg, err)
			} else {
				r.Close()
			}
			continue
		}
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: Open = %v; want ErrConfig with %q", tc.cfg, err, tc.want)
		}
	}
}

func TestSequence(t *testing.T) {
	for _, keys := range []int{1, 3, 10} {
		for _, count := range []int64{0, 1, 5} {
			for p := 1; p <= 4; p++ {
				for _, batch := range []int{1, 7, 64} {
					cfg := SequenceConfig{Keys: keys, Count: count}
					for i, got := range readEach(t, Sequence(cfg), p, batch) {
						var want []Seq
						for seq := int64(1); seq <= count; seq++ {
							for key := int64(i); key < int64(keys); key += int64(p) {
								want = append(want, Seq{Key: key, Seq: seq})
							}
						}
						if !slices.Equal(got, want) {
							t.Errorf("%+v p=%d batch=%d subtask %d:\ngot  %v\nwant %v", cfg, p, batch, i, got, want)
						}
					}
				}
			}
		}
	}
}

// fakeClock drives a rate-limited reader: sleeping advances the time by the
// requested duration plus overshoot, as a loaded machine would.
type fakeClock struct {
	t         time.Time
	overshoot time.Duration
	sleeps    []time.Duration
}

func (c *fakeClock) now() time.Time { return c.t }

func (c *fakeClock) sleep(ctx context.Context, d time.Duration) error {
	c.sleeps = append(c.sleeps, d)
	c.t = c.t.Add(d + c.overshoot)
	return ctx.Err()
}

func openFake(t *testing.T, cfg SequenceConfig, i, p int, clock *fakeClock) *sequenceReader {
	t.Helper()
	r, err := Sequence(cfg).Open(context.Background(), subtask(i, p))
	if err != nil {
		t.Fatal(err)
	}
	sr := r.(*sequenceReader)
	sr.now, sr.sleep = clock.now, clock.sleep
	return sr
}

// runFake reads r to the end and returns the fake time it took. It checks
// that the reader is never ahead of schedule.
func runFake(t *testing.T, r *sequenceReader, clock *fakeClock, batch int, rate float64) time.Duration {
	t.Helper()
	start := clock.t
	buf := make([]Seq, 0, batch)
	var produced int64
	for reads := 0; ; reads++ {
		if reads > 1_000_000 {
			t.Fatal("no io.EOF")
		}
		got, err := r.Read(context.Background(), buf[:0])
		produced += int64(len(got))
		// Record k (0-based) is due k/rate seconds after the start.
		if allowed := int64(clock.t.Sub(start).Seconds()*rate) + 1; produced > allowed {
			t.Fatalf("at %v: %d records emitted, only %d due", clock.t.Sub(start), produced, allowed)
		}
		if err != nil {
			return clock.t.Sub(start)
		}
	}
}

func TestSequenceRateNoDrift(t *testing.T) {
	tests := []struct {
		name      string
		rate      float64
		batch     int
		overshoot time.Duration
	}{
		{"exact sleeps", 1000, 1, 0},
		{"oversleeping by 30%", 1000, 1, 300 * time.Microsecond},
		{"oversleeping a lot", 1000, 8, 5 * time.Millisecond},
		{"large batches", 10000, 256, 100 * time.Microsecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := &fakeClock{t: time.Unix(1000, 0), overshoot: tc.overshoot}
			cfg := SequenceConfig{Keys: 1, Count: 1000, Rate: tc.rate}
			took := runFake(t, openFake(t, cfg, 0, 1, clock), clock, tc.batch, tc.rate)
			// The last record (999) is due 999/rate after the start.
			ideal := time.Duration(999 / tc.rate * float64(time.Second))
			if took < ideal || took > ideal+tc.overshoot+time.Millisecond {
				t.Errorf("1000 records at %v/s took %v; want %v (+ one overshoot of %v)", tc.rate, took, ideal, tc.overshoot)
			}
		})
	}
}

func TestSequenceRateSleepsAreShort(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	r := openFake(t, SequenceConfig{Keys: 1, Count: 3, Rate: 1}, 0, 1, clock)
	buf := make([]Seq, 0, 10)
	var empty int
	for {
		got, err := r.Read(context.Background(), buf[:0])
		if len(got) == 0 && err == nil {
			empty++
		}
		if err != nil {
			break
		}
	}
	for _, d := range clock.sleeps {
		if d <= 0 || d > maxWait {
			t.Errorf("slept %v; want in (0, %v]", d, maxWait)
		}
	}
	// Two records due a second apart: about 20 empty batches per second.
	if empty < 30 || empty > 42 {
		t.Errorf("%d empty batches over 2 s; want about 40", empty)
	}
}

// TestSequenceRateShare checks that subtasks owning different numbers of keys
// get proportional rates and finish together.
func TestSequenceRateShare(t *testing.T) {
	cfg := SequenceConfig{Keys: 3, Count: 100, Rate: 300}
	for i, owned := range []float64{2, 1} { // p = 2: keys {0, 2} and {1}
		clock := &fakeClock{t: time.Unix(1000, 0)}
		rate := cfg.Rate * owned / float64(cfg.Keys)
		took := runFake(t, openFake(t, cfg, i, 2, clock), clock, 16, rate)
		if took < 980*time.Millisecond || took > time.Second {
			t.Errorf("subtask %d/2 took %v; want about 1 s", i, took)
		}
	}
	// A subtask without keys ends at once.
	clock := &fakeClock{t: time.Unix(1000, 0)}
	if took := runFake(t, openFake(t, cfg, 3, 4, clock), clock, 16, 1); took != 0 {
		t.Errorf("subtask without keys took %v", took)
	}
}

// TestSequenceRateRealClock runs two subtasks against the real clock.
func TestSequenceRateRealClock(t *testing.T) {
	cfg := SequenceConfig{Keys: 4, Count: 100, Rate: 2000} // 400 records: 200 ms
	start := time.Now()
	var wg sync.WaitGroup
	outs := make([][]Seq, 2)
	for i := range outs {
		wg.Go(func() { outs[i] = readAll(t, Sequence(cfg), i, 2, 16) })
	}
	wg.Wait()
	took := time.Since(start)
	if n := len(outs[0]) + len(outs[1]); n != 400 {
		t.Fatalf("got %d records; want 400", n)
	}
	if took < 190*time.Millisecond || took > time.Second {
		t.Errorf("400 records at 2000/s took %v; want about 200 ms", took)
	}
}

func TestSequenceReadDoesNotAllocate(t *testing.T) {
	r, err := Sequence(SequenceConfig{Keys: 10, Count: math.MaxInt64 / 10}).Open(context.Background(), subtask(1, 3))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	buf := make([]Seq, 0, 1024)
	ctx := context.Background()
	if allocs := testing.AllocsPerRun(100, func() { buf, _ = r.Read(ctx, buf[:0]) }); allocs != 0 {
		t.Errorf("Read allocates %v times per batch; want 0", allocs)
	}
}

func BenchmarkSequence(b *testing.B) {
	for _, batch := range []int{64, 1024} {
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) {
			r, err := Sequence(SequenceConfig{Keys: 1000, Count: math.MaxInt64 / 1000}).Open(context.Background(), subtask(1, 4))
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			buf := make([]Seq, 0, batch)
			ctx := context.Background()
			b.ReportAllocs()
			var n int
			for b.Loop() {
				buf, _ = r.Read(ctx, buf[:0])
				n += len(buf)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/record")
		})
	}
}
