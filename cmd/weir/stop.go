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

// stop asks a running job, through its --http API, to stop as SIGTERM
// does, optionally with a savepoint, and waits until it has ended.
func stop(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("weir stop", flag.ContinueOnError)
	fs.SetOutput(stderr)
	savepoint := fs.Bool("savepoint", false, "copy the final checkpoint into the job's --savepoint-dir before it exits")
	token := fs.String("token", os.Getenv("WEIR_HTTP_TOKEN"), "the job's --http-token (default: WEIR_HTTP_TOKEN)")
	timeout := fs.Duration("timeout", 10*time.Minute, "how long to wait for the job to end")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: weir stop URL [--savepoint] [--token T] [--timeout D]   (URL: the job's --http address, e.g. http://127.0.0.1:8080)")
		fs.PrintDefaults()
	}
	var pos []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return engine.ExitUsage
		}
		if fs.NArg() == 0 {
			break
		}
		pos, args = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
	if len(pos) != 1 {
		fs.Usage()
		return engine.ExitUsage
	}
	base := pos[0]
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(strings.TrimSuffix(base, "/") + "/api/stop")
	if err != nil || u.Host == "" {
		fmt.Fprintf(stderr, "weir stop: %q is not the URL of a job's HTTP API\n", pos[0])
		return engine.ExitUsage
	}
	if *savepoint {
		u.RawQuery = "savepoint=true"
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	if err != nil {
		fmt.Fprintf(stderr, "weir stop: %v\n", err)
		return engine.ExitUsage
	}
	if *token != "" {
		req.Header.Set("Authorization", "Bearer "+*token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			fmt.Fprintf(stderr, "weir stop: the job did not end within %v; it may still be stopping\n", *timeout)
		} else {
			fmt.Fprintf(stderr, "weir stop: %v\n", err)
		}
		return engine.ExitFailed
	}
	defer res.Body.Close()
	var out struct {
		engine.StopResult
		Err string `json:"error"`
	}
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err := json.Unmarshal(body, &out); err != nil {
		fmt.Fprintf(stderr, "weir stop: %s answered %s: %s\n", u, res.Status, strings.TrimSpace(string(body)))
		return engine.ExitFailed
	}
	if res.StatusCode != http.StatusOK || out.State != engine.StateFinished {
		msg := out.Err
		if msg == "" {
			msg = out.Error
		}
		fmt.Fprintf(stderr, "weir stop: %s: %s\n", res.Status, msg)
		return engine.ExitFailed
	}
	fmt.Fprintln(stdout, "stopped")
	if out.Savepoint != "" {
		fmt.Fprintf(stdout, "savepoint: %s (restore with --restore %s)\n", out.Savepoint, out.Savepoint)
	}
	return engine.ExitOK
}
