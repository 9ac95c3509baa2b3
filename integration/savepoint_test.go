package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// savepointPath reads where a savepoint went from a job's log.
func savepointPath(t *testing.T, log string) string {
	t.Helper()
	m := regexp.MustCompile(`savepoint complete.* restore_with="--restore (\S+)"`).FindAllStringSubmatch(log, -1)
	if m == nil {
		t.Fatalf("no savepoint in the log:\n%s", tail(log))
	}
	return m[len(m)-1][1]
}

// verifyAlone checks a savepoint directory with the operator CLI after its
// job's checkpoint directory is gone: it must not depend on it.
func verifyAlone(t *testing.T, dir string) {
	t.Helper()
	out, err := exec.Command(weirCLI(t), "checkpoints", "verify", dir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), ": ok") {
		t.Fatalf("weir checkpoints verify %s: %v\n%s", dir, err, out)
	}
}

// TestStopWithSavepoint stops the sequence job with SIGTERM and
// --stop-with-savepoint: it exits 0 with a savepoint. The job's checkpoint
// directory is then deleted; a new run restores the savepoint into a new
// checkpoint directory and finishes: every (key, seq) exactly once across
// both runs.
func TestStopWithSavepoint(t *testing.T) {
	const keys, count = 10, 3000
	dir := t.TempDir()
	out, saves := filepath.Join(dir, "out"), filepath.Join(dir, "savepoints")
	base := []string{"--keys", strconv.Itoa(keys), "--count", strconv.Itoa(count), "--rate", "4000", "--parallelism", "2", "--output", out,
		"--savepoint-dir", saves, "--checkpoint-interval", "200ms"}
	first := startJob(t, nil, "sequence", append(base, "--checkpoint-dir", filepath.Join(dir, "ckpt-a"), "--state-dir", filepath.Join(dir, "state-a"), "--stop-with-savepoint")...)
	first.waitLog(t, "checkpoint complete", 30*time.Second)
	time.Sleep(time.Second)
	first.cmd.Process.Signal(syscall.SIGTERM)
	if ws := first.wait(t); !ws.Exited() || ws.ExitStatus() != 0 {
		t.Fatalf("stop with savepoint: %s; stderr:\n%s", describe(ws), tail(first.stderr.String()))
	}
	path := savepointPath(t, first.stderr.String())
	if !strings.HasPrefix(path, saves+"/chk-") {
		t.Fatalf("savepoint at %s, want under %s", path, saves)
	}
	if err := os.RemoveAll(filepath.Join(dir, "ckpt-a")); err != nil {
		t.Fatal(err)
	}
	verifyAlone(t, saves)
	lost, dup, bad := sequenceLoss(t, out, keys, count)
	if dup != 0 || bad != 0 || lost == 0 {
		t.Fatalf("after the stop: lost %d (want some: the job stopped early), duplicated %d, bad %d", lost, dup, bad)
	}
	runToEnd(t, "sequence", append(base, "--checkpoint-dir", filepath.Join(dir, "ckpt-b"), "--state-dir", filepath.Join(dir, "state-b"), "--restore", path)...)
	noHiddenFiles(t, out)
	checkSequenceExactlyOnce(t, out, keys, count)
}

// TestSavepointOnSignal takes a savepoint of a running job with SIGUSR1
// (no periodic checkpoint runs: the savepoint is the job's only one),
// kills the job, deletes its checkpoint directory, and restores the
// savepoint with a new one: every (key, seq) exactly once across both runs.
func TestSavepointOnSignal(t *testing.T) {
	const keys, count = 10, 3000
	dir := t.TempDir()
	out, saves := filepath.Join(dir, "out"), filepath.Join(dir, "savepoints")
	args := func(run string) []string {
		return []string{"--keys", strconv.Itoa(keys), "--count", strconv.Itoa(count), "--rate", "4000", "--parallelism", "2",
			"--output", out, "--savepoint-dir", saves, "--checkpoint-interval", "1h",
			"--checkpoint-dir", filepath.Join(dir, "ckpt-"+run), "--state-dir", filepath.Join(dir, "state-"+run)}
	}
	p := startJob(t, nil, "sequence", args("a")...)
	p.waitLog(t, "job starting", 30*time.Second)
	time.Sleep(1500 * time.Millisecond)
	p.cmd.Process.Signal(syscall.SIGUSR1)
	p.waitLog(t, "savepoint complete", 30*time.Second)
	p.cmd.Process.Kill()
	p.wait(t)
	path := savepointPath(t, p.stderr.String())
	os.RemoveAll(filepath.Join(dir, "ckpt-a"))
	verifyAlone(t, saves)
	if lost, dup, _ := sequenceLoss(t, out, keys, count); lost == 0 || dup != 0 {
		t.Fatalf("before the restore: lost %d (want some), duplicated %d", lost, dup)
	}
	runToEnd(t, "sequence", append(args("b"), "--restore", path)...)
	noHiddenFiles(t, out)
	checkSequenceExactlyOnce(t, out, keys, count)
}

