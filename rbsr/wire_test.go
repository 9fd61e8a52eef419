package rbsr

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/scopemesh/scopemesh/crdt"
)

// TestReconcileWireRoundTrip writes random ranges and reads them back.
func TestReconcileWireRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for trial := range 2000 {
		// Ascending bounds, some sharing long prefixes, some whole keys.
		var bounds []crdt.Key
		for _, k := range newKeyGen(uint64(trial)).keys(1 + rng.IntN(20)) {
			switch rng.IntN(3) {
			case 0:
				bounds = append(bounds, k)
			default:
				var b crdt.Key
				copy(b[:], k[:1+rng.IntN(crdt.KeyLen)])
				bounds = append(bounds, b)
			}
		}
		slices.SortFunc(bounds, crdt.Key.Compare)
		bounds = slices.Compact(bounds)
		if bounds[0] == crdt.MinKey {
			bounds = bounds[1:]
		}
		// A bound's significant bytes must not end in zero: trimming
		// them is what the writer does, so compare trimmed keys.
		bounds = append(bounds, crdt.MaxKey)
		w := newMsgWriter(1 << 20)
		type want struct {
			hi   crdt.Key
			mode rangeMode
			body []byte
		}
		var wants []want
		for i, hi := range bounds {
			mode := rangeMode(rng.IntN(int(numModes)))
			if mode == modeSkip && i < len(bounds)-1 {
				mode = modeRequest // Skips merge; keep ranges apart
			}
			w.begin(hi, mode)
			start := len(w.buf)
			switch mode {
			case modeFingerprint:
				w.buf = append(w.buf, bytes.Repeat([]byte{byte(i)}, FingerprintLen)...)
			case modeIDList:
				c := rng.IntN(5)
				w.uvarint(c)
				if c > 0 {
					w.buf = append(w.buf, 5)
					w.buf = append(w.buf, bytes.Repeat([]byte{7}, 5*c)...)
				}
			case modeIDDiff:
				w.uvarint(rng.IntN(listLimit(1 << 20)))
				w.uvarint(2)
				w.buf = append(w.buf, 1, 2)
			}
			wants = append(wants, want{hi, mode, slices.Clone(w.buf[start:])})
		}
		msg := w.finish(Fingerprint{1})
		rd, err := newMsgReader(msg, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		var rg wireRange
		for i, wt := range wants {
			ok, err := rd.next(&rg)
			if err != nil || !ok {
				t.Fatalf("trial %d range %d: %v, %v", trial, i, ok, err)
			}
			if rg.hi != wt.hi || rg.mode != wt.mode {
				t.Fatalf("trial %d range %d: read %v %v, wrote %v %v", trial, i, rg.mode, rg.hi, wt.mode, wt.hi)
			}
			if i > 0 && rg.lo != wants[i-1].hi {
				t.Fatalf("trial %d range %d: lower bound %v, want %v", trial, i, rg.lo, wants[i-1].hi)
			}
		}
		if ok, err := rd.next(&rg); ok || err != nil {
			t.Fatalf("trial %d: a range after the end: %v", trial, err)
		}
		if _, err := rd.check(); err != nil {
			t.Fatalf("trial %d: %v", trial, err)
		}
	}
}

// TestMinimalBound checks that bounds fall between neighbouring keys and
// are as short as that allows.
func TestMinimalBound(t *testing.T) {
	keys := newKeyGen(5).keys(10_000)
	slices.SortFunc(keys, crdt.Key.Compare)
	for i := 1; i < len(keys); i++ {
		a, b := keys[i-1], keys[i]
		if a == b {
			continue
		}
		m := minimalBound(a, b)
		if m.Compare(a) <= 0 || m.Compare(b) > 0 {
			t.Fatalf("bound %v not in (%v, %v]", m, a, b)
		}
		n := boundLen(&m)
		var shorter crdt.Key
		copy(shorter[:], m[:n-1])
		if shorter.Compare(a) > 0 {
			t.Fatalf("bound %v has a shorter prefix %v above %v", m, shorter, a)
		}
	}
}

