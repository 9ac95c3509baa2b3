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
		case c.State && len(op.Subtasks) != p.Parallelism[n.ID]:
			c.Verdict, c.Reason = Restorable, fmt.Sprintf("rescaled from parallelism %d to %d", len(op.Subtasks), p.Parallelism[n.ID])
		default:
			c.Verdict = Restorable
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
