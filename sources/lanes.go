package sources

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/weirstream/weir"
)

// A lane is how the generators (Sequence, Words) split their items (keys,
// line numbers) between subtasks and how they restore at another
// parallelism. A lane holds the items first, first+step, first+2*step, ...
// below n and emits them in rounds, every item once per round in increasing
// order; done counts the emissions so far. Subtask i of p starts with the
// one lane (i, p, 0).
//
// Rescaled to q subtasks, new subtask i keeps the items x ≡ i (mod q) of
// every old lane. That part of a lane is again a lane (its items are every
// c-th one of the old lane, c = q / gcd(step, q), with step step*c), and its
// progress is one count too: after r full rounds and e more items of the old
// lane, it has done r full rounds and the part's items among the first e. So
// a restored subtask holds at most one lane per old lane, and the steps stay
// divisors of the least common multiple of the parallelisms the job ran at.
type lane struct {
	first, step, done int64
}

// size returns how many items of l are below n.
func (l lane) size(n int64) int64 {
	if l.first >= n {
		return 0
	}
	return (n-l.first-1)/l.step + 1
}

// restrict returns the part of l, over items below n, of the items
// x ≡ i (mod q), with its progress; false if there is none.
//
// A part with no item below n is kept (with nothing done): Words' Lines may
// grow in a later run, and its items must not be lost.
func (l lane) restrict(n, i, q int64) (lane, bool) {
	// The items of l are first+m*step; those ≡ i (mod q) are the m in
	// one residue class t modulo c = q/gcd(step, q), if any.
	c := q / gcd(l.step, q)
	t := int64(-1)
	for m := range c {
		if (l.first+m*l.step)%q == i {
			t = m
			break
		}
	}
	if t < 0 {
		return lane{}, false
	}
	part := lane{first: l.first + t*l.step, step: l.step * c}
	if size := l.size(n); size > 0 {
		rounds, extra := l.done/size, l.done%size
		part.done = rounds*countFrom(size, t, c) + countFrom(extra, t, c)
	}
	return part, true
}

