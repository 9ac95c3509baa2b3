package sinks

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/weirstream/weir"
)

// committing is a JSONFiles writer as the runtime sees it.
type committing interface {
	weir.SinkWriter[event]
	weir.CommittingWriter
}

func openCommitting(t *testing.T, s weir.Sink[event], i, p int) committing {
	t.Helper()
	w, ok := open(t, s, i, p).(committing)
	if !ok {
		t.Fatal("JSONFiles writer is not a weir.CommittingWriter")
	}
	return w
}

func recoverSink(s weir.Sink[event], i, p int, pending []byte) error {
	return s.(weir.RecoveringSink).Recover(context.Background(), subtask(i, p), pending)
}

func mustPreCommit(t *testing.T, w committing, n uint64) []byte {
	t.Helper()
	desc, err := w.PreCommit(n)
	if err != nil {
		t.Fatalf("PreCommit(%d): %v", n, err)
	}
	return desc
}

// countLostAndDuplicated compares the committed output of dir with want
// (records identified by N) and fails the test unless both counts are zero.
func countLostAndDuplicated(t *testing.T, dir string, want []event) []event {
	t.Helper()
	got, err := ReadJSONFiles[event](dir)
	must(t, err)
	seen := map[int]int{}
	for _, e := range got {
		seen[e.N]++
	}
	var lost, dup int
	for _, e := range want {
		switch n := seen[e.N]; {
		case n == 0:
			lost++
		case n > 1:
			dup += n - 1
		}
		delete(seen, e.N)
	}
	if lost != 0 || dup != 0 || len(seen) != 0 {
		t.Fatalf("lost %d, duplicated %d, unexpected %d records", lost, dup, len(seen))
	}
	return got
}

func hiddenFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, name := range listDir(t, dir) {
		if strings.HasPrefix(name, ".") {
			out = append(out, name)
		}
	}
	return out
}

// TestJSONFilesCrashAndRecover runs write / PreCommit(1) / write /
// PreCommit(2) / Commit(1) / write / crash / Recover from checkpoint 1 /
// rewrite epoch 2 / PreCommit / Commit / Finish, for two subtasks.
func TestJSONFilesCrashAndRecover(t *testing.T) {
	dir := t.TempDir()
	const p = 2
	sink := JSONFiles[event](dir, MaxFileSize(150)) // about 7 records a file
	recs := func(i, from, to int) []event { return events(1000*i+from, to-from) }

	pending1 := make([][]byte, p)
	epoch2 := make([][]string, p)
	for i := range p {
		w := openCommitting(t, sink, i, p)
		must(t, w.Write(recs(i, 0, 20)))
		pending1[i] = mustPreCommit(t, w, 1)
		must(t, w.Write(recs(i, 20, 45)))
		mustPreCommit(t, w, 2)
		for _, name := range hiddenFiles(t, dir) {
			if strings.HasPrefix(name, fmt.Sprintf(".part-%05d-0000000002-", i)) {
				epoch2[i] = append(epoch2[i], name)
			}
		}
		must(t, w.Commit(1))
		must(t, w.Write(recs(i, 45, 60))) // epoch 3, in progress
		// Crash: w is dropped without Close or Finish.
	}
	if len(epoch2[0]) < 2 {
		t.Fatalf("epoch 2 files %q; want several", epoch2[0])
	}
	var want []event
	for i := range p {
		want = append(want, recs(i, 0, 20)...)
	}
	countLostAndDuplicated(t, dir, want) // checkpoint 1 is visible, nothing else

	// Restart from checkpoint 1: a new sink, Recover, then the source
	// replays from record 20.
	sink = JSONFiles[event](dir, MaxFileSize(150))
	for i := range p {
		must(t, recoverSink(sink, i, p, pending1[i]))
	}
	if h := hiddenFiles(t, dir); len(h) != 0 {
		t.Fatalf("hidden files %q after Recover; want none", h)
	}
	for i := range p {
		w := openCommitting(t, sink, i, p)
		must(t, w.Write(recs(i, 20, 45)))
		mustPreCommit(t, w, 2)
		// Epoch 2 is rewritten under the same names.
		var names []string
		for _, name := range hiddenFiles(t, dir) {
			if strings.HasPrefix(name, fmt.Sprintf(".part-%05d-", i)) {
				names = append(names, name)
			}
		}
		if !slices.Equal(names, epoch2[i]) {
			t.Errorf("subtask %d: rewritten epoch 2 files %q; first attempt wrote %q", i, names, epoch2[i])
		}
		must(t, w.Write(recs(i, 45, 70)))
		mustPreCommit(t, w, 3)
		must(t, w.Commit(2))
		must(t, w.Commit(3))
		must(t, w.Commit(3)) // idempotent
		must(t, w.Write(recs(i, 70, 80)))
		must(t, w.Finish()) // epoch 4
		must(t, w.Close())
	}
	noHidden(t, dir)
	want = nil
	for i := range p {
		want = append(want, recs(i, 0, 80)...)
	}
	if got := countLostAndDuplicated(t, dir, want); !slices.Equal(got, want) {
		t.Errorf("records out of order:\ngot  %v\nwant %v", got, want)
	}
	for _, name := range listDir(t, dir) {
		if !strings.Contains(name, "-0000000001-") && !strings.Contains(name, "-0000000002-") &&
			!strings.Contains(name, "-0000000003-") && !strings.Contains(name, "-0000000004-") {
			t.Errorf("unexpected file %s", name)
		}
	}
}

