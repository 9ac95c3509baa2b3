package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// S3Config says where an S3 store keeps its objects and how to reach it.
// Credentials, and the region and endpoint when these fields are empty,
// come from the SDK's standard environment variables and files
// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
// AWS_ENDPOINT_URL_S3, ~/.aws/config, ...), so AWS, MinIO, Ceph, R2 and
// GCS's S3 API all work.
type S3Config struct {
	Bucket string
	Prefix string // objects live under Prefix/ ("" for the bucket's root)
	// Endpoint is the S3 server's URL (empty: AWS, or AWS_ENDPOINT_URL_S3).
	Endpoint string
	Region   string // empty: from the environment, else us-east-1
	// PathStyle addresses buckets as ENDPOINT/BUCKET rather than
	// BUCKET.ENDPOINT, as most servers other than AWS need.
	PathStyle bool
	// PartSize is the size of multipart upload parts (16 MiB by default);
	// smaller objects go up in one request.
	PartSize int64
	// Concurrency bounds the parts of one object uploading at once (4 by
	// default).
	Concurrency int
	// Logger receives the warning when the server lacks conditional
	// writes (nil: slog.Default()).
	Logger *slog.Logger
}

// ParseS3URL splits s3://bucket/prefix.
func ParseS3URL(s string) (bucket, prefix string, err error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		return "", "", fmt.Errorf("%q: want s3://bucket[/prefix]", s)
	}
	return u.Host, strings.Trim(u.Path, "/"), nil
}

// OpenDir opens checkpoint storage by its name: s3://bucket/prefix is an
// S3 store (cfg gives the endpoint, region and addressing; its Bucket and
// Prefix are ignored), anything else a local directory.
func OpenDir(ctx context.Context, dir string, cfg S3Config) (BlobStore, error) {
	if !strings.HasPrefix(dir, "s3://") {
		return NewLocal(dir)
	}
	bucket, prefix, err := ParseS3URL(dir)
	if err != nil {
		return nil, err
	}
	cfg.Bucket, cfg.Prefix = bucket, prefix
	return NewS3(ctx, cfg)
}

// S3 is a BlobStore in an S3 bucket.
//
// Every object carries a CRC-32C checksum that the server verifies on
// upload and the SDK on download, so a corrupt body is rejected. Objects
// of PartSize or more go up as multipart uploads, Concurrency parts at a
// time; a failed one is aborted. Transient errors are retried with backoff
// by the SDK's retryer. PutIfAbsent is a conditional put (If-None-Match:
// *) where the server supports it, which NewS3 probes; where it does not,
// it checks for the object and then puts it, which two concurrent writers
// can both pass (the weaker mode is logged as a warning at start).
type S3 struct {
	c           *s3.Client
	bucket      string
	root        string // "" or "prefix/"
	partSize    int64
	concurrency int
	conditional bool
}

var _ BlobStore = (*S3)(nil)

// NewS3 connects to the bucket and probes whether it supports conditional
// writes.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("storage: S3 store without a bucket")
	}
	var opts []func(*config.LoadOptions) error
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("storage: S3 configuration: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1"
	}
	c := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
		o.RetryMaxAttempts = 6
		// The SDK cannot check a multipart object's whole checksum on
		// download and warns each time; weir checks every downloaded
		// file against the manifest's CRC-32C itself.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	s := &S3{c: c, bucket: cfg.Bucket, partSize: cfg.PartSize, concurrency: cfg.Concurrency}
	if p := strings.Trim(cfg.Prefix, "/"); p != "" {
		s.root = p + "/"
	}
	if s.partSize <= 0 {
		s.partSize = 16 << 20
	}
	if s.partSize < 5<<20 {
		s.partSize = 5 << 20 // S3's smallest part but the last
	}
	if s.concurrency <= 0 {
		s.concurrency = 4
	}
	if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.bucket)}); err != nil {
		return nil, fmt.Errorf("storage: S3 bucket %q: %w", s.bucket, err)
	}
	if s.conditional, err = s.probeConditional(ctx); err != nil {
		return nil, err
	}
	if !s.conditional {
		log := cfg.Logger
		if log == nil {
			log = slog.Default()
		}
		log.Warn("the S3 server ignores conditional writes (If-None-Match): manifests are written after a check for an existing one, so two coordinators writing one checkpoint directory at the same moment could both commit; run one job per checkpoint directory", "bucket", s.bucket)
	}
	return s, nil
}

