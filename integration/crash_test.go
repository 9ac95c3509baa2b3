package integration

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/weirstream/weir/sinks"
	"github.com/weirstream/weir/storage"
)

// Crash tests: jobs with checkpoints are killed with SIGKILL, at random
// times or at failpoints (WEIR_FAILPOINT, see internal/failpoint), and run
// again with the same checkpoint, state and output directories. Once a run
// ends cleanly, the committed output must be exactly the output of a run
// that never crashed: nothing lost, nothing twice.

// exitTimeout bounds every wait for a job process in this file.
const exitTimeout = 30 * time.Second

// crashSeed returns the seed of a test's random kill times: the value of
// WEIR_CRASH_SEED when set, to replay a failure, otherwise a fresh one. It
// logs the seed either way.
func crashSeed(t *testing.T) uint64 {
	t.Helper()
	seed := rand.Uint64()
	if s := os.Getenv("WEIR_CRASH_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("WEIR_CRASH_SEED=%q: %v", s, err)
		}
	}
	t.Logf("random seed %d (replay with WEIR_CRASH_SEED=%d)", seed, seed)
	return seed
}

// checkpointArgs are the flags of a job that checkpoints every interval to
// ckpt, keeps its keyed state in state and restores from the latest
// checkpoint (the default with --checkpoint-dir) when there is one.
func checkpointArgs(ckpt, state, interval string) []string {
	return []string{"--checkpoint-dir", ckpt, "--checkpoint-interval", interval, "--state-dir", state}
}

// proc is a job process started by startJob.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{}
	err    error // of cmd.Wait, set before done is closed
}

// startJob starts a job binary with env added to the test's environment. The
// process is killed when the test ends, if it still runs.
func startJob(t *testing.T, env []string, job string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, job), args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	p := &proc{name: strings.TrimSpace(fmt.Sprintf("%s %s %s", strings.Join(env, " "), job, strings.Join(args, " "))), cmd: cmd, stderr: new(syncBuffer), done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	return p
}

// syncBuffer is a bytes.Buffer that the process's stderr copier writes
// while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitLog waits until p's stderr contains want, at most d; it fails the
// test if p exits or d passes first.
func (p *proc) waitLog(t *testing.T, want string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !strings.Contains(p.stderr.String(), want) {
		select {
		case <-p.done:
			t.Fatalf("%s: exited (%v) before logging %q; stderr:\n%s", p.name, p.err, want, tail(p.stderr.String()))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: did not log %q within %v; stderr:\n%s", p.name, want, d, tail(p.stderr.String()))
		}
	}
}

// wait waits for p to exit, at most exitTimeout; a process still running then
// is killed and the test fails with its stderr.
func (p *proc) wait(t *testing.T) syscall.WaitStatus {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(exitTimeout):
		p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("%s: did not exit within %v, killed; stderr:\n%s", p.name, exitTimeout, tail(p.stderr.String()))
	}
	var ee *exec.ExitError
	if p.err != nil && !errors.As(p.err, &ee) || p.cmd.ProcessState == nil {
		t.Fatalf("%s: %v; stderr:\n%s", p.name, p.err, tail(p.stderr.String()))
	}
	return p.cmd.ProcessState.Sys().(syscall.WaitStatus)
}

