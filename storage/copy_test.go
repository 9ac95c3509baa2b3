package storage

import (
	"bytes"
	"context"
	"errors"
	"hash/crc32"
	"strings"
	"testing"
)

func TestCopyCheckpoint(t *testing.T) {
	ctx := context.Background()
	from, to := NewMem(), NewMem()
	put := func(name, content string) StateFile {
		t.Helper()
		if err := from.Put(ctx, name, strings.NewReader(content)); err != nil {
			t.Fatal(err)
		}
		return StateFile{LocalName: content[:3], Object: name, Size: int64(len(content)), CRC32C: crc32.Checksum([]byte(content), castagnoli)}
	}
	d, _ := DigestOf(ctx, strings.NewReader("shared sst"))
	shared := put(SharedObject(d), "shared sst")
	priv, _ := PrivateObject(7, "op", 0, "OPTIONS")
	private := put(priv, "options")
	m := &Manifest{JobName: "j", CheckpointID: 7, MaxParallelism: 1, Operators: []OperatorState{{UID: "op", Subtasks: []SubtaskState{{Files: []StateFile{shared, private}}}}}}
	if err := WriteManifest(ctx, from, m); err != nil {
		t.Fatal(err)
	}
	n, err := CopyCheckpoint(ctx, from, to, m, 0)
	if err != nil || n != shared.Size+private.Size {
		t.Fatalf("CopyCheckpoint = %d, %v", n, err)
	}
	if c, _, err := Inspect(ctx, to, 7); err != nil || c.State != ManifestOK {
		t.Fatalf("the copy does not verify: %+v, %v", c, err)
	}
	// The source may go: the copy stands alone.
	objs, _ := from.List(ctx, "")
	for _, o := range objs {
		from.Delete(ctx, o.Name)
	}
	if c, _, err := Inspect(ctx, to, 7); err != nil || c.State != ManifestOK {
		t.Fatalf("the copy depends on its source: %+v, %v", c, err)
	}

	// A damaged object fails the copy, and no manifest is written.
	from2, to2 := NewMem(), NewMem()
	from2.Put(ctx, shared.Object, bytes.NewReader([]byte("shared sSt")))
	from2.Put(ctx, private.Object, strings.NewReader("options"))
	if _, err := CopyCheckpoint(ctx, from2, to2, m, 1); err == nil || !strings.Contains(err.Error(), "CRC32C") {
		t.Fatalf("copy of a damaged object: %v, want a CRC32C error", err)
	}
	if _, err := ReadManifest(ctx, to2, 7); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a failed copy left a manifest: %v", err)
	}
	if _, err := to2.Stat(ctx, shared.Object); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a failed copy left the damaged object: %v", err)
	}
}
