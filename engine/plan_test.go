package engine

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/weirstream/weir/barrier"
	"github.com/weirstream/weir/statebackend"
)

type nopReader struct{}

func (nopReader) Read(context.Context, []int) ([]int, error) { return nil, nil }
func (nopReader) Close() error                               { return nil }

func src(g *Graph, name string, par int) *Node {
	n := AddSource(g, name, func(context.Context, *OpContext) (Reader[int], error) { return nopReader{}, nil })
	n.Parallelism = par
	return n
}

type nopOp struct{ next Output[int] }

func (o nopOp) Push(b []int) error             { return o.next.Push(b) }
func (o nopOp) Control(ev barrier.Event) error { return o.next.Control(ev) }

func op(g *Graph, name string, par int) *Node {
	n := AddOperator(g, name, func(_ *OpContext, next Output[int]) (Output[int], error) { return nopOp{next}, nil })
	n.Parallelism = par
	return n
}

// describe prints the tasks of a plan: every head with the nodes chained
// behind it.
func describe(p *Plan) string {
	var b strings.Builder
	var walk func(n *Node, depth int)
	walk = func(n *Node, depth int) {
		for _, e := range n.Outputs {
			if p.chained[e] {
				fmt.Fprintf(&b, " -> %s", e.To.Name)
				walk(e.To, depth+1)
			}
		}
	}
	for _, h := range p.Heads {
		fmt.Fprintf(&b, "task %s x%d:", h.Name, p.Parallelism[h.ID])
		fmt.Fprintf(&b, " %s", h.Name)
		walk(h, 0)
		b.WriteString("\n")
	}
	return b.String()
}

func TestPlanChaining(t *testing.T) {
	cases := []struct {
		name  string
		build func(g *Graph)
		want  string
	}{
		{"forward same parallelism chains", func(g *Graph) {
			s := src(g, "src", 0)
			m := op(g, "map", 0)
			Connect(s, m, Forward)
			k := op(g, "sink", 0)
			Connect(m, k, Forward)
		}, "task src x4: src -> map -> sink\n"},
		{"different parallelism breaks the chain", func(g *Graph) {
			s := src(g, "src", 1)
			m := op(g, "map", 0)
			Connect(s, m, Forward)
		}, "task src x1: src\ntask map x4: map\n"},
		{"rebalance breaks the chain", func(g *Graph) {
			s := src(g, "src", 0)
			m := op(g, "map", 0)
			Connect(s, m, Rebalance)
		}, "task src x4: src\ntask map x4: map\n"},
		{"union is never chained", func(g *Graph) {
			a := src(g, "a", 0)
			b := src(g, "b", 0)
			u := op(g, "union", 0)
			Connect(a, u, Forward)
			Connect(b, u, Forward)
			s := op(g, "sink", 0)
			Connect(u, s, Forward)
		}, "task a x4: a\ntask b x4: b\ntask union x4: union -> sink\n"},
		{"fan-out chains both branches", func(g *Graph) {
			s := src(g, "src", 2)
			a := op(g, "a", 2)
			b := op(g, "b", 3)
			Connect(s, a, Forward)
			Connect(s, b, Forward)
		}, "task src x2: src -> a\ntask b x3: b\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := &Graph{}
			c.build(g)
			p, err := NewPlan(g, Config{Parallelism: 4})
			if err != nil {
				t.Fatal(err)
			}
			if got := describe(p); got != c.want {
				t.Fatalf("got\n%swant\n%s", got, c.want)
			}
		})
	}
}

func TestPlanErrors(t *testing.T) {
	g := &Graph{}
	s := src(g, "src", 0)
	k := AddOperator(g, "keyed", func(_ *OpContext, next Output[int]) (Output[Keyed[int, int]], error) { return nil, nil })
	k.Parallelism = 200
	ConnectKeyed(s, k, func(v int) int { return v }, statebackend.MustCodecFor[int]())
	if _, err := NewPlan(g, Config{Parallelism: 2}); err == nil || !strings.Contains(err.Error(), "exceeds max parallelism 128") {
		t.Fatalf("keyed parallelism above max: %v", err)
	}
	// Unkeyed operators are not bound by the number of key groups.
	g = &Graph{}
	m := op(g, "map", 200)
	Connect(src(g, "src", 0), m, Forward)
	if _, err := NewPlan(g, Config{Parallelism: 2}); err != nil {
		t.Fatalf("unkeyed parallelism above max: %v", err)
	}
	// The default parallelism of a keyed operator is capped by it.
	g = &Graph{}
	s = src(g, "src", 0)
	k = AddOperator(g, "keyed", func(_ *OpContext, next Output[int]) (Output[Keyed[int, int]], error) { return nil, nil })
	ConnectKeyed(s, k, func(v int) int { return v }, statebackend.MustCodecFor[int]())
	p, err := NewPlan(g, Config{Parallelism: 300})
	if err != nil || p.Parallelism[k.ID] != 128 || p.Parallelism[s.ID] != 300 {
		t.Fatalf("default parallelism 300: %v %v", p, err)
	}
	g = &Graph{}
	op(g, "orphan", 0)
	if _, err := NewPlan(g, Config{Parallelism: 2}); err == nil || !strings.Contains(err.Error(), `"orphan" has no input`) {
		t.Fatalf("operator without input: %v", err)
	}
	if _, err := NewPlan(&Graph{}, Config{}); err == nil {
		t.Fatal("empty graph accepted")
	}
}