func sigkilled(ws syscall.WaitStatus) bool {
	return ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

func describe(ws syscall.WaitStatus) string {
	if ws.Signaled() {
		return "killed by " + ws.Signal().String()
	}
	return fmt.Sprintf("exit %d", ws.ExitStatus())
}

// tail returns the end of a long stderr.
func tail(s string) string {
	const n = 8 << 10
	if len(s) <= n {
		return s
	}
	return "...\n" + s[len(s)-n:]
}

// killAfter starts a job, SIGKILLs it after d and waits for it. It returns
// true when the kill ended the job and false when the job had already
// finished by itself with exit status 0; any other end fails the test.
func killAfter(t *testing.T, d time.Duration, env []string, job string, args ...string) (killed bool) {
	t.Helper()
	p := startJob(t, env, job, args...)
	select {
	case <-p.done:
	case <-time.After(d):
		p.cmd.Process.Signal(syscall.SIGKILL) // fails harmlessly if it has exited
	}
	ws := p.wait(t)
	switch {
	case sigkilled(ws):
		return true
	case ws.Exited() && ws.ExitStatus() == 0:
		return false
	}
	t.Fatalf("%s: %s, not by our SIGKILL; stderr:\n%s", p.name, describe(ws), tail(p.stderr.String()))
	return false
}

// killUntilDone runs a job and SIGKILLs it after from + a random part of
// spread, restarting it with the same arguments, until it was killed kills
// times or ended by itself; then it runs the job to its end. It returns the
// number of kills and fails the test if none landed.
func killUntilDone(t *testing.T, rng *rand.Rand, kills int, from, spread time.Duration, job string, args ...string) int {
	t.Helper()
	killed, finished := 0, false
	for killed < kills && !finished {
		if killAfter(t, from+time.Duration(rng.Int64N(int64(spread))), nil, job, args...) {
			killed++
		} else {
			finished = true
		}
	}
	t.Logf("%d kills before the job ended", killed)
	if killed == 0 {
		t.Fatal("no kill landed before the job ended: the test tested nothing")
	}
	if !finished {
		runToEnd(t, job, args...)
	}
	return killed
}

// runToEnd runs a job to its end and fails the test unless it exits 0.
func runToEnd(t *testing.T, job string, args ...string) {
	t.Helper()
	r := run(t, nil, job, args...)
	if r.code != 0 {
		t.Fatalf("%s %v: exit %d, want 0; stderr:\n%s", job, args, r.code, tail(r.stderr))
	}
}

// fileStamp is what outputFiles records of a file.
type fileStamp struct {
	Size    int64
	ModTime int64 // nanoseconds since the epoch
}

// outputFiles lists the files of an output directory with their sizes and
// modification times.
func outputFiles(t *testing.T, dir string) map[string]fileStamp {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]fileStamp{}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = fileStamp{info.Size(), info.ModTime().UnixNano()}
	}
	return files
}

// restoresChangelog reports whether the checkpoint that a run with
// --checkpoint-dir dir restores holds change logs (changelog-*.wlog).
func restoresChangelog(t *testing.T, dir string) bool {
	t.Helper()
	store, err := storage.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, m, err := storage.FindRestorePoint(context.Background(), store)
	if err != nil || m == nil {
		return false
	}
	for _, op := range m.Operators {
		for _, st := range op.Subtasks {
			for _, f := range st.Files {
				if strings.HasSuffix(f.LocalName, ".wlog") {
					return true
				}
			}
		}
	}
	return false
}

// rerunAddsNothing runs a finished job once more with the same directories
// and checks that it exits 0 without changing its output directory: no file
// added, removed or rewritten (a rewrite under the same name would change
// the modification time).
func rerunAddsNothing(t *testing.T, out, job string, args ...string) {
	t.Helper()
	before := outputFiles(t, out)
	runToEnd(t, job, args...)
	if after := outputFiles(t, out); !maps.Equal(before, after) {
		t.Fatalf("rerun of a finished job changed its output:\nbefore %v\nafter  %v", before, after)
	}
}

// sequenceLoss reads the committed output of a sequence job over keys keys
// 0..keys-1 and count records each, and counts the (key, seq) records for seq
// 1..count that are missing (lost), the extra copies of records (dup) and the
// records with prev != seq-1 or outside the expected range (bad). It logs a
// few examples of each.
func sequenceLoss(t *testing.T, out string, keys, count int64) (lost, dup, bad int) {
	t.Helper()
	got, err := sinks.ReadJSONFiles[seqOut](out)
	if err != nil {
		t.Fatal(err)
	}
	seen := make([]uint32, keys*count)
	const examples = 5
	for _, s := range got {
		if s.Key < 0 || s.Key >= keys || s.Seq < 1 || s.Seq > count || s.Prev != s.Seq-1 {
			if bad++; bad <= examples {
				t.Logf("bad record %+v", s)
			}
			if s.Key < 0 || s.Key >= keys || s.Seq < 1 || s.Seq > count {
				continue
			}
		}
		i := s.Key*count + s.Seq - 1
		if seen[i]++; seen[i] > 1 {
			if dup++; dup <= examples {
				t.Logf("duplicated record key %d seq %d", s.Key, s.Seq)
			}
		}
	}
	for i, n := range seen {
		if n == 0 {
			if lost++; lost <= examples {
				t.Logf("lost record key %d seq %d", int64(i)/count, int64(i)%count+1)
			}
		}
	}
	return lost, dup, bad
}

