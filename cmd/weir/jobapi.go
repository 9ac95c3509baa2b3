package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/weirstream/weir/engine"
)

// jobFlags are the flags of the commands that talk to a running job's
// --http API.
type jobFlags struct {
	fs      *flag.FlagSet
	token   *string
	timeout *time.Duration
}

func newJobFlags(name, usage string, stderr io.Writer) *jobFlags {
	fs := flag.NewFlagSet("weir "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := &jobFlags{fs: fs,
		token:   fs.String("token", os.Getenv("WEIR_HTTP_TOKEN"), "the job's --http-token (default: WEIR_HTTP_TOKEN)"),
		timeout: fs.Duration("timeout", 10*time.Minute, "how long to wait"),
	}
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: weir "+usage+"   (URL: the job's --http address, e.g. http://127.0.0.1:8080)")
		fs.PrintDefaults()
	}
	return f
}

// parse parses args (flags before or after the URL) and returns the job's
// base URL.
func (f *jobFlags) parse(args []string, stderr io.Writer) (string, bool) {
	pos, err := parseInterspersed(f.fs, args)
	if err != nil {
		return "", false
	}
	if len(pos) != 1 {
		f.fs.Usage()
		return "", false
	}
	base := pos[0]
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	if u, err := url.Parse(base); err != nil || u.Host == "" {
		fmt.Fprintf(stderr, "weir %s: %q is not the URL of a job's HTTP API\n", f.fs.Name(), pos[0])
		return "", false
	}
	return strings.TrimSuffix(base, "/"), true
}

// call sends a request to the job and decodes its JSON answer into out;
// an answer other than want is an error with the job's message.
func (f *jobFlags) call(ctx context.Context, method, u string, want int, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return err
	}
	if *f.token != "" {
		req.Header.Set("Authorization", "Bearer "+*f.token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("no answer within %v (--timeout)", *f.timeout)
		}
		return err
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 4<<20))
	if res.StatusCode != want {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s: %s", res.Status, e.Error)
		}
		return fmt.Errorf("%s: %s", res.Status, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s answered %s: %s", u, res.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// stop asks a running job, through its --http API, to stop as SIGTERM
// does, optionally with a savepoint, and waits until it has ended.
func stop(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newJobFlags("stop", "stop URL [--savepoint] [--token T] [--timeout D]", stderr)
	savepoint := f.fs.Bool("savepoint", false, "copy the final checkpoint into the job's --savepoint-dir before it exits")
	base, ok := f.parse(args, stderr)
	if !ok {
		return engine.ExitUsage
	}
	u := base + "/api/stop"
	if *savepoint {
		u += "?savepoint=true"
	}
	ctx, cancel := context.WithTimeout(ctx, *f.timeout)
	defer cancel()
	var out engine.StopResult
	if err := f.call(ctx, http.MethodPost, u, http.StatusOK, &out); err != nil {
		fmt.Fprintf(stderr, "weir stop: %v\n", err)
		return engine.ExitFailed
	}
	fmt.Fprintln(stdout, "stopped")
	if out.Savepoint != "" {
		fmt.Fprintf(stdout, "savepoint: %s (restore with --restore %s)\n", out.Savepoint, out.Savepoint)
	}
	return engine.ExitOK
}

// savepoint asks a running job for a savepoint and waits until it is
// copied.
func savepoint(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newJobFlags("savepoint", "savepoint URL [--token T] [--timeout D]", stderr)
	base, ok := f.parse(args, stderr)
	if !ok {
		return engine.ExitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, *f.timeout)
	defer cancel()
	fail := func(err error) int {
		fmt.Fprintf(stderr, "weir savepoint: %v\n", err)
		return engine.ExitFailed
	}
	var before []engine.CheckpointRecord
	if err := f.call(ctx, http.MethodGet, base+"/api/checkpoints", http.StatusOK, &before); err != nil {
		return fail(err)
	}
	var newest uint64
	for _, r := range before {
		newest = max(newest, r.ID)
	}
	var res engine.RequestResult
	if err := f.call(ctx, http.MethodPost, base+"/api/savepoints", http.StatusAccepted, &res); err != nil {
		return fail(err)
	}
	for {
		var hist []engine.CheckpointRecord
		if err := f.call(ctx, http.MethodGet, base+"/api/checkpoints", http.StatusOK, &hist); err != nil {
			return fail(err)
		}
		for _, r := range hist {
			if res.Checkpoint != 0 && r.ID != res.Checkpoint || res.Checkpoint == 0 && (r.ID <= newest || r.Kind != "savepoint") {
				continue
			}
			switch {
			case r.Status == "aborted":
				return fail(fmt.Errorf("checkpoint %d aborted: %s", r.ID, r.Failure))
			case r.SavepointFailure != "":
				return fail(fmt.Errorf("copy of checkpoint %d: %s", r.ID, r.SavepointFailure))
			case r.Savepoint != "":
				fmt.Fprintf(stdout, "savepoint: %s (restore with --restore %s)\n", r.Savepoint, r.Savepoint)
				return engine.ExitOK
			}
		}
		select {
		case <-ctx.Done():
			return fail(fmt.Errorf("no savepoint within %v (--timeout)", *f.timeout))
		case <-time.After(200 * time.Millisecond):
		}
	}
}
