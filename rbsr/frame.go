package rbsr

import (
	"errors"
	"fmt"
	"slices"

	"github.com/scopemesh/scopemesh/events"
)

// The sync session's frames. A session runs passes. In each, the initiator
// reconciles the two sets, then asks for the events it lacks and pushes
// those the responder lacks, in bounded batches; the last pass finds the
// sets equal, or that they changed meanwhile. One stream carries one
// session; every frame answers the previous.
//
// A pass compares only what lies above both sides' horizons (retention):
// the initiator starts from its own, and a responder whose horizon is
// higher says so instead of answering, and the pass starts again from
// there. So expired events are never compared, fetched or pushed.
//
// The responder's answers do not spell out most of the IDs of the events
// the initiator lacks, they count them (Reconciler.Need). So the responder
// keeps, for the pass, the IDs its answers listed, and a Want names events
// by their place among them: a bitmap, a bit an ID.
const (
	FrameReconcile  FrameType = 1 // initiator: a reconciliation message of the pass FrameInitiate began
	FrameReconciled FrameType = 2 // responder: its answer
	FrameWant       FrameType = 3 // initiator: bitmap over the IDs the pass's answers listed, bit i%8 of byte i/8 for the i-th
	FrameEvents     FrameType = 4 // either: an events batch, opaque to the session
	FrameAck        FrameType = 5 // responder: uvarint count of pushed events merged
	FrameEnd        FrameType = 6 // responder: end of the events answering a Want; initiator: end of session, 1 if the sets ended equal
	FrameError      FrameType = 7 // either: a reason; the session ends (the driver's to send and read)
	FrameInitiate   FrameType = 8 // initiator: where the pass starts (a 12-byte HLC time), then its first reconciliation message
	FrameHorizon    FrameType = 9 // responder: its horizon, above where the pass was to start: start the pass again from there
)

// FrameType says what a frame of a sync session carries. On the wire a
// frame is its type byte and its payload; framing them on a stream is the
// driver's job.
type FrameType byte

// Frame is one frame of a sync session. Its payload may alias the buffer it
// was read from or written to; the session does not keep it past a call,
// except an events batch it hands back in Ready.Merge.
type Frame struct {
	Type    FrameType
	Payload []byte
}

// Errors of sync sessions. A session that returned one has ended; the
// responder's driver tells its peer why in a FrameError.
var (
	// ErrFrame reports a frame that breaks the protocol: of a type not
	// expected at that point, or with a malformed payload.
	ErrFrame = errors.New("rbsr: bad frame")
	// ErrLimit reports a peer that went past a limit of Config.
	ErrLimit = errors.New("rbsr: session limit exceeded")
	// ErrSession reports a session method called out of turn, or after
	// the session ended.
	ErrSession = errors.New("rbsr: session used out of turn")
)

func badFrame(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFrame, fmt.Sprintf(format, args...))
}

// unexpected reports a frame of a type the session does not take now.
func unexpected(f Frame, want ...FrameType) error {
	return badFrame("type %d, want one of %v", f.Type, want)
}

// wantBitmap encodes a Want for the listed IDs numbered need, which is not
// empty.
func wantBitmap(need []int) []byte {
	bitmap := make([]byte, slices.Max(need)/8+1)
	for _, i := range need {
		bitmap[i/8] |= 1 << (i % 8)
	}
	return bitmap
}

// wantedIDs decodes a Want against the IDs listed in the pass: the IDs
// whose bits are set, in the order listed. It refuses a bitmap longer than
// the listing before it allocates anything.
func wantedIDs(bitmap []byte, listed []events.ID) ([]events.ID, error) {
	if len(bitmap) > (len(listed)+7)/8 {
		return nil, badFrame("a want of %d bytes for %d listed IDs", len(bitmap), len(listed))
	}
	var ids []events.ID
	for i := range len(bitmap) * 8 {
		if bitmap[i/8]&(1<<(i%8)) == 0 {
			continue
		}
		if i >= len(listed) {
			return nil, badFrame("a want for listed ID %d of %d", i, len(listed))
		}
		ids = append(ids, listed[i])
	}
	return ids, nil
}
