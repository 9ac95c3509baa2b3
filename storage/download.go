package storage

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
)

// DownloadWorkers is how many objects Download fetches at once by default:
// enough to hide an S3 server's per-request latency and fill its bandwidth,
// few enough not to thrash a local disk.
const DownloadWorkers = 8

// Download copies each file's object from s into its local path, up to
// workers objects at once (DownloadWorkers if workers <= 0), checking each
// object's size and CRC-32C against what the manifest recorded as it is
// written. It stops at the first error, which names the object, and returns
// the bytes written. Files already downloaded stay; the caller removes the
// directory on error.
func Download(ctx context.Context, s BlobStore, files []StateFile, paths []string, workers int) (int64, error) {
	if len(files) != len(paths) {
		return 0, fmt.Errorf("storage: download: %d files, %d paths", len(files), len(paths))
	}
	return parallel(ctx, len(files), workers, func(ctx context.Context, i int) (int64, error) {
		if err := downloadOne(ctx, s, files[i], paths[i]); err != nil {
			return 0, err
		}
		return files[i].Size, nil
	})
}

// parallel runs fn(ctx, i) for i in [0, n), up to workers at once
// (DownloadWorkers if workers <= 0), and returns the sum of what they
// returned. The first error cancels ctx for the others and is returned.
func parallel(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) (int64, error)) (int64, error) {
	if workers <= 0 {
		workers = DownloadWorkers
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next, total atomic.Int64
		once        sync.Once
		firstErr    error
		wg          sync.WaitGroup
	)
	for range min(workers, n) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				v, err := fn(ctx, i)
				if err != nil {
					once.Do(func() { firstErr = err; cancel() })
					return
				}
				total.Add(v)
			}
		})
	}
	wg.Wait()
	return total.Load(), firstErr
}

// downloadOne copies f's object to path, checking its size and CRC-32C.
func downloadOne(ctx context.Context, s BlobStore, f StateFile, path string) error {
	r, err := s.Get(ctx, f.Object)
	if err != nil {
		return err
	}
	defer r.Close()
	w, err := os.Create(path)
	if err != nil {
		return err
	}
	size, crc, err := ChecksumOf(ctx, io.TeeReader(r, w))
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("storage: download %s: %w", f.Object, err)
	}
	if size != f.Size || crc != f.CRC32C {
		return fmt.Errorf("storage: download %s: %d bytes with CRC32C %08x, the manifest says %d bytes with %08x", f.Object, size, crc, f.Size, f.CRC32C)
	}
	return nil
}