// checkSequenceExactlyOnce fails the test unless the output of a sequence
// job holds every (key, seq) exactly once, with prev = seq-1.
func checkSequenceExactlyOnce(t *testing.T, out string, keys, count int64) {
	t.Helper()
	lost, dup, bad := sequenceLoss(t, out, keys, count)
	if lost != 0 || dup != 0 || bad != 0 {
		t.Fatalf("output of %d keys x %d records: lost %d, duplicated %d, bad %d", keys, count, lost, dup, bad)
	}
}

func TestSequenceKillLoop(t *testing.T) {
	const (
		keys  = 20
		count = 3000
		kills = 20
	)
	// At 2500 records/s the job needs 24s of work: 20 kills at 300-1200ms
	// (at most 24s, minus start-up and the work since the last checkpoint)
	// all land before it ends, and the last run finishes it.
	rng := rand.New(rand.NewPCG(crashSeed(t), 0))
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	args := append([]string{
		"--keys", strconv.Itoa(keys), "--count", strconv.Itoa(count), "--rate", "2500",
		"--parallelism", "2", "--output", out, "--checkpoint-retain", "2",
	}, checkpointArgs(filepath.Join(dir, "checkpoints"), filepath.Join(dir, "state"), "100ms")...)

	killed, finished, fromLogs := 0, false, 0
	for killed < kills && !finished {
		d := time.Duration(300+rng.IntN(901)) * time.Millisecond
		if killAfter(t, d, nil, "sequence", args...) {
			killed++
			if restoresChangelog(t, filepath.Join(dir, "checkpoints")) {
				fromLogs++
			}
		} else {
			finished = true
		}
	}
	if killed < kills {
		t.Fatalf("the job finished after %d kills, want %d: too little work for the kill times", killed, kills)
	}
	// Most checkpoints log changes on top of a materialized base; the next
	// run must restore from such checkpoints too, not only from bases.
	t.Logf("%d of %d kills left a checkpoint with change logs to restore", fromLogs, killed)
	if fromLogs < kills/2 {
		t.Fatalf("only %d of %d kills left a checkpoint with change logs: the changelog restore path is not tested", fromLogs, killed)
	}
	if !finished {
		runToEnd(t, "sequence", args...)
	}
	noHiddenFiles(t, out)
	checkSequenceExactlyOnce(t, out, keys, count)

	// The job has finished: running it again restores its last checkpoint,
	// has nothing left to do and commits nothing.
	rerunAddsNothing(t, out, "sequence", args...)
	checkSequenceExactlyOnce(t, out, keys, count)
}

func TestSequenceFailpoints(t *testing.T) {
	const (
		keys  = 10
		count = 2000
	)
	for _, kind := range storeKinds {
		for _, fp := range []string{"upload-sst@2", "before-manifest@2", "after-manifest@2", "sink-commit@1", "restore@1"} {
			t.Run(kind+"/"+fp, func(t *testing.T) { sequenceFailpoint(t, kind, fp, keys, count) })
		}
	}
}

