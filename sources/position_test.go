package sources

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir"
)

// restorable is a source under test, as the runtime sees it.
type restorable[T any] interface {
	weir.Source[T]
	Restore(ctx context.Context, info weir.SubtaskInfo, position []byte) (weir.SourceReader[T], error)
}

// drain reads r to io.EOF with batches of capacity batch.
func drain[T any](t *testing.T, r weir.SourceReader[T], batch int) []T {
	t.Helper()
	var out []T
	buf := make([]T, 0, batch)
	for reads := 0; ; reads++ {
		if reads > 1_000_000 {
			t.Fatal("no io.EOF")
		}
		got, err := r.Read(context.Background(), buf[:0])
		out = append(out, got...)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
	}
}

func position(t *testing.T, r any) []byte {
	t.Helper()
	cr, ok := r.(weir.CheckpointedReader)
	if !ok {
		t.Fatalf("%T is not a weir.CheckpointedReader", r)
	}
	pos, err := cr.Position()
	if err != nil {
		t.Fatalf("Position: %v", err)
	}
	return pos
}

// checkRestore reads subtask i of p for a random number of batches, takes
// the position, reads on to the end (list A), restores from the position and
// reads to the end (list B): A must equal B, and the records before the
// position followed by A must be the whole output of the subtask.
func checkRestore[T comparable](t *testing.T, rng *rand.Rand, src weir.Source[T], i, p int) {
	t.Helper()
	rs, ok := src.(restorable[T])
	if !ok {
		t.Fatalf("%T is not a weir.RestorableSource", src)
	}
	ctx := context.Background()
	whole := readAll(t, src, i, p, 64)

	batch := 1 + rng.IntN(20)
	r, err := rs.Open(ctx, subtask(i, p))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var before []T
	buf := make([]T, 0, batch)
	eof := false
	for n := rng.IntN(len(whole)/batch + 3); n > 0 && !eof; n-- {
		got, err := r.Read(ctx, buf[:0])
		before = append(before, got...)
		if errors.Is(err, io.EOF) {
			eof = true
		} else if err != nil {
			t.Fatal(err)
		}
	}
	pos := position(t, r)
	var a []T
	if !eof {
		a = drain(t, r, batch)
	}
	if after := position(t, r); len(after) == 0 {
		t.Fatal("empty position at the end")
	}

	r2, err := rs.Restore(ctx, subtask(i, p), pos)
	if err != nil {
		t.Fatalf("Restore(subtask %d/%d, after %d records): %v", i, p, len(before), err)
	}
	defer r2.Close()
	b := drain(t, r2, 1+rng.IntN(20))
	if !slices.Equal(a, b) {
		t.Fatalf("subtask %d/%d restored after %d records:\nA (read on) %d records %v\nB (restored) %d records %v",
			i, p, len(before), len(a), a, len(b), b)
	}
	if all := append(before, a...); !slices.Equal(all, whole) {
		t.Fatalf("subtask %d/%d: output with a Position in between differs from the whole output", i, p)
	}
	// A position taken at the end restores to an empty reader.
	r3, err := rs.Restore(ctx, subtask(i, p), position(t, r2))
	if err != nil {
		t.Fatalf("Restore at the end: %v", err)
	}
	defer r3.Close()
	if rest := drain(t, r3, 8); len(rest) != 0 {
		t.Fatalf("restored at the end, got %d more records", len(rest))
	}
	// An empty position means the start.
	r4, err := rs.Restore(ctx, subtask(i, p), nil)
	if err != nil {
		t.Fatalf("Restore(nil): %v", err)
	}
	defer r4.Close()
	if got := drain(t, r4, 7); !slices.Equal(got, whole) {
		t.Fatalf("Restore(nil) did not start from the beginning")
	}
}

func randomText(rng *rand.Rand, lines, maxLen int) string {
	var b strings.Builder
	for range lines {
		for range rng.IntN(maxLen + 1) {
			b.WriteByte(byte('a' + rng.IntN(26)))
		}
		if rng.IntN(4) == 0 {
			b.WriteByte('\r')
		}
		b.WriteByte('\n')
	}
	if rng.IntN(2) == 0 {
		b.WriteString("last line without newline")
	}
	return b.String()
}

