package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	"github.com/segmentio/kafka-go/protocol/metadata"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/weirstream/weir"
)

// Conn says how to reach a Kafka cluster. The zero value of every field but
// Brokers is a sensible default. A Conn is never written into a checkpoint
// and its String method leaves secrets out.
type Conn struct {
	// Brokers are the bootstrap addresses, host:port.
	Brokers []string
	// TLS, if not nil, encrypts every connection.
	TLS *tls.Config
	// SASL, if not nil, authenticates every connection (see PlainAuth and
	// ScramAuth).
	SASL sasl.Mechanism
	// ClientID identifies weir's requests in the broker's logs and quotas
	// ("weir" by default).
	ClientID string
	// DialTimeout bounds establishing one connection, TLS and SASL
	// included (10 s by default).
	DialTimeout time.Duration
	// RequestTimeout bounds requests that do not wait on purpose, such as
	// metadata, and how long a source or sink retries when no broker
	// answers before it fails (30 s by default).
	RequestTimeout time.Duration
}

func (c Conn) String() string {
	s := "kafka " + strings.Join(c.Brokers, ",")
	if c.TLS != nil {
		s += " tls"
	}
	if c.SASL != nil {
		s += " sasl=" + c.SASL.Name()
	}
	return s
}

func (c Conn) check() error {
	if len(c.Brokers) == 0 {
		return errors.New("kafka: no brokers given (--brokers host:port,...)")
	}
	for _, b := range c.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			return fmt.Errorf("kafka: broker address %q: %v (want host:port)", b, err)
		}
	}
	return nil
}

func (c Conn) requestTimeout() time.Duration {
	if c.RequestTimeout > 0 {
		return c.RequestTimeout
	}
	return 30 * time.Second
}

// client is a kafka-go transport bound to a cluster: the one place that
// sends requests. kafka-go's Transport pools connections, discovers the
// cluster and routes each request to the broker it must go to (partition
// leader, group or transaction coordinator).
type client struct {
	conn Conn
	addr net.Addr
	t    *kafkago.Transport
}

func newClient(c Conn) (*client, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	dialTimeout := c.DialTimeout
	if dialTimeout <= 0 {
		dialTimeout = 10 * time.Second
	}
	id := c.ClientID
	if id == "" {
		id = "weir"
	}
	t := &kafkago.Transport{
		Dial:        (&net.Dialer{Timeout: dialTimeout}).DialContext,
		DialTimeout: dialTimeout,
		MetadataTTL: 5 * time.Second,
		ClientID:    id,
		TLS:         c.TLS,
		SASL:        c.SASL,
	}
	return &client{conn: c, addr: kafkago.TCP(c.Brokers...), t: t}, nil
}

func (c *client) close() { c.t.CloseIdleConnections() }

// roundTrip sends req and returns the response, or an error that names
// the request and the brokers.
func (c *client) roundTrip(ctx context.Context, req protocol.Message) (protocol.Message, error) {
	res, err := c.t.RoundTrip(ctx, c.addr, req)
	if err != nil {
		return nil, fmt.Errorf("kafka %s to %s: %w", req.ApiKey(), strings.Join(c.conn.Brokers, ","), err)
	}
	return res, nil
}

