package sinks

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

type event struct {
	Key  string `json:"key"`
	N    int    `json:"n"`
	Note string `json:"note,omitempty"`
}

// listDir returns the file names in dir, sorted.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func events(from, n int) []event {
	out := make([]event, n)
	for i := range out {
		out[i] = event{Key: fmt.Sprintf("k%d", (from+i)%7), N: from + i}
	}
	return out
}

func TestJSONFiles(t *testing.T) {
	// Subtask i writes events N = 10000*i + j; for i = 0 and j < 10 they
	// take 19 bytes each: {"key":"k1","n":1}\n
	tests := []struct {
		name      string
		p         int
		perTask   int
		batch     int
		opts      []FileOption
		wantFiles []string // committed files after Finish
	}{
		{"one subtask, one file", 1, 10, 4, nil, []string{"part-00000-0000000001-0000.jsonl"}},
		{"three subtasks", 3, 5, 2, nil, []string{"part-00000-0000000001-0000.jsonl", "part-00001-0000000001-0000.jsonl", "part-00002-0000000001-0000.jsonl"}},
		{"subtask without records creates no file", 2, 0, 1, nil, nil},
		{"rolling", 1, 10, 3, []FileOption{MaxFileSize(95)}, []string{"part-00000-0000000001-0000.jsonl", "part-00000-0000000001-0001.jsonl"}},
		{"rolling one byte early", 1, 10, 3, []FileOption{MaxFileSize(94)}, []string{
			"part-00000-0000000001-0000.jsonl", "part-00000-0000000001-0001.jsonl", "part-00000-0000000001-0002.jsonl"}},
		{"record larger than the limit gets a file of its own", 2, 3, 1, []FileOption{MaxFileSize(1)}, []string{
			"part-00000-0000000001-0000.jsonl", "part-00000-0000000001-0001.jsonl", "part-00000-0000000001-0002.jsonl",
			"part-00001-0000000001-0000.jsonl", "part-00001-0000000001-0001.jsonl", "part-00001-0000000001-0002.jsonl"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "out", "nested") // created by Open
			sink := JSONFiles[event](dir, tc.opts...)
			var want []event
			for i := range tc.p {
				w := open(t, sink, i, tc.p)
				recs := events(10000*i, tc.perTask)
				want = append(want, recs...)
				for b := range slices.Chunk(recs, tc.batch) {
					must(t, w.Write(b))
				}
				// Nothing of this subtask is visible before Finish.
				for _, name := range listDir(t, dir) {
					if strings.HasPrefix(name, fmt.Sprintf("part-%05d-", i)) {
						t.Fatalf("visible file %s before Finish", name)
					}
				}
				must(t, w.Finish())
				must(t, w.Close())
			}
			if got := listDir(t, dir); !slices.Equal(got, tc.wantFiles) {
				t.Errorf("files %q; want %q", got, tc.wantFiles)
			}
			got, err := ReadJSONFiles[event](dir)
			must(t, err)
			if !slices.Equal(got, want) {
				t.Errorf("read back %v; want %v", got, want)
			}
		})
	}
}

func TestJSONFilesRollSizes(t *testing.T) {
	dir := t.TempDir()
	w := open(t, JSONFiles[event](dir, MaxFileSize(100)), 0, 1)
	must(t, w.Write(events(0, 50)))
	// Rolled files are closed but stay hidden until Finish.
	hidden := listDir(t, dir)
	if len(hidden) < 2 {
		t.Fatalf("files %q; want several rolled files", hidden)
	}
	must(t, w.Finish())
	must(t, w.Close())
	for _, name := range listDir(t, dir) {
		fi, err := os.Stat(filepath.Join(dir, name))
		must(t, err)
		if fi.Size() > 100 || fi.Size() < 100-30 {
			t.Errorf("%s: %d bytes; want at most 100 and filled", name, fi.Size())
		}
	}
	if len(listDir(t, dir)) != len(hidden) {
		t.Errorf("committed %d files; had %d hidden", len(listDir(t, dir)), len(hidden))
	}
}

func TestJSONFilesCloseWithoutFinish(t *testing.T) {
	dir := t.TempDir()
	sink := JSONFiles[event](dir, MaxFileSize(200))
	w0 := open(t, sink, 0, 2)
	w1 := open(t, sink, 1, 2)
	must(t, w0.Write(events(0, 30)))
	must(t, w1.Write(events(100, 3)))
	must(t, w1.Finish())
	must(t, w1.Close())
	must(t, w0.Close()) // subtask 0 fails
	var hidden, committed int
	for _, name := range listDir(t, dir) {
		switch {
		case strings.HasPrefix(name, ".part-00000-"):
			hidden++
		case name == "part-00001-0000000001-0000.jsonl":
			committed++
		default:
			t.Errorf("unexpected file %s", name)
		}
	}
	if hidden < 2 || committed != 1 {
		t.Errorf("%d hidden files of subtask 0 and %d committed of subtask 1; want several and 1", hidden, committed)
	}
	got, err := ReadJSONFiles[event](dir)
	must(t, err)
	if !slices.Equal(got, events(100, 3)) {
		t.Errorf("read %v; want only subtask 1's records", got)
	}
	if err := w0.Write(events(0, 1)); err == nil {
		t.Error("Write after Close succeeded")
	}
}

