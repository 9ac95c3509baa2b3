package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weirstream/weir/sinks"
)

// bin holds the job binaries built once for all tests.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "weir-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = dir
	for _, job := range []string{"wordcount", "sequence", "nexmark", "timers"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, job), "../jobs/"+job)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n", job, err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code           int
	stdout, stderr string
}

// run runs a job binary to its end (at most a minute).
func run(t *testing.T, env []string, job string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, job), args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v: %v", job, args, err)
	}
	return result{code, out.String(), errb.String()}
}

type count struct {
	Word  string `json:"word"`
	Count int64  `json:"count"`
}

type seqOut struct {
	Key  int64 `json:"key"`
	Seq  int64 `json:"seq"`
	Prev int64 `json:"prev"`
}

func noHiddenFiles(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Fatalf("uncommitted file %s left in %s after a clean end", e.Name(), dir)
		}
	}
}

func TestWordcountFile(t *testing.T) {
	dir := t.TempDir()
	input := filepath.Join(dir, "in.txt")
	var text strings.Builder
	want := map[string]int64{}
	words := []string{"Apple", "pear", "plum", "fig", "kiwi", "lime"}
	for i := 0; i < 5000; i++ {
		for j := 0; j <= i%5; j++ {
			w := words[(i*7+j*3)%len(words)]
			text.WriteString(w)
			text.WriteString(", ")
			want[strings.ToLower(w)]++
		}
		text.WriteString("\n")
	}
	if err := os.WriteFile(input, []byte(text.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	r := run(t, nil, "wordcount", "--input", input, "--output", out, "--parallelism", "2")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	noHiddenFiles(t, out)
	got, err := sinks.ReadJSONFiles[count](out)
	if err != nil {
		t.Fatal(err)
	}
	// Every word's updates are exactly 1..total: nothing lost, nothing
	// counted twice.
	updates := map[string]map[int64]bool{}
	for _, c := range got {
		if updates[c.Word] == nil {
			updates[c.Word] = map[int64]bool{}
		}
		if updates[c.Word][c.Count] {
			t.Fatalf("update %q=%d appears twice", c.Word, c.Count)
		}
		updates[c.Word][c.Count] = true
	}
	if len(updates) != len(want) {
		t.Fatalf("%d words in output, want %d", len(updates), len(want))
	}
	for w, n := range want {
		if int64(len(updates[w])) != n {
			t.Fatalf("word %q: %d updates, want %d", w, len(updates[w]), n)
		}
		for i := int64(1); i <= n; i++ {
			if !updates[w][i] {
				t.Fatalf("word %q: update %d missing", w, i)
			}
		}
	}
}

func TestWordcountGenerator(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	r := run(t, nil, "wordcount", "--lines", "2000", "--output", out)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	noHiddenFiles(t, out)
	got, err := sinks.ReadJSONFiles[count](out)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2000*8 {
		t.Fatalf("%d updates, want %d (2000 lines of 8 words)", len(got), 2000*8)
	}
}

// checkSequence asserts every (key, seq) of a run appears exactly once, with
// prev = seq-1, and that each key's seqs are 1..n without a gap; it returns
// the number of records per key.
func checkSequence(t *testing.T, out string) map[int64]int64 {
	t.Helper()
	got, err := sinks.ReadJSONFiles[seqOut](out)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[[2]int64]bool{}
	per := map[int64]int64{}
	lost, dup := 0, 0
	for _, s := range got {
		k := [2]int64{s.Key, s.Seq}
		if seen[k] {
			dup++
		}
		seen[k] = true
		if s.Prev != s.Seq-1 {
			t.Errorf("key %d seq %d has prev %d", s.Key, s.Seq, s.Prev)
		}
		per[s.Key] = max(per[s.Key], s.Seq)
	}
	for k, n := range per {
		for s := int64(1); s <= n; s++ {
			if !seen[[2]int64{k, s}] {
				lost++
			}
		}
	}
	if lost != 0 || dup != 0 {
		t.Fatalf("lost %d, duplicated %d records", lost, dup)
	}
	return per
}

func TestSequenceExactlyOnce(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	r := run(t, nil, "sequence", "--keys", "50", "--count", "400", "--parallelism", "3", "--output", out)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	noHiddenFiles(t, out)
	per := checkSequence(t, out)
	if len(per) != 50 {
		t.Fatalf("%d keys, want 50", len(per))
	}
	for k, n := range per {
		if n != 400 {
			t.Fatalf("key %d ends at seq %d, want 400", k, n)
		}
	}
}

func TestEnvironmentVariables(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	r := run(t, []string{"WEIR_KEYS=3", "WEIR_COUNT=10", "WEIR_OUTPUT=" + out, "WEIR_LOG_FORMAT=json"}, "sequence")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if !strings.HasPrefix(strings.TrimSpace(r.stderr), "{") {
		t.Fatalf("WEIR_LOG_FORMAT=json did not give JSON logs: %s", r.stderr)
	}
	if per := checkSequence(t, out); len(per) != 3 || per[0] != 10 {
		t.Fatalf("WEIR_KEYS=3 WEIR_COUNT=10 gave %v", per)
	}
	// The command line wins over the environment.
	out2 := filepath.Join(t.TempDir(), "out")
	r = run(t, []string{"WEIR_KEYS=3"}, "sequence", "--keys", "4", "--count", "1", "--output", out2)
	if per := checkSequence(t, out2); r.code != 0 || len(per) != 4 {
		t.Fatalf("--keys 4 with WEIR_KEYS=3: exit %d, keys %v", r.code, per)
	}
}

func TestUsageErrors(t *testing.T) {
	cases := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"unknown flag", nil, []string{"--nope"}, "flag provided but not defined: -nope"},
		{"bad value", nil, []string{"--parallelism", "many"}, `invalid value "many" for flag -parallelism`},
		{"negative parallelism", nil, []string{"--parallelism", "-2"}, "--parallelism -2"},
		{"bad env", []string{"WEIR_PARALLELISM=x"}, nil, "WEIR_PARALLELISM"},
		{"bad job flag", nil, []string{"--keys", "0"}, "--keys 0"},
		{"stray argument", nil, []string{"run", "extra"}, `unexpected argument "extra"`},
		{"unknown command", nil, []string{"launch"}, `unknown command "launch"`},
		{"bad log format", nil, []string{"--log-format", "xml"}, "--log-format"},
		{"bad log level from env", []string{"WEIR_LOG_LEVEL=verbose"}, nil, `WEIR_LOG_LEVEL "verbose"`},
		{"max parallelism too large", nil, []string{"--max-parallelism", "40000"}, "max parallelism 40000"},
		{"restore without checkpoint dir", nil, []string{"--restore", "none"}, `--restore "none" needs --checkpoint-dir`},
		{"bad restore", nil, []string{"--checkpoint-dir", os.TempDir(), "--restore", "yesterday"}, `--restore "yesterday"`},
		{"zero checkpoint interval", nil, []string{"--checkpoint-dir", os.TempDir(), "--checkpoint-interval", "0s"}, "--checkpoint-interval 0s"},
		{"bad restart backoff", []string{"WEIR_CHECKPOINT_DIR=" + os.TempDir()}, []string{"--restart-backoff", "random"}, `--restart-backoff "random"`},
		{"zero retain from env", []string{"WEIR_CHECKPOINT_RETAIN=0"}, []string{"--checkpoint-dir", os.TempDir()}, "WEIR_CHECKPOINT_RETAIN 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := run(t, c.env, "sequence", c.args...)
			if r.code != 2 {
				t.Fatalf("exit %d, want 2; stderr: %s", r.code, r.stderr)
			}
			if !strings.Contains(r.stderr, c.want) {
				t.Fatalf("stderr lacks %q:\n%s", c.want, r.stderr)
			}
		})
	}
}

