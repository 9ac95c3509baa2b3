// Package stateexport writes the keyed state of one operator in a checkpoint
// as a Parquet file (weir state export), so that state can be inspected
// with DuckDB, pandas or any Parquet reader, without the job's Go types.
//
// Every stored entry is one row:
//
//	key_group  int32            the key group of the entry
//	key        string           the operator's key, as JSON
//	state      string           the state's name ("#<8 hex digits>" for an
//	                            id the snapshot does not list)
//	kind       string           value, map, list, reducing, timers (or
//	                            unknown)
//	map_key    string, null     the map key as JSON (map state only)
//	timestamp  int64, null      the timer's time (timers only)
//	value      string, null     the value as JSON: list state a JSON array
//	                            of its elements; null for timers
//
// Keys and values are decoded with the schemas that snapshots record
// (statebackend.SchemaOf, ParseSchema). Where none is recorded (a snapshot
// written before schemas, or a user codec that does not describe itself),
// the bytes are written as {"base64": "..."} and the summary says so.
//
// Rows are written in row groups of Options.RowGroupRows rows (fewer if
// they reach Options.RowGroupBytes first), so memory stays bounded
// whatever the size of the state; subtasks are downloaded and read one at
// a time.
package stateexport

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/cockroachdb/pebble/v2"

	"github.com/weirstream/weir/statebackend"
	"github.com/weirstream/weir/storage"
)

// Defaults of Options.
const (
	DefaultRowGroupRows  = 64 << 10
	DefaultRowGroupBytes = 64 << 20
)

// Options tunes Export. The zero value is valid.
type Options struct {
	// RowGroupRows and RowGroupBytes bound a row group (and the rows held
	// in memory): it is written once either is reached. Zero means the
	// defaults.
	RowGroupRows  int
	RowGroupBytes int
	// TempDir is where each subtask's files are downloaded and opened
	// ("" means os.TempDir()); it is removed after each subtask.
	TempDir string
}

// ErrUnknownOperator is returned (wrapped, listing the operators that have
// keyed state) when the checkpoint has no keyed state of the operator.
var ErrUnknownOperator = errors.New("no keyed state of operator")

// Summary describes an export.
type Summary struct {
	Checkpoint uint64
	Operator   string
	Subtasks   int // subtasks with keyed state
	Rows       int64
	// States counts the rows per state name.
	States map[string]int64
	// Raw names the states some of whose keys or values were written as
	// {"base64": ...} for lack of a schema.
	Raw []string
}

// String is the one-line summary weir state export prints.
func (s *Summary) String() string {
	names := make([]string, 0, len(s.States))
	for name := range s.States {
		names = append(names, name)
	}
	slices.Sort(names)
	var b strings.Builder
	fmt.Fprintf(&b, "exported %d rows of operator %q (%d subtasks) from checkpoint %d:", s.Rows, s.Operator, s.Subtasks, s.Checkpoint)
	for i, name := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, " %s %d", name, s.States[name])
	}
	if len(names) == 0 {
		b.WriteString(" no state")
	}
	if len(s.Raw) > 0 {
		fmt.Fprintf(&b, "; no schema recorded for %s: written as {\"base64\": ...}", strings.Join(s.Raw, ", "))
	}
	return b.String()
}

// OpenCheckpoint finds the checkpoint at path: DIR/chk-ID, or a checkpoint
// directory DIR meaning its newest valid checkpoint (storage.OpenCheckpoint).
// DIR may be s3://bucket/prefix, reached with cfg.
func OpenCheckpoint(ctx context.Context, path string, cfg storage.S3Config) (storage.BlobStore, *storage.Manifest, error) {
	return storage.OpenCheckpoint(ctx, path, func(dir string) (storage.BlobStore, error) { return storage.OpenDir(ctx, dir, cfg) })
}

// KeyedOperators returns the UIDs of the operators with keyed state in m.
func KeyedOperators(m *storage.Manifest) []string {
	var uids []string
	for _, op := range m.Operators {
		if keyed(op) {
			uids = append(uids, op.UID)
		}
	}
	slices.Sort(uids)
	return uids
}

func keyed(op storage.OperatorState) bool {
	for _, st := range op.Subtasks {
		if len(st.Files) > 0 {
			return true
		}
	}
	return false
}