func TestRestoreExactlyOnce(t *testing.T) {
	dir := t.TempDir()
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 7))
		path := filepath.Join(dir, fmt.Sprintf("in-%d.txt", seed))
		if err := os.WriteFile(path, []byte(randomText(rng, rng.IntN(300), 40)), 0o644); err != nil {
			t.Fatal(err)
		}
		values := make([]int, rng.IntN(500))
		for i := range values {
			values[i] = rng.Int()
		}
		srcs := map[string]func(i, p int){
			"slice": func(i, p int) { checkRestore(t, rng, Slice(values), i, p) },
			"sequence": func(i, p int) {
				checkRestore(t, rng, Sequence(SequenceConfig{Keys: 1 + rng.IntN(9), Count: int64(rng.IntN(60))}), i, p)
			},
			"sequence with rate": func(i, p int) {
				checkRestore(t, rng, Sequence(SequenceConfig{Keys: 1 + rng.IntN(9), Count: int64(rng.IntN(60)), Rate: 1e9}), i, p)
			},
			"lines": func(i, p int) { checkRestore(t, rng, Lines(path), i, p) },
			"words": func(i, p int) {
				checkRestore(t, rng, Words(WordsConfig{Lines: int64(rng.IntN(400)), WordsPerLine: 1 + rng.IntN(5), Seed: rng.Int64() - rng.Int64()}), i, p)
			},
		}
		for name, check := range srcs {
			t.Run(fmt.Sprintf("%s/seed=%d", name, seed), func(t *testing.T) {
				for p := 1; p <= 4; p++ {
					for i := range p {
						check(i, p)
					}
				}
			})
		}
	}
}

// TestLinesRestoreLongLines restores between lines longer than the read
// buffer.
func TestLinesRestoreLongLines(t *testing.T) {
	long := strings.Repeat("x", 3*linesBufferSize)
	content := "a\n" + long + "\nb\r\n" + long + "\n\nc"
	path := filepath.Join(t.TempDir(), "in.txt")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 10 {
		for p := 1; p <= 4; p++ {
			for i := range p {
				checkRestore(t, rng, Lines(path), i, p)
			}
		}
	}
}

// TestSequenceRestorePacing checks that a rate-limited reader restored after
// a long pause paces from the restore, without a burst to catch up.
func TestSequenceRestorePacing(t *testing.T) {
	cfg := SequenceConfig{Keys: 2, Count: 500, Rate: 100}
	clock := &fakeClock{t: time.Unix(1000, 0)}
	r := openFake(t, cfg, 0, 1, clock)
	buf := make([]Seq, 0, 16)
	var first []Seq
	for clock.t.Before(time.Unix(1002, 0)) {
		got, err := r.Read(context.Background(), buf[:0])
		if err != nil {
			t.Fatal(err)
		}
		first = append(first, got...)
	}
	pos := position(t, r)

	clock = &fakeClock{t: time.Unix(5000, 0)} // an hour later
	rr, err := Sequence(cfg).(restorable[Seq]).Restore(context.Background(), subtask(0, 1), pos)
	if err != nil {
		t.Fatal(err)
	}
	sr := rr.(*sequenceReader)
	sr.now, sr.sleep = clock.now, clock.sleep
	got, err := sr.Read(context.Background(), buf[:0])
	if err != nil || len(got) != 1 {
		t.Fatalf("first Read after restore = %d records, %v; want 1 (the one due at once)", len(got), err)
	}
	if want := (Seq{Key: int64(len(first) % 2), Seq: int64(len(first)/2 + 1)}); got[0] != want {
		t.Fatalf("first record after restore %v; want %v", got[0], want)
	}
	rest := int64(1000 - len(first))
	took := runFake(t, sr, clock, 16, cfg.Rate)
	// The remaining records (one already out) take (rest-1)/rate seconds.
	ideal := time.Duration(float64(rest-1) / cfg.Rate * float64(time.Second))
	if took < ideal-time.Second/50 || took > ideal+time.Second/50 {
		t.Errorf("%d records after restore took %v; want about %v", rest, took, ideal)
	}
}