func fp16(b byte) []byte { return bytes.Repeat([]byte{b}, FingerprintLen) }

func cat(parts ...[]byte) []byte { return slices.Concat(parts...) }

// TestReconcileMalformed feeds broken messages to both roles: each gets the
// right error, and nothing panics.
func TestReconcileMalformed(t *testing.T) {
	resp := newSliceKeys(newKeyGen(1).keys(1000)).reconciler(t, Options{FrameLimit: MinFrameLimit})
	const (
		fp   = byte(modeFingerprint) << 5
		list = byte(modeIDList) << 5
		diff = byte(modeIDDiff) << 5
		req  = byte(modeRequest) << 5
	)
	v := []byte{reconcileVersion}
	maxBound := append([]byte{31, 0, crdt.KeyLen}, crdt.MaxKey[:]...)
	for _, c := range []struct {
		name string
		msg  []byte
		want error
	}{
		{"empty", nil, ErrMessage},
		{"version 1", []byte{1, 0}, ErrVersion},
		{"version 3", []byte{3, 0}, ErrVersion},
		{"version 0", []byte{0}, ErrVersion},
		{"no ranges", v, ErrMessage},
		{"trailing byte", cat(v, []byte{0, 0}), ErrMessage},
		{"check without IDDiff", cat(v, []byte{0}, fp16(1)), ErrMessage},
		{"unknown mode", cat(v, []byte{7 << 5}), ErrMessage},
		{"no end of key space", cat(v, []byte{1, 0, 5}), ErrMessage},
		{"bound going back", cat(v, []byte{1, 0, 5, 1, 0, 4, 0}), ErrMessage},
		{"bound repeated", cat(v, []byte{1, 0, 5, 1, 1}, []byte{0}), ErrMessage},
		{"bound sharing too much", cat(v, []byte{1, 3, 5, 0}), ErrMessage},
		{"bound ending in zero", cat(v, []byte{2, 0, 5, 0, 0}), ErrMessage},
		{"short tail written long", cat(v, []byte{31, 0, 5, 1, 2, 3, 4, 5, 0}), ErrMessage},
		{"bound over a key", cat(v, []byte{31, 0, 45}, bytes.Repeat([]byte{1}, 45), []byte{0}), ErrMessage},
		{"truncated bound", cat(v, []byte{3, 0, 5}), ErrMessage},
		{"crdt.MaxKey as a bound", cat(v, maxBound, []byte{0}), ErrMessage},
		{"truncated fingerprint", cat(v, []byte{fp, 1, 2, 3}), ErrMessage},
		{"list longer than the message", cat(v, []byte{list, 0xff, 0xff, 0x03, 4, 1, 2, 3, 4}), ErrMessage},
		{"list count overflowing", cat(v, []byte{list}, bytes.Repeat([]byte{0xff}, 10), []byte{1}), ErrMessage},
		{"3-byte prefixes", cat(v, []byte{list, 1, 3, 1, 2, 3}), ErrMessage},
		{"33-byte prefixes", cat(v, []byte{list, 1, 33}, make([]byte, 33)), ErrMessage},
		{"IDDiff to a responder", cat(v, []byte{diff, 0, 0}, fp16(0)), ErrMessage},
		{"Request to a responder", cat(v, []byte{req}), ErrMessage},
		{"over the frame limit", cat(v, make([]byte, MinFrameLimit)), ErrMessage},
	} {
		reply, err := resp.Respond(c.msg)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: Respond = %d bytes, %v; want %v", c.name, len(reply), err, c.want)
		}
	}

	// Replies the initiator must refuse. Its first message lists its 3
	// events as prefixes, so it expects at most an IDDiff for the whole
	// key space.
	init := newSliceKeys(newKeyGen(2).keys(3)).reconciler(t, Options{})
	if _, err := init.Initiate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		msg  []byte
	}{
		{"prefix list from a responder", cat(v, []byte{list, 1, 4, 1, 2, 3, 4})},
		{"IDDiff for another range", cat(v, []byte{diff | 1, 0, 5, 0, 1, 0}, []byte{0}, fp16(0))},
		{"bitmap too long", cat(v, []byte{diff, 0, 2, 0, 0}, fp16(0))},
		{"bitmap too short", cat(v, []byte{diff, 0, 0}, fp16(0))},
		{"bitmap bits past the list", cat(v, []byte{diff, 0, 1, 0x0f}, fp16(0))},
		{"IDDiff without check", cat(v, []byte{diff, 0, 1, 0})},
		{"IDDiff counting past the list limit", cat(v, []byte{diff, 0x81, 0x80, 0x01, 1, 0}, fp16(0))},
		{"IDDiff count overflowing", cat(v, []byte{diff}, bytes.Repeat([]byte{0xff}, 9), []byte{1, 1, 0}, fp16(0))},
	} {
		if next, done, err := init.Reconcile(c.msg); !errors.Is(err, ErrMessage) {
			t.Errorf("%s: Reconcile = %d bytes, %v, %v; want ErrMessage", c.name, len(next), done, err)
		}
	}
	// After all that, the session still works.
	// The responder lacks all three: the check is then that of no events.
	if _, done, err := init.Reconcile(cat(v, []byte{diff, 0, 1, 0x07}, emptyFingerprint[:])); err != nil || !done || len(init.Have()) != 3 {
		t.Fatalf("honest reply after bad ones: %v, %v", done, err)
	}
}

