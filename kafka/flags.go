package kafka

import (
	"flag"
	"fmt"
	"time"
)

// SourceFlags are the command-line flags of a Kafka source, for job
// binaries: --bounded, --group and --start.
type SourceFlags struct {
	bounded bool
	group   string
	start   string
}

// RegisterSourceFlags declares the source flags on fs.
func RegisterSourceFlags(fs *flag.FlagSet) *SourceFlags {
	f := &SourceFlags{}
	fs.BoolVar(&f.bounded, "bounded", false, "stop at the end the input topic had when the job started")
	fs.StringVar(&f.group, "group", "", "consumer group: the offsets of completed checkpoints are committed to it (for lag tools), and --start group starts from its offsets")
	fs.StringVar(&f.start, "start", "earliest", "where partitions start without a checkpoint: earliest, latest, group (the group's offsets, else earliest), or an RFC 3339 time")
	return f
}

// Options returns the source options the flags describe.
func (f *SourceFlags) Options() ([]SourceOption, error) {
	var opts []SourceOption
	if f.bounded {
		opts = append(opts, Bounded())
	}
	if f.group != "" {
		opts = append(opts, Group(f.group), CommitOffsets())
	}
	switch f.start {
	case "earliest":
	case "latest":
		opts = append(opts, StartFrom(Latest()))
	case "group":
		if f.group == "" {
			return nil, fmt.Errorf("--start group needs --group")
		}
		opts = append(opts, StartFrom(GroupOffsets(false)))
	default:
		t, err := time.Parse(time.RFC3339, f.start)
		if err != nil {
			return nil, fmt.Errorf("--start %q: want earliest, latest, group or an RFC 3339 time", f.start)
		}
		opts = append(opts, StartFrom(AtTime(t)))
	}
	return opts, nil
}

// SinkFlags are the command-line flags of a Kafka sink, for job binaries:
// --delivery, --transactional-id-prefix and --transaction-timeout.
type SinkFlags struct {
	delivery string
	prefix   string
	timeout  time.Duration
}

// RegisterSinkFlags declares the sink flags on fs.
func RegisterSinkFlags(fs *flag.FlagSet) *SinkFlags {
	f := &SinkFlags{}
	fs.StringVar(&f.delivery, "delivery", "exactly-once", "Kafka output: exactly-once (transactions committed with each checkpoint) or at-least-once")
	fs.StringVar(&f.prefix, "transactional-id-prefix", "", "prefix of the exactly-once sink's transactional ids, PREFIX-OPERATOR-SUBTASK-K (default: the job's name); jobs writing to one cluster need different ones")
	fs.DurationVar(&f.timeout, "transaction-timeout", 15*time.Minute, "how long the brokers keep an exactly-once transaction open; at most their transaction.max.timeout.ms, above --checkpoint-interval plus --restart-delay")
	return f
}

// Options returns the sink options the flags describe.
func (f *SinkFlags) Options() ([]SinkOption, error) {
	d, err := ParseDelivery(f.delivery)
	if err != nil {
		return nil, fmt.Errorf("--delivery: %w", err)
	}
	if f.timeout <= 0 {
		return nil, fmt.Errorf("--transaction-timeout %v: must be positive", f.timeout)
	}
	opts := []SinkOption{WithDelivery(d), TransactionTimeout(f.timeout)}
	if f.prefix != "" {
		opts = append(opts, TransactionalIDPrefix(f.prefix))
	}
	return opts, nil
}
