package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"strings"
)

// Layout constants. See the package documentation.
const (
	SharedDir    = "shared/"
	ManifestFile = "MANIFEST"
	chkPrefix    = "chk-"
	idDigits     = 20
)

// MaxUIDLen bounds an operator UID so that its escaped form (up to three
// bytes per byte) fits in one name element.
const MaxUIDLen = MaxElementLen / 3

// castagnoli is the CRC32C table used for file checksums and the manifest.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Digest describes an object's content: what the manifest records and what
// the shared name is made from.
type Digest struct {
	Size   int64
	CRC32C uint32
	SHA256 [sha256.Size]byte
}

// DigestOf reads r to the end and returns its digest, in bounded memory.
func DigestOf(ctx context.Context, r io.Reader) (Digest, error) {
	h := sha256.New()
	c := crc32.New(castagnoli)
	n, err := io.Copy(io.MultiWriter(h, c), ctxReader{ctx, r})
	if err != nil {
		return Digest{}, fmt.Errorf("storage: digest: %w", err)
	}
	d := Digest{Size: n, CRC32C: c.Sum32()}
	h.Sum(d.SHA256[:0])
	return d, nil
}

// ChecksumOf reads r to the end and returns its size and CRC32C, the
// checksum manifests record, in bounded memory. It is what checking a file
// against a manifest costs: several times less than DigestOf, which also
// hashes with SHA-256 to name shared objects.
func ChecksumOf(ctx context.Context, r io.Reader) (size int64, crc uint32, err error) {
	h := crc32.New(castagnoli)
	n, err := io.Copy(h, ctxReader{ctx, r})
	return n, h.Sum32(), err
}

// CheckpointDir returns "chk-<20-digit id>/", the prefix of all objects of
// checkpoint id.
func CheckpointDir(id uint64) string {
	return fmt.Sprintf("%s%0*d/", chkPrefix, idDigits, id)
}

// ManifestObject returns "chk-<id>/MANIFEST".
func ManifestObject(id uint64) string {
	return CheckpointDir(id) + ManifestFile
}

// SharedObject returns "shared/<sha256-hex>-<size>.sst", the content
// address of an SSTable that many checkpoints may reference.
func SharedObject(d Digest) string {
	return SharedDir + hex.EncodeToString(d.SHA256[:]) + "-" + strconv.FormatInt(d.Size, 10) + ".sst"
}

// PrivateObject returns "chk-<id>/<escaped uid>/<subtask>/<file>", a file
// that belongs to checkpoint id only. file must be a valid element.
func PrivateObject(id uint64, operatorUID string, subtask int, file string) (string, error) {
	uid, err := EscapeUID(operatorUID)
	if err != nil {
		return "", err
	}
	if subtask < 0 {
		return "", fmt.Errorf("%w: negative subtask %d", ErrInvalidName, subtask)
	}
	if err := ValidElement(file); err != nil {
		return "", err
	}
	if file == ManifestFile {
		// Not ambiguous (it is three levels deeper), but confusing to read.
		return "", fmt.Errorf("%w: private file may not be named %s", ErrInvalidName, ManifestFile)
	}
	name := CheckpointDir(id) + uid + "/" + strconv.Itoa(subtask) + "/" + file
	if err := ValidName(name); err != nil {
		return "", err
	}
	return name, nil
}