// TestReconcileListLimit checks that the initiator refuses a reply whose
// ranges together list more IDs than a message may, and numbers the IDs of
// one that lists just that many.
func TestReconcileListLimit(t *testing.T) {
	keys := newSliceKeys(newKeyGen(3).keys(3))
	opts := Options{FrameLimit: MinFrameLimit, IDListThreshold: 2, Buckets: 2}
	limit := listLimit(MinFrameLimit)
	init := keys.reconciler(t, opts)
	msg, err := init.Initiate()
	if err != nil {
		t.Fatal(err)
	}
	// Ask the initiator to list its IDs in each of its buckets.
	w := newMsgWriter(MinFrameLimit)
	for _, rg := range readRanges(t, msg) {
		w.begin(rg.hi, modeRequest)
	}
	msg, _, err = init.Reconcile(w.finish(Fingerprint{}))
	if err != nil {
		t.Fatal(err)
	}
	lists := readRanges(t, msg)
	if len(lists) != 2 || lists[0].mode != modeIDList || lists[1].mode != modeIDList {
		t.Fatalf("the initiator answered requests with %+v, want two ID lists", lists)
	}
	// The responder holds every listed ID and, in the two ranges, first
	// and second more it counts.
	diffs := func(first, second int) []byte {
		w := newMsgWriter(MinFrameLimit)
		for i, rg := range lists {
			w.begin(rg.hi, modeIDDiff)
			w.uvarint([]int{first, second}[i])
			w.uvarint(1)
			w.buf = append(w.buf, 0)
		}
		return w.finish(FingerprintOf(keys.Sum(0, 3), 3))
	}
	if _, _, err := init.Reconcile(diffs(limit, 1)); !errors.Is(err, ErrMessage) {
		t.Fatalf("a reply listing %d IDs: %v, want ErrMessage", limit+1, err)
	}
	if _, done, err := init.Reconcile(diffs(limit-1, 1)); err != nil || !done {
		t.Fatalf("a reply listing %d IDs: %v, %v", limit, done, err)
	}
	need := init.Need()
	if init.Listed() != limit || len(need) != limit || need[0] != 0 || need[limit-1] != limit-1 {
		t.Fatalf("listed %d, need %d numbers from %v to %v; want %d, 0 to %d", init.Listed(), len(need), need[0], need[len(need)-1], limit, limit-1)
	}
}

