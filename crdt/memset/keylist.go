package memset

import (
	"slices"
	"sort"
	"unsafe"

	"github.com/scopemesh/scopemesh/crdt/internal/keytree"
)

// keyListChunk is the most keys a chunk of a keyList holds: a chunk is 5.5
// KiB at most, so an insert in the middle moves at most that much.
const keyListChunk = 128

// firstChunkKeys is the room a new list's first chunk has: most lists are
// a trace's, and a trace mostly holds a few events.
const firstChunkKeys = 4

// keyList is a sorted set of keys, the list one value of an index holds. Keys sit in chunks of at most keyListChunk, in order. Keys
// mostly arrive in order (an origin's events come in time order), so the
// common insert appends to the last chunk after one comparison; any other
// finds its chunk by binary search and splits it when full.
//
// A keyList is not safe for concurrent use.
type keyList struct {
	chunks [][]Key // each non-empty, at most keyListChunk long
}

// insert adds k if the list does not hold it.
func (l *keyList) insert(k Key) {
	n := len(l.chunks)
	if n == 0 {
		l.chunks = append(l.chunks, append(make([]Key, 0, firstChunkKeys), k))
		return
	}
	last := l.chunks[n-1]
	if k.Compare(last[len(last)-1]) > 0 {
		if len(last) < keyListChunk {
			l.chunks[n-1] = append(last, k)
		} else {
			// A list this long will likely fill the next chunk too: give
			// it its full size now rather than growing it step by step.
			l.chunks = append(l.chunks, append(make([]Key, 0, keyListChunk), k))
		}
		return
	}
	// A key out of order is mostly only a little so (concurrent writers
	// commit in an order a little off their clocks'): it goes in the last
	// chunk, found without searching the others, each a cache miss.
	i := n - 1
	if k.Compare(last[0]) < 0 {
		i = l.chunkOf(k)
	}
	c := l.chunks[i]
	j, found := slices.BinarySearchFunc(c, k, Key.Compare)
	if found {
		return
	}
	if len(c) == keyListChunk {
		// Split the full chunk in two before inserting, each half with
		// room to grow in place: inserting first would grow the chunk's
		// array to twice its size only to split it.
		half := keyListChunk / 2
		l.chunks = slices.Insert(l.chunks, i+1, append(make([]Key, 0, keyListChunk), c[half:]...))
		l.chunks[i] = c[:half]
		if j > half {
			i, j = i+1, j-half
		}
		c = l.chunks[i]
	}
	l.chunks[i] = slices.Insert(c, j, k)
}

// chunkOf returns the index of the first chunk whose last key is at or
// after k, or len(l.chunks) if there is none.
func (l *keyList) chunkOf(k Key) int {
	return sort.Search(len(l.chunks), func(i int) bool {
		c := l.chunks[i]
		return c[len(c)-1].Compare(k) >= 0
	})
}

// ascend calls fn with the keys at or after from, in order, until fn
// returns false.
func (l *keyList) ascend(from Key, fn func(Key) bool) {
	i := l.chunkOf(from)
	if i == len(l.chunks) {
		return
	}
	j, _ := slices.BinarySearchFunc(l.chunks[i], from, Key.Compare)
	for ; i < len(l.chunks); i, j = i+1, 0 {
		for _, k := range l.chunks[i][j:] {
			if !fn(k) {
				return
			}
		}
	}
}

// descend calls fn with the keys before before, in reverse order, until fn
// returns false.
func (l *keyList) descend(before Key, fn func(Key) bool) {
	i := min(l.chunkOf(before), len(l.chunks)-1)
	if i < 0 {
		return
	}
	j, _ := slices.BinarySearchFunc(l.chunks[i], before, Key.Compare)
	for ; i >= 0; i-- {
		c := l.chunks[i]
		if j < 0 {
			j = len(c)
		}
		for j--; j >= 0; j-- {
			if !fn(c[j]) {
				return
			}
		}
	}
}

// dropBelow removes the keys below before, calling fn with each, in order,
// and reports how many it removed. Chunks wholly below go at once; the
// chunk before goes on holding the memory of its removed keys until it
// goes too.
func (l *keyList) dropBelow(before Key, fn func(Key)) int {
	i := l.chunkOf(before)
	n := 0
	for _, c := range l.chunks[:i] {
		for _, k := range c {
			fn(k)
		}
		n += len(c)
	}
	clear(l.chunks[:i])
	l.chunks = l.chunks[i:]
	if len(l.chunks) > 0 {
		c := l.chunks[0]
		j, _ := slices.BinarySearchFunc(c, before, Key.Compare)
		for _, k := range c[:j] {
			fn(k)
		}
		l.chunks[0] = c[j:]
		n += j
	}
	return n
}

// empty reports whether the list holds no keys.
func (l *keyList) empty() bool { return len(l.chunks) == 0 }

// bytes returns roughly how many bytes the list holds.
func (l *keyList) bytes() int64 {
	n := int64(cap(l.chunks)) * int64(unsafe.Sizeof([]Key{}))
	for _, c := range l.chunks {
		n += int64(cap(c)) * keytree.KeyLen
	}
	return n
}