// Export writes the keyed state of operator uid in checkpoint m, whose
// files are in store, to w as a Parquet file (it does not close w). An
// operator with no keyed state in m fails with ErrUnknownOperator.
func Export(ctx context.Context, store storage.BlobStore, m *storage.Manifest, uid string, w io.Writer, opts Options) (*Summary, error) {
	var op *storage.OperatorState
	for i := range m.Operators {
		if m.Operators[i].UID == uid && keyed(m.Operators[i]) {
			op = &m.Operators[i]
		}
	}
	if op == nil {
		have := KeyedOperators(m)
		list := "none has"
		if len(have) > 0 {
			list = "those with keyed state: " + quoteAll(have)
		}
		return nil, fmt.Errorf("checkpoint %d: %w %q (%s)", m.CheckpointID, ErrUnknownOperator, uid, list)
	}
	if opts.RowGroupRows <= 0 {
		opts.RowGroupRows = DefaultRowGroupRows
	}
	if opts.RowGroupBytes <= 0 {
		opts.RowGroupBytes = DefaultRowGroupBytes
	}
	wr, err := newWriter(w, opts)
	if err != nil {
		return nil, err
	}
	defer wr.release()
	for k, v := range map[string]string{
		"weir.job": m.JobName, "weir.checkpoint": strconv.FormatUint(m.CheckpointID, 10), "weir.operator": uid,
	} {
		if err := wr.fw.AppendKeyValueMetadata(k, v); err != nil {
			return nil, err
		}
	}
	sum := &Summary{Checkpoint: m.CheckpointID, Operator: uid, States: map[string]int64{}}
	raw := map[string]bool{}
	for i, st := range op.Subtasks {
		if len(st.Files) == 0 {
			continue
		}
		sum.Subtasks++
		if err := exportSubtask(ctx, store, m, uid, i, &st, wr, sum, raw, opts); err != nil {
			_ = wr.fw.Close()
			return nil, fmt.Errorf("operator %q subtask %d: %w", uid, i, err)
		}
	}
	if err := wr.flush(); err != nil {
		_ = wr.fw.Close()
		return nil, err
	}
	if err := wr.fw.Close(); err != nil {
		return nil, fmt.Errorf("write parquet: %w", err)
	}
	for name := range raw {
		sum.Raw = append(sum.Raw, name)
	}
	slices.Sort(sum.Raw)
	return sum, nil
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

// exportSubtask downloads one subtask's files, opens them and writes its
// rows.
func exportSubtask(ctx context.Context, store storage.BlobStore, m *storage.Manifest, uid string, index int, st *storage.SubtaskState,
	wr *writer, sum *Summary, raw map[string]bool, opts Options) (err error) {
	tmp, err := os.MkdirTemp(opts.TempDir, "weir-state-export-")
	if err != nil {
		return err
	}
	defer func() {
		if rerr := os.RemoveAll(tmp); err == nil && rerr != nil {
			err = rerr
		}
	}()
	files := filepath.Join(tmp, "checkpoint")
	if err := os.Mkdir(files, 0o755); err != nil {
		return err
	}
	paths := make([]string, len(st.Files))
	for i, f := range st.Files {
		paths[i] = filepath.Join(files, f.LocalName)
	}
	if _, err := storage.Download(ctx, store, st.Files, paths, 0); err != nil {
		return err
	}
	info, err := statebackend.ReadSnapshotInfo(nil, files)
	if err != nil {
		return err
	}
	b, err := statebackend.OpenFromCheckpoint(filepath.Join(tmp, "state"), files, statebackend.Options{
		MaxParallelism: m.MaxParallelism,
		KeyGroups:      statebackend.KeyGroupRange{Start: st.KeyGroups.Start, End: st.KeyGroups.End},
		// Restored value state goes straight to Pebble.
		ValueCacheSize: -1,
		CacheSize:      16 << 20,
	})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := b.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	if err := b.Flush(); err != nil {
		return err
	}
	dec, err := newDecoder(info)
	if err != nil {
		return err
	}
	it, err := b.DB().NewIter(&pebble.IterOptions{})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := it.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	for valid := it.First(); valid; valid = it.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		r, err := dec.row(it.Key(), v)
		if err != nil {
			return err
		}
		if r.raw {
			raw[r.state] = true
		}
		sum.Rows++
		sum.States[r.state]++
		if err := wr.add(r); err != nil {
			return err
		}
	}
	return nil
}

// row is one exported entry.
type row struct {
	keyGroup  int32
	key       []byte
	state     string
	kind      string
	mapKey    []byte // nil: null
	timestamp int64
	hasTime   bool
	value     []byte // nil: null
	raw       bool   // some part written as {"base64": ...}
}

// stateDecoder decodes the entries of one subtask.
type stateDecoder struct {
	states map[uint32]*stateSchemas
	cur    row
	buf    []byte // key, map key and value JSON
}

type stateSchemas struct {
	info              statebackend.StateInfo
	key, mapKey, vals *statebackend.Schema // nil: none recorded
}

