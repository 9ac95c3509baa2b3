package integration

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/weirstream/weir"
	"github.com/weirstream/weir/internal/testenv"
	"github.com/weirstream/weir/kafka"
)

// The Kafka tests run the job binaries against a real Apache Kafka broker
// that scripts/test starts (integration/kafka/broker.sh) and names in
// WEIR_KAFKA_BOOTSTRAP; WEIR_KAFKA_DIR is its directory, with the
// addresses of its SASL listeners and its CA certificate.

func kafkaBroker(t *testing.T) kafka.Conn {
	t.Helper()
	return kafka.Conn{Brokers: []string{testenv.Kafka(t)}, RequestTimeout: 30 * time.Second}
}

func kafkaClient(conn kafka.Conn) *kafkago.Client {
	return &kafkago.Client{Addr: kafkago.TCP(conn.Brokers...), Timeout: 30 * time.Second}
}

// kafkaTopic creates a topic named after the test.
func kafkaTopic(t *testing.T, conn kafka.Conn, suffix string, partitions int) string {
	t.Helper()
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_' {
			return r
		}
		return '_'
	}, fmt.Sprintf("%s.%s.%d", t.Name(), suffix, time.Now().UnixNano()))
	res, err := kafkaClient(conn).CreateTopics(context.Background(), &kafkago.CreateTopicsRequest{
		Topics: []kafkago.TopicConfig{{Topic: name, NumPartitions: partitions, ReplicationFactor: 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Errors[name]; err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
	return name
}

// preloadSequence writes (key, seq) for seq 1..count of keys keys with
// kafka-go's own Writer, as any client would: key and value in decimal
// text, partitioned by the Java client's murmur2 of the key, each key's
// records in seq order.
func preloadSequence(t *testing.T, conn kafka.Conn, topic string, keys, count int) {
	t.Helper()
	w := &kafkago.Writer{Addr: kafkago.TCP(conn.Brokers...), Topic: topic, Balancer: kafkago.Murmur2Balancer{},
		RequiredAcks: kafkago.RequireAll, BatchSize: 5000, BatchBytes: 4 << 20, BatchTimeout: 10 * time.Millisecond}
	defer w.Close()
	msgs := make([]kafkago.Message, 0, 5000)
	flush := func() {
		if err := w.WriteMessages(context.Background(), msgs...); err != nil {
			t.Fatal(err)
		}
		msgs = msgs[:0]
	}
	for s := 1; s <= count; s++ {
		for k := range keys {
			msgs = append(msgs, kafkago.Message{Key: []byte(strconv.Itoa(k)), Value: []byte(strconv.Itoa(s))})
			if len(msgs) == cap(msgs) {
				flush()
			}
		}
	}
	if len(msgs) > 0 {
		flush()
	}
}

type kafkaSeqOut struct {
	Key    int64 `json:"key"`
	Seq    int64 `json:"seq"`
	Prev   int64 `json:"prev"`
	part   int32
	msgKey string
}

// readTopic reads a topic to its end, read_committed, with weir's source.
func readTopic[T any](t *testing.T, conn kafka.Conn, topic string, d kafka.Deserializer[T]) []T {
	t.Helper()
	ctx := context.Background()
	r, err := kafka.NewSource(conn, topic, d, kafka.Bounded()).Open(ctx, weir.SubtaskInfo{Index: 0, Parallelism: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []T
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); {
		buf, err := r.Read(ctx, make([]T, 0, 1024))
		out = append(out, buf...)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Fatalf("reading %s took more than two minutes", topic)
	return nil
}

// javaReadCommitted reads topic with Apache Kafka's own Java consumer
// (integration/kafka/ReadCommitted.java, compiled against the broker's
// jars) under read_committed: an independent check of what weir's source
// reads.
func javaReadCommitted(t *testing.T, conn kafka.Conn, topic string) []kafka.Record {
	t.Helper()
	bdir := testenv.KafkaDir(t)
	jars, err := os.ReadFile(filepath.Join(bdir, "jars"))
	if err != nil {
		t.Fatal(err)
	}
	cp := strings.TrimSpace(string(jars)) + "/*"
	classes := t.TempDir()
	if out, err := exec.Command("javac", "-d", classes, "-cp", cp, "kafka/ReadCommitted.java").CombinedOutput(); err != nil {
		t.Fatalf("javac: %v\n%s", err, out)
	}
	cmd := exec.Command("java", "-cp", cp+":"+classes, "ReadCommitted", conn.Brokers[0], topic)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("java ReadCommitted: %v\n%s", err, tail(stderr.String()))
	}
	var recs []kafka.Record
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 4 {
			t.Fatalf("java ReadCommitted: bad line %q", line)
		}
		part, _ := strconv.Atoi(f[0])
		off, _ := strconv.ParseInt(f[1], 10, 64)
		r := kafka.Record{Topic: topic, Partition: int32(part), Offset: off}
		if f[2] != "-" {
			r.Key, _ = base64.StdEncoding.DecodeString(f[2])
		}
		if f[3] != "-" {
			r.Value, _ = base64.StdEncoding.DecodeString(f[3])
		}
		recs = append(recs, r)
	}
	return recs
}

// sameRecords asserts that Kafka's Java consumer reads exactly the records
// (partition, offset, key, value) that weir's source read.
func sameRecords(t *testing.T, conn kafka.Conn, topic string) {
	t.Helper()
	key := func(r kafka.Record) string {
		return fmt.Sprintf("%d/%d/%q/%q", r.Partition, r.Offset, r.Key, r.Value)
	}
	ours := map[string]bool{}
	for _, r := range readTopic(t, conn, topic, kafka.Records()) {
		ours[key(r)] = true
	}
	java := javaReadCommitted(t, conn, topic)
	missing := 0
	for _, r := range java {
		if !ours[key(r)] {
			missing++
		}
	}
	t.Logf("Kafka's Java consumer (read_committed) read %d records of %s, weir's source %d", len(java), topic, len(ours))
	if len(java) != len(ours) || missing != 0 {
		t.Fatalf("Kafka's Java consumer read %d records, weir's source %d; %d of Java's are not among weir's", len(java), len(ours), missing)
	}
}

// checkKafkaSequence reads the sequence job's output topic and asserts that
// every (key, seq) of 1..count is there exactly once, in seq order per key,
// with prev = seq-1, keyed by the sequence key.
func checkKafkaSequence(t *testing.T, conn kafka.Conn, topic string, keys, count int) {
	t.Helper()
	outs := readTopic(t, conn, topic, func(r *kafka.Record) (kafkaSeqOut, error) {
		var o kafkaSeqOut
		err := json.Unmarshal(r.Value, &o)
		o.part, o.msgKey = r.Partition, string(r.Key)
		return o, err
	})
	seen := map[[2]int64]int{}
	last := map[int64]int64{}
	partOf := map[int64]int32{}
	var dup, disorder, bad int
	for _, o := range outs {
		seen[[2]int64{o.Key, o.Seq}]++
		if seen[[2]int64{o.Key, o.Seq}] > 1 {
			dup++
			continue
		}
		if o.Seq != last[o.Key]+1 {
			disorder++
		}
		last[o.Key] = o.Seq
		if o.Prev != o.Seq-1 || o.msgKey != strconv.FormatInt(o.Key, 10) {
			bad++
		}
		if p, ok := partOf[o.Key]; ok && p != o.part {
			bad++
		}
		partOf[o.Key] = o.part
	}
	lost := 0
	for k := range int64(keys) {
		for s := int64(1); s <= int64(count); s++ {
			if seen[[2]int64{k, s}] == 0 {
				lost++
			}
		}
	}
	t.Logf("output %s: %d records; lost %d, duplicated %d, out of order %d, malformed %d", topic, len(outs), lost, dup, disorder, bad)
	if lost != 0 || dup != 0 || disorder != 0 || bad != 0 {
		t.Fatalf("not exactly once: lost %d, duplicated %d, out of order %d, malformed %d", lost, dup, disorder, bad)
	}
	noOpenTransactions(t, conn, topic)
}

// noOpenTransactions asserts that the last stable offset equals the high
// watermark on every partition of topic: no transaction is left open.
func noOpenTransactions(t *testing.T, conn kafka.Conn, topic string) {
	t.Helper()
	ctx := context.Background()
	cl := kafkaClient(conn)
	md, err := cl.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		t.Fatal(err)
	}
	var reqs []kafkago.OffsetRequest
	for _, p := range md.Topics[0].Partitions {
		reqs = append(reqs, kafkago.LastOffsetOf(p.ID))
	}
	offsets := func(iso kafkago.IsolationLevel) map[int]int64 {
		// A broker that just restarted may answer with errors for a
		// moment: retry.
		var err error
		for range 50 {
			var res *kafkago.ListOffsetsResponse
			res, err = cl.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{topic: reqs}, IsolationLevel: iso})
			if err == nil {
				m := map[int]int64{}
				for _, p := range res.Topics[topic] {
					if p.Error != nil {
						err = p.Error
					}
					m[p.Partition] = p.LastOffset
				}
				if err == nil {
					return m
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("list offsets of %s: %v", topic, err)
		return nil
	}
	lso, hw := offsets(kafkago.ReadCommitted), offsets(kafkago.ReadUncommitted)
	for p, h := range hw {
		if lso[p] != h {
			t.Errorf("%s partition %d: last stable offset %d, high watermark %d: a transaction is left open", topic, p, lso[p], h)
		}
	}
}

// kafkaSequenceArgs are the arguments of the sequence job from topic in
// to topic out, exactly once, checkpoints every 500 ms.
func kafkaSequenceArgs(conn kafka.Conn, dir, in, out string, rate int) []string {
	return append([]string{
		"--brokers", strings.Join(conn.Brokers, ","), "--input-topic", in, "--output-topic", out,
		"--delivery", "exactly-once", "--bounded", "--rate", strconv.Itoa(rate), "--parallelism", "2",
	}, checkpointArgs(filepath.Join(dir, "checkpoints"), filepath.Join(dir, "state"), "500ms")...)
}

// TestKafkaSequenceExactlyOnceKills runs the sequence job from a
// multi-partition topic to a transactional sink and SIGKILLs it at random
// moments at least 20 times: every (key, seq) is in the output exactly
// once, in order, and no transaction is left open.
func TestKafkaSequenceExactlyOnceKills(t *testing.T) {
	conn := kafkaBroker(t)
	const keys, count = 8, 50000 // 20 s of work at 20000/s: 20 kills land before it ends
	in := kafkaTopic(t, conn, "in", 4)
	out := kafkaTopic(t, conn, "out", 3)
	preloadSequence(t, conn, in, keys, count)
	args := kafkaSequenceArgs(conn, t.TempDir(), in, out, 20000)
	rng := rand.New(rand.NewPCG(crashSeed(t), 5))
	if n := killUntilDone(t, rng, 20, 300*time.Millisecond, 900*time.Millisecond, "sequence", args...); n < 20 {
		t.Fatalf("%d kills landed before the job finished, want 20", n)
	}
	checkKafkaSequence(t, conn, out, keys, count)
	sameRecords(t, conn, out)
}

// TestKafkaSequenceFailpoints kills the job at the moments of the
// two-phase commit that matter: after the barrier flush, after the
// manifest, before, during and after EndTxn.
func TestKafkaSequenceFailpoints(t *testing.T) {
	conn := kafkaBroker(t)
	const keys, count = 4, 3000
	for _, fp := range []string{"kafka-after-flush@3", "after-manifest@3", "kafka-before-endtxn@3", "kafka-during-endtxn@3", "kafka-after-endtxn@3"} {
		t.Run(fp, func(t *testing.T) {
			in := kafkaTopic(t, conn, "in", 4)
			out := kafkaTopic(t, conn, "out", 3)
			preloadSequence(t, conn, in, keys, count)
			args := kafkaSequenceArgs(conn, t.TempDir(), in, out, 4000)
			p := startJob(t, []string{"WEIR_FAILPOINT=" + fp}, "sequence", args...)
			if ws := p.wait(t); !sigkilled(ws) || !strings.Contains(p.stderr.String(), "failpoint") {
				t.Fatalf("WEIR_FAILPOINT=%s: %s, want killed at the failpoint; stderr:\n%s", fp, describe(ws), tail(p.stderr.String()))
			}
			runToEnd(t, "sequence", args...)
			checkKafkaSequence(t, conn, out, keys, count)
		})
	}
}

// TestKafkaZombieIsFenced pauses a running job with SIGSTOP, starts its
// replacement on the same checkpoints, then resumes the paused one: the
// zombie's next request is refused as fenced, it fails, and the output is
// still exactly once.
func TestKafkaZombieIsFenced(t *testing.T) {
	conn := kafkaBroker(t)
	const keys, count = 4, 10000
	in := kafkaTopic(t, conn, "in", 4)
	out := kafkaTopic(t, conn, "out", 3)
	preloadSequence(t, conn, in, keys, count)
	dir := t.TempDir()
	args := kafkaSequenceArgs(conn, dir, in, out, 10000)
	zombieArgs := append(append([]string{}, args...), "--state-dir", filepath.Join(dir, "zombie-state"), "--restart-attempts", "0")
	zombie := startJob(t, nil, "sequence", zombieArgs...)
	time.Sleep(1500 * time.Millisecond) // a few checkpoints
	if err := zombie.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	replacement := startJob(t, nil, "sequence", args...)
	time.Sleep(1500 * time.Millisecond) // the replacement fenced the zombie's ids and runs
	if err := zombie.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	ws := zombie.wait(t)
	if ws.Exited() && ws.ExitStatus() == 0 {
		t.Fatalf("the zombie finished normally; stderr:\n%s", tail(zombie.stderr.String()))
	}
	if s := zombie.stderr.String(); !strings.Contains(s, "ProducerFenced") && !strings.Contains(s, "Invalid Producer Epoch") && !strings.Contains(strings.ToLower(s), "fenced") {
		t.Fatalf("the zombie failed (%s), but not because it was fenced; stderr:\n%s", describe(ws), tail(s))
	}
	if ws := replacement.wait(t); !ws.Exited() || ws.ExitStatus() != 0 {
		t.Fatalf("replacement: %s; stderr:\n%s", describe(ws), tail(replacement.stderr.String()))
	}
	checkKafkaSequence(t, conn, out, keys, count)
}

// privateBroker starts a broker of the test's own (for tests that stop
// it) and returns its connection and directory.
func privateBroker(t *testing.T) (kafka.Conn, string) {
	t.Helper()
	kafkaBroker(t) // skips or fails like the others without Kafka
	dir := t.TempDir()
	t.Cleanup(func() { exec.Command("kafka/broker.sh", "stop", dir).Run() })
	addr := service(t, "kafka/broker.sh", "start", dir)
	return kafka.Conn{Brokers: []string{addr}, RequestTimeout: 30 * time.Second}, dir
}

// service runs one of the scripts that start and stop the tests'
// services (kafka/broker.sh, s3/versitygw.sh) with verb and dir, and
// returns what it prints (the address, for start).
func service(t *testing.T, script, verb, dir string) string {
	t.Helper()
	cmd := exec.Command(script, verb, dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", script, verb, err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// TestKafkaBrokerRestart stops and restarts the broker while the job runs:
// the job rides it out by itself (retrying, or restarting from its
// checkpoint), finishes, and its output is exactly once.
func TestKafkaBrokerRestart(t *testing.T) {
	conn, dir := privateBroker(t)
	const keys, count = 4, 12000
	in := kafkaTopic(t, conn, "in", 4)
	out := kafkaTopic(t, conn, "out", 3)
	preloadSequence(t, conn, in, keys, count)
	args := append(kafkaSequenceArgs(conn, t.TempDir(), in, out, 8000), "--restart-attempts", "10")
	job := startJob(t, nil, "sequence", args...)
	time.Sleep(2 * time.Second)
	service(t, "kafka/broker.sh", "stop", dir)
	select {
	case <-job.done:
		t.Fatalf("the job ended before the broker stopped; stderr:\n%s", tail(job.stderr.String()))
	default:
	}
	t.Log("broker stopped")
	time.Sleep(3 * time.Second)
	if addr := service(t, "kafka/broker.sh", "start", dir); addr != conn.Brokers[0] {
		t.Fatalf("the broker came back at %s, not %s", addr, conn.Brokers[0])
	}
	t.Log("broker started again")
	if ws := job.wait(t); !ws.Exited() || ws.ExitStatus() != 0 {
		t.Fatalf("job: %s; stderr:\n%s", describe(ws), tail(job.stderr.String()))
	}
	t.Logf("the job restarted %d times in-process", strings.Count(job.stderr.String(), "restarting from the latest checkpoint"))
	checkKafkaSequence(t, conn, out, keys, count)
}

// TestKafkaUnreachableBroker: a job whose brokers do not answer fails with
// an error that names them, in bounded time, instead of hanging.
func TestKafkaUnreachableBroker(t *testing.T) {
	kafkaBroker(t)
	dir := t.TempDir()
	start := time.Now()
	r := run(t, nil, "sequence", append([]string{"--brokers", "127.0.0.1:1", "--input-topic", "in", "--output-topic", "out", "--restart-attempts", "0"},
		checkpointArgs(filepath.Join(dir, "ckpt"), filepath.Join(dir, "state"), "1s")...)...)
	if r.code != 1 || !strings.Contains(r.stderr, "cannot reach brokers 127.0.0.1:1") {
		t.Fatalf("exit %d, want 1 with an error naming the broker; stderr:\n%s", r.code, tail(r.stderr))
	}
	t.Logf("failed after %v", time.Since(start).Round(time.Millisecond))
}

// TestKafkaSASL runs the job over the broker's SASL listeners: SCRAM-SHA-512
// over TLS (trusting the broker's CA) with the password in a file, and
// PLAIN over plaintext with the password in the environment. The password
// never shows in the job's output or its checkpoints; a wrong one is a
// clear error.
func TestKafkaSASL(t *testing.T) {
	conn := kafkaBroker(t)
	bdir := testenv.KafkaDir(t)
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(bdir, name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	const password = "weir-secret"
	pwFile := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		env  []string
		args []string
	}{
		{"scram-sha-512-tls", nil, []string{"--brokers", read("bootstrap.sasl_ssl"), "--kafka-ca-file", filepath.Join(bdir, "ca.pem"),
			"--kafka-sasl", "SCRAM-SHA-512", "--kafka-user", "weir", "--kafka-password-file", pwFile}},
		{"scram-sha-256-tls", nil, []string{"--brokers", read("bootstrap.sasl_ssl"), "--kafka-ca-file", filepath.Join(bdir, "ca.pem"),
			"--kafka-sasl", "SCRAM-SHA-256", "--kafka-user", "weir", "--kafka-password-file", pwFile}},
		{"plain", []string{"WEIR_KAFKA_PASSWORD=" + password}, []string{"--brokers", read("bootstrap.sasl"), "--kafka-sasl", "PLAIN", "--kafka-user", "weir"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const keys, count = 3, 500
			in := kafkaTopic(t, conn, "in", 2)
			out := kafkaTopic(t, conn, "out", 2)
			preloadSequence(t, conn, in, keys, count)
			dir := t.TempDir()
			args := append(append([]string{"--input-topic", in, "--output-topic", out, "--delivery", "exactly-once", "--bounded", "--parallelism", "2", "--log-level", "debug"},
				checkpointArgs(filepath.Join(dir, "ckpt"), filepath.Join(dir, "state"), "200ms")...), tc.args...)
			r := run(t, tc.env, "sequence", args...)
			if r.code != 0 {
				t.Fatalf("exit %d; stderr:\n%s", r.code, tail(r.stderr))
			}
			if strings.Contains(r.stderr+r.stdout, password) {
				t.Fatal("the password shows in the job's output")
			}
			filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					if b, err := os.ReadFile(path); err == nil && strings.Contains(string(b), password) {
						t.Errorf("the password is written in %s", path)
					}
				}
				return nil
			})
			checkKafkaSequence(t, conn, out, keys, count)

			// A wrong password: a clear error, no hang.
			bad := append(append([]string{}, args...), "--restart-attempts", "0", "--checkpoint-dir", filepath.Join(dir, "ckpt2"), "--state-dir", filepath.Join(dir, "state2"))
			env := tc.env
			if env != nil {
				env = []string{"WEIR_KAFKA_PASSWORD=wrong"}
			} else {
				wrong := filepath.Join(dir, "wrong")
				os.WriteFile(wrong, []byte("wrong"), 0o600)
				bad = append(bad, "--kafka-password-file", wrong)
			}
			r = run(t, env, "sequence", bad...)
			if r.code != 1 || !strings.Contains(r.stderr, "Authentication") {
				t.Fatalf("wrong password: exit %d, want 1 with an authentication error; stderr:\n%s", r.code, tail(r.stderr))
			}
		})
	}
}

// TestKafkaDeadLetters feeds the sequence job records that do not parse
// among good ones and kills it a few times: the good records reach the
// output exactly once, and every bad one reaches the dead-letter topic
// exactly once, with its key, value and headers and the error headers.
func TestKafkaDeadLetters(t *testing.T) {
	conn := kafkaBroker(t)
	const keys, count, bad = 4, 5000, 300
	in := kafkaTopic(t, conn, "in", 4)
	out := kafkaTopic(t, conn, "out", 2)
	dlq := kafkaTopic(t, conn, "dlq", 2)
	// Bad records before and after the good ones, so that the runs the
	// kills cut short replay some of both.
	writeBad := func(from, to int) {
		w := &kafkago.Writer{Addr: kafkago.TCP(conn.Brokers...), Topic: in, Balancer: kafkago.Murmur2Balancer{}, RequiredAcks: kafkago.RequireAll}
		defer w.Close()
		var msgs []kafkago.Message
		for i := from; i < to; i++ {
			msgs = append(msgs, kafkago.Message{Key: []byte(strconv.Itoa(i % keys)), Value: []byte("not-a-number-" + strconv.Itoa(i)),
				Headers: []kafkago.Header{{Key: "origin", Value: []byte("test")}}})
		}
		if err := w.WriteMessages(context.Background(), msgs...); err != nil {
			t.Fatal(err)
		}
	}
	writeBad(0, bad/2)
	preloadSequence(t, conn, in, keys, count)
	writeBad(bad/2, bad)
	args := append(kafkaSequenceArgs(conn, t.TempDir(), in, out, 10000), "--dead-letter-topic", dlq)
	rng := rand.New(rand.NewPCG(crashSeed(t), 7))
	killUntilDone(t, rng, 4, 300*time.Millisecond, 500*time.Millisecond, "sequence", args...)
	checkKafkaSequence(t, conn, out, keys, count)

	dead := readTopic(t, conn, dlq, kafka.Records())
	seen := map[string]int{}
	for _, r := range dead {
		seen[string(r.Value)]++
		h := map[string]string{}
		for _, x := range r.Headers {
			h[x.Key] = string(x.Value)
		}
		if h["origin"] != "test" || h[kafka.HeaderTopic] != in || h[kafka.HeaderOffset] == "" || !strings.Contains(h[kafka.HeaderError], "want the seq number") {
			t.Fatalf("dead letter %q: headers %v", r.Value, h)
		}
	}
	var lost, dup int
	for i := range bad {
		switch n := seen["not-a-number-"+strconv.Itoa(i)]; {
		case n == 0:
			lost++
		case n > 1:
			dup++
		}
	}
	t.Logf("dead-letter topic: %d records; lost %d, duplicated %d", len(dead), lost, dup)
	if lost != 0 || dup != 0 || len(dead) != bad {
		t.Fatalf("dead letters not exactly once: %d records, lost %d, duplicated %d", len(dead), lost, dup)
	}
	noOpenTransactions(t, conn, dlq)
}

// TestKafkaGroupOffsets: with --group the source commits the offsets of
// completed checkpoints to the consumer group, so lag tools see the job's
// progress; at the end of a bounded run they are the end of the topic.
func TestKafkaGroupOffsets(t *testing.T) {
	conn := kafkaBroker(t)
	const keys, count = 4, 2000
	in := kafkaTopic(t, conn, "in", 4)
	out := kafkaTopic(t, conn, "out", 2)
	preloadSequence(t, conn, in, keys, count)
	group := in + "-group"
	r := run(t, nil, "sequence", append(kafkaSequenceArgs(conn, t.TempDir(), in, out, 10000), "--group", group, "--log-level", "debug")...)
	if r.code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", r.code, tail(r.stderr))
	}
	defer func() {
		if t.Failed() {
			t.Logf("stderr:\n%s", tail(r.stderr))
		}
	}()
	checkKafkaSequence(t, conn, out, keys, count)
	ctx := context.Background()
	cl := kafkaClient(conn)
	res, err := cl.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{in: {0, 1, 2, 3}}})
	if err != nil {
		t.Fatal(err)
	}
	ends, err := cl.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{in: {
		kafkago.LastOffsetOf(0), kafkago.LastOffsetOf(1), kafkago.LastOffsetOf(2), kafkago.LastOffsetOf(3)}}})
	if err != nil {
		t.Fatal(err)
	}
	end := map[int]int64{}
	for _, p := range ends.Topics[in] {
		end[p.Partition] = p.LastOffset
	}
	for _, p := range res.Topics[in] {
		if p.Error != nil || p.CommittedOffset != end[p.Partition] {
			t.Errorf("partition %d: group %s committed offset %d (%v), want the end %d", p.Partition, group, p.CommittedOffset, p.Error, end[p.Partition])
		}
	}
}

