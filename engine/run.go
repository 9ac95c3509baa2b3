package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/weirstream/weir/engine/checkpoint"
	"github.com/weirstream/weir/statebackend"
)

// Config is how a graph runs.
type Config struct {
	Job            string
	Parallelism    int    // default parallelism of nodes that set none; 0: GOMAXPROCS
	MaxParallelism int    // number of key groups; 0: statebackend.DefaultMaxParallelism
	StateDir       string // where keyed state lives; "": a temporary directory removed at the end
	// StateCacheBytes is the size of each stateful operator subtask's
	// cache of value and reducing state (statebackend.Options.ValueCacheSize):
	// 0 the default, negative none.
	StateCacheBytes int64
	BatchSize       int           // records per batch between tasks; 0: DefaultBatchSize
	QueueSize       int           // batches buffered per consumer subtask; 0: DefaultQueueSize
	Linger          time.Duration // longest a partial batch waits in a busy task; 0: DefaultLinger
	Logger          *slog.Logger  // nil: discard
	// Stop, when closed, stops the sources as if their input had ended: the
	// records in flight drain through the graph, sinks finish and Run
	// returns nil.
	Stop <-chan struct{}
	// Checkpoint turns on checkpoints and recovery; nil runs without them.
	Checkpoint *CheckpointConfig
	// TracerProvider records the spans of checkpoints and recoveries
	// (nil: none).
	TracerProvider trace.TracerProvider
	// MeterProvider receives the job's metrics (nil: none).
	MeterProvider metric.MeterProvider
	// Status, if set, is kept up to date with the job's graph, state and
	// checkpoint history (a job binary serves it over HTTP).
	Status *Status

	// metrics, when set (by a job binary that restarts in-process), are
	// shared by the runs; else each Run has its own.
	metrics *runMetrics
}

// Defaults, chosen with BenchmarkExchange (see docs/architecture.md).
const (
	DefaultBatchSize = 1024
	DefaultQueueSize = 8
	DefaultLinger    = 5 * time.Millisecond
)

