package memstore

import (
	"bytes"
	"context"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
)

const (
	// firstChunk is how many entries a query reads under its first read
	// lock. The event set's index scans often stop after a few results,
	// so the first read is small; later reads double up to maxChunk.
	firstChunk = 32

	// maxChunk bounds the entries a query reads under one read lock, and
	// so how long a query can keep a writer waiting.
	maxChunk = 256
)

// Query answers q by walking the keys under q.Prefix in the tree, seeking
// straight to the prefix rather than reading the whole store.
//
// With no Orders, or with a first order by key (ascending or descending, as
// a value or a pointer), results stream in key order, a chunk at a time;
// Filters, Offset and Limit are applied while streaming, and a query closed
// early reads no further. With any other order, Query reads every entry
// under the prefix that passes the filters and sorts them, as go-datastore's
// NaiveOrder would, before it returns.
//
// No lock is held between calls to Next, so the caller may use the store,
// reads and writes alike, while it consumes the results. A query is not a
// snapshot: an entry written or deleted while it runs may or may not be
// returned. No key is returned twice, and every entry stored for the whole
// life of the query is returned, subject to the query's Filters, Offset and
// Limit.
//
// NextSync and Rest run on the caller's goroutine. Next, the channel form,
// starts a goroutine inside go-datastore, as it does for any store.
func (s *Store) Query(_ context.Context, q dsq.Query) (dsq.Results, error) {
	s.mu.RLock()
	closed := s.mu.tree == nil
	s.mu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	desc, inKeyOrder := keyOrder(q.Orders)
	it := &iterator{
		c:        newCursor(s, q.Prefix, desc),
		keysOnly: q.KeysOnly,
		filters:  q.Filters,
	}
	if inKeyOrder {
		it.skip, it.left, it.limited = q.Offset, q.Limit, q.Limit > 0
		return dsq.ResultsFromIterator(q, dsq.Iterator{Next: it.next, Close: it.close}), nil
	}

	// Sorting needs every candidate first. Collect them here rather than
	// through dsq.NaiveQueryApply: its NaiveOrder drains the results
	// through a channel and a goroutine. The semantics are the same:
	// prefix, then filters, then dsq.Sort, then offset and limit.
	var entries []dsq.Entry
	for r, ok := it.next(); ok; r, ok = it.next() {
		if r.Error != nil {
			return nil, r.Error
		}
		entries = append(entries, r.Entry)
	}
	dsq.Sort(q.Orders, entries)
	if q.Offset > 0 {
		entries = entries[min(q.Offset, len(entries)):]
	}
	if q.Limit > 0 && len(entries) > q.Limit {
		entries = entries[:q.Limit]
	}
	return dsq.ResultsWithEntries(q, entries), nil
}

// keyOrder reports whether the tree's own order answers orders, and in
// which direction. Keys are unique, so once the first order is by key, the
// orders after it never decide anything.
func keyOrder(orders []dsq.Order) (desc, ok bool) {
	if len(orders) == 0 {
		// go-datastore leaves the order undefined; key order is free.
		return false, true
	}
	switch orders[0].(type) {
	case dsq.OrderByKey, *dsq.OrderByKey:
		return false, true
	case dsq.OrderByKeyDescending, *dsq.OrderByKeyDescending:
		return true, true
	}
	return false, false
}

// entry is a key and its stored value, which must not be modified.
type entry struct {
	key   string
	value []byte
}

// cursor walks the keys under one prefix in one direction, reading a chunk
// of entries under each read lock. It remembers only the last key it read,
// so writes between chunks cannot make it return a key twice or skip a key
// that stays in the store.
type cursor struct {
	s    *Store
	desc bool
	// lo and hi bound the keys under the prefix: lo <= key < hi. Both
	// are empty for the root prefix, which holds every key.
	lo, hi string
	// last is the key the previous chunk ended on, once started; the
	// next chunk starts strictly after it (before it, descending).
	last    string
	started bool
	size    int  // entries the next chunk reads
	done    bool // the walk has left the prefix or reached the end
}

