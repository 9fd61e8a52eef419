package pebblestore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	pebbleds "github.com/ipfs/go-ds-pebble"
)

// DefaultSyncInterval is how often the write-ahead log is flushed to disk by
// default: a machine crash loses at most about this much acknowledged data.
const DefaultSyncInterval = 100 * time.Millisecond

// writeOptions is how every commit is made, through go-ds-pebble or
// WriteBatch: synced, which with the write-ahead log files of Open (walFS)
// waits for the operating system, not the disk.
var writeOptions = pebble.Sync

// cacheSize is Pebble's block cache. Its default, 8 MiB, holds a sliver of
// a store of millions of events; 64 MiB keeps the recent ones (what traces
// and syncs mostly read) and the indexes' upper levels.
const cacheSize = 64 << 20

// Options configures a Store.
type Options struct {
	// SyncInterval is how often the write-ahead log is flushed to disk.
	// Zero means DefaultSyncInterval. Negative means every commit waits for
	// its own flush (Pebble's plain synced commit).
	SyncInterval time.Duration
}

// Store is a Pebble go-datastore. Close it to stop its flush loop.
type Store struct {
	*pebbleds.Datastore

	wal  *walFS // nil when every commit flushes itself
	stop chan struct{}
	done chan struct{}
}

// Open opens (creating if needed) the Pebble database in dir.
func Open(dir string, opts Options) (*Store, error) {
	s := &Store{}
	popts := &pebble.Options{
		// A 4 MiB memtable (the default) fills every 10,000 events or so,
		// and each flush and the compactions it sets off compete with the
		// writers for the CPU.
		MemTableSize: 64 << 20,
	}
	for i := range popts.Levels {
		// Upper levels are rewritten soon by compactions: compressing them
		// costs CPU for space that is reclaimed anyway.
		if i < 2 {
			popts.Levels[i].Compression = func() *sstable.CompressionProfile { return sstable.NoCompression }
		}
	}
	if opts.SyncInterval >= 0 {
		s.wal = &walFS{FS: vfs.Default, open: map[*walFile]struct{}{}}
		popts.FS = s.wal
	}
	ds, err := pebbleds.NewDatastore(dir, pebbleds.WithPebbleOpts(popts), pebbleds.WithPebbleWriteOptions(writeOptions), pebbleds.WithCacheSize(cacheSize))
	if err != nil {
		return nil, err
	}
	s.Datastore = ds
	if s.wal != nil {
		interval := opts.SyncInterval
		if interval == 0 {
			interval = DefaultSyncInterval
		}
		s.stop, s.done = make(chan struct{}), make(chan struct{})
		go s.flushLoop(interval)
	}
	return s, nil
}

// Close stops the flush loop, flushes the log a last time and closes the
// database.
func (s *Store) Close() error {
	var err error
	if s.wal != nil {
		close(s.stop)
		<-s.done
		err = s.wal.flush()
	}
	return errors.Join(err, s.Datastore.Close())
}

func (s *Store) flushLoop(interval time.Duration) {
	defer close(s.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			// A failed flush is retried on the next tick, and Close
			// reports the last one.
			_ = s.wal.flush()
		}
	}
}

// walFS hands Pebble write-ahead log files whose Sync returns once the data
// is with the operating system, and flushes them to disk on demand.
type walFS struct {
	vfs.FS

	mu   sync.Mutex
	open map[*walFile]struct{}
}

func isWAL(name string) bool { return strings.HasSuffix(name, ".log") }

func (fs *walFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	return fs.wrap(name, f, err)
}

func (fs *walFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	return fs.wrap(newname, f, err)
}

func (fs *walFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !isWAL(name) {
		return f, err
	}
	w := &walFile{File: f, fs: fs}
	fs.mu.Lock()
	fs.open[w] = struct{}{}
	fs.mu.Unlock()
	return w, nil
}

// flush fsyncs every open log file that was written since its last flush.
func (fs *walFS) flush() error {
	fs.mu.Lock()
	files := make([]*walFile, 0, len(fs.open))
	for f := range fs.open {
		files = append(files, f)
	}
	fs.mu.Unlock()
	var errs []error
	for _, f := range files {
		errs = append(errs, f.flush())
	}
	return errors.Join(errs...)
}

// walFile is a log file whose Sync does not wait for the disk.
type walFile struct {
	vfs.File
	fs    *walFS
	dirty atomic.Bool

	mu     sync.Mutex // serialises flush and Close
	closed bool
}