// partitions returns the partitions of topic, sorted, and fails clearly
// when the cluster cannot be reached in time or the topic does not exist.
//
// It is the first request of a source or sink, so it gives up sooner than
// others (at most 10 s): an unreachable cluster at start is an error, and
// the job's restarts try again.
func (c *client) partitions(ctx context.Context, topic string) ([]int32, error) {
	limit := min(c.conn.requestTimeout(), 10*time.Second)
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		res, err := c.roundTrip(ctx, &metadata.Request{TopicNames: []string{topic}})
		if err != nil {
			if !retriable(err) {
				// A refused password, a certificate that does not
				// verify: no restart cures it.
				return nil, weir.Permanent(err)
			}
			if ctx.Err() != nil || sleep(ctx, 200*time.Millisecond) != nil {
				return nil, fmt.Errorf("cannot reach brokers %s within %v (check --brokers, the network and the brokers' listeners): %w", strings.Join(c.conn.Brokers, ","), limit, err)
			}
			continue
		}
		md := res.(*metadata.Response)
		for _, t := range md.Topics {
			if t.Name != topic {
				continue
			}
			switch e := kafkago.Error(t.ErrorCode); {
			case e == kafkago.UnknownTopicOrPartition:
				return nil, weir.Permanent(fmt.Errorf("kafka: topic %q does not exist on %s", topic, strings.Join(c.conn.Brokers, ",")))
			case t.ErrorCode != 0 && e.Temporary():
				if err := sleep(ctx, 200*time.Millisecond); err != nil {
					return nil, fmt.Errorf("kafka: metadata of topic %q: %w", topic, e)
				}
				continue
			case t.ErrorCode != 0:
				return nil, weir.Permanent(fmt.Errorf("kafka: metadata of topic %q: %w", topic, e))
			}
			ps := make([]int32, 0, len(t.Partitions))
			for _, p := range t.Partitions {
				ps = append(ps, p.PartitionIndex)
			}
			slices.Sort(ps)
			return ps, nil
		}
		return nil, weir.Permanent(fmt.Errorf("kafka: topic %q does not exist on %s", topic, strings.Join(c.conn.Brokers, ",")))
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// PlainAuth is SASL/PLAIN with a user name and password. Use it over TLS:
// PLAIN sends the password as it is.
func PlainAuth(user, password string) sasl.Mechanism {
	return plain.Mechanism{Username: user, Password: password}
}

// ScramAuth is SASL/SCRAM with SHA-256 or SHA-512 (sha is 256 or 512).
func ScramAuth(sha int, user, password string) (sasl.Mechanism, error) {
	algo := scram.SHA256
	switch sha {
	case 256:
	case 512:
		algo = scram.SHA512
	default:
		return nil, fmt.Errorf("kafka: SCRAM-SHA-%d: want 256 or 512", sha)
	}
	return scram.Mechanism(algo, user, password)
}

// ConnFlags are the command-line flags of a Kafka connection, for job
// binaries. Secrets come from a flag, the environment (as every flag of a
// job binary, WEIR_KAFKA_PASSWORD) or a file; they are never logged.
type ConnFlags struct {
	brokers      string
	tls          bool
	caFile       string
	certFile     string
	keyFile      string
	serverName   string
	mechanism    string
	user         string
	password     string
	passwordFile string
	timeout      time.Duration
}

// RegisterConnFlags declares the connection flags on fs: --brokers,
// --kafka-tls, --kafka-ca-file, --kafka-cert-file, --kafka-key-file,
// --kafka-server-name, --kafka-sasl, --kafka-user, --kafka-password,
// --kafka-password-file and --kafka-timeout.
func RegisterConnFlags(fs *flag.FlagSet) *ConnFlags {
	f := &ConnFlags{}
	fs.StringVar(&f.brokers, "brokers", "", "Kafka bootstrap brokers, host:port[,host:port...]")
	fs.BoolVar(&f.tls, "kafka-tls", false, "connect to Kafka over TLS")
	fs.StringVar(&f.caFile, "kafka-ca-file", "", "PEM file of the CA certificates that sign the brokers' certificates (implies --kafka-tls; default: the system's)")
	fs.StringVar(&f.certFile, "kafka-cert-file", "", "PEM client certificate for TLS client authentication")
	fs.StringVar(&f.keyFile, "kafka-key-file", "", "PEM private key of --kafka-cert-file")
	fs.StringVar(&f.serverName, "kafka-server-name", "", "name to verify the brokers' certificates against (default: the host of each address)")
	fs.StringVar(&f.mechanism, "kafka-sasl", "", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (default: none)")
	fs.StringVar(&f.user, "kafka-user", "", "SASL user name")
	fs.StringVar(&f.password, "kafka-password", "", "SASL password (prefer WEIR_KAFKA_PASSWORD or --kafka-password-file: flags show in the process list)")
	fs.StringVar(&f.passwordFile, "kafka-password-file", "", "file holding the SASL password")
	fs.DurationVar(&f.timeout, "kafka-timeout", 30*time.Second, "how long Kafka requests are retried while no broker answers (a broker restart) before the job fails")
	return f
}

// Set reports whether --brokers was given.
func (f *ConnFlags) Set() bool { return f.brokers != "" }

// Conn builds the connection the flags describe, or says which flag is
// wrong.
func (f *ConnFlags) Conn() (Conn, error) {
	var c Conn
	for _, b := range strings.Split(f.brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			c.Brokers = append(c.Brokers, b)
		}
	}
	if len(c.Brokers) == 0 {
		return c, errors.New("--brokers: no broker address given")
	}
	if err := c.check(); err != nil {
		return c, fmt.Errorf("--brokers: %w", err)
	}
	if f.timeout <= 0 {
		return c, fmt.Errorf("--kafka-timeout %v: must be positive", f.timeout)
	}
	c.RequestTimeout = f.timeout
	if f.tls || f.caFile != "" || f.certFile != "" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.serverName}
		if f.caFile != "" {
			pem, err := os.ReadFile(f.caFile)
			if err != nil {
				return c, fmt.Errorf("--kafka-ca-file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return c, fmt.Errorf("--kafka-ca-file %s: no PEM certificate in it", f.caFile)
			}
			cfg.RootCAs = pool
		}
		if (f.certFile == "") != (f.keyFile == "") {
			return c, errors.New("--kafka-cert-file and --kafka-key-file go together")
		}
		if f.certFile != "" {
			cert, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
			if err != nil {
				return c, fmt.Errorf("--kafka-cert-file/--kafka-key-file: %w", err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		c.TLS = cfg
	}
	if f.mechanism == "" {
		if f.user != "" {
			return c, errors.New("--kafka-user given without --kafka-sasl")
		}
		return c, nil
	}
	password := f.password
	if f.passwordFile != "" {
		if password != "" {
			return c, errors.New("--kafka-password and --kafka-password-file: give one")
		}
		b, err := os.ReadFile(f.passwordFile)
		if err != nil {
			return c, fmt.Errorf("--kafka-password-file: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	if f.user == "" || password == "" {
		return c, fmt.Errorf("--kafka-sasl %s needs --kafka-user and a password (--kafka-password-file, WEIR_KAFKA_PASSWORD)", f.mechanism)
	}
	switch strings.ToUpper(f.mechanism) {
	case "PLAIN":
		c.SASL = PlainAuth(f.user, password)
	case "SCRAM-SHA-256", "SCRAM-SHA-512":
		sha := 256
		if strings.HasSuffix(f.mechanism, "512") {
			sha = 512
		}
		m, err := ScramAuth(sha, f.user, password)
		if err != nil {
			return c, fmt.Errorf("--kafka-sasl: %w", err)
		}
		c.SASL = m
	default:
		return c, fmt.Errorf("--kafka-sasl %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", f.mechanism)
	}
	return c, nil
}
