package storage

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestNames(t *testing.T) {
	if got := ManifestObject(42); got != "chk-00000000000000000042/MANIFEST" {
		t.Errorf("ManifestObject = %q", got)
	}
	p, err := PrivateObject(42, "win/../x y", 3, "OPTIONS-000003")
	if err != nil || p != "chk-00000000000000000042/win%2F%2E%2E%2Fx%20y/3/OPTIONS-000003" {
		t.Fatalf("PrivateObject = %q, %v", p, err)
	}
	o, err := ParseObject(p)
	if err != nil || o != (Object{Kind: KindPrivate, Checkpoint: 42, OperatorUID: "win/../x y", Subtask: 3, File: "OPTIONS-000003"}) {
		t.Fatalf("ParseObject(%q) = %+v, %v", p, o, err)
	}
	sh := SharedObject(Digest{Size: 10})
	if o, err := ParseObject(sh); err != nil || o.Kind != KindShared {
		t.Fatalf("ParseObject(%q) = %+v, %v", sh, o, err)
	}
	for _, bad := range []string{"chk-1/MANIFEST", "chk-00000000000000000042/x", "chk-00000000000000000042/u/01/f",
		"chk-00000000000000000042/u%2f/0/f", "shared/abc.sst", "other/x", sh + "x"} {
		if _, err := ParseObject(bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("ParseObject(%q) = %v, want ErrInvalidName", bad, err)
		}
	}
	for _, bad := range []struct{ uid, file string }{{"", "f"}, {strings.Repeat("u", MaxUIDLen+1), "f"}, {"u", "a/b"}, {"u", ".."}, {"u", "MANIFEST"}} {
		if _, err := PrivateObject(1, bad.uid, 0, bad.file); !errors.Is(err, ErrInvalidName) {
			t.Errorf("PrivateObject(%q, %q) = %v, want ErrInvalidName", bad.uid, bad.file, err)
		}
	}
}

func TestChooseRestore(t *testing.T) {
	ok := func(id uint64) Candidate { return Candidate{ID: id, State: ManifestOK} }
	missing := func(id uint64) Candidate { return Candidate{ID: id, State: ManifestMissing} }
	damaged := func(id uint64) Candidate {
		return Candidate{ID: id, State: ManifestDamaged, Problems: []Problem{{Object: "shared/x.sst", Kind: ProblemMissing}}}
	}
	for _, tc := range []struct {
		name    string
		found   []Candidate
		want    Decision
		wantErr []string
	}{
		{"empty store", nil, Decision{Kind: StartFresh}, nil},
		{"first checkpoint never committed", []Candidate{missing(1)}, Decision{Kind: StartFresh, Skipped: []Candidate{missing(1)}}, nil},
		{"newest ok", []Candidate{ok(1), ok(2)}, Decision{Kind: RestoreFrom, ID: 2}, nil},
		{"skip in-flight", []Candidate{ok(2), missing(3)}, Decision{Kind: RestoreFrom, ID: 2, Skipped: []Candidate{missing(3)}}, nil},
		{"fall back over damaged", []Candidate{damaged(3), ok(1), damaged(2)},
			Decision{Kind: RestoreFrom, ID: 1, Skipped: []Candidate{damaged(3), damaged(2)}}, nil},
		{"all damaged", []Candidate{damaged(2), missing(3), damaged(1)},
			Decision{Skipped: []Candidate{missing(3), damaged(2), damaged(1)}},
			[]string{"storage: no valid checkpoint", "checkpoint 2:", "shared/x.sst: missing", "--restore none"}},
	} {
		got, err := ChooseRestore(tc.found)
		if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, ErrNoValidCheckpoint) {
			t.Errorf("%s: err = %v", tc.name, err)
		}
		for _, s := range tc.wantErr {
			if err == nil || !strings.Contains(err.Error(), s) {
				t.Errorf("%s: error %v lacks %q", tc.name, err, s)
			}
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, got, tc.want)
		}
	}
}

func TestFindRestorePoint(t *testing.T) {
	ctx := context.Background()
	s := NewMem()
	commit := func(id uint64, content string) {
		d, _ := DigestOf(ctx, strings.NewReader(content))
		name := SharedObject(d)
		_ = s.Put(ctx, name, strings.NewReader(content))
		m := &Manifest{JobName: "j", CheckpointID: id, MaxParallelism: 1, Operators: []OperatorState{{UID: "op",
			Subtasks: []SubtaskState{{Files: []StateFile{{LocalName: "1.sst", Object: name, Size: d.Size, CRC32C: d.CRC32C}}}}}}}
		if err := WriteManifest(ctx, s, m); err != nil {
			t.Fatal(err)
		}
	}
	if d, m, err := FindRestorePoint(ctx, s); err != nil || d.Kind != StartFresh || m != nil {
		t.Fatalf("empty: %+v %v %v", d, m, err)
	}
	commit(1, "one")
	commit(2, "two")
	inflight, _ := PrivateObject(3, "op", 0, "f")
	_ = s.Put(ctx, inflight, strings.NewReader("x"))
	d, m, err := FindRestorePoint(ctx, s)
	if err != nil || d.Kind != RestoreFrom || d.ID != 2 || m == nil || m.CheckpointID != 2 {
		t.Fatalf("got %+v %v", d, err)
	}
	// Damage checkpoint 2: fall back to 1.
	d2, _ := DigestOf(ctx, strings.NewReader("two"))
	_ = s.Put(ctx, SharedObject(d2), strings.NewReader("tw0"))
	if d, _, err := FindRestorePoint(ctx, s); err != nil || d.ID != 1 {
		t.Fatalf("fallback: %+v %v", d, err)
	}
	// Corrupt manifest 1 too: error, never start fresh.
	_ = s.Put(ctx, ManifestObject(1), strings.NewReader("garbage"))
	_, _, err = FindRestorePoint(ctx, s)
	if !errors.Is(err, ErrNoValidCheckpoint) || !strings.Contains(err.Error(), ManifestObject(1)) {
		t.Fatalf("all damaged: %v", err)
	}
	// Storage errors are not damage.
	failing := Inject(s, func(op Op, _ string) error {
		if op == OpGet {
			return ErrInjected
		}
		return nil
	})
	if _, _, err := FindRestorePoint(ctx, failing); !errors.Is(err, ErrInjected) {
		t.Fatalf("I/O error: %v", err)
	}
}

func TestInspectReadErrorIsNotDamage(t *testing.T) {
	ctx := context.Background()
	s := NewMem()
	m := &Manifest{JobName: "j", CheckpointID: 1, MaxParallelism: 1, Operators: []OperatorState{{UID: "op",
		Subtasks: []SubtaskState{{Files: []StateFile{{LocalName: "1.sst", Object: SharedObject(Digest{}), Size: 0}}}}}}}
	_ = s.Put(ctx, SharedObject(Digest{}), strings.NewReader(""))
	if err := WriteManifest(ctx, s, m); err != nil {
		t.Fatal(err)
	}
	failing := Inject(s, func(op Op, name string) error {
		if op == OpGet && strings.HasPrefix(name, SharedDir) {
			return ErrInjected
		}
		return nil
	})
	if _, _, err := Inspect(ctx, failing, 1); !errors.Is(err, ErrInjected) {
		t.Fatalf("Inspect = %v, want ErrInjected", err)
	}
	if c, m, err := Inspect(ctx, s, 1); err != nil || c.State != ManifestOK || m == nil {
		t.Fatalf("Inspect = %+v, %v", c, err)
	}
}