func sequenceFailpoint(t *testing.T, kind, fp string, keys, count int64) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	ckpt, flags := checkpointStore(t, kind, dir)
	args := append(append([]string{
		"--keys", strconv.FormatInt(keys, 10), "--count", strconv.FormatInt(count, 10), "--rate", "10000",
		"--parallelism", "2", "--output", out,
	}, checkpointArgs(ckpt, filepath.Join(dir, "state"), "100ms")...), flags...)
	if strings.HasPrefix(fp, "restore") {
		// Leave a checkpoint to restore from.
		if !killAfter(t, 800*time.Millisecond, nil, "sequence", args...) {
			t.Fatal("the job finished within 800ms: nothing left to restore")
		}
	}
	p := startJob(t, []string{"WEIR_FAILPOINT=" + fp}, "sequence", args...)
	if ws := p.wait(t); !sigkilled(ws) {
		t.Fatalf("WEIR_FAILPOINT=%s: %s, want killed by SIGKILL at the failpoint; stderr:\n%s", fp, describe(ws), tail(p.stderr.String()))
	}
	if !strings.Contains(p.stderr.String(), "failpoint") {
		t.Fatalf("WEIR_FAILPOINT=%s: killed but stderr does not mention the failpoint:\n%s", fp, tail(p.stderr.String()))
	}

	runToEnd(t, "sequence", args...)
	noHiddenFiles(t, out)
	checkSequenceExactlyOnce(t, out, keys, count)
}

// writeWords writes a deterministic text of n words from a small vocabulary,
// eight words a line, in mixed case and with punctuation, and returns the
// count of every (lower-case) word in it.
func writeWords(t *testing.T, path string, n int) map[string]int64 {
	t.Helper()
	vocab := []string{"Alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu", "don't", "x2"}
	rng := rand.New(rand.NewPCG(1, 2))
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	want := map[string]int64{}
	for i := range n {
		// Skewed, so that words reach very different counts.
		word := vocab[min(rng.IntN(len(vocab)), rng.IntN(len(vocab)))]
		want[strings.ToLower(word)]++
		w.WriteString(word)
		switch {
		case i%8 == 7:
			w.WriteString(".\n")
		case i%5 == 0:
			w.WriteString(", ")
		default:
			w.WriteString(" ")
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return want
}

// wordTotals reads the committed output of a wordcount job and returns the
// total of every word: its last (highest) count update. Every word's updates
// must be 1..total, each once; it counts the missing (lost) and repeated
// (dup) updates.
func wordTotals(t *testing.T, out string) (totals map[string]int64, lost, dup int) {
	t.Helper()
	got, err := sinks.ReadJSONFiles[count](out)
	if err != nil {
		t.Fatal(err)
	}
	return countTotals(got)
}

// countTotals is wordTotals over count updates read from anywhere.
func countTotals(got []count) (totals map[string]int64, lost, dup int) {
	updates := map[string]map[int64]int{}
	totals = map[string]int64{}
	for _, c := range got {
		if updates[c.Word] == nil {
			updates[c.Word] = map[int64]int{}
		}
		if updates[c.Word][c.Count]++; updates[c.Word][c.Count] > 1 {
			dup++
		}
		totals[c.Word] = max(totals[c.Word], c.Count)
	}
	for w, n := range totals {
		for i := int64(1); i <= n; i++ {
			if updates[w][i] == 0 {
				lost++
			}
		}
	}
	return totals, lost, dup
}

func TestWordcountKillsMatchGolden(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) { wordcountKills(t, kind) })
	}
}

