package engine

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weirstream/weir/barrier"
	"github.com/weirstream/weir/engine/checkpoint"
	"github.com/weirstream/weir/storage"
)

// stuckReader blocks in Read until released or cancelled: its source never
// injects a barrier.
type stuckReader struct{ release <-chan struct{} }

func (s *stuckReader) Read(ctx context.Context, buf []int) ([]int, error) {
	select {
	case <-s.release:
		return buf, nil
	case <-ctx.Done():
		return buf, ctx.Err()
	}
}

func (s *stuckReader) Close() error { return nil }

type countOp struct{ n *atomic.Int64 }

func (c countOp) Push(b []int) error             { c.n.Add(int64(len(b))); return nil }
func (c countOp) Control(ev barrier.Event) error { return nil }

// TestCoordinatorAbortReleasesAlignment: a union of a busy source and a
// source stuck in Read. The busy source's barrier is held at the union's
// gate, waiting for the stuck one's, so the busy source stops; when the
// checkpoint times out, the coordinator's abort releases it and its records
// flow again.
func TestCoordinatorAbortReleasesAlignment(t *testing.T) {
	g := &Graph{}
	busy := AddSource(g, "busy", func(context.Context, *OpContext) (Reader[int], error) {
		return &countingReader{limit: 1 << 40}, nil
	})
	release := make(chan struct{})
	stuck := AddSource(g, "stuck", func(context.Context, *OpContext) (Reader[int], error) {
		return &stuckReader{release: release}, nil
	})
	var n atomic.Int64
	union := AddOperator(g, "count", func(oc *OpContext, next Output[struct{}]) (Output[int], error) {
		return countOp{&n}, nil
	})
	Connect(busy, union, Forward)
	Connect(stuck, union, Forward)
	cfg := Config{
		Parallelism: 1, BatchSize: 16, QueueSize: 2,
		Checkpoint: &CheckpointConfig{
			Store: storage.NewMem(),
			Policy: checkpoint.Policy{
				Interval: 20 * time.Millisecond, Timeout: 100 * time.Millisecond, TolerableFailures: -1,
			},
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, g, cfg) }()
	defer func() {
		cancel()
		close(release)
		<-done
	}()
	// Held back at the first barrier, the busy source would stop for good;
	// with aborts it keeps making progress, one timeout at a time.
	// Wait until a checkpoint timed out (100 ms) while the busy source is
	// held, then for more records; without aborts they never come.
	time.Sleep(300 * time.Millisecond)
	before := n.Load()
	for deadline := time.Now().Add(5 * time.Second); n.Load() <= before; {
		if time.Now().After(deadline) {
			t.Fatalf("records stopped at %d while the stuck source held an alignment: aborts did not release the gate", before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *stuckReader) Position() ([]byte, error) { return nil, nil }
