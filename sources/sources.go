package sources

import (
	"errors"
	"fmt"

	"github.com/weirstream/weir"
)

// ErrConfig marks errors caused by an invalid source configuration or
// subtask description; check with errors.Is.
var ErrConfig = errors.New("sources: invalid config")

// defaultBatch is the batch size used when Read is handed a buffer without
// spare capacity.
const defaultBatch = 256

// configErrorf returns an error wrapping ErrConfig, for example
// "sources: invalid config: SequenceConfig.Keys must be > 0, got 0".
func configErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)
}

// checkInfo validates the subtask position that a source splits its input by.
func checkInfo(source string, info weir.SubtaskInfo) error {
	if info.Parallelism < 1 {
		return configErrorf("%s: parallelism must be >= 1, got %d", source, info.Parallelism)
	}
	if info.Index < 0 || info.Index >= info.Parallelism {
		return configErrorf("%s: subtask index %d out of range [0, %d)", source, info.Index, info.Parallelism)
	}
	return nil
}

// space returns how many records can be appended to buf in this Read.
func space[T any](buf []T) int {
	if n := cap(buf) - len(buf); n > 0 {
		return n
	}
	return defaultBatch
}
