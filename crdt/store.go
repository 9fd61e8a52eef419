package crdt

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/hlc"
)

// The datastore layout, version 3. Every event has one record and up to
// three index entries, all written in one batch:
//
//	/e/<key>                   the event, events.Marshal encoding
//	/n/<node>/<key>            by origin node (every event: rebuilds the ordered index)
//	/k/<kind>/<key>            by kind
//	/c/<bucket>/<trace>/<key>  by correlation, for events that have one (buckets.go)
//	/b/<bucket>                a bucket of the correlation index
//	/horizon                   the key below which nothing is kept (expire.go)
//	/layout                    "3", the layout's version (layout.go)
//
// Events are stored under their key, not their ID, so that events close in
// time — a trace's, a time range's — share storage blocks: a trace read
// touches a block or two rather than one per event; and so that the
// oldest, which expire first, go by range deletion. An event is found by
// its ID through a table in memory, rebuilt at open with the ordered index.
// Stores written before kept an ID-to-key record, /i/<id>, besides: it
// cost a quarter of the write work (a key in random order, which every
// compaction rewrites), and it is no longer written or read. Versions that
// read it cannot find, by ID, events written without it.
//
// <key>, <bucket> and <trace> are in keyText, and so are <node> and
// <kind>, the 64-bit digests of the values: short keys compare fast, and no
// value can put a '/' in a key. keyText is base 64 in an alphabet in ASCII
// order, without padding, so that values of one length keep their byte
// order in text and an index prefix lists its events in key order. Layout
// 1 had lowercase hex in its place: keys half as long again, which cost
// CPU and room on disk. Layout 2 filed the correlation
// index by trace alone, /c/<trace>/<key>.
const (
	eventPrefix       = "/e/"
	nodePrefix        = "/n/"
	kindPrefix        = "/k/"
	correlationPrefix = "/c/"
)

// keyText is the text form of keys, digests and trace IDs in the layout.
var keyText = base64.NewEncoding("-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz").
	WithPadding(base64.NoPadding).Strict()

