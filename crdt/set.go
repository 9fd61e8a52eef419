package crdt

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-datastore"

	"github.com/scopemesh/scopemesh/crdt/internal/keytree"
	"github.com/scopemesh/scopemesh/events"
)

// Options configures a Set. The zero value is usable.
type Options struct {
	// Limits bound the events the set accepts. Zero fields mean
	// events.DefaultLimits.
	Limits events.Limits
	// TraceBucket is the span of wall time whose events a datastore set
	// files together in its correlation index, which expires a bucket at
	// a time (buckets.go); zero means DefaultTraceBucket. About an eighth
	// of the retention suits: shorter buckets make trace lookups read
	// more of them, longer ones keep expired entries longer. A set opened
	// with another span reads the buckets it has and files new events in
	// the new ones.
	TraceBucket time.Duration
}

// Set is a grow-only set of events persisted in a go-datastore (New) or held
// in memory (NewMemory), with an in-memory ordered index of their keys.
//
// A Set is safe for concurrent use. Writers serialise on the ordered index
// update, after their batch has committed. Readers see an event once its
// batch has committed. The Set does not own the datastore: Close leaves it
// open.
type Set struct {
	store  backend
	limits events.Limits
	// closed is set by Close, under mu: writers check it before they do
	// anything, without a lock.
	closed atomic.Bool

	mu struct {
		sync.RWMutex
		tree *keytree.Tree
		// nodes and kinds count the events per origin node and per
		// kind, by digest, which the query planner weighs indexes by.
		nodes, kinds map[uint64]int
	}
	// horizon is the key below which the set keeps nothing (expire.go),
	// read without a lock on every write; nil is MinKey.
	horizon          atomic.Pointer[Key]
	expiring         sync.Mutex // Expire calls run one at a time
	expired, refused atomic.Uint64

	watches watchList
	inUse   sync.WaitGroup // calls under way that use the store
}

// New opens the set stored in ds, rebuilding the ordered index from it.
func New(ctx context.Context, ds datastore.Batching, opts Options) (*Set, error) {
	if opts.TraceBucket < 0 {
		return nil, fmt.Errorf("crdt: trace index buckets of %v", opts.TraceBucket)
	}
	b := newDatastoreBackend(ds, cmp.Or(opts.TraceBucket, DefaultTraceBucket))
	if err := b.upgradeLayout(ctx); err != nil {
		return nil, err
	}
	if err := b.loadBuckets(ctx); err != nil {
		return nil, err
	}
	horizon, err := b.loadHorizon(ctx)
	if err != nil {
		return nil, err
	}
	keys, nodes, kinds, err := b.load(ctx)
	if err != nil {
		return nil, err
	}
	s := withBackend(b, opts, keys, nodes, kinds)
	s.horizon.Store(&horizon)
	return s, nil
}

// withBackend returns a set over store holding keys, with the given counts.
func withBackend(store backend, opts Options, keys []Key, nodes, kinds map[uint64]int) *Set {
	s := &Set{store: store, limits: opts.Limits}
	s.mu.tree = keytree.Build(keys)
	s.mu.nodes, s.mu.kinds = maps.Clone(nodes), maps.Clone(kinds)
	if s.mu.nodes == nil {
		s.mu.nodes = make(map[uint64]int)
	}
	if s.mu.kinds == nil {
		s.mu.kinds = make(map[uint64]int)
	}
	return s
}

// Close stops the set's watches and waits for the calls under way to end;
// later calls return ErrClosed. It does not close the datastore, but once
// Close returns, the set no longer touches it, so its owner may.
func (s *Set) Close() error {
	s.mu.Lock()
	s.closed.Store(true)
	s.mu.Unlock()
	s.watches.closeAll()
	s.inUse.Wait()
	return nil
}

// use registers a call that will read or write the datastore, or returns
// ErrClosed. The caller must call s.inUse.Done when it is done.
func (s *Set) use() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed.Load() {
		return ErrClosed
	}
	s.inUse.Add(1)
	return nil
}

// Add adds one event. It reports whether the event was new; a duplicate is a
// no-op. It returns only after the event is committed to the store.
func (s *Set) Add(ctx context.Context, e events.Event) (bool, error) {
	x, err := s.limits.Encode(e)
	if err != nil {
		return false, fmt.Errorf("crdt: %w", err)
	}
	return s.add(ctx, x, false)
}

// AddEncoded is Add for an encoded event. One encoded under the set's
// limits is written as it is, without encoding or hashing it again. The
// set keeps none of x's memory once AddEncoded returns, so the caller may
// reuse it (events.Limits.AppendSealEncoded).
func (s *Set) AddEncoded(ctx context.Context, x events.Encoded) (bool, error) {
	return s.add(ctx, x, true)
}

