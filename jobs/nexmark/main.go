// Command nexmark runs one Nexmark query over the Nexmark generator's
// events and writes its rows as JSON lines with the reference SQL's column
// names (part-*.jsonl, exactly once with checkpoints).
//
//	go run ./jobs/nexmark --query q0 --events 1000000 [--rate R] [--output DIR] [--events-out FILE]
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/weirstream/weir"
	"github.com/weirstream/weir/jobs/nexmark/queries"
	"github.com/weirstream/weir/sources/nexmark"
)

func main() {
	query := flag.String("query", "q0", "query to run: "+strings.Join(queries.Names(), ", "))
	events := flag.Int64("events", 1_000_000, "number of events to generate")
	rate := flag.Float64("rate", 10_000_000, "event-time rate in events per second (first-event.rate): event n is at n/rate seconds after the base time; the events come as fast as the job takes them")
	seed := flag.Uint64("seed", 0, "seed of the generated data")
	output := flag.String("output", "", "directory for the query's JSON-lines output (default out/nexmark/QUERY)")
	eventsOut := flag.String("events-out", "", "also write the generated events to this file as JSON lines")
	weir.Main("nexmark", func(job *weir.Job) error {
		cfg := nexmark.DefaultConfig(*events)
		cfg.Rate, cfg.Seed = *rate, *seed
		if err := cfg.Validate(); err != nil {
			return fmt.Errorf("--events %d --rate %g: %w", *events, *rate, err)
		}
		dir := *output
		if dir == "" {
			dir = filepath.Join("out", "nexmark", *query)
		}
		src := queries.Source(job, cfg)
		if err := queries.Attach(*query, src, queries.Output{Dir: dir}); err != nil {
			return fmt.Errorf("--query: %w", err)
		}
		if *eventsOut != "" {
			if err := writeEvents(*eventsOut, cfg); err != nil {
				return fmt.Errorf("--events-out: %w", err)
			}
		}
		return nil
	})
}

// writeEvents writes the events of cfg, which the source emits (the
// generator is deterministic), as JSON lines.
func writeEvents(path string, cfg nexmark.Config) error {
	g, err := nexmark.NewGenerator(cfg)
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	enc := json.NewEncoder(w)
	var e nexmark.Event
	for c := range cfg.Events {
		g.Event(c, &e)
		if err := enc.Encode(e); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