func noHidden(t *testing.T, dir string) {
	t.Helper()
	if h := hiddenFiles(t, dir); len(h) != 0 {
		t.Fatalf("hidden files %q; want none", h)
	}
}

// TestJSONFilesLostCommit crashes after the manifest of checkpoint 1 was
// written and before Commit(1): Recover redoes the renames, also when some
// of them had happened, and is idempotent.
func TestJSONFilesLostCommit(t *testing.T) {
	dir := t.TempDir()
	sink := JSONFiles[event](dir, MaxFileSize(100))
	w := openCommitting(t, sink, 0, 1)
	must(t, w.Write(events(0, 30)))
	pending := mustPreCommit(t, w, 1)
	must(t, w.Write(events(30, 5)))
	// Crash before Commit(1). Nothing is visible.
	countLostAndDuplicated(t, dir, nil)
	hidden := hiddenFiles(t, dir)
	if len(hidden) < 3 {
		t.Fatalf("hidden files %q; want several", hidden)
	}
	// The first rename made it before the crash.
	must(t, os.Rename(filepath.Join(dir, hidden[0]), filepath.Join(dir, hidden[0][1:])))

	for range 2 { // Recover twice: the second finds everything committed
		sink = JSONFiles[event](dir, MaxFileSize(100))
		must(t, recoverSink(sink, 0, 1, pending))
		noHidden(t, dir)
		countLostAndDuplicated(t, dir, events(0, 30))
	}
	// The writer after Recover starts at epoch 2.
	w = openCommitting(t, sink, 0, 1)
	must(t, w.Write(events(30, 5)))
	must(t, w.Finish())
	must(t, w.Close())
	if got := listDir(t, dir); got[len(got)-1] != "part-00000-0000000002-0000.jsonl" {
		t.Errorf("files %q; want the last in epoch 2", got)
	}
	countLostAndDuplicated(t, dir, events(0, 35))
}

// TestJSONFilesOverlappingCheckpoints pre-commits checkpoints 1 and 2 before
// either completes; checkpoint 1 never does. Commit(2) commits both epochs in
// order, and the description of checkpoint 2 covers epoch 1 too.
func TestJSONFilesOverlappingCheckpoints(t *testing.T) {
	for _, viaRecover := range []bool{false, true} {
		t.Run(fmt.Sprintf("recover=%v", viaRecover), func(t *testing.T) {
			dir := t.TempDir()
			sink := JSONFiles[event](dir)
			w := openCommitting(t, sink, 0, 1)
			must(t, w.Write(events(0, 3)))
			mustPreCommit(t, w, 1)
			must(t, w.Write(events(3, 3)))
			pending2 := mustPreCommit(t, w, 2)
			must(t, w.Write(events(6, 3)))
			if viaRecover {
				must(t, recoverSink(JSONFiles[event](dir), 0, 1, pending2))
			} else {
				must(t, w.Commit(2))
				must(t, w.Commit(1)) // late, subsumed: nothing to do
			}
			if got := countLostAndDuplicated(t, dir, events(0, 6)); !slices.Equal(got, events(0, 6)) {
				t.Errorf("got %v; want epochs in order", got)
			}
			if !viaRecover {
				mustPreCommit(t, w, 4) // ids may skip
				must(t, w.Commit(4))
				countLostAndDuplicated(t, dir, events(0, 9))
				if _, err := w.PreCommit(4); err == nil || !strings.Contains(err.Error(), "PreCommit(4) after checkpoint 4: checkpoints must increase") {
					t.Errorf("PreCommit(4) twice = %v; want an error", err)
				}
			}
		})
	}
}

