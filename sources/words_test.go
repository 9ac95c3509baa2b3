package sources

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"unicode"
)

func TestVocabulary(t *testing.T) {
	if len(vocabulary) != 1000 {
		t.Errorf("vocabulary has %d words; want 1000", len(vocabulary))
	}
	seen := map[string]bool{}
	for _, w := range vocabulary {
		if seen[w] {
			t.Errorf("duplicate word %q", w)
		}
		seen[w] = true
		if strings.TrimFunc(w, func(r rune) bool { return 'a' <= r && r <= 'z' }) != "" {
			t.Errorf("word %q is not lower-case ASCII letters", w)
		}
	}
	if !slices.IsSorted(zipfCDF) || zipfCDF[len(zipfCDF)-1] != ^uint64(0) {
		t.Error("zipfCDF is not a CDF")
	}
}

func TestWordsConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  WordsConfig
		want string
	}{
		{WordsConfig{Lines: -1}, "WordsConfig.Lines must be >= 0, got -1"},
		{WordsConfig{WordsPerLine: -3}, "WordsConfig.WordsPerLine must be >= 0, got -3"},
	} {
		_, err := Words(tc.cfg).Open(context.Background(), subtask(0, 1))
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: Open = %v; want ErrConfig with %q", tc.cfg, err, tc.want)
		}
	}
}

func TestWordsDefaults(t *testing.T) {
	lines := readAll(t, Words(WordsConfig{}), 0, 1, 4096)
	if len(lines) != DefaultWordsLines {
		t.Fatalf("got %d lines; want %d", len(lines), DefaultWordsLines)
	}
	counts := map[string]int{}
	var mixed, upper int
	for _, l := range lines {
		words := strings.Split(l, " ")
		if len(words) != DefaultWordsWordsPerLine {
			t.Fatalf("line %q has %d words; want %d", l, len(words), DefaultWordsWordsPerLine)
		}
		if !unicode.IsUpper(rune(l[0])) {
			t.Fatalf("line %q does not start with a capital", l)
		}
		for _, w := range words[1:] {
			switch {
			case len(w) > 1 && w == strings.ToUpper(w):
				upper++
			case w != strings.ToLower(w):
				mixed++
			}
		}
		for _, w := range words {
			counts[strings.ToLower(w)]++
		}
	}
	total := len(lines) * DefaultWordsWordsPerLine
	if upper < total/200 || mixed < total/100 {
		t.Errorf("%d upper-case and %d capitalized words in %d; want some of each", upper, mixed, total)
	}
	// Zipf: the word of rank r appears about 1/r as often as the first.
	first := counts[vocabulary[0]]
	for _, r := range []int{2, 10, 100} {
		got := float64(counts[vocabulary[r-1]]) / float64(first)
		if want := 1 / float64(r); got < want*0.8 || got > want*1.2 {
			t.Errorf("rank %d appears %.4f times as often as rank 1; want about %.4f", r, got, want)
		}
	}
	if len(counts) < 900 {
		t.Errorf("only %d distinct words", len(counts))
	}
	keys := slices.Collect(maps.Keys(counts))
	for _, w := range keys {
		if !slices.Contains(vocabulary, w) {
			t.Fatalf("word %q is not in the vocabulary", w)
		}
	}
}

func TestWordsDeterministic(t *testing.T) {
	cfg := WordsConfig{Lines: 1000, WordsPerLine: 5, Seed: 42}
	one := readAll(t, Words(cfg), 0, 1, 64)
	if again := readAll(t, Words(cfg), 0, 1, 7); !slices.Equal(one, again) {
		t.Fatal("same config, different lines")
	}
	for p := 2; p <= 5; p++ {
		outs := readEach(t, Words(cfg), p, 13)
		for i, out := range outs {
			// Subtask i emits lines i, i+p, ... of the p=1 text.
			for j, l := range out {
				if want := one[i+j*p]; l != want {
					t.Fatalf("p=%d subtask %d line %d = %q; want %q", p, i, j, l, want)
				}
			}
		}
		var all []string
		for _, out := range outs {
			all = append(all, out...)
		}
		slices.Sort(all)
		sorted := slices.Sorted(slices.Values(one))
		if !slices.Equal(all, sorted) {
			t.Fatalf("p=%d: lines differ from p=1 as a multiset", p)
		}
	}
	other := readAll(t, Words(WordsConfig{Lines: 1000, WordsPerLine: 5, Seed: 43}), 0, 1, 64)
	if slices.Equal(one, other) {
		t.Error("seeds 42 and 43 give the same text")
	}
	if got := readAll(t, Words(WordsConfig{Lines: 3, WordsPerLine: 1}), 0, 1, 8); len(got) != 3 || strings.Contains(got[0], " ") {
		t.Errorf("WordsPerLine 1: got %q", got)
	}
}

func BenchmarkWords(b *testing.B) {
	r, err := Words(WordsConfig{Lines: 1 << 62}).Open(context.Background(), subtask(0, 1))
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]string, 0, 1024)
	b.ReportAllocs()
	var n int
	for b.Loop() {
		buf, _ = r.Read(context.Background(), buf[:0])
		n += len(buf)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/line")
}
