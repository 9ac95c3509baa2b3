// Command sequence generates (key, seq) for seq 1..N of each of K keys,
// keeps the last seq per key in keyed state and writes
// {"key":k,"seq":s,"prev":p} as JSON lines. In a correct exactly-once run
// every (key, seq) appears once and prev is seq-1; later crash tests rely
// on this output format, so keep it stable.
//
//	go run ./jobs/sequence --keys 100 --count 1000 [--rate R] [--output DIR]
package main

import (
	"flag"
	"fmt"

	"github.com/weirstream/weir"
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
	rate := flag.Float64("rate", 0, "records per second over all keys (0: unlimited)")
	output := flag.String("output", "out/sequence", "directory for the JSON-lines output (part-*.jsonl)")
	weir.Main("sequence", func(job *weir.Job) error {
		switch {
		case *keys < 1:
			return fmt.Errorf("--keys %d: must be at least 1", *keys)
		case *count < 0:
			return fmt.Errorf("--count %d: must not be negative", *count)
		case *rate < 0:
			return fmt.Errorf("--rate %g: must not be negative", *rate)
		}
		seq := weir.From(job, "sequence", sources.Sequence(sources.SequenceConfig{Keys: *keys, Count: *count, Rate: *rate}))
		weir.To(Build(seq), "out", sinks.JSONFiles[Out](*output))
		return nil
	})
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
	})
}
