package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/weirstream/weir/barrier"
)

type rec struct{ Sender, Seq int }

// recorder is a head Output that logs what reaches the task, in order.
type recorder struct {
	log []any // rec or barrier.Event
}

func (r *recorder) Push(b []rec) error {
	for _, v := range b {
		r.log = append(r.log, v)
	}
	return nil
}

func (r *recorder) Control(ev barrier.Event) error {
	r.log = append(r.log, ev)
	return nil
}

// TestGateAlignsBarriers runs senders that interleave records with barriers
// 1..checkpoints at random positions, some slowly, and checks that what
// reaches the task is aligned: for every checkpoint c and every sender, the
// records the sender sent before barrier c come before the forwarded barrier
// c, and those it sent after come after it. Nothing is lost or duplicated.
func TestGateAlignsBarriers(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			senders := 1 + rng.IntN(4)
			const checkpoints = 5
			queue := 1 + rng.IntN(3)
			g := newGate[rec](senders, queue, 4)
			// cut[i][c] = number of records sender i sends before barrier c+1.
			cut := make([][]int, senders)
			total := make([]int, senders)
			for i := range cut {
				n := 0
				for c := 0; c < checkpoints; c++ {
					n += rng.IntN(40)
					cut[i] = append(cut[i], n)
				}
				total[i] = n + rng.IntN(40)
			}
			slow := rng.IntN(senders)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			for i := 0; i < senders; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					s := &forwardSender[rec]{sender: newSender(ctx, i, []*Gate[rec]{g}, nil)}
					c := 0
					for seq := 0; seq <= total[i]; seq++ {
						for c < checkpoints && cut[i][c] == seq {
							c++
							if err := s.Control(barrier.NewBarrier(uint64(c))); err != nil {
								t.Error(err)
								return
							}
						}
						if seq == total[i] {
							break
						}
						if i == slow && seq%7 == 0 {
							time.Sleep(100 * time.Microsecond)
						}
						if err := s.Push([]rec{{i, seq}}); err != nil {
							t.Error(err)
							return
						}
						if seq%3 == 0 {
							s.Flush()
						}
					}
					if err := s.Control(barrier.End); err != nil {
						t.Error(err)
					}
				}()
			}
			head := &recorder{}
			if err := g.run(ctx, &task{linger: time.Millisecond, batch: 4}, head); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			// Position of every forwarded barrier and record in the log.
			barrierAt := map[uint64]int{}
			seen := map[rec]int{}
			for pos, e := range head.log {
				switch v := e.(type) {
				case rec:
					if _, dup := seen[v]; dup {
						t.Fatalf("record %v delivered twice", v)
					}
					seen[v] = pos
				case barrier.Event:
					if v.Kind == barrier.Barrier {
						if _, dup := barrierAt[v.Checkpoint]; dup {
							t.Fatalf("barrier %d forwarded twice", v.Checkpoint)
						}
						barrierAt[v.Checkpoint] = pos
					}
				}
			}
			if last := head.log[len(head.log)-1]; last != barrier.End {
				t.Fatalf("last event %v, want end of input", last)
			}
			for i := 0; i < senders; i++ {
				for seq := 0; seq < total[i]; seq++ {
					pos, ok := seen[rec{i, seq}]
					if !ok {
						t.Fatalf("record %d/%d lost", i, seq)
					}
					for c := 0; c < checkpoints; c++ {
						bpos, ok := barrierAt[uint64(c+1)]
						if !ok {
							t.Fatalf("barrier %d never forwarded", c+1)
						}
						if before := seq < cut[i][c]; before != (pos < bpos) {
							t.Fatalf("record %d/%d (cut %d) on the wrong side of barrier %d", i, seq, cut[i][c], c+1)
						}
					}
				}
			}
		})
	}
}