func (c *Config) fill() error {
	if c.Job == "" {
		c.Job = "job"
	}
	if c.Parallelism == 0 {
		c.Parallelism = runtime.GOMAXPROCS(0)
	}
	if c.MaxParallelism == 0 {
		c.MaxParallelism = statebackend.DefaultMaxParallelism
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.QueueSize == 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.Linger == 0 {
		c.Linger = DefaultLinger
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.Parallelism < 0:
		return fmt.Errorf("engine: parallelism %d: must be positive", c.Parallelism)
	case c.MaxParallelism < 1 || c.MaxParallelism > 1<<15:
		return fmt.Errorf("engine: max parallelism %d: must be between 1 and 32768", c.MaxParallelism)
	case c.BatchSize < 1, c.QueueSize < 1:
		return fmt.Errorf("engine: batch size %d and queue size %d must be positive", c.BatchSize, c.QueueSize)
	}
	return nil
}

// Plan is a graph resolved for running: every node's parallelism and which
// edges are chained.
type Plan struct {
	Graph       *Graph
	Parallelism []int   // by node ID
	Chained     []bool  // by edge, in the order of plan.edges
	Heads       []*Node // nodes that start a task: sources and nodes fed by an exchange
	edges       []*Edge
	chained     map[*Edge]bool
}

// NewPlan resolves parallelism and chaining and validates the graph.
func NewPlan(g *Graph, cfg Config) (*Plan, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	p := &Plan{Graph: g, Parallelism: make([]int, len(g.Nodes)), chained: map[*Edge]bool{}}
	uids := map[string]*Node{}
	for _, n := range g.Nodes {
		par := n.Parallelism
		if par == 0 {
			par = cfg.Parallelism
			if keyedInput(n) {
				par = min(par, cfg.MaxParallelism)
			}
		}
		if par < 1 {
			return nil, fmt.Errorf("engine: operator %q: parallelism %d must be positive", n.Name, par)
		}
		if par > cfg.MaxParallelism && keyedInput(n) {
			return nil, fmt.Errorf("engine: operator %q: parallelism %d exceeds max parallelism %d", n.Name, par, cfg.MaxParallelism)
		}
		p.Parallelism[n.ID] = par
		if other, ok := uids[n.UID]; ok {
			return nil, fmt.Errorf("engine: operators %q and %q have the same UID %q: give one of them a different name or UID", other.Name, n.Name, n.UID)
		}
		uids[n.UID] = n
		if n.impl.source() != (len(n.Inputs) == 0) {
			return nil, fmt.Errorf("engine: operator %q has no input", n.Name)
		}
	}
	if len(g.Nodes) == 0 {
		return nil, errors.New("engine: the job has no operators")
	}
	for _, n := range g.Nodes {
		head := n.impl.source()
		for _, e := range n.Inputs {
			p.edges = append(p.edges, e)
			c := e.Part == Forward && len(n.Inputs) == 1 && p.Parallelism[e.From.ID] == p.Parallelism[n.ID]
			p.chained[e] = c
			p.Chained = append(p.Chained, c)
			if !c {
				head = true
			}
		}
		if head {
			p.Heads = append(p.Heads, n)
		}
	}
	return p, nil
}

func keyedInput(n *Node) bool {
	for _, e := range n.Inputs {
		if e.Part == Hash {
			return true
		}
	}
	return false
}

// Run runs the graph until every source is exhausted (or cfg.Stop closes)
// and every record reached its sink, until an operator fails, or until ctx
// is cancelled. It returns the first failure, naming the operator and
// subtask; every goroutine it started has returned when it returns.
func Run(ctx context.Context, g *Graph, cfg Config) (err error) {
	if err := cfg.fill(); err != nil {
		return err
	}
	p, err := NewPlan(g, cfg)
	if err != nil {
		return err
	}
	if cfg.StateDir == "" {
		dir, err := os.MkdirTemp("", "weir-state-")
		if err != nil {
			return fmt.Errorf("engine: state directory: %w", err)
		}
		defer os.RemoveAll(dir)
		cfg.StateDir = dir
	}
	unlock, err := lockDir(cfg.StateDir)
	if err != nil {
		return err
	}
	defer unlock()
	tr, err := newTrash(cfg.StateDir)
	if err != nil {
		return err
	}
	defer tr.close()
	// Files a killed restore was assembling.
	if err := tr.discard(filepath.Join(cfg.StateDir, "restore")); err != nil {
		return fmt.Errorf("engine: clear state directory: %w", err)
	}

	// Gates: one per subtask of every node fed by an exchange.
	gates := map[*Node][]gateRunner{}
	senderBase := map[*Edge]int{}
	for _, n := range p.Heads {
		if n.impl.source() {
			continue
		}
		// A sender's index is its position among the senders of the
		// consumer's gate: edges in order, then producer subtasks.
		senders := 0
		for _, e := range n.Inputs {
			senderBase[e] = senders
			senders += p.sendersPerGate(e)
		}
		gs := make([]gateRunner, p.Parallelism[n.ID])
		for i := range gs {
			gs[i] = n.impl.newGate(senders, cfg.QueueSize, cfg.BatchSize)
		}
		gates[n] = gs
	}

	if st := cfg.Status; st != nil {
		st.setPlan(p)
		st.setState(StateRunning, nil)
		defer func() {
			st.setRequest(nil, false)
			if err == nil {
				st.setState(StateFinished, nil)
			} else {
				st.setState(StateFailed, err)
			}
		}()
	}
	met := cfg.metrics
	if met == nil {
		if met, err = newRunMetrics(cfg.MeterProvider, cfg.Job); err != nil {
			return fmt.Errorf("engine: metrics: %w", err)
		}
		defer met.close()
	}
	defer met.runEnded()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		tasks    []*task
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel(err)
	}
	var (
		ck          *checkpointer
		startDriver = func() {}
	)
	if cfg.Checkpoint != nil {
		if ck, err = newCheckpointer(ctx, p, &cfg, fail); err != nil {
			return err
		}
		ck.metrics = met
		if ck.restored != nil {
			met.lastCompleted.Store(ck.restored.CreatedUnixMs * int64(time.Millisecond))
		}
		driverCtx, stopDriver := context.WithCancel(ctx)
		// The driver starts once every task is registered (below); tasks
		// that report earlier wait on its buffered channel.
		startDriver = func() {
			go ck.drive(driverCtx)
			if cfg.Status != nil {
				cfg.Status.setRequest(ck.request, cfg.Checkpoint.SavepointStore != nil)
			}
		}
		defer func() {
			// Stop the driver first: snapshot goroutines then find it
			// gone instead of blocking on it.
			stopDriver()
			<-ck.done
			ck.wg.Wait()
		}()
	}
	stop := cfg.Stop
	if stop == nil {
		stop = make(chan struct{})
	}
	// The trash is emptied once every task opened its operators (restored
	// its state), or failed to.
	var opening sync.WaitGroup
	for _, head := range p.Heads {
		for i := 0; i < p.Parallelism[head.ID]; i++ {
			opening.Add(1)
			t := &task{
				name:      fmt.Sprintf("%s[%d]", head.Name, i),
				stateDir:  cfg.StateDir,
				cacheSize: cfg.StateCacheBytes,
				trash:     tr,
				opened:    sync.OnceFunc(opening.Done),
				stop:      stop,
				linger:    cfg.Linger,
				batch:     cfg.BatchSize,
				metrics:   met,
				stats:     met.task(head.UID, head.Name, i),
			}
			if ck != nil {
				t.ck = &taskCkpt{c: ck, head: checkpoint.TaskID{Vertex: head.UID, Subtask: i}, headName: head.Name, wake: make(chan struct{}, 1)}
				ck.tasks = append(ck.tasks, t.ck)
				if head.impl.source() {
					t.inject = ck.injects[t.ck.head]
				}
			}
			tasks = append(tasks, t)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer met.taskEnded(t.stats)
				defer t.opened()
				if err := p.runTask(ctx, t, head, i, gates, senderBase, &cfg); err != nil {
					fail(err)
				}
			}()
		}
	}
	startDriver()
	// When every task opened (or failed to), recovery is over: its span
	// ends with the run's failure if there is one, and the job is ready if
	// it still runs.
	recovered := make(chan struct{})
	go func() {
		defer close(recovered)
		opening.Wait()
		tr.opened()
		failed := context.Cause(ctx)
		if ck != nil {
			ck.endRecovery(failed)
		}
		if cfg.Status != nil && failed == nil {
			cfg.Status.setReady()
		}
	}()
	defer func() { <-recovered }()
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = context.Cause(ctx)
	}
	// With checkpoints, the final checkpoint completed before the sources
	// ended: commit it where the tasks had no time to.
	if firstErr == nil && ck != nil {
		for _, t := range tasks {
			if err := t.ck.service(); err != nil {
				firstErr = err
				break
			}
		}
	}
	// Sinks commit only once every task reached the end of its input, so a
	// failure anywhere in the job leaves no output committed.
	if firstErr == nil {
		for _, t := range tasks {
			if err := t.finish(); err != nil {
				firstErr = err
				break
			}
		}
	}
	for _, t := range tasks {
		if err := t.close(); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// sendersPerGate is how many producer subtasks of e send to each consumer
// subtask: one on a forward edge between equal parallelisms, all of them
// otherwise.
func (p *Plan) sendersPerGate(e *Edge) int {
	if p.pointwise(e) {
		return 1
	}
	return p.Parallelism[e.From.ID]
}

// pointwise is true for a forward edge between equal parallelisms: subtask
// i sends to subtask i only.
func (p *Plan) pointwise(e *Edge) bool {
	return e.Part == Forward && p.Parallelism[e.From.ID] == p.Parallelism[e.To.ID]
}

func (p *Plan) runTask(ctx context.Context, t *task, head *Node, index int, gates map[*Node][]gateRunner, senderBase map[*Edge]int, cfg *Config) (err error) {
	oc := p.opContext(ctx, t, head, index, cfg)
	defer func() {
		if r := recover(); r != nil {
			err = oc.recovered(r)
		}
	}()
	if head.impl.source() {
		out, err := p.buildOutputs(ctx, t, head, index, gates, senderBase, cfg)
		if err != nil {
			return err
		}
		t.opened()
		return head.impl.runSource(ctx, t, oc, head.impl.count(out, &oc.stats.out))
	}
	in, err := p.buildChain(ctx, t, head, index, gates, senderBase, cfg)
	if err != nil {
		return err
	}
	t.opened()
	t.lastFlush = time.Now()
	return gates[head][index].runWith(ctx, t, in)
}

func (p *Plan) opContext(ctx context.Context, t *task, n *Node, index int, cfg *Config) *OpContext {
	oc := &OpContext{
		Job:            cfg.Job,
		Operator:       n.Name,
		UID:            n.UID,
		Index:          index,
		Parallelism:    p.Parallelism[n.ID],
		MaxParallelism: cfg.MaxParallelism,
		Logger:         cfg.Logger.With("operator", n.Name, "subtask", index),
		ctx:            ctx,
		task:           t,
		stats:          t.metrics.op(n.UID, n.Name, index),
	}
	if t.ck != nil {
		oc.ckpt = t.ck.c
		oc.restore = oc.ckpt.subtaskState(n.UID, index, oc.Parallelism)
		oc.rescaled = oc.ckpt.rescaledState(n.UID, oc.Parallelism)
		oc.uploader = newUploader()
	}
	return oc
}

// buildChain builds node n of subtask index and everything chained after
// it, and returns n's input (an Output[In]).
func (p *Plan) buildChain(ctx context.Context, t *task, n *Node, index int, gates map[*Node][]gateRunner, senderBase map[*Edge]int, cfg *Config) (any, error) {
	out, err := p.buildOutputs(ctx, t, n, index, gates, senderBase, cfg)
	if err != nil {
		return nil, err
	}
	oc := p.opContext(ctx, t, n, index, cfg)
	in, err := n.impl.build(oc, n.impl.count(out, &oc.stats.out))
	if err != nil {
		return nil, oc.wrap(fmt.Errorf("open: %w", err))
	}
	return in, nil
}

// buildOutputs returns the combined Output[Out] of node n's subtask index.
func (p *Plan) buildOutputs(ctx context.Context, t *task, n *Node, index int, gates map[*Node][]gateRunner, senderBase map[*Edge]int, cfg *Config) (any, error) {
	outs := make([]any, 0, len(n.Outputs))
	for _, e := range n.Outputs {
		if p.chained[e] {
			in, err := p.buildChain(ctx, t, e.To, index, gates, senderBase, cfg)
			if err != nil {
				return nil, err
			}
			outs = append(outs, in)
			continue
		}
		gs := gates[e.To]
		var s flushOutput
		switch {
		case e.Part == Hash:
			// The key selector runs in the producer on behalf of the
			// consumer: its panics name both.
			sel := p.opContext(ctx, t, e.From, index, cfg)
			sel.Operator = fmt.Sprintf("%s (key selector of %q)", e.From.Name, e.To.Name)
			s = e.keyed.newSender(ctx, senderBase[e]+index, gs, cfg.MaxParallelism, sel, t.stats)
		case p.pointwise(e):
			s = e.To.impl.newSender(ctx, Forward, senderBase[e], gs[index:index+1], t.stats)
		default:
			from := senderBase[e] + index
			s = e.To.impl.newSender(ctx, Rebalance, from, gs, t.stats)
		}
		t.flushers = append(t.flushers, s)
		outs = append(outs, s)
	}
	return n.impl.combine(outs), nil
}
