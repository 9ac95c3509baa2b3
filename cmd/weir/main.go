// Command weir is the operator's command line:
//
//	weir version                     version of weir and of its checkpoint format
//	weir checkpoints list DIR        checkpoints in a checkpoint directory, newest first
//	weir checkpoints inspect DIR ID  a checkpoint's operators, files, sizes, positions, pending commits
//	weir checkpoints verify DIR      check every checksum and reference; exit 1 naming damaged files
//	weir checkpoints gc DIR [--retain N] [--grace D] [--dry-run]
//	                                 delete what no retained checkpoint references, saying why
//	weir state export PATH --operator UID --out FILE.parquet
//	                                 an operator's keyed state as a Parquet file
//	weir stop URL [--savepoint]      stop a running job through its --http API
//	weir savepoint URL               take a savepoint of a running job
//
// Exit codes: 0 ok, 1 damage found or an operation failed, 2 bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/internal/stateexport"
	"github.com/weirstream/weir/storage"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return engine.ExitUsage
	}
	switch args[0] {
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "weir %s, checkpoint manifest format %d\n", engine.Version(), storage.ManifestVersion)
		return engine.ExitOK
	case "help", "--help", "-h", "-help":
		usage(stdout)
		return engine.ExitOK
	case "checkpoints":
		return checkpoints(ctx, args[1:], stdout, stderr)
	case "state":
		return state(ctx, args[1:], stdout, stderr)
	case "stop":
		return stop(ctx, args[1:], stdout, stderr)
	case "savepoint":
		return savepoint(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "weir: unknown command %q\n", args[0])
	usage(stderr)
	return engine.ExitUsage
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: weir <command>

Commands:
  version                       print the version of weir and of its checkpoint format
  checkpoints list DIR          list the checkpoints in DIR (a directory or s3://bucket/prefix,
                                with WEIR_S3_ENDPOINT, WEIR_S3_PATH_STYLE and AWS credentials), newest first
  checkpoints inspect DIR ID    show a checkpoint's operators, files, positions and pending commits
  checkpoints verify DIR        check every checksum and reference; exit 1 naming damaged files
  checkpoints gc DIR [--retain N] [--grace D] [--dry-run]
                                keep the newest N checkpoints (default 3) and everything they
                                reference; delete older checkpoints, shared files only they
                                reference, and files of uploads that never committed once they
                                are older than D (default 1h). --dry-run lists what it would
                                delete and why. Run it on a directory no job is writing, or
                                with N at least the job's --checkpoint-retain.
  state export PATH --operator UID --out FILE.parquet
                                write operator UID's keyed state in the checkpoint PATH (DIR/chk-ID,
                                or DIR for its newest valid checkpoint; s3:// too) as Parquet, one
                                row per entry: key_group, key, state, kind, map_key, timestamp and
                                value, keys and values as JSON (read it with DuckDB or pandas)
  stop URL [--savepoint] [--token T] [--timeout D]
                                stop the job whose --http API is at URL as SIGTERM does (sources
                                end, a final checkpoint, sinks commit), with --savepoint copying
                                the final checkpoint into its --savepoint-dir; waits for the end
                                and prints the savepoint's path
  savepoint URL [--token T] [--timeout D]
                                take a savepoint of the job whose --http API is at URL, wait until it
                                is copied into the job's --savepoint-dir and print its path
  help                          print this help
