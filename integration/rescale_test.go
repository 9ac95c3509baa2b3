package integration

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// rescalePhases are the parallelisms the rescale tests run a job at, in
// order: out, in to one, out again by a factor that divides nothing before.
var rescalePhases = []int{2, 4, 1, 3}

// rescaleKills runs a job at each parallelism of rescalePhases in turn, with
// the same checkpoint, state and output directories. In every phase but the
// last the job is SIGKILLed kills times: a random part of spread after its
// first completed checkpoint, and the last time by the after-manifest
// failpoint at its 2nd to 5th checkpoint; the last phase runs to the end. The first run of each phase after
// the first must restore a checkpoint taken at the previous parallelism
// (the log says "rescaling operator").
func rescaleKills(t *testing.T, rng *rand.Rand, kills int, spread time.Duration, job string, args ...string) {
	t.Helper()
	rescaled := 0
	for ph, par := range rescalePhases {
		a := append(cloneArgs(args), "--parallelism", strconv.Itoa(par))
		if ph == len(rescalePhases)-1 {
			r := run(t, nil, job, a...)
			if r.code != 0 {
				t.Fatalf("phase %d (parallelism %d): exit %d; stderr:\n%s", ph, par, r.code, tail(r.stderr))
			}
			if strings.Contains(r.stderr, "rescaling operator") {
				rescaled++
			}
			break
		}
		for k := range kills {
			var p *proc
			if k == kills-1 {
				// The last run of a phase dies right after a manifest is
				// written, before any sink commits it: the next phase
				// restores a checkpoint whose transactions and files the
				// new subtasks must commit for the old ones.
				p = startJob(t, []string{fmt.Sprintf("WEIR_FAILPOINT=after-manifest@%d", 2+rng.IntN(4))}, job, a...)
			} else {
				p = startJob(t, nil, job, a...)
				p.waitLog(t, "checkpoint complete", time.Minute)
				select {
				case <-p.done:
				case <-time.After(time.Duration(rng.Int64N(int64(spread)))):
					p.cmd.Process.Signal(syscall.SIGKILL)
				}
			}
			ws := p.wait(t)
			if !sigkilled(ws) {
				t.Fatalf("phase %d (parallelism %d), run %d: %s, before the kill; stderr:\n%s", ph, par, k, describe(ws), tail(p.stderr.String()))
			}
			if k == 0 && strings.Contains(p.stderr.String(), "rescaling operator") {
				rescaled++
			}
			if k == 0 && ph > 0 && !strings.Contains(p.stderr.String(), "restoring checkpoint") {
				t.Fatalf("phase %d (parallelism %d) restored no checkpoint; stderr:\n%s", ph, par, tail(p.stderr.String()))
			}
		}
	}
	t.Logf("%d of %d parallelism changes restored a checkpoint of the previous parallelism", rescaled, len(rescalePhases)-1)
	if rescaled < len(rescalePhases)-1 {
		t.Fatalf("only %d of %d parallelism changes rescaled state", rescaled, len(rescalePhases)-1)
	}
}

func cloneArgs(s []string) []string { return append([]string(nil), s...) }

// TestRescaleSequenceKills runs the sequence job (generator source, keyed
// state of the last seq per key, JSON files) at parallelism 2 → 4 → 1 → 3,
// killed twice in each phase: every (key, seq) exactly once with
// prev = seq-1, so each key's state followed it through every rescale. The
// value cache is off (--state-cache-mb 0), so the state is in Pebble's
// tables, which a rescale excises and ingests, not only in change logs.
func TestRescaleSequenceKills(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			// Each key is updated every 2.5 s (the source goes through
			// the keys seq by seq), so a restored key's last seq is often
			// in a base's tables only, not in the change logs after it.
			const keys, count = 5000, 5
			rng := rand.New(rand.NewPCG(crashSeed(t), 0))
			dir := t.TempDir()
			out := filepath.Join(dir, "out")
			ckpt, flags := checkpointStore(t, kind, dir)
			args := append(append([]string{"--keys", strconv.Itoa(keys), "--count", strconv.Itoa(count), "--rate", "2000", "--output", out, "--state-cache-mb", "0"},
				checkpointArgs(ckpt, filepath.Join(dir, "state"), "100ms")...), flags...)
			rescaleKills(t, rng, 2, 900*time.Millisecond, "sequence", args...)
			noHiddenFiles(t, out)
			checkSequenceExactlyOnce(t, out, keys, count)
			rerunAddsNothing(t, out, "sequence", append(args, "--parallelism", "2")...)
		})
	}
}

// TestRescaleWordcountKills runs the word count (generator source, keyed
// counts, JSON files) at parallelism 2 → 4 → 1 → 3 with kills: every word's
// updates are 1..n once each and the totals equal an uninterrupted run's.
func TestRescaleWordcountKills(t *testing.T) {
	rng := rand.New(rand.NewPCG(crashSeed(t), 0))
	dir := t.TempDir()
	const lines = "500000"
	golden := filepath.Join(dir, "golden")
	began := time.Now()
	runToEnd(t, "wordcount", "--lines", lines, "--output", golden, "--parallelism", "2")
	took := time.Since(began)
	want, lost, dup := wordTotals(t, golden)
	if lost != 0 || dup != 0 {
		t.Fatalf("golden run: lost %d, duplicated %d", lost, dup)
	}
	t.Logf("golden run took %v", took)
	out := filepath.Join(dir, "out")
	args := append([]string{"--lines", lines, "--output", out}, checkpointArgs(filepath.Join(dir, "checkpoints"), filepath.Join(dir, "state"), "50ms")...)
	rescaleKills(t, rng, 2, max(took/20, 50*time.Millisecond), "wordcount", args...)
	noHiddenFiles(t, out)
	got, lost, dup := wordTotals(t, out)
	if lost != 0 || dup != 0 {
		t.Fatalf("lost %d, duplicated %d count updates", lost, dup)
	}
	if !maps.Equal(got, want) {
		t.Fatalf("totals differ from the uninterrupted run: %d words, want %d", len(got), len(want))
	}
}

// TestRescaleKafkaSequenceKills runs the sequence job from a 6-partition
// topic to a transactional sink, exactly once, at parallelism 2 → 4 → 1 → 3
// with two SIGKILLs per phase: the partitions move between subtasks with
// their offsets, each old subtask's open transactions are committed or
// aborted by the new subtask that takes its identity, and the output holds
// every (key, seq) once, in order, with no transaction left open.
func TestRescaleKafkaSequenceKills(t *testing.T) {
	conn := kafkaBroker(t)
	const keys, count = 12, 6000 // 12 s of work at 6000/s
	in := kafkaTopic(t, conn, "in", 6)
	out := kafkaTopic(t, conn, "out", 3)
	preloadSequence(t, conn, in, keys, count)
	args := kafkaSequenceArgs(conn, t.TempDir(), in, out, 6000)
	rng := rand.New(rand.NewPCG(crashSeed(t), 7))
	rescaleKills(t, rng, 2, 900*time.Millisecond, "sequence", args...)
	checkKafkaSequence(t, conn, out, keys, count)
}
