// Command wordcount counts words: lines from a text file (or a built-in
// text generator), split into lower-case words, counted per word in keyed
// state, written as JSON lines {"word":"x","count":n}: one line per update,
// so the last line for a word carries its total.
//
//	go run ./jobs/wordcount [--input FILE] [--output DIR] [--lines N] [--parallelism P]
package main

import (
	"flag"
	"strings"
	"unicode"

	"github.com/weirstream/weir"
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
	weir.Main("wordcount", func(job *weir.Job) error {
		var text weir.Stream[string]
		if *input != "" {
			text = weir.From(job, "lines", sources.Lines(*input))
		} else {
			text = weir.From(job, "generator", sources.Words(sources.WordsConfig{Lines: *lines}))
		}
		counts := Build(text)
		weir.To(counts, "out", sinks.JSONFiles[Count](*output))
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
	})
}

func notWord(r rune) bool {
	return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '\''
}
