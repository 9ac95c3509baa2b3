package engine

import (
	"context"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weirstream/weir/barrier"
	"github.com/weirstream/weir/engine/checkpoint"
	"github.com/weirstream/weir/statebackend"
	"github.com/weirstream/weir/storage"
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
	total   *atomic.Int64 // records seen by all subtasks
}

func (b *barrierLog) Push(batch []Keyed[int, int]) error {
	b.records += len(batch)
	b.total.Add(int64(len(batch)))
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
	var total atomic.Int64
	k := AddOperator(g, "log", func(oc *OpContext, next Output[struct{}]) (Output[Keyed[int, int]], error) {
		return &barrierLog{mu: &mu, atCkpt: atCkpt, total: &total}, nil
	})
	k.Parallelism = 3
	ConnectKeyed(src, k, func(v int) int { return v }, statebackend.MustCodecFor[int]())

	store := storage.NewMem()
	ckpt := &CheckpointConfig{Store: store, Retain: 1000, Policy: checkpoint.Policy{Interval: 3 * time.Millisecond}}
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Run(context.Background(), g, Config{Parallelism: 2, BatchSize: 16, QueueSize: 2, Stop: stop, Checkpoint: ckpt})
	}()
	ctx := context.Background()
	for {
		ids, err := storage.ListCheckpoints(ctx, store)
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) >= checkpoints {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("job ended before %d checkpoints: %v", checkpoints, err)
		case <-time.After(time.Millisecond):
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ids, err := storage.ListCheckpoints(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	var last int
	for _, id := range ids {
		m, err := storage.ReadManifest(ctx, store, id)
		if err != nil {
			t.Fatal(err)
		}
		var pos int
		for _, op := range m.Operators {
			if op.UID != "src" {
				continue
			}
			for _, st := range op.Subtasks {
				n, _ := binary.Uvarint(st.SourcePosition)
				pos += int(n)
			}
		}
		if atCkpt[id] != pos {
			t.Fatalf("checkpoint %d: keyed subtasks saw %d records before the barrier, sources were at %d", id, atCkpt[id], pos)
		}
		last = pos
	}
	// The stop may come before the sources read everything; the final
	// checkpoint covers every record read either way.
	if n := int(total.Load()); last != n || n == 0 || n > 2*30000 {
		t.Fatalf("final checkpoint: sources at %d, the keyed subtasks saw %d records in all (at most %d)", last, n, 2*30000)
	}
}
