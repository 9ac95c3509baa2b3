package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/weirstream/weir"
	"github.com/weirstream/weir/engine/checkpoint"
	"github.com/weirstream/weir/sinks"
	"github.com/weirstream/weir/storage"
)

const (
	valueBytes = 100
	keyBytes   = 8 // int64 keys
)

// keysFor is the number of keys of mb MiB of state, counting 116 bytes per
// key (the value, the key and a little overhead), like bench's BenchmarkLargeState.
func keysFor(mb int) int64 { return int64(mb) << 20 / (valueBytes + 16) }

type kv struct {
	Key   int64
	Value string
}

// phasedSource emits every key once, then, after each barrier, 1% of the
// keys (distinct ones, chosen at random) with new values; it ends after the
// last phase. One subtask. Values are random bytes, so the state does not
// compress.
type phasedSource struct {
	keys   int64
	phases int

	mu       sync.Mutex
	loaded   int       // barrier count when the load was complete (0: not yet)
	loadDone time.Time // when the last key of the load was emitted
	ends     []int     // barrier count ending each change phase
	changed  []int64   // distinct keys rewritten in each change phase
	split    []int     // barriers that came in the middle of a change phase
}

func (s *phasedSource) Open(context.Context, weir.SubtaskInfo) (weir.SourceReader[kv], error) {
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], uint64(time.Now().UnixNano()))
	return &phasedReader{
		src:    s,
		rng:    rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2)),
		bytes:  rand.NewChaCha8(seed),
		picked: make([]uint64, (s.keys+63)/64),
	}, nil
}

type phasedReader struct {
	src      *phasedSource
	rng      *rand.Rand    // keys of the change phases
	bytes    *rand.ChaCha8 // values
	random   []byte        // random bytes not used yet
	picked   []uint64      // bit set of the keys rewritten in this phase
	next     int64         // next key of the load
	phase    int           // 0: load; 1..phases: changes
	todo     int64         // records left in the current change phase
	barriers int
	waiting  bool // phase done, waiting for a barrier
}

func (r *phasedReader) value() string {
	if len(r.random) < valueBytes {
		r.random = make([]byte, 1<<16)
		r.bytes.Read(r.random)
	}
	v := string(r.random[:valueBytes])
	r.random = r.random[valueBytes:]
	return v
}

func (r *phasedReader) Read(ctx context.Context, buf []kv) ([]kv, error) {
	if r.waiting {
		if r.phase > r.src.phases {
			return buf, io.EOF
		}
		time.Sleep(time.Millisecond)
		return buf, nil
	}
	for len(buf) < cap(buf) {
		switch {
		case r.phase == 0 && r.next < r.src.keys:
			buf = append(buf, kv{Key: r.next, Value: r.value()})
			r.next++
		case r.phase > 0 && r.todo > 0:
			k := r.rng.Int64N(r.src.keys)
			for r.picked[k/64]&(1<<(k%64)) != 0 {
				k = r.rng.Int64N(r.src.keys)
			}
			r.picked[k/64] |= 1 << (k % 64)
			buf = append(buf, kv{Key: k, Value: r.value()})
			r.todo--
		default:
			r.waiting = true
			if r.phase == 0 {
				r.src.mu.Lock()
				r.src.loadDone = time.Now()
				r.src.mu.Unlock()
			}
			return buf, nil
		}
	}
	return buf, nil
}

// Position is called at every barrier: the barrier after a phase ends it.
func (r *phasedReader) Position() ([]byte, error) {
	r.barriers++
	pos := fmt.Appendf(nil, "phase %d", r.phase)
	if !r.waiting {
		if r.phase > 0 {
			r.src.mu.Lock()
			r.src.split = append(r.src.split, r.barriers)
			r.src.mu.Unlock()
		}
		return pos, nil
	}
	if r.phase > r.src.phases {
		return pos, nil
	}
	r.src.mu.Lock()
	if r.phase == 0 {
		r.src.loaded = r.barriers
	} else {
		r.src.ends = append(r.src.ends, r.barriers)
		r.src.changed = append(r.src.changed, max(r.src.keys/100, 1))
	}
	r.src.mu.Unlock()
	r.phase++
	if r.phase <= r.src.phases {
		r.todo = max(r.src.keys/100, 1)
		clear(r.picked)
		r.waiting = false
	}
	return pos, nil
}

