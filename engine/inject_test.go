package engine

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/weirstream/weir/barrier"
	"github.com/weirstream/weir/statebackend"
)

// countingReader returns 0, 1, 2, ... and its position is how many records
// it returned.
type countingReader struct {
	n, limit int
}

func (c *countingReader) Read(ctx context.Context, buf []int) ([]int, error) {
	for len(buf) < cap(buf) && len(buf) < 7 && c.n < c.limit {
		buf = append(buf, c.n)
		c.n++
	}
	if c.n == c.limit && len(buf) == 0 {
		// Stay alive, idle, until stopped: barriers keep flowing.
		select {
		case <-ctx.Done():
			return buf, ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	return buf, nil
}

func (c *countingReader) Close() error { return nil }

func (c *countingReader) Position() ([]byte, error) {
	return binary.AppendUvarint(nil, uint64(c.n)), nil
}

// barrierLog is an operator that counts the records it saw before every
// barrier.
type barrierLog struct {
	mu      *sync.Mutex
	atCkpt  map[uint64]int
	records int
}

func (b *barrierLog) Push(batch []Keyed[int, int]) error {
	b.records += len(batch)
	return nil
}

func (b *barrierLog) Control(ev barrier.Event) error {
	if ev.Kind == barrier.Barrier {
		b.mu.Lock()
		b.atCkpt[ev.Checkpoint] += b.records
		b.mu.Unlock()
	}
	return nil
}

// TestInjectedBarriersCutConsistently injects barriers at two source
// subtasks while records flow through a keyed exchange into 3 subtasks, and
// checks each checkpoint's cut: the records the keyed subtasks saw before
// barrier c, summed, equal the sources' positions at barrier c.
func TestInjectedBarriersCutConsistently(t *testing.T) {
	const checkpoints = 8
	g := &Graph{}
	src := AddSource(g, "src", func(context.Context, *OpContext) (Reader[int], error) {
		return &countingReader{limit: 30000}, nil
	})
	src.Parallelism = 2
	var mu sync.Mutex
	atCkpt := map[uint64]int{}
	k := AddOperator(g, "log", func(oc *OpContext, next Output[struct{}]) (Output[Keyed[int, int]], error) {
		return &barrierLog{mu: &mu, atCkpt: atCkpt}, nil
	})
	k.Parallelism = 3
	ConnectKeyed(src, k, func(v int) int { return v }, statebackend.MustCodecFor[int]())

	inject := map[string]chan uint64{}
	for i := 0; i < 2; i++ {
		inject[fmt.Sprint(i)] = make(chan uint64, checkpoints)
	}
	positions := map[uint64]int{}
	reported := make(chan struct{}, 2*checkpoints)
	hooks := &CheckpointHooks{
		Inject: func(uid string, i int) <-chan uint64 { return inject[fmt.Sprint(i)] },
		Positions: func(p SourcePosition) {
			n, _ := binary.Uvarint(p.Position)
			mu.Lock()
			positions[p.Checkpoint] += int(n)
			mu.Unlock()
			reported <- struct{}{}
		},
	}
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Run(context.Background(), g, Config{Parallelism: 2, BatchSize: 16, QueueSize: 2, Stop: stop, Checkpoints: hooks})
	}()
	for c := uint64(1); c <= checkpoints; c++ {
		time.Sleep(2 * time.Millisecond)
		for _, ch := range inject {
			ch <- c
		}
	}
	for range 2 * checkpoints {
		<-reported
	}
	// Let the last barriers travel, then stop.
	time.Sleep(50 * time.Millisecond)
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for c := uint64(1); c <= checkpoints; c++ {
		if atCkpt[c] != positions[c] {
			t.Fatalf("checkpoint %d: keyed subtasks saw %d records before the barrier, sources were at %d", c, atCkpt[c], positions[c])
		}
	}
	if positions[checkpoints] == 0 {
		t.Fatal("no records before the last checkpoint")
	}
}
