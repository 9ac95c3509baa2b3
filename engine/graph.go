package engine

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/weirstream/weir/statebackend"
)

// Partitioning says how the records of an edge are spread over the
// consumer's subtasks.
type Partitioning uint8

const (
	// Forward sends subtask i's records to subtask i of the consumer. With
	// equal parallelism and a single input, the two nodes are chained. With
	// different parallelism it behaves as Rebalance.
	Forward Partitioning = iota
	// Rebalance spreads records round robin (by batch) over the consumer's
	// subtasks.
	Rebalance
	// Hash routes every record by the key group of its key.
	Hash
)

func (p Partitioning) String() string {
	switch p {
	case Forward:
		return "forward"
	case Rebalance:
		return "rebalance"
	case Hash:
		return "hash"
	}
	return fmt.Sprintf("partitioning(%d)", uint8(p))
}

// Graph is a job's dataflow: nodes in the order they were added, which is a
// topological order because a node's inputs exist before it.
type Graph struct {
	Nodes []*Node
}

// Node is one operator of the graph: a source, a transformation or a sink.
type Node struct {
	ID          int
	Name        string
	UID         string // stable id of the operator's state; defaults to Name
	Parallelism int    // 0 means the job's default
	// NoRescale, if set, says why the operator's state (a source's
	// position) cannot be restored at another parallelism.
	NoRescale string
	// States declares keyed states of the operator, for
	// CheckCompatibility; StatesDeclared says they are all it uses.
	States         []StateDecl
	StatesDeclared bool
	Inputs         []*Edge
	Outputs        []*Edge
	impl           nodeImpl
}

// StateDecl declares a keyed state of an operator: its name within the
// operator (stored as UID/Name), kind ("value", "map", "list", "reducing")
// and codec fingerprints, as statebackend records them in checkpoints.
type StateDecl struct {
	Name, Kind, KeyCodec, ValueCodec string
}

// Edge connects the output of From to an input of To.
type Edge struct {
	From, To *Node
	Part     Partitioning
	keyed    keyedEdge // Part == Hash only
}

// Reader is what a source subtask reads from; weir.SourceReader satisfies it.
type Reader[T any] interface {
	Read(ctx context.Context, buf []T) ([]T, error)
	Close() error
}

// SourceFactory opens the reader of one source subtask.
type SourceFactory[T any] func(ctx context.Context, oc *OpContext) (Reader[T], error)

// OperatorFactory creates the operator instance of one subtask: the Output
// that receives the node's input and emits to next.
type OperatorFactory[In, Out any] func(oc *OpContext, next Output[Out]) (Output[In], error)

// nodeImpl is the typed part of a node, hidden behind an interface so that
// the graph can hold nodes of any record types. Type assertions happen once,
// when a task is built, never per record.
type nodeImpl interface {
	// combine merges the node's outputs ([]Output[Out]) into one Output[Out].
	combine(outs []any) any
	// source is true for source nodes, which have no input.
	source() bool
	// runSource runs a source subtask, emitting to out (an Output[Out]).
	runSource(ctx context.Context, t *task, oc *OpContext, out any) error
	// build creates an operator subtask emitting to out and returns its
	// input, an Output[In].
	build(oc *OpContext, out any) (any, error)
	// newGate creates the input gate (a *Gate[In]) of one subtask.
	newGate(senders, queue, batch int) gateRunner
	// newSender creates the sending half of a forward or rebalance edge into
	// this node, an Output[In] that also flushes.
	newSender(ctx context.Context, part Partitioning, from int, gates []gateRunner, ts *taskStats) flushOutput
	// count wraps the node's combined output (an Output[Out]) to count
	// the records pushed into it.
	count(out any, n *atomic.Int64) any
}

type gateRunner interface {
	runWith(ctx context.Context, t *task, head any) error
}

func (g *Gate[T]) runWith(ctx context.Context, t *task, head any) error {
	return g.run(ctx, t, head.(Output[T]))
}

type flushOutput interface {
	Flush() error
}

// keyedEdge builds the sender of a hash edge: an Output[T] of the producer's
// type feeding gates of the consumer's type Keyed[K, T].
type keyedEdge interface {
	newSender(ctx context.Context, from int, gates []gateRunner, maxPar int, consumer *OpContext, ts *taskStats) flushOutput
}

type sourceNode[T any] struct{ f SourceFactory[T] }