// readRanges decodes a message's ranges.
func readRanges(t *testing.T, msg []byte) []wireRange {
	t.Helper()
	rd, err := newMsgReader(msg, maxFrameLimit)
	if err != nil {
		t.Fatal(err)
	}
	var out []wireRange
	for {
		var rg wireRange
		ok, err := rd.next(&rg)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return out
		}
		out = append(out, rg)
	}
}

// fuzzKeys is the set fuzzed reconcilers hold: small, so that what they
// allocate is dominated by what the message makes them allocate.
var fuzzKeys = newKeyGen(99).keys(400)

const fuzzFrame = 4 << 10

// allocated returns the bytes the heap handed out while fn ran.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// seedMessages returns messages of real sessions over sets like fuzzKeys,
// each tagged with the role that receives it.
func seedMessages(tb testing.TB) (toResponder, toInitiator [][]byte) {
	rng := rand.New(rand.NewPCG(5, 5))
	for _, p := range []float64{0, 0.05, 0.5} {
		a, b := split(fuzzKeys, func(i int) int {
			if rng.Float64() < p || i > 380 {
				return 1 + rng.IntN(2)
			}
			return 0
		})
		opts := Options{FrameLimit: fuzzFrame, IDListThreshold: 8}
		init := newSliceKeys(a).reconciler(tb, opts)
		resp := newSliceKeys(b).reconciler(tb, opts)
		msg, _ := init.Initiate()
		for range 20 {
			toResponder = append(toResponder, msg)
			reply, err := resp.Respond(msg)
			if err != nil {
				tb.Fatal(err)
			}
			toInitiator = append(toInitiator, reply)
			next, done, err := init.Reconcile(reply)
			if err != nil {
				tb.Fatal(err)
			}
			if done {
				break
			}
			msg = next
		}
	}
	return toResponder, toInitiator
}

// FuzzReconcileRespond feeds arbitrary bytes to a responder: it must never
// panic, must answer within the frame limit with a message that decodes, and
// must not allocate more than a few frames' worth whatever the message
// claims.
func FuzzReconcileRespond(f *testing.F) {
	toResponder, _ := seedMessages(f)
	for _, m := range toResponder {
		f.Add(m)
	}
	f.Add([]byte{reconcileVersion, byte(modeIDList) << 5, 0xff, 0xff, 0x03, 4})
	resp := newSliceKeys(fuzzKeys).reconciler(f, Options{FrameLimit: fuzzFrame, IDListThreshold: 8})
	f.Fuzz(func(t *testing.T, msg []byte) {
		var reply []byte
		var err error
		n := allocated(func() { reply, err = resp.Respond(msg) })
		if n > 8*fuzzFrame+64<<10 {
			t.Fatalf("Respond allocated %d bytes for a %d-byte message", n, len(msg))
		}
		if err != nil {
			if !errors.Is(err, ErrMessage) && !errors.Is(err, ErrVersion) {
				t.Fatalf("unexpected error: %v", err)
			}
			return
		}
		if len(reply) > fuzzFrame {
			t.Fatalf("reply of %d bytes", len(reply))
		}
		rd, err := newMsgReader(reply, fuzzFrame)
		if err != nil {
			t.Fatal(err)
		}
		var rg wireRange
		for {
			ok, err := rd.next(&rg)
			if err != nil {
				t.Fatalf("reply does not decode: %v", err)
			}
			if !ok {
				break
			}
		}
		if _, err := rd.check(); err != nil {
			t.Fatalf("reply does not decode: %v", err)
		}
	})
}

