package statebackend

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Sentinel errors. Errors returned by this package wrap one of them where one
// applies; check with errors.Is.
var (
	// ErrLocked: the state directory is held by another process or by
	// another open Backend in this process.
	ErrLocked = errors.New("statebackend: state directory is locked")
	// ErrClosed: the Backend was used after Close.
	ErrClosed = errors.New("statebackend: backend closed")
	// ErrIncompatibleState: a state registration conflicts with an earlier
	// one (other kind or codec, or a state id collision).
	ErrIncompatibleState = errors.New("statebackend: incompatible state registration")
	// ErrNoCurrentKey: a state was accessed before SetCurrentKey.
	ErrNoCurrentKey = errors.New("statebackend: no current key")
	// ErrKeyGroupRange: SetCurrentKey was given a key group this backend
	// does not own.
	ErrKeyGroupRange = errors.New("statebackend: key group out of range")
)

// Defaults for the zero fields of Options. Measured with
// BenchmarkValueCountUpdate (see the package documentation).
const (
	DefaultMemTableSize   = 16 << 20
	DefaultCacheSize      = 64 << 20
	DefaultValueCacheSize = 128 << 20
	DefaultCommitEvery    = 1024
	defaultCommitBytes    = 4 << 20
)

// Options configures a Backend. The zero value is valid: one subtask owning
// all DefaultMaxParallelism key groups, with the default Pebble tuning.
type Options struct {
	// MaxParallelism is the number of key groups, in [1,
	// UpperBoundMaxParallelism]. Zero means DefaultMaxParallelism.
	MaxParallelism int
	// KeyGroups are the key groups this subtask owns. If both
	// MaxParallelism and KeyGroups are zero, the backend owns all key groups
	// of DefaultMaxParallelism; otherwise KeyGroups is taken as given and
	// must lie in [0, MaxParallelism-1].
	KeyGroups KeyGroupRange

	// MemTableSize is Pebble's memtable size in bytes (default
	// DefaultMemTableSize). Point reads search every memtable, so larger
	// ones slow read-modify-write state (measured: 4-16 MB 7-8 µs, 32 MB
	// 33 µs, 64 MB 41 µs per uncached update over 1M keys).
	MemTableSize uint64
	// CacheSize is the size of Pebble's block cache in bytes (default
	// DefaultCacheSize). Each Backend has its own cache. Too small a cache
	// for the tables being read thrashes (8 MB: 30 µs per uncached update
	// over 1M keys, 64 MB: 8 µs).
	CacheSize int64
	// ValueCacheSize bounds the write-back cache of value and reducing
	// state, in bytes of keys and values plus ~96 bytes per entry (default
	// DefaultValueCacheSize; negative disables the cache). Hot keys are
	// read and updated in memory and written to Pebble when evicted and on
	// Flush. Size it to hold the keys updated between checkpoints: a miss
	// costs a Pebble read (see doc.go).
	ValueCacheSize int64
	// CommitEvery is the number of writes buffered in the indexed batch
	// before it is committed to Pebble (default DefaultCommitEvery). Reads
	// always see buffered writes.
	CommitEvery int

	// Changelog makes snapshots log the changes since the previous one
	// instead of writing them through Pebble, materializing only now and
	// then (see changelog.go). The engine sets it when checkpoints are on.
	Changelog bool
	// MaxChangelogBytes: with Changelog, a snapshot materializes once the
	// logs written since the last materialization, not counting the log of
	// dirty cache entries it wrote, reach this many bytes (default
	// DefaultMaxChangelogBytes). Restoring replays the dirty entries' log
	// and up to this much more; materializing costs a memtable flush and a
	// log of the dirty cache entries.
	MaxChangelogBytes int64

	// KeySchema is the schema (SchemaOf) of the codec of the current key,
	// the operator's key, recorded in snapshots so that tools without the
	// job's Go types can decode keys (weir state export). Optional.
	KeySchema string

	// FS is the file system Pebble uses; nil means the operating system's.
	// Tests pass vfs.NewMem() or an errorfs wrapper.
	FS vfs.FS
	// Logger receives Pebble's log messages. nil drops informational
	// messages and sends errors to Pebble's default logger (standard error).
	Logger pebble.Logger
}

// openDirs holds the canonical paths of state directories opened by a Backend
// in this process. Pebble's own lock also detects this case, but its error is
// only a message; this makes the check exact.
var openDirs struct {
	mu   sync.Mutex
	dirs map[string]bool
}

