package weir_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir"
	"github.com/weirstream/weir/engine/checkpoint"
	"github.com/weirstream/weir/sinks"
	"github.com/weirstream/weir/sources"
	"github.com/weirstream/weir/storage"
)

// TestDeclaredStatesVerify: states an operator declares are compared with
// a checkpoint's by kind and codec before a restore; a codec change is
// incompatible, a new state and a dropped one are notes.
func TestDeclaredStatesVerify(t *testing.T) {
	dir := t.TempDir()
	store := storage.NewMem()
	cc := weir.CheckpointConfig{Store: store, Policy: checkpoint.Policy{Interval: 20 * time.Millisecond}}
	build := func(opts ...weir.OperatorOption) *weir.Job {
		job := weir.NewJob("counts", weir.DefaultParallelism(2), weir.StateDir(filepath.Join(dir, "state")), weir.Checkpoints(cc))
		byKey := weir.KeyBy(weir.From(job, "seq", sources.Sequence(sources.SequenceConfig{Keys: 5, Count: 20})), func(s sources.Seq) int64 { return s.Key })
		n := weir.Process(byKey, "count", func(ctx weir.KeyedContext[int64], s sources.Seq, out weir.Emitter[int64]) error {
			v := weir.Value[int64](ctx, "n")
			v.Set(v.Get() + 1)
			out.Emit(v.Get())
			return nil
		}, opts...)
		weir.To(n, "out", sinks.Discard[int64]())
		return job
	}
	if err := build(weir.States(weir.DeclareValue[int64]("n"))).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	ids, err := storage.ListCheckpoints(context.Background(), store)
	if err != nil || len(ids) == 0 {
		t.Fatalf("checkpoints: %v, %v", ids, err)
	}
	m, err := storage.ReadManifest(context.Background(), store, ids[len(ids)-1])
	if err != nil {
		t.Fatal(err)
	}
	check := func(job *weir.Job) weir.OperatorCheck {
		t.Helper()
		checks, err := job.CheckCompatibility(m)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range checks {
			if c.UID == "count" {
				return c
			}
		}
		t.Fatal("no verdict for operator count")
		return weir.OperatorCheck{}
	}
	for _, tc := range []struct {
		name    string
		opts    []weir.OperatorOption
		verdict weir.Verdict
		reason  string
	}{
		{"same", []weir.OperatorOption{weir.States(weir.DeclareValue[int64]("n"))}, weir.Restorable, ""},
		{"undeclared", nil, weir.Restorable, ""},
		{"other codec", []weir.OperatorOption{weir.States(weir.DeclareValue[string]("n"))}, weir.Incompatible, `state "n" was written with value codec int64/be, the job reads it with string`},
		{"other kind", []weir.OperatorOption{weir.States(weir.DeclareList[int64]("n"))}, weir.Incompatible, `state "n" is value state in the checkpoint, the job declares list state`},
		{"new state", []weir.OperatorOption{weir.States(weir.DeclareValue[int64]("n"), weir.DeclareMap[string, int64]("m"))}, weir.Restorable, `state "m" is new and starts empty`},
		{"dropped", []weir.OperatorOption{weir.States(weir.DeclareMap[string, int64]("m"))}, weir.Restorable, `state "n" is no longer used and is dropped`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := check(build(tc.opts...))
			if c.Verdict != tc.verdict || !strings.Contains(c.Reason, tc.reason) || (tc.reason == "" && c.Reason != "") {
				t.Fatalf("verdict %s (%s), want %s (%s)", c.Verdict, c.Reason, tc.verdict, tc.reason)
			}
		})
	}
}
