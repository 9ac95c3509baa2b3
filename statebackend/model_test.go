package statebackend

import (
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

var (
	modelSeed = flag.Uint64("seed", 0, "seed of TestModel (0: a new random seed)")
	modelOps  = flag.Int("ops", 0, "operations per configuration in TestModel (0: 3000, 1000 with -race)")
)

type modelRec struct {
	N    int64
	S    string
	Tags []string
}

// model is the expected state, per key, in plain Go maps.
type model struct {
	values map[string]int64
	recs   map[string]modelRec
	maps   map[string]map[string]modelRec
	imaps  map[string]map[int64]int64
	lists  map[string][]string
	sums   map[string]int64
}

func newModel() *model {
	return &model{
		values: map[string]int64{}, recs: map[string]modelRec{},
		maps: map[string]map[string]modelRec{}, imaps: map[string]map[int64]int64{},
		lists: map[string][]string{}, sums: map[string]int64{},
	}
}

// states are the handles under test.
type states struct {
	value *Value[int64]
	rec   *Value[modelRec]
	m     *Map[string, modelRec]
	im    *Map[int64, int64]
	list  *List[string]
	sum   *Reducing[int64]
}

func register(t *testing.T, b *Backend) *states {
	t.Helper()
	var s states
	var err error
	must := func(e error) {
		if e != nil && err == nil {
			err = e
		}
	}
	s.value, err = NewValue(b, "op/value", MustCodecFor[int64]())
	var e error
	s.rec, e = NewValue(b, "op/rec", MustCodecFor[modelRec]())
	must(e)
	s.m, e = NewMap(b, "op/map", MustCodecFor[string](), MustCodecFor[modelRec]())
	must(e)
	s.im, e = NewMap(b, "op2/imap", MustCodecFor[int64](), MustCodecFor[int64]())
	must(e)
	s.list, e = NewList(b, "op2/list", MustCodecFor[string]())
	must(e)
	s.sum, e = NewReducing(b, "op2/sum", MustCodecFor[int64](), func(a, b int64) int64 { return a + b })
	must(e)
	if err != nil {
		t.Fatal(err)
	}
	return &s
}

// TestModel runs seeded random operations on every state kind over many keys
// and key groups, and compares the backend with a model in plain Go maps after
// every operation, under several configurations (metamorphic: the results
// must not depend on caching, batching or the number of key groups).
// Reproduce a failure with -seed.
func TestModel(t *testing.T) {
	seed := *modelSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	configs := []struct {
		name string
		opts Options
	}{
		{"default", Options{}},
		{"no-cache/commit=1", Options{ValueCacheSize: -1, CommitEvery: 1}},
		{"tiny-cache/commit=7", Options{ValueCacheSize: 2 << 10, CommitEvery: 7, MaxParallelism: 1}},
		{"maxp=32768", Options{MaxParallelism: UpperBoundMaxParallelism, KeyGroups: KeyGroupRange{0, UpperBoundMaxParallelism - 1}, CommitEvery: 100}},
	}
	for _, cfg := range configs {
		t.Run(cfg.name, func(t *testing.T) {
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("reproduce with: go test ./statebackend/ -run 'TestModel/%s' -seed=%d", cfg.name, seed)
				}
			})
			ops := *modelOps
			if ops == 0 {
				ops = 3000
				if raceEnabled {
					ops = 1000
				}
			}
			runModel(t, seed, ops, cfg.opts)
		})
	}
}