// lockedError is returned by Open when dir is held elsewhere.
type lockedError struct {
	dir   string
	cause error
}

func (e *lockedError) Error() string {
	return fmt.Sprintf("statebackend: state directory %q is in use by another job", e.dir)
}

func (e *lockedError) Is(target error) bool { return target == ErrLocked }
func (e *lockedError) Unwrap() error        { return e.cause }

// Backend is the keyed state of one stateful subtask, stored in one Pebble
// instance with the WAL disabled. A Backend is used by one goroutine at a
// time; it does no locking.
//
// Value and reducing state are read and written in a write-back cache; other
// writes go into an indexed Pebble batch that is committed every
// Options.CommitEvery writes and by Flush. Reads go through the cache and the
// batch, so they always see earlier writes; Flush makes everything visible in
// DB() (see the package documentation).
type Backend struct {
	dir     string
	lockKey string // key in openDirs, or "" when not registered
	fs      vfs.FS
	db      *pebble.DB
	lock    *pebble.Lock
	blocks  *pebble.Cache
	// compactions schedules Pebble's compactions (held during a restore).
	compactions *compactionGate

	// vcache is the write-back cache of value state (nil if disabled).
	// last memoizes its most recent entry for the current key (keyGen
	// counts SetCurrentKey calls), so Set after Get does one map lookup.
	vcache  *valueCache
	last    *cacheEntry
	lastGen uint64
	lastID  uint32
	keyGen  uint64

	batch       *pebble.Batch
	commitEvery uint32
	openIters   int // iterators over batch; a commit must not reuse it

	maxParallelism int
	keyGroups      KeyGroupRange
	keySchema      string // Options.KeySchema

	states map[string]*stateInfo
	ids    map[uint32]*stateInfo
	// restored are the states stored in the snapshot this backend was
	// restored from (nil after Open); registrations are checked against it.
	restored map[string]StateInfo

	// snap is the snapshot in flight, if any; while holding, the batch is
	// not committed (see snapshot.go). testNoHold disables holding, for the
	// test that shows it is needed.
	snap       *Snapshot
	holding    bool
	testNoHold bool

	// cl is the changelog state (Options.Changelog).
	cl struct {
		on       bool
		maxBytes int64
		dir      string   // STATE_DIR/weir-changelog
		base     string   // files of the last materialization ("" none)
		baseID   uint64   // its checkpoint
		chain    []logRef // logs since the base, oldest first
		bytes    int64    // size of chain
		w        *logWriter
		seq      int
		// ops are the logged writes not committed yet, as a Pebble batch
		// representation of count operations.
		ops   []byte
		count uint32
		// needBase: the next snapshot materializes (no base yet, a
		// snapshot failed, or restored state is not in the base).
		needBase bool
	}

	// key holds [key group][state id][uvarint len(key)][key] for the
	// current key; accessors patch the state id in place. keyLen is the
	// length of that prefix; map state appends the map key after it.
	key    []byte
	keyLen int
	hasKey bool
	val    []byte // scratch for encoded values

	err    error
	closed bool
}

// Open opens (creating if needed) the state directory dir. It fails with an
// error wrapping ErrLocked and naming dir if another process or another
// Backend of this process holds it.
func Open(dir string, opts Options) (*Backend, error) {
	return open(dir, opts, false)
}