// TestJSONFilesRecoverDeletesLaterEpochs checks that Recover deletes the
// subtask's hidden files of later epochs only.
func TestJSONFilesRecoverDeletesLaterEpochs(t *testing.T) {
	dir := t.TempDir()
	files := []string{
		".part-00001-0000000002-0000.jsonl", // later epoch of subtask 1: deleted
		".part-00001-0000000012-0003.jsonl", // deleted
		".part-00001-0000000001-0000.jsonl", // epoch of the checkpoint, not listed: kept
		".part-00000-0000000003-0000.jsonl", // other subtask: kept
		".part-00001-0000.jsonl",            // legacy name: kept
		"part-00001-0000000002-0000.jsonl",  // committed: kept
		".other",
	}
	for _, name := range files {
		must(t, os.WriteFile(filepath.Join(dir, name), []byte("{}\n"), 0o644))
	}
	pending := pendingCommit{index: 1, checkpoint: 1}.encode()
	must(t, recoverSink(JSONFiles[event](dir), 1, 2, pending))
	want := []string{".other", ".part-00000-0000000003-0000.jsonl", ".part-00001-0000.jsonl",
		".part-00001-0000000001-0000.jsonl"}
	if got := listDir(t, dir); !slices.Equal(got, want) {
		t.Errorf("files after Recover %q; want %q", got, want)
	}
	// Without a checkpoint, every file of a later epoch of the subtask goes
	// (committed ones of a newer checkpoint too: recovery fell back past it).
	must(t, recoverSink(JSONFiles[event](dir), 1, 2, nil))
	want = []string{".other", ".part-00000-0000000003-0000.jsonl", ".part-00001-0000.jsonl"}
	if got := listDir(t, dir); !slices.Equal(got, want) {
		t.Errorf("files after Recover(nil) %q; want %q", got, want)
	}
}

// TestJSONFilesWrongSize checks that a file changed or lost after PreCommit
// fails Commit and Recover with an error naming it.
func TestJSONFilesWrongSize(t *testing.T) {
	setup := func(t *testing.T) (string, committing, []byte, string) {
		dir := t.TempDir()
		w := openCommitting(t, JSONFiles[event](dir), 0, 1)
		must(t, w.Write(events(0, 3)))
		pending := mustPreCommit(t, w, 1)
		return dir, w, pending, filepath.Join(dir, ".part-00000-0000000001-0000.jsonl")
	}
	appendTo := func(t *testing.T, path string) {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		must(t, err)
		_, err = f.WriteString("{}\n")
		must(t, err)
		must(t, f.Close())
	}
	t.Run("hidden file grew, Commit", func(t *testing.T) {
		_, w, _, hidden := setup(t)
		appendTo(t, hidden)
		err := w.Commit(1)
		if !errors.Is(err, ErrCommit) || !strings.Contains(err.Error(), hidden+" has 60 bytes, want 57") {
			t.Errorf("Commit = %v; want ErrCommit naming %s", err, hidden)
		}
	})
	t.Run("hidden file grew, Recover", func(t *testing.T) {
		dir, _, pending, hidden := setup(t)
		appendTo(t, hidden)
		err := recoverSink(JSONFiles[event](dir), 0, 1, pending)
		if !errors.Is(err, ErrCommit) || !strings.Contains(err.Error(), hidden+" has 60 bytes, want 57") {
			t.Errorf("Recover = %v; want ErrCommit naming %s", err, hidden)
		}
	})
	t.Run("file missing", func(t *testing.T) {
		dir, _, pending, hidden := setup(t)
		must(t, os.Remove(hidden))
		err := recoverSink(JSONFiles[event](dir), 0, 1, pending)
		if !errors.Is(err, ErrCommit) || !strings.Contains(err.Error(), hidden+" is missing") {
			t.Errorf("Recover = %v; want ErrCommit naming %s", err, hidden)
		}
	})
	t.Run("committed file of another size", func(t *testing.T) {
		dir, w, pending, hidden := setup(t)
		must(t, w.Commit(1))
		committed := filepath.Join(dir, "part-00000-0000000001-0000.jsonl")
		appendTo(t, committed)
		err := recoverSink(JSONFiles[event](dir), 0, 1, pending)
		if !errors.Is(err, ErrCommit) || !strings.Contains(err.Error(), committed+" has 60 bytes, want 57") {
			t.Errorf("Recover = %v; want ErrCommit naming %s", err, committed)
		}
		_ = hidden
	})
	t.Run("description of another subtask", func(t *testing.T) {
		dir, _, pending, _ := setup(t)
		err := recoverSink(JSONFiles[event](dir), 1, 2, pending)
		if !errors.Is(err, ErrPending) || !strings.Contains(err.Error(), "description of subtask 0") {
			t.Errorf("Recover = %v; want ErrPending", err)
		}
	})
}

