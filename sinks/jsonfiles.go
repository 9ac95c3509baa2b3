package sinks

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/weirstream/weir"
)

// DefaultMaxFileSize is the size at which JSONFiles rolls to a new part file
// unless MaxFileSize says otherwise.
const DefaultMaxFileSize = 128 << 20

// FileOption configures a file sink.
type FileOption func(*fileConfig)

type fileConfig struct {
	maxSize int64
}

// MaxFileSize sets the size in bytes at which a subtask closes its part file
// and starts the next one; it must be > 0. A file exceeds it only when it
// holds a single record larger than the limit.
func MaxFileSize(bytes int64) FileOption {
	return func(c *fileConfig) { c.maxSize = bytes }
}

// JSONFiles returns a sink that writes records as JSON lines (encoding/json,
// one record per line, HTML characters not escaped) into part files in dir,
// which it creates if missing.
//
// Subtask I writes .part-IIIII-SSSS.jsonl, where IIIII is its index in five
// digits and SSSS the file's sequence number in four, starting at 0. Files
// whose name starts with "." are not committed. When a file would grow past
// the size limit the subtask closes it and starts the next one; the closed
// file stays hidden. Finish flushes and fsyncs the last file, renames every
// file of the subtask to its committed name part-IIIII-SSSS.jsonl (no leading
// dot) and fsyncs dir. Close without Finish leaves the files hidden, so output
// of a failed run is never visible as committed. A subtask that received no
// records creates no file.
//
// dir should hold the output of this sink only: hidden files of an earlier
// failed run are overwritten and committed files of the same name replaced.
func JSONFiles[T any](dir string, opts ...FileOption) weir.Sink[T] {
	cfg := fileConfig{maxSize: DefaultMaxFileSize}
	for _, o := range opts {
		o(&cfg)
	}
	return &jsonFilesSink[T]{dir: dir, cfg: cfg}
}

type jsonFilesSink[T any] struct {
	dir string
	cfg fileConfig
}

func (s *jsonFilesSink[T]) Open(_ context.Context, info weir.SubtaskInfo) (weir.SinkWriter[T], error) {
	if s.cfg.maxSize <= 0 {
		return nil, configErrorf("json files: MaxFileSize must be > 0, got %d", s.cfg.maxSize)
	}
	if err := checkInfo("json files", info); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, fmt.Errorf("sinks: json files: %w", err)
	}
	w := &jsonFilesWriter[T]{dir: s.dir, index: info.Index, maxSize: s.cfg.maxSize, logger: info.Logger}
	w.enc = json.NewEncoder(&w.rec)
	w.enc.SetEscapeHTML(false)
	return w, nil
}

// partFile is a part file that was written but is not committed yet.
type partFile struct {
	seq  int
	size int64
}

func hiddenPartName(index, seq int) string    { return fmt.Sprintf(".part-%05d-%04d.jsonl", index, seq) }
func committedPartName(index, seq int) string { return fmt.Sprintf("part-%05d-%04d.jsonl", index, seq) }

type jsonFilesWriter[T any] struct {
	dir     string
	index   int
	maxSize int64
	logger  *slog.Logger // may be nil

	// pending lists the files written and not committed, in order; while a
	// file is in progress it is the last one, open as f.
	pending []partFile
	nextSeq int
	f       *os.File
	bw      *bufio.Writer

	rec bytes.Buffer // the record being encoded, reused
	enc *json.Encoder

	err    error // sticky: the first I/O error
	state  writerState
	closed bool
}

type writerState int

const (
	writing writerState = iota
	finished
	failed
)

func (w *jsonFilesWriter[T]) Write(batch []T) error {
	if w.err != nil {
		return w.err
	}
	if w.state == finished || w.closed {
		return fmt.Errorf("sinks: json files: subtask %d: Write after Finish or Close", w.index)
	}
	for i := range batch {
		w.rec.Reset()
		if err := w.enc.Encode(&batch[i]); err != nil {
			return fmt.Errorf("sinks: json files: subtask %d: encode record: %w", w.index, err)
		}
		n := int64(w.rec.Len())
		if w.f != nil && w.current().size > 0 && w.current().size+n > w.maxSize {
			if err := w.closeCurrent(); err != nil {
				return w.fail(err)
			}
		}
		if w.f == nil {
			if err := w.openNext(); err != nil {
				return w.fail(err)
			}
		}
		if _, err := w.bw.Write(w.rec.Bytes()); err != nil {
			return w.fail(fmt.Errorf("write %s: %w", w.path(hiddenPartName(w.index, w.current().seq)), err))
		}
		w.current().size += n
	}
	return nil
}

func (w *jsonFilesWriter[T]) current() *partFile { return &w.pending[len(w.pending)-1] }

func (w *jsonFilesWriter[T]) path(name string) string { return filepath.Join(w.dir, name) }

func (w *jsonFilesWriter[T]) fail(err error) error {
	w.err = fmt.Errorf("sinks: json files: subtask %d: %w", w.index, err)
	w.state = failed
	return w.err
}

