package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weirstream/weir/barrier"
	"github.com/weirstream/weir/engine/checkpoint"
	"github.com/weirstream/weir/storage"
)

type boundedReader struct{ n, limit int }

func (r *boundedReader) Read(ctx context.Context, buf []int) ([]int, error) {
	for len(buf) < cap(buf) && r.n < r.limit {
		buf = append(buf, r.n)
		r.n++
	}
	if len(buf) == 0 {
		return buf, io.EOF
	}
	return buf, nil
}
func (r *boundedReader) Close() error { return nil }
func (r *boundedReader) Position() ([]byte, error) {
	return binary.AppendUvarint(nil, uint64(r.n)), nil
}

type discardOp struct{}

func (discardOp) Push([]int) error            { return nil }
func (discardOp) Control(barrier.Event) error { return nil }

// restartGraph: a source whose first open fails (attempt 1 fails before any
// checkpoint completes); restored records whether later opens saw a
// restored position.
func restartGraph(failFirst bool) (*Graph, *[]bool) {
	var mu sync.Mutex
	var restored []bool
	opens := 0
	g := &Graph{}
	src := AddSource(g, "src", func(ctx context.Context, oc *OpContext) (Reader[int], error) {
		mu.Lock()
		defer mu.Unlock()
		opens++
		if failFirst && opens == 1 {
			return nil, errors.New("transient failure of attempt 1")
		}
		restored = append(restored, oc.RestoredPosition() != nil)
		start := 0
		if p := oc.RestoredPosition(); p != nil {
			n, _ := binary.Uvarint(p)
			start = int(n)
		}
		return &boundedReader{n: start, limit: 1000}, nil
	})
	src.Parallelism = 1
	sink := AddOperator(g, "sink", func(oc *OpContext, next Output[struct{}]) (Output[int], error) {
		return discardOp{}, nil
	})
	sink.Parallelism = 1
	Connect(src, sink, Rebalance)
	return g, &restored
}

func restartCfg(store storage.BlobStore, mode RestoreMode) Config {
	return Config{
		Parallelism: 1, BatchSize: 16, StateDir: "",
		Checkpoint: &CheckpointConfig{Store: store, Restore: Restore{Mode: mode},
			Policy: checkpoint.Policy{Interval: 5 * time.Millisecond, TolerableFailures: -1}},
	}
}

var restartFlags = &runFlags{restartAttempts: 2, restartDelay: time.Millisecond, restartBackoff: "fixed"}

// --restore none on a store whose only checkpoint is damaged (what the engine's
// own error message recommends): attempt 1 fails before completing a
// checkpoint; the restart must start empty again, not switch to
// --restore latest and fail on the damaged checkpoint.
func TestRestartKeepsRestoreNoneWithDamagedCheckpoint(t *testing.T) {
	ctx := context.Background()
	store := storage.NewMem()
	if err := store.Put(ctx, storage.ManifestObject(1), bytes.NewReader([]byte("not a manifest"))); err != nil {
		t.Fatal(err)
	}
	g, _ := restartGraph(true)
	cfg := restartCfg(store, RestoreNone)
	cfg.StateDir = t.TempDir()
	err := runWithRestarts(ctx, g, cfg, restartFlags, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("restart after a transient failure failed: %v", err)
	}
}

