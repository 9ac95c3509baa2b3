package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// TestStateExport runs the word count at parallelism 3 with checkpoints
// on a local directory and on the S3 server, exports its counts with
// `weir state export`, and reads the Parquet file back: one row per word,
// state "count/n", the word's total as the value.
func TestStateExport(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "out")
			ckpt, flags := checkpointStore(t, kind, dir)
			runToEnd(t, "wordcount", append([]string{"--lines", "20000", "--output", out, "--parallelism", "3",
				"--checkpoint-dir", ckpt, "--state-dir", filepath.Join(dir, "state")}, flags...)...)
			want, lost, dup := wordTotals(t, out)
			if lost != 0 || dup != 0 || len(want) == 0 {
				t.Fatalf("word count output: %d words, lost %d, duplicated %d", len(want), lost, dup)
			}
			pq := filepath.Join(dir, "counts.parquet")
			cmd := exec.Command(weirCLI(t), "state", "export", ckpt, "--operator", "count", "--out", pq)
			cmd.Env = os.Environ()
			if kind == "s3" {
				cmd.Env = append(cmd.Env, "WEIR_S3_ENDPOINT="+flags[1], "WEIR_S3_PATH_STYLE=true")
			}
			if msg, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("weir state export: %v\n%s", err, msg)
			}
			got := readCounts(t, pq)
			if !maps.Equal(got, want) {
				t.Fatalf("exported %d words, want the %d totals of the output (e.g. %v)", len(got), len(want), got)
			}
		})
	}
}

// readCounts reads the key, state and value columns of an exported file:
// the word (a JSON string) and its count (a JSON number) per row of state
// count/n.
func readCounts(t *testing.T, path string) map[string]int64 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
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
	col := func(name string) []string {
		idx := tbl.Schema().FieldIndices(name)
		if len(idx) != 1 {
			t.Fatalf("no column %q in %s", name, tbl.Schema())
		}
		var out []string
		for _, c := range tbl.Column(idx[0]).Data().Chunks() {
			s := c.(*array.String)
			for i := 0; i < s.Len(); i++ {
				out = append(out, s.Value(i))
			}
		}
		return out
	}
	keys, states, values := col("key"), col("state"), col("value")
	counts := map[string]int64{}
	for i := range keys {
		if states[i] != "count/n" {
			t.Fatalf("row %d: state %q, want count/n", i, states[i])
		}
		var w string
		var n int64
		if err := json.Unmarshal([]byte(keys[i]), &w); err != nil {
			t.Fatalf("row %d: key %q: %v", i, keys[i], err)
		}
		if err := json.Unmarshal([]byte(values[i]), &n); err != nil {
			t.Fatalf("row %d: value %q: %v", i, values[i], err)
		}
		if _, dup := counts[w]; dup {
			t.Fatalf("word %q exported twice", w)
		}
		counts[w] = n
	}
	return counts
}
