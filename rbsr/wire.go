package rbsr

import (
	"encoding/binary"
	"fmt"
	"math/bits"

	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/hlc"
)

// The reconciliation wire format. A message lists ranges that together cover
// the whole key space, each described by its upper bound (its lower bound is
// the previous range's upper bound, crdt.MinKey for the first):
//
//	message = version:byte range* [check:16]
//	range   = head:byte [shared:byte [len:byte] tail] payload
//
// head holds the range's mode in its top 3 bits and t, the length of the
// bound's tail, in its low 5 bits. t = 0 means the bound is the end of the
// key space: that range is the message's last and nothing of the bound
// follows. Otherwise the bound is a key prefix, the remaining bytes zero: its
// first shared bytes repeat the previous bound's and tail follows; t = 31
// means the tail's length is in the len byte. A bound's prefix is the
// shortest that separates two neighbouring keys, and neighbouring bounds
// share their leading bytes, so a bound usually costs two to five bytes.
//
// payload by mode:
//
//	Skip         nothing
//	Fingerprint  fingerprint:16
//	IDList       count:uvarint [plen:byte id-prefix:plen × count]   (4 <= plen <= 32)
//	IDDiff       count:uvarint bitmap-len:uvarint bitmap
//	Request      nothing
//
// check, present when the message has an IDDiff range, is the fingerprint of
// the sender's events that matched a listed prefix in all its IDDiff ranges
// that answer lists of ID prefixes, taken together.
//
// A responder's message lists IDs: those of its IDList ranges, and those its
// IDDiff ranges count. Over a session they are numbered from 0 in the order
// the messages list them, range by range; the initiator names the events it
// lacks by these numbers (Reconciler.Need), so IDDiff ranges need not carry
// the IDs themselves. A message lists at most listLimit of them.
const reconcileVersion = 2

// rangeMode says what a range of a message carries.
type rangeMode uint8

const (
	// modeSkip: nothing to do here (settled, or left for a later round).
	modeSkip rangeMode = iota
	// modeFingerprint: the sender's fingerprint of the range.
	modeFingerprint
	// modeIDList: the sender's IDs in the range, in key order, each cut to
	// its first plen bytes. The initiator sends prefixes; the responder
	// sends whole IDs.
	modeIDList
	// modeIDDiff (responder only) answers an initiator's IDList: how many
	// of the responder's IDs match no listed prefix (they are listed in key
	// order, but not written), and a bitmap with bit j (byte j/8, bit j%8)
	// set if no responder ID matches listed prefix j.
	modeIDDiff
	// modeRequest (responder only): the responder holds few events here and
	// asks the initiator to list its own.
	modeRequest
	numModes
)

func (m rangeMode) String() string {
	switch m {
	case modeSkip:
		return "Skip"
	case modeFingerprint:
		return "Fingerprint"
	case modeIDList:
		return "IDList"
	case modeIDDiff:
		return "IDDiff"
	case modeRequest:
		return "Request"
	}
	return fmt.Sprintf("rangeMode(%d)", uint8(m))
}

const (
	// idOffset is where the event ID starts in a key, after its time.
	idOffset = hlc.EncodedLen
	idLen    = crdt.KeyLen - idOffset // 32
	// minPrefixLen is the shortest ID prefix a list may use. Shorter ones
	// would only make the check fail, and would let a message of a few
	// bytes per ID make the responder compare each with its own.
	minPrefixLen = 4

	tailEscape = 31 // t value saying the tail length is in its own byte

	// maxBoundCost is the most a range header can take: head, shared and
	// len bytes and a whole key.
	maxBoundCost = 3 + crdt.KeyLen
	// reserveCost is what a writer keeps free for ending a message early:
	// the Skip range before the cut (maxBoundCost), the Fingerprint range
	// to the end of the key space (1+FingerprintLen) and the check.
	reserveCost = maxBoundCost + 1 + FingerprintLen + FingerprintLen
)

// listLimit returns the most IDs a message within the frame limit lists,
// written or counted: as many as a frame holds prefixes of minPrefixLen
// bytes. The responder's caller keeps what its messages listed until the
// initiator has asked for the events by number, so this bounds what one
// message makes it keep.
func listLimit(frameLimit int) int { return frameLimit / minPrefixLen }

// boundLen returns the number of significant bytes of a bound: k without its
// trailing zeros.
func boundLen(k *crdt.Key) int {
	n := crdt.KeyLen
	for n > 0 && k[n-1] == 0 {
		n--
	}
	return n
}

// minimalBound returns the shortest-prefix key b with prev < b <= next. It
// requires prev < next.
func minimalBound(prev, next crdt.Key) crdt.Key {
	var b crdt.Key
	for i := range next {
		b[i] = next[i]
		if next[i] != prev[i] {
			break
		}
	}
	return b
}

// wireRange is one decoded range. Its byte slices alias the message.
type wireRange struct {
	lo, hi crdt.Key // hi is crdt.MaxKey for the range that ends the key space
	mode   rangeMode
	fp     Fingerprint
	count  int    // IDList, IDDiff: number of IDs listed
	plen   int    // IDList: bytes per ID
	ids    []byte // IDList: count×plen bytes
	bitmap []byte // IDDiff
}

// id returns the i-th ID (or ID prefix) of an IDList range.
func (rg *wireRange) id(i int) []byte { return rg.ids[i*rg.plen : (i+1)*rg.plen] }

// msgReader decodes a message range by range without allocating.
type msgReader struct {
	buf     []byte   // unread bytes
	listMax int      // the most IDs a message may list: listLimit
	prev    crdt.Key // the previous bound
	prevLen int      // its significant bytes
	ended   bool     // the range that ends the key space has been read
	diffs   bool     // an IDDiff range has been read
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMessage, fmt.Sprintf(format, args...))
}

// newMsgReader checks msg's size and version.
func newMsgReader(msg []byte, limit int) (msgReader, error) {
	switch {
	case len(msg) == 0:
		return msgReader{}, malformed("empty message")
	case len(msg) > limit:
		return msgReader{}, malformed("%d bytes exceed the frame limit of %d", len(msg), limit)
	case msg[0] != reconcileVersion:
		return msgReader{}, fmt.Errorf("%w: %d (this node speaks %d)", ErrVersion, msg[0], reconcileVersion)
	}
	return msgReader{buf: msg[1:], listMax: listLimit(limit)}, nil
}

// next decodes the next range into rg. It returns false, and no error, after
// the range that ends the key space.
func (r *msgReader) next(rg *wireRange) (bool, error) {
	if r.ended {
		return false, nil
	}
	if len(r.buf) == 0 {
		return false, malformed("ranges end before the end of the key space")
	}
	head := r.buf[0]
	r.buf = r.buf[1:]
	rg.mode = rangeMode(head >> 5)
	if rg.mode >= numModes {
		return false, malformed("unknown range mode %d", rg.mode)
	}
	rg.lo = r.prev
	if t := int(head & 0x1f); t == 0 {
		rg.hi = crdt.MaxKey
		r.ended = true
	} else if err := r.bound(t, rg); err != nil {
		return false, err
	}
	if err := r.payload(rg); err != nil {
		return false, fmt.Errorf("%v range ending at %v: %w", rg.mode, rg.hi, err)
	}
	return true, nil
}

// bound decodes an upper bound whose head gave tail length t.
func (r *msgReader) bound(t int, rg *wireRange) error {
	if len(r.buf) < 1 {
		return malformed("truncated bound")
	}
	shared := int(r.buf[0])
	r.buf = r.buf[1:]
	if t == tailEscape {
		if len(r.buf) < 1 {
			return malformed("truncated bound")
		}
		t = int(r.buf[0])
		r.buf = r.buf[1:]
		if t < tailEscape {
			return malformed("bound tail length %d written long", t)
		}
	}
	switch {
	case shared > r.prevLen:
		return malformed("bound shares %d bytes with a %d-byte bound", shared, r.prevLen)
	case shared+t > crdt.KeyLen:
		return malformed("bound of %d bytes", shared+t)
	case len(r.buf) < t:
		return malformed("truncated bound")
	case r.buf[t-1] == 0:
		return malformed("bound with a trailing zero byte")
	}
	var k crdt.Key
	copy(k[:], r.prev[:shared])
	copy(k[shared:], r.buf[:t])
	r.buf = r.buf[t:]
	if k.Compare(r.prev) <= 0 {
		return malformed("bound %v does not ascend from %v", k, r.prev)
	}
	if k == crdt.MaxKey {
		return malformed("end of the key space written as a bound")
	}
	rg.hi, r.prev, r.prevLen = k, k, shared+t
	return nil
}

// payload decodes the payload of rg's mode, checking every count against
// the bytes left before slicing.
func (r *msgReader) payload(rg *wireRange) error {
	rg.count, rg.plen, rg.ids, rg.bitmap = 0, 0, nil, nil
	switch rg.mode {
	case modeFingerprint:
		if len(r.buf) < FingerprintLen {
			return malformed("truncated fingerprint")
		}
		rg.fp = Fingerprint(r.buf[:FingerprintLen])
		r.buf = r.buf[FingerprintLen:]
	case modeIDList:
		c, err := r.uvarint()
		if err != nil || c == 0 {
			return err
		}
		if len(r.buf) < 1 {
			return malformed("truncated ID list")
		}
		plen := int(r.buf[0])
		r.buf = r.buf[1:]
		if plen < minPrefixLen || plen > idLen {
			return malformed("ID prefix of %d bytes", plen)
		}
		if c > uint64(len(r.buf)/plen) {
			return malformed("%d IDs of %d bytes in %d bytes", c, plen, len(r.buf))
		}
		rg.count, rg.plen = int(c), plen
		rg.ids, r.buf = r.buf[:rg.count*plen], r.buf[rg.count*plen:]
	case modeIDDiff:
		r.diffs = true
		c, err := r.uvarint()
		if err != nil {
			return err
		}
		if c > uint64(r.listMax) {
			return malformed("%d IDs counted, limit %d", c, r.listMax)
		}
		rg.count = int(c)
		b, err := r.uvarint()
		if err != nil {
			return err
		}
		if b > uint64(len(r.buf)) {
			return malformed("bitmap of %d bytes in %d bytes", b, len(r.buf))
		}
		rg.bitmap, r.buf = r.buf[:b], r.buf[b:]
	}
	return nil
}

func (r *msgReader) uvarint() (uint64, error) {
	v, n := binary.Uvarint(r.buf)
	if n <= 0 {
		return 0, malformed("bad varint")
	}
	r.buf = r.buf[n:]
	return v, nil
}

// check reads what follows the ranges: the check fingerprint if an IDDiff
// range was read, else nothing. Call it after next returned false.
func (r *msgReader) check() (Fingerprint, error) {
	want := 0
	if r.diffs {
		want = FingerprintLen
	}
	if len(r.buf) != want {
		return Fingerprint{}, malformed("%d bytes after the ranges, want %d", len(r.buf), want)
	}
	var fp Fingerprint
	copy(fp[:], r.buf)
	return fp, nil
}

// msgWriter builds a message within a frame limit. Consecutive Skip ranges
// merge into one, and a trailing Skip becomes the range that ends the key
// space.
type msgWriter struct {
	buf     []byte
	limit   int
	prev    crdt.Key // the last bound written
	prevLen int
	skipTo  crdt.Key // the bound of a Skip range not yet written
	skip    bool     // whether there is one
	wrote   bool     // a range other than Skip has been written
	diffs   bool     // an IDDiff range has been written
	ended   bool     // the range ending the key space has been written
}

func newMsgWriter(limit int) msgWriter {
	return msgWriter{buf: append(make([]byte, 0, min(limit, 4096)), reconcileVersion), limit: limit}
}

// headerCost returns the bytes of the header of a range ending at hi written
// after a range ending at prev (prevLen significant bytes).
func headerCost(prev *crdt.Key, prevLen int, hi *crdt.Key) int {
	if *hi == crdt.MaxKey {
		return 1
	}
	n := boundLen(hi)
	shared := sharedPrefix(prev[:prevLen], hi[:n])
	if n-shared >= tailEscape {
		return 3 + n - shared
	}
	return 2 + n - shared
}

func sharedPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// cost returns the bytes a range ending at hi with a payload of n bytes adds
// to the message, counting the pending Skip range it ends.
func (w *msgWriter) cost(hi crdt.Key, n int) int {
	prev, prevLen, c := w.prev, w.prevLen, 0
	if w.skip {
		c = headerCost(&prev, prevLen, &w.skipTo)
		prev, prevLen = w.skipTo, boundLen(&w.skipTo)
	}
	return c + headerCost(&prev, prevLen, &hi) + n
}

// fits reports whether n more bytes fit, keeping the reserve for ending the
// message early.
func (w *msgWriter) fits(n int) bool { return len(w.buf)+n+reserveCost <= w.limit }

// everFits reports whether a range costing n bytes fits a message holding
// nothing before it but a Skip range. Output that does not must take another
// form; output that does but does not fit now waits for a later message.
func (w *msgWriter) everFits(n int) bool {
	return 1+maxBoundCost+n+reserveCost <= w.limit
}

// skipRange records a Skip range ending at hi.
func (w *msgWriter) skipRange(hi crdt.Key) { w.skipTo, w.skip = hi, true }

// begin writes the pending Skip range, if any, and the header of a range
// ending at hi; the caller appends the payload to w.buf.
func (w *msgWriter) begin(hi crdt.Key, mode rangeMode) {
	if w.skip {
		w.skip = false
		if w.skipTo == hi {
			panic("rbsr: reconciliation range of zero width")
		}
		w.header(w.skipTo, modeSkip)
	}
	w.header(hi, mode)
	switch mode {
	case modeSkip:
	case modeIDDiff:
		w.diffs, w.wrote = true, true
	default:
		w.wrote = true
	}
}

func (w *msgWriter) header(hi crdt.Key, mode rangeMode) {
	if hi == crdt.MaxKey {
		w.buf = append(w.buf, byte(mode)<<5)
		w.ended = true
		return
	}
	n := boundLen(&hi)
	shared := sharedPrefix(w.prev[:w.prevLen], hi[:n])
	t := n - shared
	if t >= tailEscape {
		w.buf = append(w.buf, byte(mode)<<5|tailEscape, byte(shared), byte(t))
	} else {
		w.buf = append(w.buf, byte(mode)<<5|byte(t), byte(shared))
	}
	w.buf = append(w.buf, hi[shared:n]...)
	w.prev, w.prevLen = hi, n
}

func (w *msgWriter) uvarint(v int) { w.buf = binary.AppendUvarint(w.buf, uint64(v)) }

// finish ends the message: the key space is closed with a Skip range unless
// a range already reached its end, and check follows if an IDDiff range was
// written.
func (w *msgWriter) finish(check Fingerprint) []byte {
	if !w.ended {
		w.skip = false
		w.header(crdt.MaxKey, modeSkip)
	}
	if w.diffs {
		w.buf = append(w.buf, check[:]...)
	}
	if len(w.buf) > w.limit {
		panic(fmt.Sprintf("rbsr: reconciliation message of %d bytes over its limit of %d", len(w.buf), w.limit))
	}
	return w.buf
}

// uvarintLen returns the encoded length of v as a uvarint.
func uvarintLen(v int) int { return (bits.Len64(uint64(v)|1) + 6) / 7 }
