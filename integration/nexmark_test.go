package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// committedLines returns the committed output lines of a job (part-*.jsonl)
// with how many times each occurs.
func committedLines(t *testing.T, out string) map[string]int {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(out, "part-*.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]int{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			lines[sc.Text()]++
		}
		fh.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return lines
}

// lastPerKey returns, for an updating result whose rows carry the key
// under field, the last committed row of each key. The rows of a key come
// from one subtask, whose part files are numbered in commit order.
func lastPerKey(t *testing.T, out, field string) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(out, "part-*.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	last := map[string]string{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			var row map[string]json.RawMessage
			if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			last[string(row[field])] = sc.Text()
		}
		fh.Close()
	}
	return last
}

// TestNexmarkKillsMatchGolden runs every query with checkpoints every
// 50 ms and SIGKILLs at random moments, restarting with the same command
// until the job ends. q0-q2 (stateless), q3 (a join that keeps both sides
// in keyed state), q5 (sliding windows, then timers on the windows'
// counts), q7 (tumbling windows on timers) and q8 (a window join) must
// commit exactly the uninterrupted run's rows, as many times each; q4 (an
// updating average over two keyed stages) must end with the uninterrupted
// run's final row per category. The windowed queries run at 100,000 events
// per second of event time, so that their events span 15 s and windows
// fire during the run, not only at its end.
func TestNexmarkKillsMatchGolden(t *testing.T) {
	const kills = 6
	rng := rand.New(rand.NewPCG(crashSeed(t), 1))
	for _, q := range []string{"q0", "q1", "q2", "q3", "q4", "q5", "q7", "q8", "q11"} {
		t.Run(q, func(t *testing.T) {
			dir := t.TempDir()
			events := "1500000"
			if q == "q0" || q == "q1" {
				events = "600000" // every bid is a row
			}
			common := []string{"--query", q, "--events", events, "--parallelism", "2"}
			if q == "q5" || q == "q7" || q == "q8" || q == "q11" {
				common = append(common, "--rate", "100000")
			}
			golden := filepath.Join(dir, "golden")
			began := time.Now()
			runToEnd(t, "nexmark", append(common, "--output", golden)...)
			took := time.Since(began)
			t.Logf("golden run took %v", took)

			out := filepath.Join(dir, "out")
			args := append(append(common, "--output", out),
				checkpointArgs(filepath.Join(dir, "checkpoints"), filepath.Join(dir, "state"), "50ms")...)
			// Kills within the first half of the golden run's time, so the
			// first one lands even when this run is faster than that one.
			killed := killUntilDone(t, rng, kills, 20*time.Millisecond, took/2, "nexmark", args...)
			noHiddenFiles(t, out)
			switch q {
			default:
				want, got := committedLines(t, golden), committedLines(t, out)
				if len(want) == 0 {
					t.Fatal("the golden run has no output: the test checks nothing")
				}
				lost, dup, rows := 0, 0, 0
				for line, n := range want {
					lost += max(0, n-got[line])
					rows += n
				}
				for line, n := range got {
					dup += max(0, n-want[line])
				}
				if lost != 0 || dup != 0 {
					t.Fatalf("after %d kills: lost %d, duplicated or extra %d of %d rows", killed, lost, dup, rows)
				}
				t.Logf("%d rows, none lost or duplicated", rows)
			case "q4":
				want, got := lastPerKey(t, golden, "id"), lastPerKey(t, out, "id")
				if len(want) == 0 {
					t.Fatal("the golden run has no output: the test checks nothing")
				}
				if !maps.Equal(got, want) {
					t.Fatalf("after %d kills: final rows\n%v\nwant\n%v", killed, fmt.Sprint(got), fmt.Sprint(want))
				}
			}
			rerunAddsNothing(t, out, "nexmark", args...)
		})
	}
}

// TestProcessingTimersKills: jobs/timers sets one processing-time timer per
// key; with random SIGKILLs and restarts, every key's timer fires exactly
// once in the committed output (a timer that fired before a checkpoint was
// deleted in it; one restored from a checkpoint fires after the restore).
func TestProcessingTimersKills(t *testing.T) {
	const kills, keys = 6, 50
	rng := rand.New(rand.NewPCG(crashSeed(t), 2))
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	args := append([]string{"--keys", fmt.Sprint(keys), "--count", "100", "--rate", "2000", "--delay", "200ms", "--output", out, "--parallelism", "2"},
		checkpointArgs(filepath.Join(dir, "checkpoints"), filepath.Join(dir, "state"), "50ms")...)
	// Most kills land within the first 450 ms, while timers are pending.
	killUntilDone(t, rng, kills, 50*time.Millisecond, 400*time.Millisecond, "timers", args...)
	noHiddenFiles(t, out)
	perKey := map[int64]int{}
	for line, n := range committedLines(t, out) {
		var f struct{ Key int64 }
		if err := json.Unmarshal([]byte(line), &f); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		perKey[f.Key] += n
	}
	for k := range int64(keys) {
		if perKey[k] != 1 {
			t.Errorf("key %d: timer fired %d times in the committed output, want once", k, perKey[k])
		}
	}
	if len(perKey) != keys {
		t.Errorf("timers of %d keys fired, want %d", len(perKey), keys)
	}
}
