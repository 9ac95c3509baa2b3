// Package statebackend holds the keyed state of one stateful subtask in one
// Pebble instance (github.com/cockroachdb/pebble/v2) with the WAL disabled:
// durability comes from checkpoints, not from the WAL.
//
// # Use
//
// The runtime opens one Backend per stateful subtask, registers the
// operator's states once, and before handing each record to user code sets
// the record's key:
//
//	b, err := statebackend.Open(dir, statebackend.Options{
//		MaxParallelism: 128,
//		KeyGroups:      statebackend.RangeForSubtask(128, parallelism, index),
//	})
//	n, err := statebackend.NewValue(b, "count/n", statebackend.MustCodecFor[int64]())
//	...
//	b.SetCurrentKey(statebackend.KeyGroupOf(key, 128), key)
//	n.Set(n.Get() + 1)
//	...
//	if err := b.Err(); err != nil { /* fail the task */ }
//
// A Backend and its state handles are used by one goroutine; nothing locks.
//
// # Key groups
//
// A key's key group is HashKey(key) % MaxParallelism, where HashKey is FNV-1a
// 64 followed by the murmur3 fmix64 finalizer. Subtask i of parallelism p owns
// the contiguous range RangeForSubtask(maxP, p, i) (Flink's formula), so
// rescaling moves whole key-group ranges. Both functions are part of the state
// format and must never change.
//
// # Key layout
//
// Every stored key starts with its key group, so the state of a key-group
// range, for all states, is one contiguous Pebble key range
// (KeyGroupRange.KeyBounds):
//
//	 2 bytes BE    4 bytes BE      uvarint           key codec bytes   map key codec bytes
//	+-----------+---------------+-----------------+-----------------+------------------+
//	| key group | state id      | len(current key)| current key     | map key          |
//	|           | StateID(name) |                 |                 | (map state only) |
//	+-----------+---------------+-----------------+-----------------+------------------+
//	|<- a key-group range is a contiguous key range
//	|<------------- prefix of one key's entries in one state ------>|
//
// In detail:
//
//   - The state id is the high 32 bits of HashKey(state name). Two names with
//     the same id are rejected at registration (ErrIncompatibleState).
//   - The current key is length-prefixed, so the entries of key "ab" are never
//     inside the prefix range of key "a": map iteration and Clear of one key
//     never touch another key's entries.
//   - Value, list and reducing state store one entry at the prefix. Map state
//     stores one entry per map key, the encoded map key appended to the
//     prefix, so iteration follows the byte order of encoded map keys.
//   - List values are the concatenation of [uvarint length][element] records.
//     Add writes a Pebble merge operand with pebble.DefaultMerger (plain
//     concatenation), so adding never reads the list.
//
// # Writes and reads
//
// Value and reducing state go through a write-back cache (a Go map from
// stored key to encoded value, Options.ValueCacheSize, CLOCK-like eviction).
// Every other write goes into an indexed Pebble batch that is committed
// (without sync) every Options.CommitEvery writes, at 4 MiB and on Flush;
// reads go through the batch and then the DB, so they always see earlier
// writes. Flush writes the cache's dirty entries into the batch and commits
// it: call it before reading DB() directly. Iteration (Map.All,
// List.All) works on a view taken when it starts; writes made while
// iterating are applied but not seen by that iteration.
//
// The cache is there because Pebble alone cannot reach the target of 250K
// keyed get+set updates per second per core with 1M distinct keys: every
// update appends a version to the memtable skiplist, and each get searches
// the memtables and then sstables whose blocks a random key order keeps
// evicting. BenchmarkValueCountUpdate (1M keys, pseudo-random order, steady
// state, 2-core VM) measured:
//
//	default (value cache)                     340 ns/update  (cold first touch of each key: 1.9 µs)
//	Pebble only, batch commit every 1..16384  7.7-9.4 µs
//	Pebble only, db.Set(NoSync), no batch     7.6 µs
//	Pebble only, 4 / 64 MB memtable           7.5 / 46 µs
//	Pebble only, 8 / 256 MB block cache       33 / 10.7 µs
//	value cache smaller than the key set      10.5 µs (32 MB for ~120 MB of keys)
//
// so the value cache must hold the keys updated in a hot working set; a miss
// costs a Pebble read. Map and list state bypass the cache (they are
// iterated, which would need an ordered cache); a random Map.Put costs ~0.5
// µs and a List.Add ~1.7 µs.
//
// # Snapshots
//
// A checkpoint's snapshot has a synchronous part on the task goroutine and an
// asynchronous part on any other goroutine (snapshot.go, following
// docs/snapshot-freeze.md):
//
//	               Snapshot(n)                      Persist(ctx, dir) returns
//	+--------+  at the barrier  +-----------------+  (Done() closed)  +------+
//	| normal | ---------------> | holding         | ----------------> | done |
//	+--------+                  | writes stay in  |                   +------+
//	    ^                       | the batch       |                      |
//	    |                       +-----------------+                      |
//	    |                          |  Abort(s): cancels Persist,         |
//	    |                          |  waits for it                       |
//	    +--------------------------+-------------------------------------+
//	      Release(s) / Abort(s): frozen entries are in Pebble, the held
//	      batch is committed
//
// In detail:
//
//   - Backend.Snapshot(n) commits the indexed batch (at most CommitEvery
//     writes), hands the value cache's dirty list to the Snapshot and starts
//     a new cache epoch (a pointer swap), records States(), and enters
//     holding mode: until the snapshot ends nothing is committed to Pebble,
//     so no write made after the barrier can reach its files, whatever Pebble
//     flushes meanwhile. Measured: 5 µs with 1M dirty entries
//     (BenchmarkSnapshot).
//   - The frozen entries belong to the Snapshot: the task goroutine never
//     writes them again. Its first touch of a frozen key copies the entry
//     (copy-on-write, once per key per checkpoint: ~500 instead of ~340 ns
//     per update); evicting a frozen entry writes its value into the held
//     batch. Superseded frozen entries stay in memory until the snapshot
//     ends.
//   - Without Options.Changelog, Snapshot.Persist(ctx, dir) writes the
//     frozen entries to Pebble in its own batches (the DB is safe for
//     concurrent use; the task's batch is never touched), flushes the
//     memtables, makes dir a Pebble checkpoint (hard links to the tables,
//     copies of MANIFEST and OPTIONS) and writes SnapshotMetaFile
//     (checkpoint id, key groups, States()) into it. It returns the files,
//     each FileShared (.sst, .blob: immutable, upload once) or FilePrivate.
//     Measured: 1.2 s for 1M frozen entries (about 20 MB) on the 2-core VM,
//     most of it writing the entries.
//   - With Options.Changelog (the engine's choice under checkpoints) the
//     frozen entries are those changed since the last barrier, and Persist
//     writes them, after the state writes committed since then, into a
//     change log (FileShared, changelog-<n>.wlog); dir links the last base
//     (a Pebble checkpoint plus a log of the dirty entries) and every log
//     since. See changelog.go and docs/changelog-state.md.
//   - The task goroutine polls Snapshot.Done between batches and calls
//     Backend.Release, which commits the held batch (after writing the
//     frozen entries itself if Persist failed before it did). Abort ends a
//     snapshot at any point; Close aborts one in flight.
//   - At most one snapshot is in flight: Snapshot fails with
//     ErrSnapshotInFlight, which the engine turns into a decline.
//   - HeldBytes is the size of the held batch (write rate × Persist time);
//     the engine applies back-pressure above a bound.
//
// OpenFromCheckpoint(dir, checkpointDir, opts) restores: it hard-links the
// tables of checkpointDir into the empty dir (copies across file systems),
// copies the private files (Pebble appends to its MANIFEST, so it must not be
// shared), opens it and replays the change logs, if any; registrations are then checked against the stored
// states (RestoredStates). The working directory of a failed run is never
// reused: it holds writes made after the checkpoint. Local recovery instead
// reuses the local checkpoint directory that Persist wrote, when
// SnapshotFiles.Verify finds exactly the files and sizes of the manifest's
// state handle; otherwise the engine downloads the files into a new
// directory first.
//
// # Errors
//
// State accessors return no error, so user code reads like
// n.Set(n.Get()+1). A storage error, a stored value that does not decode, use
// without a current key (ErrNoCurrentKey), a key group outside the backend's
// range (ErrKeyGroupRange) or use after Close (ErrClosed) is recorded in the
// backend: Err returns the first one, for good. The failing accessor returns
// zero values (Get returns the zero V, Lookup false, iteration stops). The
// runtime checks Err after each batch of records and fails the task, which
// then restarts from the last checkpoint, so no state written after the first
// error is ever committed by a checkpoint. Registration and Open return their
// errors. The only panic is a failing encoding.BinaryMarshaler inside the
// general codec (Append has no error result).
//
// # Codecs
//
// CodecFor picks a codec by type:
//
//   - bool, int*, uint*, float32/64 (and named types over them): fixed width,
//     big-endian. Signed integers flip the sign bit; floats flip the sign bit
//     of positive numbers and all bits of negative ones. Byte order is
//     therefore numeric order, so map state with numeric keys iterates in
//     numeric order: -Inf < negative < -0 < +0 < positive < +Inf. NaNs
//     round-trip bit for bit; a NaN with the sign bit clear (math.NaN())
//     sorts after +Inf, one with it set before -Inf. Unlike Go maps, map state
//     compares keys by encoding: -0 and +0 are two keys, and a NaN key can be
//     read back. int and uint always take 8 bytes.
//   - string and []byte: the raw bytes (a decoded []byte is never nil).
//   - everything else: a compact binary format compiled per type by
//     reflection (see codec_binary.go): structs by exported fields, slices,
//     arrays, maps (sorted, so encodings are deterministic), pointers,
//     time.Time (instant and UTC/Local/fixed offset; zone names are not kept)
//     and encoding.BinaryMarshaler types. Channels, functions and interfaces
//     are rejected, naming the type and field. Its byte order carries no
//     meaning. Pointer cycles are not supported.
//
// A codec's Fingerprint describes its encoding ("int64/be", "bin1/<hash of
// the schema>"); registering a state name again with another kind or codec
// fails, and snapshot code stores Backend.States to check restored state.
// A codec's Schema (SchemaCodec: every codec of CodecFor, optional for
// others) describes its wire format; snapshots record the schemas of every
// state's codecs and of the operator's key (Options.KeySchema), from which
// ParseSchema and Schema.AppendJSON decode stored bytes into JSON without
// the job's Go types (schema.go, weir state export).
//
// The general codec was chosen by measurement (codec_bench_test.go, a
// Nexmark bid of 7 fields): encode 112 ns / 1 alloc, decode 167 ns / 3
// allocs, against encoding/json 702 ns / 3 and 2500 ns / 7, and
// encoding/gob (one value per stream, as state needs) 3250 ns / 20 and
// 13058 ns / 182. Append of a non-built-in type allocates one copy of the
// value (it is passed to compiled encoders by pointer).
package statebackend