`)
}

func checkpoints(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	want := map[string]int{"list": 2, "inspect": 3, "verify": 2, "gc": 2}
	var gcf *gcFlags
	if len(args) > 0 && args[0] == "gc" {
		var err error
		if args, gcf, err = parseGC(args); err != nil {
			fmt.Fprintf(stderr, "weir: checkpoints gc: %v\n", err)
			return engine.ExitUsage
		}
	}
	if len(args) == 0 || want[args[0]] == 0 || len(args) != want[args[0]] {
		fmt.Fprintln(stderr, "weir: usage: weir checkpoints list DIR | inspect DIR ID | verify DIR | gc DIR [--retain N] [--grace D] [--dry-run]")
		return engine.ExitUsage
	}
	dir := args[1]
	if !strings.HasPrefix(dir, "s3://") {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			fmt.Fprintf(stderr, "weir: checkpoint directory %q: not a directory\n", dir)
			return engine.ExitUsage
		}
	}
	// An s3://bucket/prefix directory is reached as a job binary reaches
	// it: WEIR_S3_ENDPOINT, WEIR_S3_REGION, WEIR_S3_PATH_STYLE, and the
	// AWS SDK's credentials.
	store, err := storage.OpenDir(ctx, dir, s3Config())
	if err != nil {
		fmt.Fprintf(stderr, "weir: %v\n", err)
		return engine.ExitFailed
	}
	switch args[0] {
	case "list":
		return list(ctx, store, stdout, stderr)
	case "inspect":
		id, err := strconv.ParseUint(args[2], 10, 64)
		if err != nil || id == 0 {
			fmt.Fprintf(stderr, "weir: checkpoint id %q: want a positive integer\n", args[2])
			return engine.ExitUsage
		}
		return inspect(ctx, store, id, stdout, stderr)
	case "gc":
		return gc(ctx, store, gcf, stdout, stderr)
	default:
		return verify(ctx, store, dir, stdout, stderr)
	}
}

func list(ctx context.Context, store storage.BlobStore, stdout, stderr io.Writer) int {
	ids, err := storage.ListCheckpoints(ctx, store)
	if err != nil {
		fmt.Fprintf(stderr, "weir: %v\n", err)
		return engine.ExitFailed
	}
	if len(ids) == 0 {
		fmt.Fprintln(stdout, "no checkpoints")
		return engine.ExitOK
	}
	fmt.Fprintf(stdout, "%-12s %-8s %-24s %s\n", "ID", "PARENT", "JOB", "STATUS")
	for i := len(ids) - 1; i >= 0; i-- {
		m, err := storage.ReadManifest(ctx, store, ids[i])
		switch {
		case err == nil:
			fmt.Fprintf(stdout, "%-12d %-8d %-24s %s\n", m.CheckpointID, m.ParentID, m.JobName, "committed")
		default:
			fmt.Fprintf(stdout, "%-12d %-8s %-24s %v\n", ids[i], "-", "-", err)
		}
	}
	return engine.ExitOK
}

func inspect(ctx context.Context, store storage.BlobStore, id uint64, stdout, stderr io.Writer) int {
	m, err := storage.ReadManifest(ctx, store, id)
	if err != nil {
		fmt.Fprintf(stderr, "weir: checkpoint %d: %v\n", id, err)
		return engine.ExitFailed
	}
	fmt.Fprintf(stdout, "checkpoint %d (parent %d) of job %q, manifest format %d, max parallelism %d\n",
		m.CheckpointID, m.ParentID, m.JobName, m.Version, m.MaxParallelism)
	var total int64
	for _, op := range m.Operators {
		fmt.Fprintf(stdout, "operator %q, parallelism %d\n", op.UID, len(op.Subtasks))
		for i, st := range op.Subtasks {
			var size int64
			for _, f := range st.Files {
				size += f.Size
			}
			total += size
			fmt.Fprintf(stdout, "  subtask %d: key groups %d-%d, %d files, %d bytes\n", i, st.KeyGroups.Start, st.KeyGroups.End, len(st.Files), size)
			for _, d := range st.Descriptors {
				fmt.Fprintf(stdout, "    state %q: %s (key %s, value %s)\n", d.Name, d.Kind, d.KeyCodec, d.ValueCodec)
			}
			for _, f := range st.Files {
				fmt.Fprintf(stdout, "    file %s -> %s, %d bytes, crc32c %08x\n", f.LocalName, f.Object, f.Size, f.CRC32C)
			}
			if st.SourcePosition != nil {
				fmt.Fprintf(stdout, "    source position: %d bytes %x\n", len(st.SourcePosition), st.SourcePosition)
			}
			if st.PendingCommit != nil {
				fmt.Fprintf(stdout, "    pending commit: %d bytes %x\n", len(st.PendingCommit), st.PendingCommit)
			}
		}
	}
	fmt.Fprintf(stdout, "total state: %d bytes\n", total)
	return engine.ExitOK
}

func verify(ctx context.Context, store storage.BlobStore, dir string, stdout, stderr io.Writer) int {
	ids, err := storage.ListCheckpoints(ctx, store)
	if err != nil {
		fmt.Fprintf(stderr, "weir: %v\n", err)
		return engine.ExitFailed
	}
	damaged := 0
	for _, id := range ids {
		c, _, err := storage.Inspect(ctx, store, id)
		if err != nil {
			fmt.Fprintf(stderr, "weir: checkpoint %d: %v\n", id, err)
			return engine.ExitFailed
		}
		switch c.State {
		case storage.ManifestOK:
			fmt.Fprintf(stdout, "checkpoint %d: ok\n", id)
		case storage.ManifestMissing:
			fmt.Fprintf(stdout, "checkpoint %d: no manifest (never committed; its files are garbage)\n", id)
		default:
			damaged++
			fmt.Fprintf(stdout, "checkpoint %d: DAMAGED\n", id)
			for _, p := range c.Problems {
				loc := filepath.Join(dir, p.String())
				if strings.HasPrefix(dir, "s3://") {
					loc = strings.TrimRight(dir, "/") + "/" + p.String()
				}
				fmt.Fprintf(stdout, "  %s\n", loc)
			}
		}
	}
	if damaged > 0 {
		fmt.Fprintf(stderr, "weir: %d of %d checkpoints damaged\n", damaged, len(ids))
		return engine.ExitFailed
	}
	fmt.Fprintf(stdout, "%d checkpoints verified\n", len(ids))
	return engine.ExitOK
}

type gcFlags struct {
	retain int
	grace  time.Duration
	dryRun bool
}

// parseGC parses gc's flags, which may come before or after DIR; it
// returns ["gc", DIR...].
func parseGC(args []string) ([]string, *gcFlags, error) {
	f := &gcFlags{}
	fs := flag.NewFlagSet("gc", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.IntVar(&f.retain, "retain", engine.DefaultRetain, "checkpoints to keep")
	fs.DurationVar(&f.grace, "grace", engine.DefaultOrphanGrace, "least age of an orphan to delete")
	fs.BoolVar(&f.dryRun, "dry-run", false, "list, delete nothing")
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return nil, nil, err
	}
	if f.retain < 1 {
		return nil, nil, fmt.Errorf("--retain %d: must be at least 1", f.retain)
	}
	if f.grace < 0 {
		return nil, nil, fmt.Errorf("--grace %v: must not be negative", f.grace)
	}
	return append([]string{"gc"}, pos...), f, nil
}

func gc(ctx context.Context, store storage.BlobStore, f *gcFlags, stdout, stderr io.Writer) int {
	plan, err := storage.PlanGC(ctx, store, f.retain, f.grace, time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "weir: %v\n", err)
		return engine.ExitFailed
	}
	ids := make([]string, len(plan.Retained))
	for i, id := range plan.Retained {
		ids[i] = strconv.FormatUint(id, 10)
	}
	fmt.Fprintf(stdout, "retained checkpoints: %s\n", strings.Join(ids, ", "))
	for _, id := range plan.Damaged {
		fmt.Fprintf(stdout, "checkpoint %d: manifest does not decode (see weir checkpoints verify)\n", id)
	}
	verb := "delete"
	if f.dryRun {
		verb = "would delete"
	}
	var bytes int64
	for _, g := range plan.Delete {
		bytes += g.Size
		fmt.Fprintf(stdout, "%s %s (%d bytes): %s\n", verb, g.Object, g.Size, g.Reason)
	}
	if f.dryRun {
		fmt.Fprintf(stdout, "dry run: would delete %d objects, %d bytes\n", len(plan.Delete), bytes)
		return engine.ExitOK
	}
	n, err := storage.ExecuteGC(ctx, store, plan)
	if err != nil {
		fmt.Fprintf(stderr, "weir: deleted %d of %d objects: %v\n", n, len(plan.Delete), err)
		return engine.ExitFailed
	}
	fmt.Fprintf(stdout, "deleted %d objects, %d bytes\n", n, bytes)
	return engine.ExitOK
}

func s3Config() storage.S3Config {
	pathStyle, _ := strconv.ParseBool(os.Getenv("WEIR_S3_PATH_STYLE"))
	return storage.S3Config{Endpoint: os.Getenv("WEIR_S3_ENDPOINT"), Region: os.Getenv("WEIR_S3_REGION"), PathStyle: pathStyle}
}

const stateUsage = "weir: usage: weir state export PATH --operator UID --out FILE.parquet"

// state is weir state export PATH --operator UID --out FILE: flags may come
// before or after PATH.
func state(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "export" {
		fmt.Fprintln(stderr, stateUsage)
		return engine.ExitUsage
	}
	var uid, out string
	fs := flag.NewFlagSet("state export", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&uid, "operator", "", "the operator's UID")
	fs.StringVar(&out, "out", "", "the Parquet file to write")
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		fmt.Fprintf(stderr, "weir: state export: %v\n%s\n", err, stateUsage)
		return engine.ExitUsage
	}
	switch {
	case len(pos) != 1:
		fmt.Fprintf(stderr, "weir: state export: want one checkpoint PATH, got %d\n%s\n", len(pos), stateUsage)
		return engine.ExitUsage
	case uid == "":
		fmt.Fprintf(stderr, "weir: state export: --operator UID is required (weir checkpoints inspect DIR ID lists the operators)\n")
		return engine.ExitUsage
	case out == "":
		fmt.Fprintf(stderr, "weir: state export: --out FILE.parquet is required\n")
		return engine.ExitUsage
	}
	path := pos[0]
	if !strings.HasPrefix(path, "s3://") {
		if fi, err := os.Stat(path); err != nil || !fi.IsDir() {
			fmt.Fprintf(stderr, "weir: checkpoint path %q: not a directory (want DIR/chk-ID or a checkpoint directory)\n", path)
			return engine.ExitUsage
		}
	}
	store, m, err := stateexport.OpenCheckpoint(ctx, path, s3Config())
	if err != nil {
		fmt.Fprintf(stderr, "weir: %s: %v\n", path, err)
		return engine.ExitFailed
	}
	// Write next to FILE and rename, so a failed export leaves no file.
	f, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*")
	if err != nil {
		fmt.Fprintf(stderr, "weir: --out %s: %v\n", out, err)
		return engine.ExitFailed
	}
	defer os.Remove(f.Name())
	sum, err := stateexport.Export(ctx, store, m, uid, f, stateexport.Options{})
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err == nil {
		if err = os.Chmod(f.Name(), 0o644); err == nil {
			err = os.Rename(f.Name(), out)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "weir: state export: %v\n", err)
		if errors.Is(err, stateexport.ErrUnknownOperator) {
			return engine.ExitUsage
		}
		return engine.ExitFailed
	}
	fmt.Fprintln(stderr, sum)
	return engine.ExitOK
}

// parseInterspersed parses args with fs, flags before, between or after the
// positional arguments, which it returns.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos, args = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
}
