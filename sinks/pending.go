package sinks

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
)

// Errors of the JSONFiles commit protocol; check with errors.Is.
var (
	// ErrPending marks a pending-commit description (what PreCommit
	// returned) that does not decode: corrupt, truncated, of an unknown
	// version or of another subtask.
	ErrPending = errors.New("sinks: invalid pending commit")
	// ErrCommit marks a commit that cannot be done because a file it
	// needs is missing or has another size than when it was pre-committed.
	ErrCommit = errors.New("sinks: cannot commit")
)

// pendingCommit describes the files that subtask index pre-committed up to
// checkpoint and that were not known to be committed then.
type pendingCommit struct {
	index      int
	checkpoint uint64
	files      []partFile
}

// A pending-commit description, as returned by PreCommit, is
//
//	version     1 byte, pendingVersion
//	index       uvarint, the subtask
//	checkpoint  uvarint
//	count       uvarint, the number of files
//	count times:
//	  name      uvarint length, then the hidden file name
//	  size      uvarint, in bytes
//	checksum    4 bytes, big-endian CRC-32C of everything before
//
// Every name must be the hidden name of a part file of the subtask with an
// epoch <= checkpoint, at most once.
const pendingVersion = 1

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func (p pendingCommit) encode() []byte {
	b := []byte{pendingVersion}
	b = binary.AppendUvarint(b, uint64(p.index))
	b = binary.AppendUvarint(b, p.checkpoint)
	b = binary.AppendUvarint(b, uint64(len(p.files)))
	for _, f := range p.files {
		b = binary.AppendUvarint(b, uint64(len(f.name)))
		b = append(b, f.name...)
		b = binary.AppendUvarint(b, uint64(f.size))
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func pendingErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrPending}, args...)...)
}

// decodePending decodes and validates a pending-commit description.
func decodePending(b []byte) (pendingCommit, error) {
	var p pendingCommit
	if len(b) < 1+3+4 {
		return p, pendingErrorf("truncated: %d bytes", len(b))
	}
	if b[0] != pendingVersion {
		return p, pendingErrorf("unknown version %d (want %d)", b[0], pendingVersion)
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if got := crc32.Checksum(body, castagnoli); got != sum {
		return p, pendingErrorf("checksum mismatch (stored %08x, computed %08x): corrupt or truncated", sum, got)
	}
	d := decoder{b: body[1:]}
	index := d.uvarint("subtask index")
	p.checkpoint = d.uvarint("checkpoint")
	count := d.uvarint("file count")
	if d.err != nil {
		return p, d.err
	}
	if index > math.MaxInt32 {
		return p, pendingErrorf("subtask index %d out of range", index)
	}
	p.index = int(index)
	// Every file takes at least 3 bytes: do not trust count for allocation.
	if count > uint64(len(d.b))/3 {
		return p, pendingErrorf("%d files in %d bytes", count, len(d.b))
	}
	p.files = make([]partFile, 0, count)
	seen := make(map[string]bool, count)
	for i := range count {
		n := d.uvarint("name length")
		if d.err == nil && n > uint64(len(d.b)) {
			return p, pendingErrorf("file %d: name of %d bytes, %d left", i, n, len(d.b))
		}
		name := d.bytes(int(n))
		size := d.uvarint("file size")
		if d.err != nil {
			return p, fmt.Errorf("%w (file %d)", d.err, i)
		}
		pn, hidden, ok := parsePartName(name)
		switch {
		case !ok || !hidden || pn.legacy:
			return p, pendingErrorf("file %d: %q is not the name of a hidden part file", i, name)
		case pn.index != p.index:
			return p, pendingErrorf("file %d: %s is not a file of subtask %d", i, name, p.index)
		case pn.epoch > p.checkpoint:
			return p, pendingErrorf("file %d: %s is of an epoch after checkpoint %d", i, name, p.checkpoint)
		case name != hiddenPartName(pn.index, pn.epoch, pn.seq):
			return p, pendingErrorf("file %d: %q is not a canonical part file name", i, name)
		case seen[name]:
			return p, pendingErrorf("file %d: %s listed twice", i, name)
		case size > math.MaxInt64:
			return p, pendingErrorf("file %d: %s: size %d out of range", i, name, size)
		}
		seen[name] = true
		p.files = append(p.files, partFile{name: name, size: int64(size)})
	}
	if len(d.b) != 0 {
		return p, pendingErrorf("%d unexpected trailing bytes", len(d.b))
	}
	return p, nil
}

// decoder reads fields off b; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint(field string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = pendingErrorf("truncated or malformed %s", field)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(n int) string {
	if d.err != nil {
		return ""
	}
	if n > len(d.b) {
		d.err = pendingErrorf("truncated: %d bytes left, want %d", len(d.b), n)
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
