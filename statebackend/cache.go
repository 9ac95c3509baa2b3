package statebackend

import "unsafe"

// valueCache is a write-back cache in front of Pebble for value and reducing
// state, the states read and rewritten on every record (n.Set(n.Get()+1)).
//
// It exists because Pebble alone cannot reach the throughput target: every
// update of a key appends a new version to the memtable skiplist, and a get
// plus a set cost two skiplist searches over millions of entries (~5 µs per
// update even with 10K keys all in the memtable), plus sstable reads once
// flushes and compactions move the keys out (7.5 µs per update at best with
// 1M keys, whatever the batching, memtable or block cache size). With the
// cache the same update costs ~340 ns. See BenchmarkValueCountUpdate and
// doc.go.
//
// Entries are exact stored keys (no iteration ever covers value state), so
// the cache never needs to be ordered. Map and list state bypass it.
//
// Eviction is CLOCK-like on Go's randomized map order: a few entries are
// examined per insertion over capacity; a recently used entry gets a second
// chance, others are evicted, dirty ones written to the batch first.
//
// Snapshots (snapshot.go) freeze the dirty list in O(1): Backend.Snapshot
// hands the list to the Snapshot and starts a new epoch. The entries of the
// frozen list (dirty, epoch == frozenEpoch) then belong to the snapshot's
// Persist goroutine, which reads them; the task goroutine never writes them
// again. Touching one (own) puts a copy in the map (copy-on-write, once per
// key per checkpoint); evicting one writes its value into the held batch
// without marking it clean. Once the snapshot ends its values are in Pebble,
// so a dirty entry of an older epoch that is not frozen is clean (own and
// evict treat it so, lazily, instead of walking the list at Release).
type valueCache struct {
	m map[string]*cacheEntry
	// dirty are the entries that turned dirty since the last
	// materialization (may hold clean and stale ones).
	dirty []*cacheEntry
	// changed are the entries modified in this epoch (changelog mode only;
	// may hold stale ones).
	changed   []*cacheEntry
	spare     []*cacheEntry // the backing array of the last logged list, for reuse
	changelog bool
	bytes     int64
	capacity  int64

	// epoch counts snapshots, from 1; frozen is set while a snapshot of
	// the entries as of the end of frozenEpoch is in flight. frozenAll: it
	// materializes (holds every dirty entry), else it logs (holds the
	// entries changed in frozenEpoch). Values of dirty entries last owned
	// in an epoch <= materialized are in Pebble.
	epoch        uint64
	frozenEpoch  uint64
	frozen       bool
	frozenAll    bool
	materialized uint64
}

type cacheEntry struct {
	key     string
	val     []byte // encoded value; meaningless if !present
	present bool   // false: known absent (deleted or not in Pebble)
	dirty   bool   // differs from Pebble (and the batch)
	ref     bool   // used since the eviction hand last passed
	// stale: replaced in the map by a copy, or evicted while frozen; its
	// value is elsewhere, lists skip it. While a materializing snapshot is
	// in flight its Persist reads stale, so the task sets replaced instead
	// and folds it into stale when the snapshot ends.
	stale    bool
	replaced bool
	epoch    uint64 // valueCache.epoch when the task goroutine last owned it
	mod      uint64 // valueCache.epoch when last modified (0: never)
}

// entryOverhead approximates the memory of an entry beyond its key and value:
// the entry struct, the map slot and the dirty-list slot.
const entryOverhead = 96

func (e *cacheEntry) size() int64 { return int64(len(e.key)+cap(e.val)) + entryOverhead }

func newValueCache(capacity int64, changelog bool) *valueCache {
	return &valueCache{m: make(map[string]*cacheEntry), capacity: capacity, changelog: changelog, epoch: 1}
}

// cacheEntry returns the entry of the value state id for the current key,
// loading it from Pebble on a miss if load is set. An entry made without
// loading is not valid until the caller writes it, which it does at once
// (Set, Clear). The caller has checked b.prefix.
func (b *Backend) cacheEntry(id uint32, key []byte, load bool) *cacheEntry {
	if b.last != nil && b.lastGen == b.keyGen && b.lastID == id {
		return b.last
	}
	c := b.vcache
	e, ok := c.m[string(key)]
	if ok {
		e = c.own(e)
		e.ref = true
	} else {
		e = &cacheEntry{key: string(key), ref: true, epoch: c.epoch}
		if load {
			if v, closer, found := b.get(key); found {
				e.val = append(e.val, v...)
				e.present = true
				b.closeQuiet(closer)
			}
		}
		c.m[e.key] = e
		c.bytes += e.size()
		if c.bytes > c.capacity {
			b.evict(e)
		}
	}
	b.last, b.lastGen, b.lastID = e, b.keyGen, id
	return e
}

