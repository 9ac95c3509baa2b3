package statebackend

import (
	"encoding/binary"
	"fmt"
)

// DefaultMaxParallelism is the number of key groups a job uses unless told
// otherwise. It is fixed for the life of the job's state.
const DefaultMaxParallelism = 128

// UpperBoundMaxParallelism is the largest supported number of key groups (as
// in Flink). Key groups are stored as 2 bytes, so it must stay below 1<<16.
const UpperBoundMaxParallelism = 1 << 15

// FNV-1a 64 parameters.
const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// HashKey returns the stable 64-bit hash of an encoded key: FNV-1a 64 over the
// bytes followed by the murmur3 fmix64 finalizer, which spreads FNV's weak low
// bits over the whole word. It is part of the state format: the key group of
// every stored key derives from it, so it must never change.
func HashKey(key []byte) uint64 {
	h := uint64(fnvOffset64)
	for _, c := range key {
		h ^= uint64(c)
		h *= fnvPrime64
	}
	return fmix64(h)
}

func fmix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// KeyGroupOf returns the key group of an encoded key: HashKey(key) modulo
// maxParallelism. It panics if maxParallelism is not in
// [1, UpperBoundMaxParallelism].
func KeyGroupOf(key []byte, maxParallelism int) uint16 {
	checkMaxParallelism(maxParallelism)
	return uint16(HashKey(key) % uint64(maxParallelism))
}

// KeyGroupRange is an inclusive range of key groups [Start, End], as in Flink.
// A range with End < Start is empty.
type KeyGroupRange struct{ Start, End int }

// Contains reports whether kg lies in the range.
func (r KeyGroupRange) Contains(kg int) bool { return r.Start <= kg && kg <= r.End }

// Len returns the number of key groups in the range.
func (r KeyGroupRange) Len() int {
	if r.End < r.Start {
		return 0
	}
	return r.End - r.Start + 1
}

// String returns e.g. "key groups [0, 63]".
func (r KeyGroupRange) String() string {
	if r.Len() == 0 {
		return "key groups []"
	}
	return fmt.Sprintf("key groups [%d, %d]", r.Start, r.End)
}

// KeyBounds returns the Pebble key span [lower, upper) that holds every state
// entry of the key groups in r, for every state: key groups are the leading
// two bytes of each stored key, so a key-group range is one contiguous key
// range. Snapshot and rescaling code use it to export, ingest or delete the
// state of a range. Both slices are nil for an empty range.
func (r KeyGroupRange) KeyBounds() (lower, upper []byte) {
	if r.Len() == 0 {
		return nil, nil
	}
	lower = binary.BigEndian.AppendUint16(nil, uint16(r.Start))
	if r.End+1 > 0xffff {
		// Only reachable beyond UpperBoundMaxParallelism; an upper bound
		// that sorts after every key group.
		return lower, []byte{0xff, 0xff, 0xff}
	}
	return lower, binary.BigEndian.AppendUint16(nil, uint16(r.End+1))
}

// RangeForSubtask returns the key groups owned by subtask index of an operator
// with the given parallelism (Flink's computeKeyGroupRangeForOperatorIndex).
// The ranges of subtasks 0..parallelism-1 are contiguous, disjoint, in order,
// and cover [0, maxParallelism-1]. It panics on arguments out of range.
func RangeForSubtask(maxParallelism, parallelism, index int) KeyGroupRange {
	checkParallelism(maxParallelism, parallelism)
	if index < 0 || index >= parallelism {
		panic(fmt.Sprintf("statebackend: subtask index %d out of range [0, %d)", index, parallelism))
	}
	return KeyGroupRange{
		Start: (index*maxParallelism + parallelism - 1) / parallelism,
		End:   ((index+1)*maxParallelism - 1) / parallelism,
	}
}

// SubtaskForKeyGroup returns the index of the subtask that owns key group kg
// (Flink's computeOperatorIndexForKeyGroup). It agrees with RangeForSubtask.
// It panics on arguments out of range.
func SubtaskForKeyGroup(maxParallelism, parallelism, kg int) int {
	checkParallelism(maxParallelism, parallelism)
	if kg < 0 || kg >= maxParallelism {
		panic(fmt.Sprintf("statebackend: key group %d out of range [0, %d)", kg, maxParallelism))
	}
	return kg * parallelism / maxParallelism
}

func checkMaxParallelism(maxParallelism int) {
	if maxParallelism < 1 || maxParallelism > UpperBoundMaxParallelism {
		panic(fmt.Sprintf("statebackend: max parallelism %d out of range [1, %d]", maxParallelism, UpperBoundMaxParallelism))
	}
}

func checkParallelism(maxParallelism, parallelism int) {
	checkMaxParallelism(maxParallelism)
	if parallelism < 1 || parallelism > maxParallelism {
		panic(fmt.Sprintf("statebackend: parallelism %d out of range [1, max parallelism %d]", parallelism, maxParallelism))
	}
}
