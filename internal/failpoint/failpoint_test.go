package failpoint

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	cases := []struct {
		in   string
		want map[string]int64
		err  string
	}{
		{"", map[string]int64{}, ""},
		{"upload-sst", map[string]int64{"upload-sst": 1}, ""},
		{"upload-sst@1", map[string]int64{"upload-sst": 1}, ""},
		{"upload-sst@2", map[string]int64{"upload-sst": 2}, ""},
		{"upload-sst@2,sink-commit", map[string]int64{"upload-sst": 2, "sink-commit": 1}, ""},
		{" after-manifest @ 3 , restore ,", map[string]int64{"after-manifest": 3, "restore": 1}, ""},
		{",,restore,,", map[string]int64{"restore": 1}, ""},
		{"sink-commit@2:panic", map[string]int64{"sink-commit": 2}, ""},
		{"a@10000000000", map[string]int64{"a": 10000000000}, ""},
		{"a@0", nil, `hit count "0"`},
		{"a@-1", nil, `hit count "-1"`},
		{"a@", nil, `hit count ""`},
		{"a@x", nil, `hit count "x"`},
		{"a@1.5", nil, `hit count "1.5"`},
		{"a@1@2", nil, `hit count "1@2"`},
		{"a@99999999999999999999", nil, "hit count"},
		{"@2", nil, "empty failpoint name"},
		{"ok,@2", nil, "empty failpoint name"},
		{"a,a@2", nil, `"a" listed twice`},
	}
	for _, c := range cases {
		got, _, err := parse(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("parse(%q): error %v, want one containing %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("parse(%q): %v", c.in, err)
			continue
		}
		if !maps.Equal(got, c.want) {
			t.Errorf("parse(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

// TestDisabled checks that, in a process without WEIR_FAILPOINT (the test
// process itself, unless someone runs it with the variable set), Hit does
// nothing.
func TestDisabled(t *testing.T) {
	if os.Getenv(EnvVar) != "" {
		t.Skipf("%s is set", EnvVar)
	}
	for range 3 {
		Hit("upload-sst")
	}
	if Enabled() {
		t.Fatal("Enabled() with WEIR_FAILPOINT unset")
	}
}

func BenchmarkHitDisabled(b *testing.B) {
	if os.Getenv(EnvVar) != "" {
		b.Skipf("%s is set", EnvVar)
	}
	for b.Loop() {
		Hit("upload-sst")
	}
}

const helperEnv = "WEIR_FAILPOINT_TEST_HELPER"

// TestHelperProcess is not a real test: TestKillsAtNthHit runs the test
// binary again with only this test selected, and it hits failpoints.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("helper process for TestKillsAtNthHit")
	}
	fmt.Printf("enabled %v\n", Enabled())
	for i := 1; i <= 3; i++ {
		Hit("other") // not armed
		Hit("crash")
		fmt.Printf("survived hit %d\n", i)
	}
	os.Exit(0)
}

func TestKillsAtNthHit(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0", helperEnv+"=1", EnvVar+"=crash@2,never@5")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("helper process did not exit within a minute\nstdout:\n%s\nstderr:\n%s", &stdout, &stderr)
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("helper process ended with %v, want killed by SIGKILL\nstdout:\n%s\nstderr:\n%s", cmd.ProcessState, &stdout, &stderr)
	}
	out := stdout.String()
	if !strings.Contains(out, "enabled true\n") || !strings.Contains(out, "survived hit 1\n") {
		t.Fatalf("helper process died before the 2nd hit\nstdout:\n%s\nstderr:\n%s", &stdout, &stderr)
	}
	if strings.Contains(out, "survived hit 2") {
		t.Fatalf("helper process survived the 2nd hit\nstdout:\n%s\nstderr:\n%s", &stdout, &stderr)
	}
	const want = "weir: failpoint crash hit (2): killing the process\n"
	if !strings.Contains(stderr.String(), want) {
		t.Fatalf("stderr lacks %q:\n%s", want, &stderr)
	}
}

// TestMalformedIgnored checks that a bad WEIR_FAILPOINT is reported and
// arms nothing.
func TestMalformedIgnored(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0", helperEnv+"=1", EnvVar+"=crash@0")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("helper process: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
		}
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("helper process did not exit within a minute\nstdout:\n%s\nstderr:\n%s", &stdout, &stderr)
	}
	if !strings.Contains(stdout.String(), "enabled false\n") || !strings.Contains(stdout.String(), "survived hit 3\n") {
		t.Fatalf("malformed WEIR_FAILPOINT armed a failpoint\nstdout:\n%s", &stdout)
	}
	if n := strings.Count(stderr.String(), "weir: ignoring WEIR_FAILPOINT"); n != 1 {
		t.Fatalf("malformed WEIR_FAILPOINT reported %d times, want once:\n%s", n, &stderr)
	}
}

func TestParsePanic(t *testing.T) {
	_, panics, err := parse("a@2:panic, b")
	if err != nil {
		t.Fatal(err)
	}
	if !panics["a"] || panics["b"] || len(panics) != 1 {
		t.Fatalf("panics = %v, want only a", panics)
	}
}
