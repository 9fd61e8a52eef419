package crdt

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"

	"github.com/scopemesh/scopemesh/crdt/internal/keytree"
	"github.com/scopemesh/scopemesh/events"
)

// Options configures a Set. The zero value is usable.
type Options struct {
	// Limits bound the events the set accepts. Zero fields mean
	// events.DefaultLimits.
	Limits events.Limits
}

// Set is a grow-only set of events persisted in a go-datastore, with an
// in-memory ordered index of their keys.
//
// A Set is safe for concurrent use. Writers serialise only on the index
// update, after their datastore batch has committed; readers see an event
// once its batch has committed. The Set does not own the datastore: Close
// leaves it open.
type Set struct {
	ds     datastore.Batching
	limits events.Limits

	mu struct {
		sync.RWMutex
		tree   *keytree.Tree
		nodes  map[string]int // events per origin node, by digest
		kinds  map[string]int // events per kind, by digest
		closed bool
	}

	watches watchList
	inUse   sync.WaitGroup // calls under way that use the datastore
}

// New opens the set stored in ds, rebuilding the ordered index from it.
func New(ctx context.Context, ds datastore.Batching, opts Options) (*Set, error) {
	s := &Set{ds: ds, limits: opts.Limits}
	nodes, err := loadIndex(ctx, ds, nodePrefix)
	if err != nil {
		return nil, err
	}
	kinds, err := loadIndex(ctx, ds, kindPrefix)
	if err != nil {
		return nil, err
	}
	s.mu.tree = keytree.Build(nodes.sorted())
	s.mu.nodes = nodes.counts
	s.mu.kinds = kinds.counts
	return s, nil
}

// KeyLister is implemented by datastores that list keys under a prefix, in
// order, faster than a go-datastore query (which hands over one result at a
// time through a channel). New uses it to rebuild the ordered index.
type KeyLister interface {
	// ListKeys calls fn with each key under prefix, in byte order (reverse
	// order if reverse), until fn returns false. The slice is valid only
	// during the call.
	ListKeys(ctx context.Context, prefix string, reverse bool, fn func(key []byte) bool) error
}

// loadedIndex is one index as read at open: its event keys, in runs that
// each hold one value's keys in order, and the count per value digest.
type loadedIndex struct {
	keys   []keytree.Key
	runs   []int // start of each run in keys
	counts map[string]int
}

// loadIndex reads every entry of an index.
func loadIndex(ctx context.Context, ds datastore.Datastore, prefix string) (*loadedIndex, error) {
	idx := &loadedIndex{counts: make(map[string]int)}
	var last string
	add := func(entry string) error {
		segment, k, err := parseIndexEntry(entry)
		if err != nil {
			return err
		}
		if segment != last || len(idx.runs) == 0 {
			idx.runs = append(idx.runs, len(idx.keys))
			last = segment
		}
		idx.keys = append(idx.keys, keytree.Key(k))
		idx.counts[segment]++
		return nil
	}
	if kl, ok := ds.(KeyLister); ok {
		var bad error
		err := kl.ListKeys(ctx, prefix, false, func(key []byte) bool {
			bad = add(string(key))
			return bad == nil
		})
		if err != nil {
			return nil, fmt.Errorf("crdt: reading index %s: %w", prefix, err)
		}
		return idx, bad
	}
	res, err := ds.Query(ctx, dsq.Query{Prefix: prefix, KeysOnly: true, Orders: []dsq.Order{dsq.OrderByKey{}}})
	if err != nil {
		return nil, fmt.Errorf("crdt: reading index %s: %w", prefix, err)
	}
	defer res.Close()
	for r, ok := res.NextSync(); ok; r, ok = res.NextSync() {
		if r.Error != nil {
			return nil, fmt.Errorf("crdt: reading index %s: %w", prefix, r.Error)
		}
		if err := add(r.Key); err != nil {
			return nil, err
		}
	}
	return idx, nil
}

// sorted returns the index's keys in order, merging its sorted runs
// pairwise: O(n log runs), where sorting would be O(n log n) and, at a
// million keys, several times slower.
func (idx *loadedIndex) sorted() []keytree.Key {
	keys, runs := idx.keys, append(idx.runs, len(idx.keys))
	buf := make([]keytree.Key, len(keys))
	for len(runs) > 2 {
		merged := runs[:0:0]
		for i := 0; i+1 < len(runs); i += 2 {
			lo, mid, hi := runs[i], runs[i+1], len(keys)
			if i+2 < len(runs) {
				hi = runs[i+2]
			}
			mergeRuns(buf[lo:hi], keys[lo:mid], keys[mid:hi])
			merged = append(merged, lo)
		}
		runs = append(merged, len(keys))
		keys, buf = buf, keys
	}
	return keys
}

// mergeRuns merges the sorted a and b into dst.
func mergeRuns(dst, a, b []keytree.Key) {
	for len(a) > 0 && len(b) > 0 {
		if a[0].Compare(&b[0]) <= 0 {
			dst[0], a = a[0], a[1:]
		} else {
			dst[0], b = b[0], b[1:]
		}
		dst = dst[1:]
	}
	copy(dst[copy(dst, a):], b)
}

// Close stops the set's watches and waits for the calls under way to end;
// later calls return ErrClosed. It does not close the datastore, but once
// Close returns, the set no longer touches it, so its owner may.
func (s *Set) Close() error {
	s.mu.Lock()
	s.mu.closed = true
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
	if s.mu.closed {
		return ErrClosed
	}
	s.inUse.Add(1)
	return nil
}

