package integration

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestVerify checks job binaries against a checkpoint with JOB verify
// --from: the same job restores it, also at another parallelism (rescaled);
// with another max parallelism, or as another job whose operators do not
// claim its state, a restore would fail, and the run itself refuses it the
// same way.
func TestVerify(t *testing.T) {
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "ckpt")
	args := []string{"--keys", "4", "--count", "200", "--parallelism", "2", "--output", filepath.Join(dir, "out"), "--checkpoint-dir", ckpt}
	runToEnd(t, "sequence", args...)

	for _, c := range []struct {
		job    string
		args   []string
		code   int
		output []string
	}{
		{"sequence", []string{"--from", ckpt, "--parallelism", "2"}, 0, []string{"last-seq", "restorable", `state "last-seq/last": value`, "a restore would succeed"}},
		{"sequence", []string{"--from", ckpt, "--parallelism", "3"}, 0, []string{"last-seq", "restorable: rescaled from parallelism 2 to 3", "a restore would succeed"}},
		{"sequence", []string{"--from", ckpt, "--max-parallelism", "64"}, 1, []string{"incompatible: checkpointed with max parallelism 128, the job has 64", "a restore would fail"}},
		{"wordcount", []string{"--from", ckpt}, 1, []string{"last-seq", "missing: the job has no operator with this UID", "count", "new"}},
		{"wordcount", []string{"--from", ckpt, "--allow-unclaimed-state"}, 0, []string{"a restore would succeed"}},
		{"sequence", []string{"--from", filepath.Join(dir, "nothing-here")}, 1, nil},
		{"sequence", nil, 2, nil},
	} {
		r := run(t, nil, c.job, append([]string{"verify"}, c.args...)...)
		if r.code != c.code {
			t.Errorf("%s verify %v: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", c.job, c.args, r.code, c.code, r.stdout, r.stderr)
			continue
		}
		for _, want := range c.output {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("%s verify %v: output lacks %q:\n%s", c.job, c.args, want, r.stdout)
			}
		}
	}
	// The run refuses what verify calls a failing restore.
	r := run(t, nil, "sequence", append(args, "--max-parallelism", "64")...)
	if r.code == 0 || !strings.Contains(r.stderr, "max parallelism 128") {
		t.Fatalf("run with another max parallelism: exit %d, want a failure naming it; stderr:\n%s", r.code, tail(r.stderr))
	}
}
