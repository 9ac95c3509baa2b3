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
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/weirstream/weir"
	"github.com/weirstream/weir/internal/failpoint"
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
// Files are named by subtask, epoch and sequence number:
// .part-IIIII-EEEEEEEEEE-SSSS.jsonl while hidden (in progress or
// pre-committed) and part-IIIII-EEEEEEEEEE-SSSS.jsonl once committed, where
// IIIII is the subtask index in five digits, EEEEEEEEEE the epoch in ten and
// SSSS the file's sequence number within the epoch in four (each wider when
// the number needs it), starting at 0. Records written after checkpoint n-1's
// barrier and before barrier n belong to epoch n; a subtask starts at epoch 1,
// or at n+1 after Recover from checkpoint n. When a file would grow past the
// size limit the subtask closes it and starts the next one of the same epoch;
// the closed file stays hidden.
//
// Its writers are weir.CommittingWriters: PreCommit(n) flushes, fsyncs and
// closes the epoch's files and describes them, Commit(n) renames them to their
// committed names and fsyncs dir. The sink is a weir.RecoveringSink: Recover
// redoes a lost commit and deletes hidden files of later epochs. Without
// checkpoints, Finish commits every file of the subtask. Close without Finish
// or Commit leaves the files hidden, so output of a failed run is never
// visible as committed. An epoch without records creates no file.
//
// dir should hold the output of this sink only: hidden files of an earlier
// failed run are overwritten or deleted and committed files of the same name
// replaced.
func JSONFiles[T any](dir string, opts ...FileOption) weir.Sink[T] {
	cfg := fileConfig{maxSize: DefaultMaxFileSize}
	for _, o := range opts {
		o(&cfg)
	}
	s := &jsonFilesSink[T]{dir: dir, cfg: cfg}
	s.mu.restored = map[int]uint64{}
	return s
}

var (
	_ weir.RecoveringSink   = (*jsonFilesSink[int])(nil)
	_ weir.CommittingWriter = (*jsonFilesWriter[int])(nil)
	_ weir.Sink[int]        = (*jsonFilesSink[int])(nil)
	_ weir.SinkWriter[int]  = (*jsonFilesWriter[int])(nil)
)

type jsonFilesSink[T any] struct {
	dir string
	cfg fileConfig

	mu struct {
		sync.Mutex
		// restored is the checkpoint each subtask was recovered from:
		// its writer starts at the next epoch.
		restored map[int]uint64
	}
}

func (s *jsonFilesSink[T]) check(info weir.SubtaskInfo) error {
	if s.cfg.maxSize <= 0 {
		return configErrorf("json files: MaxFileSize must be > 0, got %d", s.cfg.maxSize)
	}
	if err := checkInfo("json files", info); err != nil {
		return err
	}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return fmt.Errorf("sinks: json files: %w", err)
	}
	return nil
}

func (s *jsonFilesSink[T]) Open(_ context.Context, info weir.SubtaskInfo) (weir.SinkWriter[T], error) {
	if err := s.check(info); err != nil {
		return nil, err
	}
	s.mu.Lock()
	restored := s.mu.restored[info.Index]
	s.mu.Unlock()
	w := &jsonFilesWriter[T]{dir: s.dir, index: info.Index, maxSize: s.cfg.maxSize, logger: info.Logger, epoch: restored + 1}
	w.enc = json.NewEncoder(&w.rec)
	w.enc.SetEscapeHTML(false)
	return w, nil
}

