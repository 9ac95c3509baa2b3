package storage_test

import (
	"bytes"
	"context"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/storage"
)

// TestGCRandomized writes many checkpoints that share files as the
// engine's uploads do (a new checkpoint reuses shared files of the last
// one, adds new ones), some of them killed midway (files, no manifest),
// and collects garbage with a random retention and grace period between
// them. After every collection each retained checkpoint verifies (no
// referenced object is gone, none damaged), so is every committed
// checkpoint newer than the retained ones, and no orphan younger than the
// grace period is gone. At the end a collection with no grace leaves
// exactly what the retained checkpoints reference: nothing is orphaned
// forever.
func TestGCRandomized(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint("mem/seed=", seed), func(t *testing.T) {
			clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			s := storage.NewMemClock(func() time.Time { return clock })
			gcModel(t, s, seed, 200, func() time.Time { return clock }, func(d time.Duration) { clock = clock.Add(d) })
		})
	}
}

// TestGCRandomizedS3 runs the model against the real S3 server, whose
// clock stamps the objects: the grace period is 0 or an hour, which every
// object is younger than.
func TestGCRandomizedS3(t *testing.T) {
	for seed := range uint64(2) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			s := newS3(t, "gc", 0)
			gcModel(t, s, seed, 40, time.Now, nil)
		})
	}
}

func gcModel(t *testing.T, s storage.BlobStore, seed uint64, steps int, now func() time.Time, advance func(time.Duration)) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 99))
	castagnoli := crc32.MakeTable(crc32.Castagnoli)
	var (
		id      uint64
		last    []storage.StateFile // shared files of the newest committed checkpoint
		content int                 // makes every new shared file distinct
		orphans = map[string]orphan{}
	)
	newShared := func() storage.StateFile {
		content++
		data := fmt.Appendf(nil, "sst %d of seed %d", content, seed)
		d, err := storage.DigestOf(ctx, bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		name := storage.SharedObject(d)
		if err := s.Put(ctx, name, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		return storage.StateFile{LocalName: fmt.Sprintf("%06d.sst", content), Object: name, Size: d.Size, CRC32C: d.CRC32C}
	}
	for step := range steps {
		switch r := rng.IntN(10); {
		case r < 7: // a checkpoint; one in five is killed before its manifest
			id++
			var files []storage.StateFile
			reused := 0
			for _, f := range last {
				// The uploader reuses a file it uploaded before if the
				// object still exists.
				if rng.IntN(3) > 0 {
					if _, err := s.Stat(ctx, f.Object); err == nil {
						files = append(files, f)
						reused++
					}
				}
			}
			for range 1 + rng.IntN(3) {
				files = append(files, newShared())
			}
			priv, _ := storage.PrivateObject(id, "op", 0, "OPTIONS-000001")
			body := fmt.Appendf(nil, "options of %d", id)
			if err := s.Put(ctx, priv, bytes.NewReader(body)); err != nil {
				t.Fatal(err)
			}
			files = append(files, storage.StateFile{LocalName: "OPTIONS-000001", Object: priv, Size: int64(len(body)), CRC32C: crc32.Checksum(body, castagnoli)})
			if rng.IntN(5) == 0 {
				for _, f := range files[reused:] {
					orphans[f.Object] = orphan{id, now()}
				}
				continue
			}
			m := &storage.Manifest{JobName: "gc", CheckpointID: id, ParentID: id - 1, MaxParallelism: 1,
				Operators: []storage.OperatorState{{UID: "op", Subtasks: []storage.SubtaskState{{Files: files}}}}}
			if err := storage.WriteManifest(ctx, s, m); err != nil {
				t.Fatal(err)
			}
			for _, f := range files {
				delete(orphans, f.Object)
			}
			last = files[:len(files)-1]
		case r < 9: // garbage collection
			retain := 1 + rng.IntN(5)
			grace := time.Duration(rng.IntN(2)) * time.Hour
			plan, err := storage.PlanGC(ctx, s, retain, grace, now())
			if err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
			if _, err := storage.ExecuteGC(ctx, s, plan); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
			checkGC(t, ctx, s, plan, step)
			// An orphan is deleted once older than the grace period, or
			// (a private file) once a newer checkpoint is retained.
			newest := uint64(0)
			if len(plan.Retained) > 0 {
				newest = plan.Retained[len(plan.Retained)-1]
			}
			for name, o := range orphans {
				_, err := s.Stat(ctx, name)
				young := now().Sub(o.at) < grace
				private := !strings.HasPrefix(name, storage.SharedDir)
				if err != nil && young && !(private && o.id < newest) {
					t.Fatalf("step %d: orphan %s, %v old, deleted within the grace period %v: %v", step, name, now().Sub(o.at), grace, err)
				}
				if err == nil && (!young || private && o.id < newest) {
					t.Fatalf("step %d: orphan %s of checkpoint %d, %v old, kept (grace %v, retained %v)", step, name, o.id, now().Sub(o.at), grace, plan.Retained)
				}
				if err != nil {
					delete(orphans, name)
				}
			}
		default:
			if advance != nil {
				advance(time.Duration(rng.IntN(90)) * time.Minute)
			}
		}
	}
	plan, err := storage.PlanGC(ctx, s, 2, 0, now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := storage.ExecuteGC(ctx, s, plan); err != nil {
		t.Fatal(err)
	}
	checkGC(t, ctx, s, plan, steps)
	var retained []*storage.Manifest
	for _, id := range plan.Retained {
		m, err := storage.ReadManifest(ctx, s, id)
		if err != nil {
			t.Fatal(err)
		}
		retained = append(retained, m)
	}
	var want []string
	for name := range storage.Referenced(retained) {
		want = append(want, name)
	}
	slices.Sort(want)
	objs, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := storage.Names(objs); !slices.Equal(got, want) {
		t.Fatalf("after a collection with no grace the store holds\n%q\nwant only what checkpoints %v reference:\n%q", got, plan.Retained, want)
	}
}

type orphan struct {
	id uint64 // the checkpoint that uploaded it
	at time.Time
}

// checkGC checks that every retained checkpoint, and every committed one
// newer than them, is intact.
func checkGC(t *testing.T, ctx context.Context, s storage.BlobStore, plan *storage.GCPlan, step int) {
	t.Helper()
	ids, err := storage.ListCheckpoints(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range plan.Retained {
		if !slices.Contains(ids, id) {
			t.Fatalf("step %d: retained checkpoint %d is gone", step, id)
		}
	}
	for _, id := range ids {
		if len(plan.Retained) > 0 && id < plan.Retained[0] {
			continue
		}
		c, _, err := storage.Inspect(ctx, s, id)
		if err != nil {
			t.Fatal(err)
		}
		if c.State == storage.ManifestDamaged {
			t.Fatalf("step %d: checkpoint %d (retained %v) damaged by garbage collection: %v", step, id, plan.Retained, c.Problems)
		}
	}
}
