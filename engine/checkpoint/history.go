package checkpoint

// historySize is how many finished checkpoints the coordinator remembers,
// to answer late acks with Discarded or Duplicate rather than Unknown.
const historySize = 64

// history remembers how recent checkpoints ended. Older ones are forgotten
// and answered Unknown, which is always safe: Unknown never tells the
// caller to delete anything.
type history struct {
	ring [historySize]struct {
		id        ID
		completed bool
	}
	next int
}

func (h *history) add(id ID, completed bool) {
	h.ring[h.next].id, h.ring[h.next].completed = id, completed
	h.next = (h.next + 1) % historySize
}

// lookup returns whether id completed, and whether it is remembered at all.
func (h *history) lookup(id ID) (completed, ok bool) {
	for _, e := range h.ring {
		if e.id == id && id != 0 {
			return e.completed, true
		}
	}
	return false, false
}