func newCursor(s *Store, prefix string, desc bool) *cursor {
	c := &cursor{s: s, desc: desc, size: firstChunk}
	// Clean the prefix as go-datastore's NaiveQueryApply does, so that
	// "/a" selects "/a/b" but neither "/a" nor "/ab".
	if p := ds.NewKey(prefix).String(); p != "/" {
		// The keys that start with p+"/" are exactly those in
		// [p+"/", p+"0"): '0' is the byte after '/'.
		c.lo, c.hi = p+"/", p+"0"
	}
	return c
}

// fill reads the next chunk into buf's storage and returns it; an empty
// chunk means the walk is over.
func (c *cursor) fill(buf []entry) ([]entry, error) {
	buf = buf[:0]
	if c.done {
		return buf, nil
	}
	visit := func(k string, v []byte) bool {
		if c.started && k == c.last {
			return true // read by the previous chunk
		}
		if c.desc {
			if c.hi != "" && k >= c.hi {
				return true // only the bound itself, which Descend includes
			}
			if k < c.lo {
				c.done = true
				return false
			}
		} else if c.hi != "" && k >= c.hi {
			c.done = true
			return false
		}
		buf = append(buf, entry{key: k, value: v})
		return len(buf) < c.size
	}

	c.s.mu.RLock()
	tree := c.s.mu.tree
	if tree == nil {
		c.s.mu.RUnlock()
		c.done = true
		return buf, ErrClosed
	}
	switch {
	case !c.desc && c.started:
		tree.Ascend(c.last, visit)
	case !c.desc:
		tree.Ascend(c.lo, visit)
	case c.started:
		tree.Descend(c.last, visit)
	case c.hi != "":
		tree.Descend(c.hi, visit)
	default:
		tree.Reverse(visit)
	}
	c.s.mu.RUnlock()

	if len(buf) < c.size {
		c.done = true // the tree ran out before the chunk filled
	}
	if len(buf) > 0 {
		c.last, c.started = buf[len(buf)-1].key, true
	}
	c.size = min(2*c.size, maxChunk)
	return buf, nil
}

// iterator applies a query's filters, offset and limit to a cursor's walk.
// Like any query result, it is not safe for concurrent use.
type iterator struct {
	c        *cursor
	keysOnly bool
	filters  []dsq.Filter
	skip     int  // matching entries still to skip, for Offset
	left     int  // entries still to return, if limited
	limited  bool // Limit was set
	buf      []entry
	pos      int
	closed   bool
}

func (it *iterator) next() (dsq.Result, bool) {
	for !it.closed && (!it.limited || it.left > 0) {
		if it.pos == len(it.buf) {
			buf, err := it.c.fill(it.buf)
			it.buf, it.pos = buf, 0
			if err != nil {
				it.close()
				return dsq.Result{Error: err}, true
			}
			if len(buf) == 0 {
				break
			}
		}
		e := it.buf[it.pos]
		it.pos++
		r := dsq.Entry{Key: e.key, Size: len(e.value)}
		if !it.keysOnly {
			// A copy, as from Get: the caller, or a filter, may
			// modify it.
			r.Value = bytes.Clone(e.value)
		}
		if !passes(it.filters, r) {
			continue
		}
		if it.skip > 0 {
			it.skip--
			continue
		}
		it.left--
		return dsq.Result{Entry: r}, true
	}
	it.close()
	return dsq.Result{}, false
}

// close ends the walk and releases the chunk's references to stored
// values. go-datastore may call it more than once.
func (it *iterator) close() error {
	it.closed = true
	it.buf = nil
	return nil
}

func passes(filters []dsq.Filter, e dsq.Entry) bool {
	for _, f := range filters {
		if !f.Filter(e) {
			return false
		}
	}
	return true
}