func (r *phasedReader) Close() error { return nil }

// countingStore counts the bytes every Put and PutIfAbsent reads.
type countingStore struct {
	storage.BlobStore
	mu   sync.Mutex
	puts []put // since the last take
}

type put struct {
	name  string
	bytes int64
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingStore) Put(ctx context.Context, name string, r io.Reader) error {
	cr := &countReader{r: r}
	err := c.BlobStore.Put(ctx, name, cr)
	c.record(name, cr.n)
	return err
}

func (c *countingStore) PutIfAbsent(ctx context.Context, name string, r io.Reader) error {
	cr := &countReader{r: r}
	err := c.BlobStore.PutIfAbsent(ctx, name, cr)
	c.record(name, cr.n)
	return err
}

func (c *countingStore) record(name string, n int64) {
	c.mu.Lock()
	c.puts = append(c.puts, put{name, n})
	c.mu.Unlock()
}

// take returns the puts since the last take.
func (c *countingStore) take() []put {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.puts
	c.puts = nil
	return p
}

// completed is one completed checkpoint and the puts made for it: with at
// most one checkpoint in flight (the default policy), the puts between two
// completions.
type completed struct {
	stats weir.CheckpointStats
	puts  []put
}

type jobResult struct {
	src      *phasedSource
	byID     map[uint64]completed
	order    []uint64
	start    time.Time
	end      time.Time
	loadDone time.Time
}

// runJob runs the phased job on store with checkpoints every o.interval;
// it keeps the last phases+3 checkpoints (the one that ended the load, one
// per phase and the final one).
func runJob(ctx context.Context, store storage.BlobStore, o options, phases int, stateDir string) (*jobResult, error) {
	cs := &countingStore{BlobStore: store}
	res := &jobResult{src: &phasedSource{keys: keysFor(o.stateMB), phases: phases}, byID: map[uint64]completed{}}
	var mu sync.Mutex
	cc := weir.CheckpointConfig{
		Store:  cs,
		Retain: phases + 3,
		Policy: checkpoint.Policy{Interval: o.interval},
		OnComplete: func(st weir.CheckpointStats) {
			puts := cs.take()
			var n int64
			for _, p := range puts {
				n += p.bytes
			}
			mu.Lock()
			res.byID[st.ID] = completed{stats: st, puts: puts}
			res.order = append(res.order, st.ID)
			mu.Unlock()
			fmt.Fprintf(os.Stderr, "%s checkpoint %d: %v, put %.1f MiB in %d objects, size %.1f MiB\n",
				time.Now().Format("15:04:05"), st.ID, st.Duration.Round(time.Millisecond), mib(n), len(puts), mib(st.Size))
		},
	}
	job := weir.NewJob("s3-bench", weir.DefaultParallelism(o.parallelism), weir.StateDir(stateDir), weir.Checkpoints(cc),
		weir.Logger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: o.logLevel}))))
	in := weir.From(job, "changes", weir.Source[kv](res.src), weir.Parallelism(1))
	keyed := weir.KeyBy(in, func(r kv) int64 { return r.Key })
	out := weir.Process(keyed, "store", func(ctx weir.KeyedContext[int64], r kv, _ weir.Emitter[int64]) error {
		weir.Value[string](ctx, "v").Set(r.Value)
		return nil
	})
	weir.To(out, "discard", sinks.Discard[int64]())
	fmt.Fprintf(os.Stderr, "loading %d keys (%d MiB), then %d phases of %d keys\n", res.src.keys, o.stateMB, phases, res.src.keys/100)
	res.start = time.Now()
	if err := job.Run(ctx); err != nil {
		return nil, err
	}
	res.end = time.Now()
	res.src.mu.Lock()
	res.loadDone = res.src.loadDone
	res.src.mu.Unlock()
	return res, nil
}

