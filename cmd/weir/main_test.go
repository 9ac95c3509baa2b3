package main

import (
	"bytes"
	"context"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/storage"
)

func weir(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCommands(t *testing.T) {
	cases := []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"version"}, 0, "checkpoint manifest format 1", ""},
		{[]string{"help"}, 0, "checkpoints verify DIR", ""},
		{nil, 2, "", "Usage: weir"},
		{[]string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{[]string{"checkpoints"}, 2, "", "usage: weir checkpoints"},
		{[]string{"checkpoints", "list"}, 2, "", "usage: weir checkpoints"},
		{[]string{"checkpoints", "list", "/nonexistent/dir"}, 2, "", `"/nonexistent/dir": not a directory`},
	}
	for _, c := range cases {
		code, out, errs := weir(t, c.args...)
		if code != c.code || !strings.Contains(out, c.stdout) || !strings.Contains(errs, c.stderr) {
			t.Errorf("weir %v: exit %d, stdout %q, stderr %q", c.args, code, out, errs)
		}
	}
}

// writeCheckpoint stores checkpoint id with one shared and one private file.
func writeCheckpoint(t *testing.T, s storage.BlobStore, id, parent uint64, shared []byte) {
	t.Helper()
	ctx := context.Background()
	d, err := storage.DigestOf(ctx, bytes.NewReader(shared))
	if err != nil {
		t.Fatal(err)
	}
	sharedName := storage.SharedObject(d)
	if err := s.Put(ctx, sharedName, bytes.NewReader(shared)); err != nil {
		t.Fatal(err)
	}
	private := []byte("MANIFEST-000001 contents")
	privName, err := storage.PrivateObject(id, "count", 0, "MANIFEST-000001")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, privName, bytes.NewReader(private)); err != nil {
		t.Fatal(err)
	}
	crc := func(b []byte) uint32 { return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)) }
	m := &storage.Manifest{
		JobName: "wordcount", CheckpointID: id, ParentID: parent, MaxParallelism: 128,
		Operators: []storage.OperatorState{{UID: "count", Subtasks: []storage.SubtaskState{{
			KeyGroups: storage.KeyGroupRange{Start: 0, End: 127},
			Files: []storage.StateFile{
				{LocalName: "000005.sst", Object: sharedName, Size: int64(len(shared)), CRC32C: crc(shared)},
				{LocalName: "MANIFEST-000001", Object: privName, Size: int64(len(private)), CRC32C: crc(private)},
			},
			Descriptors:    []storage.StateDescriptor{{Name: "count/n", Kind: "value", KeyCodec: "string", ValueCodec: "int64/be"}},
			SourcePosition: []byte{1, 2, 3},
		}}}},
	}
	if err := storage.WriteManifest(ctx, s, m); err != nil {
		t.Fatal(err)
	}
}

