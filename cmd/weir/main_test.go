package main

import (
	"bytes"
	"context"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
