package checkpoint

import (
	"fmt"
	"strconv"
	"strings"
)

// ID identifies a checkpoint. IDs are assigned by the coordinator, start at
// 1 and strictly increase over the life of a job, across restarts: an id is
// never reused, even for a checkpoint that was aborted. ID 0 means "none".
type ID uint64

// TaskID names one subtask of one vertex (operator chain) of the job graph.
type TaskID struct {
	Vertex  string
	Subtask int
}

func (t TaskID) String() string { return t.Vertex + "/" + strconv.Itoa(t.Subtask) }

// Less orders task ids by vertex, then subtask.
func (t TaskID) Less(o TaskID) bool {
	if t.Vertex != o.Vertex {
		return t.Vertex < o.Vertex
	}
	return t.Subtask < o.Subtask
}

// ParseTaskID parses the "vertex/subtask" form printed by TaskID.String.
func ParseTaskID(s string) (TaskID, error) {
	i := strings.LastIndexByte(s, '/')
	if i <= 0 {
		return TaskID{}, fmt.Errorf("checkpoint: task id %q is not vertex/subtask", s)
	}
	n, err := strconv.Atoi(s[i+1:])
	if err != nil || n < 0 {
		return TaskID{}, fmt.Errorf("checkpoint: task id %q has a bad subtask", s)
	}
	return TaskID{Vertex: s[:i], Subtask: n}, nil
}

// Kind says why a checkpoint was taken.
type Kind uint8

const (
	// Periodic checkpoints are triggered by the interval timer.
	Periodic Kind = iota
	// Manual checkpoints are requested explicitly (an operator, an API).
	Manual
	// Savepoint is a manual checkpoint the user intends to keep.
	Savepoint
	// Final is the last checkpoint of a bounded job, triggered once every
	// source finished, so that sinks commit the tail of the output.
	Final
)

func (k Kind) String() string {
	switch k {
	case Periodic:
		return "periodic"
	case Manual:
		return "manual"
	case Savepoint:
		return "savepoint"
	case Final:
		return "final"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}
