package integration

import (
	"context"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/weirstream/weir"
	"github.com/weirstream/weir/engine/checkpoint"
	"github.com/weirstream/weir/sinks"
	"github.com/weirstream/weir/storage"
)

// Incremental checkpoints: a keyed state of stateKeys keys is loaded, then
// ten phases each rewrite 1% of the keys at random, one phase between two
// checkpoints. Only SSTables that storage lacks are uploaded, so the ten
// checkpoints together must upload far less than ten full snapshots.

const (
	stateKeys    = 200_000
	valueBytes   = 100
	changePhases = 10
)

type kv struct {
	Key   int64
	Value string
}

// phasedSource emits every key once, then, after each barrier, 1% of the
// keys with new values; it ends after the last phase. One subtask.
type phasedSource struct {
	mu     sync.Mutex
	loaded int   // barrier count when the load was complete (0: not yet)
	phases []int // barrier count ending each change phase
}

func (s *phasedSource) Open(context.Context, weir.SubtaskInfo) (weir.SourceReader[kv], error) {
	return &phasedReader{src: s, rng: rand.New(rand.NewPCG(1, 2))}, nil
}

type phasedReader struct {
	src      *phasedSource
	rng      *rand.Rand
	next     int64 // next key of the current phase
	phase    int   // 0: load; 1..changePhases: changes
	todo     int   // records left in the current change phase
	barriers int
	waiting  bool // phase done, waiting for a barrier
}

func (r *phasedReader) value() string {
	var b [valueBytes / 2]byte
	for i := range b {
		b[i] = byte(r.rng.Uint32())
	}
	return hex.EncodeToString(b[:])
}

func (r *phasedReader) Read(ctx context.Context, buf []kv) ([]kv, error) {
	if r.waiting {
		if r.phase > changePhases {
			return buf, io.EOF
		}
		time.Sleep(time.Millisecond)
		return buf, nil
	}
	for len(buf) < cap(buf) {
		switch {
		case r.phase == 0 && r.next < stateKeys:
			buf = append(buf, kv{Key: r.next, Value: r.value()})
			r.next++
		case r.phase > 0 && r.todo > 0:
			buf = append(buf, kv{Key: r.rng.Int64N(stateKeys), Value: r.value()})
			r.todo--
		default:
			r.waiting = true
			return buf, nil
		}
	}
	return buf, nil
}

// Position is called at every barrier: the barrier ends the phase.
func (r *phasedReader) Position() ([]byte, error) {
	r.barriers++
	if !r.waiting || r.phase > changePhases {
		return nil, nil
	}
	r.src.mu.Lock()
	if r.phase == 0 {
		r.src.loaded = r.barriers
	} else {
		r.src.phases = append(r.src.phases, r.barriers)
	}
	r.src.mu.Unlock()
	r.phase++
	r.todo = stateKeys / 100
	r.waiting = r.phase > changePhases
	return nil, nil
}

func (r *phasedReader) Close() error { return nil }

func TestIncrementalCheckpointsUploadOnlyNewTables(t *testing.T) {
	store, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		byID  = map[uint64]int64{}
		sizes = map[uint64]int64{}
	)
	src := &phasedSource{}
	job := weir.NewJob("incremental", weir.DefaultParallelism(1), weir.StateDir(t.TempDir()),
		weir.Checkpoints(weir.CheckpointConfig{
			Store:  store,
			Retain: 100,
			Policy: checkpoint.Policy{Interval: 200 * time.Millisecond},
			OnComplete: func(st weir.CheckpointStats) {
				mu.Lock()
				byID[st.ID] = st.Uploaded
				sizes[st.ID] = st.Size
				mu.Unlock()
			},
		}))
	in := weir.From(job, "changes", weir.Source[kv](src))
	keyed := weir.KeyBy(in, func(r kv) int64 { return r.Key })
	out := weir.Process(keyed, "store", func(ctx weir.KeyedContext[int64], r kv, _ weir.Emitter[int64]) error {
		weir.Value[string](ctx, "v").Set(r.Value)
		return nil
	})
	weir.To(out, "discard", sinks.Discard[int64]())
	if err := job.Run(context.Background()); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(src.phases) != changePhases {
		t.Fatalf("%d change phases ended at a barrier, want %d", len(src.phases), changePhases)
	}
	changed := float64(stateKeys/100) * (8 + valueBytes) // key and value bytes rewritten per phase
	var uploaded, full int64
	for i, id := range src.phases {
		up, ok := byID[uint64(id)]
		if !ok {
			t.Fatalf("checkpoint %d (end of phase %d) did not complete", id, i+1)
		}
		uploaded += up
		full += sizes[uint64(id)]
		t.Logf("checkpoint %d: uploaded %d bytes of %d (%.2f × the changed bytes)", id, up, sizes[uint64(id)], float64(up)/changed)
	}
	ratio := float64(uploaded) / float64(full)
	t.Logf("%d checkpoints uploaded %d bytes; %d full snapshots would upload %d: %.1f%%", changePhases, uploaded, changePhases, full, 100*ratio)
	if full == 0 || ratio >= 0.05 {
		t.Fatalf("incremental checkpoints uploaded %.1f%% of full snapshots, want under 5%%", 100*ratio)
	}
}
