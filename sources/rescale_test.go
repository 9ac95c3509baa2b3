package sources

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/weirstream/weir"
)

// rescaleRun reads src through phases at the parallelisms pars: in every
// phase but the last each subtask reads a random number of batches and
// takes its position; the next phase restores them (Restore at the same
// parallelism, RestoreRescaled at another). The last phase reads to the end.
// It returns every record read, in order per subtask and phase.
func rescaleRun[T any](t *testing.T, rng *rand.Rand, src weir.RescalableSource[T], pars []int) [][]T {
	t.Helper()
	ctx := context.Background()
	var out [][]T
	var positions [][]byte
	for ph, p := range pars {
		next := make([][]byte, p)
		for i := range p {
			info := subtask(i, p)
			var (
				r   weir.SourceReader[T]
				err error
			)
			switch {
			case ph == 0:
				r, err = src.Open(ctx, info)
			case len(positions) == p:
				r, err = src.Restore(ctx, info, positions[i])
			default:
				r, err = src.RestoreRescaled(ctx, info, positions)
			}
			if err != nil {
				t.Fatalf("phase %d, subtask %d of %d: %v", ph, i, p, err)
			}
			batch := 1 + rng.IntN(16)
			reads := rng.IntN(6)
			last := ph == len(pars)-1
			var got []T
			buf := make([]T, 0, batch)
			for n := 0; last || n < reads; n++ {
				b, err := r.Read(ctx, buf[:0])
				got = append(got, b...)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if n > 1_000_000 {
					t.Fatal("no io.EOF")
				}
			}
			out = append(out, got)
			if next[i], err = r.(weir.CheckpointedReader).Position(); err != nil {
				t.Fatal(err)
			}
			_ = r.Close()
		}
		positions = next
	}
	return out
}

// TestRescaleExactlyOnce: the generators read through random chains of
// parallelisms (2 → 4 → 1 → 3 first), restored at every change, return
// every record of an uninterrupted run exactly once, and the sequence each
// key's seqs in order.
func TestRescaleExactlyOnce(t *testing.T) {
	chains := [][]int{{2, 4, 1, 3}, {1, 1, 5, 5, 2}, {3, 2, 3, 4, 6, 1}}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 30 {
		n := 2 + rng.IntN(6)
		c := make([]int, n)
		for i := range c {
			c[i] = 1 + rng.IntN(7)
		}
		chains = append(chains, c)
	}
	for _, chain := range chains {
		t.Run(fmt.Sprint(chain), func(t *testing.T) {
			keys := 1 + rng.IntN(40)
			count := int64(rng.IntN(9))
			seq := Sequence(SequenceConfig{Keys: keys, Count: count}).(*sequenceSource)
			next := map[int64]int64{}
			for _, part := range rescaleRun(t, rng, seq, chain) {
				for _, r := range part {
					if want := next[r.Key] + 1; r.Seq != want {
						t.Fatalf("key %d: seq %d, want %d (keys %d, count %d)", r.Key, r.Seq, want, keys, count)
					}
					next[r.Key] = r.Seq
				}
			}
			for k := range int64(keys) {
				if next[k] != count {
					t.Fatalf("key %d: read up to seq %d, want %d", k, next[k], count)
				}
			}

			lines := int64(rng.IntN(200))
			words := Words(WordsConfig{Lines: lines, WordsPerLine: 2}).(*wordsSource)
			want := map[string]int{}
			for _, l := range readAll[string](t, words, 0, 1, 64) {
				want[l]++
			}
			got := map[string]int{}
			for _, part := range rescaleRun(t, rng, words, chain) {
				for _, l := range part {
					got[l]++
				}
			}
			if !maps.Equal(got, want) {
				t.Fatalf("words: lines read %d times differ from an uninterrupted run (%d lines)", total(got), lines)
			}
		})
	}
}

func total(m map[string]int) int {
	n := 0
	for _, c := range m {
		n += c
	}
	return n
}

// TestRescaledPositionErrors: positions of another source or input are
// refused with the reason.
func TestRescaledPositionErrors(t *testing.T) {
	ctx := context.Background()
	seq := Sequence(SequenceConfig{Keys: 10, Count: 3}).(*sequenceSource)
	r, _ := seq.Open(ctx, subtask(0, 2))
	pos, _ := r.(weir.CheckpointedReader).Position()
	other := Sequence(SequenceConfig{Keys: 11, Count: 3}).(*sequenceSource)
	for _, tc := range []struct {
		name      string
		src       weir.RescalableSource[Seq]
		positions [][]byte
		want      string
	}{
		{"other keys", other, [][]byte{pos, nil}, "sequence of 10 keys, source has 11"},
		{"wrong subtask", seq, [][]byte{nil, pos}, "position of subtask 0 of 2, restoring subtask 1 of 2"},
		{"damaged", seq, [][]byte{pos[:len(pos)-1], nil}, "checksum"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.src.RestoreRescaled(ctx, subtask(0, 3), tc.positions)
			if !errors.Is(err, ErrPosition) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrPosition with %q", err, tc.want)
			}
		})
	}
	// A rescaled reader's position restores at the same parallelism.
	r2, err := seq.RestoreRescaled(ctx, subtask(1, 3), [][]byte{pos, nil})
	if err != nil {
		t.Fatal(err)
	}
	p2, _ := r2.(weir.CheckpointedReader).Position()
	if _, err := seq.Restore(ctx, subtask(1, 3), p2); err != nil {
		t.Fatal(err)
	}
	if _, err := seq.Restore(ctx, subtask(2, 3), p2); err == nil || !strings.Contains(err.Error(), "subtask 1 of 3") {
		t.Fatalf("restoring subtask 1's position into subtask 2: err = %v", err)
	}
}

// TestWordsRescaleThenMoreLines: Lines may grow between runs, also after
// a rescale that left some subtask's part of an old lane empty: the lines
// of the longer text that no run read come later, once each.
func TestWordsRescaleThenMoreLines(t *testing.T) {
	ctx := context.Background()
	short := Words(WordsConfig{Lines: 2, WordsPerLine: 2}).(*wordsSource)
	long := Words(WordsConfig{Lines: 10, WordsPerLine: 2}).(*wordsSource)
	got := map[string]int{}
	// Parallelism 4 reads the 2 lines; rescaled to 2, still 2 lines.
	var pos4 [][]byte
	for i := range 4 {
		r, _ := short.Open(ctx, subtask(i, 4))
		for _, l := range drain(t, r, 8) {
			got[l]++
		}
		pos4 = append(pos4, position(t, r))
	}
	var pos2 [][]byte
	for i := range 2 {
		r, err := short.RestoreRescaled(ctx, subtask(i, 2), pos4)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range drain(t, r, 8) {
			got[l]++
		}
		pos2 = append(pos2, position(t, r))
	}
	// The text grows to 10 lines: the rest comes once.
	for i := range 2 {
		r, err := long.Restore(ctx, subtask(i, 2), pos2[i])
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range drain(t, r, 8) {
			got[l]++
		}
	}
	want := map[string]int{}
	for _, l := range readAll[string](t, long, 0, 1, 64) {
		want[l]++
	}
	if !maps.Equal(got, want) {
		t.Fatalf("read %d lines (%d distinct), want the %d of an uninterrupted run", total(got), len(got), total(want))
	}
}
