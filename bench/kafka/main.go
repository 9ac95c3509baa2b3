// Command kafka measures weir's Kafka source and sink against a real broker
// and compares the source with a bare kafka-go reading loop on the same
// topic, in events per second per core of the client process (the broker's
// CPU is not counted).
//
//	go run ./bench/kafka --brokers ADDR --mode preload --topic bench --records 10000000
//	go run ./bench/kafka --brokers ADDR --mode bare   --topic bench   # kafka-go Conn.ReadBatch loop
//	go run ./bench/kafka --brokers ADDR --mode reader --topic bench   # kafka-go Reader
//	go run ./bench/kafka --brokers ADDR --mode source --topic bench   # weir: Kafka source -> discard
//	go run ./bench/kafka --brokers ADDR --mode sink --delivery exactly-once --records 5000000
//
// integration/kafka/broker.sh starts a broker.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/weirstream/weir"
	"github.com/weirstream/weir/engine/checkpoint"
	"github.com/weirstream/weir/kafka"
	"github.com/weirstream/weir/sinks"
	"github.com/weirstream/weir/sources"
	"github.com/weirstream/weir/storage"
)

func main() {
	brokers := flag.String("brokers", "", "bootstrap broker host:port")
	mode := flag.String("mode", "", "preload, bare, reader, source or sink")
	topic := flag.String("topic", "bench", "topic")
	partitions := flag.Int("partitions", 4, "partitions of a topic preload creates")
	records := flag.Int64("records", 10_000_000, "records to preload, or to write with --mode sink")
	size := flag.Int("size", 100, "bytes per record value")
	parallelism := flag.Int("parallelism", 2, "subtasks of the weir job")
	delivery := flag.String("delivery", "at-least-once", "sink: at-least-once or exactly-once")
	interval := flag.Duration("checkpoint-interval", time.Second, "weir jobs: checkpoint interval (0: none)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the measured part to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if *brokers == "" {
		fmt.Fprintln(os.Stderr, "--brokers is required")
		os.Exit(2)
	}
	conn := kafka.Conn{Brokers: strings.Split(*brokers, ",")}
	benchName = *mode
	if *mode == "sink" {
		benchName = "sink-" + *delivery
	}
	var err error
	switch *mode {
	case "preload":
		err = preload(conn, *topic, *partitions, *records, *size)
	case "bare":
		err = measure("kafka-go Conn.ReadBatch", func() (int64, error) { return bare(conn, *topic) })
	case "reader":
		err = measure("kafka-go Reader", func() (int64, error) { return reader(conn, *topic) })
	case "source":
		err = measure(fmt.Sprintf("weir Kafka source -> discard (parallelism %d, checkpoints %v)", *parallelism, *interval), func() (int64, error) {
			return source(conn, *topic, *parallelism, *interval)
		})
	case "sink":
		d, derr := kafka.ParseDelivery(*delivery)
		if derr != nil {
			err = derr
			break
		}
		err = measure(fmt.Sprintf("weir generator -> Kafka sink %s (parallelism %d, checkpoints %v)", *delivery, *parallelism, *interval), func() (int64, error) {
			return sink(conn, *topic, *partitions, *records, *size, *parallelism, *interval, d)
		})
	default:
		err = fmt.Errorf("--mode %q: want preload, bare, reader, source or sink", *mode)
	}
	if err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// measure runs f and prints its figures, ending with one line in the
// benchmark format, so that runs of several variants can be compared with
// benchstat (go run golang.org/x/perf/cmd/benchstat@latest -col /mode OUT).
func measure(what string, f func() (int64, error)) error {
	cpu0 := cpuTime()
	start := time.Now()
	n, err := f()
	if err != nil {
		return err
	}
	wall := time.Since(start)
	cpu := cpuTime() - cpu0
	fmt.Printf("%s\n", what)
	fmt.Printf("records          %d in %v\n", n, wall.Round(time.Millisecond))
	fmt.Printf("records/s        %.0f\n", float64(n)/wall.Seconds())
	fmt.Printf("records/s/core   %.0f (CPU time %v, %.2f cores busy)\n", float64(n)/cpu.Seconds(), cpu.Round(time.Millisecond), cpu.Seconds()/wall.Seconds())
	fmt.Printf("BenchmarkKafka/mode=%s 1 %.0f records/s %.0f records/s/core\n", benchName, float64(n)/wall.Seconds(), float64(n)/cpu.Seconds())
	return nil
}

// benchName names the variant in the benchmark-format line.
var benchName string

func client(conn kafka.Conn) *kafkago.Client {
	return &kafkago.Client{Addr: kafkago.TCP(conn.Brokers...), Timeout: 30 * time.Second}
}

func createTopic(conn kafka.Conn, topic string, partitions int) error {
	res, err := client(conn).CreateTopics(context.Background(), &kafkago.CreateTopicsRequest{
		Topics: []kafkago.TopicConfig{{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1}},
	})
	if err != nil {
		return err
	}
	if err := res.Errors[topic]; err != nil && !errors.Is(err, kafkago.TopicAlreadyExists) {
		return err
	}
	return nil
}

func preload(conn kafka.Conn, topic string, partitions int, n int64, size int) error {
	if err := createTopic(conn, topic, partitions); err != nil {
		return err
	}
	w := &kafkago.Writer{Addr: kafkago.TCP(conn.Brokers...), Topic: topic, Balancer: &kafkago.RoundRobin{},
		RequiredAcks: kafkago.RequireOne, BatchSize: 20000, BatchBytes: 8 << 20, BatchTimeout: 50 * time.Millisecond}
	defer w.Close()
	value := []byte(strings.Repeat("x", size))
	msgs := make([]kafkago.Message, 20000)
	for i := range msgs {
		msgs[i] = kafkago.Message{Value: value}
	}
	start := time.Now()
	for done := int64(0); done < n; {
		k := min(int64(len(msgs)), n-done)
		if err := w.WriteMessages(context.Background(), msgs[:k]...); err != nil {
			return err
		}
		done += k
	}
	fmt.Printf("preloaded %d records of %d bytes into %s (%d partitions) in %v\n", n, size, topic, partitions, time.Since(start).Round(time.Millisecond))
	return nil
}

// ends returns the partitions of topic with their high watermarks.
func ends(conn kafka.Conn, topic string) (map[int]int64, error) {
	ctx := context.Background()
	md, err := client(conn).Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, err
	}
	var reqs []kafkago.OffsetRequest
	for _, p := range md.Topics[0].Partitions {
		reqs = append(reqs, kafkago.LastOffsetOf(p.ID))
	}
	res, err := client(conn).ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, err
	}
	out := map[int]int64{}
	for _, p := range res.Topics[topic] {
		out[p.Partition] = p.LastOffset
	}
	return out, nil
}

