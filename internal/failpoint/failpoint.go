// Package failpoint lets crash tests kill a weir process at a chosen point
// of its work, so that recovery can be tested at the moments that matter
// rather than at random times only.
//
// A failpoint is a named call to Hit in the engine. Failpoints are armed by
// the environment variable WEIR_FAILPOINT, read once, on the first call to
// Hit or Enabled: a comma-separated list of entries NAME or NAME@N (N >= 1,
// default 1). The N-th call of Hit(NAME) (counted per name, from the start
// of the process) writes one line to standard error,
//
//	weir: failpoint NAME hit (N): killing the process
//
// and kills the process with SIGKILL: no deferred function, no signal
// handler and no other goroutine gets to run, as after a power cut or an
// OOM kill. For example
//
//	WEIR_FAILPOINT=upload-sst@2,sink-commit ./job ...
//
// kills the job during its second SST upload or its first sink commit,
// whichever comes first. An entry NAME@N:panic panics at the N-th hit
// instead of killing, so that tests can fail a task without killing the
// process (the engine turns the panic into a task failure and restarts the
// job in-process). A malformed value (an empty name, an N that is not
// an integer >= 1) is reported once on standard error and the whole variable
// is ignored, so that a typo does not arm some failpoints but not others.
//
// When WEIR_FAILPOINT is unset or empty, Hit costs one atomic load and a
// boolean test, and can stay in production code.
//
// The failpoints of the engine are:
//
//   - "upload-sst": while a checkpoint uploads the SST files of a state
//     snapshot, before the checkpoint is complete.
//   - "before-manifest": every file of the checkpoint is uploaded, its
//     manifest is not written: the checkpoint never happened, and its files
//     are orphans.
//   - "after-manifest": the checkpoint's manifest is written (the checkpoint
//     is complete and will be restored from), but the sinks have not yet been
//     told to commit the output of that checkpoint.
//   - "sink-commit": in the middle of a sink's commit, between two of the
//     renames that publish its pending files.
//   - "restore": during recovery, after the state files of the restored
//     checkpoint are in place, before the job runs.
package failpoint

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// EnvVar is the environment variable that arms failpoints.
const EnvVar = "WEIR_FAILPOINT"

var (
	once    sync.Once
	enabled bool              // written once under once, read-only after
	points  map[string]*point // likewise
)

type point struct {
	at    int64 // the hit that kills
	panic bool  // panic instead of killing
	hits  atomic.Int64
}

func load() {
	v := os.Getenv(EnvVar)
	if v == "" {
		return
	}
	at, panics, err := parse(v)
	if err != nil {
		fmt.Fprintf(os.Stderr, "weir: ignoring %s=%q: %v\n", EnvVar, v, err)
		return
	}
	if len(at) == 0 {
		return
	}
	points = make(map[string]*point, len(at))
	for name, n := range at {
		points[name] = &point{at: n, panic: panics[name]}
	}
	enabled = true
}

// parse parses a WEIR_FAILPOINT value into the hit that fires, per name,
// and the names that panic rather than kill. Entries are separated by
// commas; spaces around them and empty entries are ignored. A name listed
// twice is an error.
func parse(v string) (map[string]int64, map[string]bool, error) {
	at := map[string]int64{}
	panics := map[string]bool{}
	for _, entry := range strings.Split(v, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		if e, ok := strings.CutSuffix(entry, ":panic"); ok {
			entry = e
			panics[strings.TrimSpace(strings.Split(e, "@")[0])] = true
		}
		name, nstr, hasN := strings.Cut(entry, "@")
		name = strings.TrimSpace(name)
		if name == "" {
			return nil, nil, fmt.Errorf("entry %q: empty failpoint name", entry)
		}
		n := int64(1)
		if hasN {
			var err error
			n, err = strconv.ParseInt(strings.TrimSpace(nstr), 10, 64)
			if err != nil || n < 1 {
				return nil, nil, fmt.Errorf("entry %q: hit count %q is not an integer >= 1", entry, nstr)
			}
		}
		if _, dup := at[name]; dup {
			return nil, nil, fmt.Errorf("failpoint %q listed twice", name)
		}
		at[name] = n
	}
	return at, panics, nil
}

// Enabled reports whether WEIR_FAILPOINT arms at least one failpoint.
func Enabled() bool {
	once.Do(load)
	return enabled
}

// Hit marks that the process passes failpoint name. If WEIR_FAILPOINT arms
// name@N and this is the N-th Hit of name, Hit writes a line to standard
// error, kills the process with SIGKILL and never returns.
func Hit(name string) {
	once.Do(load)
	if !enabled {
		return
	}
	p := points[name]
	if p == nil {
		return
	}
	if n := p.hits.Add(1); n == p.at {
		if p.panic {
			panic(fmt.Sprintf("failpoint %s hit (%d)", name, n))
		}
		kill(name, n)
	}
}

func kill(name string, n int64) {
	fmt.Fprintf(os.Stderr, "weir: failpoint %s hit (%d): killing the process\n", name, n)
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	// SIGKILL is delivered asynchronously; make sure nothing after the
	// failpoint runs in the meantime.
	select {}
}