// Recover redoes the commit that pending (what PreCommit returned for
// subtask info.Index in the restored checkpoint, or nil) describes: it renames
// the files that are still hidden, and checks that the others are committed
// with the size they had. Then it deletes the subtask's hidden files of
// epochs after the restored checkpoint, which attempts that never completed a
// checkpoint left behind, and makes the subtask's next writer start at the
// epoch after the checkpoint. A pending description that does not decode is
// an ErrPending; a file that it lists and that is missing or has another size
// is an ErrCommit naming the file.
func (s *jsonFilesSink[T]) Recover(_ context.Context, info weir.SubtaskInfo, pending []byte) error {
	if err := s.check(info); err != nil {
		return err
	}
	var p pendingCommit
	if len(pending) > 0 {
		var err error
		if p, err = decodePending(pending); err != nil {
			return fmt.Errorf("sinks: json files: subtask %d: recover: %w", info.Index, err)
		}
		if p.index != info.Index {
			return fmt.Errorf("sinks: json files: subtask %d: recover: %w: description of subtask %d", info.Index, ErrPending, p.index)
		}
	}
	// Output of checkpoints up to the restored one is committed and stays,
	// also for a subtask that pre-committed nothing in it (a subtask added
	// by a rescale may have committed files in an earlier run).
	restored := max(p.checkpoint, info.RestoredCheckpoint)
	wrap := func(err error) error {
		return fmt.Errorf("sinks: json files: subtask %d: recover checkpoint %d: %w", info.Index, restored, err)
	}
	keep := map[string]bool{}
	for _, f := range p.files {
		keep[f.name] = true
	}
	committed, err := commitFiles(s.dir, p.files)
	if err != nil {
		return wrap(err)
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return wrap(err)
	}
	var removed int
	for _, e := range entries {
		n, _, ok := parsePartName(e.Name())
		// Hidden files of later epochs are leftovers of failed attempts;
		// committed ones belong to a checkpoint newer than the restored
		// one (recovery fell back past it) and would duplicate the rerun.
		if !ok || n.legacy || n.index != info.Index || n.epoch <= restored || keep[e.Name()] {
			continue
		}
		if err := os.Remove(filepath.Join(s.dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return wrap(err)
		}
		removed++
	}
	if committed+removed > 0 {
		if err := syncDir(s.dir); err != nil {
			return wrap(err)
		}
	}
	s.mu.Lock()
	s.mu.restored[info.Index] = restored
	s.mu.Unlock()
	if info.Logger != nil && committed+removed > 0 {
		info.Logger.Info("recovered output", "dir", s.dir, "checkpoint", restored, "committed", committed, "deleted", removed)
	}
	return nil
}

// partFile is a part file that was written but is not committed yet.
type partFile struct {
	name string // hidden name
	size int64
}

func hiddenPartName(index int, epoch uint64, seq int) string {
	return "." + committedPartName(index, epoch, seq)
}

func committedPartName(index int, epoch uint64, seq int) string {
	return fmt.Sprintf("part-%05d-%010d-%04d.jsonl", index, epoch, seq)
}

// partName is a parsed part file name.
type partName struct {
	index  int
	epoch  uint64 // 0 for legacy names
	seq    int
	legacy bool // part-<index>-<seq>.jsonl, written before epochs
}

// parsePartName parses a part file name, hidden (with a leading ".") or
// committed: part-<index>-<epoch>-<seq>.jsonl, or the legacy
// part-<index>-<seq>.jsonl.
func parsePartName(name string) (p partName, hidden, ok bool) {
	rest, hidden := strings.CutPrefix(name, ".")
	rest, ok1 := strings.CutPrefix(rest, "part-")
	rest, ok2 := strings.CutSuffix(rest, ".jsonl")
	if !ok1 || !ok2 {
		return p, false, false
	}
	fields := strings.Split(rest, "-")
	num := func(s string) (uint64, bool) {
		if s == "" || s[0] == '+' {
			return 0, false
		}
		v, err := strconv.ParseUint(s, 10, 64)
		return v, err == nil
	}
	var vals [3]uint64
	for i, f := range fields {
		if i >= len(vals) {
			return p, false, false
		}
		v, ok := num(f)
		if !ok {
			return p, false, false
		}
		vals[i] = v
	}
	switch len(fields) {
	case 2:
		p = partName{epoch: 0, legacy: true}
		vals[2], vals[1] = vals[1], 0
	case 3:
	default:
		return p, false, false
	}
	if vals[0] > math.MaxInt32 || vals[2] > math.MaxInt32 {
		return p, false, false
	}
	p.index, p.epoch, p.seq = int(vals[0]), vals[1], int(vals[2])
	return p, hidden, true
}

type jsonFilesWriter[T any] struct {
	dir     string
	index   int
	maxSize int64
	logger  *slog.Logger // may be nil

	// epoch is the epoch of the files being written (the checkpoint
	// before whose barrier they are, when checkpoint ids are consecutive),
	// files lists them in order; while a file is in progress it is the
	// last one, open as f.
	epoch   uint64
	files   []partFile
	nextSeq int
	f       *os.File
	bw      *bufio.Writer

	// preCommitted lists the files pre-committed and not committed yet, by
	// checkpoint, in increasing order.
	preCommitted []preCommit

	rec bytes.Buffer // the record being encoded, reused
	enc *json.Encoder

	err    error // sticky: the first I/O error
	state  writerState
	closed bool
}

type preCommit struct {
	checkpoint uint64
	files      []partFile
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
			return w.fail(fmt.Errorf("write %s: %w", w.path(w.current().name), err))
		}
		w.current().size += n
	}
	return nil
}

func (w *jsonFilesWriter[T]) current() *partFile { return &w.files[len(w.files)-1] }

