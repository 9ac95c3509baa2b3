package sources

import (
	"context"
	"slices"
	"testing"
)

func TestSlice(t *testing.T) {
	for _, n := range []int{0, 1, 2, 5, 12} {
		values := make([]int, n)
		for i := range values {
			values[i] = i * 10
		}
		for p := 1; p <= 5; p++ {
			for _, batch := range []int{1, 3, 100} {
				outs := readEach(t, Slice(values), p, batch)
				for i, got := range outs {
					var want []int
					for j := i; j < n; j += p {
						want = append(want, values[j])
					}
					if !slices.Equal(got, want) {
						t.Errorf("n=%d p=%d batch=%d subtask %d: got %v, want %v", n, p, batch, i, got, want)
					}
				}
			}
		}
	}
}

func TestSliceCopiesInput(t *testing.T) {
	values := []string{"a", "b"}
	src := Slice(values)
	values[0] = "changed"
	if got := readAll(t, src, 0, 1, 10); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("got %v; want [a b]", got)
	}
}

// TestZeroCapacityBuffer checks that a Read handed a buffer without spare
// capacity still makes progress, with batches of defaultBatch.
func TestZeroCapacityBuffer(t *testing.T) {
	r, err := Slice(make([]int, 1000)).Open(context.Background(), subtask(0, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := r.Read(context.Background(), nil)
	if err != nil || len(got) != defaultBatch {
		t.Fatalf("Read(nil) = %d records, %v; want %d, nil", len(got), err, defaultBatch)
	}
}
