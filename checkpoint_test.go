package weir_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weirstream/weir"
	"github.com/weirstream/weir/engine/checkpoint"
	"github.com/weirstream/weir/sinks"
	"github.com/weirstream/weir/sources"
	"github.com/weirstream/weir/storage"
)

type seqOut struct {
	Key  int64 `json:"key"`
	Seq  int64 `json:"seq"`
	Prev int64 `json:"prev"`
}

// sequenceJob is jobs/sequence: the last seq per key in keyed state, every
// record written with the seq before it, into exactly-once JSON files.
func sequenceJob(keys int, count int64, out, stateDir string, cc weir.CheckpointConfig, opts ...weir.JobOption) *weir.Job {
	job := weir.NewJob("sequence", append([]weir.JobOption{weir.DefaultParallelism(2), weir.StateDir(stateDir), weir.Checkpoints(cc)}, opts...)...)
	seq := weir.From(job, "sequence", sources.Sequence(sources.SequenceConfig{Keys: keys, Count: count, Rate: 20000}))
	byKey := weir.KeyBy(seq, func(s sources.Seq) int64 { return s.Key })
	res := weir.Process(byKey, "last-seq", func(ctx weir.KeyedContext[int64], s sources.Seq, out weir.Emitter[seqOut]) error {
		last := weir.Value[int64](ctx, "last")
		prev := last.Get()
		last.Set(s.Seq)
		out.Emit(seqOut{Key: s.Key, Seq: s.Seq, Prev: prev})
		return nil
	})
	weir.To(res, "out", sinks.JSONFiles[seqOut](out))
	return job
}

// exactlyOnce checks that the committed output holds every (key, seq) once
// with prev == seq-1.
func exactlyOnce(t *testing.T, out string, keys int, count int64) {
	t.Helper()
	recs, err := sinks.ReadJSONFiles[seqOut](out)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[[2]int64]int{}
	var dup, bad int
	for _, r := range recs {
		k := [2]int64{r.Key, r.Seq}
		seen[k]++
		if seen[k] > 1 {
			dup++
		}
		if r.Prev != r.Seq-1 {
			bad++
		}
	}
	lost := 0
	for k := int64(0); k < int64(keys); k++ {
		for s := int64(1); s <= count; s++ {
			if seen[[2]int64{k, s}] == 0 {
				lost++
			}
		}
	}
	if lost != 0 || dup != 0 || bad != 0 {
		t.Fatalf("lost %d, duplicated %d, prev != seq-1 in %d of %d records", lost, dup, bad, len(recs))
	}
}

// TestRestoreAfterCancel cancels a job once it completed some checkpoints
// (nothing after the last one is committed), then runs it again: from the
// local snapshot when the state directory is the same, from storage when it
// is not. The output is exactly once either way, also when the bound on
// held writes makes every task wait for its snapshot.
func TestRestoreAfterCancel(t *testing.T) {
	for _, tc := range []struct {
		sameStateDir bool
		maxHeld      int
	}{{true, 0}, {false, 0}, {true, 1}} {
		sameStateDir := tc.sameStateDir
		t.Run(fmt.Sprintf("same state dir=%v max held bytes=%d", sameStateDir, tc.maxHeld), func(t *testing.T) {
			const keys, count = 8, 2000
			dir := t.TempDir()
			out := filepath.Join(dir, "out")
			store := storage.NewMem()
			var mu sync.Mutex
			var completed []uint64
			cc := weir.CheckpointConfig{
				Store:  store,
				Policy: checkpoint.Policy{Interval: 50 * time.Millisecond},
				// 1 byte: every task waits for its snapshot to persist
				// before it processes more input.
				MaxHeldBytes: tc.maxHeld,
				OnComplete: func(st weir.CheckpointStats) {
					mu.Lock()
					completed = append(completed, st.ID)
					mu.Unlock()
				},
			}
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				for {
					mu.Lock()
					n := len(completed)
					mu.Unlock()
					if n >= 3 {
						cancel()
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
			}()
			err := sequenceJob(keys, count, out, filepath.Join(dir, "state1"), cc).Run(ctx)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("first run: %v, want cancelled", err)
			}
			state := filepath.Join(dir, "state1")
			if !sameStateDir {
				state = filepath.Join(dir, "state2")
			}
			if err := sequenceJob(keys, count, out, state, cc).Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			exactlyOnce(t, out, keys, count)
			mu.Lock()
			n := len(completed)
			mu.Unlock()
			if n < 4 {
				t.Fatalf("%d completed checkpoints: want some in each run", n)
			}
			// A finished job restored again produces nothing new.
			before, err := sinks.ReadJSONFiles[seqOut](out)
			if err != nil {
				t.Fatal(err)
			}
			if err := sequenceJob(keys, count, out, state, cc).Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			after, err := sinks.ReadJSONFiles[seqOut](out)
			if err != nil {
				t.Fatal(err)
			}
			if len(after) != len(before) {
				t.Fatalf("rerun of a finished job: %d records, then %d", len(before), len(after))
			}
		})
	}
}