func wordcountKills(t *testing.T, kind string) {
	const kills = 8
	rng := rand.New(rand.NewPCG(crashSeed(t), 0))
	dir := t.TempDir()
	input := filepath.Join(dir, "in.txt")
	// wordcount has no rate limit: the input is large enough for a run to
	// last a few hundred milliseconds, and the kill times are drawn from
	// the duration of the golden run.
	want := writeWords(t, input, 1_000_000)

	golden := filepath.Join(dir, "golden")
	began := time.Now()
	runToEnd(t, "wordcount", "--input", input, "--output", golden, "--parallelism", "2")
	took := time.Since(began)
	goldenTotals, lost, dup := wordTotals(t, golden)
	if lost != 0 || dup != 0 || !maps.Equal(goldenTotals, want) {
		t.Fatalf("golden run without crashes: lost %d, duplicated %d updates; totals %v, want %v", lost, dup, goldenTotals, want)
	}
	t.Logf("golden run took %v", took)

	out := filepath.Join(dir, "out")
	ckpt, flags := checkpointStore(t, kind, dir)
	args := append(append([]string{"--input", input, "--output", out, "--parallelism", "2"},
		checkpointArgs(ckpt, filepath.Join(dir, "state"), "50ms")...), flags...)
	killed := killUntilDone(t, rng, kills, 20*time.Millisecond, took, "wordcount", args...)
	noHiddenFiles(t, out)
	totals, lost, dup := wordTotals(t, out)
	if lost != 0 || dup != 0 {
		t.Errorf("after %d kills: lost %d, duplicated %d count updates", killed, lost, dup)
	}
	if !maps.Equal(totals, goldenTotals) {
		for _, w := range slices.Sorted(maps.Keys(goldenTotals)) {
			if totals[w] != goldenTotals[w] {
				t.Errorf("word %q: total %d, golden %d", w, totals[w], goldenTotals[w])
			}
		}
		for w, n := range totals {
			if _, ok := goldenTotals[w]; !ok {
				t.Errorf("word %q: total %d, not in the golden output", w, n)
			}
		}
		t.FailNow()
	}
	rerunAddsNothing(t, out, "wordcount", args...)
}

// TestInProcessRestart fails a sink commit (a panic, not a kill): the job
// restarts in-process from its latest checkpoint and ends with every record
// exactly once. With no restart attempts the same failure exits 1.
func TestInProcessRestart(t *testing.T) {
	for _, attempts := range []string{"3", "0"} {
		t.Run("attempts="+attempts, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "out")
			args := append(checkpointArgs(filepath.Join(dir, "ckpt"), filepath.Join(dir, "state"), "100ms"),
				"--keys", "10", "--count", "2000", "--rate", "10000", "--parallelism", "2", "--output", out,
				"--restart-attempts", attempts, "--restart-delay", "50ms")
			r := run(t, []string{"WEIR_FAILPOINT=sink-commit@3:panic"}, "sequence", args...)
			if attempts == "0" {
				if r.code != 1 || !strings.Contains(r.stderr, "failpoint sink-commit") {
					t.Fatalf("exit %d, want 1 with the failpoint's panic; stderr:\n%s", r.code, tail(r.stderr))
				}
				return
			}
			if r.code != 0 {
				t.Fatalf("exit %d, want 0; stderr:\n%s", r.code, tail(r.stderr))
			}
			if !strings.Contains(r.stderr, "restarting from the latest checkpoint") {
				t.Fatalf("no restart logged; stderr:\n%s", tail(r.stderr))
			}
			checkSequenceExactlyOnce(t, out, 10, 2000)
			noHiddenFiles(t, out)
		})
	}
}

// TestSIGTERMTakesFinalCheckpoint stops a running job with SIGTERM: it takes
// a final checkpoint, commits and exits 0; the next run resumes there and
// the output is exactly once.
func TestSIGTERMTakesFinalCheckpoint(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	args := append(checkpointArgs(filepath.Join(dir, "ckpt"), filepath.Join(dir, "state"), "10s"),
		"--keys", "10", "--count", "3000", "--rate", "10000", "--parallelism", "2", "--output", out)
	p := startJob(t, nil, "sequence", args...)
	time.Sleep(time.Second)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ws := p.wait(t)
	if !ws.Exited() || ws.ExitStatus() != 0 {
		t.Fatalf("after SIGTERM: %s, want exit 0; stderr:\n%s", describe(ws), tail(p.stderr.String()))
	}
	if !strings.Contains(p.stderr.String(), "kind=final") {
		t.Fatalf("no final checkpoint after SIGTERM; stderr:\n%s", tail(p.stderr.String()))
	}
	lost, dup, bad := sequenceLoss(t, out, 10, 3000)
	if dup != 0 || bad != 0 || lost == 0 || lost == 10*3000 {
		t.Fatalf("after SIGTERM at 1 s of 3 s: lost %d, dup %d, bad %d; want a committed prefix", lost, dup, bad)
	}
	runToEnd(t, "sequence", args...)
	checkSequenceExactlyOnce(t, out, 10, 3000)
}
