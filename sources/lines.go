package sources

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"

	"github.com/weirstream/weir"
)

// Lines returns a bounded source of the lines of the text file at path,
// without their line ending ("\n" or "\r\n"; a final line need not end in a
// newline). Lines may be of any length.
//
// Subtasks split the file by byte ranges, as Hadoop splits text input:
// subtask i of p owns the lines that start in [i*size/p, (i+1)*size/p), reading
// past the end of its range to finish its last line, so every line is read
// exactly once whatever p is. The file must not change while it is read.
func Lines(path string) weir.Source[string] {
	return &linesSource{path: path}
}

type linesSource struct {
	path string
}

const linesBufferSize = 64 << 10

func (s *linesSource) Open(_ context.Context, info weir.SubtaskInfo) (weir.SourceReader[string], error) {
	return s.open(info, nil)
}

// Restore opens subtask info.Index at a position returned by its reader's
// Position; an empty position means the start. The position holds the byte
// offset of the next line and the file's size, which must not change.
func (s *linesSource) Restore(_ context.Context, info weir.SubtaskInfo, position []byte) (weir.SourceReader[string], error) {
	if len(position) == 0 {
		return s.open(info, nil)
	}
	if err := checkInfo("lines", info); err != nil {
		return nil, err
	}
	f, err := decodePosition(posLines, info, position, 2)
	if err != nil {
		return nil, err
	}
	return s.open(info, f)
}

var (
	_ weir.RestorableSource[string] = (*linesSource)(nil)
	_ weir.CheckpointedReader       = (*linesReader)(nil)
)

// open opens subtask info.Index at its start, or at the position fields
// [size, offset] when pos is not nil.
func (s *linesSource) open(info weir.SubtaskInfo, pos []uint64) (weir.SourceReader[string], error) {
	if err := checkInfo("lines", info); err != nil {
		return nil, err
	}
	f, err := os.Open(s.path)
	if err != nil {
		return nil, fmt.Errorf("sources: lines: %w", err) // *PathError names the path
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("sources: lines: %w", err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("sources: lines: %s is not a regular file", s.path)
	}
	size := fi.Size()
	start := splitPoint(size, info.Index, info.Parallelism)
	end := splitPoint(size, info.Index+1, info.Parallelism)
	r := &linesReader{path: s.path, f: f, index: info.Index, p: info.Parallelism, size: size, pos: start, end: end}
	if pos != nil {
		if err := r.seek(pos[0], pos[1], start); err != nil {
			r.Close()
			return nil, err
		}
		return r, nil
	}
	if start >= end {
		r.done = true // no line can start in an empty range
		return r, nil
	}
	from := start
	if start > 0 {
		// The line that holds byte start-1 belongs to the previous range
		// (or ends there, if that byte is a newline): skip through it.
		from = start - 1
	}
	r.br = bufio.NewReaderSize(io.NewSectionReader(f, from, size-from), linesBufferSize)
	if start > 0 {
		n, err := r.skipLine()
		r.pos = from + n
		if err == io.EOF {
			r.done = true
		} else if err != nil {
			r.Close()
			return nil, r.wrap(err)
		}
	}
	return r, nil
}

// seek positions r at offset, which a reader of a file of size size returned
// as its position, after checking that it is the start of a line (or the end
// of the file) at or after start, the start of the subtask's range.
func (r *linesReader) seek(size, offset uint64, start int64) error {
	if size != uint64(r.size) {
		return positionErrorf(posLines, "position in a file of %d bytes, but %s has %d: the file changed", size, r.path, r.size)
	}
	if offset < uint64(start) || offset > size {
		return positionErrorf(posLines, "offset %d outside [%d, %d], the range of subtask %d of %d in %s",
			offset, start, size, r.index, r.p, r.path)
	}
	r.pos = int64(offset)
	// A subtask with an empty range stays at its start, wherever that is.
	if emptyRange := start >= r.end && r.pos == start; !emptyRange && r.pos > 0 && r.pos < r.size {
		var b [1]byte
		if _, err := r.f.ReadAt(b[:], r.pos-1); err != nil {
			return r.wrap(err)
		}
		if b[0] != '\n' {
			return positionErrorf(posLines, "offset %d in %s is not the start of a line", offset, r.path)
		}
	}
	if r.pos >= r.end || r.pos >= r.size {
		r.done = true
		return nil
	}
	r.br = bufio.NewReaderSize(io.NewSectionReader(r.f, r.pos, r.size-r.pos), linesBufferSize)
	return nil
}

// splitPoint returns size*i/p without overflow.
func splitPoint(size int64, i, p int) int64 {
	hi, lo := bits.Mul64(uint64(size), uint64(i))
	q, _ := bits.Div64(hi, lo, uint64(p)) // i <= p, so the quotient fits
	return int64(q)
}

type linesReader struct {
	path     string
	f        *os.File
	index, p int // subtask index and parallelism
	br       *bufio.Reader
	size     int64 // file size at open
	pos      int64 // file offset of the next line
	end      int64 // lines starting at or after end belong to the next subtask
	long     []byte
	done     bool
}

// Position returns the offset of the next line and the file size (see
// Restore).
func (r *linesReader) Position() ([]byte, error) {
	return encodePosition(posLines, r.index, r.p, uint64(r.size), uint64(r.pos)), nil
}

func (r *linesReader) Read(ctx context.Context, buf []string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return buf, err
	}
	for n := space(buf); n > 0 && !r.done; n-- {
		if r.pos >= r.end {
			r.done = true
			break
		}
		if n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return buf, err
			}
		}
		line, err := r.readLine()
		if err != nil && err != io.EOF {
			return buf, r.wrap(err)
		}
		if len(line) == 0 { // io.EOF at a line start: no more lines
			r.done = true
			break
		}
		r.pos += int64(len(line))
		if l := len(line); l > 0 && line[l-1] == '\n' {
			line = line[:l-1]
		}
		if l := len(line); l > 0 && line[l-1] == '\r' {
			line = line[:l-1]
		}
		buf = append(buf, string(line))
		if err == io.EOF {
			r.done = true
		}
	}
	if r.done {
		return buf, io.EOF
	}
	return buf, nil
}

// readLine returns the next line including its '\n', if any. The result is
// valid until the next call. It returns io.EOF with the last line when that
// has no newline, and with an empty line at the end of input.
func (r *linesReader) readLine() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if !errors.Is(err, bufio.ErrBufferFull) {
		return line, err
	}
	r.long = append(r.long[:0], line...)
	for errors.Is(err, bufio.ErrBufferFull) {
		line, err = r.br.ReadSlice('\n')
		r.long = append(r.long, line...)
	}
	if cap(r.long) > 4*linesBufferSize {
		defer func() { r.long = nil }() // don't keep a huge line alive
	}
	return r.long, err
}

// skipLine reads through the next '\n' and returns the number of bytes read.
func (r *linesReader) skipLine() (int64, error) {
	var n int64
	for {
		line, err := r.br.ReadSlice('\n')
		n += int64(len(line))
		if !errors.Is(err, bufio.ErrBufferFull) {
			return n, err
		}
	}
}

func (r *linesReader) wrap(err error) error {
	return fmt.Errorf("sources: lines: read %s at offset %d: %w", r.path, r.pos, err)
}

func (r *linesReader) Close() error {
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	if err != nil {
		return fmt.Errorf("sources: lines: close %s: %w", r.path, err)
	}
	return nil
}
