package checkpoint

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// TestCoordinator runs the protocol traces in testdata/. Each command feeds
// one event (at t=, default: the previous time) and prints the outcome, if
// the event has one, then the actions, one per line. Every step is also
// checked against the invariants of TestRandomInvariants.
//
//	init interval= min-pause= max-concurrent= timeout= tolerable= max-queued= tasks=a/0,b/0 sources=a/0 restored= last-id=
//	tick t=
//	request t= kind=manual|savepoint
//	ack t= task= cp= [handle=]
//	decline t= task= cp= [cause=]
//	manifest-written t= cp=
//	manifest-failed t= cp= [cause=]
//	task-failed t= task=
//	resume t=
//	source-finished t= task=
//	shutdown t=
//	status
//
// Regenerate the expected output with go test -rewrite.
func TestCoordinator(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		var (
			c   *Coordinator[string]
			k   *checker
			now time.Duration
		)
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			args := map[string]string{}
			for _, a := range d.CmdArgs {
				args[a.Key] = strings.Join(a.Vals, ",")
			}
			dur := func(key string) time.Duration {
				v, ok := args[key]
				if !ok {
					return 0
				}
				x, err := time.ParseDuration(v)
				if err != nil {
					d.Fatalf(t, "%s: %v", key, err)
				}
				return x
			}
			num := func(key string) int {
				v, ok := args[key]
				if !ok {
					return 0
				}
				x, err := strconv.Atoi(v)
				if err != nil {
					d.Fatalf(t, "%s: %v", key, err)
				}
				return x
			}
			taskList := func(key string) []TaskID {
				var ts []TaskID
				for _, s := range strings.Split(args[key], ",") {
					if s == "" {
						continue
					}
					tid, err := ParseTaskID(s)
					if err != nil {
						d.Fatalf(t, "%v", err)
					}
					ts = append(ts, tid)
				}
				return ts
			}
			if _, ok := args["t"]; ok {
				now = dur("t")
			}

			if d.Cmd == "init" {
				cfg := Config{
					Policy: Policy{
						Interval:          dur("interval"),
						MinPause:          dur("min-pause"),
						MaxConcurrent:     num("max-concurrent"),
						Timeout:           dur("timeout"),
						TolerableFailures: num("tolerable"),
						MaxQueuedRequests: num("max-queued"),
					},
					Tasks:    taskList("tasks"),
					Sources:  taskList("sources"),
					Restored: ID(num("restored")),
					LastID:   ID(num("last-id")),
				}
				var err error
				if c, err = New[string](cfg, now); err != nil {
					return err.Error()
				}
				k = newChecker(cfg)
				return ""
			}
			if c == nil {
				d.Fatalf(t, "init first")
			}
			if d.Cmd == "status" {
				return formatStatus(c.Status())
			}

			ev := event{kind: d.Cmd, now: now, id: ID(num("cp")), cause: args["cause"]}
			if s, ok := args["task"]; ok {
				tid, err := ParseTaskID(s)
				if err != nil {
					d.Fatalf(t, "%v", err)
				}
				ev.task = tid
			}
			switch args["kind"] {
			case "", "manual":
				ev.req = Manual
			case "savepoint":
				ev.req = Savepoint
			default:
				d.Fatalf(t, "bad kind %q", args["kind"])
			}
			var (
				outcome string
				acts    []Action
			)
			if ev.kind == "ack" && args["handle"] != "" {
				// The trace names the handle; apply names it h<cp>-<task>.
				var o Outcome
				o, acts = c.Ack(ev.now, ev.task, ev.id, args["handle"])
				outcome = o.String()
			} else {
				outcome, acts = apply(c, ev)
			}
			if err := k.check(c, ev, outcome, acts); err != nil {
				d.Fatalf(t, "invariant: %v", err)
			}
			var b strings.Builder
			if outcome != "" {
				b.WriteString(outcome + "\n")
			}
			for _, a := range acts {
				b.WriteString(a.String() + "\n")
			}
			return b.String()
		})
	})
}

func formatStatus(s Status) string {
	var b strings.Builder
	fmt.Fprintf(&b, "mode=%s now=%s last-completed=%d next=%d failures=%d\n",
		s.Mode, s.Now, s.LastCompleted, s.NextID, s.ConsecutiveFailures)
	for _, p := range s.Pending {
		fmt.Fprintf(&b, "pending cp=%d %s %s started=%s acks=%d/%d\n",
			p.ID, p.Kind, p.Stage, p.Started, p.Acked, p.Expected)
	}
	for _, k := range s.Queued {
		fmt.Fprintf(&b, "queued %s\n", k)
	}
	return b.String()
}
