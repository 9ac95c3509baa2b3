package storage_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/storage"
	"github.com/weirstream/weir/storage/storagetest"
)

func TestLocalConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.BlobStore {
		s, err := storage.NewLocal(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestMemConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.BlobStore { return storage.NewMem() })
}

func TestWrappersConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.BlobStore {
		return storage.NewLogging(storage.Inject(storage.NewMem(), func(storage.Op, string) error { return nil }))
	})
}

func TestLocalTempFilesAndSweep(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := storage.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "chk-1/a", strings.NewReader("a")); err != nil {
		t.Fatal(err)
	}
	// Leftovers of crashed writers: one old, one recent.
	old := filepath.Join(dir, "chk-1", ".tmp-b-123")
	recent := filepath.Join(dir, "chk-1", ".tmp-c-456")
	for _, p := range []string{old, recent} {
		if err := os.WriteFile(p, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	if err := os.Chtimes(old, now.Add(-time.Hour), now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	names, err := s.List(ctx, "")
	if err != nil || len(names) != 1 || names[0].Name != "chk-1/a" {
		t.Fatalf("List = %+v, %v; want only chk-1/a", names, err)
	}
	n, err := s.Sweep(ctx, now.Add(-10*time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v; want 1", n, err)
	}
	if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("old temp file survived: %v", err)
	}
	if _, err := os.Stat(recent); err != nil {
		t.Errorf("recent temp file removed: %v", err)
	}
}

func TestLocalDeleteRemovesEmptyDirs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, _ := storage.NewLocal(dir)
	if err := s.Put(ctx, "chk-1/op/0/f", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "chk-1/op/0/f"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "chk-1")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("chk-1 directory left behind: %v", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("root removed: %v", err)
	}
}

func TestInjectAndLogging(t *testing.T) {
	ctx := context.Background()
	log := storage.NewLogging(storage.Inject(storage.NewMem(), func(op storage.Op, name string) error {
		if op == storage.OpPut && strings.HasPrefix(name, "shared/") {
			return storage.ErrInjected
		}
		return nil
	}))
	if err := log.Put(ctx, "shared/x", bytes.NewReader(nil)); !errors.Is(err, storage.ErrInjected) {
		t.Fatalf("Put = %v, want ErrInjected", err)
	}
	if err := log.Put(ctx, "chk-1/y", bytes.NewReader(nil)); err != nil {
		t.Fatal(err)
	}
	if err := log.Delete(ctx, "chk-1/y"); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range log.Calls() {
		got = append(got, c.String())
	}
	want := "put shared/x (error)\nput chk-1/y\ndelete chk-1/y"
	if strings.Join(got, "\n") != want {
		t.Fatalf("calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), want)
	}
}