// open opens dir; with holdCompactions, Pebble compacts nothing until
// b.compactions.openGate is called.
func open(dir string, opts Options, holdCompactions bool) (*Backend, error) {
	b := &Backend{dir: dir, fs: opts.FS, compactions: newCompactionGate(!holdCompactions)}
	opts, err := b.applyOptions(opts)
	if err != nil {
		return nil, err
	}
	if err := b.fs.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("statebackend: create state directory %q: %w", dir, err)
	}
	if err := b.acquire(); err != nil {
		return nil, err
	}
	b.blocks = pebble.NewCache(opts.CacheSize)
	po := &pebble.Options{
		FS:                          b.fs,
		Cache:                       b.blocks,
		Lock:                        b.lock,
		DisableWAL:                  true,
		MemTableSize:                opts.MemTableSize,
		MemTableStopWritesThreshold: 4,
		// Checkpoints upload only tables that storage lacks, so every table
		// a compaction rewrites is uploaded again. Every checkpoint flushes
		// the memtable into a new L0 table that, with keys spread over all
		// key groups, overlaps the whole key space. With Pebble's defaults
		// (all data in one level under 64 MB, L0 compacted at 4 tables)
		// every other checkpoint rewrote and uploaded the entire state; a
		// small base level keeps most data in a deeper level that is
		// rewritten piecewise, and compacting L0 at 8 tables halves how often
		// the base level is rewritten. TestIncrementalCheckpointsUploadOnlyNewTables
		// (200K keys, 1% changed per checkpoint): 11.7% of full snapshots
		// uploaded; 52.6% with Pebble's defaults and 22% with the small base
		// level alone (measured by editing these options).
		LBaseMaxBytes:         4 << 20,
		L0CompactionThreshold: 8,
		L0StopWritesThreshold: 64,
		FormatMajorVersion:    pebble.FormatNewest,
		Logger:                opts.Logger,
		// DefaultMerger concatenates merge operands; list state relies on it.
		Merger: pebble.DefaultMerger,
	}
	po.Experimental.CompactionScheduler = b.compactions
	for i := range po.Levels {
		// Point reads of absent keys (every first update of a key) skip
		// tables through the bloom filter.
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(dir, po)
	if err != nil {
		b.blocks.Unref()
		b.release()
		return nil, fmt.Errorf("statebackend: open state directory %q: %w", dir, err)
	}
	b.db = db
	b.batch = db.NewIndexedBatch()
	if opts.ValueCacheSize >= 0 {
		size := opts.ValueCacheSize
		if size == 0 {
			size = DefaultValueCacheSize
		}
		b.vcache = newValueCache(size, opts.Changelog)
	}
	if opts.Changelog {
		b.cl.on, b.cl.maxBytes, b.cl.needBase = true, opts.MaxChangelogBytes, true
		if b.cl.maxBytes <= 0 {
			b.cl.maxBytes = DefaultMaxChangelogBytes
		}
		b.cl.dir = b.fs.PathJoin(dir, changelogDir)
		if err := b.fs.MkdirAll(b.cl.dir, 0o755); err != nil {
			_ = b.Close()
			return nil, fmt.Errorf("statebackend: create %q: %w", b.cl.dir, err)
		}
	}
	return b, nil
}

// applyOptions validates opts, fills in defaults and returns them.
func (b *Backend) applyOptions(opts Options) (Options, error) {
	if b.fs == nil {
		b.fs = vfs.Default
	}
	b.maxParallelism = opts.MaxParallelism
	b.keyGroups = opts.KeyGroups
	b.keySchema = opts.KeySchema
	if b.maxParallelism == 0 {
		b.maxParallelism = DefaultMaxParallelism
		if b.keyGroups == (KeyGroupRange{}) {
			b.keyGroups = KeyGroupRange{0, DefaultMaxParallelism - 1}
		}
	}
	if b.maxParallelism < 1 || b.maxParallelism > UpperBoundMaxParallelism {
		return opts, fmt.Errorf("statebackend: max parallelism %d out of range [1, %d]", b.maxParallelism, UpperBoundMaxParallelism)
	}
	if b.keyGroups.Len() == 0 || b.keyGroups.Start < 0 || b.keyGroups.End >= b.maxParallelism {
		return opts, fmt.Errorf("statebackend: %v invalid for max parallelism %d", b.keyGroups, b.maxParallelism)
	}
	if opts.MemTableSize == 0 {
		opts.MemTableSize = DefaultMemTableSize
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = DefaultCacheSize
	}
	if opts.CommitEvery <= 0 {
		opts.CommitEvery = DefaultCommitEvery
	}
	b.commitEvery = uint32(opts.CommitEvery)
	b.states = map[string]*stateInfo{}
	b.ids = map[uint32]*stateInfo{}
	if opts.Logger == nil {
		opts.Logger = quietLogger{}
	}
	return opts, nil
}

// acquire takes the in-process registration and Pebble's directory lock.
func (b *Backend) acquire() error {
	if b.fs == vfs.Default {
		key, err := filepath.Abs(b.dir)
		if err == nil {
			if k, err := filepath.EvalSymlinks(key); err == nil {
				key = k
			}
		}
		openDirs.mu.Lock()
		if openDirs.dirs == nil {
			openDirs.dirs = map[string]bool{}
		}
		held := openDirs.dirs[key]
		if !held {
			openDirs.dirs[key] = true
		}
		openDirs.mu.Unlock()
		if held {
			return &lockedError{dir: b.dir}
		}
		b.lockKey = key
	}
	lock, err := pebble.LockDirectory(b.dir, b.fs)
	if err != nil {
		b.release()
		if isLockConflict(err) {
			return &lockedError{dir: b.dir, cause: err}
		}
		return fmt.Errorf("statebackend: lock state directory %q: %w", b.dir, err)
	}
	b.lock = lock
	return nil
}