// probeConditional writes a probe object twice with If-None-Match: *; a
// server that supports it refuses the second.
func (s *S3) probeConditional(ctx context.Context) (bool, error) {
	key := s.root + ".weir-conditional-probe"
	defer s.c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	for i := range 2 {
		_, err := s.c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key),
			Body: bytes.NewReader(nil), IfNoneMatch: aws.String("*")})
		switch {
		case err == nil:
			if i == 1 {
				return false, nil
			}
		case i == 1 && isStatus(err, 412, "PreconditionFailed"):
			return true, nil
		case isStatus(err, 501, "NotImplemented"):
			return false, nil
		default:
			return false, fmt.Errorf("storage: S3 probe of conditional writes: %w", err)
		}
	}
	return false, nil
}

// Conditional reports whether PutIfAbsent is a conditional write.
func (s *S3) Conditional() bool { return s.conditional }

func (s *S3) key(name string) (string, error) {
	if err := ValidName(name); err != nil {
		return "", err
	}
	return s.root + name, nil
}

// isStatus reports an S3 error of the HTTP status or error code.
func isStatus(err error, status int, code string) bool {
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == status {
		return true
	}
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == code
}

func notFound(err error) bool {
	var nk *types.NoSuchKey
	var nf *types.NotFound
	return errors.As(err, &nk) || errors.As(err, &nf) || isStatus(err, 404, "NoSuchKey")
}

// Put implements BlobStore.
func (s *S3) Put(ctx context.Context, name string, r io.Reader) error {
	key, err := s.key(name)
	if err != nil {
		return err
	}
	first := make([]byte, s.partSize)
	n, err := io.ReadFull(r, first)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return s.putSmall(ctx, key, first[:n], false)
	case err != nil:
		return fmt.Errorf("storage: put %s: %w", name, err)
	}
	return s.putMultipart(ctx, name, key, first, r)
}

func (s *S3) putSmall(ctx context.Context, key string, body []byte, ifAbsent bool) error {
	in := &s3.PutObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key), Body: bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c}
	if ifAbsent {
		in.IfNoneMatch = aws.String("*")
	}
	if _, err := s.c.PutObject(ctx, in); err != nil {
		if ifAbsent && isStatus(err, 412, "PreconditionFailed") {
			return fmt.Errorf("%w: %s", ErrExists, strings.TrimPrefix(key, s.root))
		}
		return fmt.Errorf("storage: put %s: %w", strings.TrimPrefix(key, s.root), err)
	}
	return nil
}

// putMultipart uploads first and the rest of r as parts, at most
// s.concurrency at once; on any error the upload is aborted.
func (s *S3) putMultipart(ctx context.Context, name, key string, first []byte, r io.Reader) (err error) {
	up, err := s.c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(s.bucket), Key: aws.String(key),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c})
	if err != nil {
		return fmt.Errorf("storage: put %s: start multipart upload: %w", name, err)
	}
	defer func() {
		if err != nil {
			// A new context: ctx may be why it failed.
			s.c.AbortMultipartUpload(context.WithoutCancel(ctx), &s3.AbortMultipartUploadInput{Bucket: aws.String(s.bucket), Key: aws.String(key), UploadId: up.UploadId})
		}
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		parts    []types.CompletedPart
		firstErr error
		wg       sync.WaitGroup
		sem      = make(chan struct{}, s.concurrency)
	)
	fail := func(e error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = e
			cancel()
		}
		mu.Unlock()
	}
	failed := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return firstErr != nil
	}
	upload := func(num int32, body []byte) {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			out, err := s.c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(s.bucket), Key: aws.String(key), UploadId: up.UploadId,
				PartNumber: aws.Int32(num), Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body))),
				ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c})
			if err != nil {
				fail(fmt.Errorf("part %d: %w", num, err))
				return
			}
			mu.Lock()
			parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(num), ETag: out.ETag, ChecksumCRC32C: out.ChecksumCRC32C})
			mu.Unlock()
		}()
	}
	buf := first
	for num := int32(1); !failed(); num++ {
		// Read the next part first: a part is the last one or at least
		// PartSize long.
		next := make([]byte, s.partSize)
		n, rerr := io.ReadFull(r, next)
		upload(num, buf)
		if rerr == io.EOF {
			break
		}
		if rerr == io.ErrUnexpectedEOF {
			upload(num+1, next[:n])
			break
		}
		if rerr != nil {
			fail(fmt.Errorf("read: %w", rerr))
			break
		}
		buf = next
	}
	wg.Wait()
	if firstErr != nil {
		return fmt.Errorf("storage: put %s: %w", name, firstErr)
	}
	slices.SortFunc(parts, func(a, b types.CompletedPart) int { return int(*a.PartNumber - *b.PartNumber) })
	if _, err := s.c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(s.bucket), Key: aws.String(key), UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}}); err != nil {
		return fmt.Errorf("storage: put %s: complete multipart upload: %w", name, err)
	}
	return nil
}

