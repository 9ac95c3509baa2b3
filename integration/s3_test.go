package integration

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/internal/testenv"
	"github.com/weirstream/weir/storage"
)

// The S3 tests keep checkpoints on a real S3 server that scripts/test
// starts (integration/s3/versitygw.sh); see package testenv.

// s3Bucket creates a bucket for the test and returns s3://bucket/prefix
// with the flags that reach it.
func s3Bucket(t *testing.T, prefix string) (dir string, flags []string) {
	t.Helper()
	ep := testenv.S3(t)
	name, _ := testenv.S3Bucket(t, ep)
	return "s3://" + name + "/" + prefix, []string{"--s3-endpoint", ep, "--s3-path-style"}
}

// checkpointStore returns the --checkpoint-dir of a crash test, a local
// directory under dir or (kind "s3") a bucket on the S3 server, with the
// flags that reach it.
func checkpointStore(t *testing.T, kind, dir string) (string, []string) {
	t.Helper()
	if kind == "s3" {
		return s3Bucket(t, "ckpt")
	}
	return filepath.Join(dir, "checkpoints"), nil
}

// storeKinds are the checkpoint stores the crash tests run with.
var storeKinds = []string{"local", "s3"}

// openStore opens a test's checkpoint directory as the job does.
func openStore(t *testing.T, ckpt string, flags []string) storage.BlobStore {
	t.Helper()
	cfg := storage.S3Config{PathStyle: true}
	if len(flags) > 1 {
		cfg.Endpoint = flags[1]
	}
	store, err := storage.OpenDir(context.Background(), ckpt, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return store
}

// unreferenced returns the objects of store that no manifest references.
func unreferenced(t *testing.T, store storage.BlobStore) []string {
	t.Helper()
	ctx := context.Background()
	ids, err := storage.ListCheckpoints(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	var ms []*storage.Manifest
	for _, id := range ids {
		if m, err := storage.ReadManifest(ctx, store, id); err == nil {
			ms = append(ms, m)
		}
	}
	ref := storage.Referenced(ms)
	objs, err := store.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, o := range objs {
		if !ref[o.Name] {
			out = append(out, o.Name)
		}
	}
	return out
}

// committed returns the ids of the checkpoints whose manifests decode.
func committed(t *testing.T, store storage.BlobStore) []uint64 {
	t.Helper()
	ids, err := storage.ListCheckpoints(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, id := range ids {
		if _, err := storage.ReadManifest(context.Background(), store, id); err == nil {
			out = append(out, id)
		}
	}
	return out
}

// TestKilledUploadIsSwept kills the job after it uploaded every file of a
// checkpoint but before its manifest: that checkpoint is not visible, the
// previous one restores, and the files it left are swept at a later start
// once older than --checkpoint-orphan-grace (kept while younger: they
// could belong to a process still writing).
func TestKilledUploadIsSwept(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			ckpt, flags := checkpointStore(t, kind, dir)
			store := openStore(t, ckpt, flags)
			out := filepath.Join(dir, "out")
			args := func(interval string, more ...string) []string {
				a := []string{"--keys", "10", "--count", "2000", "--rate", "4000", "--parallelism", "2", "--output", out}
				a = append(a, checkpointArgs(ckpt, filepath.Join(dir, "state"), interval)...)
				return append(append(a, flags...), more...)
			}
			p := startJob(t, []string{"WEIR_FAILPOINT=before-manifest@2"}, "sequence", args("200ms")...)
			if ws := p.wait(t); !sigkilled(ws) {
				t.Fatalf("%s, want killed at the failpoint; stderr:\n%s", describe(ws), tail(p.stderr.String()))
			}
			ids, err := storage.ListCheckpoints(ctx, store)
			if err != nil || len(ids) == 0 {
				t.Fatalf("checkpoints: %v, %v", ids, err)
			}
			killed := ids[len(ids)-1]
			if _, err := storage.ReadManifest(ctx, store, killed); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("checkpoint %d, killed before its manifest: ReadManifest = %v, want not found", killed, err)
			}
			good := committed(t, store)
			if len(good) != 1 {
				t.Fatalf("committed checkpoints %v, want exactly one before the kill", good)
			}
			orphans := unreferenced(t, store)
			if len(orphans) == 0 {
				t.Fatalf("checkpoint %d left no files: the failpoint came before its uploads", killed)
			}
			t.Logf("checkpoint %d left %d orphans; checkpoint %d restores", killed, len(orphans), good[0])

			// A restart with the default grace period restores the
			// previous checkpoint and keeps the young orphans.
			p = startJob(t, nil, "sequence", args("1h")...)
			p.waitLog(t, fmt.Sprintf("restoring checkpoint\" checkpoint=%d ", good[0]), 30*time.Second)
			time.Sleep(time.Second)
			p.cmd.Process.Kill()
			p.wait(t)
			if got := unreferenced(t, store); !slices.Equal(got, orphans) {
				t.Fatalf("with the default grace period the orphans changed:\n%q\nwant\n%q", got, orphans)
			}

			// With no grace period the sweep at start deletes them.
			p = startJob(t, nil, "sequence", args("1h", "--checkpoint-orphan-grace", "0")...)
			p.waitLog(t, "checkpoint sweep", 30*time.Second)
			p.cmd.Process.Kill()
			p.wait(t)
			if got := unreferenced(t, store); len(got) != 0 {
				t.Fatalf("after the sweep, objects no manifest references: %q", got)
			}
			for _, id := range good {
				if c, _, err := storage.Inspect(ctx, store, id); err != nil || c.State != storage.ManifestOK {
					t.Fatalf("checkpoint %d after the sweep: %+v, %v", id, c, err)
				}
			}

			runToEnd(t, "sequence", args("200ms")...)
			noHiddenFiles(t, out)
			checkSequenceExactlyOnce(t, out, 10, 2000)
		})
	}
}