func TestHelpAndVersion(t *testing.T) {
	r := run(t, nil, "sequence", "--help")
	if r.code != 0 || !strings.Contains(r.stderr+r.stdout, "--keys") || !strings.Contains(r.stderr+r.stdout, "--state-dir") {
		t.Fatalf("--help: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		r = run(t, nil, "wordcount", args...)
		if r.code != 0 || !strings.Contains(r.stdout, "weir") || !strings.Contains(r.stdout, "checkpoint format") {
			t.Fatalf("%v: exit %d %q", args, r.code, r.stdout)
		}
	}
}

func TestFailureExitsOne(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.txt")
	r := run(t, nil, "wordcount", "--input", missing, "--output", t.TempDir())
	if r.code != 1 {
		t.Fatalf("exit %d, want 1: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, missing) || !strings.Contains(r.stderr, `operator \"lines\"`) {
		t.Fatalf("error does not name the file and the operator:\n%s", r.stderr)
	}
}

// start starts a long-running sequence job and waits until its log says it
// started.
func start(t *testing.T, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "sequence"), args...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, &errb
}

func wait(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(30 * time.Second):
		t.Fatal("job did not exit within 30s")
		return -1
	}
}

func TestSIGTERMDrainsAndCommits(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	cmd, stderr := start(t, "--keys", "20", "--count", "1000000", "--rate", "20000", "--parallelism", "2", "--output", out)
	time.Sleep(1500 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := wait(t, cmd); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0:\n%s", code, stderr)
	}
	noHiddenFiles(t, out)
	per := checkSequence(t, out)
	var total int64
	for _, n := range per {
		total += n
	}
	if total < 1000 || total >= 20*1000000 {
		t.Fatalf("%d records committed after 1.5s at 20000/s", total)
	}
}

func TestStateDirHeldByAnotherProcess(t *testing.T) {
	state := t.TempDir()
	out := t.TempDir()
	first, stderr := start(t, "--keys", "2", "--count", "1000000", "--rate", "100", "--state-dir", state, "--output", filepath.Join(out, "1"))
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(stderr.String(), "job starting") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	r := run(t, nil, "sequence", "--keys", "2", "--count", "10", "--state-dir", state, "--output", filepath.Join(out, "2"))
	if r.code != 1 || !strings.Contains(r.stderr, "in use by another job") || !strings.Contains(r.stderr, state) {
		t.Fatalf("second job on a held state dir: exit %d\n%s", r.code, r.stderr)
	}
	first.Process.Signal(syscall.SIGTERM)
	if code := wait(t, first); code != 0 {
		t.Fatalf("first job exit %d:\n%s", code, stderr)
	}
	// Once the first job is gone, the directory is free again.
	r = run(t, nil, "sequence", "--keys", "2", "--count", "10", "--state-dir", state, "--output", filepath.Join(out, "3"))
	if r.code != 0 {
		t.Fatalf("job on a released state dir: exit %d\n%s", r.code, r.stderr)
	}
}
