package sinks

import "testing"

// Attempt 1 completes and commits checkpoints 1 and 2; recovery falls back to
// checkpoint 1 (e.g. checkpoint 2's manifest fails verification). The rerun
// reproduces the records after checkpoint 1 in epoch 2.
func TestJSONFilesFallbackPastCommittedCheckpoint(t *testing.T) {
	dir := t.TempDir()
	s := JSONFiles[event](dir, MaxFileSize(40))
	w := openCommitting(t, s, 0, 1)
	must(t, w.Write([]event{{N: 1}}))
	p1 := mustPreCommit(t, w, 1)
	must(t, w.Commit(1))
	must(t, w.Write([]event{{N: 2}, {N: 3}, {N: 4}})) // 3 files in epoch 2
	mustPreCommit(t, w, 2)
	must(t, w.Commit(2))
	w.Close()

	s2 := JSONFiles[event](dir, MaxFileSize(400)) // or just different batching
	must(t, recoverSink(s2, 0, 1, p1))
	w2 := openCommitting(t, s2, 0, 1)
	must(t, w2.Write([]event{{N: 2}, {N: 3}, {N: 4}}))
	mustPreCommit(t, w2, 2)
	must(t, w2.Commit(2))
	got, err := ReadJSONFiles[event](dir)
	must(t, err)
	t.Logf("committed records: %v", got)
	if len(got) != 4 {
		t.Errorf("want 4 records, got %d", len(got))
	}
}
