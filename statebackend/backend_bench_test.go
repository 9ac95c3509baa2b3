package statebackend

import (
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

const benchKeys = 1_000_000

// benchKey returns the i-th key of a pseudo-random walk over benchKeys
// distinct keys (multiplication by a constant coprime with benchKeys is a
// permutation of each cycle).
func benchKey(buf []byte, i int) []byte {
	idx := uint64(i) * 2654435761 % benchKeys
	return binary.BigEndian.AppendUint64(buf[:0], idx)
}

// BenchmarkValueCountUpdate is the keyed-count hot path: SetCurrentKey, then
// n.Set(n.Get()+1) through Value[int64], over 1M distinct keys visited in a
// pseudo-random order. "cold" times the first update of each key (on an
// empty backend); the others first touch all 1M keys (untimed, then Flush)
// and time the steady state of repeated updates.
//
//	go test -run '^$' -bench ValueCountUpdate -benchtime 1000000x ./statebackend/
func BenchmarkValueCountUpdate(b *testing.B) {
	for _, cfg := range []struct {
		name string
		cold bool
		opts Options
	}{
		{"default", false, Options{}},
		{"default/cold", true, Options{}},
		{"valuecache=32MB", false, Options{ValueCacheSize: 32 << 20}},
		{"pebble-only/commit=1024", false, Options{ValueCacheSize: -1}},
		{"pebble-only/commit=1024/cold", true, Options{ValueCacheSize: -1}},
		{"pebble-only/commit=1", false, Options{ValueCacheSize: -1, CommitEvery: 1}},
		{"pebble-only/commit=64", false, Options{ValueCacheSize: -1, CommitEvery: 64}},
		{"pebble-only/commit=16384", false, Options{ValueCacheSize: -1, CommitEvery: 16384}},
		{"pebble-only/memtable=4MB", false, Options{ValueCacheSize: -1, MemTableSize: 4 << 20}},
		{"pebble-only/memtable=64MB", false, Options{ValueCacheSize: -1, MemTableSize: 64 << 20}},
		{"pebble-only/blockcache=8MB", false, Options{ValueCacheSize: -1, CacheSize: 8 << 20}},
		{"pebble-only/blockcache=256MB", false, Options{ValueCacheSize: -1, CacheSize: 256 << 20}},
	} {
		b.Run(cfg.name, func(b *testing.B) {
			be, err := Open(b.TempDir(), cfg.opts)
			if err != nil {
				b.Fatal(err)
			}
			defer be.Close()
			n, err := NewValue(be, "count/n", MustCodecFor[int64]())
			if err != nil {
				b.Fatal(err)
			}
			var kb []byte
			update := func(i int) {
				kb = benchKey(kb, i)
				be.SetCurrentKey(KeyGroupOf(kb, DefaultMaxParallelism), kb)
				n.Set(n.Get() + 1)
			}
			if !cfg.cold {
				for i := range benchKeys {
					update(i)
				}
				if err := be.Flush(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				update(i)
			}
			b.StopTimer()
			if err := be.Err(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
		})
	}
	// Pebble without a batch: db.Get and db.Set(NoSync), same keys and codec.
	b.Run("pebble-only/direct-db-set", func(b *testing.B) {
		be, err := Open(b.TempDir(), Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer be.Close()
		db := be.DB()
		c := MustCodecFor[int64]()
		var kb, key, val []byte
		update := func(i int) {
			kb = benchKey(kb, i)
			kg := KeyGroupOf(kb, DefaultMaxParallelism)
			key = append(key[:0], byte(kg>>8), byte(kg), 1, 2, 3, 4)
			key = binary.AppendUvarint(key, uint64(len(kb)))
			key = append(key, kb...)
			var cur int64
			if v, closer, err := db.Get(key); err == nil {
				cur, _ = c.Decode(v)
				closer.Close()
			} else if err != pebble.ErrNotFound {
				b.Fatal(err)
			}
			val = c.Append(val[:0], cur+1)
			if err := db.Set(key, val, pebble.NoSync); err != nil {
				b.Fatal(err)
			}
		}
		for i := range benchKeys {
			update(i)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			update(i)
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
	})
}

func BenchmarkMapPut(b *testing.B) {
	be, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	m, err := NewMap(be, "m", MustCodecFor[string](), MustCodecFor[int64]())
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%04d", i)
	}
	var kb []byte
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		kb = benchKey(kb, i/16)
		be.SetCurrentKey(KeyGroupOf(kb, DefaultMaxParallelism), kb)
		m.Put(keys[i%len(keys)], int64(i))
	}
}

func BenchmarkListAdd(b *testing.B) {
	be, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	l, err := NewList(be, "l", MustCodecFor[int64]())
	if err != nil {
		b.Fatal(err)
	}
	var kb []byte
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		kb = benchKey(kb, i%10000)
		be.SetCurrentKey(KeyGroupOf(kb, DefaultMaxParallelism), kb)
		l.Add(int64(i))
	}
}

// BenchmarkSnapshot times the phases of a snapshot of a backend whose value
// cache holds 1M dirty entries (every key updated since the last snapshot):
// sync-µs is Backend.Snapshot (on the task goroutine, at the barrier),
// persist-ms is Snapshot.Persist (write the frozen entries, flush,
// checkpoint), release-µs is Backend.Release, and cow-ns/key the update of
// every key after the barrier, before Persist (the first touch of a frozen
// entry copies it; compare with BenchmarkValueCountUpdate/default).
//
//	go test -run '^$' -bench Snapshot -benchtime 5x ./statebackend/
func BenchmarkSnapshot(b *testing.B) {
	for _, dirty := range []int{1000, benchKeys} {
		b.Run(fmt.Sprintf("dirty=%d", dirty), func(b *testing.B) {
			dir := b.TempDir()
			be, err := Open(filepath.Join(dir, "state"), Options{ValueCacheSize: 1 << 30})
			if err != nil {
				b.Fatal(err)
			}
			defer be.Close()
			n, err := NewValue(be, "count/n", MustCodecFor[int64]())
			if err != nil {
				b.Fatal(err)
			}
			var kb []byte
			touch := func() {
				for i := range dirty {
					kb = benchKey(kb, i)
					be.SetCurrentKey(KeyGroupOf(kb, DefaultMaxParallelism), kb)
					n.Set(n.Get() + 1)
				}
			}
			touch()
			var syncT, persistT, releaseT, cowT time.Duration
			b.ResetTimer()
			for i := range b.N {
				t0 := time.Now()
				s, err := be.Snapshot(uint64(i))
				t1 := time.Now()
				if err != nil {
					b.Fatal(err)
				}
				touch() // while holding: every first touch copies a frozen entry
				t2 := time.Now()
				if _, err := s.Persist(context.Background(), filepath.Join(dir, fmt.Sprint("cp", i))); err != nil {
					b.Fatal(err)
				}
				t3 := time.Now()
				if err := be.Release(s); err != nil {
					b.Fatal(err)
				}
				t4 := time.Now()
				syncT += t1.Sub(t0)
				cowT += t2.Sub(t1)
				persistT += t3.Sub(t2)
				releaseT += t4.Sub(t3)
			}
			b.ReportMetric(float64(syncT.Microseconds())/float64(b.N), "sync-µs")
			b.ReportMetric(float64(persistT.Milliseconds())/float64(b.N), "persist-ms")
			b.ReportMetric(float64(releaseT.Microseconds())/float64(b.N), "release-µs")
			b.ReportMetric(float64(cowT.Nanoseconds())/float64(b.N*dirty), "cow-ns/key")
		})
	}
}