// parseKeyText reads a key in keyText.
func parseKeyText(s string) (Key, error) {
	var k Key
	if err := decodeKeyText(k[:], s); err != nil {
		return k, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	return k, nil
}

// parseDigestText reads a digest in keyText.
func parseDigestText(s string) (uint64, error) {
	var d [8]byte
	if err := decodeKeyText(d[:], s); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(d[:]), nil
}

// decodeKeyText decodes s, the keyText of len(dst) bytes, into dst.
func decodeKeyText(dst []byte, s string) error {
	var buf [64]byte // a string converted to decode would be allocated
	if want := keyText.EncodedLen(len(dst)); len(s) != want || len(s) > len(buf) {
		return fmt.Errorf("%q is %d characters, want %d", s, len(s), want)
	}
	if _, err := keyText.Decode(dst, buf[:copy(buf[:], s)]); err != nil {
		return fmt.Errorf("%q: %v", s, err)
	}
	return nil
}

// datastoreBackend keeps a set in a go-datastore, in the layout above.
type datastoreBackend struct {
	ds      datastore.Batching
	group   groupCommit // concurrent writes share a commit
	buckets bucketTable // of the correlation index

	// ids files the time of each event by its ID: with the ID, that is
	// its key.
	ids struct {
		sync.RWMutex
		m map[events.ID][hlc.EncodedLen]byte
		// dropped counts the entries expiry deleted since m was last
		// made afresh: a Go map never shrinks.
		dropped int
	}
}

var _ backend = (*datastoreBackend)(nil)

func newDatastoreBackend(ds datastore.Batching, traceBucket time.Duration) *datastoreBackend {
	b := &datastoreBackend{ds: ds}
	b.buckets.width = int64(traceBucket)
	b.ids.m = make(map[events.ID][hlc.EncodedLen]byte)
	return b
}

// fileIDs adds keys to the ID table.
func (b *datastoreBackend) fileIDs(keys iter.Seq[Key]) {
	b.ids.Lock()
	defer b.ids.Unlock()
	for k := range keys {
		b.ids.m[k.ID()] = [hlc.EncodedLen]byte(k[:hlc.EncodedLen])
	}
}

// forgetIDs drops ids from the ID table, making the table afresh once it
// has dropped more than it holds.
func (b *datastoreBackend) forgetIDs(ids []events.ID) {
	b.ids.Lock()
	defer b.ids.Unlock()
	for _, id := range ids {
		delete(b.ids.m, id)
	}
	if b.ids.dropped += len(ids); b.ids.dropped > len(b.ids.m) {
		fresh := make(map[events.ID][hlc.EncodedLen]byte, len(b.ids.m))
		maps.Copy(fresh, b.ids.m)
		b.ids.m, b.ids.dropped = fresh, 0
	}
}

// KeyLister is implemented by datastores that list keys under a prefix, in
// order, faster than a go-datastore query (which hands over one result at a
// time through a channel). New uses it to rebuild the ordered index, and
// ScanIndex to list an index.
type KeyLister interface {
	// ListKeys calls fn with each key under prefix, in byte order (reverse
	// order if reverse), until fn returns false. The slice is valid only
	// during the call.
	ListKeys(ctx context.Context, prefix string, reverse bool, fn func(key []byte) bool) error
}

// BatchWriter is implemented by datastores that commit a batch of byte
// keys faster than a go-datastore Batch, which takes each key as a string
// (a conversion and a copy each). A set writes through it when it can.
type BatchWriter interface {
	// WriteBatch commits, in one atomic batch, the records fill passes to
	// put, or none of them if fill or the commit fails. put copies its
	// arguments.
	WriteBatch(ctx context.Context, fill func(put func(key, value []byte) error) error) error
}

func eventKey(k Key) datastore.Key { return datastore.RawKey(string(appendEventKey(nil, k))) }

func appendEventKey(dst []byte, k Key) []byte {
	return keyText.AppendEncode(append(dst, eventPrefix...), k[:])
}

// appendDigestPrefix appends the prefix, with its trailing '/', under
// which the node or kind index (by prefix) lists the values with digest d.
func appendDigestPrefix(dst []byte, prefix string, d uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], d)
	return append(keyText.AppendEncode(append(dst, prefix...), b[:]), '/')
}

// indexPrefix returns the datastore prefix, with its trailing '/', under
// which index i, the node or kind index, lists the keys of events whose
// field equals value.
func indexPrefix(i Index, value string) (string, error) {
	switch i {
	case ByNode:
		return string(appendDigestPrefix(nil, nodePrefix, digest(value))), nil
	case ByKind:
		return string(appendDigestPrefix(nil, kindPrefix, digest(value))), nil
	}
	return "", fmt.Errorf("crdt: unknown index %v", i)
}

