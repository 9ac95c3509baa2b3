package weir

import (
	"flag"
	"os"

	"github.com/weirstream/weir/engine"
)

// Main is the main function of a job binary. It parses the command line —
// the job's own flags, declared with the standard flag package before Main
// is called, and weir's (--parallelism, --state-dir, --log-format, ...) —
// then calls build to construct the job, runs it and exits:
//
//	func main() {
//		input := flag.String("input", "", "file to read")
//		weir.Main("wordcount", func(job *weir.Job) error {
//			lines := weir.From(job, "lines", sources.Lines(*input))
//			...
//			return nil
//		})
//	}
//
// Commands: `JOB [run] [flags]`, `JOB version` (or --version) and `JOB help`
// (or --help). Every flag is also read from WEIR_<FLAG>. SIGTERM or SIGINT
// stops the sources and lets the records in flight drain to the sinks,
// which commit; a second SIGINT cancels at once. Exit codes: 0 finished or
// stopped, 1 failed, 2 bad usage.
func Main(name string, build func(job *Job) error, opts ...JobOption) {
	os.Exit(engine.Main(os.Args[1:], program(name, flag.CommandLine, build, opts)))
}

func program(name string, flags *flag.FlagSet, build func(job *Job) error, opts []JobOption) engine.Program {
	return engine.Program{
		Name:  name,
		Flags: flags,
		Build: func(cfg *engine.Config) (*engine.Graph, error) {
			j := NewJob(name, opts...)
			if err := build(j); err != nil {
				return nil, err
			}
			if err := j.Err(); err != nil {
				return nil, err
			}
			// The job's options are defaults that the command line
			// overrides; the logger and stop signal are the binary's.
			*cfg = j.cfg
			return &j.g, nil
		},
	}
}