func runModel(t *testing.T, seed uint64, ops int, opts Options) {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	dir := t.TempDir()
	b, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { b.Close() }()
	s := register(t, b)
	m := newModel()

	// Keys that are prefixes of one another (k1, k10, k100) and the empty key.
	keys := []string{"", "\x00", "k1\x00"}
	for i := range 200 {
		keys = append(keys, fmt.Sprintf("k%d", i))
	}
	randString := func() string {
		return strings.Repeat(string(rune('a'+r.IntN(3))), r.IntN(4))
	}
	randRec := func() modelRec {
		rec := modelRec{N: r.Int64N(2000) - 1000, S: randString()}
		switch r.IntN(3) {
		case 1:
			rec.Tags = []string{}
		case 2:
			rec.Tags = []string{randString(), randString()}
		}
		return rec
	}

	var trace []string
	fail := func(format string, args ...any) {
		t.Helper()
		start := max(0, len(trace)-20)
		t.Fatalf("seed %d, op %d: %s\nlast operations:\n  %s", seed, len(trace), fmt.Sprintf(format, args...), strings.Join(trace[start:], "\n  "))
	}
	checkMap := func(key string) {
		t.Helper()
		var got, want []string
		for k, v := range s.m.All() {
			got = append(got, fmt.Sprintf("%q=%+v", k, v))
		}
		for _, k := range slices.Sorted(maps.Keys(m.maps[key])) {
			want = append(want, fmt.Sprintf("%q=%+v", k, m.maps[key][k]))
		}
		if !slices.Equal(got, want) {
			fail("key %q: map = %v; want %v", key, got, want)
		}
		if s.m.IsEmpty() != (len(m.maps[key]) == 0) {
			fail("key %q: map IsEmpty = %v", key, s.m.IsEmpty())
		}
	}
	checkIMap := func(key string) {
		t.Helper()
		var got, want []int64 // key, value, key, value...
		for k, v := range s.im.All() {
			got = append(got, k, v)
		}
		for _, k := range slices.Sorted(maps.Keys(m.imaps[key])) {
			want = append(want, k, m.imaps[key][k])
		}
		if !slices.Equal(got, want) {
			fail("key %q: int map (key, value...) = %v; want %v", key, got, want)
		}
	}
	checkList := func(key string) {
		t.Helper()
		if got := s.list.Get(); !slices.Equal(got, m.lists[key]) {
			fail("key %q: list = %q; want %q", key, got, m.lists[key])
		}
		if got := slices.Collect(s.list.All()); !slices.Equal(got, m.lists[key]) {
			fail("key %q: list.All = %q; want %q", key, got, m.lists[key])
		}
	}
	// check compares the states in mask of key with the model.
	check := func(key string, mask int) {
		t.Helper()
		if err := b.Err(); err != nil {
			fail("backend error: %v", err)
		}
		setKey(b, key)
		if mask&chkValue != 0 {
			if got, ok := s.value.Lookup(); got != m.values[key] || ok != hasKey(m.values, key) {
				fail("key %q: value = %d, %v; want %d, %v", key, got, ok, m.values[key], hasKey(m.values, key))
			}
		}
		if mask&chkRec != 0 {
			if got, ok := s.rec.Lookup(); !reflect.DeepEqual(got, m.recs[key]) || ok != hasKey(m.recs, key) {
				fail("key %q: rec = %+v, %v; want %+v", key, got, ok, m.recs[key])
			}
		}
		if mask&chkMap != 0 {
			checkMap(key)
		}
		if mask&chkIMap != 0 {
			checkIMap(key)
		}
		if mask&chkList != 0 {
			checkList(key)
		}
		if mask&chkSum != 0 {
			if got, ok := s.sum.Get(); got != m.sums[key] || ok != hasKey(m.sums, key) {
				fail("key %q: sum = %d, %v; want %d", key, got, ok, m.sums[key])
			}
		}
	}

	for op := range ops {
		key := keys[r.IntN(len(keys))]
		setKey(b, key)
		var desc string
		var mask int
		switch n := r.IntN(1000); {
		case n < 120:
			v := r.Int64N(100) - 50
			desc = fmt.Sprintf("value.Set(%d)", v)
			mask = chkValue
			s.value.Set(v)
			m.values[key] = v
		case n < 160:
			desc = "value.Set(Get()+1)"
			mask = chkValue
			s.value.Set(s.value.Get() + 1)
			m.values[key]++
		case n < 190:
			desc = "value.Clear()"
			mask = chkValue
			s.value.Clear()
			delete(m.values, key)
		case n < 240:
			rec := randRec()
			desc = fmt.Sprintf("rec.Set(%+v)", rec)
			mask = chkRec
			s.rec.Set(rec)
			m.recs[key] = rec
		case n < 260:
			desc = "rec.Clear()"
			mask = chkRec
			s.rec.Clear()
			delete(m.recs, key)
		case n < 380:
			mk, rec := randString(), randRec()
			desc = fmt.Sprintf("map.Put(%q, %+v)", mk, rec)
			mask = chkMap
			s.m.Put(mk, rec)
			if m.maps[key] == nil {
				m.maps[key] = map[string]modelRec{}
			}
			m.maps[key][mk] = rec
		case n < 430:
			mk := randString()
			desc = fmt.Sprintf("map.Delete(%q)", mk)
			mask = chkMap
			s.m.Delete(mk)
			delete(m.maps[key], mk)
		case n < 480:
			mk := randString()
			desc = fmt.Sprintf("map.Get/Contains(%q)", mk)
			mask = chkMap
			got, ok := s.m.Get(mk)
			want, wok := m.maps[key][mk]
			if ok != wok || !reflect.DeepEqual(got, want) || s.m.Contains(mk) != wok {
				fail("key %q: map.Get(%q) = %+v, %v; want %+v, %v", key, mk, got, ok, want, wok)
			}
		case n < 500:
			desc = "map.Clear()"
			mask = chkMap
			s.m.Clear()
			delete(m.maps, key)
		case n < 580:
			k, v := r.Int64N(41)-20, r.Int64()
			desc = fmt.Sprintf("imap.Put(%d, %d)", k, v)
			mask = chkIMap
			s.im.Put(k, v)
			if m.imaps[key] == nil {
				m.imaps[key] = map[int64]int64{}
			}
			m.imaps[key][k] = v
		case n < 610:
			k := r.Int64N(41) - 20
			desc = fmt.Sprintf("imap.Delete(%d)", k)
			mask = chkIMap
			s.im.Delete(k)
			delete(m.imaps[key], k)
		case n < 630:
			// Rewrite every entry while iterating.
			desc = "imap: for k, v := range All() { Put(k, v+1) }"
			mask = chkIMap
			for k, v := range s.im.All() {
				s.im.Put(k, v+1)
			}
			for k := range m.imaps[key] {
				m.imaps[key][k]++
			}
		case n < 730:
			v := randString()
			desc = fmt.Sprintf("list.Add(%q)", v)
			mask = chkList
			s.list.Add(v)
			m.lists[key] = append(m.lists[key], v)
		case n < 760:
			vs := make([]string, r.IntN(4))
			for i := range vs {
				vs[i] = randString()
			}
			desc = fmt.Sprintf("list.Update(%q)", vs)
			mask = chkList
			s.list.Update(vs)
			if len(vs) == 0 {
				vs = nil
			}
			m.lists[key] = vs
		case n < 780:
			desc = "list.Clear()"
			mask = chkList
			s.list.Clear()
			delete(m.lists, key)
		case n < 880:
			v := r.Int64N(10)
			desc = fmt.Sprintf("sum.Add(%d)", v)
			mask = chkSum
			s.sum.Add(v)
			m.sums[key] += v
		case n < 900:
			desc = "sum.Clear()"
			mask = chkSum
			s.sum.Clear()
			delete(m.sums, key)
		case n < 975:
			desc = "Flush()"
			mask = chkAll
			if err := b.Flush(); err != nil {
				fail("Flush: %v", err)
			}
		case n < 997:
			desc = "Flush(); DB().Flush()"
			mask = chkAll
			if err := b.Flush(); err != nil {
				fail("Flush: %v", err)
			}
			if err := b.DB().Flush(); err != nil {
				fail("DB().Flush: %v", err)
			}
		default:
			desc = "reopen"
			mask = chkAll
			if err := b.Flush(); err != nil {
				fail("Flush: %v", err)
			}
			if err := b.DB().Flush(); err != nil {
				fail("DB().Flush: %v", err)
			}
			if err := b.Close(); err != nil {
				fail("Close: %v", err)
			}
			if b, err = Open(dir, opts); err != nil {
				fail("Open: %v", err)
			}
			s = register(t, b)
		}
		trace = append(trace, fmt.Sprintf("%d: key %q: %s", op, key, desc))
		check(key, mask)
		if op%500 == 499 || op == ops-1 {
			for _, k := range keys {
				check(k, chkAll)
			}
		}
	}
}

const (
	chkValue = 1 << iota
	chkRec
	chkMap
	chkIMap
	chkList
	chkSum
	chkAll = 1<<iota - 1
)

func hasKey[K comparable, V any](m map[K]V, k K) bool {
	_, ok := m[k]
	return ok
}