// countFrom returns how many of t, t+c, t+2c, ... are below n.
func countFrom(n, t, c int64) int64 {
	if t >= n {
		return 0
	}
	return (n-t-1)/c + 1
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// rescaleLanes returns the lanes of subtask info.Index of info.Parallelism
// from the lanes of the old subtasks, over items below n.
func rescaleLanes(old [][]lane, n int64, info weir.SubtaskInfo) []lane {
	var out []lane
	for _, ls := range old {
		for _, l := range ls {
			if part, ok := l.restrict(n, int64(info.Index), int64(info.Parallelism)); ok {
				out = append(out, part)
			}
		}
	}
	return out
}

// The position of a reader with lanes other than its starting one (after a
// rescale) is of kind posLanes (see positionVersion):
//
//	version, posLanes, parallelism, index   as every position
//	kind                                     uvarint, the generator (posSequence, posWords)
//	fingerprint                              uvarints, as in the generator's own position
//	lanes                                    uvarint count, then first, step, done of each
//	checksum
func encodeLanes(kind posKind, info weir.SubtaskInfo, fingerprint []uint64, lanes []lane) []byte {
	fields := []uint64{uint64(kind)}
	fields = append(fields, fingerprint...)
	fields = append(fields, uint64(len(lanes)))
	for _, l := range lanes {
		fields = append(fields, uint64(l.first), uint64(l.step), uint64(l.done))
	}
	return encodePosition(posLanes, info.Index, info.Parallelism, fields...)
}

// decodeLanes reads the lanes of a position of a generator of kind with
// nfp fingerprint fields, written by subtask info.Index of info.Parallelism:
// either its own position kind (one starting lane (index, parallelism) with
// done = the last field) or posLanes.
func decodeLanes(kind posKind, info weir.SubtaskInfo, b []byte, nfp int) (fingerprint []uint64, lanes []lane, err error) {
	if len(b) >= 2 && posKind(b[1]) == kind {
		f, err := decodePosition(kind, info, b, nfp+1)
		if err != nil {
			return nil, nil, err
		}
		return f[:nfp], []lane{{first: int64(info.Index), step: int64(info.Parallelism), done: int64(f[nfp])}}, nil
	}
	f, err := decodeFields(posLanes, info, b)
	if err != nil {
		return nil, nil, err
	}
	bad := func(format string, args ...any) error {
		return positionErrorf(kind, "rescaled position: "+format, args...)
	}
	if len(f) < 2+nfp || posKind(f[0]) != kind {
		return nil, nil, bad("of a %s source", posKind(f[0]))
	}
	fingerprint, f = f[1:1+nfp], f[1+nfp:]
	count := f[0]
	f = f[1:]
	if count > uint64(len(f)) || uint64(len(f)) != 3*count {
		return nil, nil, bad("%d lanes in %d fields", count, len(f))
	}
	for k := range int(count) {
		l := lane{first: int64(f[3*k]), step: int64(f[3*k+1]), done: int64(f[3*k+2])}
		if l.first < 0 || l.step <= 0 || l.done < 0 {
			return nil, nil, bad("lane %d (%d, %d, %d) out of range", k, f[3*k], f[3*k+1], f[3*k+2])
		}
		lanes = append(lanes, l)
	}
	return fingerprint, lanes, nil
}

// decodeFields is decodePosition for a kind with a variable number of
// fields.
func decodeFields(kind posKind, info weir.SubtaskInfo, b []byte) ([]uint64, error) {
	if len(b) < 8 {
		return nil, positionErrorf(kind, "truncated: %d bytes", len(b))
	}
	if v := b[0]; v != positionVersion {
		return nil, positionErrorf(kind, "unknown version %d (want %d)", v, positionVersion)
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if got := crc32.Checksum(body, castagnoli); got != sum {
		return nil, positionErrorf(kind, "checksum mismatch (stored %08x, computed %08x): corrupt or truncated", sum, got)
	}
	if k := posKind(b[1]); k != kind {
		return nil, positionErrorf(kind, "position of a %s source", k)
	}
	var vals []uint64
	for rest := body[2:]; len(rest) > 0; {
		v, l := binary.Uvarint(rest)
		if l <= 0 {
			return nil, positionErrorf(kind, "truncated or malformed field %d", len(vals))
		}
		vals = append(vals, v)
		rest = rest[l:]
	}
	if len(vals) < 2 {
		return nil, positionErrorf(kind, "truncated: %d fields", len(vals))
	}
	if p, index := vals[0], vals[1]; p != uint64(info.Parallelism) || index != uint64(info.Index) {
		return nil, positionErrorf(kind, "position of subtask %d of %d, restoring subtask %d of %d", index, p, info.Index, info.Parallelism)
	}
	return vals[2:], nil
}

// oldLanes decodes the positions of every old subtask of a rescaled
// generator (nil: that subtask's starting lane) and checks that they have
// one fingerprint.
func oldLanes(kind posKind, info weir.SubtaskInfo, positions [][]byte, nfp int) (fingerprint []uint64, lanes [][]lane, err error) {
	for j, b := range positions {
		old := info
		old.Index, old.Parallelism = j, len(positions)
		if len(b) == 0 {
			lanes = append(lanes, []lane{{first: int64(j), step: int64(len(positions))}})
			continue
		}
		fp, ls, err := decodeLanes(kind, old, b, nfp)
		if err != nil {
			return nil, nil, fmt.Errorf("subtask %d of %d: %w", j, len(positions), err)
		}
		if fingerprint != nil && fmt.Sprint(fp) != fmt.Sprint(fingerprint) {
			return nil, nil, positionErrorf(kind, "subtasks of the restored checkpoint disagree: %v and %v", fingerprint, fp)
		}
		fingerprint = fp
		lanes = append(lanes, ls)
	}
	return fingerprint, lanes, nil
}