func parseOptional(s string) (*statebackend.Schema, error) {
	sc, err := statebackend.ParseSchema(s)
	if errors.Is(err, statebackend.ErrNoSchema) {
		return nil, nil
	}
	return sc, err
}

func newDecoder(info *statebackend.SnapshotInfo) (*stateDecoder, error) {
	d := &stateDecoder{states: map[uint32]*stateSchemas{}}
	for _, si := range info.States {
		ss := &stateSchemas{info: si}
		var err error
		keySchema := info.KeySchema
		if si.CurrentKeySchema != "" {
			keySchema = si.CurrentKeySchema
		}
		if ss.key, err = parseOptional(keySchema); err != nil {
			return nil, fmt.Errorf("state %q: key: %w", si.Name, err)
		}
		if ss.mapKey, err = parseOptional(si.KeySchema); err != nil {
			return nil, fmt.Errorf("state %q: map key: %w", si.Name, err)
		}
		if ss.vals, err = parseOptional(si.ValueSchema); err != nil {
			return nil, fmt.Errorf("state %q: value: %w", si.Name, err)
		}
		d.states[si.ID] = ss
	}
	return d, nil
}

// appendJSON appends the JSON of src decoded with s, or {"base64": ...}
// when s is nil.
func (d *stateDecoder) appendJSON(s *statebackend.Schema, src []byte, what string) ([]byte, error) {
	if s == nil {
		d.cur.raw = true
		d.buf = append(d.buf, `{"base64":"`...)
		d.buf = base64.StdEncoding.AppendEncode(d.buf, src)
		d.buf = append(d.buf, `"}`...)
		return d.buf, nil
	}
	out, err := s.AppendJSON(d.buf, src)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	d.buf = out
	return out, nil
}

// part appends one JSON part to d.buf and returns its bytes.
func (d *stateDecoder) part(s *statebackend.Schema, src []byte, what string) ([]byte, error) {
	start := len(d.buf)
	out, err := d.appendJSON(s, src, what)
	if err != nil {
		return nil, err
	}
	return out[start:], nil
}

// row decodes the stored entry (k, v), valid until the next call.
func (d *stateDecoder) row(k, v []byte) (*row, error) {
	if len(k) < 6 {
		return nil, fmt.Errorf("stored key %x: shorter than key group and state id", k)
	}
	d.cur = row{keyGroup: int32(binary.BigEndian.Uint16(k))}
	d.buf = d.buf[:0]
	id := binary.BigEndian.Uint32(k[2:6])
	ss, ok := d.states[id]
	if !ok {
		// Not in the snapshot's list of states: bytes as they are.
		d.cur.state, d.cur.kind = fmt.Sprintf("#%08x", id), "unknown"
		var err error
		if d.cur.key, err = d.part(nil, k[6:], ""); err != nil {
			return nil, err
		}
		if d.cur.value, err = d.part(nil, v, ""); err != nil {
			return nil, err
		}
		return &d.cur, nil
	}
	d.cur.state, d.cur.kind = ss.info.Name, ss.info.Kind.String()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("state %q (%s), key group %d, stored key %x: %s", ss.info.Name, d.cur.kind, d.cur.keyGroup, k, fmt.Sprintf(format, args...))
	}
	var err error
	if ss.info.Kind == statebackend.KindTimers {
		// [kg][id][time 8 bytes, sign bit flipped][encoded key]
		if len(k) < 14 {
			return nil, bad("timer key shorter than its time")
		}
		d.cur.timestamp, d.cur.hasTime = int64(binary.BigEndian.Uint64(k[6:14])^(1<<63)), true
		if d.cur.key, err = d.part(ss.key, k[14:], "key"); err != nil {
			return nil, bad("%v", err)
		}
		return &d.cur, nil
	}
	n, m := binary.Uvarint(k[6:])
	if m <= 0 || n > uint64(len(k)-6-m) {
		return nil, bad("invalid key length")
	}
	key, rest := k[6+m:6+m+int(n)], k[6+m+int(n):]
	if d.cur.key, err = d.part(ss.key, key, "key"); err != nil {
		return nil, bad("%v", err)
	}
	switch ss.info.Kind {
	case statebackend.KindMap:
		if d.cur.mapKey, err = d.part(ss.mapKey, rest, "map key"); err != nil {
			return nil, bad("%v", err)
		}
	default:
		if len(rest) > 0 {
			return nil, bad("%d bytes after the key", len(rest))
		}
	}
	if ss.info.Kind == statebackend.KindList {
		d.cur.value, err = d.list(ss.vals, v)
	} else {
		d.cur.value, err = d.part(ss.vals, v, "value")
	}
	if err != nil {
		return nil, bad("%v", err)
	}
	return &d.cur, nil
}

