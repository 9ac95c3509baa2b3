package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/weirstream/weir/storage"
)

// Damage tests: the newest checkpoint of a finished sequence job is damaged
// on disk. `weir checkpoints verify` must name the damaged file and fail;
// the job must restore the previous checkpoint and still produce every
// record exactly once; when no checkpoint is valid it must refuse to start
// and say how to start fresh.

var (
	weirOnce sync.Once
	weirBin  string
	weirErr  error
)

// weirCLI builds cmd/weir once.
func weirCLI(t *testing.T) string {
	t.Helper()
	weirOnce.Do(func() {
		weirBin = filepath.Join(bin, "weir")
		out, err := exec.Command("go", "build", "-o", weirBin, "../cmd/weir").CombinedOutput()
		if err != nil {
			weirErr = err
			t.Logf("%s", out)
		}
	})
	if weirErr != nil {
		t.Fatalf("build weir: %v", weirErr)
	}
	return weirBin
}

const damageKeys, damageCount = 10, 2000

// finishedSequence runs jobs/sequence with checkpoints to its end and
// returns its directories and arguments.
func finishedSequence(t *testing.T) (ckpt, out string, args []string) {
	t.Helper()
	dir := t.TempDir()
	ckpt, out = filepath.Join(dir, "ckpt"), filepath.Join(dir, "out")
	args = append(checkpointArgs(ckpt, filepath.Join(dir, "state"), "100ms"),
		"--keys", "10", "--count", "2000", "--rate", "10000", "--parallelism", "2", "--output", out, "--checkpoint-retain", "3")
	runToEnd(t, "sequence", args...)
	return ckpt, out, args
}

// manifests reads the retained manifests, oldest first.
func manifests(t *testing.T, ckpt string) []*storage.Manifest {
	t.Helper()
	store, err := storage.NewLocal(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ids, err := storage.ListCheckpoints(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) < 2 {
		t.Fatalf("%d checkpoints retained, want at least 2", len(ids))
	}
	var ms []*storage.Manifest
	for _, id := range ids {
		m, err := storage.ReadManifest(ctx, store, id)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	return ms
}

// objects returns the objects m references whose name passes keep.
func objects(m *storage.Manifest, keep func(string) bool) []string {
	var out []string
	for _, op := range m.Operators {
		for _, st := range op.Subtasks {
			for _, f := range st.Files {
				if keep(f.Object) {
					out = append(out, f.Object)
				}
			}
		}
	}
	return out
}

func isShared(name string) bool { return strings.HasPrefix(name, storage.SharedDir) }

// onlyIn returns a shared object that the newest manifest references and
// the oldest does not (the final checkpoint may add no table, so the one
// just before it may share them all).
func onlyIn(t *testing.T, ms []*storage.Manifest) string {
	t.Helper()
	prev := map[string]bool{}
	for _, o := range objects(ms[0], isShared) {
		prev[o] = true
	}
	for _, o := range objects(ms[len(ms)-1], isShared) {
		if !prev[o] {
			return o
		}
	}
	t.Fatal("the newest checkpoint shares every table with the oldest")
	return ""
}

func flipByte(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x55
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDamagedNewestCheckpointFallsBack(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, ckpt string, ms []*storage.Manifest) string // returns the damaged object
	}{
		{"flip a byte of a table", func(t *testing.T, ckpt string, ms []*storage.Manifest) string {
			o := onlyIn(t, ms)
			flipByte(t, filepath.Join(ckpt, o))
			return o
		}},
		{"flip a byte of the manifest", func(t *testing.T, ckpt string, ms []*storage.Manifest) string {
			o := storage.ManifestObject(ms[len(ms)-1].CheckpointID)
			flipByte(t, filepath.Join(ckpt, o))
			return o
		}},
		{"truncate a private file", func(t *testing.T, ckpt string, ms []*storage.Manifest) string {
			private := objects(ms[len(ms)-1], func(s string) bool { return !isShared(s) })
			if len(private) == 0 {
				t.Fatal("the newest checkpoint has no private file")
			}
			// The largest, so that truncating changes it.
			var o string
			var size int64 = -1
			for _, p := range private {
				fi, err := os.Stat(filepath.Join(ckpt, p))
				if err != nil {
					t.Fatal(err)
				}
				if fi.Size() > size {
					o, size = p, fi.Size()
				}
			}
			if err := os.Truncate(filepath.Join(ckpt, o), size/2); err != nil {
				t.Fatal(err)
			}
			return o
		}},
		{"delete a table", func(t *testing.T, ckpt string, ms []*storage.Manifest) string {
			o := onlyIn(t, ms)
			if err := os.Remove(filepath.Join(ckpt, o)); err != nil {
				t.Fatal(err)
			}
			return o
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ckpt, out, args := finishedSequence(t)
			ms := manifests(t, ckpt)
			damaged := tc.damage(t, ckpt, ms)

			v := exec.Command(weirCLI(t), "checkpoints", "verify", ckpt)
			vout, err := v.CombinedOutput()
			if err == nil {
				t.Fatalf("weir checkpoints verify passed a damaged checkpoint:\n%s", vout)
			}
			if !strings.Contains(string(vout), damaged) {
				t.Fatalf("weir checkpoints verify does not name %s:\n%s", damaged, vout)
			}

			// The rerun restores the checkpoint before the damaged one: the
			// job redoes the tail and the output stays exactly once.
			r := run(t, nil, "sequence", args...)
			if r.code != 0 {
				t.Fatalf("rerun: exit %d; stderr:\n%s", r.code, tail(r.stderr))
			}
			newest := ms[len(ms)-1].CheckpointID
			if !strings.Contains(r.stderr, "passing over a checkpoint") {
				t.Fatalf("rerun does not report passing over checkpoint %d; stderr:\n%s", newest, tail(r.stderr))
			}
			checkSequenceExactlyOnce(t, out, damageKeys, damageCount)
			noHiddenFiles(t, out)
		})
	}
}

func TestNoValidCheckpointRefusesToStart(t *testing.T) {
	ckpt, out, args := finishedSequence(t)
	ms := manifests(t, ckpt)
	// Every retained checkpoint damaged: none is valid.
	var names []string
	for _, m := range ms {
		o := storage.ManifestObject(m.CheckpointID)
		flipByte(t, filepath.Join(ckpt, o))
		names = append(names, o)
	}
	before := outputFiles(t, out)
	r := run(t, nil, "sequence", args...)
	if r.code != 1 {
		t.Fatalf("exit %d with no valid checkpoint, want 1; stderr:\n%s", r.code, tail(r.stderr))
	}
	for _, want := range append(names, "--restore none") {
		if !strings.Contains(r.stderr, want) {
			t.Fatalf("error does not mention %q:\n%s", want, tail(r.stderr))
		}
	}
	if after := outputFiles(t, out); len(after) != len(before) {
		t.Fatalf("the refused run changed the output: %d files, then %d", len(before), len(after))
	}
}