// TestRestoreRefusesAnotherJobShape: a checkpoint holding keyed state of an
// operator at parallelism 2 does not restore into parallelism 3.
// TestRescaleInProcess stops the sequence job at parallelism 2 (a final
// checkpoint), goes on at 3, stops again, and finishes at 1: every
// (key, seq) once with prev = seq-1 across the three runs.
func TestRescaleInProcess(t *testing.T) {
	dir := t.TempDir()
	store := storage.NewMem()
	cc := weir.CheckpointConfig{Store: store, Policy: checkpoint.Policy{Interval: 20 * time.Millisecond}}
	out := filepath.Join(dir, "out")
	const keys, count = 7, 4000
	for _, p := range []int{2, 3} {
		stop := make(chan struct{})
		time.AfterFunc(150*time.Millisecond, func() { close(stop) })
		if err := sequenceJob(keys, count, out, filepath.Join(dir, "s"), cc, weir.DefaultParallelism(p), weir.StopWhen(stop)).Run(context.Background()); err != nil {
			t.Fatalf("parallelism %d: %v", p, err)
		}
		if recs, _ := sinks.ReadJSONFiles[seqOut](out); len(recs) == keys*count {
			t.Fatalf("parallelism %d: the job finished before the stop; nothing left to rescale", p)
		}
	}
	if err := sequenceJob(keys, count, out, filepath.Join(dir, "s"), cc, weir.DefaultParallelism(1)).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	exactlyOnce(t, out, keys, count)
}

// TestRestoreRefusesAnotherJobShape: a checkpoint restores neither with
// another max parallelism (the number of key groups) nor at another
// parallelism of a source that cannot be rescaled.
func TestRestoreRefusesAnotherJobShape(t *testing.T) {
	dir := t.TempDir()
	store := storage.NewMem()
	cc := weir.CheckpointConfig{Store: store, Policy: checkpoint.Policy{Interval: 20 * time.Millisecond}}
	if err := sequenceJob(2, 200, filepath.Join(dir, "out"), filepath.Join(dir, "s"), cc).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	err := sequenceJob(2, 200, filepath.Join(dir, "out"), filepath.Join(dir, "s"), cc, weir.MaxParallelism(64)).Run(context.Background())
	if err == nil || !containsAll(err.Error(), "max parallelism 128", "64") {
		t.Fatalf("restore with another max parallelism: %v", err)
	}

	store = storage.NewMem()
	cc.Store = store
	slice := func(p int) *weir.Job {
		job := weir.NewJob("slice", weir.DefaultParallelism(p), weir.StateDir(filepath.Join(dir, "s2")), weir.Checkpoints(cc))
		weir.To(weir.From(job, "numbers", sources.Slice([]int{1, 2, 3, 4, 5})), "out", sinks.Discard[int]())
		return job
	}
	if err := slice(2).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	err = slice(3).Run(context.Background())
	if err == nil || !containsAll(err.Error(), "numbers", "parallelism 2", "cannot be rescaled") {
		t.Fatalf("restore of a source that cannot be rescaled at another parallelism: %v", err)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
