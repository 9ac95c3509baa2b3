package statebackend

import (
	"bytes"
	"container/heap"
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/cockroachdb/pebble/v2"
)

// KindTimers is the kind of a timer service's state.
const KindTimers StateKind = 5

// Timers is a keyed timer service: timers of (current key, time), stored
// like any other keyed state, so they are part of checkpoints and fire
// exactly once across recovery (a timer that fired before checkpoint n was
// deleted in it; one that had not fires after a restore of n). A timer's
// key is
//
//	[key group 2B][state id 4B][time 8B, big endian, sign bit flipped][encoded key]
//
// so each key group holds its timers in time order. Registering a timer
// that exists is a no-op: a key has at most one timer per time.
type Timers struct {
	b  *Backend
	si *stateInfo
	// next is at most the earliest timer's time (math.MaxInt64 when there
	// is none): Fire with an earlier time reads nothing. known is false
	// until it is computed (after a restore).
	next  int64
	known bool
	key   []byte
	// resume holds, per key group (index from its range's start), the last
	// timer Due returned for resumeUpTo: the next call starts after it
	// instead of skipping the deleted timers again. A timer set at or
	// before resumeTime invalidates it.
	resume     [][]byte
	resumeUpTo int64
	resumeTime int64
}

// NewTimers registers the timer service name.
func NewTimers(b *Backend, name string) (*Timers, error) {
	si, err := b.register(name, KindTimers, "", "time-be64/key", nil, nil)
	if err != nil {
		return nil, err
	}
	return &Timers{b: b, si: si}, nil
}

// timerKey returns the key of the current key's timer at t, in t.key.
func (t *Timers) timerKey(ts int64) ([]byte, bool) {
	p, ok := t.b.prefix(t.si.ID)
	if !ok {
		return nil, false
	}
	// p is [kg][id][uvarint len][key]; the timer key drops the length.
	_, n := binary.Uvarint(p[6:])
	k := append(t.key[:0], p[:6]...)
	k = binary.BigEndian.AppendUint64(k, uint64(ts)^(1<<63))
	k = append(k, p[6+n:]...)
	t.key = k
	return k, true
}

// Register sets a timer at ts for the current key.
func (t *Timers) Register(ts int64) {
	k, ok := t.timerKey(ts)
	if !ok {
		return
	}
	t.b.set(k, nil)
	if t.known && ts < t.next {
		t.next = ts
	}
	if t.resume != nil && ts <= t.resumeTime {
		t.resume = nil
	}
}

// Delete removes the current key's timer at ts, if any.
func (t *Timers) Delete(ts int64) {
	if k, ok := t.timerKey(ts); ok {
		t.b.delete(k)
	}
}

// Timer is a timer that is due.
type Timer struct {
	KeyGroup uint16
	Key      []byte // the encoded key
	Time     int64
}

// Due returns and deletes up to limit of the timers at or before upTo, in
// time order (then by key group and key). Callers fire them and call Due
// again until it returns none: firing may set more timers that are already
// due, and a watermark at the end of input makes every timer due at once.
func (t *Timers) Due(upTo int64, limit int) []Timer {
	if t.known && upTo < t.next {
		return nil
	}
	// Merge the key groups' timers, each in time order, through a heap of
	// one iterator per key group that has a timer at or before upTo.
	var h timerHeap
	defer func() {
		for _, c := range h {
			c.close()
		}
	}()
	if t.resume == nil || t.resumeUpTo != upTo {
		t.resume = make([][]byte, t.b.keyGroups.Len())
		t.resumeUpTo, t.resumeTime = upTo, math.MinInt64
	}
	next := int64(math.MaxInt64)
	for kg := t.b.keyGroups.Start; kg <= t.b.keyGroups.End; kg++ {
		c, err := t.openCursor(uint16(kg), t.resume[kg-t.b.keyGroups.Start])
		if err != nil {
			t.b.setErr(err)
			return nil
		}
		switch {
		case !c.valid:
			c.close()
		case c.time > upTo:
			next = min(next, c.time)
			c.close()
		default:
			h = append(h, c)
		}
	}
	heap.Init(&h)
	var due []Timer
	for len(h) > 0 && len(due) < limit {
		c := h[0]
		due = append(due, Timer{KeyGroup: c.kg, Key: bytes.Clone(c.it.Key()[14:]), Time: c.time})
		if c.step(); !c.valid || c.time > upTo {
			if c.valid {
				next = min(next, c.time)
			}
			heap.Pop(&h)
			c.close()
		} else {
			heap.Fix(&h, 0)
		}
	}
	if len(h) > 0 {
		next = math.MinInt64 // more are due: do not skip the next call
	}
	for _, c := range h {
		c.close()
	}
	h = nil
	for _, d := range due {
		var prefix [6]byte
		binary.BigEndian.PutUint16(prefix[:2], d.KeyGroup)
		binary.BigEndian.PutUint32(prefix[2:], t.si.ID)
		k := binary.BigEndian.AppendUint64(prefix[:], uint64(d.Time)^(1<<63))
		k = append(k, d.Key...)
		t.b.delete(k)
		t.resume[int(d.KeyGroup)-t.b.keyGroups.Start] = k
		t.resumeTime = max(t.resumeTime, d.Time)
	}
	t.next, t.known = next, true
	return due
}

// cursor iterates one key group's timers.
type cursor struct {
	kg     uint16
	it     *pebble.Iterator
	b      *Backend
	valid  bool
	time   int64
	closed bool
}

// openCursor opens key group kg's timers, after the key after if set.
func (t *Timers) openCursor(kg uint16, after []byte) (*cursor, error) {
	var prefix [6]byte
	binary.BigEndian.PutUint16(prefix[:2], kg)
	binary.BigEndian.PutUint32(prefix[2:], t.si.ID)
	lower := prefix[:]
	upper := prefixEnd(lower)
	if after != nil {
		lower = append(slices.Clip(after), 0) // the smallest key after it
	}
	it, err := t.b.batch.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, fmt.Errorf("statebackend: read %q: %w", t.b.dir, err)
	}
	t.b.openIters++
	c := &cursor{kg: kg, it: it, b: t.b}
	c.valid = it.First()
	c.decode()
	return c, nil
}

func (c *cursor) decode() {
	for c.valid && len(c.it.Key()) < 14 {
		c.valid = c.it.Next()
	}
	if c.valid {
		c.time = int64(binary.BigEndian.Uint64(c.it.Key()[6:14]) ^ (1 << 63))
	}
}

func (c *cursor) step() {
	c.valid = c.it.Next()
	c.decode()
}

func (c *cursor) close() {
	if c.closed {
		return
	}
	c.closed = true
	c.b.openIters--
	if err := c.it.Close(); err != nil {
		c.b.setErr(fmt.Errorf("statebackend: read %q: %w", c.b.dir, err))
	}
}

type timerHeap []*cursor

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if h[i].time != h[j].time {
		return h[i].time < h[j].time
	}
	return h[i].kg < h[j].kg
}
func (h timerHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)   { *h = append(*h, x.(*cursor)) }
func (h *timerHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}

// Next returns the earliest timer's time (ok false: none is set). It may
// be earlier than the earliest timer after a Delete; Due then returns
// nothing and Next is exact again.
func (t *Timers) Next() (int64, bool) {
	if !t.known {
		t.Due(math.MinInt64, 0)
	}
	return t.next, t.next != math.MaxInt64
}