// isLockConflict tells a lock held elsewhere from other failures (such as
// an unwritable directory, which fails before the lock call and is reported as
// an *os.PathError).
func isLockConflict(err error) bool {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return false
	}
	return errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES) ||
		errors.Is(err, syscall.EWOULDBLOCK) ||
		// Pebble's in-process check (a Pebble opened outside this package).
		strings.Contains(err.Error(), "lock held by current process")
}

// release undoes acquire.
func (b *Backend) release() error {
	var err error
	if b.lock != nil {
		err = b.lock.Close()
		b.lock = nil
	}
	if b.lockKey != "" {
		openDirs.mu.Lock()
		delete(openDirs.dirs, b.lockKey)
		openDirs.mu.Unlock()
		b.lockKey = ""
	}
	return err
}

// Close aborts a snapshot in flight (see Abort) and closes Pebble, then
// releases the directory. It does not make state durable, and does not try
// to: writes since the last Flush are dropped (the WAL is disabled, so even
// committed writes still in the memtable would be lost). Durability comes
// from checkpoints, and a run starts from a checkpoint or from empty state,
// never from what a closed backend left behind. Close returns the first
// error it meets; closing twice is a no-op.
func (b *Backend) Close() error {
	if b.closed {
		return nil
	}
	var err error
	if b.snap != nil {
		err = b.Abort(b.snap)
	}
	b.closed = true
	if cerr := b.batch.Close(); err == nil {
		err = cerr
	}
	b.batch = nil
	if b.cl.w != nil {
		b.cl.w.discard()
		b.cl.w = nil
	}
	if cerr := b.db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("statebackend: close state directory %q: %w", b.dir, cerr)
	}
	b.blocks.Unref()
	if rerr := b.release(); err == nil && rerr != nil {
		err = fmt.Errorf("statebackend: unlock state directory %q: %w", b.dir, rerr)
	}
	return err
}

// DB returns the Pebble instance, for snapshot and restore code. Call Flush
// first to see every write.
func (b *Backend) DB() *pebble.DB { return b.db }

// Dir returns the state directory.
func (b *Backend) Dir() string { return b.dir }

// MaxParallelism returns the number of key groups.
func (b *Backend) MaxParallelism() int { return b.maxParallelism }

// KeyGroups returns the key groups this backend owns.
func (b *Backend) KeyGroups() KeyGroupRange { return b.keyGroups }

// Err returns the first error a state accessor met since Open (storage
// failures, values that do not decode, use without a current key or after
// Close). It is sticky: later errors are dropped and it is never reset. The
// runtime checks it after each batch of records and fails the task.
func (b *Backend) Err() error { return b.err }

func (b *Backend) setErr(err error) {
	if b.err == nil {
		b.err = err
	}
}

// Flush writes the dirty entries of the value cache and commits buffered
// writes to Pebble, so that DB() sees them. It returns the commit error, if
// any (also recorded in Err). While a snapshot is in flight (Holding) it
// writes the cache into the held batch and does not commit.
func (b *Backend) Flush() error {
	if b.closed {
		return ErrClosed
	}
	b.flushCache()
	if b.holding {
		return nil
	}
	return b.commit()
}

func (b *Backend) commit() error {
	if b.batch.Empty() {
		return nil
	}
	if err := b.logCommit(); err != nil {
		err = fmt.Errorf("statebackend: %q: %w", b.dir, err)
		b.setErr(err)
		return err
	}
	if err := b.batch.Commit(pebble.NoSync); err != nil {
		err = fmt.Errorf("statebackend: commit to %q: %w", b.dir, err)
		b.setErr(err)
		return err
	}
	if b.openIters > 0 {
		// An iterator still reads the committed batch: leave it to them
		// (the garbage collector frees it) and start a new one.
		b.batch = b.db.NewIndexedBatch()
	} else {
		b.batch.Reset()
	}
	return nil
}

func (b *Backend) maybeCommit() {
	if b.holding {
		return
	}
	if b.batch.Count() >= b.commitEvery || b.batch.Len() >= defaultCommitBytes {
		_ = b.commit() // recorded in Err
	}
}