// PutIfAbsent implements BlobStore: a conditional put where the server
// supports it, else a check and a put (see S3).
func (s *S3) PutIfAbsent(ctx context.Context, name string, r io.Reader) error {
	key, err := s.key(name)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("storage: put %s: %w", name, err)
	}
	if !s.conditional {
		if _, err := s.Stat(ctx, name); err == nil {
			return fmt.Errorf("%w: %s", ErrExists, name)
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return s.putSmall(ctx, key, body, s.conditional)
}

// Get implements BlobStore. The SDK checks the object's CRC-32C as it is
// read: a corrupt body fails the read. For an object uploaded in parts the
// server keeps only a checksum of the parts' checksums, which the SDK
// cannot check; every reader in weir (restore, Verify) checks the
// manifest's CRC-32C of the whole file as well.
func (s *S3) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	key, err := s.key(name)
	if err != nil {
		return nil, err
	}
	out, err := s.c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		if notFound(err) {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
		}
		return nil, fmt.Errorf("storage: get %s: %w", name, err)
	}
	return out.Body, nil
}

// Stat implements BlobStore.
func (s *S3) Stat(ctx context.Context, name string) (int64, error) {
	key, err := s.key(name)
	if err != nil {
		return 0, err
	}
	out, err := s.c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		if notFound(err) {
			return 0, fmt.Errorf("%w: %s", ErrNotFound, name)
		}
		return 0, fmt.Errorf("storage: stat %s: %w", name, err)
	}
	return aws.ToInt64(out.ContentLength), nil
}

// List implements BlobStore.
func (s *S3) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	var objs []ObjectInfo
	p := s3.NewListObjectsV2Paginator(s.c, &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(s.root + prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("storage: list %q: %w", prefix, err)
		}
		for _, o := range page.Contents {
			name := strings.TrimPrefix(aws.ToString(o.Key), s.root)
			if ValidName(name) == nil {
				objs = append(objs, ObjectInfo{Name: name, Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)})
			}
		}
	}
	slices.SortFunc(objs, func(a, b ObjectInfo) int { return strings.Compare(a.Name, b.Name) })
	return objs, nil
}

// UploadAborter is a store whose uploads can be left unfinished by a
// process killed midway (S3's multipart uploads): invisible, but stored
// and billed until aborted.
type UploadAborter interface {
	// AbortUploads aborts the unfinished uploads begun before cutoff and
	// returns how many.
	AbortUploads(ctx context.Context, cutoff time.Time) (int, error)
}

var _ UploadAborter = (*S3)(nil)

// AbortUploads implements UploadAborter for the multipart uploads under
// the store's prefix.
func (s *S3) AbortUploads(ctx context.Context, cutoff time.Time) (int, error) {
	n := 0
	in := &s3.ListMultipartUploadsInput{Bucket: aws.String(s.bucket), Prefix: aws.String(s.root)}
	for {
		out, err := s.c.ListMultipartUploads(ctx, in)
		if err != nil {
			return n, fmt.Errorf("storage: list multipart uploads: %w", err)
		}
		for _, u := range out.Uploads {
			if !aws.ToTime(u.Initiated).Before(cutoff) {
				continue
			}
			if _, err := s.c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(s.bucket), Key: u.Key, UploadId: u.UploadId}); err != nil && !isStatus(err, 404, "NoSuchUpload") {
				return n, fmt.Errorf("storage: abort multipart upload of %s: %w", aws.ToString(u.Key), err)
			}
			n++
		}
		if !aws.ToBool(out.IsTruncated) {
			return n, nil
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
}

// Delete implements BlobStore.
func (s *S3) Delete(ctx context.Context, name string) error {
	key, err := s.key(name)
	if err != nil {
		return err
	}
	if _, err := s.c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)}); err != nil && !notFound(err) {
		return fmt.Errorf("storage: delete %s: %w", name, err)
	}
	return nil
}
