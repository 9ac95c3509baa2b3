// Command wordcount counts words: lines from a text file (or a built-in
// text generator), split into lower-case words, counted per word in keyed
// state, written as JSON lines {"word":"x","count":n}: one line per update,
// so the last line for a word carries its total.
//
//	go run ./jobs/wordcount [--input FILE] [--output DIR] [--lines N] [--parallelism P]
//
// With --brokers it reads lines (one per record) from --input-topic and
// writes the counts to --output-topic as JSON values keyed by the word:
//
//	go run ./jobs/wordcount --brokers 127.0.0.1:9092 --input-topic text \
//		--output-topic counts --delivery exactly-once --checkpoint-dir out/ckpt
package main

import (
	"errors"
	"flag"
	"strings"
	"unicode"

	"github.com/weirstream/weir"
	"github.com/weirstream/weir/kafka"
	"github.com/weirstream/weir/sinks"
	"github.com/weirstream/weir/sources"
)

// Count is one update of a word's count.
type Count struct {
	Word  string `json:"word"`
	Count int64  `json:"count"`
}

func main() {
	input := flag.String("input", "", "text file to read (default: the built-in text generator)")
	output := flag.String("output", "out/wordcount", "directory for the JSON-lines output (part-*.jsonl)")
	lines := flag.Int64("lines", 100_000, "number of lines the built-in generator produces")
	conn := kafka.RegisterConnFlags(flag.CommandLine)
	inTopic := flag.String("input-topic", "", "with --brokers: topic of text lines, one per record")
	outTopic := flag.String("output-topic", "", "with --brokers: topic for the counts (JSON values keyed by the word)")
	srcFlags := kafka.RegisterSourceFlags(flag.CommandLine)
	sinkFlags := kafka.RegisterSinkFlags(flag.CommandLine)
	weir.Main("wordcount", func(job *weir.Job) error {
		var c kafka.Conn
		if conn.Set() {
			var err error
			if c, err = conn.Conn(); err != nil {
				return err
			}
		} else if *inTopic != "" || *outTopic != "" {
			return errors.New("--input-topic and --output-topic need --brokers")
		}
		var text weir.Stream[string]
		switch {
		case *inTopic != "":
			opts, err := srcFlags.Options()
			if err != nil {
				return err
			}
			text = weir.From(job, "lines", kafka.NewSource(c, *inTopic, kafka.Strings(), opts...))
		case *input != "":
			text = weir.From(job, "lines", sources.Lines(*input))
		default:
			text = weir.From(job, "generator", sources.Words(sources.WordsConfig{Lines: *lines}))
		}
		counts := Build(text)
		if *outTopic != "" {
			opts, err := sinkFlags.Options()
			if err != nil {
				return err
			}
			weir.To(counts, "out", kafka.NewSink(c, *outTopic, kafka.JSONValues(func(c Count) []byte { return []byte(c.Word) }), opts...))
		} else {
			weir.To(counts, "out", sinks.JSONFiles[Count](*output))
		}
		return nil
	})
}

// Build is the word count dataflow from lines to count updates.
func Build(lines weir.Stream[string]) weir.Stream[Count] {
	words := weir.FlatMap(lines, "split", func(line string, out weir.Emitter[string]) {
		for _, w := range strings.FieldsFunc(line, notWord) {
			out.Emit(strings.ToLower(w))
		}
	})
	byWord := weir.KeyBy(words, func(w string) string { return w })
	return weir.Process(byWord, "count", func(ctx weir.KeyedContext[string], w string, out weir.Emitter[Count]) error {
		n := weir.Value[int64](ctx, "n")
		total := n.Get() + 1
		n.Set(total)
		out.Emit(Count{Word: w, Count: total})
		return nil
	}, weir.States(weir.DeclareValue[int64]("n")))
}

func notWord(r rune) bool {
	return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '\''
}
