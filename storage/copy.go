package storage

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// CopyCheckpoint copies checkpoint m, every object it references and then
// its manifest, from one store to another, up to workers objects at once
// (DownloadWorkers if workers <= 0). The copy is self-contained: it holds
// everything a restore from to needs, whatever happens to from later. An
// object to already holds with the same size is not copied again (the
// shared files of earlier savepoints into the same directory). The
// manifest is written last, with PutIfAbsent: a copy that fails midway
// is no checkpoint. It returns the bytes copied.
func CopyCheckpoint(ctx context.Context, from, to BlobStore, m *Manifest, workers int) (int64, error) {
	seen := map[string]bool{}
	var files []StateFile
	for _, op := range m.Operators {
		for _, st := range op.Subtasks {
			for _, f := range st.Files {
				if !seen[f.Object] {
					seen[f.Object] = true
					files = append(files, f)
				}
			}
		}
	}
	total, err := parallel(ctx, len(files), workers, func(ctx context.Context, i int) (int64, error) {
		return copyObject(ctx, from, to, files[i])
	})
	if err != nil {
		return total, err
	}
	return total, WriteManifest(ctx, to, m)
}

// copyObject copies f's object unless to has it with its size, checking
// the size and CRC-32C of what it reads.
func copyObject(ctx context.Context, from, to BlobStore, f StateFile) (int64, error) {
	if size, err := to.Stat(ctx, f.Object); err == nil && size == f.Size {
		return 0, nil
	} else if err != nil && !errors.Is(err, ErrNotFound) {
		return 0, err
	}
	r, err := from.Get(ctx, f.Object)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	cr := &checkedReader{r: r, want: f}
	if err := to.Put(ctx, f.Object, cr); err != nil {
		return 0, fmt.Errorf("storage: copy %s: %w", f.Object, err)
	}
	return f.Size, nil
}

// checkedReader fails the read that ends the object if the size or
// CRC-32C differ from what the manifest recorded, so a damaged object is
// never written (Put leaves nothing when its reader fails).
type checkedReader struct {
	r    io.Reader
	want StateFile
	n    int64
	crc  uint32
}

func (c *checkedReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.crc = crcUpdate(c.crc, p[:n])
	if err == io.EOF && (c.n != c.want.Size || c.crc != c.want.CRC32C) {
		return n, fmt.Errorf("storage: copy %s: %d bytes with CRC32C %08x, the manifest says %d bytes with %08x", c.want.Object, c.n, c.crc, c.want.Size, c.want.CRC32C)
	}
	return n, err
}

func crcUpdate(crc uint32, p []byte) uint32 { return crc32.Update(crc, castagnoli, p) }