// TestKafkaWordcount feeds text lines to a topic with kafka-go's Writer,
// as any client would, runs the word count from Kafka to Kafka exactly
// once with kills, and checks every word's count updates: 1..total, each
// once, keyed by the word, totals equal to the text's.
func TestKafkaWordcount(t *testing.T) {
	conn := kafkaBroker(t)
	in := kafkaTopic(t, conn, "in", 3)
	out := kafkaTopic(t, conn, "out", 3)
	path := filepath.Join(t.TempDir(), "words.txt")
	want := writeWords(t, path, 1_200_000)
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	w := &kafkago.Writer{Addr: kafkago.TCP(conn.Brokers...), Topic: in, Balancer: &kafkago.RoundRobin{}, RequiredAcks: kafkago.RequireAll, BatchSize: 2000, BatchTimeout: 10 * time.Millisecond}
	var msgs []kafkago.Message
	for _, line := range strings.Split(strings.TrimSpace(string(text)), "\n") {
		msgs = append(msgs, kafkago.Message{Value: []byte(line)})
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()
	dir := t.TempDir()
	args := append([]string{"--brokers", conn.Brokers[0], "--input-topic", in, "--output-topic", out, "--delivery", "exactly-once", "--bounded", "--parallelism", "2"},
		checkpointArgs(filepath.Join(dir, "ckpt"), filepath.Join(dir, "state"), "200ms")...)
	rng := rand.New(rand.NewPCG(crashSeed(t), 9))
	killUntilDone(t, rng, 3, 100*time.Millisecond, 300*time.Millisecond, "wordcount", args...)
	var keyMismatch int
	got := readTopic(t, conn, out, func(r *kafka.Record) (count, error) {
		var c count
		err := json.Unmarshal(r.Value, &c)
		if string(r.Key) != c.Word {
			keyMismatch++
		}
		return c, err
	})
	totals, lost, dup := countTotals(got)
	t.Logf("%d count updates; lost %d, duplicated %d", len(got), lost, dup)
	if lost != 0 || dup != 0 || keyMismatch != 0 {
		t.Fatalf("not exactly once: lost %d, duplicated %d; %d records not keyed by their word", lost, dup, keyMismatch)
	}
	if fmt.Sprint(totals) != fmt.Sprint(want) {
		t.Fatalf("totals %v, want %v", totals, want)
	}
	noOpenTransactions(t, conn, out)
}
