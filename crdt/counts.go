package crdt

// valueCounts counts a set's events per node or kind digest, which the
// query planner weighs indexes by. Events come in runs of one value — a
// node records its own events one after another, a merged batch is mostly
// one origin's — and a run adds to the count it found last without looking
// it up again: two map assignments an event were 1.3 % of the CPU of
// recording in memory with 8 callers (`perf record -g go run ./bench record
// -stores memory -callers 8 -events 1000000`).
//
// A valueCounts is not safe for concurrent use.
type valueCounts struct {
	byDigest map[uint64]*int
	last     uint64
	lastN    *int // the count of digest last, nil before the first add
}

func newValueCounts(counts map[uint64]int) valueCounts {
	c := valueCounts{byDigest: make(map[uint64]*int, len(counts))}
	for d, n := range counts {
		c.byDigest[d] = &n
	}
	return c
}

// add counts one more event under digest d.
func (c *valueCounts) add(d uint64) {
	if c.lastN == nil || c.last != d {
		n := c.byDigest[d]
		if n == nil {
			n = new(int)
			c.byDigest[d] = n
		}
		c.last, c.lastN = d, n
	}
	*c.lastN++
}

// get returns the number of events counted under digest d.
func (c *valueCounts) get(d uint64) int {
	if n := c.byDigest[d]; n != nil {
		return *n
	}
	return 0
}
