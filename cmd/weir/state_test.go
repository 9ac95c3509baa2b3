package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	weirpkg "github.com/weirstream/weir"
	"github.com/weirstream/weir/sinks"
	"github.com/weirstream/weir/sources"
	"github.com/weirstream/weir/storage"
)

// countJob counts words per word in keyed state and ends with a final
// checkpoint in dir.
func countJob(t *testing.T, dir string, words []string) {
	t.Helper()
	store, err := storage.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	job := weirpkg.NewJob("wordcount", weirpkg.DefaultParallelism(2), weirpkg.StateDir(t.TempDir()), weirpkg.Checkpoints(weirpkg.CheckpointConfig{Store: store}))
	src := weirpkg.From(job, "words", sources.Slice(words))
	counts := weirpkg.Process(weirpkg.KeyBy(src, func(w string) string { return w }), "count",
		func(ctx weirpkg.KeyedContext[string], w string, out weirpkg.Emitter[int64]) error {
			n := weirpkg.Value[int64](ctx, "n")
			n.Set(n.Get() + 1)
			out.Emit(n.Get())
			return nil
		}, weirpkg.UID("count"))
	weirpkg.To(counts, "discard", sinks.Discard[int64]())
	if err := job.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestStateExport(t *testing.T) {
	dir := t.TempDir()
	countJob(t, dir, []string{"a", "b", "a", "c", "a"})
	out := filepath.Join(t.TempDir(), "count.parquet")

	code, stdout, errs := weir(t, "state", "export", dir, "--operator", "count", "--out", out)
	if code != 0 || stdout != "" || !strings.Contains(errs, `exported 3 rows of operator "count"`) || !strings.Contains(errs, "count/n 3") {
		t.Fatalf("export: exit %d, stdout %q, stderr %q", code, stdout, errs)
	}
	data, err := os.ReadFile(out)
	if err != nil || len(data) < 8 || string(data[:4]) != "PAR1" || string(data[len(data)-4:]) != "PAR1" {
		t.Fatalf("%s is not a Parquet file (%d bytes, %v)", out, len(data), err)
	}
	// Flags before PATH, and PATH naming the checkpoint.
	ids, err := storage.ListCheckpoints(context.Background(), mustLocal(t, dir))
	if err != nil || len(ids) == 0 {
		t.Fatalf("checkpoints %v, %v", ids, err)
	}
	chk := filepath.Join(dir, storage.CheckpointDir(ids[len(ids)-1]))
	if code, _, errs := weir(t, "state", "export", "--out", out, "--operator=count", chk); code != 0 {
		t.Fatalf("export of %s: exit %d, stderr %q", chk, code, errs)
	}

	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"state"}, 2, "usage: weir state export"},
		{[]string{"state", "import"}, 2, "usage: weir state export"},
		{[]string{"state", "export", "--operator", "count", "--out", out}, 2, "want one checkpoint PATH, got 0"},
		{[]string{"state", "export", dir, dir, "--operator", "count", "--out", out}, 2, "want one checkpoint PATH, got 2"},
		{[]string{"state", "export", dir, "--out", out}, 2, "--operator UID is required"},
		{[]string{"state", "export", dir, "--operator", "count"}, 2, "--out FILE.parquet is required"},
		{[]string{"state", "export", dir, "--operator", "count", "--out", out, "--frob"}, 2, "flag provided but not defined: -frob"},
		{[]string{"state", "export", "/nonexistent/dir", "--operator", "count", "--out", out}, 2, `"/nonexistent/dir": not a directory`},
		{[]string{"state", "export", dir, "--operator", "nope", "--out", out}, 2, `no keyed state of operator "nope" (those with keyed state: "count")`},
		{[]string{"state", "export", dir, "--operator", "words", "--out", out}, 2, `no keyed state of operator "words"`},
		{[]string{"state", "export", t.TempDir(), "--operator", "count", "--out", out}, 1, "no checkpoints in this directory"},
		{[]string{"state", "export", filepath.Join(dir, "chk-00000000000000009999"), "--operator", "count", "--out", out}, 2, "not a directory"},
		{[]string{"state", "export", dir, "--operator", "count", "--out", filepath.Join(t.TempDir(), "missing", "x.parquet")}, 1, "--out"},
	} {
		code, _, errs := weir(t, c.args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("weir %v: exit %d, stderr %q; want exit %d and %q", c.args, code, errs, c.code, c.want)
		}
	}

	// A checkpoint whose files are not a state snapshot fails, naming
	// what was wrong, and leaves no file behind.
	bad := t.TempDir()
	writeCheckpoint(t, mustLocal(t, bad), 1, 0, []byte("not an sst"))
	badOut := filepath.Join(t.TempDir(), "bad.parquet")
	if code, _, errs := weir(t, "state", "export", bad, "--operator", "count", "--out", badOut); code != 1 || !strings.Contains(errs, "is not a snapshot") {
		t.Fatalf("export of a damaged checkpoint: exit %d, stderr %q", code, errs)
	}
	if entries, _ := os.ReadDir(filepath.Dir(badOut)); len(entries) != 0 {
		t.Fatalf("a failed export left %v", entries)
	}
}

func mustLocal(t *testing.T, dir string) *storage.Local {
	t.Helper()
	s, err := storage.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
