package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/weirstream/weir/storage"
)

// newestManifest returns the manifest of the newest checkpoint whose
// manifest reads, or nil if there is none.
func newestManifest(ctx context.Context, s storage.BlobStore) (*storage.Manifest, error) {
	ids, err := storage.ListCheckpoints(ctx, s)
	if err != nil {
		return nil, err
	}
	for _, id := range slices.Backward(ids) {
		m, err := storage.ReadManifest(ctx, s, id)
		if err == nil {
			return m, nil
		}
		fmt.Fprintf(os.Stderr, "checkpoint %d: %v\n", id, err)
	}
	return nil, nil
}

// impl downloads the objects into dir.
type impl struct {
	name string
	run  func(ctx context.Context, dir string) error
}

// keySet is a transfermanager.ObjectFilter that passes the keys it holds.
type keySet map[string]bool

func (k keySet) FilterObject(o s3types.Object) bool { return k[aws.ToString(o.Key)] }

func restore(ctx context.Context, o options) error {
	store, err := openStore(ctx, o)
	if err != nil {
		return err
	}
	m, err := newestManifest(ctx, store)
	if err != nil {
		return err
	}
	if m == nil {
		fmt.Fprintf(os.Stderr, "no checkpoint under s3://%s/%s: loading %d MiB of state first\n", o.bucket, o.prefix, o.stateMB)
		if _, err := deleteAll(ctx, store); err != nil {
			return err
		}
		stateDir, err := os.MkdirTemp("", "s3bench-state-")
		if err != nil {
			return err
		}
		_, err = runJob(ctx, store, o, 0, stateDir)
		os.RemoveAll(stateDir)
		if err != nil {
			return err
		}
		if m, err = newestManifest(ctx, store); err != nil {
			return err
		}
		if m == nil {
			return errors.New("the load left no checkpoint")
		}
	}

	// Every state file of every operator subtask, each object once (a
	// shared object may be referenced by more than one subtask).
	var files []storage.StateFile
	seen := map[string]bool{}
	refs := 0
	for _, op := range m.Operators {
		for _, st := range op.Subtasks {
			for _, f := range st.Files {
				refs++
				if !seen[f.Object] {
					seen[f.Object] = true
					files = append(files, f)
				}
			}
		}
	}
	if len(files) == 0 {
		return fmt.Errorf("checkpoint %d references no files", m.CheckpointID)
	}
	var total int64
	sizes := make([]int64, len(files))
	for i, f := range files {
		total += f.Size
		sizes[i] = f.Size
	}
	slices.Sort(sizes)
	var small, mid, large int
	for _, s := range sizes {
		switch {
		case s < 1<<20:
			small++
		case s < 16<<20:
			mid++
		default:
			large++
		}
	}

	root := strings.Trim(o.prefix, "/")
	if root != "" {
		root += "/"
	}
	keys := keySet{}
	for _, f := range files {
		keys[root+f.Object] = true
	}
	sdkClient, err := client(ctx, o.endpoint)
	if err != nil {
		return err
	}
	tm := transfermanager.New(sdkClient)
	downloadDir := func(opts ...func(*transfermanager.Options)) func(context.Context, string) error {
		return func(ctx context.Context, dir string) error {
			in := &transfermanager.DownloadDirectoryInput{Bucket: aws.String(o.bucket), Destination: aws.String(dir), Filter: keys}
			if root != "" {
				in.KeyPrefix = aws.String(root)
			}
			out, err := tm.DownloadDirectory(ctx, in, opts...)
			if err != nil {
				return err
			}
			if out.ObjectsDownloaded != int64(len(files)) || out.ObjectsFailed != 0 {
				return fmt.Errorf("transfer manager: %d objects downloaded, %d failed, want %d", out.ObjectsDownloaded, out.ObjectsFailed, len(files))
			}
			return nil
		}
	}
	all := map[string]impl{
		"weir": {"weir", func(ctx context.Context, dir string) error {
			paths := make([]string, len(files))
			dirs := map[string]bool{}
			for i, f := range files {
				paths[i] = filepath.Join(dir, filepath.FromSlash(f.Object))
				if d := filepath.Dir(paths[i]); !dirs[d] {
					dirs[d] = true
					if err := os.MkdirAll(d, 0o755); err != nil {
						return err
					}
				}
			}
			n, err := storage.Download(ctx, store, files, paths, o.workers)
			if err == nil && n != total {
				err = fmt.Errorf("storage.Download: %d bytes, want %d", n, total)
			}
			return err
		}},
		"sdk": {"sdk", downloadDir(func(opt *transfermanager.Options) { opt.Concurrency = o.workers })},
		// The defaults: 5 objects at once, each in parts 5 at a time.
		"sdk-default": {"sdk-default", downloadDir()},
	}
	var impls []impl
	for name := range strings.SplitSeq(o.impls, ",") {
		im, ok := all[name]
		if !ok {
			return fmt.Errorf("--impls: unknown implementation %q (weir, sdk, sdk-default)", name)
		}
		impls = append(impls, im)
	}

	fmt.Printf("S3 restore: checkpoint %d in s3://%s/%s at %s: %d objects (%d references), %.1f MiB; %d under 1 MiB, %d of 1-16 MiB, %d of 16 MiB or more (multipart); largest %.1f MiB, median %.2f MiB\n",
		m.CheckpointID, o.bucket, o.prefix, o.endpoint, len(files), refs, mib(total), small, mid, large, mib(sizes[len(sizes)-1]), mib(sizes[len(sizes)/2]))
	fmt.Printf("Workers %d (weir and impl=sdk); %d rounds, implementations in rotating order; one untimed weir download first warms the server's page cache\n", o.workers, o.rounds)

	// Warm-up (also checks that the objects are complete).
	if _, _, err := once(ctx, all["weir"], o.downloadDir, len(files), total); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	rates := map[string][]float64{}
	for r := range o.rounds {
		for j := range impls {
			im := impls[(r+j)%len(impls)]
			var d, cpu time.Duration
			var err error
			r0, w0 := syscalls()
			pprof.Do(ctx, pprof.Labels("impl", im.name), func(ctx context.Context) {
				d, cpu, err = once(ctx, im, o.downloadDir, len(files), total)
			})
			r1, w1 := syscalls()
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", r+1, im.name, err)
			}
			rate := float64(total) / 1e6 / d.Seconds()
			rates[im.name] = append(rates[im.name], rate)
			fmt.Printf("BenchmarkRestore/impl=%s 1 %d ns/op %.1f MB/s %.0f cpu-ms %d read-calls %d write-calls\n",
				im.name, d.Nanoseconds(), rate, float64(cpu.Microseconds())/1000, r1-r0, w1-w0)
		}
	}
	fmt.Println()
	med := map[string]float64{}
	for _, im := range impls {
		s := slices.Clone(rates[im.name])
		slices.Sort(s)
		med[im.name] = s[len(s)/2]
		if len(s)%2 == 0 {
			med[im.name] = (s[len(s)/2-1] + s[len(s)/2]) / 2
		}
		fmt.Printf("Median %-12s %7.1f MB/s (min %.1f, max %.1f)\n", im.name, med[im.name], s[0], s[len(s)-1])
	}
	for _, sdk := range []string{"sdk", "sdk-default"} {
		if w, ok := med["weir"]; ok && med[sdk] > 0 {
			verdict := "meets"
			if w < 0.8*med[sdk] {
				verdict = "FAILS"
			}
			fmt.Printf("Weir/%s %.2f (%s weir >= 0.8 x SDK)\n", sdk, w/med[sdk], verdict)
		}
	}
	return nil
}

