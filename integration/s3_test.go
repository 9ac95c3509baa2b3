package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// The S3 tests keep checkpoints on a real S3 server: scripts/test starts
// versitygw (integration/s3/versitygw.sh) and exports WEIR_S3_ENDPOINT
// and the AWS_* credentials.

func s3Endpoint(t *testing.T) string {
	t.Helper()
	ep := os.Getenv("WEIR_S3_ENDPOINT")
	if ep == "" {
		if os.Getenv("WEIR_REQUIRE_S3") != "" || os.Getenv("CI") != "" {
			t.Fatal("WEIR_S3_ENDPOINT is not set, but WEIR_REQUIRE_S3 or CI is: scripts/test starts versitygw with integration/s3/versitygw.sh")
		}
		t.Skip("WEIR_S3_ENDPOINT not set: start an S3 server with integration/s3/versitygw.sh start DIR")
	}
	return ep
}

// s3Bucket creates a bucket for the test and returns s3://bucket/prefix
// with the flags that reach it.
func s3Bucket(t *testing.T, prefix string) (dir string, flags []string, manifests func() int) {
	t.Helper()
	ep := s3Endpoint(t)
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"))
	if err != nil {
		t.Fatal(err)
	}
	c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.BaseEndpoint = aws.String(ep); o.UsePathStyle = true })
	name := fmt.Sprintf("weir-it-%d", time.Now().UnixNano()%1e12)
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	manifests = func() int {
		n := 0
		p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(name), Prefix: aws.String(prefix + "/")})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range page.Contents {
				if strings.HasSuffix(aws.ToString(o.Key), "/MANIFEST") {
					n++
				}
			}
		}
		return n
	}
	return "s3://" + name + "/" + prefix, []string{"--s3-endpoint", ep, "--s3-path-style"}, manifests
}

// TestSequenceKillLoopS3 is the checkpoint crash test with its checkpoints
// on S3: the sequence job SIGKILLed at random moments, restarted each
// time, its output exactly once.
func TestSequenceKillLoopS3(t *testing.T) {
	const keys, count, kills = 10, 2000, 8
	ckpt, s3flags, manifests := s3Bucket(t, "jobs/sequence")
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
	if n := manifests(); n == 0 {
		t.Fatal("no checkpoint manifest in the bucket: the checkpoints were not on S3")
	}
	// The operator CLI reads S3 checkpoints as the job does.
	cmd := exec.Command(weirCLI(t), "checkpoints", "verify", ckpt)
	cmd.Env = append(os.Environ(), "WEIR_S3_PATH_STYLE=true")
	out2, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out2), ": ok") || strings.Contains(string(out2), "DAMAGED") {
		t.Fatalf("weir checkpoints verify %s: %v\n%s", ckpt, err, out2)
	}
}