// SetCurrentKey sets the key that state accessors read and write. kg must be
// KeyGroupOf(key, MaxParallelism()) and lie in KeyGroups(); key is the
// encoded key, copied by the backend.
func (b *Backend) SetCurrentKey(kg uint16, key []byte) {
	if !b.keyGroups.Contains(int(kg)) {
		b.setErr(fmt.Errorf("%w: key group %d not in %v", ErrKeyGroupRange, kg, b.keyGroups))
	}
	k := append(b.key[:0], byte(kg>>8), byte(kg), 0, 0, 0, 0)
	k = binary.AppendUvarint(k, uint64(len(key)))
	k = append(k, key...)
	b.key, b.keyLen, b.hasKey = k, len(k), true
	b.keyGen++
}

// prefix returns [key group][id][current key] in the shared scratch buffer,
// valid until the next accessor call. ok is false (and Err set) if no key is
// set or the backend is closed.
func (b *Backend) prefix(id uint32) (k []byte, ok bool) {
	if !b.hasKey || b.closed {
		if b.closed {
			b.setErr(ErrClosed)
		} else {
			b.setErr(ErrNoCurrentKey)
		}
		return nil, false
	}
	binary.BigEndian.PutUint32(b.key[2:6], id)
	return b.key[:b.keyLen], true
}

// get returns the stored value of key, valid until closer is closed (the
// caller must close it when found is true).
func (b *Backend) get(key []byte) (v []byte, closer io.Closer, found bool) {
	v, closer, err := b.batch.Get(key)
	if err != nil {
		if !errors.Is(err, pebble.ErrNotFound) {
			b.setErr(fmt.Errorf("statebackend: read %q: %w", b.dir, err))
		}
		return nil, nil, false
	}
	return v, closer, true
}

func (b *Backend) closeQuiet(c io.Closer) {
	if err := c.Close(); err != nil {
		b.setErr(fmt.Errorf("statebackend: read %q: %w", b.dir, err))
	}
}

// set, merge and delete write a state's key into the batch and, with a
// changelog, into the next change log.
func (b *Backend) set(key, val []byte) {
	b.logOp(pebble.InternalKeyKindSet, key, val)
	b.batchSet(key, val)
}

func (b *Backend) merge(key, val []byte) {
	b.logOp(pebble.InternalKeyKindMerge, key, val)
	if err := b.batch.Merge(key, val, nil); err != nil {
		b.setErr(fmt.Errorf("statebackend: write %q: %w", b.dir, err))
	}
	b.maybeCommit()
}

func (b *Backend) delete(key []byte) {
	b.logOp(pebble.InternalKeyKindDelete, key, nil)
	b.batchDelete(key)
}

// batchSet and batchDelete write into the batch only.
func (b *Backend) batchSet(key, val []byte) {
	if err := b.batch.Set(key, val, nil); err != nil {
		b.setErr(fmt.Errorf("statebackend: write %q: %w", b.dir, err))
	}
	b.maybeCommit()
}

func (b *Backend) batchDelete(key []byte) {
	if err := b.batch.Delete(key, nil); err != nil {
		b.setErr(fmt.Errorf("statebackend: write %q: %w", b.dir, err))
	}
	b.maybeCommit()
}

// iterate calls fn for each entry with the given key prefix, in key order, on
// a view taken when iteration starts, until fn returns false. The slices are
// valid only during the call.
func (b *Backend) iterate(prefix []byte, fn func(k, v []byte) bool) {
	lower := append([]byte(nil), prefix...)
	upper := prefixEnd(lower)
	it, err := b.batch.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		b.setErr(fmt.Errorf("statebackend: read %q: %w", b.dir, err))
		return
	}
	b.openIters++
	defer func() {
		b.openIters--
		if err := it.Close(); err != nil {
			b.setErr(fmt.Errorf("statebackend: read %q: %w", b.dir, err))
		}
	}()
	for valid := it.First(); valid; valid = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			b.setErr(fmt.Errorf("statebackend: read %q: %w", b.dir, err))
			return
		}
		if !fn(it.Key(), v) {
			return
		}
	}
}

// prefixEnd returns the smallest key greater than every key with prefix p
// (nil if there is none).
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

// quietLogger drops Pebble's informational messages ("Found 0 WALs" on every
// open) and passes errors on.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any) {}
func (quietLogger) Errorf(format string, args ...any) {
	pebble.DefaultLogger.Errorf(format, args...)
}
func (quietLogger) Fatalf(format string, args ...any) {
	pebble.DefaultLogger.Fatalf(format, args...)
}
