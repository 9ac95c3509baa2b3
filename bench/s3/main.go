// Command s3 measures weir's checkpoint storage on a real S3 server:
//
//   - --mode incremental: a job loads --state-mb MiB of keyed state (int64
//     keys, 100-byte random values), then runs --phases change phases, each
//     rewriting 1% of the keys (distinct keys, chosen at random), one phase
//     between two checkpoints into S3. For every checkpoint that ends a phase
//     it reports the bytes uploaded (counted by a wrapper around the store:
//     every byte that Put and PutIfAbsent read, the manifest included), the
//     bytes of state changed (changed keys × (8 key bytes + 100 value bytes)),
//     their ratio and the checkpoint's duration (CheckpointStats.Duration,
//     from the trigger to the manifest written).
//   - --mode restore: takes the newest checkpoint in the store (left by
//     --mode incremental; when there is none it loads --state-mb first, with no
//     change phases) and downloads every object its manifest references, --rounds
//     times, interleaved: with storage.Download (impl=weir, --workers objects at
//     once, size and CRC-32C checked), with the AWS SDK's transfer manager
//     DownloadDirectory at --workers objects at once (impl=sdk, its other
//     settings default: objects of several parts fetched 5 parts at a time),
//     and with its defaults alone (impl=sdk-default, 5 objects at once). Each
//     round downloads into a fresh directory that is deleted afterwards.
//
// Both modes print a table and benchstat lines. Reproduce (2-core VM):
//
//	E=$(bash integration/s3/versitygw.sh start /tmp/vg-bench)
//	export AWS_ACCESS_KEY_ID=weir-test AWS_SECRET_ACCESS_KEY=weir-test-secret AWS_REGION=us-east-1
//	go build -o /tmp/s3bench ./bench/s3
//	/tmp/s3bench --endpoint $E --mode incremental --state-mb 1024 --phases 5 | tee /tmp/s3-incremental.txt
//	/tmp/s3bench --endpoint $E --mode restore --rounds 5 | tee /tmp/s3-restore-1.txt
//	/tmp/s3bench --endpoint $E --mode restore --rounds 5 | tee /tmp/s3-restore-2.txt
//	go run golang.org/x/perf/cmd/benchstat@latest -col /impl /tmp/s3-restore-1.txt
//	go run golang.org/x/perf/cmd/benchstat@latest -col /impl /tmp/s3-restore-2.txt
//	bash integration/s3/versitygw.sh stop /tmp/vg-bench
//
// Most phase checkpoints upload one change log per subtask; one that makes a
// new base (when the logs since the last base reach 32 MiB: the first
// checkpoint after the load or every ~7th at 1% changes of 1 GiB) uploads the
// SSTs that compactions rewrote since. To see one within the phases:
//
//	/tmp/s3bench --endpoint $E --mode incremental --phases 12 --prefix checkpoints-p12
//
// --cpuprofile FILE writes a CPU profile of the restore rounds, each sample
// labelled with the implementation (go tool pprof -tagfocus impl=weir FILE).
// The rounds also report the process's CPU time and its read and write
// system calls (/proc/self/io).
//
// --mode incremental first deletes every object under --bucket/--prefix,
// so that its checkpoints start from id 1 and reuse nothing.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/weirstream/weir/storage"
)

type options struct {
	endpoint, bucket, prefix string
	stateMB, phases          int
	interval                 time.Duration
	parallelism              int
	rounds, workers          int
	impls                    string
	downloadDir              string
	cpuprofile               string
	logLevel                 slog.Level
}

func main() {
	var o options
	mode := flag.String("mode", "", "incremental or restore")
	flag.StringVar(&o.endpoint, "endpoint", os.Getenv("WEIR_S3_ENDPOINT"), "S3 server URL (path-style addressing)")
	flag.StringVar(&o.bucket, "bucket", "weir-bench", "bucket (created if missing)")
	flag.StringVar(&o.prefix, "prefix", "checkpoints", "prefix of the checkpoint store in the bucket")
	flag.IntVar(&o.stateMB, "state-mb", 1024, "MiB of keyed state to load (keys = MiB<<20/116)")
	flag.IntVar(&o.phases, "phases", 5, "change phases after the load, each rewriting 1% of the keys")
	flag.DurationVar(&o.interval, "interval", time.Second, "checkpoint interval")
	flag.IntVar(&o.parallelism, "parallelism", 2, "subtasks of the keyed operator")
	flag.IntVar(&o.rounds, "rounds", 5, "restore: rounds, each downloading the checkpoint once per implementation")
	flag.IntVar(&o.workers, "workers", storage.DownloadWorkers, "restore: objects fetched at once (weir and impl=sdk)")
	flag.StringVar(&o.impls, "impls", "weir,sdk,sdk-default", "restore: implementations to compare")
	flag.StringVar(&o.downloadDir, "download-dir", os.TempDir(), "restore: where the rounds' temporary directories go")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "restore: write a CPU profile of the rounds (labelled impl=...)")
	logLevel := flag.String("log", "warn", "engine log level: debug, info, warn or error")
	flag.Parse()
	if err := o.logLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		fatal(err)
	}
	if o.endpoint == "" {
		fatal(errors.New("--endpoint (or WEIR_S3_ENDPOINT) is required: bash integration/s3/versitygw.sh start DIR prints it"))
	}
	ctx := context.Background()
	var err error
	switch *mode {
	case "incremental":
		err = incremental(ctx, o)
	case "restore":
		err = restore(ctx, o)
	default:
		err = fmt.Errorf("--mode %q: want incremental or restore", *mode)
	}
	if err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "s3 bench:", err)
	os.Exit(1)
}

// client is an S3 client of the server at endpoint, path-style, with the
// credentials and region of the environment (us-east-1 if none).
func client(ctx context.Context, endpoint string) (*s3.Client, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, err
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.UsePathStyle = true
		// Not a log line per object: versitygw returns no checksum for a
		// part (GetObject with PartNumber), which the transfer manager asks for.
		o.DisableLogOutputChecksumValidationSkipped = true
	}), nil
}

// openStore creates the bucket if it does not exist and opens the store.
func openStore(ctx context.Context, o options) (*storage.S3, error) {
	c, err := client(ctx, o.endpoint)
	if err != nil {
		return nil, err
	}
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(o.bucket)}); err != nil {
		var owned *types.BucketAlreadyOwnedByYou
		var exists *types.BucketAlreadyExists
		if !errors.As(err, &owned) && !errors.As(err, &exists) {
			return nil, fmt.Errorf("create bucket %s: %w", o.bucket, err)
		}
	}
	return storage.NewS3(ctx, storage.S3Config{Bucket: o.bucket, Prefix: o.prefix, Endpoint: o.endpoint, PathStyle: true})
}

// deleteAll deletes every object of the store.
func deleteAll(ctx context.Context, s storage.BlobStore) (int, error) {
	objs, err := s.List(ctx, "")
	if err != nil {
		return 0, err
	}
	for _, obj := range objs {
		if err := s.Delete(ctx, obj.Name); err != nil {
			return 0, err
		}
	}
	return len(objs), nil
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