// appendEntries passes put the datastore records of each of recs, the
// event's and its index entries', building every key in one buffer, and
// the records of the correlation index's new buckets, which it returns.
// Each kind of record goes in key order — the correlation entries by
// bucket and trace, the kind and node entries by value, then the events —
// because Pebble inserts a batch's keys into its memtable one after
// another, and a key just after the last one skips most of the search from
// the top. It leaves recs sorted by key.
func appendEntries(recs []record, buckets *bucketTable, put func(key, value []byte) error) ([]bucket, error) {
	var buf []byte
	// entries writes the index entry of each of recs under the prefix
	// that prefix appends, if it files the record.
	entries := func(prefix func(dst []byte, r *record) ([]byte, bool)) error {
		for i := range recs {
			r := &recs[i]
			var filed bool
			if buf, filed = prefix(buf[:0], r); !filed {
				continue
			}
			buf = keyText.AppendEncode(buf, r.Key[:])
			if err := put(buf, nil); err != nil {
				return fmt.Errorf("writing index of event %v: %w", r.X.Header().ID, err)
			}
		}
		return nil
	}
	bucketOf := func(r *record) bucket { return buckets.of(r.Key.Time().Wall) }
	var used []bucket
	for i := range recs {
		if !recs[i].Trace.IsZero() {
			used = append(used, bucketOf(&recs[i]))
		}
	}
	added := buckets.missing(used)
	for _, b := range added {
		if err := put(appendBucket([]byte(bucketPrefix), b), nil); err != nil {
			return nil, fmt.Errorf("writing a trace index bucket: %w", err)
		}
	}
	slices.SortFunc(recs, func(a, b record) int {
		return cmp.Or(cmpBucket(bucketOf(&a), bucketOf(&b)), bytes.Compare(a.Trace[:], b.Trace[:]), a.Key.Compare(b.Key))
	})
	err := entries(func(dst []byte, r *record) ([]byte, bool) {
		return appendBucketTracePrefix(dst, bucketOf(r), r.Trace), !r.Trace.IsZero()
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(recs, func(a, b record) int { return cmp.Or(cmp.Compare(a.Kind, b.Kind), a.Key.Compare(b.Key)) })
	if err := entries(func(dst []byte, r *record) ([]byte, bool) { return appendDigestPrefix(dst, kindPrefix, r.Kind), true }); err != nil {
		return nil, err
	}
	slices.SortFunc(recs, func(a, b record) int { return cmp.Or(cmp.Compare(a.Node, b.Node), a.Key.Compare(b.Key)) })
	if err := entries(func(dst []byte, r *record) ([]byte, bool) { return appendDigestPrefix(dst, nodePrefix, r.Node), true }); err != nil {
		return nil, err
	}
	slices.SortFunc(recs, func(a, b record) int { return a.Key.Compare(b.Key) })
	for _, r := range recs {
		buf = appendEventKey(buf[:0], r.Key)
		if err := put(buf, r.X.Wire()); err != nil {
			return nil, fmt.Errorf("writing event %v: %w", r.X.Header().ID, err)
		}
	}
	return added, nil
}

// parseIndexEntry splits an index key into its value segment (a digest or
// a trace ID) and the event key.
func parseIndexEntry(s string) (segment string, k Key, err error) {
	i := strings.LastIndexByte(s, '/')
	j := strings.LastIndexByte(s[:max(i, 0)], '/')
	if i < 0 || j < 0 {
		return "", k, fmt.Errorf("%w: index entry %q", ErrCorrupt, s)
	}
	if k, err = parseKeyText(s[i+1:]); err != nil {
		return "", k, fmt.Errorf("%w: index entry %q: %v", ErrCorrupt, s, err)
	}
	return s[j+1 : i], k, nil
}

func (b *datastoreBackend) load(ctx context.Context) (keys []Key, nodes, kinds map[uint64]int, err error) {
	byNode, err := b.loadIndex(ctx, nodePrefix)
	if err != nil {
		return nil, nil, nil, err
	}
	byKind, err := b.loadIndex(ctx, kindPrefix)
	if err != nil {
		return nil, nil, nil, err
	}
	keys = byNode.sorted()
	b.fileIDs(func(yield func(Key) bool) {
		for _, k := range keys {
			if !yield(Key(k)) {
				return
			}
		}
	})
	return keys, byNode.counts, byKind.counts, nil
}

// loadedIndex is one index as read at open: its event keys, in runs that
// each hold one value's keys in order, and the count per value digest.
type loadedIndex struct {
	keys   []Key
	runs   []int // start of each run in keys
	counts map[uint64]int
}

// loadIndex reads every entry of an index.
func (b *datastoreBackend) loadIndex(ctx context.Context, prefix string) (*loadedIndex, error) {
	idx := &loadedIndex{counts: make(map[uint64]int)}
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
		d, err := parseDigestText(segment)
		if err != nil {
			return fmt.Errorf("%w: index entry %q: %v", ErrCorrupt, entry, err)
		}
		idx.keys = append(idx.keys, k)
		idx.counts[d]++
		return nil
	}
	var bad error
	err := b.listKeys(ctx, prefix, false, func(entry string) bool {
		bad = add(entry)
		return bad == nil
	})
	if err != nil {
		return nil, fmt.Errorf("crdt: reading index %s: %w", prefix, err)
	}
	return idx, bad
}

// sorted returns the index's keys in order, merging its sorted runs
// pairwise: O(n log runs), where sorting would be O(n log n) and, at a
// million keys, several times slower.
func (idx *loadedIndex) sorted() []Key {
	keys, runs := idx.keys, append(idx.runs, len(idx.keys))
	buf := make([]Key, len(keys))
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
func mergeRuns(dst, a, b []Key) {
	for len(a) > 0 && len(b) > 0 {
		if a[0].Compare(b[0]) <= 0 {
			dst[0], a = a[0], a[1:]
		} else {
			dst[0], b = b[0], b[1:]
		}
		dst = dst[1:]
	}
	copy(dst[copy(dst, a):], b)
}

func (b *datastoreBackend) write(ctx context.Context, recs []record) error {
	// A group's commit goes on when the leader's ctx ends: other writers'
	// records ride in it.
	ctx = context.WithoutCancel(ctx)
	return b.group.write(recs, func(recs []record) error {
		var added []bucket
		var err error
		if w, ok := b.ds.(BatchWriter); ok {
			err = w.WriteBatch(ctx, func(put func(key, value []byte) error) error {
				added, err = appendEntries(recs, &b.buckets, put)
				return err
			})
		} else {
			added, err = b.writeBatch(ctx, recs)
		}
		if err != nil {
			return fmt.Errorf("crdt: committing %d events: %w", len(recs), err)
		}
		// Before the ordered index has the events: a reader that finds
		// one finds its trace's bucket.
		b.buckets.add(added)
		b.fileIDs(func(yield func(Key) bool) {
			for _, r := range recs {
				if !yield(r.Key) {
					return
				}
			}
		})
		return nil
	})
}

// writeBatch writes recs through a go-datastore batch.
func (b *datastoreBackend) writeBatch(ctx context.Context, recs []record) ([]bucket, error) {
	batch, err := b.ds.Batch(ctx)
	if err != nil {
		return nil, err
	}
	added, err := appendEntries(recs, &b.buckets, func(key, value []byte) error {
		return batch.Put(ctx, datastore.RawKey(string(key)), value)
	})
	if err != nil {
		return nil, err
	}
	return added, batch.Commit(ctx)
}

func (b *datastoreBackend) event(ctx context.Context, k Key) ([]byte, error) {
	data, err := b.ds.Get(ctx, eventKey(k))
	if errors.Is(err, datastore.ErrNotFound) {
		return nil, fmt.Errorf("%w: %v", ErrNotFound, k.ID())
	}
	if err != nil {
		return nil, fmt.Errorf("crdt: reading event %v: %w", k.ID(), err)
	}
	return data, nil
}

func (b *datastoreBackend) keyOf(_ context.Context, id events.ID) (Key, error) {
	b.ids.RLock()
	t, ok := b.ids.m[id]
	b.ids.RUnlock()
	if !ok {
		return Key{}, fmt.Errorf("%w: %v", ErrNotFound, id)
	}
	return Key(append(t[:], id[:]...)), nil
}

// list reads the whole index prefix, from its start or its end: a
// go-datastore listing cannot seek to r. A trace's entries it reads from
// every bucket that may hold some of r.
func (b *datastoreBackend) list(ctx context.Context, i Index, value string, r Range, descending bool, fn func(Key) bool) error {
	if i == ByCorrelation {
		return b.listTrace(ctx, value, r, descending, fn)
	}
	prefix, err := indexPrefix(i, value)
	if err != nil {
		return err
	}
	var bad error
	err = b.listKeys(ctx, prefix, descending, func(entry string) bool {
		k, err := parseKeyText(entry[len(prefix):])
		if err != nil {
			bad = fmt.Errorf("%w: %v index entry %q: %v", ErrCorrupt, i, entry, err)
			return false
		}
		return fn(k)
	})
	return errors.Join(err, bad)
}

// listTrace lists trace value's keys from the buckets that may hold some of
// r. Buckets of different widths, after the set's changed, may overlap:
// the keys are sorted before they are handed on. A trace is short; its
// keys fit in memory.
func (b *datastoreBackend) listTrace(ctx context.Context, value string, r Range, descending bool, fn func(Key) bool) error {
	t, err := events.ParseTraceID(value)
	if err != nil {
		return err
	}
	until := r.To.Time().Wall
	if r.To == MaxKey {
		until = math.MaxInt64
	}
	var keys []Key
	var bad error
	for _, bk := range b.buckets.overlapping(r.From.Time().Wall, until) {
		prefix := string(appendBucketTracePrefix(nil, bk, t))
		err := b.listKeys(ctx, prefix, false, func(entry string) bool {
			k, err := parseKeyText(entry[len(prefix):])
			if err != nil {
				bad = fmt.Errorf("%w: correlation index entry %q: %v", ErrCorrupt, entry, err)
				return false
			}
			keys = append(keys, k)
			return true
		})
		if err = errors.Join(err, bad); err != nil {
			return err
		}
	}
	slices.SortFunc(keys, Key.Compare)
	if descending {
		slices.Reverse(keys)
	}
	for _, k := range keys {
		if !fn(k) {
			return nil
		}
	}
	return nil
}

// listKeys calls fn with the keys under prefix, in order (reverse order if
// descending), until fn returns false: through KeyLister if the datastore
// has it, else with a go-datastore query.
func (b *datastoreBackend) listKeys(ctx context.Context, prefix string, descending bool, fn func(string) bool) error {
	if kl, ok := b.ds.(KeyLister); ok {
		return kl.ListKeys(ctx, prefix, descending, func(key []byte) bool { return fn(string(key)) })
	}
	q := dsq.Query{Prefix: prefix, KeysOnly: true, Orders: []dsq.Order{dsq.OrderByKey{}}}
	if descending {
		q.Orders = []dsq.Order{dsq.OrderByKeyDescending{}}
	}
	res, err := b.ds.Query(ctx, q)
	if err != nil {
		return err
	}
	defer res.Close()
	for entry, ok := res.NextSync(); ok; entry, ok = res.NextSync() {
		if entry.Error != nil {
			return entry.Error
		}
		if !fn(entry.Key) {
			return nil
		}
	}
	return nil
}

// horizonKey holds a datastore set's horizon (expire.go).
var horizonKey = datastore.RawKey("/horizon")

func (b *datastoreBackend) loadHorizon(ctx context.Context) (Key, error) {
	v, err := b.ds.Get(ctx, horizonKey)
	switch {
	case errors.Is(err, datastore.ErrNotFound):
		return MinKey, nil
	case err != nil:
		return Key{}, fmt.Errorf("crdt: reading the horizon: %w", err)
	case len(v) != KeyLen:
		return Key{}, fmt.Errorf("%w: a horizon of %d bytes", ErrCorrupt, len(v))
	}
	return Key(v), nil
}

func (b *datastoreBackend) saveHorizon(ctx context.Context, h Key) error {
	if err := b.ds.Put(ctx, horizonKey, h[:]); err != nil {
		return err
	}
	return b.ds.Sync(ctx, horizonKey)
}

// expire reads the events below before, for what each is filed under,
// and deletes them all in one batch: through a Pruner, as ranges, whose
// tombstones a later listing skips at once, where one per key would each
// be read again until compacted. The correlation index goes a bucket at a
// time, once before has passed the bucket's end; until then readers skip
// its expired entries.
func (b *datastoreBackend) expire(ctx context.Context, before Key) (expiry, error) {
	gone := newExpiry()
	end := appendEventKey(nil, before)
	var bad error
	var ids []events.ID
	err := b.listRange(ctx, []byte(eventPrefix), end, func(key, value []byte) bool {
		e, err := storedLimits.UnmarshalHeader(value)
		if err != nil {
			bad = fmt.Errorf("%w: event %q: %v", ErrCorrupt, key, err)
			return false
		}
		ids = append(ids, e.ID)
		gone.nodes[digest(e.Node)]++
		gone.kinds[digest(e.Kind)]++
		gone.n++
		return true
	})
	if err = errors.Join(err, bad); err != nil {
		return gone, err
	}
	ended := b.buckets.endedBy(before.Time().Wall)
	if gone.n == 0 && len(ended) == 0 {
		return gone, nil
	}
	prune := func(del func(key []byte) error, delRange func(start, end []byte) error) error {
		for _, bk := range ended {
			prefix := append(appendBucket([]byte(correlationPrefix), bk), '/')
			if err := delRange(prefix, prefixEnd(prefix)); err != nil {
				return err
			}
			if err := del(appendBucket([]byte(bucketPrefix), bk)); err != nil {
				return err
			}
		}
		for prefix, digests := range map[string]map[uint64]int{nodePrefix: gone.nodes, kindPrefix: gone.kinds} {
			for d := range digests {
				start := appendDigestPrefix(nil, prefix, d)
				if err := delRange(start, keyText.AppendEncode(slices.Clone(start), before[:])); err != nil {
					return err
				}
			}
		}
		return delRange([]byte(eventPrefix), end)
	}
	if p, ok := b.ds.(Pruner); ok {
		err = p.PruneBatch(ctx, prune)
	} else {
		err = b.pruneBatch(ctx, prune)
	}
	if err != nil {
		return gone, err
	}
	b.buckets.remove(ended)
	b.forgetIDs(ids)
	return gone, nil
}

// listRange calls fn with the keys in [start, end) and their values, in
// order, until fn returns false: through Pruner if the datastore has it,
// else with a go-datastore query over start's prefix up to the first key
// past the range. start must be a prefix of every key in the range.
func (b *datastoreBackend) listRange(ctx context.Context, start, end []byte, fn func(key, value []byte) bool) error {
	if p, ok := b.ds.(Pruner); ok {
		return p.ListRange(ctx, start, end, fn)
	}
	res, err := b.ds.Query(ctx, dsq.Query{Prefix: string(start), Orders: []dsq.Order{dsq.OrderByKey{}}})
	if err != nil {
		return err
	}
	defer res.Close()
	for entry, ok := res.NextSync(); ok; entry, ok = res.NextSync() {
		if entry.Error != nil {
			return entry.Error
		}
		if entry.Key >= string(end) || !fn([]byte(entry.Key), entry.Value) {
			return nil
		}
	}
	return nil
}

// prefixEnd returns the smallest key after every key that starts with
// prefix.
func prefixEnd(prefix []byte) []byte {
	end := slices.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// pruneBatch runs prune through a go-datastore batch, listing each range
// to delete its keys one by one.
func (b *datastoreBackend) pruneBatch(ctx context.Context, prune func(del func(key []byte) error, delRange func(start, end []byte) error) error) error {
	batch, err := b.ds.Batch(ctx)
	if err != nil {
		return err
	}
	del := func(key []byte) error { return batch.Delete(ctx, datastore.RawKey(string(key))) }
	delRange := func(start, end []byte) error {
		var keys []string
		// A range to delete lies under the prefix that ends at its last '/'.
		prefix := string(start[:bytes.LastIndexByte(start, '/')+1])
		err := b.listKeys(ctx, prefix, false, func(k string) bool {
			if k >= string(end) {
				return false
			}
			if k >= string(start) {
				keys = append(keys, k)
			}
			return true
		})
		for _, k := range keys {
			err = errors.Join(err, batch.Delete(ctx, datastore.RawKey(k)))
		}
		return err
	}
	if err := prune(del, delRange); err != nil {
		return err
	}
	return batch.Commit(ctx)
}

func (b *datastoreBackend) bytes(ctx context.Context) (total, reclaimable int64, err error) {
	d, ok := b.ds.(datastore.PersistentDatastore)
	if !ok {
		return 0, 0, nil
	}
	n, err := d.DiskUsage(ctx)
	if err != nil {
		return 0, 0, err
	}
	if r, ok := b.ds.(Reclaimer); ok {
		dead, err := r.ReclaimableBytes(ctx)
		return int64(n), int64(dead), err
	}
	return int64(n), 0, nil
}