// bare reads every partition to its end with kafka-go's lowest-level
// reading loop, Conn.ReadBatch, one goroutine per partition, as a program
// without a stream processor would.
func bare(conn kafka.Conn, topic string) (int64, error) {
	end, err := ends(conn, topic)
	if err != nil {
		return 0, err
	}
	var total atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, len(end))
	for p, last := range end {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := kafkago.DialLeader(context.Background(), "tcp", conn.Brokers[0], topic, p)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			var off, n int64
			for off < last {
				b := c.ReadBatch(1, 4<<20)
				for {
					m, err := b.ReadMessage()
					if err != nil {
						break
					}
					off = m.Offset + 1
					n++
				}
				if err := b.Close(); err != nil && !errors.Is(err, io.EOF) {
					errs <- err
					return
				}
			}
			total.Add(n)
		}()
	}
	wg.Wait()
	close(errs)
	return total.Load(), <-errs
}

// reader reads every partition to its end with kafka-go's Reader, one per
// partition.
func reader(conn kafka.Conn, topic string) (int64, error) {
	end, err := ends(conn, topic)
	if err != nil {
		return 0, err
	}
	var total atomic.Int64
	var wg sync.WaitGroup
	for p, last := range end {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: conn.Brokers, Topic: topic, Partition: p, MinBytes: 1, MaxBytes: 4 << 20})
			defer r.Close()
			var n int64
			for {
				m, err := r.ReadMessage(context.Background())
				if err != nil {
					break
				}
				n++
				if m.Offset+1 >= last {
					break
				}
			}
			total.Add(n)
		}()
	}
	wg.Wait()
	return total.Load(), nil
}

func jobOptions(parallelism int, interval time.Duration) ([]weir.JobOption, func(), error) {
	opts := []weir.JobOption{weir.DefaultParallelism(parallelism)}
	if interval <= 0 {
		return opts, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "weir-kafka-bench-")
	if err != nil {
		return nil, nil, err
	}
	store, err := storage.NewLocal(dir + "/checkpoints")
	if err != nil {
		return nil, nil, err
	}
	opts = append(opts, weir.StateDir(dir+"/state"), weir.Checkpoints(weir.CheckpointConfig{Store: store, Policy: checkpoint.Policy{Interval: interval}}))
	return opts, func() { os.RemoveAll(dir) }, nil
}

// source reads the topic to its end with weir's Kafka source into a
// discarding sink.
func source(conn kafka.Conn, topic string, parallelism int, interval time.Duration) (int64, error) {
	opts, cleanup, err := jobOptions(parallelism, interval)
	if err != nil {
		return 0, err
	}
	defer cleanup()
	job := weir.NewJob("kafka-source-bench", opts...)
	d := sinks.Discard[[]byte]()
	weir.To(weir.From(job, "in", kafka.NewSource(conn, topic, kafka.Bytes(), kafka.Bounded())), "discard", d)
	if err := job.Run(context.Background()); err != nil {
		return 0, err
	}
	return d.Count(), nil
}

// sink writes n generated records of size bytes to a new topic.
func sink(conn kafka.Conn, topic string, partitions int, n int64, size int, parallelism int, interval time.Duration, d kafka.Delivery) (int64, error) {
	topic = fmt.Sprintf("%s-sink-%d", topic, time.Now().UnixNano())
	if err := createTopic(conn, topic, partitions); err != nil {
		return 0, err
	}
	// The topic is deleted afterwards, so that runs do not fill the
	// broker's disk and page cache one after the other.
	defer client(conn).DeleteTopics(context.Background(), &kafkago.DeleteTopicsRequest{Topics: []string{topic}})
	opts, cleanup, err := jobOptions(parallelism, interval)
	if err != nil {
		return 0, err
	}
	defer cleanup()
	job := weir.NewJob("kafka-sink-bench", opts...)
	keys := 1000
	seq := weir.From(job, "gen", sources.Sequence(sources.SequenceConfig{Keys: keys, Count: n / int64(keys)}))
	pad := strings.Repeat("x", size)
	weir.To(seq, "out", kafka.NewSink(conn, topic, func(s sources.Seq) (kafka.Message, error) {
		return kafka.Message{Value: []byte(pad)}, nil
	}, kafka.WithDelivery(d)))
	if err := job.Run(context.Background()); err != nil {
		return 0, err
	}
	return n / int64(keys) * int64(keys), nil
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
