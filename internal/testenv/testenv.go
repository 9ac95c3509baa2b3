// Package testenv finds the real services that scripts/test starts for the
// tests (a Kafka broker, an S3 server, Jaeger) through the environment. A test
// whose service is missing skips, unless the run requires it
// (WEIR_REQUIRE_<SERVICE> or CI set, as scripts/test and CI do), in which
// case it fails.
package testenv

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// service returns the value of env, or skips or fails t without it.
func service(t testing.TB, env, require, start string) string {
	t.Helper()
	if v := os.Getenv(env); v != "" {
		return v
	}
	if os.Getenv(require) != "" || os.Getenv("CI") != "" {
		t.Fatalf("%s is not set, but %s or CI is: scripts/test starts it with %s", env, require, start)
	}
	t.Skipf("%s not set: start the service with %s", env, start)
	return ""
}

// Kafka returns the bootstrap address of the test broker
// (WEIR_KAFKA_BOOTSTRAP).
func Kafka(t testing.TB) string {
	t.Helper()
	return service(t, "WEIR_KAFKA_BOOTSTRAP", "WEIR_REQUIRE_KAFKA", "integration/kafka/broker.sh start DIR")
}

// KafkaDir returns the test broker's directory (WEIR_KAFKA_DIR): its
// other listeners' addresses, CA certificate and jar directory.
func KafkaDir(t testing.TB) string {
	t.Helper()
	return service(t, "WEIR_KAFKA_DIR", "WEIR_REQUIRE_KAFKA", "integration/kafka/broker.sh start DIR")
}

// S3 returns the endpoint URL of the test S3 server (WEIR_S3_ENDPOINT);
// its credentials are in the AWS_* variables.
func S3(t testing.TB) string {
	t.Helper()
	return service(t, "WEIR_S3_ENDPOINT", "WEIR_REQUIRE_S3", "integration/s3/versitygw.sh start DIR")
}

// Jaeger returns the OTLP/HTTP endpoint and the query API URL of the test
// Jaeger (WEIR_JAEGER_OTLP, WEIR_JAEGER_QUERY).
func Jaeger(t testing.TB) (otlp, query string) {
	t.Helper()
	const start = "integration/jaeger/jaeger.sh start DIR"
	return service(t, "WEIR_JAEGER_OTLP", "WEIR_REQUIRE_JAEGER", start), service(t, "WEIR_JAEGER_QUERY", "WEIR_REQUIRE_JAEGER", start)
}

// S3Client is a client of the S3 server at endpoint, path-style.
func S3Client(t testing.TB, endpoint string) *s3.Client {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithRegion("us-east-1"))
	if err != nil {
		t.Fatal(err)
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) { o.BaseEndpoint = aws.String(endpoint); o.UsePathStyle = true })
}

var bucketSeq atomic.Int64

// S3Bucket creates a new bucket on the S3 server at endpoint and returns
// its name and a client.
func S3Bucket(t testing.TB, endpoint string) (string, *s3.Client) {
	t.Helper()
	c := S3Client(t, endpoint)
	name := fmt.Sprintf("weir-test-%d-%d", time.Now().UnixNano()%1e12, bucketSeq.Add(1))
	if _, err := c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	return name, c
}
