package rbsr

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/internal/fixture"
)

// sliceKeys is the naive model of a set's index: a sorted slice, read by
// binary search, with the sums of its prefixes recomputed at every insert.
type sliceKeys struct {
	mu     sync.RWMutex
	keys   []crdt.Key
	prefix []idSum // prefix[i] sums the IDs of keys[:i]
}

var _ Keys = (*sliceKeys)(nil)

func newSliceKeys(keys []crdt.Key) *sliceKeys {
	keys = slices.Clone(keys)
	slices.SortFunc(keys, crdt.Key.Compare)
	s := &sliceKeys{keys: slices.Compact(keys)}
	s.sumFrom(0)
	return s
}

// sumFrom recomputes the prefix sums from keys[i] on.
func (s *sliceKeys) sumFrom(i int) {
	s.prefix = append(s.prefix[:min(i+1, len(s.prefix))], make([]idSum, len(s.keys)+1-min(i+1, len(s.prefix)))...)
	for j := i; j < len(s.keys); j++ {
		s.prefix[j+1] = s.prefix[j]
		s.prefix[j+1].add(s.keys[j][idOffset:])
	}
}

func (s *sliceKeys) Len() int { return len(s.keys) }

func (s *sliceKeys) Rank(k crdt.Key) int {
	i, _ := slices.BinarySearchFunc(s.keys, k, crdt.Key.Compare)
	return i
}

func (s *sliceKeys) At(i int) crdt.Key { return s.keys[i] }

func (s *sliceKeys) Sum(lo, hi int) [32]byte {
	sum := s.prefix[hi]
	sum.sub(s.prefix[lo])
	return sum
}

func (s *sliceKeys) Keys(dst []crdt.Key, lo, hi int) []crdt.Key { return append(dst, s.keys[lo:hi]...) }

func (s *sliceKeys) insert(k crdt.Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i, ok := slices.BinarySearchFunc(s.keys, k, crdt.Key.Compare); !ok {
		s.keys = slices.Insert(s.keys, i, k)
		s.sumFrom(i)
	}
}

func (s *sliceKeys) read(fn func(Keys) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return fn(s)
}

