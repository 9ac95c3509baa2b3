package stateexport_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/weirstream/weir"
	"github.com/weirstream/weir/internal/stateexport"
	"github.com/weirstream/weir/sinks"
	"github.com/weirstream/weir/sources"
	"github.com/weirstream/weir/statebackend"
	"github.com/weirstream/weir/storage"
)

type event struct {
	User  string
	Item  string
	Qty   int64
	Price float64
}

type purchase struct {
	Item  string
	Qty   int64
	Price float64
}

// farFuture is a processing-time timer no test run reaches.
const farFuture = 4102444800000 // 2100-01-01

// profileJob keeps, per user: a count of events, the quantity per item
// (map state), the purchases in order (list state), the largest quantity
// (reducing state) and one processing-time timer. Its bounded input ends
// with a final checkpoint in store.
func profileJob(t *testing.T, events []event, store storage.BlobStore) {
	t.Helper()
	job := weir.NewJob("profiles", weir.DefaultParallelism(2), weir.StateDir(t.TempDir()), weir.Checkpoints(weir.CheckpointConfig{Store: store}))
	// One source subtask: each user's events reach the keyed operator in
	// input order, so list state is deterministic.
	src := weir.From(job, "events", sources.Slice(events), weir.Parallelism(1))
	byUser := weir.KeyBy(src, func(e event) string { return e.User })
	res := weir.KeyedProcess(byUser, "profile", func(ctx weir.KeyedContext[string], e event, out weir.Emitter[int64]) error {
		n := weir.Value[int64](ctx, "count")
		n.Set(n.Get() + 1)
		items := weir.MapOf[string, int64](ctx, "items")
		q, _ := items.Get(e.Item)
		items.Put(e.Item, q+e.Qty)
		weir.List[purchase](ctx, "purchases").Add(purchase{Item: e.Item, Qty: e.Qty, Price: e.Price})
		weir.Reducing(ctx, "max-qty", func(a, b int64) int64 { return max(a, b) }).Add(e.Qty)
		ctx.Timers().RegisterProcessingTime(farFuture)
		out.Emit(n.Get())
		return nil
	}, func(weir.KeyedContext[string], int64, weir.Emitter[int64]) error { return nil }, weir.UID("profile"))
	weir.To(res, "discard", sinks.Discard[int64]())
	if err := job.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// exportedRow is a row read back from the Parquet file.
type exportedRow struct {
	KeyGroup  int32
	Key       string
	State     string
	Kind      string
	MapKey    *string
	Timestamp *int64
	Value     *string
}

func (r exportedRow) String() string {
	s := func(p *string) string {
		if p == nil {
			return "null"
		}
		return *p
	}
	ts := "null"
	if r.Timestamp != nil {
		ts = fmt.Sprint(*r.Timestamp)
	}
	return fmt.Sprintf("%d|%s|%s|%s|%s|%s|%s", r.KeyGroup, r.Key, r.State, r.Kind, s(r.MapKey), ts, s(r.Value))
}

// readParquet reads the exported file back with arrow-go's pqarrow reader.
func readParquet(t *testing.T, data []byte) ([]exportedRow, int) {
	t.Helper()
	pf, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	// Field metadata aside (the reader adds Parquet field ids), the schema
	// reads back as written.
	fields, want := tbl.Schema().Fields(), stateexport.Schema.Fields()
	if len(fields) != len(want) {
		t.Fatalf("schema read back:\n%s\nwant\n%s", tbl.Schema(), stateexport.Schema)
	}
	for i, f := range fields {
		if f.Name != want[i].Name || !arrow.TypeEqual(f.Type, want[i].Type) || f.Nullable != want[i].Nullable {
			t.Fatalf("field %d read back as %s, want %s", i, f, want[i])
		}
	}
	rows := make([]exportedRow, tbl.NumRows())
	for c := 0; c < int(tbl.NumCols()); c++ {
		i := 0
		for _, chunk := range tbl.Column(c).Data().Chunks() {
			for j := 0; j < chunk.Len(); j, i = j+1, i+1 {
				r := &rows[i]
				switch a := chunk.(type) {
				case *array.Int32:
					r.KeyGroup = a.Value(j)
				case *array.Int64:
					if a.IsValid(j) {
						v := a.Value(j)
						r.Timestamp = &v
					}
				case *array.String:
					var v *string
					if a.IsValid(j) {
						s := a.Value(j)
						v = &s
					}
					switch tbl.Schema().Field(c).Name {
					case "key":
						r.Key = *v
					case "state":
						r.State = *v
					case "kind":
						r.Kind = *v
					case "map_key":
						r.MapKey = v
					case "value":
						r.Value = v
					}
				default:
					t.Fatalf("column %d: %T", c, chunk)
				}
			}
		}
	}
	return rows, pf.NumRowGroups()
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestExportReadsBack(t *testing.T) {
	var events []event
	counts := map[string]int64{}
	items := map[[2]string]int64{}
	purchases := map[string][]purchase{}
	maxQty := map[string]int64{}
	for i := range 300 {
		e := event{User: fmt.Sprintf("user-%02d", i%23), Item: []string{"apple", "pear", "fig \"ripe\"", "kiwi ✓"}[i%4], Qty: int64(i%7 + 1), Price: float64(i) / 4}
		events = append(events, e)
		counts[e.User]++
		items[[2]string{e.User, e.Item}] += e.Qty
		purchases[e.User] = append(purchases[e.User], purchase{e.Item, e.Qty, e.Price})
		maxQty[e.User] = max(maxQty[e.User], e.Qty)
	}
	dir := t.TempDir()
	store, err := storage.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	profileJob(t, events, store)

	store2, m, err := stateexport.OpenCheckpoint(context.Background(), dir, storage.S3Config{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	// Small row groups: the export writes many.
	sum, err := stateexport.Export(context.Background(), store2, m, "profile", &out, stateexport.Options{RowGroupRows: 50, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	got, groups := readParquet(t, out.Bytes())

	kg := func(user string) int32 { return int32(statebackend.KeyGroupOf([]byte(user), m.MaxParallelism)) }
	var want []exportedRow
	str := func(s string) *string { return &s }
	for user, n := range counts {
		key := jsonOf(t, user)
		want = append(want,
			exportedRow{KeyGroup: kg(user), Key: key, State: "profile/count", Kind: "value", Value: str(fmt.Sprint(n))},
			exportedRow{KeyGroup: kg(user), Key: key, State: "profile/purchases", Kind: "list", Value: str(jsonOf(t, purchases[user]))},
			exportedRow{KeyGroup: kg(user), Key: key, State: "profile/max-qty", Kind: "reducing", Value: str(fmt.Sprint(maxQty[user]))},
		)
		ts := int64(farFuture)
		want = append(want, exportedRow{KeyGroup: kg(user), Key: key, State: "profile/processing-timers", Kind: "timers", Timestamp: &ts})
	}
	for k, q := range items {
		want = append(want, exportedRow{KeyGroup: kg(k[0]), Key: jsonOf(t, k[0]), State: "profile/items", Kind: "map", MapKey: str(jsonOf(t, k[1])), Value: str(fmt.Sprint(q))})
	}
	order := func(a, b exportedRow) int { return strings.Compare(a.String(), b.String()) }
	slices.SortFunc(got, order)
	slices.SortFunc(want, order)
	if len(got) != len(want) {
		t.Errorf("%d rows, want %d", len(got), len(want))
	}
	for i := range max(len(got), len(want)) {
		var g, w string
		if i < len(got) {
			g = got[i].String()
		}
		if i < len(want) {
			w = want[i].String()
		}
		if g != w {
			t.Errorf("row %d:\n got %s\nwant %s", i, g, w)
		}
	}
	if groups < 2 {
		t.Errorf("%d row groups for %d rows of at most 50", groups, len(got))
	}
	if sum.Rows != int64(len(want)) || sum.States["profile/count"] != int64(len(counts)) || sum.Subtasks != 2 || len(sum.Raw) != 0 {
		t.Errorf("summary %+v", sum)
	}
	line := sum.String()
	if !strings.Contains(line, fmt.Sprintf("exported %d rows of operator \"profile\"", len(want))) || !strings.Contains(line, "profile/items "+fmt.Sprint(len(items))) {
		t.Errorf("summary line %q", line)
	}

	// An operator without keyed state, and one that does not exist.
	for _, uid := range []string{"events", "nope"} {
		_, err := stateexport.Export(context.Background(), store2, m, uid, &bytes.Buffer{}, stateexport.Options{})
		if !errors.Is(err, stateexport.ErrUnknownOperator) || !strings.Contains(err.Error(), `"profile"`) {
			t.Errorf("export of %q: %v", uid, err)
		}
	}

	// DIR/chk-ID names the same checkpoint.
	_, m2, err := stateexport.OpenCheckpoint(context.Background(), filepath.Join(dir, strings.TrimSuffix(storage.CheckpointDir(m.CheckpointID), "/")), storage.S3Config{})
	if err != nil || m2.CheckpointID != m.CheckpointID {
		t.Fatalf("open chk dir: %v", err)
	}
	if _, _, err := stateexport.OpenCheckpoint(context.Background(), filepath.Join(dir, "chk-00000000000000000999"), storage.S3Config{}); err == nil {
		t.Fatal("opened a checkpoint that does not exist")
	}
	if _, _, err := stateexport.OpenCheckpoint(context.Background(), t.TempDir(), storage.S3Config{}); err == nil {
		t.Fatal("opened an empty directory")
	}

	if path := os.Getenv("WEIR_EXPORT_KEEP"); path != "" {
		// For reading the file by hand (DuckDB, pandas).
		if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// rawCodec is a user codec that does not describe itself.
type rawCodec struct{}

func (rawCodec) Append(dst []byte, v string) []byte { return append(dst, v...) }
func (rawCodec) Decode(src []byte) (string, error)  { return string(src), nil }
func (rawCodec) Fingerprint() string                { return "user/raw" }

// TestExportWindowKeysAndRawValues writes a subtask's state with the
// backend directly: window keys (key, window end), a value codec without a
// schema, and a window operator's composite timers.
func TestExportWindowKeysAndRawValues(t *testing.T) {
	ctx := context.Background()
	keyCodec := statebackend.MustCodecFor[int32]()
	b, err := statebackend.Open(t.TempDir(), statebackend.Options{MaxParallelism: 8, KeyGroups: statebackend.KeyGroupRange{Start: 0, End: 7},
		KeySchema: statebackend.SchemaOf(keyCodec)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	win, err := statebackend.NewValue(b, "op/window", statebackend.MustCodecFor[[]string]())
	if err != nil {
		t.Fatal(err)
	}
	note, err := statebackend.NewValue[string](b, "op/note", rawCodec{})
	if err != nil {
		t.Fatal(err)
	}
	timers, err := statebackend.NewTimers(b, "op/timers")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"op/window", "op/timers"} {
		if err := b.SetCurrentKeySchema(name, "window("+statebackend.SchemaOf(keyCodec)+")"); err != nil {
			t.Fatal(err)
		}
	}
	key := keyCodec.Append(nil, -42)
	kg := statebackend.KeyGroupOf(key, 8)
	composite := append(append([]byte(nil), key...), 0, 0, 0, 0, 0, 0, 0x03, 0xe8) // window end 1000
	b.SetCurrentKey(kg, composite)
	win.Set([]string{"a", "b"})
	timers.Register(999)
	b.SetCurrentKey(kg, key)
	note.Set("hi")

	// Persist the snapshot and store it as checkpoint 1 of operator "op".
	snap, err := b.Snapshot(1)
	if err != nil {
		t.Fatal(err)
	}
	files, err := snap.Persist(ctx, filepath.Join(t.TempDir(), "snap"))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Release(snap); err != nil {
		t.Fatal(err)
	}
	store := storage.NewMem()
	st := storage.SubtaskState{KeyGroups: storage.KeyGroupRange{Start: 0, End: 7}}
	for _, f := range files.Files {
		obj, err := storage.PrivateObject(1, "op", 0, f.Name)
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(files.Dir, f.Name))
		if err != nil {
			t.Fatal(err)
		}
		if err := store.Put(ctx, obj, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		size, crc, err := storage.ChecksumOf(ctx, bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		st.Files = append(st.Files, storage.StateFile{LocalName: f.Name, Object: obj, Size: size, CRC32C: crc})
	}
	m := &storage.Manifest{JobName: "windows", CheckpointID: 1, MaxParallelism: 8,
		Operators: []storage.OperatorState{{UID: "op", Subtasks: []storage.SubtaskState{st}}}}
	var out bytes.Buffer
	sum, err := stateexport.Export(ctx, store, m, "op", &out, stateexport.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := readParquet(t, out.Bytes())
	var lines []string
	for _, r := range got {
		lines = append(lines, r.String())
	}
	slices.Sort(lines)
	want := []string{
		fmt.Sprintf(`%d|-42|op/note|value|null|null|{"base64":"aGk="}`, kg),
		fmt.Sprintf(`%d|{"key":-42,"window_end":1000}|op/timers|timers|null|999|null`, kg),
		fmt.Sprintf(`%d|{"key":-42,"window_end":1000}|op/window|value|null|null|["a","b"]`, kg),
	}
	slices.Sort(want)
	if !slices.Equal(lines, want) {
		t.Fatalf("rows:\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if !slices.Equal(sum.Raw, []string{"op/note"}) || !strings.Contains(sum.String(), `no schema recorded for op/note`) {
		t.Fatalf("summary %+v: %s", sum, sum)
	}

	// A damaged file is refused by the download's checksum.
	st.Files[0].CRC32C ^= 1
	if _, err := stateexport.Export(ctx, store, m, "op", &bytes.Buffer{}, stateexport.Options{TempDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "CRC32C") {
		t.Fatalf("export of a damaged file: %v", err)
	}
}
