package barrier

import (
	"fmt"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestAligner runs the protocol traces in testdata/aligner. Commands:
//
//	init inputs=N          a new Aligner with N inputs
//	barrier input=I cp=N   input I delivers barrier N
//	cancel input=I cp=N    input I delivers a cancel marker for N
//	abort cp=N             the coordinator aborts N
//	end input=I            input I delivers end-of-input
//	state                  the Aligner's state
//
// Each event prints the Decision. Regenerate with -rewrite.
func TestAligner(t *testing.T) {
	datadriven.Walk(t, "testdata/aligner", func(t *testing.T, path string) {
		var a *Aligner
		datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
			var input int
			var id uint64
			if td.Cmd != "init" && a == nil {
				td.Fatalf(t, "init first")
			}
			var d Decision
			switch td.Cmd {
			case "init":
				var n int
				td.ScanArgs(t, "inputs", &n)
				a = NewAligner(n)
				return ""
			case "barrier":
				td.ScanArgs(t, "input", &input)
				td.ScanArgs(t, "cp", &id)
				d = a.Step(input, NewBarrier(id))
			case "cancel":
				td.ScanArgs(t, "input", &input)
				td.ScanArgs(t, "cp", &id)
				d = a.Step(input, NewCancel(id))
			case "abort":
				td.ScanArgs(t, "cp", &id)
				d = a.Abort(id)
			case "end":
				td.ScanArgs(t, "input", &input)
				d = a.Step(input, End)
			case "state":
				return a.String()
			default:
				td.Fatalf(t, "unknown command %q", td.Cmd)
			}
			if err := checkConsistent(a, d); err != nil {
				td.Fatalf(t, "%v", err)
			}
			return d.String()
		})
	})
}

// checkConsistent checks what must hold after every decision: Blocked,
// Progress and the decision agree.
func checkConsistent(a *Aligner, d Decision) error {
	p := a.Progress()
	if p != d.Progress {
		return fmt.Errorf("decision progress %v, aligner progress %v", d.Progress, p)
	}
	blocked, live := 0, 0
	for i := range a.Inputs() {
		if a.Blocked(i) {
			blocked++
			if a.Ended(i) {
				return fmt.Errorf("input %d blocked and ended", i)
			}
		}
		if !a.Ended(i) {
			live++
		}
	}
	if live != p.Live || live != a.Live() {
		return fmt.Errorf("live: counted %d, progress %d, Live() %d", live, p.Live, a.Live())
	}
	if blocked != p.Seen {
		return fmt.Errorf("blocked: counted %d, progress %v", blocked, p)
	}
	id, aligning := a.Aligning()
	if aligning != p.Aligning || (aligning && id != p.Checkpoint) {
		return fmt.Errorf("Aligning() = %d, %v; progress %v", id, aligning, p)
	}
	if !aligning && blocked > 0 {
		return fmt.Errorf("%d inputs blocked while waiting", blocked)
	}
	if aligning && blocked >= live {
		return fmt.Errorf("aligning with %d of %d live inputs blocked", blocked, live)
	}
	if d.Has(Snapshot) || d.Has(AbortAlignment) {
		if !d.Has(ReleaseAll) {
			return fmt.Errorf("%v without release-all", d.Actions)
		}
		if !d.Has(Block) && blocked > 0 {
			return fmt.Errorf("%v left %d inputs blocked", d.Actions, blocked)
		}
	}
	if d.Has(Block) && !a.Blocked(d.Input) {
		return fmt.Errorf("block input=%d but it is not blocked", d.Input)
	}
	return nil
}

// TestWatermarkMerger runs the traces in testdata/watermark. Commands:
//
//	init inputs=N           a new WatermarkMerger with N inputs
//	watermark input=I t=T   input I delivers watermark T
//	end input=I             input I delivers end-of-input
//	idle input=I            input I turns idle
//	active input=I          input I is active again
//	state                   the merger's state (and "all idle" when so)
func TestWatermarkMerger(t *testing.T) {
	datadriven.Walk(t, "testdata/watermark", func(t *testing.T, path string) {
		var m *WatermarkMerger
		datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
			var input int
			if td.Cmd != "init" && m == nil {
				td.Fatalf(t, "init first")
			}
			before := NoWatermark
			if m != nil {
				before = m.Current()
			}
			var t2 int64
			var advanced bool
			switch td.Cmd {
			case "init":
				var n int
				td.ScanArgs(t, "inputs", &n)
				m = NewWatermarkMerger(n)
				return ""
			case "watermark":
				var ts int64
				td.ScanArgs(t, "input", &input)
				td.ScanArgs(t, "t", &ts)
				t2, advanced = m.Watermark(input, ts)
			case "end":
				td.ScanArgs(t, "input", &input)
				t2, advanced = m.EndOfInput(input)
			case "idle", "active":
				td.ScanArgs(t, "input", &input)
				t2, advanced = m.Status(input, td.Cmd == "idle")
			case "state":
				if m.AllIdle() {
					return m.String() + " all idle"
				}
				return m.String()
			default:
				td.Fatalf(t, "unknown command %q", td.Cmd)
			}
			if t2 != m.Current() || advanced != (t2 > before) {
				td.Fatalf(t, "returned %d, %v; before %d, current %d", t2, advanced, before, m.Current())
			}
			if !advanced {
				return fmt.Sprintf("unchanged %s", fmtMark(t2))
			}
			return fmt.Sprintf("advance to %s", fmtMark(t2))
		})
	})
}