// EscapeUID turns an operator UID into one name element: bytes in
// [A-Za-z0-9_-] stay, every other byte becomes %XX (upper-case hex). The
// mapping is injective, and the result never starts with '.'.
func EscapeUID(uid string) (string, error) {
	if uid == "" || len(uid) > MaxUIDLen {
		return "", fmt.Errorf("%w: operator uid %q: length %d not in [1, %d]", ErrInvalidName, uid, len(uid), MaxUIDLen)
	}
	var b strings.Builder
	for i := 0; i < len(uid); i++ {
		c := uid[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String(), nil
}

// UnescapeUID inverts EscapeUID; it accepts only the canonical escaping.
func UnescapeUID(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+3 > len(s) {
			return "", fmt.Errorf("%w: escaped uid %q: truncated escape", ErrInvalidName, s)
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", fmt.Errorf("%w: escaped uid %q: bad escape", ErrInvalidName, s)
		}
		b.WriteByte(byte(v))
		i += 2
	}
	uid := b.String()
	if esc, err := EscapeUID(uid); err != nil || esc != s {
		return "", fmt.Errorf("%w: escaped uid %q: not canonical", ErrInvalidName, s)
	}
	return uid, nil
}

// ObjectKind classifies a stored object name.
type ObjectKind uint8

// Kinds of objects.
const (
	KindShared ObjectKind = iota + 1
	KindPrivate
	KindManifest
)

func (k ObjectKind) String() string {
	switch k {
	case KindShared:
		return "shared"
	case KindPrivate:
		return "private"
	case KindManifest:
		return "manifest"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Object is a parsed object name.
type Object struct {
	Kind        ObjectKind
	Checkpoint  uint64 // private and manifest objects
	OperatorUID string // private objects, unescaped
	Subtask     int    // private objects
	File        string // private objects: the file name; shared: "<sha256-hex>-<size>.sst"
}

// ParseObject parses a name built by SharedObject, PrivateObject or
// ManifestObject. Other names fail with ErrInvalidName.
func ParseObject(name string) (Object, error) {
	bad := func(why string) (Object, error) {
		return Object{}, fmt.Errorf("%w: %q: %s", ErrInvalidName, name, why)
	}
	if err := ValidName(name); err != nil {
		return Object{}, err
	}
	if rest, ok := strings.CutPrefix(name, SharedDir); ok {
		if !validSharedFile(rest) {
			return bad("not <sha256-hex>-<size>.sst")
		}
		return Object{Kind: KindShared, File: rest}, nil
	}
	parts := strings.Split(name, "/")
	id, ok := ParseCheckpointDir(parts[0])
	if !ok {
		return bad("neither shared/ nor chk-<id>/")
	}
	switch {
	case len(parts) == 2 && parts[1] == ManifestFile:
		return Object{Kind: KindManifest, Checkpoint: id}, nil
	case len(parts) == 4:
		uid, err := UnescapeUID(parts[1])
		if err != nil {
			return Object{}, err
		}
		sub, err := strconv.Atoi(parts[2])
		if err != nil || sub < 0 || strconv.Itoa(sub) != parts[2] {
			return bad("bad subtask")
		}
		if parts[3] == ManifestFile {
			return bad("private file named " + ManifestFile)
		}
		return Object{Kind: KindPrivate, Checkpoint: id, OperatorUID: uid, Subtask: sub, File: parts[3]}, nil
	}
	return bad("unknown layout under checkpoint directory")
}

func validSharedFile(s string) bool {
	hexPart, rest, ok := strings.Cut(s, "-")
	if !ok || len(hexPart) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(hexPart); i++ {
		if c := hexPart[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	size, ok := strings.CutSuffix(rest, ".sst")
	if !ok {
		return false
	}
	n, err := strconv.ParseInt(size, 10, 64)
	return err == nil && n >= 0 && strconv.FormatInt(n, 10) == size
}

// ParseCheckpointDir parses "chk-<20-digit id>" (without a slash).
func ParseCheckpointDir(elem string) (uint64, bool) {
	digits, ok := strings.CutPrefix(elem, chkPrefix)
	if !ok || len(digits) != idDigits {
		return 0, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	id, err := strconv.ParseUint(digits, 10, 64)
	return id, err == nil
}

// ListCheckpoints returns the ids of all checkpoint directories holding at
// least one object, with or without a manifest, in ascending order.
func ListCheckpoints(ctx context.Context, s BlobStore) ([]uint64, error) {
	objs, err := s.List(ctx, chkPrefix)
	if err != nil {
		return nil, err
	}
	var ids []uint64
	for _, o := range objs { // sorted, and fixed-width ids sort numerically
		dir, _, _ := strings.Cut(o.Name, "/")
		id, ok := ParseCheckpointDir(dir)
		if !ok {
			continue
		}
		if len(ids) == 0 || ids[len(ids)-1] != id {
			ids = append(ids, id)
		}
	}
	return ids, nil
}
