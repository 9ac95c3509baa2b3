// Command weir is the operator's command line. Today it prints its version;
// with checkpoints it will inspect, verify and garbage-collect checkpoint
// directories, and later submit jobs.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/weirstream/weir/engine"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return engine.ExitUsage
	}
	switch args[0] {
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "weir %s, checkpoint format: none yet\n", engine.Version())
		return engine.ExitOK
	case "help", "--help", "-h", "-help":
		usage(stdout)
		return engine.ExitOK
	}
	fmt.Fprintf(stderr, "weir: unknown command %q\n", args[0])
	usage(stderr)
	return engine.ExitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: weir <command>\n\nCommands:\n  version   print the version of weir and of its checkpoint format\n  help      print this help")
}
