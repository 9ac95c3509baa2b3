// Package storagetest is the conformance suite every storage.BlobStore
// implementation runs: Run(t, newStore).
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/weirstream/weir/storage"
)

// Run runs the suite; newStore returns a fresh, empty store for each subtest.
func Run(t *testing.T, newStore func(t *testing.T) storage.BlobStore) {
	ctx := context.Background()
	t.Run("PutGet", func(t *testing.T) {
		s := newStore(t)
		put(t, s, "a/b/c", "hello")
		wantContent(t, s, "a/b/c", "hello")
		put(t, s, "a/b/c", "replaced")
		wantContent(t, s, "a/b/c", "replaced")
		put(t, s, "empty", "")
		wantContent(t, s, "empty", "")
		big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
		if err := s.Put(ctx, "big", bytes.NewReader(big)); err != nil {
			t.Fatal(err)
		}
		wantContent(t, s, "big", string(big))
	})
	t.Run("ListInfo", func(t *testing.T) {
		s := newStore(t)
		before := time.Now().Add(-time.Minute) // the server's clock may differ a little
		put(t, s, "chk-1/a", "12345")
		put(t, s, "chk-1/b", "")
		objs, err := s.List(ctx, "chk-")
		if err != nil {
			t.Fatal(err)
		}
		if len(objs) != 2 || objs[0].Name != "chk-1/a" || objs[0].Size != 5 || objs[1].Name != "chk-1/b" || objs[1].Size != 0 {
			t.Fatalf("List = %+v, want chk-1/a of 5 bytes and chk-1/b of 0", objs)
		}
		for _, o := range objs {
			if o.ModTime.Before(before) || o.ModTime.After(time.Now().Add(time.Minute)) {
				t.Errorf("%s: ModTime %v, want about now (%v)", o.Name, o.ModTime, time.Now())
			}
		}
	})
	t.Run("Missing", func(t *testing.T) {
		s := newStore(t)
		put(t, s, "dir/x", "x")
		for _, name := range []string{"nope", "dir", "dir/x/y", "dir/nope"} {
			if _, err := s.Get(ctx, name); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("Get(%q) = %v, want ErrNotFound", name, err)
			}
			if _, err := s.Stat(ctx, name); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("Stat(%q) = %v, want ErrNotFound", name, err)
			}
		}
	})
	t.Run("PutIfAbsent", func(t *testing.T) {
		s := newStore(t)
		if err := s.PutIfAbsent(ctx, "m/MANIFEST", bytes.NewReader([]byte("first"))); err != nil {
			t.Fatal(err)
		}
		err := s.PutIfAbsent(ctx, "m/MANIFEST", bytes.NewReader([]byte("second")))
		if !errors.Is(err, storage.ErrExists) {
			t.Fatalf("second PutIfAbsent = %v, want ErrExists", err)
		}
		wantContent(t, s, "m/MANIFEST", "first")
	})
	t.Run("PutIfAbsentRace", func(t *testing.T) {
		s := newStore(t)
		const n = 8
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				errs[i] = s.PutIfAbsent(ctx, "race/MANIFEST", bytes.NewReader([]byte(fmt.Sprint(i))))
			})
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("both %d and %d won", winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, storage.ErrExists):
				t.Fatalf("PutIfAbsent %d: %v", i, err)
			}
		}
		if winner < 0 {
			t.Fatal("no PutIfAbsent won")
		}
		wantContent(t, s, "race/MANIFEST", fmt.Sprint(winner))
	})
	t.Run("FailedPutInvisible", func(t *testing.T) {
		s := newStore(t)
		boom := errors.New("reader failed")
		r := io.MultiReader(bytes.NewReader(make([]byte, 100_000)), errReader{boom})
		if err := s.Put(ctx, "p/new", r); !errors.Is(err, boom) {
			t.Fatalf("Put = %v, want %v", err, boom)
		}
		if _, err := s.Stat(ctx, "p/new"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("after failed Put, Stat = %v, want ErrNotFound", err)
		}
		put(t, s, "p/old", "old")
		r = io.MultiReader(bytes.NewReader([]byte("partial")), errReader{boom})
		if err := s.Put(ctx, "p/old", r); !errors.Is(err, boom) {
			t.Fatalf("Put = %v, want %v", err, boom)
		}
		wantContent(t, s, "p/old", "old")
		r = io.MultiReader(bytes.NewReader([]byte("partial")), errReader{boom})
		if err := s.PutIfAbsent(ctx, "p/m", r); !errors.Is(err, boom) {
			t.Fatalf("PutIfAbsent = %v, want %v", err, boom)
		}
		if err := s.PutIfAbsent(ctx, "p/m", bytes.NewReader([]byte("ok"))); err != nil {
			t.Fatalf("PutIfAbsent after failed one: %v", err)
		}
		wantList(t, s, "p/", []string{"p/m", "p/old"})
	})
	t.Run("List", func(t *testing.T) {
		s := newStore(t)
		names := []string{"shared/b.sst", "shared/a.sst", "chk-2/x/0/f", "chk-1/MANIFEST", "chk-10/MANIFEST", "top"}
		for _, name := range names {
			put(t, s, name, name)
		}
		all := slices.Clone(names)
		slices.Sort(all)
		wantList(t, s, "", all)
		wantList(t, s, "chk-1", []string{"chk-1/MANIFEST", "chk-10/MANIFEST"})
		wantList(t, s, "chk-1/", []string{"chk-1/MANIFEST"})
		wantList(t, s, "shared/", []string{"shared/a.sst", "shared/b.sst"})
		wantList(t, s, "chk-2/x/0/f", []string{"chk-2/x/0/f"})
		wantList(t, s, "nothing", nil)
	})
	t.Run("Delete", func(t *testing.T) {
		s := newStore(t)
		put(t, s, "d/1", "1")
		put(t, s, "d/2", "2")
		for range 2 { // idempotent
			if err := s.Delete(ctx, "d/1"); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Delete(ctx, "never/was"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, "d/1"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("Get after Delete = %v", err)
		}
		wantList(t, s, "", []string{"d/2"})
		if err := s.Delete(ctx, "d/2"); err != nil {
			t.Fatal(err)
		}
		wantList(t, s, "", nil)
		put(t, s, "d/3", "3") // the emptied directory can be used again
		wantContent(t, s, "d/3", "3")
	})
	t.Run("InvalidNames", func(t *testing.T) {
		s := newStore(t)
		for _, name := range []string{"", "/abs", "a//b", "a/", "../x", "a/../b", "a/./b", ".hidden", `a\b`, "a/.tmp-x", "nul\x00"} {
			if err := s.Put(ctx, name, bytes.NewReader(nil)); !errors.Is(err, storage.ErrInvalidName) {
				t.Errorf("Put(%q) = %v, want ErrInvalidName", name, err)
			}
			if err := s.PutIfAbsent(ctx, name, bytes.NewReader(nil)); !errors.Is(err, storage.ErrInvalidName) {
				t.Errorf("PutIfAbsent(%q) = %v, want ErrInvalidName", name, err)
			}
			if _, err := s.Get(ctx, name); !errors.Is(err, storage.ErrInvalidName) {
				t.Errorf("Get(%q) = %v, want ErrInvalidName", name, err)
			}
			if _, err := s.Stat(ctx, name); !errors.Is(err, storage.ErrInvalidName) {
				t.Errorf("Stat(%q) = %v, want ErrInvalidName", name, err)
			}
			if err := s.Delete(ctx, name); !errors.Is(err, storage.ErrInvalidName) {
				t.Errorf("Delete(%q) = %v, want ErrInvalidName", name, err)
			}
		}
		wantList(t, s, "", nil)
	})
	t.Run("Cancelled", func(t *testing.T) {
		s := newStore(t)
		put(t, s, "c", "c")
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := s.Put(cctx, "c2", bytes.NewReader([]byte("x"))); !errors.Is(err, context.Canceled) {
			t.Errorf("Put = %v, want context.Canceled", err)
		}
		if err := s.PutIfAbsent(cctx, "c2", bytes.NewReader([]byte("x"))); !errors.Is(err, context.Canceled) {
			t.Errorf("PutIfAbsent = %v, want context.Canceled", err)
		}
		if _, err := s.Get(cctx, "c"); !errors.Is(err, context.Canceled) {
			t.Errorf("Get = %v, want context.Canceled", err)
		}
		if _, err := s.Stat(cctx, "c"); !errors.Is(err, context.Canceled) {
			t.Errorf("Stat = %v, want context.Canceled", err)
		}
		if _, err := s.List(cctx, ""); !errors.Is(err, context.Canceled) {
			t.Errorf("List = %v, want context.Canceled", err)
		}
		if err := s.Delete(cctx, "c"); !errors.Is(err, context.Canceled) {
			t.Errorf("Delete = %v, want context.Canceled", err)
		}
		wantList(t, s, "", []string{"c"})
	})
	t.Run("Concurrent", func(t *testing.T) {
		s := newStore(t)
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Go(func() {
				name := fmt.Sprintf("chk-1/op/%d/f", i)
				for j := range 5 {
					if err := s.Put(ctx, name, bytes.NewReader([]byte(fmt.Sprint(j)))); err != nil {
						t.Error(err)
					}
					if _, err := s.List(ctx, "chk-"); err != nil {
						t.Error(err)
					}
				}
				if err := s.Delete(ctx, name); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		wantList(t, s, "", nil)
	})
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func put(t *testing.T, s storage.BlobStore, name, content string) {
	t.Helper()
	if err := s.Put(context.Background(), name, bytes.NewReader([]byte(content))); err != nil {
		t.Fatalf("Put(%q): %v", name, err)
	}
}

func wantContent(t *testing.T, s storage.BlobStore, name, want string) {
	t.Helper()
	ctx := context.Background()
	rc, err := s.Get(ctx, name)
	if err != nil {
		t.Fatalf("Get(%q): %v", name, err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatalf("read %q: %v", name, err)
	}
	if string(got) != want {
		t.Fatalf("Get(%q) = %.40q (%d bytes), want %.40q (%d bytes)", name, got, len(got), want, len(want))
	}
	size, err := s.Stat(ctx, name)
	if err != nil || size != int64(len(want)) {
		t.Fatalf("Stat(%q) = %d, %v; want %d", name, size, err, len(want))
	}
}

func wantList(t *testing.T, s storage.BlobStore, prefix string, want []string) {
	t.Helper()
	objs, err := s.List(context.Background(), prefix)
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	got := storage.Names(objs)
	if len(got) != 0 || len(want) != 0 {
		if !slices.Equal(got, want) {
			t.Fatalf("List(%q) = %q, want %q", prefix, got, want)
		}
	}
}