// once downloads with im into a fresh directory under parent and returns
// how long the download took and the CPU time (user and system) the process
// spent meanwhile; then, untimed, it checks that the directory holds n files
// of total bytes and deletes it.
func once(ctx context.Context, im impl, parent string, n int, total int64) (time.Duration, time.Duration, error) {
	dir, err := os.MkdirTemp(parent, "s3bench-restore-")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(dir)
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	start := time.Now()
	if err := im.run(ctx, dir); err != nil {
		return 0, 0, err
	}
	d := time.Since(start)
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	var files int
	var bytes int64
	err = filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		files++
		bytes += info.Size()
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	if files != n || bytes != total {
		return 0, 0, fmt.Errorf("%s: %d files of %d bytes, want %d of %d", im.name, files, bytes, n, total)
	}
	return d, cpu, nil
}

// syscalls returns how many read and write system calls the process made
// so far (Linux's /proc/self/io; 0, 0 elsewhere). The rounds count them to
// compare how the implementations write: a download's file writes are most
// of its write calls, its socket reads most of its read calls.
func syscalls() (reads, writes int64) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, 0
	}
	for line := range strings.Lines(string(b)) {
		var n int64
		if _, err := fmt.Sscanf(line, "syscr: %d", &n); err == nil {
			reads = n
		} else if _, err := fmt.Sscanf(line, "syscw: %d", &n); err == nil {
			writes = n
		}
	}
	return reads, writes
}