// openNext creates the next in-progress file.
func (w *jsonFilesWriter[T]) openNext() error {
	seq := w.nextSeq
	f, err := os.OpenFile(w.path(hiddenPartName(w.index, seq)), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	w.nextSeq++
	w.f = f
	if w.bw == nil {
		w.bw = bufio.NewWriterSize(f, 256<<10)
	} else {
		w.bw.Reset(f)
	}
	w.pending = append(w.pending, partFile{seq: seq})
	return nil
}

// closeCurrent makes the in-progress file durable and closes it; it stays
// hidden and pending.
func (w *jsonFilesWriter[T]) closeCurrent() error {
	name := w.path(hiddenPartName(w.index, w.current().seq))
	f := w.f
	w.f = nil
	if err := w.bw.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", name, err)
	}
	return nil
}

// preCommit closes the in-progress file, if any, so that every pending file
// is durable and complete.
func (w *jsonFilesWriter[T]) preCommit() error {
	if w.f == nil {
		return nil
	}
	return w.closeCurrent()
}

// commit renames the pending files, all closed by preCommit, to their
// committed names and fsyncs the directory. Renaming is idempotent in effect:
// a file already renamed is not pending any more.
func (w *jsonFilesWriter[T]) commit() error {
	if len(w.pending) == 0 {
		return nil
	}
	for len(w.pending) > 0 {
		seq := w.pending[0].seq
		from, to := w.path(hiddenPartName(w.index, seq)), w.path(committedPartName(w.index, seq))
		if err := os.Rename(from, to); err != nil {
			return err // *LinkError names both files
		}
		w.pending = w.pending[1:]
	}
	w.pending = nil
	return syncDir(w.dir)
}

func (w *jsonFilesWriter[T]) Finish() error {
	if w.err != nil {
		return w.err
	}
	if w.state == finished || w.closed {
		return fmt.Errorf("sinks: json files: subtask %d: Finish after Finish or Close", w.index)
	}
	if err := w.preCommit(); err != nil {
		return w.fail(err)
	}
	files := len(w.pending)
	if err := w.commit(); err != nil {
		return w.fail(err)
	}
	w.state = finished
	if w.logger != nil && files > 0 {
		w.logger.Info("committed output", "dir", w.dir, "files", files)
	}
	return nil
}

// Close closes the in-progress file without flushing it. Pending files stay
// hidden.
func (w *jsonFilesWriter[T]) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	if w.f == nil {
		return nil
	}
	name := w.path(hiddenPartName(w.index, w.current().seq))
	err := w.f.Close()
	w.f = nil
	if err != nil {
		return fmt.Errorf("sinks: json files: subtask %d: close %s: %w", w.index, name, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return d.Close()
}

// ReadJSONFiles reads the records of every committed part file in dir, as
// written by JSONFiles, ordered by subtask index and then file sequence
// number (the name order while sequence numbers have four digits). Hidden
// (uncommitted) files are ignored. A line that does not decode is an error
// naming the file and line number.
func ReadJSONFiles[T any](dir string) ([]T, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("sinks: read json files: %w", err)
	}
	type part struct {
		name       string
		index, seq int
	}
	var parts []part
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if index, seq, ok := parsePartName(e.Name()); ok {
			parts = append(parts, part{e.Name(), index, seq})
		}
	}
	slices.SortFunc(parts, func(a, b part) int {
		return cmp.Or(cmp.Compare(a.index, b.index), cmp.Compare(a.seq, b.seq), strings.Compare(a.name, b.name))
	})
	var out []T
	for _, p := range parts {
		if out, err = readJSONLines(filepath.Join(dir, p.name), out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// parsePartName parses a committed part file name, part-<index>-<seq>.jsonl.
func parsePartName(name string) (index, seq int, ok bool) {
	rest, ok1 := strings.CutPrefix(name, "part-")
	rest, ok2 := strings.CutSuffix(rest, ".jsonl")
	a, b, ok3 := strings.Cut(rest, "-")
	if !ok1 || !ok2 || !ok3 {
		return 0, 0, false
	}
	index, err1 := strconv.Atoi(a)
	seq, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || index < 0 || seq < 0 {
		return 0, 0, false
	}
	return index, seq, true
}

func readJSONLines[T any](path string, out []T) ([]T, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("sinks: read json files: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	for lineNo := 1; ; lineNo++ {
		line, err := br.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("sinks: read json files: %s:%d: %w", path, lineNo, err)
		}
		if len(line) == 0 && err != nil {
			return out, nil
		}
		var v T
		if jerr := json.Unmarshal(bytes.TrimSuffix(line, []byte{'\n'}), &v); jerr != nil {
			return nil, fmt.Errorf("sinks: read json files: %s:%d: %w", path, lineNo, jerr)
		}
		out = append(out, v)
		if err != nil {
			return out, nil
		}
	}
}