func TestDecodePendingCorrupt(t *testing.T) {
	valid := pendingCommit{index: 3, checkpoint: 7, files: []partFile{
		{name: hiddenPartName(3, 6, 0), size: 100},
		{name: hiddenPartName(3, 7, 0), size: 5},
	}}
	b := valid.encode()
	got, err := decodePending(b)
	must(t, err)
	if got.index != 3 || got.checkpoint != 7 || !slices.Equal(got.files, valid.files) {
		t.Fatalf("round trip: %+v; want %+v", got, valid)
	}
	withSum := func(body []byte) []byte {
		return binaryAppendSum(slices.Clone(body))
	}
	file := func(name string, size uint64) pendingCommit {
		return pendingCommit{index: 3, checkpoint: 7, files: []partFile{{name: name, size: int64(size)}}}
	}
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", []byte{}, "truncated: 0 bytes"},
		{"version", append([]byte{2}, b[1:]...), "unknown version 2 (want 1)"},
		{"truncated", b[:len(b)-1], "checksum mismatch"},
		{"missing count", withSum([]byte{1, 3, 7, 0x80}), "truncated or malformed file count"},
		{"huge count", withSum([]byte{1, 3, 7, 0xff, 0xff, 0xff, 0xff, 0x0f}), "files in 0 bytes"},
		{"name too long", withSum([]byte{1, 3, 7, 1, 50, 'a', 'b', 'c'}), "file 0: name of 50 bytes, 3 left"},
		{"missing size", withSum(append([]byte{1, 3, 7, 1, 33}, hiddenPartName(3, 6, 0)...)), "truncated or malformed file size"},
		{"trailing bytes", withSum(append(b[:len(b)-4:len(b)-4], 0)), "1 unexpected trailing bytes"},
		{"committed name", file("part-00003-0000000006-0000.jsonl", 1).encode(), "is not the name of a hidden part file"},
		{"path", file("../../etc/passwd", 1).encode(), "is not the name of a hidden part file"},
		{"slash", file(".part-00003-0000000006-0000.jsonl/x", 1).encode(), "is not the name of a hidden part file"},
		{"legacy name", file(".part-00003-0000.jsonl", 1).encode(), "is not the name of a hidden part file"},
		{"other subtask", file(hiddenPartName(4, 6, 0), 1).encode(), "is not a file of subtask 3"},
		{"later epoch", file(hiddenPartName(3, 8, 0), 1).encode(), "is of an epoch after checkpoint 7"},
		{"not canonical", file(".part-3-6-0.jsonl", 1).encode(), "is not a canonical part file name"},
		{"size", file(hiddenPartName(3, 6, 0), 1<<63).encode(), "size 9223372036854775808 out of range"},
		{"twice", pendingCommit{index: 3, checkpoint: 7, files: []partFile{valid.files[0], valid.files[0]}}.encode(), "listed twice"},
		{"huge index", pendingCommit{index: 1 << 40, checkpoint: 7}.encode(), "subtask index 1099511627776 out of range"},
	}
	for _, tc := range tests {
		_, err := decodePending(tc.b)
		if !errors.Is(err, ErrPending) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: decodePending = %v; want ErrPending with %q", tc.name, err, tc.want)
		}
	}
	for n := range len(b) {
		if _, err := decodePending(b[:n]); !errors.Is(err, ErrPending) {
			t.Errorf("truncated to %d bytes: %v; want ErrPending", n, err)
		}
	}
	for bit := range 8 * len(b) {
		c := slices.Clone(b)
		c[bit/8] ^= 1 << (bit % 8)
		if _, err := decodePending(c); !errors.Is(err, ErrPending) {
			t.Errorf("bit %d flipped: %v; want ErrPending", bit, err)
		}
	}
	// A corrupt description fails Recover, naming the problem.
	err = recoverSink(JSONFiles[event](t.TempDir()), 3, 4, b[:len(b)-2])
	if !errors.Is(err, ErrPending) || !strings.Contains(err.Error(), "sinks: json files: subtask 3: recover: sinks: invalid pending commit: checksum mismatch") {
		t.Errorf("Recover(corrupt) = %v", err)
	}
}