func (s *sliceKeys) reconciler(t testing.TB, opts Options) *Reconciler {
	t.Helper()
	r, err := newReconciler(s.read, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// keyGen makes keys shaped like real ones: times a few microseconds apart,
// now and then equal, and random IDs.
type keyGen struct {
	rng  *rand.Rand
	wall int64
}

func newKeyGen(seed uint64) *keyGen {
	return &keyGen{rng: rand.New(rand.NewPCG(seed, 7)), wall: fixture.Start}
}

func (g *keyGen) next() crdt.Key {
	if g.rng.IntN(16) != 0 {
		g.wall += int64(1 + g.rng.IntN(5000))
	}
	var k crdt.Key
	binary.BigEndian.PutUint64(k[0:], uint64(g.wall)^1<<63)
	binary.BigEndian.PutUint32(k[8:], uint32(g.rng.IntN(3)))
	for i := idOffset; i < crdt.KeyLen; i += 8 {
		binary.LittleEndian.PutUint64(k[i:], g.rng.Uint64())
	}
	return k
}

func (g *keyGen) keys(n int) []crdt.Key {
	keys := make([]crdt.Key, n)
	for i := range keys {
		keys[i] = g.next()
	}
	return keys
}

// split deals the sorted universe of keys to two sides: where picks, for
// key i, 0 for both sides, 1 for the first only, 2 for the second only.
func split(universe []crdt.Key, where func(i int) int) (a, b []crdt.Key) {
	for i, k := range universe {
		switch where(i) {
		case 0:
			a, b = append(a, k), append(b, k)
		case 1:
			a = append(a, k)
		case 2:
			b = append(b, k)
		}
	}
	return a, b
}

// difference returns the IDs of keys in a and not in b: the naive answer.
func difference(a, b []crdt.Key) map[events.ID]bool {
	inB := make(map[crdt.Key]bool, len(b))
	for _, k := range b {
		inB[k] = true
	}
	d := make(map[events.ID]bool)
	for _, k := range a {
		if !inB[k] {
			d[k.ID()] = true
		}
	}
	return d
}

// session is the outcome of one reconciliation run to its end.
type session struct {
	rounds     int
	bytesOut   int // initiator to responder
	bytesIn    int // responder to initiator
	maxMsg     int
	maxListed  int // the most IDs one reply listed
	have, need []events.ID
}

// run drives a session between two reconcilers. between, if set, runs
// after every message, so tests can change the sets mid-session.
func run(t testing.TB, init, resp *Reconciler, between func()) session {
	t.Helper()
	var s session
	var listing responderListing
	msg, err := init.Initiate()
	if err != nil {
		t.Fatal(err)
	}
	for {
		s.bytesOut += len(msg)
		s.maxMsg = max(s.maxMsg, len(msg))
		if between != nil {
			between()
		}
		reply, err := listing.respond(resp, msg)
		if err != nil {
			t.Fatalf("Respond in round %d: %v", init.Rounds(), err)
		}
		s.bytesIn += len(reply)
		s.maxMsg = max(s.maxMsg, len(reply))
		s.maxListed = max(s.maxListed, listing.last)
		if between != nil {
			between()
		}
		next, done, err := init.Reconcile(reply)
		if err != nil {
			t.Fatalf("Reconcile in round %d: %v", init.Rounds(), err)
		}
		if done {
			break
		}
		msg = next
	}
	s.rounds = init.Rounds()
	s.have, s.need = init.Have(), listing.resolve(t, init)
	return s
}

// responderListing is what a responder's caller keeps over a session: the
// IDs its replies listed, which the initiator's Need numbers.
type responderListing struct {
	ids  []events.ID
	last int // IDs the last reply listed
}

func (l *responderListing) respond(resp *Reconciler, msg []byte) ([]byte, error) {
	reply, listed, err := resp.RespondListing(msg)
	l.ids = append(l.ids, listed...)
	l.last = len(listed)
	return reply, err
}

// resolve returns the IDs init's Need names, after checking that the two
// sides agree on how many IDs the replies listed.
func (l *responderListing) resolve(t testing.TB, init *Reconciler) []events.ID {
	t.Helper()
	if init.Listed() != len(l.ids) {
		t.Fatalf("the initiator counts %d listed IDs, the responder listed %d", init.Listed(), len(l.ids))
	}
	ids := make([]events.ID, len(init.Need()))
	for i, n := range init.Need() {
		ids[i] = l.ids[n]
	}
	return ids
}

// checkExact fails unless have and need are exactly the naive differences,
// each ID once.
func checkExact(t testing.TB, s session, a, b []crdt.Key) {
	t.Helper()
	for _, c := range []struct {
		name string
		got  []events.ID
		want map[events.ID]bool
	}{{"have", s.have, difference(a, b)}, {"need", s.need, difference(b, a)}} {
		seen := make(map[events.ID]bool, len(c.got))
		for _, id := range c.got {
			if seen[id] {
				t.Fatalf("%s lists %v twice", c.name, id)
			}
			seen[id] = true
			if !c.want[id] {
				t.Fatalf("%s lists %v, which is not in the difference", c.name, id)
			}
		}
		if len(seen) != len(c.want) {
			t.Fatalf("%s has %d IDs, want %d", c.name, len(seen), len(c.want))
		}
	}
}

type scenario struct {
	name string
	deal func(n int, rng *rand.Rand) func(i int) int
}

var scenarios = []scenario{
	{"identical", func(int, *rand.Rand) func(int) int { return func(int) int { return 0 } }},
	{"scattered", func(n int, rng *rand.Rand) func(int) int {
		p := []float64{0.0005, 0.01, 0.2}[rng.IntN(3)]
		return func(int) int {
			if rng.Float64() < p {
				return 1 + rng.IntN(2)
			}
			return 0
		}
	}},
	{"partition", func(n int, rng *rand.Rand) func(int) int {
		tail := n - rng.IntN(n/2+1)
		return func(i int) int {
			if i >= tail {
				return 1 + rng.IntN(2)
			}
			return 0
		}
	}},
	{"one side behind", func(n int, rng *rand.Rand) func(int) int {
		tail, side := n-rng.IntN(n/4+1), 1+rng.IntN(2)
		return func(i int) int {
			if i >= tail {
				return side
			}
			return 0
		}
	}},
	{"strict subset", func(n int, rng *rand.Rand) func(int) int {
		side := 1 + rng.IntN(2)
		return func(int) int {
			if rng.IntN(3) == 0 {
				return side
			}
			return 0
		}
	}},
	{"disjoint", func(_ int, rng *rand.Rand) func(int) int {
		return func(int) int { return 1 + rng.IntN(2) }
	}},
	{"one side empty", func(_ int, rng *rand.Rand) func(int) int {
		side := 1 + rng.IntN(2)
		return func(int) int { return side }
	}},
	{"clustered and scattered", func(n int, rng *rand.Rand) func(int) int {
		lo := rng.IntN(n + 1)
		hi := lo + rng.IntN(n-lo+1)
		return func(i int) int {
			if i >= lo && i < hi && rng.IntN(2) == 0 || rng.IntN(500) == 0 {
				return 1 + rng.IntN(2)
			}
			return 0
		}
	}},
}

// TestReconcileModel checks, over many random pairs of sets, that a session
// ends with Have and Need equal to the naive set differences, and that no
// message exceeds the frame limit.
func TestReconcileModel(t *testing.T) {
	sizes := []int{0, 1, 2, 3, 17, 100, 1000, 5000}
	maxN := 100_000
	if testing.Short() || raceEnabled {
		maxN = 20_000
	}
	type limits struct {
		name string
		opts Options
	}
	optss := []limits{
		{"default", Options{}},
		{"2KiB", Options{FrameLimit: 2 << 10, MaxRounds: 100_000}},
		{"1KiB/4 buckets/list 3", Options{FrameLimit: 1 << 10, Buckets: 4, IDListThreshold: 3, MaxRounds: 100_000}},
		{"wide", Options{Buckets: 64, IDListThreshold: 100}},
	}
	for si, sc := range scenarios {
		for oi, o := range optss {
			t.Run(sc.name+"/"+o.name, func(t *testing.T) {
				t.Parallel()
				// The fixed sizes, then two at random and the largest.
				sizeRng := rand.New(rand.NewPCG(uint64(si), uint64(oi)))
				ns := append(slices.Clone(sizes), sizeRng.IntN(maxN+1), sizeRng.IntN(maxN+1), maxN)
				for trial, n := range ns {
					seed := uint64(si*1000 + oi*100 + trial)
					rng := rand.New(rand.NewPCG(seed, uint64(trial)))
					universe := newKeyGen(seed).keys(n)
					a, b := split(universe, sc.deal(n, rng))
					opts := o.opts
					if opts.MaxRounds == 0 {
						opts.MaxRounds = 10_000
					}
					init := newSliceKeys(a).reconciler(t, opts)
					resp := newSliceKeys(b).reconciler(t, opts)
					s := run(t, init, resp, nil)
					checkExact(t, s, a, b)
					limit := cmpOr(opts.FrameLimit, DefaultFrameLimit)
					if s.maxMsg > limit {
						t.Fatalf("n=%d: a message of %d bytes, limit %d", n, s.maxMsg, limit)
					}
					if s.maxListed > listLimit(limit) {
						t.Fatalf("n=%d: a reply listing %d IDs, limit %d", n, s.maxListed, listLimit(limit))
					}
					if sc.name == "identical" && s.rounds != 1 {
						t.Fatalf("n=%d identical: %d rounds, want 1", n, s.rounds)
					}
				}
			})
		}
	}
}

func cmpOr(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// TestReconcileIdentical checks that equal sets take one round and a reply
// of two bytes.
func TestReconcileIdentical(t *testing.T) {
	keys := newKeyGen(3).keys(100_000)
	init := newSliceKeys(keys).reconciler(t, Options{})
	resp := newSliceKeys(keys).reconciler(t, Options{})
	msg, err := init.Initiate()
	if err != nil {
		t.Fatal(err)
	}
	reply, err := resp.Respond(msg)
	if err != nil {
		t.Fatal(err)
	}
	if len(reply) != 2 {
		t.Errorf("reply to an equal set: %d bytes, want 2", len(reply))
	}
	next, done, err := init.Reconcile(reply)
	if err != nil || !done || next != nil {
		t.Fatalf("Reconcile = %d bytes, %v, %v; want done", len(next), done, err)
	}
	if init.Rounds() != 1 || len(init.Have())+len(init.Need()) != 0 {
		t.Errorf("rounds %d, have %d, need %d", init.Rounds(), len(init.Have()), len(init.Need()))
	}
	t.Logf("first message for %d keys: %d bytes", len(keys), len(msg))
}

// TestReconcileEmpty covers empty sets on either side and on both.
func TestReconcileEmpty(t *testing.T) {
	keys := newKeyGen(4).keys(3000)
	for _, c := range []struct {
		name string
		a, b []crdt.Key
	}{{"both", nil, nil}, {"initiator", nil, keys}, {"responder", keys, nil}} {
		t.Run(c.name, func(t *testing.T) {
			s := run(t, newSliceKeys(c.a).reconciler(t, Options{}), newSliceKeys(c.b).reconciler(t, Options{}), nil)
			checkExact(t, s, c.a, c.b)
			if c.b == nil && s.rounds != 1 {
				t.Errorf("%d rounds against an empty responder, want 1", s.rounds)
			}
			t.Logf("%d rounds, %d+%d bytes", s.rounds, s.bytesOut, s.bytesIn)
		})
	}
}

// TestReconcilePartitionRounds checks the case range-based reconciliation
// exists for here: after a partition each side's newest events are missing
// on the other, and a few round trips find them.
func TestReconcilePartitionRounds(t *testing.T) {
	for _, d := range []int{1, 10, 1000} {
		universe := newKeyGen(uint64(d)).keys(50_000 + d)
		rng := rand.New(rand.NewPCG(uint64(d), 1))
		a, b := split(universe, func(i int) int {
			if i < 50_000 {
				return 0
			}
			return 1 + rng.IntN(2)
		})
		s := run(t, newSliceKeys(a).reconciler(t, Options{}), newSliceKeys(b).reconciler(t, Options{}), nil)
		checkExact(t, s, a, b)
		if s.rounds > 3 {
			t.Errorf("d=%d: %d rounds, want at most 3", d, s.rounds)
		}
		t.Logf("d=%d: %d rounds, %d+%d bytes (%.2f × 32d)", d, s.rounds, s.bytesOut, s.bytesIn, float64(s.bytesOut+s.bytesIn)/float64(32*d))
	}
}

// TestReconcileFrom: sides that differ below From as well as above find
// only the differences above it, however much lies below.
func TestReconcileFrom(t *testing.T) {
	universe := newKeyGen(77).keys(20_000)
	for _, cut := range []int{0, 1, 5_000, 19_990, 20_000} {
		rng := rand.New(rand.NewPCG(uint64(cut), 2))
		a, b := split(universe, func(int) int { return rng.IntN(8) % 3 })
		from := crdt.MaxKey
		if cut < len(universe) {
			from = universe[cut]
		}
		above := func(keys []crdt.Key) []crdt.Key {
			return slices.DeleteFunc(slices.Clone(keys), func(k crdt.Key) bool { return k.Compare(from) < 0 })
		}
		s := run(t, newSliceKeys(a).reconciler(t, Options{From: from}), newSliceKeys(b).reconciler(t, Options{}), nil)
		checkExact(t, s, above(a), above(b))
	}
}

// TestReconcilePrefixCollision makes IDs share their leading bytes, so the
// initiator's ID prefixes match IDs they are not: the check must catch it,
// and the answer must still be exact. (IDs sharing all but their last few
// bytes would defeat the fingerprints themselves, sums of IDs; see the
// package documentation.)
func TestReconcilePrefixCollision(t *testing.T) {
	for _, shared := range []int{4, 8, 16} {
		universe := newKeyGen(uint64(shared)).keys(3000)
		for i := range universe {
			// Every ID starts with the same bytes.
			copy(universe[i][idOffset:idOffset+shared], "0123456789abcdef0123456789abcdef")
		}
		rng := rand.New(rand.NewPCG(9, uint64(shared)))
		a, b := split(universe, func(int) int {
			if rng.IntN(10) == 0 {
				return 1 + rng.IntN(2)
			}
			return 0
		})
		s := run(t, newSliceKeys(a).reconciler(t, Options{}), newSliceKeys(b).reconciler(t, Options{}), nil)
		checkExact(t, s, a, b)
		t.Logf("shared %d bytes: %d rounds", shared, s.rounds)
	}
}

// TestReconcileSameTime gives many events one timestamp, so bounds have to
// reach into the IDs, up to the whole key.
func TestReconcileSameTime(t *testing.T) {
	g := newKeyGen(11)
	universe := g.keys(5000)
	for i := range universe {
		copy(universe[i][:idOffset], universe[0][:idOffset])
		if i%2 == 0 {
			// Neighbouring IDs differing only in their last byte make
			// bounds of a whole key.
			copy(universe[i][idOffset:crdt.KeyLen-1], universe[0][idOffset:])
		}
	}
	slices.SortFunc(universe, crdt.Key.Compare)
	universe = slices.Compact(universe)
	rng := rand.New(rand.NewPCG(11, 0))
	a, b := split(universe, func(int) int {
		if rng.IntN(20) == 0 {
			return 1 + rng.IntN(2)
		}
		return 0
	})
	for _, limit := range []int{MinFrameLimit, DefaultFrameLimit} {
		opts := Options{FrameLimit: limit, MaxRounds: 10_000}
		s := run(t, newSliceKeys(a).reconciler(t, opts), newSliceKeys(b).reconciler(t, opts), nil)
		checkExact(t, s, a, b)
		if s.maxMsg > limit {
			t.Fatalf("message of %d bytes over the limit of %d", s.maxMsg, limit)
		}
	}
}

// TestReconcileGrowing adds events to both sets while a session runs, as
// gossip does, at random places and at the newest end. The session must end,
// report only real differences, and report every difference that held from
// start to end.
func TestReconcileGrowing(t *testing.T) {
	for seed := range uint64(20) {
		g := newKeyGen(seed)
		rng := rand.New(rand.NewPCG(seed, 2))
		universe := g.keys(20_000)
		late := g.keys(2000) // events that turn up during the session
		a0, b0 := split(universe, func(i int) int {
			if i > 19_000 || rng.IntN(200) == 0 {
				return 1 + rng.IntN(2)
			}
			return 0
		})
		a, b := newSliceKeys(a0), newSliceKeys(b0)
		opts := Options{FrameLimit: []int{MinFrameLimit, 4 << 10, DefaultFrameLimit}[seed%3], MaxRounds: 10_000}
		between := func() {
			for range rng.IntN(30) {
				var k crdt.Key
				switch rng.IntN(3) {
				case 0: // an old event one side lacked reaches it
					k = universe[rng.IntN(len(universe))]
				default:
					k = late[rng.IntN(len(late))]
				}
				switch rng.IntN(3) {
				case 0:
					a.insert(k)
				case 1:
					b.insert(k)
				default:
					a.insert(k)
					b.insert(k)
				}
			}
		}
		s := run(t, a.reconciler(t, opts), b.reconciler(t, opts), between)
		have, need := toSet(s.have), toSet(s.need)
		for id := range have {
			if need[id] {
				t.Fatalf("seed %d: %v both in have and need", seed, id)
			}
		}
		checkSubset(t, "have", have, a.keys)
		checkSubset(t, "need", need, b.keys)
		for id := range difference(a0, b.keys) {
			if !have[id] {
				t.Fatalf("seed %d: have misses %v, never on the responder", seed, id)
			}
		}
		for id := range difference(b0, a.keys) {
			if !need[id] {
				t.Fatalf("seed %d: need misses %v, never on the initiator", seed, id)
			}
		}
	}
}

func toSet(ids []events.ID) map[events.ID]bool {
	m := make(map[events.ID]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}

func checkSubset(t *testing.T, name string, ids map[events.ID]bool, keys []crdt.Key) {
	t.Helper()
	all := make(map[events.ID]bool, len(keys))
	for _, k := range keys {
		all[k.ID()] = true
	}
	for id := range ids {
		if !all[id] {
			t.Fatalf("%s lists %v, which the side never held", name, id)
		}
	}
}

// TestReconcileSet reconciles two real sets, then repairs them with what
// the session found: afterwards they hold the same events.
func TestReconcileSet(t *testing.T) {
	ctx := context.Background()
	g := fixture.New(5, 3)
	common, onlyA, onlyB := g.Batch(3000), g.Batch(120), g.Batch(80)
	scattered := g.Batch(400) // half to each side, interleaved in time with the rest
	a := newSet(t)
	b := newSet(t)
	merge := func(s *crdt.Set, evs []events.Event) {
		t.Helper()
		if _, err := s.Merge(ctx, evs); err != nil {
			t.Fatal(err)
		}
	}
	merge(a, common)
	merge(b, common)
	merge(a, onlyA)
	merge(b, onlyB)
	for i, e := range scattered {
		merge([]*crdt.Set{a, b}[i%2], []events.Event{e})
	}
	init, err := NewReconciler(a, Options{FrameLimit: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := NewReconciler(b, Options{FrameLimit: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	s := run(t, init, resp, nil)
	if len(s.have) != 120+200 || len(s.need) != 80+200 {
		t.Fatalf("have %d, need %d; want 320, 280", len(s.have), len(s.need))
	}
	copyEvents := func(from, to *crdt.Set, ids []events.ID) {
		t.Helper()
		var evs []events.Event
		for _, id := range ids {
			e, err := from.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			evs = append(evs, e)
		}
		added, err := to.Merge(ctx, evs)
		if err != nil || len(added) != len(ids) {
			t.Fatalf("merged %d of %d: %v", len(added), len(ids), err)
		}
	}
	copyEvents(b, a, s.need)
	copyEvents(a, b, s.have)
	sa, _ := a.Sum(crdt.All)
	sb, _ := b.Sum(crdt.All)
	if sa != sb || a.Len() != b.Len() {
		t.Fatal("sets differ after repair")
	}
	again := run(t, mustReconciler(t, a), mustReconciler(t, b), nil)
	if again.rounds != 1 || len(again.have)+len(again.need) != 0 {
		t.Fatalf("after repair: %d rounds, %d+%d differences", again.rounds, len(again.have), len(again.need))
	}
}

func mustReconciler(t *testing.T, s *crdt.Set) *Reconciler {
	t.Helper()
	r, err := NewReconciler(s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestReconcileSetGrowing merges into real sets from other goroutines while
// a session runs over them.
func TestReconcileSetGrowing(t *testing.T) {
	ctx := context.Background()
	g := fixture.New(6, 3)
	common, late := g.Batch(2000), g.Batch(600)
	a := newSet(t)
	b := newSet(t)
	if _, err := a.Merge(ctx, common[:1900]); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Merge(ctx, common[100:]); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i, s := range []*crdt.Set{a, b} {
		wg.Go(func() {
			for j := i; j < len(late); j += 2 {
				if _, err := s.Merge(ctx, late[j:j+1]); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	opts := Options{FrameLimit: MinFrameLimit, MaxRounds: 10_000}
	init, _ := NewReconciler(a, opts)
	resp, _ := NewReconciler(b, opts)
	s := run(t, init, resp, nil)
	wg.Wait()
	have, need := toSet(s.have), toSet(s.need)
	for _, e := range common[1900:] {
		if !need[e.ID] {
			t.Fatalf("need misses %v", e.ID)
		}
	}
	for _, e := range common[:100] {
		if !have[e.ID] {
			t.Fatalf("have misses %v", e.ID)
		}
	}
}

// TestReconcileClosed checks that a closed set refuses to reconcile.
func TestReconcileClosed(t *testing.T) {
	s := newSet(t)
	r := mustReconciler(t, s)
	s.Close()
	if _, err := r.Initiate(); !errors.Is(err, crdt.ErrClosed) {
		t.Fatalf("Initiate on a closed set: %v, want crdt.ErrClosed", err)
	}
	if _, err := r.Respond([]byte{reconcileVersion, 0}); !errors.Is(err, crdt.ErrClosed) {
		t.Fatalf("Respond on a closed set: %v, want crdt.ErrClosed", err)
	}
}

// TestOptions checks defaults and that every problem is reported.
func TestOptions(t *testing.T) {
	o, err := Options{}.resolve()
	if err != nil {
		t.Fatal(err)
	}
	want := Options{FrameLimit: DefaultFrameLimit, Buckets: 16, IDListThreshold: 32, MaxRounds: 256}
	if o != want {
		t.Errorf("defaults %+v, want %+v", o, want)
	}
	for _, bad := range []Options{
		{FrameLimit: 100},
		{FrameLimit: -1},
		{FrameLimit: 1 << 30},
		{Buckets: 1},
		{Buckets: 1000},
		{IDListThreshold: -2},
		{IDListThreshold: 5000},
		{MaxRounds: -1},
	} {
		if _, err := newReconciler(newSliceKeys(nil).read, bad); !errors.Is(err, ErrOptions) {
			t.Errorf("%+v: %v, want ErrOptions", bad, err)
		}
	}
	_, err = Options{FrameLimit: 1, Buckets: 1, MaxRounds: -1}.resolve()
	if n := len(err.(interface{ Unwrap() []error }).Unwrap()); n != 3 {
		t.Errorf("%d problems reported, want 3: %v", n, err)
	}
}

// TestReconcileOutOfOrder checks the initiator's state errors.
func TestReconcileOutOfOrder(t *testing.T) {
	r := newSliceKeys(newKeyGen(1).keys(10)).reconciler(t, Options{})
	if _, _, err := r.Reconcile([]byte{reconcileVersion, 0}); !errors.Is(err, ErrState) {
		t.Errorf("Reconcile before Initiate: %v", err)
	}
	if _, err := r.Initiate(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Initiate(); !errors.Is(err, ErrState) {
		t.Errorf("second Initiate: %v", err)
	}
	if _, done, err := r.Reconcile([]byte{reconcileVersion, 0}); !done || err != nil {
		t.Fatalf("all-Skip reply: done %v, %v", done, err)
	}
	if _, _, err := r.Reconcile([]byte{reconcileVersion, 0}); !errors.Is(err, ErrState) {
		t.Errorf("Reconcile after done: %v", err)
	}
}

// TestReconcileMaxRounds plays a responder that never agrees: the initiator
// gives up after MaxRounds messages.
func TestReconcileMaxRounds(t *testing.T) {
	r := newSliceKeys(newKeyGen(2).keys(50_000)).reconciler(t, Options{MaxRounds: 5})
	msg, err := r.Initiate()
	if err != nil {
		t.Fatal(err)
	}
	// One fingerprint over the whole key space that matches nothing.
	hostile := append([]byte{reconcileVersion, byte(modeFingerprint) << 5}, make([]byte, 16)...)
	hostile[2] = 1
	for i := 1; ; i++ {
		next, done, err := r.Reconcile(hostile)
		if errors.Is(err, ErrRounds) {
			if i != 5 || r.Rounds() != 5 {
				t.Fatalf("gave up at reply %d after %d messages, want 5", i, r.Rounds())
			}
			break
		}
		if err != nil || done || len(next) == 0 {
			t.Fatalf("reply %d: %d bytes, %v, %v", i, len(next), done, err)
		}
		msg = next
	}
	_ = msg
	if _, _, err := r.Reconcile(hostile); !errors.Is(err, ErrRounds) {
		t.Errorf("after giving up: %v", err)
	}
}

// TestReconcileBadReplyChangesNothing checks that a malformed reply leaves
// the session as it was: the right reply afterwards still works.
func TestReconcileBadReplyChangesNothing(t *testing.T) {
	universe := newKeyGen(8).keys(10_000)
	rng := rand.New(rand.NewPCG(8, 8))
	a, b := split(universe, func(int) int {
		if rng.IntN(50) == 0 {
			return 1 + rng.IntN(2)
		}
		return 0
	})
	init := newSliceKeys(a).reconciler(t, Options{})
	resp := newSliceKeys(b).reconciler(t, Options{})
	msg, err := init.Initiate()
	if err != nil {
		t.Fatal(err)
	}
	var s session
	var listing responderListing
	for {
		reply, err := listing.respond(resp, msg)
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range [][]byte{reply[:len(reply)-1], append(slices.Clone(reply), 0), {reconcileVersion + 1, 0}} {
			if _, _, err := init.Reconcile(bad); err == nil {
				t.Fatalf("bad reply of %d bytes accepted", len(bad))
			}
		}
		next, done, err := init.Reconcile(reply)
		if err != nil {
			t.Fatal(err)
		}
		if done {
			break
		}
		msg = next
	}
	s.have, s.need = init.Have(), listing.resolve(t, init)
	checkExact(t, s, a, b)
}

func TestBucketStarts(t *testing.T) {
	for _, c := range []struct {
		c, k int
		open bool
		want []int
	}{
		{4, 2, false, []int{2}},
		{10, 3, false, []int{3, 6}},
		{64, 4, true, []int{16, 32, 48, 56, 60, 62, 63}},
		{7, 2, true, []int{3}},
	} {
		if got := bucketStarts(c.c, c.k, c.open); !slices.Equal(got, c.want) {
			t.Errorf("bucketStarts(%d, %d, %v) = %v, want %v", c.c, c.k, c.open, got, c.want)
		}
	}
	for c := 2; c < 3000; c += 1 + c/10 {
		for k := 2; k <= min(c, 64); k++ {
			for _, open := range []bool{false, true} {
				s := bucketStarts(c, k, open)
				if !slices.IsSorted(s) || s[0] <= 0 || s[len(s)-1] >= c || len(slices.Compact(slices.Clone(s))) != len(s) {
					t.Fatalf("bucketStarts(%d, %d, %v) = %v", c, k, open, s)
				}
			}
		}
	}
}

func TestPrefixLen(t *testing.T) {
	for _, c := range []struct{ n, want int }{{1, 4}, {15, 4}, {16, 5}, {255, 5}, {256, 6}, {1 << 20, 9}} {
		if got := prefixLen(c.n); got != c.want {
			t.Errorf("prefixLen(%d) = %d, want %d", c.n, got, c.want)
		}
	}
}

func newSet(t testing.TB) *crdt.Set {
	t.Helper()
	s := crdt.NewMemory(crdt.Options{})
	t.Cleanup(func() { s.Close() })
	return s
}