// TestStopCommandSavepointRescaled takes a savepoint of the sequence job at
// parallelism 2 with `weir savepoint URL`, then stops it with
// `weir stop URL --savepoint` (through its --http API; the job has no
// --stop-with-savepoint): the command waits for the end and prints the
// savepoint, the job exits 0. The checkpoint directory is deleted and the
// savepoint restored at parallelism 3: every (key, seq) exactly once.
func TestStopCommandSavepointRescaled(t *testing.T) {
	const keys, count = 10, 3000
	dir := t.TempDir()
	out, saves := filepath.Join(dir, "out"), filepath.Join(dir, "savepoints")
	base := []string{"--keys", strconv.Itoa(keys), "--count", strconv.Itoa(count), "--rate", "4000", "--output", out,
		"--savepoint-dir", saves, "--checkpoint-interval", "200ms"}
	p := startJob(t, nil, "sequence", append(base, "--parallelism", "2", "--http", "127.0.0.1:0",
		"--checkpoint-dir", filepath.Join(dir, "ckpt-a"), "--state-dir", filepath.Join(dir, "state-a"))...)
	p.waitLog(t, "checkpoint complete", 30*time.Second)
	m := regexp.MustCompile(`serving HTTP" url=(http://\S+)`).FindStringSubmatch(p.stderr.String())
	if m == nil {
		t.Fatalf("no URL in the log:\n%s", tail(p.stderr.String()))
	}
	// A savepoint on demand: the command waits for the copy.
	sp, err := exec.Command(weirCLI(t), "savepoint", m[1]).Output()
	if err != nil {
		t.Fatalf("weir savepoint: %v\n%s\njob:\n%s", err, sp, tail(p.stderr.String()))
	}
	spm := regexp.MustCompile(`savepoint: (\S+) `).FindSubmatch(sp)
	if spm == nil || !strings.HasPrefix(string(spm[1]), saves+"/chk-") {
		t.Fatalf("weir savepoint printed %q", sp)
	}
	if _, err := os.Stat(filepath.Join(string(spm[1]), "MANIFEST")); err != nil {
		t.Fatalf("savepoint %s: %v", spm[1], err)
	}
	time.Sleep(300 * time.Millisecond)
	cmd := exec.Command(weirCLI(t), "stop", m[1], "--savepoint")
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("weir stop: %v\n%s\njob:\n%s", err, stdout, tail(p.stderr.String()))
	}
	if ws := p.wait(t); !ws.Exited() || ws.ExitStatus() != 0 {
		t.Fatalf("job after weir stop: %s; stderr:\n%s", describe(ws), tail(p.stderr.String()))
	}
	sm := regexp.MustCompile(`savepoint: (\S+)`).FindSubmatch(stdout)
	if sm == nil || string(sm[1]) != savepointPath(t, p.stderr.String()) {
		t.Fatalf("weir stop printed %q; the job logged the savepoint %s", stdout, savepointPath(t, p.stderr.String()))
	}
	path := string(sm[1])
	if err := os.RemoveAll(filepath.Join(dir, "ckpt-a")); err != nil {
		t.Fatal(err)
	}
	verifyAlone(t, saves)
	if lost, dup, _ := sequenceLoss(t, out, keys, count); lost == 0 || dup != 0 {
		t.Fatalf("after the stop: lost %d (want some), duplicated %d", lost, dup)
	}
	r := run(t, nil, "sequence", append(base, "--parallelism", "3", "--restore", path,
		"--checkpoint-dir", filepath.Join(dir, "ckpt-b"), "--state-dir", filepath.Join(dir, "state-b"))...)
	if r.code != 0 || !strings.Contains(r.stderr, "rescaling operator") {
		t.Fatalf("restore of the savepoint at parallelism 3: exit %d; stderr:\n%s", r.code, tail(r.stderr))
	}
	noHiddenFiles(t, out)
	checkSequenceExactlyOnce(t, out, keys, count)

	// Usage errors.
	for _, args := range [][]string{{"stop"}, {"stop", "a", "b"}, {"stop", "http://127.0.0.1:1", "--bogus"}} {
		if err := exec.Command(weirCLI(t), args...).Run(); err == nil || err.(*exec.ExitError).ExitCode() != 2 {
			t.Errorf("weir %v: %v, want exit 2", args, err)
		}
	}
	out2, err := exec.Command(weirCLI(t), "stop", "http://127.0.0.1:1").CombinedOutput()
	if err == nil || err.(*exec.ExitError).ExitCode() != 1 || !strings.Contains(string(out2), "connection refused") {
		t.Errorf("weir stop of no job: %v: %s", err, out2)
	}
}