// TestS3ServerStopped stops the S3 server while the job runs: the
// checkpoints in flight fail, the job keeps running without a restart
// (--restart-attempts 0 would make any failure fatal), and checkpoints
// complete again once the server is back. The output is exactly once.
func TestS3ServerStopped(t *testing.T) {
	testenv.S3(t) // skips or fails like the other S3 tests without a server
	srv := t.TempDir()
	t.Cleanup(func() { exec.Command("s3/versitygw.sh", "stop", srv).Run() })
	ep := service(t, "s3/versitygw.sh", "start", srv)
	bucket, _ := testenv.S3Bucket(t, ep)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	const keys, count = 10, 6000
	args := append([]string{"--keys", strconv.Itoa(keys), "--count", strconv.Itoa(count), "--rate", "4000", "--parallelism", "2", "--output", out,
		"--s3-endpoint", ep, "--s3-path-style", "--checkpoint-timeout", "2s", "--checkpoint-tolerable-failures", "-1", "--restart-attempts", "0"},
		checkpointArgs("s3://"+bucket+"/ckpt", filepath.Join(dir, "state"), "300ms")...)
	job := startJob(t, nil, "sequence", args...)
	job.waitLog(t, "checkpoint complete", 30*time.Second)
	service(t, "s3/versitygw.sh", "stop", srv)
	t.Log("S3 server stopped")
	before := strings.Count(job.stderr.String(), "checkpoint complete")
	job.waitLog(t, "checkpoint aborted", 30*time.Second)
	time.Sleep(2 * time.Second)
	if got := service(t, "s3/versitygw.sh", "start", srv); got != ep {
		t.Fatalf("the S3 server came back at %s, not %s", got, ep)
	}
	t.Log("S3 server started again")
	if ws := job.wait(t); !ws.Exited() || ws.ExitStatus() != 0 {
		t.Fatalf("job: %s; stderr:\n%s", describe(ws), tail(job.stderr.String()))
	}
	logs := job.stderr.String()
	if after := strings.Count(logs, "checkpoint complete"); after <= before {
		t.Fatalf("no checkpoint completed after the server came back (%d before the outage, %d in all); stderr:\n%s", before, after, tail(logs))
	}
	if strings.Contains(logs, "restarting") {
		t.Fatalf("the job restarted; it should have ridden the outage out; stderr:\n%s", tail(logs))
	}
	t.Logf("%d checkpoints failed during the outage", strings.Count(logs, "checkpoint aborted"))
	checkSequenceExactlyOnce(t, out, keys, count)
}