func TestJSONFilesEncoding(t *testing.T) {
	dir := t.TempDir()
	w := open(t, JSONFiles[event](dir), 0, 1)
	must(t, w.Write([]event{{Key: "<a&b>", N: 1, Note: "line\nbreak"}}))
	must(t, w.Finish())
	must(t, w.Close())
	data, err := os.ReadFile(filepath.Join(dir, "part-00000-0000000001-0000.jsonl"))
	must(t, err)
	if want := `{"key":"<a&b>","n":1,"note":"line\nbreak"}` + "\n"; string(data) != want {
		t.Errorf("file holds %q; want %q", data, want)
	}
}

func TestJSONFilesEncodeError(t *testing.T) {
	w := open(t, JSONFiles[func()](t.TempDir()), 2, 3)
	err := w.Write([]func(){func() {}})
	if err == nil || !strings.Contains(err.Error(), "sinks: json files: subtask 2: encode record") {
		t.Errorf("Write = %v; want an encode error naming the subtask", err)
	}
}

func TestJSONFilesErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	must(t, os.WriteFile(file, nil, 0o644))
	if _, err := JSONFiles[int](dir, MaxFileSize(0)).Open(t.Context(), subtask(0, 1)); !errors.Is(err, ErrConfig) ||
		!strings.Contains(err.Error(), "MaxFileSize must be > 0, got 0") {
		t.Errorf("MaxFileSize(0): Open = %v", err)
	}
	if _, err := JSONFiles[int](filepath.Join(file, "sub")).Open(t.Context(), subtask(0, 1)); err == nil ||
		!strings.Contains(err.Error(), file) {
		t.Errorf("dir under a file: Open = %v; want an error naming %s", err, file)
	}
}

func TestReadJSONFiles(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"part-00001-0000.jsonl":  `{"key":"c","n":3}` + "\n",
		"part-00000-0001.jsonl":  `{"key":"b","n":2}` + "\n",
		"part-00000-0000.jsonl":  `{"key":"a","n":1}` + "\n" + `{"key":"a","n":11}` + "\n",
		"part-00000-10000.jsonl": `{"key":"b","n":10000}` + "\n", // sorted numerically
		".part-00000-0002.jsonl": "not committed, not read\n",
		"other.txt":              "ignored\n",
		"part-x-0000.jsonl":      "ignored\n",
	}
	for name, content := range files {
		must(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	got, err := ReadJSONFiles[event](dir)
	must(t, err)
	want := []event{{Key: "a", N: 1}, {Key: "a", N: 11}, {Key: "b", N: 2}, {Key: "b", N: 10000}, {Key: "c", N: 3}}
	if !slices.Equal(got, want) {
		t.Errorf("got %v; want %v", got, want)
	}

	empty := t.TempDir()
	if got, err := ReadJSONFiles[event](empty); err != nil || len(got) != 0 {
		t.Errorf("empty dir: %v, %v", got, err)
	}
	if _, err := ReadJSONFiles[event](filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing dir: %v", err)
	}

	for _, tc := range []struct {
		content string
		line    int
	}{
		{`{"key":"a","n":1}` + "\n" + `{"key":"a","n":` + "\n", 2},
		{`{"key":"a","n":1}` + "\n\n" + `{"key":"a","n":1}` + "\n", 2},
		{`{"key":"a","n":"x"}`, 1},
		{`{"key":"a","n":1}` + "\n" + `{"key":"a","n":1}` + "\n" + `[]`, 3},
	} {
		bad := t.TempDir()
		path := filepath.Join(bad, "part-00003-0000.jsonl")
		must(t, os.WriteFile(path, []byte(tc.content), 0o644))
		_, err := ReadJSONFiles[event](bad)
		if want := fmt.Sprintf("sinks: read json files: %s:%d: ", path, tc.line); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%q: got %v; want an error starting %q", tc.content, err, want)
		}
	}
}

func BenchmarkJSONFiles(b *testing.B) {
	dir := b.TempDir()
	w, err := JSONFiles[event](dir, MaxFileSize(16<<20)).Open(b.Context(), subtask(0, 1))
	if err != nil {
		b.Fatal(err)
	}
	batch := events(0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		if err := w.Write(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/record")
	if err := w.Finish(); err != nil {
		b.Fatal(err)
	}
	w.Close()
}
