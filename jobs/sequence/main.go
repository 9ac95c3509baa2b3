// Command sequence generates (key, seq) for seq 1..N of each of K keys,
// keeps the last seq per key in keyed state and writes
// {"key":k,"seq":s,"prev":p} as JSON lines. In a correct exactly-once run
// every (key, seq) appears once and prev is seq-1; later crash tests rely
// on this output format, so keep it stable.
//
//	go run ./jobs/sequence --keys 100 --count 1000 [--rate R] [--output DIR]
//
// With --brokers it reads from and writes to Kafka instead: records of
// --input-topic whose key is the sequence key and whose value is the seq,
// both in decimal text, and the same JSON objects to --output-topic, keyed
// by the sequence key:
//
//	go run ./jobs/sequence --brokers 127.0.0.1:9092 --input-topic seq-in \
//		--output-topic seq-out --delivery exactly-once --checkpoint-dir out/ckpt
package main

import (
	"flag"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/weirstream/weir"
	"github.com/weirstream/weir/kafka"
	"github.com/weirstream/weir/sinks"
	"github.com/weirstream/weir/sources"
)

// Out is one output record.
type Out struct {
	Key  int64 `json:"key"`
	Seq  int64 `json:"seq"`
	Prev int64 `json:"prev"`
}

func main() {
	keys := flag.Int("keys", 100, "number of keys")
	count := flag.Int64("count", 1000, "records per key")
	rate := flag.Float64("rate", 0, "records per second over all keys (0: unlimited); from Kafka, the most read per second")
	output := flag.String("output", "out/sequence", "directory for the JSON-lines output (part-*.jsonl)")
	conn := kafka.RegisterConnFlags(flag.CommandLine)
	inTopic := flag.String("input-topic", "", "with --brokers: topic to read (key: sequence key, value: seq, decimal text)")
	outTopic := flag.String("output-topic", "", "with --brokers: topic to write the JSON objects to, keyed by the sequence key")
	srcFlags := kafka.RegisterSourceFlags(flag.CommandLine)
	sinkFlags := kafka.RegisterSinkFlags(flag.CommandLine)
	deadLetters := flag.String("dead-letter-topic", "", "with --input-topic: write records that do not parse to this topic (exactly once, as --delivery says) instead of failing")
	weir.Main("sequence", func(job *weir.Job) error {
		switch {
		case *keys < 1:
			return fmt.Errorf("--keys %d: must be at least 1", *keys)
		case *count < 0:
			return fmt.Errorf("--count %d: must not be negative", *count)
		case *rate < 0:
			return fmt.Errorf("--rate %g: must not be negative", *rate)
		}
		if !conn.Set() {
			if *inTopic != "" || *outTopic != "" {
				return fmt.Errorf("--input-topic and --output-topic need --brokers")
			}
			seq := weir.From(job, "sequence", sources.Sequence(sources.SequenceConfig{Keys: *keys, Count: *count, Rate: *rate}))
			weir.To(Build(seq), "out", sinks.JSONFiles[Out](*output))
			return nil
		}
		c, err := conn.Conn()
		if err != nil {
			return err
		}
		sinkOpts, err := sinkFlags.Options()
		if err != nil {
			return err
		}
		var seq weir.Stream[sources.Seq]
		if *inTopic != "" {
			opts, err := srcFlags.Options()
			if err != nil {
				return err
			}
			src := kafka.NewSource(c, *inTopic, ParseSeq, opts...)
			if *deadLetters != "" {
				var dead weir.Stream[kafka.DeadLetter]
				seq, dead = kafka.FromWithDeadLetters(job, "in", src)
				weir.To(dead, "dead-letters", kafka.NewSink(c, *deadLetters, kafka.DeadLetterMessages(), sinkOpts...))
			} else {
				seq = weir.From(job, "in", src)
			}
			if *rate > 0 {
				seq = weir.Map(seq, "throttle", throttle[sources.Seq](*rate))
			}
		} else {
			seq = weir.From(job, "sequence", sources.Sequence(sources.SequenceConfig{Keys: *keys, Count: *count, Rate: *rate}))
		}
		out := Build(seq)
		if *outTopic != "" {
			weir.To(out, "out", kafka.NewSink(c, *outTopic, kafka.JSONValues(func(o Out) []byte {
				return strconv.AppendInt(nil, o.Key, 10)
			}), sinkOpts...))
		} else {
			weir.To(out, "out", sinks.JSONFiles[Out](*output))
		}
		return nil
	})
}

// throttle passes records on at most rate per second over all subtasks,
// holding back the source (for crash tests that need a job to run a while).
func throttle[T any](rate float64) func(T) T {
	var mu sync.Mutex
	var next time.Time
	step := time.Duration(float64(time.Second) / rate)
	return func(v T) T {
		mu.Lock()
		now := time.Now()
		if next.Before(now) {
			next = now
		}
		next = next.Add(step)
		ahead := next.Sub(now)
		mu.Unlock()
		if ahead > 2*time.Millisecond {
			time.Sleep(ahead)
		}
		return v
	}
}

// ParseSeq reads a (key, seq) from a Kafka record: both in decimal text.
func ParseSeq(r *kafka.Record) (sources.Seq, error) {
	k, err := strconv.ParseInt(string(r.Key), 10, 64)
	if err != nil {
		return sources.Seq{}, fmt.Errorf("key %q: want the sequence key in decimal", r.Key)
	}
	s, err := strconv.ParseInt(string(r.Value), 10, 64)
	if err != nil {
		return sources.Seq{}, fmt.Errorf("value %q: want the seq number in decimal", r.Value)
	}
	return sources.Seq{Key: k, Seq: s}, nil
}

// Build keeps the last seq per key and emits it with every record.
func Build(seq weir.Stream[sources.Seq]) weir.Stream[Out] {
	byKey := weir.KeyBy(seq, func(s sources.Seq) int64 { return s.Key })
	return weir.Process(byKey, "last-seq", func(ctx weir.KeyedContext[int64], s sources.Seq, out weir.Emitter[Out]) error {
		last := weir.Value[int64](ctx, "last")
		prev := last.Get()
		last.Set(s.Seq)
		out.Emit(Out{Key: s.Key, Seq: s.Seq, Prev: prev})
		return nil
	}, weir.States(weir.DeclareValue[int64]("last")))
}
