package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/weirstream/weir/internal/testenv"
	"github.com/weirstream/weir/storage"
	"github.com/weirstream/weir/storage/storagetest"
)

// The S3 tests run against a real S3 server that scripts/test starts
// (integration/s3/versitygw.sh); see package testenv.

func newS3(t *testing.T, prefix string, partSize int64) *storage.S3 {
	s, _, _ := newS3Bucket(t, prefix, partSize)
	return s
}

func newS3Bucket(t *testing.T, prefix string, partSize int64) (*storage.S3, string, string) {
	t.Helper()
	ep := testenv.S3(t)
	bucket, _ := testenv.S3Bucket(t, ep)
	s, err := storage.NewS3(context.Background(), storage.S3Config{Bucket: bucket, Prefix: prefix, Endpoint: ep, PathStyle: true, PartSize: partSize})
	if err != nil {
		t.Fatal(err)
	}
	return s, bucket, ep
}

func TestS3Conformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.BlobStore { return newS3(t, "ckpt/job-1", 0) })
}

// TestS3ConditionalWrites: the server (versitygw) supports If-None-Match,
// so manifests are committed by a conditional put.
func TestS3ConditionalWrites(t *testing.T) {
	if s := newS3(t, "", 0); !s.Conditional() {
		t.Fatal("the probe found no conditional writes on versitygw, which supports them")
	}
}

// TestS3Multipart uploads objects larger than a part, in parallel parts,
// and reads them back; a reader that fails midway leaves no object and no
// unfinished upload behind.
func TestS3Multipart(t *testing.T) {
	s, bucket, ep := newS3Bucket(t, "p", 5<<20)
	ctx := context.Background()
	for _, size := range []int{5 << 20, 5<<20 + 1, 17<<20 + 12345} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i * 7 / 13)
		}
		name := fmt.Sprintf("shared/obj-%d", size)
		if err := s.Put(ctx, name, bytes.NewReader(data)); err != nil {
			t.Fatalf("put %d bytes: %v", size, err)
		}
		if n, err := s.Stat(ctx, name); err != nil || n != int64(size) {
			t.Fatalf("stat: %d, %v; want %d", n, err, size)
		}
		r, err := s.Get(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("get %d bytes: %d bytes back, %v", size, len(got), err)
		}
	}
	failing := io.MultiReader(bytes.NewReader(make([]byte, 12<<20)), errReader{errors.New("disk on fire")})
	if err := s.Put(ctx, "shared/broken", failing); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("put from a failing reader: %v", err)
	}
	if _, err := s.Stat(ctx, "shared/broken"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("after a failed put: %v, want ErrNotFound", err)
	}
	ups, err := testenv.S3Client(t, ep).ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	if len(ups.Uploads) != 0 {
		t.Fatalf("%d multipart uploads left open after a failed put, want 0 (aborted)", len(ups.Uploads))
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// TestS3AbortUploads: a multipart upload left unfinished (its process
// killed) is invisible but stored; the sweep aborts the ones begun before
// its cutoff.
func TestS3AbortUploads(t *testing.T) {
	ctx := context.Background()
	s, bucket, ep := newS3Bucket(t, "ckpt", 0)
	c := testenv.S3Client(t, ep)
	key := "ckpt/shared/unfinished.sst"
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: up.UploadId,
		PartNumber: aws.Int32(1), Body: strings.NewReader("part one")}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.AbortUploads(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("AbortUploads(an hour ago) = %d, %v; want 0: the upload is younger", n, err)
	}
	if n, err := s.AbortUploads(ctx, time.Now().Add(time.Minute)); err != nil || n != 1 {
		t.Fatalf("AbortUploads(now) = %d, %v; want 1", n, err)
	}
	out, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil || len(out.Uploads) != 0 {
		t.Fatalf("after AbortUploads: %d uploads, %v; want none", len(out.Uploads), err)
	}
}

// TestS3RetriesTransientErrors puts a proxy in front of the S3 server that
// answers every other request with 503 SlowDown: puts (multipart too),
// gets and lists still succeed, retried with backoff by the SDK.
func TestS3RetriesTransientErrors(t *testing.T) {
	ctx := context.Background()
	var n, failed atomic.Int64
	bucket, proxyURL := s3Proxy(t, func(w http.ResponseWriter, r *http.Request) bool {
		if n.Add(1)%2 == 0 {
			return false
		}
		failed.Add(1)
		s3Error(w, r, http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.")
		return true
	})
	s, err := storage.NewS3(ctx, storage.S3Config{Bucket: bucket, Endpoint: proxyURL, PathStyle: true, PartSize: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("retry me "), 2<<20) // 18 MiB: four parts
	if err := s.Put(ctx, "shared/big.sst", bytes.NewReader(big)); err != nil {
		t.Fatal(err)
	}
	rc, err := s.Get(ctx, "shared/big.sst")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("Get after retries: %d bytes, %v; want the %d bytes put", len(got), err, len(big))
	}
	if objs, err := s.List(ctx, ""); err != nil || len(objs) != 1 {
		t.Fatalf("List after retries = %v, %v", objs, err)
	}
	if failed.Load() < 5 {
		t.Fatalf("only %d requests failed: the proxy did not test retries", failed.Load())
	}
	t.Logf("%d of %d requests answered 503 and retried", failed.Load(), n.Load())
}

// TestS3WithoutConditionalWrites: a server that refuses If-None-Match
// (here a proxy answering 501 NotImplemented to conditional puts) is found
// by the probe; the store warns that it runs in the weaker mode, and
// PutIfAbsent still refuses an object that exists (checked, then put).
func TestS3WithoutConditionalWrites(t *testing.T) {
	ctx := context.Background()
	bucket, proxyURL := s3Proxy(t, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Header.Get("If-None-Match") == "" {
			return false
		}
		s3Error(w, r, http.StatusNotImplemented, "NotImplemented", "A header you provided implies functionality that is not implemented.")
		return true
	})
	var logs bytes.Buffer
	s, err := storage.NewS3(ctx, storage.S3Config{Bucket: bucket, Endpoint: proxyURL, PathStyle: true,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if s.Conditional() {
		t.Fatal("the probe found conditional writes behind a proxy that refuses them")
	}
	if !strings.Contains(logs.String(), "ignores conditional writes") || !strings.Contains(logs.String(), "one job per checkpoint directory") {
		t.Fatalf("no warning of the weaker mode; logs:\n%s", logs.String())
	}
	if err := s.PutIfAbsent(ctx, "chk-1/MANIFEST", strings.NewReader("first")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutIfAbsent(ctx, "chk-1/MANIFEST", strings.NewReader("second")); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("second PutIfAbsent = %v, want ErrExists", err)
	}
}

// s3Proxy makes a bucket on the test S3 server and puts a proxy in front
// of it: intercept answers a request itself (true) or lets it through. It
// returns the bucket and the proxy's URL.
func s3Proxy(t *testing.T, intercept func(http.ResponseWriter, *http.Request) bool) (bucket, proxyURL string) {
	t.Helper()
	ep := testenv.S3(t)
	bucket, _ = testenv.S3Bucket(t, ep)
	target, err := url.Parse(ep)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !intercept(w, r) {
			proxy.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return bucket, srv.URL
}

// s3Error answers r with an S3 error document.
func s3Error(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message></Error>`, code, msg)
}
