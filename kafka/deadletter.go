package kafka

import (
	"strconv"

	"github.com/weirstream/weir"
)

// DeadLetter is a record that the source's Deserializer rejected, with
// the reason.
type DeadLetter struct {
	Record Record
	Err    string
}

// Headers of a dead letter, added to the original record's own.
const (
	HeaderError     = "weir.error"
	HeaderTopic     = "weir.topic"
	HeaderPartition = "weir.partition"
	HeaderOffset    = "weir.offset"
)

// DeadLetterMessages writes dead letters as the original record (key,
// value, headers and timestamp) with the headers weir.error, weir.topic,
// weir.partition and weir.offset added.
func DeadLetterMessages() Serializer[DeadLetter] {
	return func(d DeadLetter) (Message, error) {
		r := d.Record
		h := make([]Header, 0, len(r.Headers)+4)
		h = append(h, r.Headers...)
		h = append(h,
			Header{Key: HeaderError, Value: []byte(d.Err)},
			Header{Key: HeaderTopic, Value: []byte(r.Topic)},
			Header{Key: HeaderPartition, Value: strconv.AppendInt(nil, int64(r.Partition), 10)},
			Header{Key: HeaderOffset, Value: strconv.AppendInt(nil, r.Offset, 10)},
		)
		return Message{Key: r.Key, Value: r.Value, Headers: h, Time: r.Time}, nil
	}
}

// item is a record of a source with dead letters: a value or a dead letter.
type item[T any] struct {
	v    T
	dead *DeadLetter
}

// FromWithDeadLetters adds src to the job like weir.From, but the records
// its Deserializer rejects come out of the second stream, with the reason,
// instead of failing the job. Write them to a dead-letter topic with
// NewSink(conn, topic, DeadLetterMessages(), WithDelivery(ExactlyOnce)):
// its transactions commit with the checkpoints that hold the source's
// offsets, so each bad record reaches the dead-letter topic exactly once,
// together with the job's output.
func FromWithDeadLetters[T any](job *weir.Job, name string, src *Source[T], opts ...weir.OperatorOption) (weir.Stream[T], weir.Stream[DeadLetter]) {
	decode := src.decode
	both := &Source[item[T]]{conn: src.conn, topic: src.topic, cfg: src.cfg, decode: func(r *Record) (item[T], error) {
		v, err := decode(r)
		if err != nil {
			// The record's bytes point into the fetch buffer; a dead
			// letter may outlive it, which is fine: it keeps the buffer.
			return item[T]{dead: &DeadLetter{Record: *r, Err: err.Error()}}, nil
		}
		return item[T]{v: v}, nil
	}}
	s := weir.From(job, name, weir.Source[item[T]](both), opts...)
	records := weir.FlatMap(s, name+"-records", func(it item[T], out weir.Emitter[T]) {
		if it.dead == nil {
			out.Emit(it.v)
		}
	})
	dead := weir.FlatMap(s, name+"-dead-letters", func(it item[T], out weir.Emitter[DeadLetter]) {
		if it.dead != nil {
			out.Emit(*it.dead)
		}
	})
	return records, dead
}
