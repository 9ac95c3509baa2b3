package sources

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir"
)

func TestBadSubtaskInfo(t *testing.T) {
	srcs := map[string]func(weir.SubtaskInfo) error{
		"slice": func(info weir.SubtaskInfo) error {
			_, err := Slice([]int{1}).Open(context.Background(), info)
			return err
		},
		"sequence": func(info weir.SubtaskInfo) error {
			_, err := Sequence(SequenceConfig{Keys: 1}).Open(context.Background(), info)
			return err
		},
		"lines": func(info weir.SubtaskInfo) error {
			_, err := Lines("/nonexistent").Open(context.Background(), info)
			return err
		},
		"words": func(info weir.SubtaskInfo) error {
			_, err := Words(WordsConfig{}).Open(context.Background(), info)
			return err
		},
	}
	infos := []struct {
		index, p int
		want     string
	}{
		{0, 0, "parallelism must be >= 1, got 0"},
		{-1, 2, "subtask index -1 out of range [0, 2)"},
		{2, 2, "subtask index 2 out of range [0, 2)"},
	}
	for name, open := range srcs {
		for _, tc := range infos {
			err := open(subtask(tc.index, tc.p))
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), name+": "+tc.want) {
				t.Errorf("%s: Open(index %d, p %d) = %v; want ErrConfig with %q", name, tc.index, tc.p, err, tc.want)
			}
		}
	}
}

// TestCancelled checks that every reader returns the context's error when
// its context is cancelled.
func TestCancelled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.txt")
	if err := os.WriteFile(path, []byte(strings.Repeat("line\n", 1000)), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(ctx context.Context) (func() error, func() error, error){
		"slice":              openFunc(Slice(make([]int, 1000))),
		"sequence":           openFunc(Sequence(SequenceConfig{Keys: 10, Count: 1000})),
		"sequence with rate": openFunc(Sequence(SequenceConfig{Keys: 10, Count: 1000, Rate: 0.001})),
		"lines":              openFunc(Lines(path)),
		"words":              openFunc(Words(WordsConfig{})),
	}
	for name, open := range cases {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			read, closeFn, err := open(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer closeFn()
			if err := read(); err != nil {
				t.Fatalf("first Read: %v", err)
			}
			cancel()
			if err := read(); !errors.Is(err, context.Canceled) {
				t.Fatalf("Read after cancel = %v; want context.Canceled", err)
			}
		})
	}
}

func openFunc[T any](src weir.Source[T]) func(ctx context.Context) (func() error, func() error, error) {
	return func(ctx context.Context) (func() error, func() error, error) {
		r, err := src.Open(ctx, subtask(0, 1))
		if err != nil {
			return nil, nil, err
		}
		buf := make([]T, 0, 10)
		read := func() error {
			_, err := r.Read(ctx, buf[:0])
			return err
		}
		return read, r.Close, nil
	}
}

// TestCancelWhileSleeping checks that a rate-limited Read blocked in its
// sleep returns promptly on cancel.
func TestCancelWhileSleeping(t *testing.T) {
	// 1 record per 100 s: the first is due at once, the second never in this test.
	r, err := Sequence(SequenceConfig{Keys: 1, Count: 10, Rate: 0.01}).Open(context.Background(), subtask(0, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	sr := r.(*sequenceReader)
	ctx, cancel := context.WithCancel(context.Background())
	buf := make([]Seq, 0, 10)
	if got, err := sr.Read(ctx, buf); err != nil || len(got) != 1 {
		t.Fatalf("first Read = %v, %v; want 1 record", got, err)
	}
	cancelled := make(chan time.Time, 1)
	time.AfterFunc(5*time.Millisecond, func() {
		cancelled <- time.Now()
		cancel()
	})
	start := time.Now()
	for {
		got, err := sr.Read(ctx, buf)
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Read = %v; want context.Canceled", err)
			}
			break
		}
		if len(got) != 0 {
			t.Fatalf("Read returned %v before the second record is due", got)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("no cancellation after %v", d)
		}
	}
	// Well below maxWait: the sleep itself was interrupted.
	if d := time.Since(<-cancelled); d > 40*time.Millisecond {
		t.Errorf("Read returned %v after the cancel; want promptly", d)
	}
}
