// Command nexmark measures one Nexmark query: the generator source, the
// query, a discarding sink, optionally with checkpoints into a temporary
// directory, and prints events/s, events/s per core (from the process's CPU
// time), peak RSS and the checkpoints' duration and size.
//
//	go run ./bench/nexmark --query q0 --events 50000000 --parallelism 2 [--checkpoint-interval 10s]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/weirstream/weir"
	"github.com/weirstream/weir/engine/checkpoint"
	"github.com/weirstream/weir/jobs/nexmark/queries"
	"github.com/weirstream/weir/sources/nexmark"
	"github.com/weirstream/weir/storage"
)

func main() {
	query := flag.String("query", "q0", "query: "+strings.Join(queries.Names(), ", "))
	events := flag.Int64("events", 10_000_000, "number of events")
	parallelism := flag.Int("parallelism", 2, "parallelism of every operator")
	interval := flag.Duration("checkpoint-interval", 10*time.Second, "checkpoint interval (0: no checkpoints)")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	flag.Parse()
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "nexmark: --cpuprofile:", err)
			os.Exit(2)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "nexmark: --cpuprofile:", err)
			os.Exit(2)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(*query, *events, *parallelism, *interval); err != nil {
		fmt.Fprintln(os.Stderr, "nexmark:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func run(query string, events int64, parallelism int, interval time.Duration) error {
	if parallelism < 1 {
		return fmt.Errorf("--parallelism %d: must be at least 1", parallelism)
	}
	cfg := nexmark.DefaultConfig(events)
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("--events %d: %w", events, err)
	}
	opts := []weir.JobOption{weir.DefaultParallelism(parallelism)}
	var (
		mu    sync.Mutex
		ckpts []weir.CheckpointStats
	)
	if interval > 0 {
		dir, err := os.MkdirTemp("", "weir-nexmark-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		store, err := storage.NewLocal(dir + "/checkpoints")
		if err != nil {
			return err
		}
		stateDir := dir + "/state"
		opts = append(opts, weir.StateDir(stateDir), weir.Checkpoints(weir.CheckpointConfig{
			Store:  store,
			Policy: checkpoint.Policy{Interval: interval},
			OnComplete: func(st weir.CheckpointStats) {
				mu.Lock()
				ckpts = append(ckpts, st)
				mu.Unlock()
			},
		}))
	}
	job := weir.NewJob("nexmark-"+query, opts...)
	var count func() int64
	src := queries.Source(job, cfg)
	if err := queries.Attach(query, src, queries.Output{Count: func(c func() int64) { count = c }}); err != nil {
		return fmt.Errorf("--query: %w", err)
	}
	cpu0 := cpuTime()
	start := time.Now()
	if err := job.Run(context.Background()); err != nil {
		return err
	}
	wall := time.Since(start)
	cpu := cpuTime() - cpu0
	rate := float64(events) / wall.Seconds()
	fmt.Printf("query            %s\n", query)
	fmt.Printf("events           %d in %v (parallelism %d)\n", events, wall.Round(time.Millisecond), parallelism)
	fmt.Printf("rows out         %d\n", count())
	fmt.Printf("events/s         %.0f\n", rate)
	fmt.Printf("events/s/core    %.0f (CPU time %v, %.2f cores busy)\n", float64(events)/cpu.Seconds(), cpu.Round(time.Millisecond), cpu.Seconds()/wall.Seconds())
	fmt.Printf("peak RSS         %d MiB\n", peakRSS()>>20)
	if interval > 0 {
		mu.Lock()
		defer mu.Unlock()
		if len(ckpts) == 0 {
			fmt.Printf("checkpoints      none completed\n")
			return nil
		}
		var d []time.Duration
		var size int64
		for _, c := range ckpts {
			d = append(d, c.Duration)
			size = max(size, c.Size)
		}
		slices.Sort(d)
		pct := func(p float64) time.Duration { return d[min(len(d)-1, int(p*float64(len(d))))] }
		fmt.Printf("checkpoints      %d every %v; duration p50 %v p99 %v; largest %d KiB\n",
			len(ckpts), interval, pct(0.5).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), size>>10)
	}
	return nil
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakRSS is VmHWM from /proc/self/status, in bytes (0 where unavailable).
func peakRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
