// Package storage is weir's checkpoint storage: a small BlobStore contract
// (local directory, S3, in memory), the only owner of stored object names,
// and the manifest that commits a checkpoint.
//
// # Object layout
//
// All names are '/'-separated and relative to the store's root (see ValidName):
//
//	shared/<sha256-hex>-<size>.sst                 an immutable state file (an SSTable or a change log), referenced by many checkpoints
//	chk-<id>/<escaped-operator-uid>/<subtask>/<file>  a private file of one checkpoint
//	chk-<id>/MANIFEST                              the commit point of checkpoint <id>
//
// <id> is the checkpoint id as 20 decimal digits, so lexical order is numeric
// order. Shared names are content addresses (SHA-256 plus size): the same
// bytes always get the same name, so a retried upload is idempotent and a
// file uploaded once is reused by later checkpoints, and different bytes
// never share a name — unlike the local Pebble file number, which a restored
// Pebble may reuse for different contents. Only this package builds and
// parses names (SharedObject, PrivateObject, ManifestObject, ParseObject).
//
// # Commit protocol
//
//	tasks:        upload shared SSTs (skip those present) and private files, ack
//	coordinator:  all acks in → WriteManifest (PutIfAbsent chk-<id>/MANIFEST)
//	                  ok        → checkpoint <id> is complete; notify tasks, sinks commit
//	                  ErrExists → another coordinator committed <id>; this one must stop
//
// The manifest is written last and atomically (Local: temp file, fsync,
// link, fsync directory; S3: conditional put). A chk-<id> directory without a
// valid manifest is not a checkpoint. Recovery (FindRestorePoint, built on the
// pure ChooseRestore) takes the newest checkpoint whose manifest decodes and
// whose objects all exist with the recorded size and CRC32C, and falls back to
// older ones; when checkpoints exist but none is valid it fails rather than
// start empty.
//
// Garbage collection (Collect, the pure core; PlanGC and ExecuteGC for the
// operator's command) deletes the manifests of dropped checkpoints first,
// then their private files, a shared object only when no retained manifest
// references it, and orphans of uploads that never committed once they are
// older than a grace period. Every deletion carries its reason.
//
// # Testing
//
// Inject wraps a store to fail chosen operations; NewLogging records every
// call for golden tests; package storagetest holds the conformance suite that
// every BlobStore implementation runs.
package storage
