// Package integration holds end-to-end tests: they build the example job
// binaries and run them as real processes — exit codes, signals, output
// files, state-directory locking — and, in later steps, against a real
// Apache Kafka broker and a real S3 server, with crash tests that kill
// processes with SIGKILL.
package integration
