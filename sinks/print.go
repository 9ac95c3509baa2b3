package sinks

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"

	"github.com/weirstream/weir"
)

// Print returns a sink that writes every record on its own line, formatted as
// by fmt.Sprint, to w (os.Stdout when w is nil). When the sink runs with
// parallelism > 1 each line starts with the subtask number, from 1, and "> ",
// as in Flink: "3> record".
//
// Lines of different subtasks never interleave: the subtasks of one Print
// sink share a lock around w, and all Print sinks writing to os.Stdout or
// os.Stderr share one per file. Print does not buffer across batches and never
// closes w.
func Print[T any](w io.Writer) weir.Sink[T] {
	if w == nil {
		w = os.Stdout
	}
	mu := new(sync.Mutex)
	switch w {
	case io.Writer(os.Stdout):
		mu = &stdoutMu
	case io.Writer(os.Stderr):
		mu = &stderrMu
	}
	return &printSink[T]{w: w, mu: mu}
}

var stdoutMu, stderrMu sync.Mutex

type printSink[T any] struct {
	w  io.Writer
	mu *sync.Mutex // guards writes to w
}

// printChunk is the size at which a batch's text is written out, so a large
// batch does not build a large buffer.
const printChunk = 64 << 10

func (s *printSink[T]) Open(_ context.Context, info weir.SubtaskInfo) (weir.SinkWriter[T], error) {
	if err := checkInfo("print", info); err != nil {
		return nil, err
	}
	var prefix []byte
	if info.Parallelism > 1 {
		prefix = strconv.AppendInt(nil, int64(info.Index)+1, 10)
		prefix = append(prefix, "> "...)
	}
	return &printWriter[T]{s: s, prefix: prefix}, nil
}

type printWriter[T any] struct {
	s      *printSink[T]
	prefix []byte
	buf    []byte
}

func (w *printWriter[T]) Write(batch []T) error {
	w.buf = w.buf[:0]
	for _, v := range batch {
		w.buf = append(w.buf, w.prefix...)
		w.buf = fmt.Append(w.buf, v)
		w.buf = append(w.buf, '\n')
		if len(w.buf) >= printChunk {
			if err := w.flush(); err != nil {
				return err
			}
		}
	}
	return w.flush()
}

func (w *printWriter[T]) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	w.s.mu.Lock()
	_, err := w.s.w.Write(w.buf)
	w.s.mu.Unlock()
	w.buf = w.buf[:0]
	if err != nil {
		return fmt.Errorf("sinks: print: %w", err)
	}
	return nil
}

func (w *printWriter[T]) Finish() error { return nil }

func (w *printWriter[T]) Close() error {
	w.buf = nil
	return nil
}
