package sinks

import (
	"errors"
	"fmt"

	"github.com/weirstream/weir"
)

// ErrConfig marks errors caused by an invalid sink configuration or subtask
// description; check with errors.Is.
var ErrConfig = errors.New("sinks: invalid config")

// configErrorf returns an error wrapping ErrConfig.
func configErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)
}

// checkInfo validates the subtask position a sink names its output by.
func checkInfo(sink string, info weir.SubtaskInfo) error {
	if info.Parallelism < 1 {
		return configErrorf("%s: parallelism must be >= 1, got %d", sink, info.Parallelism)
	}
	if info.Index < 0 || info.Index >= info.Parallelism {
		return configErrorf("%s: subtask index %d out of range [0, %d)", sink, info.Index, info.Parallelism)
	}
	return nil
}
