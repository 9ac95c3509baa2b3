package integration

import (
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
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