// FuzzDecodePending checks that decodePending never panics and accepts only
// what encode produces.
func FuzzDecodePending(f *testing.F) {
	f.Add(pendingCommit{index: 3, checkpoint: 7, files: []partFile{{name: hiddenPartName(3, 6, 0), size: 100}}}.encode(), false)
	f.Add([]byte{1, 0, 0, 0}, true)
	f.Fuzz(func(t *testing.T, b []byte, addSum bool) {
		if addSum {
			b = binaryAppendSum(slices.Clone(b))
		}
		p, err := decodePending(b)
		if err != nil {
			if !errors.Is(err, ErrPending) {
				t.Fatalf("error %v does not wrap ErrPending", err)
			}
			return
		}
		if again := p.encode(); !slices.Equal(again, b) {
			t.Fatalf("decoded %+v re-encodes to %x, not %x", p, again, b)
		}
	})
}

func binaryAppendSum(b []byte) []byte {
	sum := crc32Checksum(b)
	return append(b, byte(sum>>24), byte(sum>>16), byte(sum>>8), byte(sum))
}

func TestReadJSONFilesEpochs(t *testing.T) {
	dir := t.TempDir()
	files := map[string]int{
		"part-00001-0000000001-0000.jsonl":   7,
		"part-00000-0000000010-0000.jsonl":   5,
		"part-00000-0000000009-0001.jsonl":   4,
		"part-00000-0000000009-0000.jsonl":   3,
		"part-00000-99999999999-0000.jsonl":  6, // wider epoch, sorted numerically
		"part-00000-0001.jsonl":              2, // legacy: before epochs
		"part-00000-0000.jsonl":              1,
		".part-00000-0000000011-0000.jsonl":  0, // hidden: not read
		"part-00000-0000000011-x.jsonl":      0,
		"part-00000-0000000011-0000-1.jsonl": 0,
		"part-00000--1-0000.jsonl":           0,
		"part-00000-+1-0000.jsonl":           0,
	}
	for name, n := range files {
		must(t, os.WriteFile(filepath.Join(dir, name), fmt.Appendf(nil, `{"key":"k","n":%d}`+"\n", n), 0o644))
	}
	got, err := ReadJSONFiles[event](dir)
	must(t, err)
	var ns []int
	for _, e := range got {
		ns = append(ns, e.N)
	}
	if want := []int{1, 2, 3, 4, 5, 6, 7}; !slices.Equal(ns, want) {
		t.Errorf("read %v; want %v", ns, want)
	}
}