// TestRestoreInvalidPosition checks that every corrupt, truncated or foreign
// position is an ErrPosition naming the problem, never a panic or a restart.
func TestRestoreInvalidPosition(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "in.txt")
	content := "alpha\nbeta\ngamma\ndelta\n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other.txt")
	if err := os.WriteFile(other, []byte(content+"more\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	type restoreFunc func(info weir.SubtaskInfo, pos []byte) error
	restoreOf := func(src any) restoreFunc {
		return func(info weir.SubtaskInfo, pos []byte) error {
			var r io.Closer
			var err error
			switch s := src.(type) {
			case restorable[int]:
				r, err = s.Restore(ctx, info, pos)
			case restorable[Seq]:
				r, err = s.Restore(ctx, info, pos)
			case restorable[string]:
				r, err = s.Restore(ctx, info, pos)
			default:
				t.Fatalf("%T is not restorable", src)
			}
			if err == nil {
				r.Close()
			}
			return err
		}
	}
	slice := restoreOf(Slice([]int{1, 2, 3, 4, 5}))
	seq := restoreOf(Sequence(SequenceConfig{Keys: 3, Count: 4}))
	lines := restoreOf(Lines(path))
	words := restoreOf(Words(WordsConfig{Lines: 10, Seed: 5}))

	valid := map[string][]byte{
		"slice":    encodePosition(posSlice, 1, 2, 5, 1),
		"sequence": encodePosition(posSequence, 1, 2, 3, 3),
		"lines":    encodePosition(posLines, 0, 1, uint64(len(content)), 6),
		"words":    encodePosition(posWords, 1, 2, 5, DefaultWordsWordsPerLine, 2),
	}
	fns := map[string]restoreFunc{"slice": slice, "sequence": seq, "lines": lines, "words": words}
	infos := map[string]weir.SubtaskInfo{"slice": subtask(1, 2), "sequence": subtask(1, 2), "lines": subtask(0, 1), "words": subtask(1, 2)}
	for name, pos := range valid {
		if err := fns[name](infos[name], pos); err != nil {
			t.Fatalf("%s: valid position: %v", name, err)
		}
	}

	tests := []struct {
		name    string
		restore restoreFunc
		info    weir.SubtaskInfo
		pos     []byte
		want    string
	}{
		{"one byte", slice, subtask(1, 2), []byte{1}, "slice: truncated: 1 bytes"},
		{"unknown version", slice, subtask(1, 2), append([]byte{9}, valid["slice"][1:]...), "slice: unknown version 9 (want 1)"},
		{"checksum", slice, subtask(1, 2), valid["slice"][:len(valid["slice"])-1], "slice: checksum mismatch"},
		{"other source", slice, subtask(1, 2), valid["sequence"], "slice: position of a sequence source"},
		{"unknown kind", slice, subtask(1, 2), encodePosition(77, 1, 2, 5, 1), "slice: position of a unknown source kind 77 source"},
		{"other parallelism", slice, subtask(1, 3), valid["slice"], "slice: position of subtask 1 of 2, restoring subtask 1 of 3"},
		{"other subtask", slice, subtask(0, 2), valid["slice"], "slice: position of subtask 1 of 2, restoring subtask 0 of 2"},
		{"missing field", slice, subtask(1, 2), encodePosition(posSlice, 1, 2, 5), "slice: 1 fields, want 2"},
		{"extra field", slice, subtask(1, 2), encodePosition(posSlice, 1, 2, 5, 1, 0), "slice: 3 fields, want 2"},
		{"other slice", slice, subtask(1, 2), encodePosition(posSlice, 1, 2, 6, 1), "slice: position of a slice of 6 values, source has 5"},
		{"past the end", slice, subtask(1, 2), encodePosition(posSlice, 1, 2, 5, 3), "slice: 3 values returned, but subtask 1 of 2 has only 2"},
		{"other keys", seq, subtask(1, 2), encodePosition(posSequence, 1, 2, 4, 3), "sequence: position of a sequence of 4 keys, source has 3"},
		{"sequence past the end", seq, subtask(1, 2), encodePosition(posSequence, 1, 2, 3, 5), "sequence: 5 records returned, but subtask 1 of 2 has only 4"},
		{"huge count", seq, subtask(1, 2), encodePosition(posSequence, 1, 2, 3, 1<<63), "records returned, but subtask 1 of 2 has only 4"},
		{"words seed", words, subtask(1, 2), encodePosition(posWords, 1, 2, 6, DefaultWordsWordsPerLine, 2), "words: position of words with Seed 6 and WordsPerLine 8, source has 5 and 8"},
		{"words past the end", words, subtask(1, 2), encodePosition(posWords, 1, 2, 5, DefaultWordsWordsPerLine, 6), "words: 6 lines returned, but subtask 1 of 2 has only 5"},
		{"file changed", restoreOf(Lines(other)), subtask(0, 1), valid["lines"], "lines: position in a file of 23 bytes, but " + other + " has 28: the file changed"},
		{"not a line start", lines, subtask(0, 1), encodePosition(posLines, 0, 1, uint64(len(content)), 7), "lines: offset 7 in " + path + " is not the start of a line"},
		{"offset past the end", lines, subtask(0, 1), encodePosition(posLines, 0, 1, uint64(len(content)), 24), "lines: offset 24 outside [0, 23]"},
		{"offset before the range", lines, subtask(1, 2), encodePosition(posLines, 1, 2, uint64(len(content)), 6), "lines: offset 6 outside [11, 23], the range of subtask 1 of 2"},
	}
	for _, tc := range tests {
		err := tc.restore(tc.info, tc.pos)
		if !errors.Is(err, ErrPosition) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Restore = %v; want ErrPosition with %q", tc.name, err, tc.want)
		}
	}

	// Every truncation and every single-bit flip of a valid position is an
	// error.
	for name, pos := range valid {
		for n := range len(pos) {
			if err := fns[name](infos[name], slices.Clip(pos[:n])); n > 0 && !errors.Is(err, ErrPosition) {
				t.Errorf("%s truncated to %d bytes: Restore = %v; want ErrPosition", name, n, err)
			}
		}
		for bit := range 8 * len(pos) {
			flipped := slices.Clone(pos)
			flipped[bit/8] ^= 1 << (bit % 8)
			if err := fns[name](infos[name], flipped); !errors.Is(err, ErrPosition) {
				t.Errorf("%s with bit %d flipped: Restore = %v; want ErrPosition", name, bit, err)
			}
		}
	}
}