// TestSequenceKillLoopS3 is the checkpoint crash test with its checkpoints
// on S3: the sequence job SIGKILLed at random moments, restarted each
// time, its output exactly once.
func TestSequenceKillLoopS3(t *testing.T) {
	const keys, count, kills = 10, 2000, 8
	ckpt, s3flags := s3Bucket(t, "jobs/sequence")
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	args := append(append([]string{
		"--keys", strconv.Itoa(keys), "--count", strconv.Itoa(count), "--rate", "4000",
		"--parallelism", "2", "--output", out,
	}, checkpointArgs(ckpt, filepath.Join(dir, "state"), "200ms")...), s3flags...)
	rng := rand.New(rand.NewPCG(crashSeed(t), 11))
	killUntilDone(t, rng, kills, 300*time.Millisecond, 600*time.Millisecond, "sequence", args...)
	noHiddenFiles(t, out)
	checkSequenceExactlyOnce(t, out, keys, count)
	rerunAddsNothing(t, out, "sequence", args...)
	checkSequenceExactlyOnce(t, out, keys, count)
	store, err := storage.OpenDir(context.Background(), ckpt, storage.S3Config{Endpoint: s3flags[1], PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	if ids, err := storage.ListCheckpoints(context.Background(), store); err != nil || len(ids) == 0 {
		t.Fatalf("checkpoints in %s: %v, %v: the checkpoints were not on S3", ckpt, ids, err)
	}
	// The operator CLI reads S3 checkpoints as the job does.
	cmd := exec.Command(weirCLI(t), "checkpoints", "verify", ckpt)
	cmd.Env = append(os.Environ(), "WEIR_S3_PATH_STYLE=true")
	out2, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out2), ": ok") || strings.Contains(string(out2), "DAMAGED") {
		t.Fatalf("weir checkpoints verify %s: %v\n%s", ckpt, err, out2)
	}
}

// TestS3RestoreReusesLocalFiles: a job restarted on the same machine (the
// same --state-dir) restores its keyed state from its local files and
// downloads nothing; on a new machine (an empty --state-dir) it downloads
// the checkpoint from S3. The output is exactly once either way.
func TestS3RestoreReusesLocalFiles(t *testing.T) {
	dir := t.TempDir()
	ckpt, flags := s3Bucket(t, "ckpt")
	out := filepath.Join(dir, "out")
	args := func(state string) []string {
		a := []string{"--keys", "10", "--count", "3000", "--rate", "4000", "--parallelism", "2", "--output", out, "--log-level", "debug"}
		return append(append(a, checkpointArgs(ckpt, filepath.Join(dir, state), "200ms")...), flags...)
	}
	if !killAfter(t, 1500*time.Millisecond, nil, "sequence", args("state")...) {
		t.Fatal("the job ended within 1.5 s: nothing to restore")
	}
	restore := func(state string) (local, downloaded int) {
		p := startJob(t, nil, "sequence", args(state)...)
		re := regexp.MustCompile(`restored keyed state.* local=(\d+) downloaded=(\d+)`)
		deadline := time.Now().Add(30 * time.Second)
		for len(re.FindAllString(p.stderr.String(), -1)) < 2 {
			if time.Now().After(deadline) {
				t.Fatalf("no two restored subtasks logged; stderr:\n%s", tail(p.stderr.String()))
			}
			time.Sleep(20 * time.Millisecond)
		}
		p.cmd.Process.Kill()
		p.wait(t)
		for _, m := range re.FindAllStringSubmatch(p.stderr.String(), -1) {
			l, _ := strconv.Atoi(m[1])
			d, _ := strconv.Atoi(m[2])
			local, downloaded = local+l, downloaded+d
		}
		return local, downloaded
	}
	if local, downloaded := restore("state"); downloaded != 0 || local == 0 {
		t.Fatalf("same state directory: %d files linked, %d downloaded; want all linked, none downloaded", local, downloaded)
	}
	if local, downloaded := restore("new-machine"); downloaded == 0 || local != 0 {
		t.Fatalf("empty state directory: %d files linked, %d downloaded; want all downloaded", local, downloaded)
	}
	runToEnd(t, "sequence", args("new-machine")...)
	checkSequenceExactlyOnce(t, out, 10, 3000)
}