func (f *walFile) Write(p []byte) (int, error) {
	f.dirty.Store(true)
	return f.File.Write(p)
}

func (f *walFile) WriteAt(p []byte, off int64) (int, error) {
	f.dirty.Store(true)
	return f.File.WriteAt(p, off)
}

// Sync returns at once: Write already handed the data to the operating
// system, which keeps it if the process dies. The flush loop makes it
// durable on disk.
func (f *walFile) Sync() error { return nil }

// SyncData is Sync.
func (f *walFile) SyncData() error { return nil }

// SyncTo is Sync; it reports no full sync.
func (f *walFile) SyncTo(int64) (bool, error) { return false, nil }

func (f *walFile) flush() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || !f.dirty.Swap(false) {
		return nil
	}
	if err := f.File.Sync(); err != nil {
		f.dirty.Store(true)
		return fmt.Errorf("pebblestore: flushing the write-ahead log: %w", err)
	}
	return nil
}

func (f *walFile) Close() error {
	f.fs.mu.Lock()
	delete(f.fs.open, f)
	f.fs.mu.Unlock()
	err := f.flush()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return errors.Join(err, f.File.Close())
}

// WriteBatch commits the records fill passes to put in one Pebble batch
// (crdt.BatchWriter), with the commit's usual wait for the write-ahead
// log: a go-datastore batch would convert every key from a string.
func (s *Store) WriteBatch(ctx context.Context, fill func(put func(key, value []byte) error) error) error {
	b := s.DB.NewBatch()
	defer b.Close()
	if err := fill(func(key, value []byte) error { return b.Set(key, value, nil) }); err != nil {
		return err
	}
	return b.Commit(writeOptions)
}

// ListKeys calls fn with every key under prefix, in order (reverse order if
// reverse), straight from a Pebble iterator (crdt.KeyLister): opening a set
// reads millions of keys, and a trace query a handful, which a go-datastore
// query would hand over one channel send at a time after starting a
// goroutine.
func (s *Store) ListKeys(ctx context.Context, prefix string, reverse bool, fn func(key []byte) bool) error {
	it, err := s.DB.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: []byte(prefix), UpperBound: prefixEnd(prefix)})
	if err != nil {
		return err
	}
	first, next := it.First, it.Next
	if reverse {
		first, next = it.Last, it.Prev
	}
	for ok := first(); ok && fn(it.Key()); ok = next() {
	}
	return errors.Join(it.Error(), it.Close())
}

// prefixEnd returns the smallest key after every key that starts with
// prefix, or nil if there is none.
func prefixEnd(prefix string) []byte {
	end := []byte(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// ListRange calls fn with each key in [start, end) and its value, in
// order, straight from a Pebble iterator (crdt.Pruner).
func (s *Store) ListRange(ctx context.Context, start, end []byte, fn func(key, value []byte) bool) error {
	it, err := s.DB.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: start, UpperBound: end})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return err
		}
		if !fn(it.Key(), v) {
			break
		}
	}
	return errors.Join(it.Error(), it.Close())
}

// PruneBatch commits the deletions fill passes in one Pebble batch
// (crdt.Pruner): a range deletion is one tombstone, which iterators skip
// at once, where a key-by-key one leaves a tombstone a key that each
// later listing reads until a compaction drops it.
func (s *Store) PruneBatch(ctx context.Context, fill func(del func(key []byte) error, delRange func(start, end []byte) error) error) error {
	b := s.DB.NewBatch()
	defer b.Close()
	del := func(key []byte) error { return b.Delete(key, nil) }
	delRange := func(start, end []byte) error { return b.DeleteRange(start, end, nil) }
	if err := fill(del, delRange); err != nil {
		return err
	}
	return b.Commit(writeOptions)
}

// ReclaimableBytes returns how much of the store's disk usage is deleted
// data that compactions have yet to drop, by Pebble's estimate, and tables
// about to go (crdt.Reclaimer). Logs kept for reuse are not: they stay.
func (s *Store) ReclaimableBytes(context.Context) (uint64, error) {
	t := s.DB.Metrics().Table
	return t.Garbage.PointDeletionsBytesEstimate + t.Garbage.RangeDeletionsBytesEstimate + t.Local.ObsoleteSize + t.Local.ZombieSize, nil
}