// FuzzRestore feeds arbitrary positions, raw and with a valid checksum, to
// every source: Restore must return ErrPosition or a reader that reads its
// subtask's records from some point to the end, and never panic.
func FuzzRestore(f *testing.F) {
	dir := f.TempDir()
	path := filepath.Join(dir, "in.txt")
	content := "alpha\nbeta\n\ngamma\r\ndelta"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		f.Fatal(err)
	}
	f.Add([]byte{}, false, uint8(0), uint8(1))
	f.Add(encodePosition(posSlice, 0, 1, 5, 2), false, uint8(0), uint8(1))
	f.Add(encodePosition(posLines, 1, 2, uint64(len(content)), 18), false, uint8(1), uint8(2))
	f.Add([]byte{1, 3, 2, 1, 9, 2}, true, uint8(1), uint8(2))
	f.Fuzz(func(t *testing.T, pos []byte, addChecksum bool, index, p uint8) {
		if p == 0 || p > 8 || index >= p {
			return
		}
		if addChecksum {
			pos = binary32(pos)
		}
		info := subtask(int(index), int(p))
		fuzzOne(t, Slice([]int{1, 2, 3, 4, 5}), info, pos)
		fuzzOne(t, Sequence(SequenceConfig{Keys: 3, Count: 4}), info, pos)
		fuzzOne(t, Sequence(SequenceConfig{Keys: 3, Count: 4, Rate: 1e9}), info, pos)
		fuzzOne(t, Lines(path), info, pos)
		fuzzOne(t, Words(WordsConfig{Lines: 10, Seed: 5}), info, pos)
	})
}

// binary32 appends the checksum of a position body.
func binary32(body []byte) []byte {
	b := slices.Clone(body)
	sum := crcOf(b)
	return append(b, byte(sum>>24), byte(sum>>16), byte(sum>>8), byte(sum))
}

func fuzzOne[T comparable](t *testing.T, src weir.Source[T], info weir.SubtaskInfo, pos []byte) {
	r, err := src.(restorable[T]).Restore(context.Background(), info, pos)
	if err != nil {
		if !errors.Is(err, ErrPosition) {
			t.Fatalf("%T: Restore = %v; want ErrPosition", src, err)
		}
		return
	}
	defer r.Close()
	got := drain(t, r, 3)
	whole := readAll(t, src, info.Index, info.Parallelism, 5)
	if len(got) > len(whole) || !slices.Equal(got, whole[len(whole)-len(got):]) {
		t.Fatalf("%T: restored reader returned %v, not a suffix of %v", src, got, whole)
	}
}

func crcOf(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }
