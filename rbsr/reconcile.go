package rbsr

import (
	"bytes"
	"errors"
	"fmt"
	"math/bits"
	"slices"

	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/events"
)

// Errors of reconciliation. A message refused with ErrVersion or
// ErrMessage has changed nothing, neither the set nor the session.
var (
	// ErrVersion reports a message in a protocol version this node
	// does not speak.
	ErrVersion = errors.New("rbsr: unsupported reconciliation protocol version")
	// ErrMessage reports a malformed message, or one that breaks
	// the protocol (an answer to nothing, a mode the receiver's role does
	// not accept, a message over the frame limit).
	ErrMessage = errors.New("rbsr: malformed reconciliation message")
	// ErrRounds reports a session that did not finish within
	// Options.MaxRounds messages. What it learned stays valid.
	ErrRounds = errors.New("rbsr: reconciliation did not finish within its round limit")
	// ErrOptions reports invalid Options.
	ErrOptions = errors.New("rbsr: invalid reconciliation options")
	// ErrState reports a Reconciler method called out of order.
	ErrState = errors.New("rbsr: reconciler used out of order")
)

const (
	// DefaultFrameLimit is the frame limit of zero Options.
	DefaultFrameLimit = 64 << 10
	// MinFrameLimit is the smallest frame limit: room for a range split in
	// two with bounds as long as keys, or a short list of whole IDs.
	MinFrameLimit = 1 << 10
	// maxFrameLimit keeps messages, and what decoding them may allocate,
	// to a size a node can afford per session.
	maxFrameLimit = 16 << 20

	defaultBuckets   = 16
	maxBuckets       = 256
	defaultListLimit = 32
	maxListLimit     = 4096
	defaultMaxRounds = 256

	// responderListMax is the most events a responder lists whole in
	// answer to a differing fingerprint. A whole list costs 32 bytes an
	// event; asking the initiator for its list costs a round trip and 4 to
	// 7 bytes for each of its events. Unless the range has nothing in
	// common, asking is cheaper for all but the smallest ranges.
	responderListMax = 2

	// diffChunk is how many keys an IDDiff answer reads from the set at a
	// time.
	diffChunk = 256
)

// Options configure a Reconciler. The zero value means the defaults.
type Options struct {
	// FrameLimit is the largest message, in bytes, the reconciler writes or
	// accepts. A step with more to say than fits leaves the rest to later
	// rounds. Zero means DefaultFrameLimit; at least MinFrameLimit. Both
	// peers of a session must use the same limit.
	FrameLimit int
	// Buckets is the most ranges a range whose fingerprints differ is split
	// into, by count of events. Zero means 16; 2 to 256.
	Buckets int
	// IDListThreshold is how many events a range may hold for the initiator
	// to list their IDs rather than split it; splits aim at buckets of half
	// as many, so that the other side's count in a bucket, which differs a
	// little, still falls under it. Zero means 32; at most 4096.
	IDListThreshold int
	// MaxRounds is how many messages an initiator writes before giving up
	// with ErrRounds, so a responder cannot keep it busy forever.
	// Zero means 256: with the default frame limit, enough for a session
	// between sets of a million events that differ in a hundred thousand
	// (71 rounds when the differences are the newest events, 166 when
	// they are scattered). A session that runs out has still learned
	// something: fetch and send that, and start another.
	MaxRounds int
	// From is where an initiator's session starts: keys below it are
	// compared by neither side. Peers whose horizons differ reconcile
	// from the higher one, as what lies below it one of them no longer
	// keeps (Set.Expire). Zero is crdt.MinKey.
	From crdt.Key
}

// resolve returns o with defaults filled in, or every problem with it.
func (o Options) resolve() (Options, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s", ErrOptions, fmt.Sprintf(format, args...)))
	}
	if o.FrameLimit == 0 {
		o.FrameLimit = DefaultFrameLimit
	}
	if o.FrameLimit < MinFrameLimit || o.FrameLimit > maxFrameLimit {
		bad("FrameLimit %d outside [%d, %d]", o.FrameLimit, MinFrameLimit, maxFrameLimit)
	}
	if o.Buckets == 0 {
		o.Buckets = defaultBuckets
	}
	if o.Buckets < 2 || o.Buckets > maxBuckets {
		bad("Buckets %d outside [2, %d]", o.Buckets, maxBuckets)
	}
	if o.IDListThreshold == 0 {
		o.IDListThreshold = defaultListLimit
	}
	if o.IDListThreshold < 1 || o.IDListThreshold > maxListLimit {
		bad("IDListThreshold %d outside [1, %d]", o.IDListThreshold, maxListLimit)
	}
	if o.MaxRounds == 0 {
		o.MaxRounds = defaultMaxRounds
	}
	if o.MaxRounds < 1 {
		bad("MaxRounds %d is negative", o.MaxRounds)
	}
	return o, errors.Join(errs...)
}

// Reconciler finds the events a set and a peer's set hold that the other
// does not, by range-based set reconciliation: each side compares
// fingerprints of key ranges, splits ranges that differ into buckets, and
// lists the IDs of ranges small enough. It is a pure state machine: messages
// in, messages out, no I/O.
//
// A Reconciler plays either role. As initiator it runs one session: Initiate
// writes the first message, and Reconcile takes each reply and writes the
// next message, until it reports done; meanwhile Have and Need collect what
// it learned. As responder it answers any number of sessions with Respond,
// keeping no state between messages. Need names the events the initiator
// lacks by number, not by ID (see Need): a responder that is to send them
// answers with RespondListing and keeps, for the session, the IDs its
// replies listed.
//
// Respond and RespondListing are safe for concurrent use, with themselves
// and with the initiator methods. The initiator methods (Initiate,
// Reconcile, Have, Need, Listed, Rounds) must not be called concurrently
// with each other.
//
// The set may grow during a session. Every step reads the set once, under
// its read lock, and works out the ranges of the message from their key
// bounds afresh, so it never relies on what an earlier step saw. Events added
// meanwhile may be reported or not, and may cost extra rounds.
type Reconciler struct {
	read func(func(Keys) error) error
	opts Options

	started, done bool
	exhausted     bool       // MaxRounds was reached
	rounds        int        // messages written
	lists         []sentList // the ID lists of the last message, in key order
	have          []events.ID
	known         map[events.ID]struct{} // the IDs in have
	need          []int                  // numbers of the responder's listed IDs, ascending
	needRanges    []needRange            // where need was learned, in key order
	listed        int                    // IDs the replies listed
}

// From returns where the initiator's session starts: Options.From,
// or the set's horizon if it is higher.
func (r *Reconciler) From() crdt.Key { return r.opts.From }

// needRange is a range where the initiator learned of events it lacks: their
// numbers in Need lie in [from, to), the numbers of the IDs the reply listed
// there.
type needRange struct {
	lo, hi   crdt.Key
	from, to int
}

// sentList is an ID list the initiator sent, kept to read the answer's
// bitmap against.
type sentList struct {
	lo, hi crdt.Key
	ids    []events.ID
	whole  bool // listed as whole IDs (or none), not prefixes
}

// NewReconciler returns a Reconciler over s, or an error matching
// ErrOptions. An initiator's session starts at opts.From or at the set's
// horizon, whichever is higher: what lies below it is no longer there to
// compare.
func NewReconciler[K Keys](s Set[K], opts Options) (*Reconciler, error) {
	if h := s.Horizon(); opts.From.Compare(h) < 0 {
		opts.From = h
	}
	return newReconciler(readFunc(s), opts)
}

func newReconciler(read func(func(Keys) error) error, opts Options) (*Reconciler, error) {
	o, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	return &Reconciler{read: read, opts: o, known: make(map[events.ID]struct{})}, nil
}

// emptyFingerprint is the fingerprint of a range without events. A side that
// receives it knows every event it holds in the range is missing there.
var emptyFingerprint = FingerprintOf(idSum{}, 0)

// Initiate starts a session and returns its first message.
func (r *Reconciler) Initiate() ([]byte, error) {
	if r.started {
		return nil, fmt.Errorf("%w: Initiate called twice", ErrState)
	}
	var msg []byte
	err := r.read(func(keys Keys) error {
		st := newStep(keys, &r.opts)
		from, lo := r.opts.From, 0
		if from != crdt.MinKey {
			st.w.skipRange(from)
			lo = keys.Rank(from)
		}
		if from != crdt.MaxKey && !st.answerAsInitiator(from, crdt.MaxKey, lo, keys.Len(), false) {
			st.cut(lo)
		}
		msg = st.w.finish(Fingerprint{})
		r.lists = st.lists
		return nil
	})
	if err != nil {
		return nil, err
	}
	r.started, r.rounds = true, 1
	return msg, nil
}

// Reconcile takes the responder's reply to the last message and returns the
// next message to send, or done once the sets have been compared in full.
// What the reply taught is in Have, Need and Listed before Reconcile
// returns, even with ErrRounds; with any other error the reply
// changed nothing.
func (r *Reconciler) Reconcile(reply []byte) (next []byte, done bool, err error) {
	switch {
	case !r.started:
		return nil, false, fmt.Errorf("%w: Reconcile before Initiate", ErrState)
	case r.done:
		return nil, true, fmt.Errorf("%w: Reconcile after the session ended", ErrState)
	case r.exhausted:
		return nil, false, fmt.Errorf("%w: %d messages", ErrRounds, r.opts.MaxRounds)
	}
	verified, err := r.checkReply(reply)
	if err != nil {
		return nil, false, err
	}
	var lists []sentList
	err = r.read(func(keys Keys) error {
		st := newStep(keys, &r.opts)
		if err := r.apply(st, reply, verified); err != nil {
			return err
		}
		if st.w.wrote {
			next = st.w.finish(Fingerprint{})
		}
		lists = st.lists
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	r.lists = lists
	if next == nil {
		r.done = true
		return nil, true, nil
	}
	if r.rounds == r.opts.MaxRounds {
		r.exhausted = true
		return nil, false, fmt.Errorf("%w: %d messages", ErrRounds, r.opts.MaxRounds)
	}
	r.rounds++
	return next, false, nil
}

// checkReply validates a reply in full before anything acts on it: its
// encoding, that each range's mode is one a responder may send, that each
// IDDiff answers an ID list of the last message, and that it lists no more
// IDs than a message may. It reports whether the IDDiff ranges that answer
// lists of ID prefixes passed their check: the initiator's listed IDs that
// the responder matched must have the fingerprint of the responder's IDs
// that matched them. A mismatch means two IDs shared a listed prefix;
// answers to lists of whole IDs are exact and need no check, so a failure
// never holds them back.
func (r *Reconciler) checkReply(reply []byte) (verified bool, err error) {
	rd, err := newMsgReader(reply, r.opts.FrameLimit)
	if err != nil {
		return false, err
	}
	var claim idSum
	count, next, listed := 0, 0, 0
	var rg wireRange
	for {
		ok, err := rd.next(&rg)
		if err != nil {
			return false, err
		}
		if !ok {
			break
		}
		if listed += rg.count; listed > rd.listMax {
			return false, malformed("reply lists more than %d IDs", rd.listMax)
		}
		switch rg.mode {
		case modeIDList:
			if rg.count > 0 && rg.plen != idLen {
				return false, malformed("responder listed %d-byte ID prefixes", rg.plen)
			}
		case modeIDDiff:
			for next < len(r.lists) && r.lists[next].hi.Compare(rg.hi) < 0 {
				next++
			}
			if next == len(r.lists) || r.lists[next].lo != rg.lo || r.lists[next].hi != rg.hi {
				return false, malformed("IDDiff for [%v, %v) answers no ID list", rg.lo, rg.hi)
			}
			l := r.lists[next].ids
			if len(rg.bitmap) != (len(l)+7)/8 {
				return false, malformed("bitmap of %d bytes for %d IDs", len(rg.bitmap), len(l))
			}
			if len(l)%8 != 0 && rg.bitmap[len(l)/8]>>(len(l)%8) != 0 {
				return false, malformed("bitmap bits past its %d IDs", len(l))
			}
			if r.lists[next].whole {
				break // exact: the check covers only lists of prefixes
			}
			for j, id := range l {
				if rg.bitmap[j/8]&(1<<(j%8)) == 0 {
					claim.add(id[:])
					count++
				}
			}
		}
	}
	check, err := rd.check()
	if err != nil {
		return false, err
	}
	return !rd.diffs || FingerprintOf(claim, count) == check, nil
}

// apply reads a checked reply and writes the initiator's next message into
// st.
//
// REQUIRES: the reply passed checkReply.
func (r *Reconciler) apply(st *step, reply []byte, verified bool) error {
	rd, err := newMsgReader(reply, r.opts.FrameLimit)
	if err != nil {
		return err
	}
	cut, next := false, 0
	var learned []needRange // this reply's, in key order
	var rg wireRange
	for {
		ok, err := rd.next(&rg)
		if err != nil {
			return err
		}
		if !ok {
			r.needRanges = append(r.needRanges, learned...)
			slices.SortFunc(r.needRanges, func(a, b needRange) int { return a.lo.Compare(b.lo) })
			return nil
		}
		first := r.listed // the number of the first ID the range lists
		r.listed += rg.count
		if cut {
			// The fingerprint the cut wrote covers this range, so later
			// rounds find its differences again: learning them now too
			// would learn them twice.
			continue
		}
		loR, hiR := st.rank(rg.lo), st.rank(rg.hi)
		needBefore := len(r.need)
		answer := false
		switch rg.mode {
		case modeSkip:
		case modeFingerprint:
			switch {
			case rg.fp == st.fingerprint(loR, hiR):
			case rg.fp == emptyFingerprint:
				for _, k := range st.keysIn(loR, hiR) {
					r.learnHave(k.ID())
				}
			default:
				answer = true
			}
		case modeRequest:
			answer = true
		case modeIDList:
			r.learnFromList(&rg, st.keysIn(loR, hiR), first)
		case modeIDDiff:
			for r.lists[next].hi != rg.hi {
				next++
			}
			if !verified && !r.lists[next].whole {
				answer = true
				break
			}
			for j, id := range r.lists[next].ids {
				if rg.bitmap[j/8]&(1<<(j%8)) != 0 {
					r.learnHave(id)
				}
			}
			for j := range rg.count {
				r.need = append(r.need, first+j)
			}
		}
		if len(r.need) > needBefore {
			learned = append(learned, needRange{lo: rg.lo, hi: rg.hi, from: first, to: first + rg.count})
		}
		switch {
		case !answer:
			st.w.skipRange(rg.hi)
		case st.answerAsInitiator(rg.lo, rg.hi, loR, hiR, rg.mode == modeIDDiff):
			r.forgetNeed(rg.lo, rg.hi)
		default:
			st.cut(loR)
			r.forgetNeed(rg.lo, crdt.MaxKey)
			cut = true
		}
	}
}

// forgetNeed drops from Need what was learned in ranges within [lo, hi),
// which the message being written covers again: a cut's fingerprint over
// the rest of the key space covers ranges that earlier rounds settled, and
// so does the answer to a responder's cut. The responder lists those
// events again, under new numbers, and Need names each event once.
//
// Learned ranges lie within [lo, hi) or outside it: lo and hi bound ranges
// of an honest reply that need an answer, and those never overlap a
// settled range. A lying responder can at most get events named twice,
// which it then sends twice.
func (r *Reconciler) forgetNeed(lo, hi crdt.Key) {
	i, _ := slices.BinarySearchFunc(r.needRanges, lo, func(nr needRange, k crdt.Key) int { return nr.lo.Compare(k) })
	j := i
	for j < len(r.needRanges) && r.needRanges[j].lo.Compare(hi) < 0 {
		j++
	}
	if i == j {
		return
	}
	gone := slices.Clone(r.needRanges[i:j])
	slices.SortFunc(gone, func(a, b needRange) int { return a.from - b.from })
	k := 0
	// A new slice: callers may still hold the old one.
	r.need = slices.DeleteFunc(slices.Clone(r.need), func(n int) bool {
		for k < len(gone) && gone[k].to <= n {
			k++
		}
		return k < len(gone) && gone[k].from <= n
	})
	r.needRanges = slices.Delete(r.needRanges, i, j)
}

// learnFromList compares the responder's whole ID list of a range, whose
// first ID has number first, with the initiator's keys there.
func (r *Reconciler) learnFromList(rg *wireRange, mine []crdt.Key, first int) {
	theirs := make(map[events.ID]bool, rg.count) // ID → seen here
	for j := range rg.count {
		theirs[events.ID(rg.id(j))] = false
	}
	for _, k := range mine {
		id := k.ID()
		if _, ok := theirs[id]; ok {
			theirs[id] = true
		} else {
			r.learnHave(id)
		}
	}
	for j := range rg.count {
		if !theirs[events.ID(rg.id(j))] {
			r.need = append(r.need, first+j)
		}
	}
}

// learnHave records id in Have, once. An honest responder teaches each
// range once; one that lies could teach a range again.
func (r *Reconciler) learnHave(id events.ID) {
	if _, ok := r.known[id]; ok {
		return
	}
	r.known[id] = struct{}{}
	r.have = append(r.have, id)
}

// Have returns the IDs of the events the initiator holds and the responder
// does not, in the order they were learned: after a round, the IDs past the
// previous length are the ones that round taught. The slice is shared; do
// not modify it.
func (r *Reconciler) Have() []events.ID { return r.have[:len(r.have):len(r.have)] }

// Need returns the events the responder holds and the initiator does not,
// by number: n names the n-th ID (from 0) that the responder's replies of
// this session listed, in the order of the replies and, in each, the order
// RespondListing returned them. The replies count most of these IDs without
// writing them, so only the responder can turn numbers into IDs. The
// numbers ascend and name each event once: a round whose message covers a
// settled range again, as a cut does, drops the numbers learned there, and
// the responder lists those events anew. The slice is shared; do not
// modify it.
func (r *Reconciler) Need() []int { return r.need[:len(r.need):len(r.need)] }

// Listed returns how many IDs the responder's replies of this session have
// listed: the numbers in Need are below it.
func (r *Reconciler) Listed() int { return r.listed }

// Rounds returns how many messages the initiator has written, each a round
// trip once answered.
func (r *Reconciler) Rounds() int { return r.rounds }

// Respond answers a message of a peer's session, within the frame limit,
// from one read of the set. It keeps no state: a responder needs nothing but
// its set between messages.
func (r *Reconciler) Respond(msg []byte) ([]byte, error) {
	reply, _, err := r.RespondListing(msg)
	return reply, err
}

// RespondListing is Respond that also returns the IDs the reply lists, those
// it writes whole and those it only counts, in the order Need numbers them;
// at most a quarter as many as the frame limit has bytes. The initiator's
// Need names the events it lacks by their place among the IDs of all the
// replies of its session, so a responder that is to send them keeps these
// for the session. The listed slice belongs to the caller.
func (r *Reconciler) RespondListing(msg []byte) (reply []byte, listed []events.ID, err error) {
	rd, err := newMsgReader(msg, r.opts.FrameLimit)
	if err != nil {
		return nil, nil, err
	}
	var rg wireRange
	for {
		ok, err := rd.next(&rg)
		if err != nil {
			return nil, nil, err
		}
		if !ok {
			break
		}
		if rg.mode != modeSkip && rg.mode != modeFingerprint && rg.mode != modeIDList {
			return nil, nil, malformed("initiator sent a %v range", rg.mode)
		}
	}
	if _, err := rd.check(); err != nil {
		return nil, nil, err
	}
	err = r.read(func(keys Keys) error {
		st := newStep(keys, &r.opts)
		rd, _ := newMsgReader(msg, r.opts.FrameLimit)
		for {
			if ok, _ := rd.next(&rg); !ok {
				break
			}
			loR, hiR := st.rank(rg.lo), st.rank(rg.hi)
			if !st.answerAsResponder(&rg, loR, hiR) {
				st.cut(loR)
				break
			}
		}
		reply = st.w.finish(FingerprintOf(st.checkSum, st.checkCount))
		listed = st.listed
		return nil
	})
	return reply, listed, err
}

// step is one message being written from one read of the set.
type step struct {
	keys Keys
	opts *Options
	w    msgWriter

	lists []sentList // initiator: the ID lists written

	// responder: the IDs the message lists, and the IDs that matched a
	// prefix in the IDDiff ranges written in answer to prefixes, for the
	// check.
	listed     []events.ID
	checkSum   idSum
	checkCount int

	rankKey   crdt.Key // the last bound rank looked up, and its rank
	rankMemo  int
	rankValid bool
	sumRank   int // the last rank sumBelow computed, and its sum
	sumMemo   idSum
	sumValid  bool
}

func newStep(keys Keys, opts *Options) *step {
	return &step{keys: keys, opts: opts, w: newMsgWriter(opts.FrameLimit)}
}

// rank returns the rank of the range bound k. Ranges come in key order, one
// range's upper bound the next one's lower, so it remembers its last answer.
func (st *step) rank(k crdt.Key) int {
	if st.rankValid && k == st.rankKey {
		return st.rankMemo
	}
	r := st.keys.Len()
	if k != crdt.MaxKey {
		r = st.keys.Rank(k)
	}
	st.rankKey, st.rankMemo, st.rankValid = k, r, true
	return r
}

// sumBelow returns the sum of the IDs of the keys of rank below i. Like
// rank, it remembers its last answer: neighbouring fingerprints then cost one
// descent of the tree each instead of two.
func (st *step) sumBelow(i int) idSum {
	if !st.sumValid || i != st.sumRank {
		st.sumRank, st.sumMemo, st.sumValid = i, idSum(st.keys.Sum(0, i)), true
	}
	return st.sumMemo
}

func (st *step) fingerprint(lo, hi int) Fingerprint {
	below := st.sumBelow(lo)
	sum := st.sumBelow(hi)
	sum.sub(below)
	return FingerprintOf(sum, hi-lo)
}

func (st *step) keysIn(lo, hi int) []crdt.Key {
	return st.keys.Keys(make([]crdt.Key, 0, hi-lo), lo, hi)
}

// cut ends the message's ranges early: one fingerprint covers everything
// from rank lo on, to be compared, and so split or listed, in a later round.
func (st *step) cut(lo int) {
	st.w.begin(crdt.MaxKey, modeFingerprint)
	fp := st.fingerprint(lo, st.keys.Len())
	st.w.buf = append(st.w.buf, fp[:]...)
}

// answerAsInitiator writes the initiator's answer to a range where the sets
// differ: the IDs of its events there, as prefixes unless whole is set, if
// they are few, else buckets. It returns false if the answer must wait for a
// later message.
func (st *step) answerAsInitiator(lo, hi crdt.Key, loR, hiR int, whole bool) bool {
	if hiR-loR > st.opts.IDListThreshold {
		return st.split(lo, hi, loR, hiR)
	}
	mine := st.keysIn(loR, hiR)
	plen := idLen
	if !whole {
		plen = prefixLen(len(mine))
	}
	n := uvarintLen(len(mine))
	if len(mine) > 0 {
		n += 1 + len(mine)*plen
	}
	if !st.w.everFits(st.w.cost(hi, n)) {
		return st.split(lo, hi, loR, hiR)
	}
	if !st.w.fits(st.w.cost(hi, n)) {
		return false
	}
	st.writeList(hi, mine, plen)
	ids := make([]events.ID, len(mine))
	for i, k := range mine {
		ids[i] = k.ID()
	}
	st.lists = append(st.lists, sentList{lo: lo, hi: hi, ids: ids, whole: plen == idLen || len(ids) == 0})
	return true
}

// prefixLen returns how many bytes of each ID an initiator lists for n IDs:
// enough that any of them shares its prefix with one of about as many
// responder IDs with a chance near 2^-24. A shared prefix costs no
// correctness, only a round: the check catches it and the range is listed
// again with whole IDs.
func prefixLen(n int) int {
	return min(max((24+2*bits.Len(uint(n))+7)/8, minPrefixLen), idLen)
}

func (st *step) writeList(hi crdt.Key, keys []crdt.Key, plen int) {
	st.w.begin(hi, modeIDList)
	st.w.uvarint(len(keys))
	if len(keys) > 0 {
		st.w.buf = append(st.w.buf, byte(plen))
		for i := range keys {
			st.w.buf = append(st.w.buf, keys[i][idOffset:idOffset+plen]...)
		}
	}
}

// answerAsResponder writes the responder's answer to one range of the
// initiator's message. It returns false if the answer must wait for a later
// message.
func (st *step) answerAsResponder(rg *wireRange, loR, hiR int) bool {
	n := hiR - loR
	switch rg.mode {
	case modeFingerprint:
		switch {
		case rg.fp == st.fingerprint(loR, hiR):
		case n <= responderListMax || rg.fp == emptyFingerprint:
			// Few events here, or the initiator has none: the whole
			// list is the answer, unless it could never fit.
			return st.wholeList(rg.lo, rg.hi, loR, hiR)
		case n <= st.opts.IDListThreshold:
			if !st.w.fits(st.w.cost(rg.hi, 0)) {
				return false
			}
			st.w.begin(rg.hi, modeRequest)
			return true
		default:
			return st.split(rg.lo, rg.hi, loR, hiR)
		}
	case modeIDList:
		return st.diff(rg, loR, hiR)
	}
	st.w.skipRange(rg.hi)
	return true
}

// wholeList writes the responder's whole IDs of a range, or splits the range
// if they could never fit a message.
func (st *step) wholeList(lo, hi crdt.Key, loR, hiR int) bool {
	n := hiR - loR
	size := uvarintLen(n)
	if n > 0 {
		size += 1 + n*idLen
	}
	if !st.w.everFits(st.w.cost(hi, size)) {
		return st.split(lo, hi, loR, hiR)
	}
	if !st.w.fits(st.w.cost(hi, size)) || len(st.listed)+n > listLimit(st.w.limit) {
		return false
	}
	keys := st.keysIn(loR, hiR)
	st.writeList(hi, keys, idLen)
	for _, k := range keys {
		st.listed = append(st.listed, k.ID())
	}
	return true
}

// diff answers the initiator's ID list of a range with the number of the
// responder's IDs that match none of its prefixes, which it lists, and a
// bitmap of the prefixes that match none of the responder's IDs, or splits
// the range if that could never fit a message.
func (st *step) diff(rg *wireRange, loR, hiR int) bool {
	n := hiR - loR
	maxIDs := listLimit(st.w.limit)
	if n-rg.count > maxIDs {
		// At least n-count IDs would be listed: more than any message
		// lists, so do not even read them.
		return st.split(rg.lo, rg.hi, loR, hiR)
	}
	order := make([]int32, rg.count) // the listed prefixes, sorted
	for j := range order {
		order[j] = int32(j)
	}
	slices.SortFunc(order, func(a, b int32) int { return bytes.Compare(rg.id(int(a)), rg.id(int(b))) })
	bitmap := make([]byte, (rg.count+7)/8)
	for j := range rg.count {
		bitmap[j/8] |= 1 << (j % 8)
	}
	// The responder's keys are read a chunk at a time and only the missing
	// IDs kept, so what this allocates is bounded by the list limit,
	// however many events the range holds.
	var missing []events.ID
	var matched idSum
	chunk := make([]crdt.Key, 0, min(n, diffChunk))
	for at := loR; at < hiR; at += diffChunk {
		chunk = st.keys.Keys(chunk[:0], at, min(at+diffChunk, hiR))
		for i := range chunk {
			id := chunk[i][idOffset:]
			p := id[:max(rg.plen, 1)]
			x, _ := slices.BinarySearchFunc(order, p, func(j int32, p []byte) int { return bytes.Compare(rg.id(int(j)), p) })
			found := false
			for ; x < len(order) && bytes.Equal(rg.id(int(order[x])), p); x++ {
				j := order[x]
				bitmap[j/8] &^= 1 << (j % 8)
				found = true
			}
			if found {
				matched.add(id)
				continue
			}
			if len(missing) == maxIDs {
				return st.split(rg.lo, rg.hi, loR, hiR)
			}
			missing = append(missing, events.ID(id))
		}
	}
	m := len(missing)
	size := uvarintLen(m) + uvarintLen(len(bitmap)) + len(bitmap)
	if !st.w.everFits(st.w.cost(rg.hi, size)) {
		return st.split(rg.lo, rg.hi, loR, hiR)
	}
	if !st.w.fits(st.w.cost(rg.hi, size)) || len(st.listed)+m > maxIDs {
		return false
	}
	st.w.begin(rg.hi, modeIDDiff)
	st.w.uvarint(m)
	st.w.uvarint(len(bitmap))
	st.w.buf = append(st.w.buf, bitmap...)
	st.listed = append(st.listed, missing...)
	if rg.count > 0 && rg.plen < idLen {
		st.checkSum.add(matched[:])
		st.checkCount += n - m
	}
	return true
}

// split writes the range [lo, hi), ranks [loR, hiR), as buckets of about
// equal counts with their fingerprints: enough buckets to bring each to half
// the list threshold, at most Buckets. The range that ends the key space
// also gets buckets of 1, 1, 2, 4, … of its newest events, where events
// one side lacks gather after a partition. split returns false if the
// buckets must wait for a later message.
//
// REQUIRES: hiR-loR >= 2; callers list smaller ranges.
func (st *step) split(lo, hi crdt.Key, loR, hiR int) bool {
	c := hiR - loR
	if c < 2 {
		panic("rbsr: splitting a range of fewer than two events")
	}
	target := max(st.opts.IDListThreshold/2, 1)
	k := min(max((c+target-1)/target, 2), st.opts.Buckets, c)
	for ; k >= 2; k /= 2 {
		bounds, ranks := st.buckets(lo, hi, loR, hiR, k)
		size := st.bucketsCost(bounds)
		if st.w.fits(size) {
			for i, b := range bounds {
				st.w.begin(b, modeFingerprint)
				fp := st.fingerprint(ranks[i], ranks[i+1])
				st.w.buf = append(st.w.buf, fp[:]...)
			}
			return true
		}
		if st.w.everFits(size) {
			return false
		}
	}
	return false
}

// buckets returns the upper bounds of the buckets of [lo, hi) and their
// rank boundaries: bucket i holds ranks ranks[i] to ranks[i+1]-1.
func (st *step) buckets(lo, hi crdt.Key, loR, hiR, k int) (bounds []crdt.Key, ranks []int) {
	c := hiR - loR
	starts := bucketStarts(c, k, hi == crdt.MaxKey)
	bounds = make([]crdt.Key, 0, len(starts)+1)
	ranks = append(make([]int, 0, len(starts)+2), loR)
	for _, s := range starts {
		b := minimalBound(st.keys.At(loR+s-1), st.keys.At(loR+s))
		if b.Compare(hi) >= 0 {
			continue // only a key equal to crdt.MaxKey gets here
		}
		bounds = append(bounds, b)
		ranks = append(ranks, loR+s)
	}
	return append(bounds, hi), append(ranks, hiR)
}

// bucketsCost returns the bytes that Fingerprint ranges ending at bounds add
// to the message.
func (st *step) bucketsCost(bounds []crdt.Key) int {
	prev, prevLen, size := st.w.prev, st.w.prevLen, 0
	if st.w.skip {
		size += headerCost(&prev, prevLen, &st.w.skipTo)
		prev, prevLen = st.w.skipTo, boundLen(&st.w.skipTo)
	}
	for i := range bounds {
		size += headerCost(&prev, prevLen, &bounds[i]) + FingerprintLen
		prev, prevLen = bounds[i], boundLen(&bounds[i])
	}
	return size
}

// bucketStarts returns the offsets at which the buckets after the first
// start, for k buckets of c >= k keys. With open, the newest c/k keys go to
// buckets of 1, 1, 2, 4, … keys counted from the end, the rest to k-1 even
// buckets: after a partition each side's newest events are the ones the
// other lacks, and the small buckets find where they start within a round.
func bucketStarts(c, k int, open bool) []int {
	tail := 0
	if open && c/k >= 4 {
		tail = c / k
	}
	body, kb := c-tail, k
	if tail > 0 {
		kb = k - 1
	}
	starts := make([]int, 0, k+bits.Len(uint(tail)))
	for j := 1; j < kb; j++ {
		starts = append(starts, body*j/kb)
	}
	if tail > 0 {
		starts = append(starts, body)
		n := len(starts)
		for size := 1; c-size > body; size *= 2 {
			starts = append(starts, c-size)
		}
		slices.Reverse(starts[n:])
	}
	return starts
}