// add adds x. shared is whether x's memory is the caller's, to be reused
// once add returns.
func (s *Set) add(ctx context.Context, x events.Encoded, shared bool) (bool, error) {
	if s.closed.Load() {
		return false, ErrClosed
	}
	rec, err := s.record(x)
	if err != nil {
		return false, fmt.Errorf("crdt: %w", err)
	}
	if rec.Key.Compare(s.Horizon()) < 0 {
		return false, fmt.Errorf("%w: %v", ErrExpired, rec.Key)
	}
	rec.Shared = shared
	// One record a call adds up: a pooled slice to hand it in saves the
	// garbage collector a few hundred bytes per event.
	one := singles.Get().(*[1]record)
	one[0] = rec
	added, err := s.commit(ctx, one[:])
	*one = [1]record{}
	singles.Put(one)
	return len(added) == 1, err
}

// singles holds the one-record slices Add commits through. Nothing keeps
// a commit's records once it returns.
var singles = sync.Pool{New: func() any { return new([1]record) }}

// Merge adds a batch of events in one datastore batch and returns those that
// were new, in key order. It verifies every event first: if any is invalid
// or its ID does not match its content, Merge returns an error and writes
// nothing. It leaves out events below the horizon (Expire). Merge returns
// only after the batch is committed.
func (s *Set) Merge(ctx context.Context, batch []events.Event) ([]events.Event, error) {
	xs := make([]events.Encoded, len(batch))
	for i, e := range batch {
		x, err := s.limits.Encode(e)
		if err != nil {
			return nil, fmt.Errorf("crdt: event %d of %d: %w", i, len(batch), err)
		}
		xs[i] = x
	}
	var evs []events.Event
	err := s.mergeEncoded(ctx, xs, false, func(added []record) {
		evs = make([]events.Event, len(added))
		for i, r := range added {
			evs[i] = r.X.Event()
		}
	})
	return evs, err
}

// MergeEncoded is Merge for encoded events, returning how many were new.
// Those encoded under the set's limits are written as they are, without
// encoding or hashing them again. The set keeps none of batch's memory once
// MergeEncoded returns, so the caller may reuse it, as it may the memory of
// events.Limits.AppendBatchInPlace.
func (s *Set) MergeEncoded(ctx context.Context, batch []events.Encoded) (int, error) {
	n := 0
	err := s.mergeEncoded(ctx, batch, true, func(added []record) { n = len(added) })
	return n, err
}

// mergeEncoded commits batch and passes added the records that were new,
// in key order; they are valid only during the call. shared is whether
// batch's memory is the caller's, to be reused once the merge returns.
func (s *Set) mergeEncoded(ctx context.Context, batch []events.Encoded, shared bool, added func([]record)) error {
	if s.closed.Load() {
		return ErrClosed
	}
	recs := getRecords(len(batch))
	defer putRecords(recs)
	for i, x := range batch {
		rec, err := s.record(x)
		if err != nil {
			return fmt.Errorf("crdt: event %d of %d: %w", i, len(batch), err)
		}
		rec.Shared = shared
		(*recs)[i] = rec
	}
	horizon := s.Horizon()
	kept := keepRecords(*recs, func(r *record) bool { return r.Key.Compare(horizon) >= 0 })
	s.refused.Add(uint64(len(*recs) - len(kept)))
	fresh, err := s.commit(ctx, kept)
	if err != nil {
		return err
	}
	added(fresh)
	return nil
}

// recordSlices holds the slices merges put their records in. A merged
// batch of a thousand events needs a quarter of a megabyte of them, which
// gossip and sync would otherwise allocate, and the collector reclaim,
// once a batch.
var recordSlices = sync.Pool{New: func() any { return new([]record) }}

// getRecords returns a pooled slice of n records.
func getRecords(n int) *[]record {
	p := recordSlices.Get().(*[]record)
	if cap(*p) < n {
		*p = make([]record, n)
	}
	*p = (*p)[:n]
	return p
}

// putRecords clears p, so that it holds on to no event, and pools it.
func putRecords(p *[]record) {
	clear(*p)
	recordSlices.Put(p)
}

// record returns x ready to write, checking it first unless it was checked
// under the set's limits. Encoding checks the event: it hashes the content
// it writes and compares the hash with the ID.
func (s *Set) record(x events.Encoded) (record, error) {
	if !x.CheckedUnder(s.limits) {
		var err error
		if x, err = s.limits.Encode(x.Event()); err != nil {
			return record{}, err
		}
	}
	e := x.Header()
	return record{X: x, Key: KeyOf(e), Node: digest(e.Node), Kind: digest(e.Kind), Trace: e.Correlation}, nil
}

// commit stores the records, adds them to the ordered index and tells the
// watches. It returns the records that were new, in key order. It reorders
// recs.
func (s *Set) commit(ctx context.Context, recs []record) ([]record, error) {
	var added []record
	var err error
	if mem, ok := s.store.(memoryBackend); ok {
		added, err = s.commitInMemory(ctx, mem, recs)
	} else {
		added, err = s.commitToStore(ctx, recs)
	}
	if err != nil {
		return nil, err
	}
	s.watches.publish(added)
	return added, nil
}

