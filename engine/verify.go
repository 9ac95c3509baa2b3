package engine

import (
	"fmt"
	"slices"
	"strings"

	"github.com/weirstream/weir/storage"
)

// Verdict says whether an operator's state in a checkpoint can be restored
// by a job.
type Verdict string

// Verdicts of CheckCompatibility.
const (
	Restorable   Verdict = "restorable"   // the job has the operator and can take its state
	New          Verdict = "new"          // the job has the operator; the checkpoint has nothing of it
	Missing      Verdict = "missing"      // the checkpoint has the operator; the job does not
	Incompatible Verdict = "incompatible" // the job has it but cannot take its state
)

// OperatorCheck is the verdict on one operator (by UID).
type OperatorCheck struct {
	UID     string
	Verdict Verdict
	Reason  string // for missing and incompatible
	State   bool   // the checkpoint holds state of it (keyed state, a source position or a pending commit)
	States  []storage.StateDescriptor
}

// Fails reports whether restoring would fail on this operator: it is
// incompatible, or missing with state that no operator would claim.
func (o OperatorCheck) Fails(allowUnclaimed bool) bool {
	return o.Verdict == Incompatible || o.Verdict == Missing && o.State && !allowUnclaimed
}

// CheckCompatibility compares a job's plan with a checkpoint: every
// operator of either, by UID, sorted. The checks: the max parallelism (the
// number of key groups) is the job's; an operator with state at another
// parallelism than it was checkpointed at can be rescaled (a source only if
// it supports it, see Node.NoRescale); state no operator of the job claims
// is missing.
func CheckCompatibility(p *Plan, maxParallelism int, m *storage.Manifest) []OperatorCheck {
	byUID := map[string]*Node{}
	for _, n := range p.Graph.Nodes {
		byUID[n.UID] = n
	}
	var out []OperatorCheck
	seen := map[string]bool{}
	for _, op := range m.Operators {
		seen[op.UID] = true
		c := OperatorCheck{UID: op.UID, State: hasState(op)}
		for _, st := range op.Subtasks {
			for _, d := range st.Descriptors {
				if !slices.Contains(c.States, d) {
					c.States = append(c.States, d)
				}
			}
		}
		n, ok := byUID[op.UID]
		switch {
		case !ok && c.State:
			c.Verdict, c.Reason = Missing, "the job has no operator with this UID to take its state (--allow-unclaimed-state drops it)"
		case !ok:
			c.Verdict, c.Reason = Missing, "no state: nothing is lost"
		case c.State && m.MaxParallelism != maxParallelism:
			c.Verdict, c.Reason = Incompatible, fmt.Sprintf("checkpointed with max parallelism %d, the job has %d; it cannot change", m.MaxParallelism, maxParallelism)
		case c.State && len(op.Subtasks) != p.Parallelism[n.ID] && n.NoRescale != "":
			c.Verdict, c.Reason = Incompatible, fmt.Sprintf("checkpointed at parallelism %d, the job runs it at %d, and %s", len(op.Subtasks), p.Parallelism[n.ID], n.NoRescale)
		default:
			c.Verdict = Restorable
			var notes []string
			if c.State && len(op.Subtasks) != p.Parallelism[n.ID] {
				notes = append(notes, fmt.Sprintf("rescaled from parallelism %d to %d", len(op.Subtasks), p.Parallelism[n.ID]))
			}
			bad, more := compareStates(n, c.States)
			if len(bad) > 0 {
				c.Verdict, notes = Incompatible, bad
			} else {
				notes = append(notes, more...)
			}
			c.Reason = strings.Join(notes, "; ")
		}
		out = append(out, c)
	}
	for _, n := range p.Graph.Nodes {
		if !seen[n.UID] {
			out = append(out, OperatorCheck{UID: n.UID, Verdict: New})
		}
	}
	slices.SortFunc(out, func(a, b OperatorCheck) int { return strings.Compare(a.UID, b.UID) })
	return out
}

// compareStates compares the states an operator declares (Node.States) with
// those a checkpoint holds of it: a declared state of another kind or codec
// is incompatible (bad); notes say which declared states start empty and,
// when the operator declared all its states, which stored ones it no longer
// uses. Undeclared states are checked when the operator registers them.
func compareStates(n *Node, stored []storage.StateDescriptor) (bad, notes []string) {
	byName := map[string]storage.StateDescriptor{}
	for _, d := range stored {
		byName[d.Name] = d
	}
	declared := map[string]bool{}
	for _, decl := range n.States {
		full := n.UID + "/" + decl.Name
		declared[full] = true
		d, ok := byName[full]
		switch {
		case !ok:
			notes = append(notes, fmt.Sprintf("state %q is new and starts empty", decl.Name))
		case d.Kind != decl.Kind:
			bad = append(bad, fmt.Sprintf("state %q is %s state in the checkpoint, the job declares %s state", decl.Name, d.Kind, decl.Kind))
		case d.ValueCodec != decl.ValueCodec:
			bad = append(bad, fmt.Sprintf("state %q was written with value codec %s, the job reads it with %s", decl.Name, d.ValueCodec, decl.ValueCodec))
		case d.KeyCodec != decl.KeyCodec:
			bad = append(bad, fmt.Sprintf("state %q was written with map key codec %s, the job reads it with %s", decl.Name, d.KeyCodec, decl.KeyCodec))
		}
	}
	if n.StatesDeclared {
		for _, d := range stored {
			if !declared[d.Name] && d.Kind != "timers" && d.Kind != "StateKind(5)" {
				notes = append(notes, fmt.Sprintf("state %q is no longer used and is dropped", strings.TrimPrefix(d.Name, n.UID+"/")))
			}
		}
	}
	return bad, notes
}
