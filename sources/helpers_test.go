package sources

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/weirstream/weir"
)

func subtask(i, p int) weir.SubtaskInfo {
	return weir.SubtaskInfo{Job: "test", Operator: "src", UID: "src", Index: i, Parallelism: p, MaxParallelism: 128}
}

// readAll opens subtask i of p and reads it to io.EOF with batches of
// capacity batch, failing the test after maxReads reads.
func readAll[T any](t testing.TB, src weir.Source[T], i, p, batch int) []T {
	t.Helper()
	ctx := context.Background()
	r, err := src.Open(ctx, subtask(i, p))
	if err != nil {
		t.Fatalf("Open(subtask %d/%d): %v", i, p, err)
	}
	defer func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close(subtask %d/%d): %v", i, p, err)
		}
	}()
	var out []T
	buf := make([]T, 0, batch)
	for reads := 0; ; reads++ {
		if reads > 10_000_000 {
			t.Fatalf("subtask %d/%d: no io.EOF after %d reads", i, p, reads)
		}
		got, err := r.Read(ctx, buf[:0])
		if len(got) > batch {
			t.Fatalf("subtask %d/%d: Read returned %d records into a buffer of capacity %d", i, p, len(got), batch)
		}
		out = append(out, got...)
		if errors.Is(err, io.EOF) {
			// A finished reader keeps returning io.EOF and nothing else.
			again, err := r.Read(ctx, buf[:0])
			if len(again) != 0 || !errors.Is(err, io.EOF) {
				t.Fatalf("subtask %d/%d: Read after io.EOF = %d records, %v; want 0, io.EOF", i, p, len(again), err)
			}
			return out
		}
		if err != nil {
			t.Fatalf("subtask %d/%d: Read: %v", i, p, err)
		}
	}
}

// readEach reads every subtask of p and returns their outputs by index.
func readEach[T any](t testing.TB, src weir.Source[T], p, batch int) [][]T {
	t.Helper()
	out := make([][]T, p)
	for i := range p {
		out[i] = readAll(t, src, i, p, batch)
	}
	return out
}