// list decodes a list value, [uvarint length][element] records, into a
// JSON array.
func (d *stateDecoder) list(s *statebackend.Schema, v []byte) ([]byte, error) {
	start := len(d.buf)
	d.buf = append(d.buf, '[')
	for off, i := 0, 0; off < len(v); i++ {
		n, m := binary.Uvarint(v[off:])
		if m <= 0 || n > uint64(len(v)-off-m) {
			return nil, fmt.Errorf("list: corrupt element framing at offset %d", off)
		}
		if i > 0 {
			d.buf = append(d.buf, ',')
		}
		if _, err := d.appendJSON(s, v[off+m:off+m+int(n)], fmt.Sprintf("list element %d (at offset %d)", i, off+m)); err != nil {
			return nil, err
		}
		off += m + int(n)
	}
	d.buf = append(d.buf, ']')
	return d.buf[start:], nil
}

// Schema is the Arrow schema of the exported rows.
var Schema = arrow.NewSchema([]arrow.Field{
	{Name: "key_group", Type: arrow.PrimitiveTypes.Int32},
	{Name: "key", Type: arrow.BinaryTypes.String},
	{Name: "state", Type: arrow.BinaryTypes.String},
	{Name: "kind", Type: arrow.BinaryTypes.String},
	{Name: "map_key", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "timestamp", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "value", Type: arrow.BinaryTypes.String, Nullable: true},
}, nil)

// writer buffers rows into Arrow builders and writes a row group when
// they reach the bounds.
type writer struct {
	fw    *pqarrow.FileWriter
	rb    *array.RecordBuilder
	kg    *array.Int32Builder
	key   *array.StringBuilder
	state *array.StringBuilder
	kind  *array.StringBuilder
	mkey  *array.StringBuilder
	ts    *array.Int64Builder
	val   *array.StringBuilder
	rows  int
	bytes int
	opts  Options
}

func newWriter(w io.Writer, opts Options) (*writer, error) {
	props := parquet.NewWriterProperties(
		parquet.WithCompression(compress.Codecs.Snappy),
		parquet.WithMaxRowGroupLength(int64(opts.RowGroupRows)),
		parquet.WithCreatedBy("weir state export"),
	)
	// Hide w's Close, which the Parquet writer would call: w is the
	// caller's.
	fw, err := pqarrow.NewFileWriter(Schema, struct{ io.Writer }{w}, props, pqarrow.DefaultWriterProps())
	if err != nil {
		return nil, fmt.Errorf("write parquet: %w", err)
	}
	rb := array.NewRecordBuilder(memory.DefaultAllocator, Schema)
	return &writer{
		fw: fw, rb: rb, opts: opts,
		kg:    rb.Field(0).(*array.Int32Builder),
		key:   rb.Field(1).(*array.StringBuilder),
		state: rb.Field(2).(*array.StringBuilder),
		kind:  rb.Field(3).(*array.StringBuilder),
		mkey:  rb.Field(4).(*array.StringBuilder),
		ts:    rb.Field(5).(*array.Int64Builder),
		val:   rb.Field(6).(*array.StringBuilder),
	}, nil
}

func (w *writer) add(r *row) error {
	w.kg.Append(r.keyGroup)
	w.key.BinaryBuilder.Append(r.key)
	w.state.Append(r.state)
	w.kind.Append(r.kind)
	if r.mapKey != nil {
		w.mkey.BinaryBuilder.Append(r.mapKey)
	} else {
		w.mkey.AppendNull()
	}
	if r.hasTime {
		w.ts.Append(r.timestamp)
	} else {
		w.ts.AppendNull()
	}
	if r.value != nil {
		w.val.BinaryBuilder.Append(r.value)
	} else {
		w.val.AppendNull()
	}
	w.rows++
	w.bytes += len(r.key) + len(r.state) + len(r.kind) + len(r.mapKey) + len(r.value) + 32
	if w.rows >= w.opts.RowGroupRows || w.bytes >= w.opts.RowGroupBytes {
		return w.flush()
	}
	return nil
}

// flush writes the buffered rows as one row group.
func (w *writer) flush() error {
	if w.rows == 0 {
		return nil
	}
	rec := w.rb.NewRecordBatch()
	defer rec.Release()
	w.rows, w.bytes = 0, 0
	if err := w.fw.Write(rec); err != nil {
		return fmt.Errorf("write parquet: %w", err)
	}
	return nil
}

func (w *writer) release() { w.rb.Release() }
