package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"hash/crc32"
	"reflect"
	"strings"
	"testing"
)

func sampleManifest() *Manifest {
	shared := SharedObject(Digest{Size: 5, SHA256: sha256.Sum256([]byte("hello"))})
	priv, _ := PrivateObject(7, "count/keyed", 1, "MANIFEST-000001")
	return &Manifest{
		Version: ManifestVersion, JobName: "wordcount", CheckpointID: 7, ParentID: 6,
		CreatedUnixMs: 1_700_000_000_000, MaxParallelism: 128,
		Operators: []OperatorState{
			{UID: "source", Subtasks: []SubtaskState{{KeyGroups: KeyGroupRange{0, 127}, SourcePosition: []byte("offset=42")}}},
			{UID: "count/keyed", Subtasks: []SubtaskState{
				{KeyGroups: KeyGroupRange{0, 63}, Files: []StateFile{{LocalName: "000012.sst", Object: shared, Size: 5, CRC32C: 0x9a71bb4c}}},
				{KeyGroups: KeyGroupRange{64, 127},
					Files:         []StateFile{{LocalName: "MANIFEST-000001", Object: priv, Size: 3, CRC32C: 1}},
					Descriptors:   []StateDescriptor{{Name: "n", Kind: "value", KeyCodec: "string/v1", ValueCodec: "int64/v1"}},
					PendingCommit: []byte{1, 2, 3}},
			}},
		},
	}
}

func TestManifestRoundTrip(t *testing.T) {
	m := sampleManifest()
	b, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, m)
	}
}

func TestDecodeRejects(t *testing.T) {
	good, _ := Encode(sampleManifest())
	reseal := func(b []byte) []byte { // fix the checksum so the body check is reached
		b = b[:len(b)-4]
		return crc(b)
	}
	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrCorruptManifest},
		{"bad magic", append([]byte("XEIRMFST"), good[8:]...), ErrCorruptManifest},
		{"flipped bit", flip(good, 20), ErrCorruptManifest},
		{"truncated", good[:len(good)-1], ErrCorruptManifest},
		{"version 2", reseal(append(append([]byte(manifestMagic), 2, 0), good[10:]...)), ErrUnknownVersion},
		{"trailing byte", reseal(append(append([]byte(nil), good[:len(good)-4]...), 0, 0, 0, 0, 0)), ErrCorruptManifest},
		{"huge count", reseal(append([]byte(manifestMagic+"\x01\x00\x01j\x01\x00\x00\x01"), 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0, 0)), ErrCorruptManifest},
	} {
		if _, err := Decode(tc.data); !errors.Is(err, tc.want) {
			t.Errorf("%s: Decode = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func crc(b []byte) []byte {
	out := append([]byte(nil), b...)
	sum := crc32.Checksum(out, castagnoli)
	return append(out, byte(sum), byte(sum>>8), byte(sum>>16), byte(sum>>24))
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 1
	return c
}

func TestValidateRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(m *Manifest)
	}{
		{"no job", func(m *Manifest) { m.JobName = "" }},
		{"id 0", func(m *Manifest) { m.CheckpointID, m.ParentID = 0, 0 }},
		{"parent not older", func(m *Manifest) { m.ParentID = 7 }},
		{"duplicate uid", func(m *Manifest) { m.Operators[1].UID = "source" }},
		{"parallelism > max", func(m *Manifest) { m.MaxParallelism = 1; m.Operators[1].Subtasks[1].KeyGroups = KeyGroupRange{0, 0} }},
		{"key groups out of range", func(m *Manifest) { m.Operators[0].Subtasks[0].KeyGroups.End = 128 }},
		{"local name with slash", func(m *Manifest) { m.Operators[1].Subtasks[0].Files[0].LocalName = "a/b" }},
		{"local name dotdot", func(m *Manifest) { m.Operators[1].Subtasks[0].Files[0].LocalName = ".." }},
		{"object dotdot", func(m *Manifest) { m.Operators[1].Subtasks[0].Files[0].Object = "shared/../x" }},
		{"object foreign", func(m *Manifest) { m.Operators[1].Subtasks[0].Files[0].Object = "elsewhere/x.sst" }},
		{"object is manifest", func(m *Manifest) { m.Operators[1].Subtasks[0].Files[0].Object = ManifestObject(3) }},
		{"object of later checkpoint", func(m *Manifest) {
			m.Operators[1].Subtasks[0].Files[0].Object, _ = PrivateObject(8, "x", 0, "f")
		}},
	} {
		m := sampleManifest()
		tc.edit(m)
		if _, err := Encode(m); !errors.Is(err, ErrCorruptManifest) {
			t.Errorf("%s: Encode = %v, want ErrCorruptManifest", tc.name, err)
		}
	}
}