func (w *jsonFilesWriter[T]) path(name string) string { return filepath.Join(w.dir, name) }

func (w *jsonFilesWriter[T]) fail(err error) error {
	w.err = fmt.Errorf("sinks: json files: subtask %d: %w", w.index, err)
	w.state = failed
	return w.err
}

// openNext creates the next in-progress file of the epoch.
func (w *jsonFilesWriter[T]) openNext() error {
	name := hiddenPartName(w.index, w.epoch, w.nextSeq)
	f, err := os.OpenFile(w.path(name), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
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
	w.files = append(w.files, partFile{name: name})
	return nil
}

// closeCurrent makes the in-progress file durable and closes it; it stays
// hidden.
func (w *jsonFilesWriter[T]) closeCurrent() error {
	name := w.path(w.current().name)
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

// endEpoch closes the in-progress file, if any, and returns the epoch's
// files, all durable and complete; the next record starts epoch next.
func (w *jsonFilesWriter[T]) endEpoch(next uint64) ([]partFile, error) {
	if w.f != nil {
		if err := w.closeCurrent(); err != nil {
			return nil, err
		}
	}
	files := w.files
	w.files, w.nextSeq, w.epoch = nil, 0, next
	return files, nil
}

// PreCommit makes the files of the current epoch durable, closes them and
// returns a description of every file pre-committed and not committed yet
// (see encodePending). Records written after it go to epoch checkpoint+1.
// Checkpoints must increase.
func (w *jsonFilesWriter[T]) PreCommit(checkpoint uint64) ([]byte, error) {
	pending, durable, err := w.PreCommitAsync(checkpoint)
	if err != nil {
		return nil, err
	}
	if err := durable(); err != nil {
		return nil, w.fail(err)
	}
	return pending, nil
}

// PreCommitAsync is PreCommit with the fsyncs off the barrier path: at the
// barrier it flushes the in-progress file and ends the epoch; durable, run
// on another goroutine before the checkpoint is acknowledged, fsyncs and
// closes that file and fsyncs the directory. Files of the epoch that were
// rotated earlier are durable already.
func (w *jsonFilesWriter[T]) PreCommitAsync(checkpoint uint64) ([]byte, func() error, error) {
	if w.err != nil {
		return nil, nil, w.err
	}
	if w.state == finished || w.closed {
		return nil, nil, fmt.Errorf("sinks: json files: subtask %d: PreCommit after Finish or Close", w.index)
	}
	if checkpoint < w.epoch {
		return nil, nil, fmt.Errorf("sinks: json files: subtask %d: PreCommit(%d) after checkpoint %d: checkpoints must increase",
			w.index, checkpoint, w.epoch-1)
	}
	if checkpoint == math.MaxUint64 {
		return nil, nil, fmt.Errorf("sinks: json files: subtask %d: PreCommit(%d): checkpoint id too large", w.index, checkpoint)
	}
	var (
		handoff *os.File
		name    string
	)
	if w.f != nil {
		name = w.path(w.current().name)
		if err := w.bw.Flush(); err != nil {
			w.f.Close()
			w.f = nil
			return nil, nil, w.fail(fmt.Errorf("pre-commit checkpoint %d: write %s: %w", checkpoint, name, err))
		}
		handoff, w.f = w.f, nil
	}
	files := w.files
	w.files, w.nextSeq, w.epoch = nil, 0, checkpoint+1
	w.preCommitted = append(w.preCommitted, preCommit{checkpoint: checkpoint, files: files})
	p := pendingCommit{index: w.index, checkpoint: checkpoint}
	for _, pc := range w.preCommitted {
		p.files = append(p.files, pc.files...)
	}
	dir := w.dir
	durable := func() error {
		if handoff != nil {
			err := handoff.Sync()
			if cerr := handoff.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("pre-commit checkpoint %d: fsync %s: %w", checkpoint, name, err)
			}
		}
		// The hidden files' directory entries must be durable before the
		// checkpoint that names them is acknowledged.
		if len(files) > 0 {
			if err := syncDir(dir); err != nil {
				return fmt.Errorf("pre-commit checkpoint %d: %w", checkpoint, err)
			}
		}
		return nil
	}
	return p.encode(), durable, nil
}

// Commit renames the files pre-committed at checkpoint and at every earlier
// checkpoint not committed yet, in order, and fsyncs the directory. It is
// idempotent: see commitFiles.
func (w *jsonFilesWriter[T]) Commit(checkpoint uint64) error {
	if w.err != nil {
		return w.err
	}
	var n, files int
	for n < len(w.preCommitted) && w.preCommitted[n].checkpoint <= checkpoint {
		pc := w.preCommitted[n]
		c, err := commitFiles(w.dir, pc.files)
		if err != nil {
			return w.fail(fmt.Errorf("commit checkpoint %d: %w", pc.checkpoint, err))
		}
		files += c
		n++
	}
	if n == 0 {
		return nil
	}
	if err := syncDir(w.dir); err != nil {
		return w.fail(fmt.Errorf("commit checkpoint %d: %w", checkpoint, err))
	}
	w.preCommitted = slices.Delete(w.preCommitted, 0, n)
	if w.logger != nil && files > 0 {
		w.logger.Debug("committed output", "dir", w.dir, "checkpoint", checkpoint, "files", files)
	}
	return nil
}

// commitFiles renames hidden files to their committed names, in order, and
// returns how many it renamed; the caller fsyncs the directory. A file already
// renamed (hidden missing, committed present with the right size) is skipped.
// A file of another size, or missing under both names, is an ErrCommit naming
// it.
func commitFiles(dir string, files []partFile) (int, error) {
	var renamed int
	for _, f := range files {
		hidden := filepath.Join(dir, f.name)
		committed := filepath.Join(dir, strings.TrimPrefix(f.name, "."))
		fi, err := os.Stat(hidden)
		switch {
		case err == nil:
			if fi.Size() != f.size {
				return renamed, fmt.Errorf("%w: %s has %d bytes, want %d", ErrCommit, hidden, fi.Size(), f.size)
			}
			if err := os.Rename(hidden, committed); err != nil {
				return renamed, err // *LinkError names both files
			}
			renamed++
			failpoint.Hit("sink-commit")
		case errors.Is(err, fs.ErrNotExist):
			fi, err := os.Stat(committed)
			if errors.Is(err, fs.ErrNotExist) {
				return renamed, fmt.Errorf("%w: %s is missing, and not committed as %s", ErrCommit, hidden, committed)
			}
			if err != nil {
				return renamed, err
			}
			if fi.Size() != f.size {
				return renamed, fmt.Errorf("%w: %s has %d bytes, want %d", ErrCommit, committed, fi.Size(), f.size)
			}
		default:
			return renamed, err
		}
	}
	return renamed, nil
}

// Finish commits every file of the subtask: the pre-committed ones, then
// those of the current epoch.
func (w *jsonFilesWriter[T]) Finish() error {
	if w.err != nil {
		return w.err
	}
	if w.state == finished || w.closed {
		return fmt.Errorf("sinks: json files: subtask %d: Finish after Finish or Close", w.index)
	}
	epoch := w.epoch
	files, err := w.endEpoch(epoch + 1)
	if err != nil {
		return w.fail(err)
	}
	var all []partFile
	for _, pc := range w.preCommitted {
		all = append(all, pc.files...)
	}
	all = append(all, files...)
	n, err := commitFiles(w.dir, all)
	if err != nil {
		return w.fail(fmt.Errorf("finish epoch %d: %w", epoch, err))
	}
	if n > 0 {
		if err := syncDir(w.dir); err != nil {
			return w.fail(err)
		}
	}
	w.preCommitted = nil
	w.state = finished
	if w.logger != nil && n > 0 {
		w.logger.Info("committed output", "dir", w.dir, "files", n)
	}
	return nil
}

// Close closes the in-progress file without flushing it. Uncommitted files
// stay hidden.
func (w *jsonFilesWriter[T]) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	if w.f == nil {
		return nil
	}
	name := w.path(w.current().name)
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
// written by JSONFiles, ordered by subtask index, epoch and file sequence
// number (compared as numbers). Legacy names without an epoch,
// part-<index>-<seq>.jsonl, are read too, before the subtask's other files.
// Hidden (uncommitted) files are ignored. A line that does not decode is an
// error naming the file and line number.
func ReadJSONFiles[T any](dir string) ([]T, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("sinks: read json files: %w", err)
	}
	type part struct {
		file string
		partName
	}
	var parts []part
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if p, hidden, ok := parsePartName(e.Name()); ok && !hidden {
			parts = append(parts, part{e.Name(), p})
		}
	}
	slices.SortFunc(parts, func(a, b part) int {
		return cmp.Or(cmp.Compare(a.index, b.index), cmp.Compare(a.epoch, b.epoch), cmp.Compare(a.seq, b.seq),
			strings.Compare(a.file, b.file))
	})
	var out []T
	for _, p := range parts {
		if out, err = readJSONLines(filepath.Join(dir, p.file), out); err != nil {
			return nil, err
		}
	}
	return out, nil
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
