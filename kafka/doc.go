// Package kafka reads from and writes to Apache Kafka: a partitioned source
// whose offsets live in weir's checkpoints, and a sink that is at least once
// or, with Kafka transactions, exactly once. It is built on
// github.com/segmentio/kafka-go's protocol layer, and adds what kafka-go
// lacks.
//
//	conn := kafka.Conn{Brokers: []string{"127.0.0.1:9092"}}
//	lines := weir.From(job, "lines", kafka.NewSource(conn, "text", kafka.Strings()))
//	...
//	weir.To(counts, "out", kafka.NewSink(conn, "counts", kafka.JSONValues(key),
//		kafka.WithDelivery(kafka.ExactlyOnce)))
//
// # Source
//
// Partitions are assigned to subtasks round robin in partition order, so a
// run at the same parallelism reads the same partitions in the same
// subtasks. Each subtask fetches its partitions from their leaders and
// returns their records; at a checkpoint barrier its position (the next
// offset of each partition, and its newest timestamp) goes into the
// checkpoint, and a restored subtask resumes exactly there. Group offsets
// are never needed: without a checkpoint a partition starts at the
// earliest record (or Latest, AtTime, GroupOffsets); with CommitOffsets the
// offsets of completed checkpoints are committed to the Group for lag
// tools.
//
// Under read_committed (the default) the source does what the Java
// consumer does and kafka-go's Reader does not (kafka-go issue #1332): it
// drops the records of aborted transactions, using the aborted-transactions
// list of each fetch response, and never returns control records (the
// commit and abort markers). Fetches go over a connection of the source's
// own; record batches are parsed in place, their CRC-32C checked.
//
// EventTime gives each partition its own watermark (newest timestamp minus
// the allowed out-of-orderness); the subtask's is the least of its
// partitions' that are not idle. Bounded ends the source at the end its
// partitions had when it opened, for tests and backfills.
//
// A record the Deserializer rejects fails the job with an error naming
// topic, partition and offset (FailOnBadRecord), is dropped and counted
// (SkipBadRecords), or, with FromWithDeadLetters, comes out of a second
// stream to write to a dead-letter topic.
//
// # Sink
//
// Records go to the partition the Java client's default partitioner picks
// for their key (murmur2), or round robin without a key. AtLeastOnce
// flushes at every checkpoint barrier and waits for the brokers'
// acknowledgement (acks=all). ExactlyOnce writes each checkpoint interval
// in one Kafka transaction per subtask, built from the protocol's own
// requests (InitProducerId, AddPartitionsToTxn, Produce with transactional
// record batches, EndTxn): the transaction is flushed at barrier n and
// committed only once checkpoint n is complete. The checkpoint stores the
// transaction's id, producer id and epoch, so recovery completes a commit
// a crash interrupted and aborts, by fencing, what failed attempts left
// open; see txn.go for why a redone commit is always safe. Transactional
// ids are PREFIX-UID-SUBTASK-K with a per-job prefix (the job's name, or
// TransactionalIDPrefix), so two jobs never fence each other. The
// transaction timeout must outlast a checkpoint interval and a restart; the
// sink checks it at start, fails itself (and so recovers) when a
// transaction reaches half of it uncommitted, and refuses to take a
// transaction older than it for committed.
//
// # Connections
//
// Conn carries the brokers, TLS and SASL (PLAIN, SCRAM-SHA-256,
// SCRAM-SHA-512); RegisterConnFlags gives job binaries the matching flags,
// with secrets from a flag, the environment or a file. Secrets are never
// logged or written into checkpoints. Network errors and broker restarts
// are retried for Conn.RequestTimeout before the job fails (and restarts
// from its checkpoint); an unreachable cluster at start is an error within
// 10 seconds.
package kafka