// isFrozen reports whether e belongs to the in-flight snapshot (its Persist
// goroutine may be reading it).
func (c *valueCache) isFrozen(e *cacheEntry) bool {
	if !c.frozen {
		return false
	}
	if c.frozenAll {
		return c.needsWrite(e) && e.epoch <= c.frozenEpoch
	}
	return e.mod == c.frozenEpoch
}

// own returns the entry of e.key that the task goroutine may modify: e
// itself, or, if e is frozen, a copy that replaces it in the map.
func (c *valueCache) own(e *cacheEntry) *cacheEntry {
	if e.epoch == c.epoch {
		return e
	}
	if c.isFrozen(e) {
		n := &cacheEntry{key: e.key, val: append([]byte(nil), e.val...), present: e.present, dirty: e.dirty, epoch: c.epoch, mod: e.mod}
		c.m[n.key] = n
		c.bytes += n.size() - e.size()
		c.drop(e)
		if n.dirty {
			c.dirty = append(c.dirty, n)
			c.compactDirty()
		}
		return n
	}
	if e.dirty && e.epoch <= c.materialized {
		// A snapshot that has ended wrote the value to Pebble.
		e.dirty = false
	}
	e.epoch = c.epoch
	return e
}

// drop marks a frozen entry that left the map (replaced by a copy, or
// evicted with its value written to the batch) so that the dirty list skips
// it.
func (c *valueCache) drop(e *cacheEntry) {
	if c.frozenAll {
		e.replaced = true // the snapshot's Persist reads stale
	} else {
		e.stale = true
	}
}

// needsWrite reports whether e holds a value Pebble lacks; e is owned or
// not frozen.
func (c *valueCache) needsWrite(e *cacheEntry) bool {
	return e.dirty && e.epoch > c.materialized
}

// markDirty accounts for a new value in e (whose capacity was old) and queues
// it for write-back and, with a changelog, for the next log.
func (c *valueCache) markDirty(e *cacheEntry, old int) {
	c.bytes += int64(cap(e.val) - old)
	if !e.dirty {
		e.dirty = true
		c.dirty = append(c.dirty, e)
		c.compactDirty()
	}
	if e.mod != c.epoch {
		e.mod = c.epoch
		if c.changelog {
			c.changed = append(c.changed, e)
		}
	}
}

// evict removes entries until the cache is within capacity, examining a
// bounded number of entries; keep is never evicted.
func (b *Backend) evict(keep *cacheEntry) {
	c := b.vcache
	examined := 0
	for k, e := range c.m {
		if c.bytes <= c.capacity || examined >= 64 {
			break
		}
		examined++
		if e == keep {
			continue
		}
		switch {
		case c.isFrozen(e):
			// Not touched since the barrier (a touch replaces it): no
			// second chance, and never modified. Its value goes into
			// the held batch so that a later miss reads it.
			b.writeEntry(e)
			c.drop(e)
		case e.ref:
			e.ref = false
			continue
		case c.needsWrite(e):
			b.writeBack(e)
		}
		if e == b.last {
			b.last = nil
		}
		delete(c.m, k)
		c.bytes -= e.size()
	}
}

// writeBack writes a dirty entry into the batch and marks it clean.
func (b *Backend) writeBack(e *cacheEntry) {
	b.writeEntry(e)
	e.dirty = false
}

// writeEntry writes the value of e into the batch; e is not modified.
func (b *Backend) writeEntry(e *cacheEntry) {
	key := unsafeBytes(e.key)
	// Not logged: the entry's value is in a change log already, or will
	// be at the barrier (the changed list keeps evicted entries).
	if e.present {
		b.batchSet(key, e.val)
	} else {
		b.batchDelete(key)
	}
}

// flushCache writes every dirty entry into the batch; entries stay cached.
func (b *Backend) flushCache() {
	c := b.vcache
	if c == nil {
		return
	}
	for i, e := range c.dirty {
		if !e.stale && !e.replaced && c.needsWrite(e) {
			b.writeBack(e)
		}
		c.dirty[i] = nil
	}
	c.dirty = c.dirty[:0]
}

// compactDirty drops stale (clean) entries from the dirty list when it has
// grown far beyond the number of cached entries.
func (c *valueCache) compactDirty() {
	if len(c.dirty) < 2*len(c.m)+1024 {
		return
	}
	n := 0
	for _, e := range c.dirty {
		if e.dirty && !e.stale && !e.replaced {
			c.dirty[n] = e
			n++
		}
	}
	clear(c.dirty[n:])
	c.dirty = c.dirty[:n]
}

// unsafeBytes returns the bytes of s without copying; they must not be
// modified (Pebble copies keys it keeps).
func unsafeBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }
