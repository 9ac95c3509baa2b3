package barrier

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

var (
	seeds = flag.Int("aligner.seeds", 3000, "number of seeds TestAlignerRandom runs")
	seed0 = flag.Uint64("aligner.seed", 0, "first seed of TestAlignerRandom")
)

// TestAlignerRandom feeds random interleavings of per-input event sequences
// to an Aligner, as a gate would: it never reads an input the Aligner
// blocked. Each input delivers barriers and cancel markers of increasing
// checkpoints (skipping some) and then either ends or delivers the barrier
// of a final checkpoint that nothing cancels; the coordinator aborts
// checkpoints at random moments. A failing seed reproduces with
// -aligner.seed=N -aligner.seeds=1.
func TestAlignerRandom(t *testing.T) {
	for s := *seed0; s < *seed0+uint64(*seeds); s++ {
		if trace, err := runRandom(s); err != nil {
			t.Fatalf("seed %d: %v\ntrace:\n%s", s, err, trace)
		}
	}
}

type simEvent struct {
	kind Kind // Barrier, CancelBarrier or EndOfInput
	id   uint64
}

func runRandom(seed uint64) (string, error) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	n := 1 + rng.IntN(5)
	k := uint64(1 + rng.IntN(8))
	final := k + 1

	// Each input's sequence.
	queues := make([][]simEvent, n)
	hasFinal := false
	for i := range queues {
		var q []simEvent
		for id := uint64(1); id <= k; id++ {
			switch r := rng.IntN(10); {
			case r < 7:
				q = append(q, simEvent{Barrier, id})
			case r < 8:
				q = append(q, simEvent{CancelBarrier, id})
			}
		}
		if rng.IntN(2) == 0 {
			q = append(q, simEvent{EndOfInput, 0})
		} else {
			q = append(q, simEvent{Barrier, final})
			hasFinal = true
		}
		queues[i] = q
	}
	abortChance := rng.IntN(4) // in 40ths per step

	a := NewAligner(n)
	var trace strings.Builder
	fmt.Fprintf(&trace, "inputs=%d final=%d\n", n, final)

	var (
		blocked   = make([]bool, n)
		ended     = make([]bool, n)
		delivered = make([]map[uint64]bool, n) // barriers each input delivered
		snapshots = map[uint64]bool{}
		lastOut   uint64 // newest id forwarded downstream (barrier or cancel)
		anyOut    bool
		allEnded  = 0
		lastSnap  uint64
		anySnap   bool
		readable  []int
	)
	for i := range delivered {
		delivered[i] = map[uint64]bool{}
	}
	forward := func(id uint64, what string) error {
		if anyOut && id <= lastOut {
			return fmt.Errorf("forwarded %s cp=%d after cp=%d", what, id, lastOut)
		}
		lastOut, anyOut = id, true
		return nil
	}

	for step := 0; ; step++ {
		readable = readable[:0]
		for i, q := range queues {
			if len(q) > 0 && !blocked[i] {
				readable = append(readable, i)
			}
		}
		if len(readable) == 0 {
			break
		}
		var d Decision
		var ev simEvent
		input := -1
		if rng.IntN(40) < abortChance {
			id := 1 + uint64(rng.IntN(int(k)))
			fmt.Fprintf(&trace, "abort cp=%d", id)
			d = a.Abort(id)
		} else {
			input = readable[rng.IntN(len(readable))]
			ev = queues[input][0]
			queues[input] = queues[input][1:]
			switch ev.kind {
			case Barrier:
				fmt.Fprintf(&trace, "barrier input=%d cp=%d", input, ev.id)
				delivered[input][ev.id] = true
				d = a.Barrier(input, ev.id)
			case CancelBarrier:
				fmt.Fprintf(&trace, "cancel input=%d cp=%d", input, ev.id)
				d = a.Cancel(input, ev.id)
			case EndOfInput:
				fmt.Fprintf(&trace, "end input=%d", input)
				ended[input] = true
				d = a.EndOfInput(input)
			}
		}
		fmt.Fprintf(&trace, "\n  -> %v\n", d)

		if err := checkConsistent(a, d); err != nil {
			return trace.String(), err
		}
		// The gate performs the decision.
		if d.Has(ForwardCancel) {
			if err := forward(d.Cancel, "cancel"); err != nil {
				return trace.String(), err
			}
		}
		if d.Has(Snapshot) {
			id := d.Checkpoint
			if snapshots[id] {
				return trace.String(), fmt.Errorf("snapshot cp=%d twice", id)
			}
			if anySnap && id <= lastSnap {
				return trace.String(), fmt.Errorf("snapshot cp=%d after cp=%d", id, lastSnap)
			}
			for i := range n {
				if !ended[i] && !delivered[i][id] {
					return trace.String(), fmt.Errorf("snapshot cp=%d: live input %d did not deliver it", id, i)
				}
			}
			snapshots[id], lastSnap, anySnap = true, id, true
			if err := forward(id, "barrier"); err != nil {
				return trace.String(), err
			}
			if !d.Has(ReleaseAll) {
				return trace.String(), fmt.Errorf("snapshot without release")
			}
		}
		if d.Has(ReleaseAll) {
			clear(blocked)
		}
		if d.Has(Block) {
			if d.Input != input || ev.kind != Barrier {
				return trace.String(), fmt.Errorf("blocked input %d after an event on input %d", d.Input, input)
			}
			blocked[d.Input] = true
		}
		if d.Has(AllEnded) {
			allEnded++
		}
		// An event of an input either blocks it, completes or aborts an
		// alignment, or is ignored; an ignored event never blocks.
		if ev.kind == Barrier {
			handled := d.Has(Ignore) || d.Has(Block) || d.Has(Snapshot)
			if !handled {
				return trace.String(), fmt.Errorf("barrier neither ignored, blocking nor completing")
			}
			if !d.Has(Ignore) && d.Checkpoint != ev.id {
				return trace.String(), fmt.Errorf("barrier cp=%d answered for cp=%d", ev.id, d.Checkpoint)
			}
		}
		if d.Has(Ignore) && input >= 0 && a.Blocked(input) {
			return trace.String(), fmt.Errorf("ignored event left input %d blocked", input)
		}
		for i := range n {
			if blocked[i] != a.Blocked(i) {
				return trace.String(), fmt.Errorf("input %d: gate thinks blocked=%v, aligner %v", i, blocked[i], a.Blocked(i))
			}
		}
		if step > 10000 {
			return trace.String(), fmt.Errorf("no progress")
		}
	}

	// Every input is drained and released.
	for i, q := range queues {
		if len(q) > 0 {
			return trace.String(), fmt.Errorf("input %d stuck blocked with %d events left", i, len(q))
		}
		if a.Blocked(i) {
			return trace.String(), fmt.Errorf("input %d blocked at the end", i)
		}
	}
	if _, ok := a.Aligning(); ok {
		return trace.String(), fmt.Errorf("still aligning at the end: %v", a)
	}
	all := true
	for _, e := range ended {
		all = all && e
	}
	if want := map[bool]int{true: 1}[all]; allEnded != want {
		return trace.String(), fmt.Errorf("all-ended reported %d times, want %d", allEnded, want)
	}
	if hasFinal && !snapshots[final] {
		return trace.String(), fmt.Errorf("final checkpoint %d, delivered or ended by every input, not snapshotted", final)
	}
	return trace.String(), nil
}