// commitToStore writes to the datastore with no lock held, so that readers
// and other writers go on meanwhile, and takes the write lock only to
// update the ordered index.
func (s *Set) commitToStore(ctx context.Context, recs []record) ([]record, error) {
	if err := s.use(); err != nil {
		return nil, err
	}
	defer s.inUse.Done()
	fresh := s.unseen(recs)
	if len(fresh) == 0 {
		return nil, nil
	}
	for i := range fresh {
		// A datastore may keep the values it is given (go-datastore's
		// map datastore does): it gets copies of what the caller reuses.
		fresh[i].Own()
	}
	if err := s.store.write(ctx, fresh); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.indexLocked(fresh), nil
}

// commitInMemory writes to the memory backend, then updates the ordered
// index, each step under its own lock: while one writer updates the
// index, the next writes its events. Every record goes to the index,
// not only those the backend found new: a writer whose event another one
// wrote may reach the index first, and must not return before the event is
// there. Whichever inserts it reports it new.
func (s *Set) commitInMemory(ctx context.Context, mem memoryBackend, recs []record) ([]record, error) {
	if len(recs) > 1 {
		// A merged batch often repeats events the set holds (gossip and
		// sync deliver some twice): the read lock finds them, and takes
		// no write lock for them.
		recs = s.unseen(recs)
	} else {
		recs = sortedUnique(recs)
	}
	if len(recs) == 0 {
		return nil, nil
	}
	if err := mem.write(ctx, recs); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.indexLocked(recs), nil
}

// unseen returns the records of recs the ordered index does not hold, sorted
// by key and without duplicates. It reorders recs.
func (s *Set) unseen(recs []record) []record {
	s.mu.RLock()
	fresh := keepRecords(recs, func(r *record) bool { return !s.mu.tree.Has(r.Key) })
	s.mu.RUnlock()
	return sortedUnique(fresh)
}

// keepRecords keeps the records of recs that keep is true of, in order, in
// place. A record is a few hundred bytes: those that stay where they are
// are not copied, as ranging over recs and appending would copy each twice.
func keepRecords(recs []record, keep func(*record) bool) []record {
	n := 0
	for i := range recs {
		if keep(&recs[i]) {
			if n != i {
				recs[n] = recs[i]
			}
			n++
		}
	}
	return recs[:n]
}

// sortedUnique sorts recs by key and drops duplicates, in place.
func sortedUnique(recs []record) []record {
	slices.SortFunc(recs, func(a, b record) int { return a.Key.Compare(b.Key) })
	return slices.CompactFunc(recs, func(a, b record) bool { return a.Key == b.Key })
}

// indexLocked adds the written records to the ordered index and the counts
// and returns those that were new. A concurrent commit to the store may
// have added the same event meanwhile: only the first insert counts it, so
// each event is reported new once.
//
// REQUIRES: s.mu (write)
func (s *Set) indexLocked(written []record) []record {
	return keepRecords(written, func(r *record) bool {
		if !s.mu.tree.Insert(r.Key) {
			return false
		}
		s.mu.nodes[r.Node]++
		s.mu.kinds[r.Kind]++
		return true
	})
}

// Len returns the number of events in the set.
func (s *Set) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.mu.tree.Len() - s.mu.tree.Rank(s.Horizon())
}

// Has reports whether the set holds the event with key k.
func (s *Set) Has(k Key) bool {
	if k.Compare(s.Horizon()) < 0 {
		return false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.mu.tree.Has(k)
}

// HasID reports whether the set holds the event with ID id. Unlike Has, it
// reads the datastore.
func (s *Set) HasID(ctx context.Context, id events.ID) (bool, error) {
	if err := s.use(); err != nil {
		return false, err
	}
	defer s.inUse.Done()
	k, err := s.store.keyOf(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil && k.Compare(s.Horizon()) >= 0, err
}

// Get returns the event with ID id, or an error matching ErrNotFound.
func (s *Set) Get(ctx context.Context, id events.ID) (events.Event, error) {
	if err := s.use(); err != nil {
		return events.Event{}, err
	}
	defer s.inUse.Done()
	k, err := s.store.keyOf(ctx, id)
	if err != nil {
		return events.Event{}, err
	}
	if k.Compare(s.Horizon()) < 0 {
		return events.Event{}, fmt.Errorf("%w: %v", ErrNotFound, id)
	}
	return s.getKey(ctx, k)
}

// getKey reads the event with key k.
func (s *Set) getKey(ctx context.Context, k Key) (events.Event, error) {
	data, err := s.store.event(ctx, k)
	if err != nil {
		return events.Event{}, err
	}
	e, err := s.limits.Unmarshal(data)
	if err != nil || KeyOf(e) != k {
		return events.Event{}, fmt.Errorf("%w: event %v: %v", ErrCorrupt, k.ID(), err)
	}
	return e, nil
}