func TestCheckpointsListInspectVerify(t *testing.T) {
	dir := t.TempDir()
	s, err := storage.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	writeCheckpoint(t, s, 1, 0, []byte("sst bytes of checkpoint one"))
	writeCheckpoint(t, s, 2, 1, []byte("sst bytes of checkpoint two"))

	code, out, _ := weir(t, "checkpoints", "list", dir)
	if code != 0 || strings.Index(out, "2 ") > strings.Index(out, "1 ") || !strings.Contains(out, "wordcount") {
		t.Fatalf("list: exit %d\n%s", code, out)
	}
	code, out, _ = weir(t, "checkpoints", "inspect", dir, "2")
	for _, want := range []string{`operator "count", parallelism 1`, "key groups 0-127", "000005.sst -> shared/", `state "count/n": value`, "source position: 3 bytes 010203"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("inspect lacks %q: exit %d\n%s", want, code, out)
		}
	}
	if code, _, errs := weir(t, "checkpoints", "inspect", dir, "7"); code != 1 || !strings.Contains(errs, "checkpoint 7") {
		t.Fatalf("inspect of a missing checkpoint: exit %d %s", code, errs)
	}
	if code, out, _ := weir(t, "checkpoints", "verify", dir); code != 0 || !strings.Contains(out, "2 checkpoints verified") {
		t.Fatalf("verify of intact checkpoints: exit %d\n%s", code, out)
	}

	// Flip a byte of checkpoint 2's shared SST.
	m, err := storage.ReadManifest(context.Background(), s, 2)
	if err != nil {
		t.Fatal(err)
	}
	sst := filepath.Join(dir, m.Operators[0].Subtasks[0].Files[0].Object)
	data, _ := os.ReadFile(sst)
	data[3] ^= 0xff
	if err := os.WriteFile(sst, data, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ = weir(t, "checkpoints", "verify", dir)
	if code != 1 || !strings.Contains(out, "checkpoint 2: DAMAGED") || !strings.Contains(out, sst+": crc32c") || !strings.Contains(out, "checkpoint 1: ok") {
		t.Fatalf("verify after a flipped byte: exit %d\n%s", code, out)
	}

	// A truncated manifest is named too.
	man := filepath.Join(dir, storage.ManifestObject(1))
	mdata, _ := os.ReadFile(man)
	if err := os.WriteFile(man, mdata[:len(mdata)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ = weir(t, "checkpoints", "verify", dir)
	if code != 1 || !strings.Contains(out, man) {
		t.Fatalf("verify after truncating a manifest: exit %d\n%s", code, out)
	}
}

func TestCheckpointsGC(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := storage.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	writeCheckpoint(t, s, 1, 0, []byte("sst of one"))
	writeCheckpoint(t, s, 2, 1, []byte("sst of two and three"))
	writeCheckpoint(t, s, 3, 2, []byte("sst of two and three"))
	writeCheckpoint(t, s, 4, 3, []byte("sst of four and five"))
	writeCheckpoint(t, s, 5, 4, []byte("sst of four and five"))
	// Checkpoint 6 was killed while uploading two hours ago; an upload of
	// a moment ago may still be in flight.
	old, _ := storage.PrivateObject(6, "count", 0, "OPTIONS-000003")
	put := func(name, content string) {
		if err := s.Put(ctx, name, strings.NewReader(content)); err != nil {
			t.Fatal(err)
		}
	}
	put(old, "options")
	ago := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(filepath.Join(dir, old), ago, ago); err != nil {
		t.Fatal(err)
	}
	young := storage.SharedObject(storage.Digest{Size: 5})
	put(young, "young")
	before, _ := s.List(ctx, "")

	code, out, errs := weir(t, "checkpoints", "gc", "--dry-run", dir, "--retain", "2")
	for _, want := range []string{
		"retained checkpoints: 4, 5",
		"would delete " + storage.ManifestObject(1) + " (",
		"would delete " + storage.ManifestObject(3) + " (",
		"manifest of checkpoint 2, dropped by retention",
		"shared file referenced only by checkpoints dropped by retention: 2, 3",
		"would delete " + old + " (7 bytes): file of checkpoint 6, never committed (no manifest), written 2h0m0s ago",
		"dry run: would delete 9 objects",
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("gc --dry-run lacks %q: exit %d, stderr %q\n%s", want, code, errs, out)
		}
	}
	for _, keep := range []string{young, storage.ManifestObject(4), "sst of four"} {
		if strings.Contains(out, keep) {
			t.Fatalf("gc --dry-run would delete %s\n%s", keep, out)
		}
	}
	// Manifests go first, so a crash midway leaves no checkpoint whose
	// files are gone.
	if strings.Index(out, storage.ManifestObject(3)) > strings.Index(out, "shared/") {
		t.Fatalf("gc deletes a shared file before the manifests\n%s", out)
	}
	if after, _ := s.List(ctx, ""); len(after) != len(before) {
		t.Fatalf("a dry run deleted %d objects", len(before)-len(after))
	}

	if code, out, errs := weir(t, "checkpoints", "gc", dir, "--retain", "2"); code != 0 || !strings.Contains(out, "deleted 9 objects") {
		t.Fatalf("gc: exit %d, stderr %q\n%s", code, errs, out)
	}
	if code, out, _ := weir(t, "checkpoints", "verify", dir); code != 0 || !strings.Contains(out, "2 checkpoints verified") {
		t.Fatalf("verify after gc: exit %d\n%s", code, out)
	}
	if _, err := s.Stat(ctx, young); err != nil {
		t.Fatalf("gc deleted an orphan younger than the grace period: %v", err)
	}
	if code, out, _ := weir(t, "checkpoints", "gc", dir, "--retain", "2", "--grace", "0s"); code != 0 || !strings.Contains(out, "deleted 1 objects") {
		t.Fatalf("gc --grace 0s: exit %d\n%s", code, out)
	}

	for _, bad := range [][]string{{"--retain", "0"}, {"--grace", "-1s"}, {"--retain", "x"}, {"--frob"}} {
		if code, _, errs := weir(t, append([]string{"checkpoints", "gc", dir}, bad...)...); code != 2 || !strings.Contains(errs, strings.TrimLeft(bad[0], "-")) {
			t.Errorf("gc %v: exit %d, stderr %q; want 2 naming the flag", bad, code, errs)
		}
	}
}
