// Command timers checks processing-time timers across crashes: the first
// record of each key sets a wall-clock timer --delay later, and the timer
// writes {"key":k,"seq":s} (s: the key's records seen when it fired) as a
// JSON line. With exactly-once recovery every key has exactly one line,
// however often the job is killed and restarted.
//
//	go run ./jobs/timers --keys 50 --count 100 --rate 2000 [--delay 20ms] [--output DIR]
package main

import (
	"flag"
	"fmt"
	"time"

	"github.com/weirstream/weir"
	"github.com/weirstream/weir/sinks"
	"github.com/weirstream/weir/sources"
)

// Fired is one timer that fired.
type Fired struct {
	Key int64 `json:"key"`
	Seq int64 `json:"seq"`
}

func main() {
	keys := flag.Int("keys", 50, "number of keys")
	count := flag.Int64("count", 100, "records per key")
	rate := flag.Float64("rate", 2000, "records per second over all keys (0: unlimited)")
	delay := flag.Duration("delay", 20*time.Millisecond, "how long after a key's first record its timer fires")
	output := flag.String("output", "out/timers", "directory for the JSON-lines output (part-*.jsonl)")
	weir.Main("timers", func(job *weir.Job) error {
		if *keys < 1 || *count < 1 || *rate < 0 || *delay < 0 {
			return fmt.Errorf("--keys %d --count %d --rate %g --delay %v: need keys and count of at least 1, rate and delay not negative", *keys, *count, *rate, *delay)
		}
		seq := weir.From(job, "sequence", sources.Sequence(sources.SequenceConfig{Keys: *keys, Count: *count, Rate: *rate}))
		fired := weir.KeyedProcess(weir.KeyBy(seq, func(s sources.Seq) int64 { return s.Key }), "timer",
			func(ctx weir.KeyedContext[int64], s sources.Seq, _ weir.Emitter[Fired]) error {
				seen := weir.Value[int64](ctx, "seen")
				n := seen.Get()
				if n == 0 {
					ctx.Timers().RegisterProcessingTime(time.Now().Add(*delay).UnixMilli())
				}
				seen.Set(n + 1)
				return nil
			},
			func(ctx weir.KeyedContext[int64], _ int64, out weir.Emitter[Fired]) error {
				out.Emit(Fired{Key: ctx.Key(), Seq: weir.Value[int64](ctx, "seen").Get()})
				return nil
			})
		weir.To(fired, "out", sinks.JSONFiles[Fired](*output))
		return nil
	})
}