func FuzzDecodeManifest(f *testing.F) {
	good, _ := Encode(sampleManifest())
	f.Add(good)
	min, _ := Encode(&Manifest{JobName: "j", CheckpointID: 1, MaxParallelism: 1})
	f.Add(min)
	f.Add(good[:len(good)/2])
	f.Add([]byte(manifestMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if err != nil {
			return
		}
		b, err := Encode(m)
		if err != nil {
			t.Fatalf("decoded manifest does not encode: %v", err)
		}
		if !bytes.Equal(b, data) {
			t.Fatalf("encoding is not canonical:\n got %x\nwant %x", b, data)
		}
		m2, err := Decode(b)
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip: %v\n%+v\n%+v", err, m, m2)
		}
	})
}

func TestWriteReadVerify(t *testing.T) {
	ctx := context.Background()
	s := NewMem()
	content := map[string]string{"000012.sst": "hello", "MANIFEST-000001": "abc"}
	m := sampleManifest()
	for _, op := range m.Operators {
		for i := range op.Subtasks {
			for j := range op.Subtasks[i].Files {
				f := &op.Subtasks[i].Files[j]
				d, _ := DigestOf(ctx, strings.NewReader(content[f.LocalName]))
				f.Size, f.CRC32C = d.Size, d.CRC32C
				if err := s.Put(ctx, f.Object, strings.NewReader(content[f.LocalName])); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if err := WriteManifest(ctx, s, m); err != nil {
		t.Fatal(err)
	}
	if err := WriteManifest(ctx, s, m); !errors.Is(err, ErrExists) {
		t.Fatalf("second commit = %v, want ErrExists", err)
	}
	got, err := ReadManifest(ctx, s, 7)
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("ReadManifest = %+v, %v", got, err)
	}
	if p := Verify(ctx, s, m); len(p) != 0 {
		t.Fatalf("Verify of good checkpoint: %v", p)
	}
	shared := m.Operators[1].Subtasks[0].Files[0].Object
	priv := m.Operators[1].Subtasks[1].Files[0].Object
	for _, tc := range []struct {
		name    string
		damage  func()
		problem string
	}{
		{"missing", func() { _ = s.Delete(ctx, shared) }, shared + ": missing"},
		{"size", func() { _ = s.Put(ctx, shared, strings.NewReader("hell")) }, shared + ": size 4, want 5"},
		{"checksum", func() { _ = s.Put(ctx, priv, strings.NewReader("abd")) }, priv + ": crc32c"},
	} {
		tc.damage()
		ps := Verify(ctx, s, m)
		if len(ps) == 0 || !strings.HasPrefix(ps[len(ps)-1].String(), tc.problem) && !strings.HasPrefix(ps[0].String(), tc.problem) {
			t.Errorf("%s: problems %v, want one starting %q", tc.name, ps, tc.problem)
		}
	}
	// A manifest copied into another checkpoint's directory is corrupt.
	b, _ := Encode(m)
	_ = s.Put(ctx, ManifestObject(9), bytes.NewReader(b))
	if _, err := ReadManifest(ctx, s, 9); !errors.Is(err, ErrCorruptManifest) {
		t.Fatalf("ReadManifest(9) = %v, want ErrCorruptManifest", err)
	}
	if _, err := ReadManifest(ctx, s, 100); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ReadManifest(100) = %v, want ErrNotFound", err)
	}
}