// FuzzReconcileReply feeds arbitrary bytes to an initiator as the reply to
// its first or a later message: it must never panic, never write past the
// frame limit, and a refused reply must leave the session able to go on.
func FuzzReconcileReply(f *testing.F) {
	_, toInitiator := seedMessages(f)
	for _, m := range toInitiator {
		f.Add(false, m)
		f.Add(true, m)
	}
	a, b := split(fuzzKeys, func(i int) int { return i % 7 / 5 * (1 + i%2) })
	opts := Options{FrameLimit: fuzzFrame, IDListThreshold: 8, MaxRounds: 50}
	ka, kb := newSliceKeys(a), newSliceKeys(b)
	resp := kb.reconciler(f, opts)
	f.Fuzz(func(t *testing.T, later bool, reply []byte) {
		init := ka.reconciler(t, opts)
		msg, err := init.Initiate()
		if err != nil {
			t.Fatal(err)
		}
		if later {
			// One honest round first, so the initiator has ID lists
			// out for the fuzzed reply to answer.
			honest, err := resp.Respond(msg)
			if err != nil {
				t.Fatal(err)
			}
			next, done, err := init.Reconcile(honest)
			if err != nil || done {
				return
			}
			msg = next
		}
		var next []byte
		var done bool
		n := allocated(func() { next, done, err = init.Reconcile(reply) })
		if n > 8*fuzzFrame+256<<10 {
			t.Fatalf("Reconcile allocated %d bytes for a %d-byte reply", n, len(reply))
		}
		if err != nil {
			if !errors.Is(err, ErrMessage) && !errors.Is(err, ErrVersion) {
				t.Fatalf("unexpected error: %v", err)
			}
			// The refused reply changed nothing: the honest one works.
			honest, err := resp.Respond(msg)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := init.Reconcile(honest); err != nil {
				t.Fatalf("honest reply after a refused one: %v", err)
			}
			return
		}
		if len(next) > fuzzFrame {
			t.Fatalf("next message of %d bytes", len(next))
		}
		if done {
			return
		}
		// A lying responder may have taught anything, but the honest one
		// must still be able to answer what the initiator wrote.
		if _, err := resp.Respond(next); err != nil {
			t.Fatalf("initiator wrote a message the responder refuses: %v", err)
		}
	})
}

// FuzzReconcileSession runs whole sessions over sets and options the fuzzer
// picks and checks the answer against the naive differences.
func FuzzReconcileSession(f *testing.F) {
	f.Add(uint64(1), uint16(100), uint8(10), uint8(0), uint8(0), uint8(0), uint8(0))
	f.Add(uint64(2), uint16(3000), uint8(200), uint8(1), uint8(1), uint8(2), uint8(3))
	f.Add(uint64(3), uint16(0), uint8(0), uint8(2), uint8(0), uint8(0), uint8(0))
	f.Add(uint64(4), uint16(2000), uint8(255), uint8(3), uint8(2), uint8(14), uint8(1))
	f.Fuzz(func(t *testing.T, seed uint64, n uint16, perMille, layout, frame, buckets, list uint8) {
		rng := rand.New(rand.NewPCG(seed, 0))
		universe := newKeyGen(seed).keys(int(n % 5000))
		p := float64(perMille) / 1000
		tail := len(universe) - rng.IntN(len(universe)/2+1)
		a, b := split(universe, func(i int) int {
			switch {
			case layout%3 == 1 && i >= tail, layout%3 != 1 && rng.Float64() < p:
				return 1 + rng.IntN(2)
			case layout%3 == 2 && i >= tail:
				return 1 + int(layout/3%2)
			}
			return 0
		})
		opts := Options{
			FrameLimit:      []int{0, MinFrameLimit, 2 << 10, 8 << 10}[frame%4],
			Buckets:         int(buckets % 40),
			IDListThreshold: int(list % 50),
			MaxRounds:       1_000_000,
		}
		if opts.Buckets == 1 {
			opts.Buckets = 2
		}
		s := run(t, newSliceKeys(a).reconciler(t, opts), newSliceKeys(b).reconciler(t, opts), nil)
		checkExact(t, s, a, b)
		if limit := cmpOr(opts.FrameLimit, DefaultFrameLimit); s.maxMsg > limit {
			t.Fatalf("message of %d bytes over the limit of %d", s.maxMsg, limit)
		}
	})
}