func incremental(ctx context.Context, o options) error {
	store, err := openStore(ctx, o)
	if err != nil {
		return err
	}
	if n, err := deleteAll(ctx, store); err != nil {
		return err
	} else if n > 0 {
		fmt.Fprintf(os.Stderr, "deleted %d objects under s3://%s/%s\n", n, o.bucket, o.prefix)
	}
	stateDir, err := os.MkdirTemp("", "s3bench-state-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stateDir)
	res, err := runJob(ctx, store, o, o.phases, stateDir)
	if err != nil {
		return err
	}
	src := res.src
	if len(src.ends) != o.phases {
		return fmt.Errorf("%d change phases ended at a barrier, want %d", len(src.ends), o.phases)
	}

	// The load: every checkpoint up to the one that ended it.
	var loadPut int64
	var loadCkpts int
	for _, id := range res.order {
		if id > uint64(src.loaded) {
			break
		}
		loadCkpts++
		for _, p := range res.byID[id].puts {
			loadPut += p.bytes
		}
	}
	loaded, ok := res.byID[uint64(src.loaded)]
	if !ok {
		return fmt.Errorf("checkpoint %d, which ended the load, did not complete (or checkpoint ids and barriers differ)", src.loaded)
	}
	fmt.Printf("S3 incremental checkpoints: %d keys (%d MiB of keyed state, %d-byte values, %d-byte keys), parallelism %d, interval %v, endpoint %s\n",
		src.keys, o.stateMB, valueBytes, keyBytes, o.parallelism, o.interval, o.endpoint)
	fmt.Printf("Load: %.1f s to emit every key, %.1f s to checkpoint %d that ended it; %d checkpoints put %.1f MiB; checkpoint %d references %.1f MiB in %d files\n",
		res.loadDone.Sub(res.start).Seconds(), loaded.stats.Duration.Seconds(), src.loaded, loadCkpts, mib(loadPut),
		src.loaded, mib(loaded.stats.Size), loaded.stats.Files)
	if len(src.split) > 0 {
		fmt.Printf("Warning: barriers %v came in the middle of a change phase: the checkpoint ending that phase holds only its tail\n", src.split)
	}
	fmt.Println()
	fmt.Println("Changed = distinct keys rewritten in the phase × (8 key bytes + 100 value bytes); uploaded = bytes Put for the checkpoint (manifest included), split by the manifest's local file names")
	fmt.Printf("%5s %5s %10s %10s %10s %8s %10s %10s %10s %10s %8s %9s %9s %10s\n",
		"phase", "ckpt", "kind", "dur-ms", "sync-ms", "objects", "uploaded", "engine-up", "logs", "ssts", "other", "changed", "ratio", "size-MiB")
	var lines []string
	for i, end := range src.ends {
		id := uint64(end)
		c, ok := res.byID[id]
		if !ok {
			return fmt.Errorf("checkpoint %d (end of phase %d) did not complete", id, i+1)
		}
		var up, logs, ssts, other int64
		kinds := map[string]string{}
		if m, err := storage.ReadManifest(ctx, store, id); err == nil {
			for _, op := range m.Operators {
				for _, st := range op.Subtasks {
					for _, f := range st.Files {
						kinds[f.Object] = f.LocalName
					}
				}
			}
		} else {
			fmt.Fprintf(os.Stderr, "read manifest %d: %v\n", id, err)
		}
		for _, p := range c.puts {
			up += p.bytes
			local := kinds[p.name]
			switch {
			case strings.HasSuffix(local, ".wlog"):
				logs += p.bytes
			case strings.HasSuffix(local, ".sst"):
				ssts += p.bytes
			default:
				other += p.bytes
			}
		}
		changed := src.changed[i] * (keyBytes + valueBytes)
		ratio := float64(up) / float64(changed)
		st := c.stats
		fmt.Printf("%5d %5d %10s %10.1f %10.2f %8d %10d %10d %10d %10d %8d %9d %9.3f %10.1f\n",
			i+1, id, st.Kind, float64(st.Duration.Microseconds())/1000, float64(st.SyncMax.Microseconds())/1000, len(c.puts),
			up, st.Uploaded, logs, ssts, other, changed, ratio, mib(st.Size))
		lines = append(lines, fmt.Sprintf("BenchmarkIncremental 1 %d ns/op %.4f uploaded/changed %.1f ckpt-ms %.3f uploaded-MB %.3f changed-MB",
			st.Duration.Nanoseconds(), ratio, float64(st.Duration.Microseconds())/1000, float64(up)/1e6, float64(changed)/1e6))
	}
	fmt.Println()
	for _, l := range lines {
		fmt.Println(l)
	}
	fmt.Fprintf(os.Stderr, "job ran %.1f s; checkpoints left in s3://%s/%s\n", res.end.Sub(res.start).Seconds(), o.bucket, o.prefix)
	return nil
}
