package sources

import (
	"bufio"
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// expectedLines is the oracle: bufio.Scanner's ScanLines with a buffer large
// enough for any line.
func expectedLines(content string) []string {
	sc := bufio.NewScanner(strings.NewReader(content))
	sc.Buffer(nil, len(content)+1)
	var out []string
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

func TestLines(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	randomText := func(lines int, maxLen int) string {
		var b strings.Builder
		for range lines {
			n := rng.IntN(maxLen + 1)
			for range n {
				b.WriteByte(byte('a' + rng.IntN(26)))
			}
			if rng.IntN(4) == 0 {
				b.WriteByte('\r')
			}
			b.WriteByte('\n')
		}
		return b.String()
	}
	long := strings.Repeat("x", 70<<10)
	huge := strings.Repeat("y", 200<<10)
	tests := []struct {
		name, content string
	}{
		{"empty file", ""},
		{"one line without newline", "a"},
		{"one line", "a\n"},
		{"one empty line", "\n"},
		{"empty lines", "\n\n\n"},
		{"no trailing newline", "one\ntwo\nthree"},
		{"trailing newline", "one\ntwo\nthree\n"},
		{"empty lines between", "a\n\n\nb\n\nc"},
		{"crlf", "a\r\nb\r\n\r\nc\r\n"},
		{"crlf without final newline", "a\r\nb\r"},
		{"short lines", "a\nb\nc\nd\ne\nf\ng\nh\ni\n"},
		{"long lines", long + "\n" + "b\n" + long + "\n"},
		{"huge lines around short ones", "a\n" + huge + "\nb\n\n" + huge + "\r\nc\n" + huge},
		{"huge line only", huge},
		{"random", randomText(500, 40)},
		{"random without final newline", strings.TrimSuffix(randomText(300, 10), "\n")},
	}
	dir := t.TempDir()
	for n, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "in"+strings.Repeat("-", n)+".txt")
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			want := expectedLines(tc.content)
			for p := 1; p <= 7; p++ {
				for _, batch := range []int{1, 3, 1000} {
					// Subtask ranges are in file order, so their outputs
					// concatenated are the file's lines in order.
					var got []string
					for _, out := range readEach(t, Lines(path), p, batch) {
						got = append(got, out...)
					}
					if !slices.Equal(got, want) {
						t.Fatalf("p=%d batch=%d: got %d lines %.200q, want %d lines %.200q", p, batch, len(got), got, len(want), want)
					}
				}
			}
		})
	}
}

// TestLinesEverySplit checks that every split point works: a file read with
// p subtasks for every p up to its size.
func TestLinesEverySplit(t *testing.T) {
	content := "ab\n\ncd\r\ne\n\n\nfgh\ni"
	path := filepath.Join(t.TempDir(), "in.txt")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	want := expectedLines(content)
	for p := 1; p <= len(content)+2; p++ {
		var got []string
		for _, out := range readEach(t, Lines(path), p, 4) {
			got = append(got, out...)
		}
		if !slices.Equal(got, want) {
			t.Errorf("p=%d: got %q, want %q", p, got, want)
		}
	}
}

func TestLinesErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.txt")
	for _, tc := range []struct {
		path, want string
	}{
		{missing, "sources: lines: open " + missing + ": no such file or directory"},
		{dir, "sources: lines: " + dir + " is not a regular file"},
	} {
		_, err := Lines(tc.path).Open(context.Background(), subtask(0, 1))
		if err == nil || err.Error() != tc.want {
			t.Errorf("Lines(%q).Open = %v; want %q", tc.path, err, tc.want)
		}
	}
}

func BenchmarkLines(b *testing.B) {
	var content bytes.Buffer
	for i := range 100000 {
		content.WriteString(strings.Repeat("w", i%80))
		content.WriteByte('\n')
	}
	path := filepath.Join(b.TempDir(), "in.txt")
	if err := os.WriteFile(path, content.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	buf := make([]string, 0, 1024)
	b.ReportAllocs()
	b.SetBytes(int64(content.Len()))
	for b.Loop() {
		r, err := Lines(path).Open(ctx, subtask(0, 1))
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for err == nil {
			buf, err = r.Read(ctx, buf[:0])
			n += len(buf)
		}
		r.Close()
		if n != 100000 {
			b.Fatalf("got %d lines, %v", n, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100000), "ns/line")
}