// --restore none on a store holding a valid checkpoint of an earlier run:
// the restart after attempt 1 failed must not resurrect that checkpoint.
func TestRestartKeepsRestoreNone(t *testing.T) {
	ctx := context.Background()
	store := storage.NewMem()
	// An earlier run of the job leaves a valid (final) checkpoint.
	g0, _ := restartGraph(false)
	cfg0 := restartCfg(store, RestoreLatest)
	cfg0.StateDir = t.TempDir()
	if err := Run(ctx, g0, cfg0); err != nil {
		t.Fatal(err)
	}
	g, restored := restartGraph(true)
	cfg := restartCfg(store, RestoreNone)
	cfg.StateDir = t.TempDir()
	if err := runWithRestarts(ctx, g, cfg, restartFlags, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	for i, r := range *restored {
		if r {
			t.Fatalf("attempt %d of a --restore none run restored the earlier run's checkpoint", i+2)
		}
	}
}

// Retention after --restore none keeps the store's newest checkpoints (up
// to Retain with the new one), not only the new one.
func TestRetentionAfterRestoreNoneKeepsOlderCheckpoints(t *testing.T) {
	ctx := context.Background()
	store := storage.NewMem()
	run := func(mode RestoreMode) {
		t.Helper()
		g, _ := restartGraph(false)
		cfg := restartCfg(store, mode)
		cfg.StateDir = t.TempDir()
		if err := Run(ctx, g, cfg); err != nil {
			t.Fatal(err)
		}
	}
	run(RestoreLatest)
	run(RestoreLatest)
	before, _ := storage.ListCheckpoints(ctx, store)
	run(RestoreNone)
	after, _ := storage.ListCheckpoints(ctx, store)
	t.Logf("checkpoints before the --restore none run: %v, after: %v (Retain %d)", before, after, DefaultRetain)
	if len(after) < min(len(before)+1, DefaultRetain) {
		t.Fatalf("retention kept %v of %v plus the new one, want the newest %d", after, before, DefaultRetain)
	}
}

// plainReader is a boundedReader without a position.
type plainReader struct{ r boundedReader }

func (p *plainReader) Read(ctx context.Context, buf []int) ([]int, error) { return p.r.Read(ctx, buf) }
func (p *plainReader) Close() error                                       { return nil }

type countIntsOp struct{ n *int }

func (c countIntsOp) Push(b []int) error        { *c.n += len(b); return nil }
func (countIntsOp) Control(barrier.Event) error { return nil }

// A source whose reader keeps no position would be read again from its
// start after a restore: with checkpoints it is refused.
func TestSourceWithoutPositionRefused(t *testing.T) {
	var n int
	g := &Graph{}
	src := AddSource(g, "src", func(context.Context, *OpContext) (Reader[int], error) {
		return &plainReader{boundedReader{limit: 1000}}, nil
	})
	sink := AddOperator(g, "sink", func(oc *OpContext, next Output[struct{}]) (Output[int], error) {
		return countIntsOp{&n}, nil
	})
	Connect(src, sink, Rebalance)
	cfg := restartCfg(storage.NewMem(), RestoreLatest)
	cfg.StateDir = t.TempDir()
	err := Run(context.Background(), g, cfg)
	if err == nil || !strings.Contains(err.Error(), "no position") || !strings.Contains(err.Error(), `"src"`) {
		t.Fatalf("a source without positions under checkpoints: %v, want an error naming it", err)
	}
}

// A permanent error (a missing topic, a refused password) fails the job at
// once: no restart would cure it.
func TestPermanentErrorIsNotRestarted(t *testing.T) {
	opens := 0
	g := &Graph{}
	src := AddSource(g, "src", func(ctx context.Context, oc *OpContext) (Reader[int], error) {
		opens++
		return nil, Permanent(errors.New("topic does not exist"))
	})
	src.Parallelism = 1
	sink := AddOperator(g, "sink", func(oc *OpContext, next Output[struct{}]) (Output[int], error) {
		return discardOp{}, nil
	})
	sink.Parallelism = 1
	Connect(src, sink, Rebalance)
	cfg := restartCfg(storage.NewMem(), RestoreLatest)
	cfg.StateDir = t.TempDir()
	err := runWithRestarts(context.Background(), g, cfg, restartFlags, slog.New(slog.DiscardHandler))
	if err == nil || !IsPermanent(err) || !strings.Contains(err.Error(), "topic does not exist") {
		t.Fatalf("err = %v, want the permanent error", err)
	}
	if opens != 1 {
		t.Fatalf("the source opened %d times, want 1 (no restart)", opens)
	}
}