// Add adds one event. It reports whether the event was new; a duplicate is a
// no-op. It returns only after the event is committed to the datastore.
func (s *Set) Add(ctx context.Context, e events.Event) (bool, error) {
	added, err := s.Merge(ctx, []events.Event{e})
	return len(added) == 1, err
}

// Merge adds a batch of events in one datastore batch and returns those that
// were new, in key order. It verifies every event first: if any is invalid
// or its ID does not match its content, Merge returns an error and writes
// nothing. Merge returns only after the batch is committed.
func (s *Set) Merge(ctx context.Context, batch []events.Event) ([]events.Event, error) {
	if err := s.use(); err != nil {
		return nil, err
	}
	defer s.inUse.Done()
	// Encoding verifies: it hashes the content it writes and compares the
	// hash with the ID.
	encoded := make([]record, len(batch))
	for i, e := range batch {
		data, err := s.limits.Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("crdt: event %d of %d: %w", i, len(batch), err)
		}
		encoded[i] = record{e, KeyOf(e), data}
	}
	fresh, err := s.unseen(encoded)
	if err != nil || len(fresh) == 0 {
		return nil, err
	}
	if err := s.write(ctx, fresh); err != nil {
		return nil, err
	}

	s.mu.Lock()
	added := make([]events.Event, 0, len(fresh))
	for _, r := range fresh {
		// A concurrent Merge may have added the same event meanwhile: only
		// the first insert counts it, so each event is reported new once.
		if s.mu.tree.Insert(keytree.Key(r.key)) {
			s.mu.nodes[digest(r.event.Node)]++
			s.mu.kinds[digest(r.event.Kind)]++
			added = append(added, r.event)
		}
	}
	s.mu.Unlock()
	s.watches.publish(added)
	return added, nil
}

// record is an event on its way into the store.
type record struct {
	event events.Event
	key   Key
	data  []byte // events.Marshal encoding
}

// unseen returns the records the set does not hold, without duplicates,
// sorted by key.
func (s *Set) unseen(batch []record) ([]record, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.mu.closed {
		return nil, ErrClosed
	}
	fresh := batch[:0]
	for _, r := range batch {
		if !s.mu.tree.Has(keytree.Key(r.key)) {
			fresh = append(fresh, r)
		}
	}
	slices.SortFunc(fresh, func(a, b record) int { return a.key.Compare(b.key) })
	return slices.CompactFunc(fresh, func(a, b record) bool { return a.key == b.key }), nil
}

// write commits the records and their index entries in one batch.
func (s *Set) write(ctx context.Context, recs []record) error {
	b, err := s.ds.Batch(ctx)
	if err != nil {
		return fmt.Errorf("crdt: starting a batch: %w", err)
	}
	for _, r := range recs {
		if err := b.Put(ctx, eventKey(r.key), r.data); err != nil {
			return fmt.Errorf("crdt: writing event %v: %w", r.event.ID, err)
		}
		if err := b.Put(ctx, idKey(r.event.ID), r.key[:]); err != nil {
			return fmt.Errorf("crdt: writing event %v: %w", r.event.ID, err)
		}
		for _, ik := range indexEntries(r.event, r.key) {
			if err := b.Put(ctx, ik, nil); err != nil {
				return fmt.Errorf("crdt: writing index of event %v: %w", r.event.ID, err)
			}
		}
	}
	if err := b.Commit(ctx); err != nil {
		return fmt.Errorf("crdt: committing %d events: %w", len(recs), err)
	}
	return nil
}

// Len returns the number of events in the set.
func (s *Set) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.mu.tree.Len()
}

// Has reports whether the set holds the event with key k.
func (s *Set) Has(k Key) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.mu.tree.Has(keytree.Key(k))
}

// HasID reports whether the set holds the event with ID id. Unlike Has, it
// reads the datastore.
func (s *Set) HasID(ctx context.Context, id events.ID) (bool, error) {
	if err := s.use(); err != nil {
		return false, err
	}
	defer s.inUse.Done()
	_, err := s.keyOfID(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Get returns the event with ID id, or an error matching ErrNotFound.
func (s *Set) Get(ctx context.Context, id events.ID) (events.Event, error) {
	if err := s.use(); err != nil {
		return events.Event{}, err
	}
	defer s.inUse.Done()
	k, err := s.keyOfID(ctx, id)
	if err != nil {
		return events.Event{}, err
	}
	return s.getKey(ctx, k)
}

// keyOfID looks up the key of the event with ID id.
func (s *Set) keyOfID(ctx context.Context, id events.ID) (Key, error) {
	data, err := s.ds.Get(ctx, idKey(id))
	if errors.Is(err, datastore.ErrNotFound) {
		return Key{}, fmt.Errorf("%w: %v", ErrNotFound, id)
	}
	if err != nil {
		return Key{}, fmt.Errorf("crdt: looking up event %v: %w", id, err)
	}
	if len(data) != KeyLen || Key(data).ID() != id {
		return Key{}, fmt.Errorf("%w: ID record of event %v", ErrCorrupt, id)
	}
	return Key(data), nil
}

// getKey reads the event with key k.
func (s *Set) getKey(ctx context.Context, k Key) (events.Event, error) {
	data, err := s.ds.Get(ctx, eventKey(k))
	if errors.Is(err, datastore.ErrNotFound) {
		return events.Event{}, fmt.Errorf("%w: %v", ErrNotFound, k.ID())
	}
	if err != nil {
		return events.Event{}, fmt.Errorf("crdt: reading event %v: %w", k.ID(), err)
	}
	e, err := events.Unmarshal(data)
	if err != nil || KeyOf(e) != k {
		return events.Event{}, fmt.Errorf("%w: event %v: %v", ErrCorrupt, k.ID(), err)
	}
	return e, nil
}