// TestJSONFilesRandomCrashes is a metamorphic test: seeded random runs of
// writes, overlapping checkpoints (some aborted, ids sometimes skipping),
// commits, lost commits and crashes with restarts from the latest complete
// checkpoint. Whatever happens, the committed output is every record exactly
// once, in order.
func TestJSONFilesRandomCrashes(t *testing.T) {
	for seed := range uint64(40) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, 11))
			dir := t.TempDir()
			p := 1 + rng.IntN(3)
			maxSize := int64(40 + rng.IntN(400))
			var want []event
			for i := range p {
				recs := events(100000*i, 100+rng.IntN(400))
				runRandomSubtask(t, rng, dir, maxSize, i, p, recs)
				want = append(want, recs...)
			}
			noHidden(t, dir)
			if got := countLostAndDuplicated(t, dir, want); !slices.Equal(got, want) {
				t.Fatal("records out of order")
			}
		})
	}
}

// checkpointRecord is what the manifest of a checkpoint holds for a subtask.
type checkpointRecord struct {
	id      uint64
	offset  int // source position: records before the barrier
	pending []byte
}

func runRandomSubtask(t *testing.T, rng *rand.Rand, dir string, maxSize int64, i, p int, recs []event) {
	t.Helper()
	var (
		latest   *checkpointRecord  // latest complete checkpoint
		inFlight []checkpointRecord // pre-committed, not complete
		nextID   uint64             = 1
		offset   int
		sink     = JSONFiles[event](dir, MaxFileSize(maxSize))
		w        = openCommitting(t, sink, i, p)
	)
	for steps := 0; offset < len(recs); steps++ {
		if steps > 10000 {
			t.Fatal("no progress")
		}
		switch op := rng.IntN(10); {
		case op < 4: // write a batch
			n := min(1+rng.IntN(20), len(recs)-offset)
			must(t, w.Write(recs[offset:offset+n]))
			offset += n
		case op < 6: // barrier: pre-commit
			if rng.IntN(4) == 0 {
				nextID++ // a checkpoint declined before it reached the sink
			}
			inFlight = append(inFlight, checkpointRecord{id: nextID, offset: offset, pending: mustPreCommit(t, w, nextID)})
			nextID++
		case op < 8 && len(inFlight) > 0: // a checkpoint completes or aborts
			k := rng.IntN(len(inFlight))
			cp := inFlight[k]
			inFlight = inFlight[k+1:] // older ones are subsumed or aborted
			if rng.IntN(5) == 0 {
				continue // aborted
			}
			latest = &cp // manifest written
			if rng.IntN(3) > 0 {
				must(t, w.Commit(cp.id)) // notified; otherwise the commit is lost
			}
		case op == 8: // crash and restart from the latest checkpoint
			var pending []byte
			offset = 0
			if latest != nil {
				pending, offset = latest.pending, latest.offset
			}
			if rng.IntN(2) == 0 && latest != nil {
				nextID = latest.id + 1 // ids restart after the restored one
			}
			inFlight = nil
			sink = JSONFiles[event](dir, MaxFileSize(maxSize))
			must(t, recoverSink(sink, i, p, pending))
			if rng.IntN(3) == 0 {
				must(t, recoverSink(sink, i, p, pending)) // recovery itself crashed and was redone
			}
			w = openCommitting(t, sink, i, p)
		}
	}
	must(t, w.Finish())
	must(t, w.Close())
}

func crc32Checksum(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// TestJSONFilesAsyncPreCommit: records written after the barrier, while the
// pre-committed file is not fsynced yet, go to the next epoch's file; once
// durable returned, Commit makes exactly the records before the barrier
// visible, and a recovery from the pending description does the same.
func TestJSONFilesAsyncPreCommit(t *testing.T) {
	dir := t.TempDir()
	w := openCommitting(t, JSONFiles[event](dir), 0, 1)
	a, ok := w.(weir.AsyncPreCommitter)
	if !ok {
		t.Fatal("JSONFiles writer is not a weir.AsyncPreCommitter")
	}
	must(t, w.Write(events(0, 5)))
	pending, durable, err := a.PreCommitAsync(1)
	must(t, err)
	must(t, w.Write(events(5, 5))) // after the barrier, before durable
	must(t, durable())
	must(t, w.Commit(1))
	if got := countLostAndDuplicated(t, dir, events(0, 5)); !slices.Equal(got, events(0, 5)) {
		t.Fatalf("committed %v, want the records before the barrier", got)
	}
	must(t, recoverSink(JSONFiles[event](dir), 0, 1, pending))
	countLostAndDuplicated(t, dir, events(0, 5))
}
