package kafka

import (
	"cmp"
	"slices"
)

// Record is one Kafka record as a source reads it. Key, Value and the
// headers' values are the reader's own copies.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Time      int64 // milliseconds since the epoch (the record's timestamp)
	Key       []byte
	Value     []byte
	Headers   []Header
}

// fetchedBatch is one record batch of a fetch response, decoded.
type fetchedBatch struct {
	base          int64
	last          int64 // offset of the last record; base when it has none
	producerID    int64
	transactional bool
	control       bool
	abortMarker   bool // a control batch that ends a transaction with an abort
	records       []Record
}

// abortedTxn is an entry of a fetch response's aborted-transactions list:
// the producer's transaction that starts at firstOffset was aborted.
type abortedTxn struct {
	producerID  int64
	firstOffset int64
}

// readCommitted filters the batches of one partition's fetch response as
// the Java consumer does under isolation.level=read_committed, which
// kafka-go's reader does not (kafka-go issue #1332): the broker returns
// records up to the last stable offset, including those of aborted
// transactions, and names the aborted transactions that overlap the
// response. Walking the batches in offset order, a producer enters the
// aborted set when a batch at or after its aborted transaction's first
// offset is reached, its transactional batches are dropped while it is in
// the set, and its abort marker takes it out again. Control batches (commit
// and abort markers) are never records. Records before from (a batch may
// start before the offset asked for) are dropped too.
//
// It appends the records to keep to out and returns it with the offset to
// fetch next: after the last batch, dropped or not.
func readCommitted(batches []fetchedBatch, aborted []abortedTxn, from int64, out []Record) ([]Record, int64) {
	next := from
	if len(batches) == 0 {
		return out, next
	}
	var inAborted map[int64]bool // nil, and nothing allocated, without aborted transactions
	if len(aborted) > 0 {
		aborted = slices.Clone(aborted)
		slices.SortFunc(aborted, func(a, b abortedTxn) int { return cmp.Compare(a.firstOffset, b.firstOffset) })
		inAborted = map[int64]bool{}
	}
	for i := range batches {
		b := &batches[i]
		if b.last+1 > next {
			next = b.last + 1
		}
		if b.transactional {
			for len(aborted) > 0 && aborted[0].firstOffset <= b.last {
				inAborted[aborted[0].producerID] = true
				aborted = aborted[1:]
			}
			if b.control {
				if b.abortMarker {
					delete(inAborted, b.producerID)
				}
				continue
			}
			if inAborted[b.producerID] {
				continue
			}
		}
		if b.control {
			continue
		}
		for _, r := range b.records {
			if r.Offset >= from {
				out = append(out, r)
			}
		}
	}
	return out, next
}