func (sourceNode[T]) combine(outs []any) any { return combine[T](outs) }
func (sourceNode[T]) count(out any, n *atomic.Int64) any {
	return Output[T](counted[T]{out.(Output[T]), n})
}
func (sourceNode[T]) source() bool { return true }
func (s sourceNode[T]) runSource(ctx context.Context, t *task, oc *OpContext, out any) error {
	return runSource(ctx, t, oc, s.f, out.(Output[T]))
}
func (sourceNode[T]) build(*OpContext, any) (any, error) {
	return nil, fmt.Errorf("engine: a source has no input")
}
func (sourceNode[T]) newGate(int, int, int) gateRunner { return nil }
func (sourceNode[T]) newSender(context.Context, Partitioning, int, []gateRunner, *taskStats) flushOutput {
	return nil
}

type opNode[In, Out any] struct{ f OperatorFactory[In, Out] }

func (opNode[In, Out]) combine(outs []any) any { return combine[Out](outs) }
func (opNode[In, Out]) count(out any, n *atomic.Int64) any {
	return Output[Out](counted[Out]{out.(Output[Out]), n})
}
func (opNode[In, Out]) source() bool { return false }
func (opNode[In, Out]) runSource(context.Context, *task, *OpContext, any) error {
	return fmt.Errorf("engine: not a source")
}
func (o opNode[In, Out]) build(oc *OpContext, out any) (_ any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = oc.recovered(r)
		}
	}()
	in, err := o.f(oc, out.(Output[Out]))
	if err != nil {
		return nil, err
	}
	return Output[In](&guard[In]{out: in, oc: oc, snapshot: true}), nil
}
func (opNode[In, Out]) newGate(senders, queue, batch int) gateRunner {
	return newGate[In](senders, queue, batch)
}
func (opNode[In, Out]) newSender(ctx context.Context, part Partitioning, from int, gates []gateRunner, ts *taskStats) flushOutput {
	typed := make([]*Gate[In], len(gates))
	for i, g := range gates {
		typed[i] = g.(*Gate[In])
	}
	if part == Forward {
		return &forwardSender[In]{sender: newSender(ctx, from, typed, ts)}
	}
	return &rebalanceSender[In]{sender: newSender(ctx, from, typed, ts), next: from % len(typed)}
}

type keyedEdgeImpl[K, T any] struct {
	key   func(T) K
	codec statebackend.Codec[K]
}

func (k keyedEdgeImpl[K, T]) newSender(ctx context.Context, from int, gates []gateRunner, maxPar int, consumer *OpContext, ts *taskStats) flushOutput {
	typed := make([]*Gate[Keyed[K, T]], len(gates))
	for i, g := range gates {
		typed[i] = g.(*Gate[Keyed[K, T]])
	}
	targets := make([]uint16, maxPar)
	for kg := range targets {
		targets[kg] = uint16(statebackend.SubtaskForKeyGroup(maxPar, len(gates), kg))
	}
	return &guard[T]{oc: consumer, out: &keyedSender[K, T]{
		sender:  newSender(ctx, from, typed, ts),
		key:     k.key,
		codec:   k.codec,
		maxPar:  maxPar,
		targets: targets,
	}}
}

// AddSource adds a source node.
func AddSource[T any](g *Graph, name string, f SourceFactory[T]) *Node {
	return g.add(name, sourceNode[T]{f: f})
}

// AddOperator adds a node that consumes In and emits Out. Connect its
// inputs with Connect or ConnectKeyed; a node with no consumer (a sink)
// emits into nothing.
func AddOperator[In, Out any](g *Graph, name string, f OperatorFactory[In, Out]) *Node {
	return g.add(name, opNode[In, Out]{f: f})
}

func (g *Graph) add(name string, impl nodeImpl) *Node {
	n := &Node{ID: len(g.Nodes), Name: name, UID: name, impl: impl}
	g.Nodes = append(g.Nodes, n)
	return n
}

// Connect adds a forward or rebalance edge. The caller guarantees that the
// output type of from is the input type of to.
func Connect(from, to *Node, part Partitioning) *Edge {
	if part == Hash {
		panic("engine: Connect with Hash partitioning; use ConnectKeyed")
	}
	e := &Edge{From: from, To: to, Part: part}
	from.Outputs = append(from.Outputs, e)
	to.Inputs = append(to.Inputs, e)
	return e
}

// ConnectKeyed adds a hash edge from a node emitting T to a node consuming
// Keyed[K, T]. codec encodes keys for hashing and for the state backend.
func ConnectKeyed[K, T any](from, to *Node, key func(T) K, codec statebackend.Codec[K]) *Edge {
	e := &Edge{From: from, To: to, Part: Hash, keyed: keyedEdgeImpl[K, T]{key: key, codec: codec}}
	from.Outputs = append(from.Outputs, e)
	to.Inputs = append(to.Inputs, e)
	return e
}
