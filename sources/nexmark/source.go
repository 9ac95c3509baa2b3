package nexmark

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/weirstream/weir"
)

// ErrPosition marks a stored position that this source cannot resume from;
// check with errors.Is.
var ErrPosition = errors.New("nexmark: invalid position")

// Source returns a bounded source of cfg's events. Subtask i of p emits
// events i, i+p, i+2p, ... of the one sequence, so the events and their
// contents do not depend on the parallelism; each subtask's events are in
// event-time order (with OutOfOrderGroupSize 1). Its position is the number
// of events a subtask emitted.
func Source(cfg Config) weir.Source[Event] { return &source{cfg: cfg} }

type source struct{ cfg Config }

var (
	_ weir.RestorableSource[Event] = (*source)(nil)
	_ weir.CheckpointedReader      = (*reader)(nil)
)

func (s *source) Open(_ context.Context, info weir.SubtaskInfo) (weir.SourceReader[Event], error) {
	return s.open(info)
}

func (s *source) open(info weir.SubtaskInfo) (*reader, error) {
	g, err := NewGenerator(s.cfg)
	if err != nil {
		return nil, err
	}
	if info.Parallelism < 1 || info.Index < 0 || info.Index >= info.Parallelism {
		return nil, fmt.Errorf("%w: subtask %d of %d", ErrConfig, info.Index, info.Parallelism)
	}
	return &reader{g: g, next: int64(info.Index), step: int64(info.Parallelism), index: info.Index}, nil
}

// Restore resumes subtask info.Index after the events counted in position;
// the events, seed and parallelism must be those it was taken with.
func (s *source) Restore(_ context.Context, info weir.SubtaskInfo, position []byte) (weir.SourceReader[Event], error) {
	r, err := s.open(info)
	if err != nil || len(position) == 0 {
		return r, err
	}
	p, err := decodePosition(position)
	if err != nil {
		return nil, err
	}
	want := r.fingerprint()
	if p.fingerprint != want {
		return nil, fmt.Errorf("%w: taken for %v, resuming %v", ErrPosition, p.fingerprint, want)
	}
	// Subtask i has events i, i+p, ... < Events.
	if mine := (s.cfg.Events - int64(info.Index) + r.step - 1) / r.step; p.emitted > mine {
		return nil, fmt.Errorf("%w: %d events emitted by subtask %d of %d, which has %d", ErrPosition, p.emitted, info.Index, info.Parallelism, mine)
	}
	r.emitted = p.emitted
	r.next = int64(info.Index) + p.emitted*r.step
	return r, nil
}

type reader struct {
	g       *Generator
	next    int64 // the next event number
	step    int64
	index   int
	emitted int64
}

func (r *reader) Read(ctx context.Context, buf []Event) ([]Event, error) {
	if err := ctx.Err(); err != nil {
		return buf, err
	}
	n := cap(buf) - len(buf)
	if n == 0 {
		n = 256
	}
	events := r.g.cfg.Events
	for ; n > 0 && r.next < events; n-- {
		buf = append(buf, Event{})
		r.g.Event(r.next, &buf[len(buf)-1])
		r.next += r.step
		r.emitted++
	}
	if r.next >= events {
		return buf, io.EOF
	}
	return buf, nil
}

func (r *reader) Close() error { return nil }

// fingerprint is what a position must match.
type fingerprint struct {
	Events      int64
	Seed        uint64
	Parallelism int64
	Index       int64
}

func (f fingerprint) String() string {
	return fmt.Sprintf("%d events, seed %d, subtask %d of %d", f.Events, f.Seed, f.Index, f.Parallelism)
}

func (r *reader) fingerprint() fingerprint {
	return fingerprint{Events: r.g.cfg.Events, Seed: r.g.cfg.Seed, Parallelism: r.step, Index: int64(r.index)}
}

type position struct {
	fingerprint
	emitted int64
}

// A position is "NXM1", uvarints events, seed, parallelism, index,
// emitted, and the big-endian CRC-32C of what precedes.
const positionMagic = "NXM1"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Position implements weir.CheckpointedReader.
func (r *reader) Position() ([]byte, error) {
	f := r.fingerprint()
	b := []byte(positionMagic)
	for _, v := range []uint64{uint64(f.Events), f.Seed, uint64(f.Parallelism), uint64(f.Index), uint64(r.emitted)} {
		b = binary.AppendUvarint(b, v)
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

func decodePosition(b []byte) (position, error) {
	bad := func(what string) (position, error) {
		return position{}, fmt.Errorf("%w: %s (%d bytes)", ErrPosition, what, len(b))
	}
	if len(b) < len(positionMagic)+4 || string(b[:len(positionMagic)]) != positionMagic {
		return bad("not a nexmark position")
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(b[len(body):]) {
		return bad("checksum mismatch")
	}
	var v [5]uint64
	rest := body[len(positionMagic):]
	for i := range v {
		x, n := binary.Uvarint(rest)
		if n <= 0 || x > 1<<62 && i != 1 {
			return bad("bad field")
		}
		v[i], rest = x, rest[n:]
	}
	if len(rest) != 0 {
		return bad("trailing bytes")
	}
	return position{fingerprint{int64(v[0]), v[1], int64(v[2]), int64(v[3])}, int64(v[4])}, nil
}
