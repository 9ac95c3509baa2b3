package barrier

import (
	"fmt"
	"math"
	"strings"
)

// NoWatermark is the watermark of an input that has not sent one yet: no
// event time is known to be complete.
const NoWatermark int64 = math.MinInt64

// WatermarkMerger computes the watermark of a task with several inputs: the
// minimum of the watermarks of the inputs that have not ended. Like the
// Aligner it is a pure state machine owned by the task's goroutine; it
// tells the caller when the merged watermark advances, which it only ever
// does forward.
//
// When every input ended, the merged watermark advances to math.MaxInt64
// (as Flink's MAX_WATERMARK does), so event-time timers and windows fire
// before end-of-input is forwarded.
//
// An idle input (one that said so with a watermark status) does not hold
// the watermark back either, until it sends a watermark or says it is
// active again. When every live input is idle, the merged watermark is the
// highest of theirs, and AllIdle is true so the task can tell its own
// consumers.
type WatermarkMerger struct {
	marks  []int64 // per input; NoWatermark until the first
	ended  []bool
	idle   []bool
	merged int64
}

// NewWatermarkMerger returns a merger for a task with the given number of
// inputs (at least 1), none of which has sent a watermark.
func NewWatermarkMerger(inputs int) *WatermarkMerger {
	if inputs < 1 {
		panic(fmt.Sprintf("barrier: NewWatermarkMerger(%d): need at least one input", inputs))
	}
	m := &WatermarkMerger{
		marks:  make([]int64, inputs),
		ended:  make([]bool, inputs),
		idle:   make([]bool, inputs),
		merged: NoWatermark,
	}
	for i := range m.marks {
		m.marks[i] = NoWatermark
	}
	return m
}

// Current returns the merged watermark: NoWatermark until every live input
// sent one.
func (m *WatermarkMerger) Current() int64 { return m.merged }

// Input returns the watermark of input and whether it ended.
func (m *WatermarkMerger) Input(input int) (t int64, ended bool) {
	return m.marks[input], m.ended[input]
}

// Watermark feeds watermark t, delivered by input. It returns the new
// merged watermark and true when the merged watermark advanced; the caller
// forwards it downstream. A watermark below one the input already sent, or
// from an ended input, is ignored.
func (m *WatermarkMerger) Watermark(input int, t int64) (int64, bool) {
	if m.ended[input] {
		return m.merged, false
	}
	m.idle[input] = false // a watermark means the input is active
	if t > m.marks[input] {
		m.marks[input] = t
	}
	return m.advance()
}

// Status feeds input's watermark status (idle or active again). It
// returns the new merged watermark and true when it advanced: an input
// turning idle may have been the one holding it back.
func (m *WatermarkMerger) Status(input int, idle bool) (int64, bool) {
	if m.ended[input] {
		return m.merged, false
	}
	m.idle[input] = idle
	return m.advance()
}

// AllIdle reports whether every input that has not ended is idle (and one
// has not ended).
func (m *WatermarkMerger) AllIdle() bool {
	live := false
	for i := range m.marks {
		if !m.ended[i] {
			if !m.idle[i] {
				return false
			}
			live = true
		}
	}
	return live
}

// EndOfInput feeds end-of-input, delivered by input: the input no longer
// holds the merged watermark back. It returns the new merged watermark and
// true when it advanced.
func (m *WatermarkMerger) EndOfInput(input int) (int64, bool) {
	if m.ended[input] {
		return m.merged, false
	}
	m.ended[input] = true
	return m.advance()
}

func (m *WatermarkMerger) advance() (int64, bool) {
	low := int64(math.MaxInt64)
	live, active := false, false
	for i, t := range m.marks {
		if !m.ended[i] {
			live = true
			if !m.idle[i] {
				active = true
				low = min(low, t)
			}
		}
	}
	if live && !active {
		// Every live input is idle: what they sent is all there will be
		// until one is active again, so go by the highest (as Flink's
		// StatusWatermarkValve does). Otherwise inputs that went idle
		// one after the other could leave the watermark stuck below what
		// every one of them has passed.
		low = NoWatermark
		for i, t := range m.marks {
			if !m.ended[i] {
				low = max(low, t)
			}
		}
	}
	if low <= m.merged {
		return m.merged, false
	}
	m.merged = low
	return low, true
}

// String describes the state, for example "merged=5 [0:5 1:end 2:7]".
func (m *WatermarkMerger) String() string {
	var b strings.Builder
	b.WriteString("merged=")
	b.WriteString(fmtMark(m.merged))
	b.WriteString(" [")
	for i, t := range m.marks {
		if i > 0 {
			b.WriteByte(' ')
		}
		switch {
		case m.ended[i]:
			fmt.Fprintf(&b, "%d:end", i)
		case m.idle[i]:
			fmt.Fprintf(&b, "%d:idle(%s)", i, fmtMark(t))
		default:
			fmt.Fprintf(&b, "%d:%s", i, fmtMark(t))
		}
	}
	b.WriteByte(']')
	return b.String()
}

func fmtMark(t int64) string {
	switch t {
	case NoWatermark:
		return "none"
	case math.MaxInt64:
		return "max"
	}
	return fmt.Sprint(t)
}
