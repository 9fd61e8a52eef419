package cluster

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/events"
)

// The full-state baseline heals a split the naive way: each pair of
// replicas across it swaps the IDs of everything it holds, then the events
// the other lacks. It moves the whole set's IDs on every heal, however
// small the difference; reconciliation should move little more than the
// difference. It runs on replicas of its own (crdt.Sets, as nodes keep)
// over libp2p streams between hosts of its own, counted like the nodes'.
const baselinePrefix = "/scopemesh-bench/full-state/"

var fullStateProto = protocol.ID(baselinePrefix + "1")

// Baseline is what the full-state heal measured.
type Baseline struct {
	Seconds float64 `json:"seconds"` // from the first dial to every replica holding every event
	Traffic Traffic `json:"traffic"`
	Ratio   float64 `json:"ratio"` // Traffic.Total() over the heal's MissingBytes
	IDBytes int64   `json:"id_bytes"`
}

// Frame types of the exchange.
const (
	frameIDs       byte = 1 // 32-byte IDs back to back
	frameIDsEnd    byte = 2
	frameEvents    byte = 3 // an events.EncodeBatch batch
	frameEventsEnd byte = 4
	frameMerged    byte = 5 // the responder merged everything it was sent
)

// idsPerFrame keeps an ID frame at 256 KiB.
const idsPerFrame = 8192

type fullStateReplica struct {
	host host.Host
	wire *Wire
	set  *crdt.Set

	mu  sync.Mutex
	ids map[events.ID]bool
}

// RunFullState builds one replica per state, then heals them as the
// cluster heals: every replica of side a exchanges with every replica of
// side b, all pairs at once. missing is the heal's lower bound, for the
// ratio.
func RunFullState(ctx context.Context, states [][]events.Event, a, b []int, missing int64) (Baseline, error) {
	reps := make([]*fullStateReplica, len(states))
	defer func() {
		for _, r := range reps {
			if r != nil {
				r.close()
			}
		}
	}()
	union := make(map[events.ID]bool)
	for i, st := range states {
		r, err := newFullStateReplica(ctx, st)
		if err != nil {
			return Baseline{}, err
		}
		reps[i] = r
		for _, e := range st {
			union[e.ID] = true
		}
	}

	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	var idBytes int64
	for _, i := range a {
		for _, j := range b {
			wg.Go(func() {
				n, err := reps[i].exchange(ctx, reps[j])
				mu.Lock()
				defer mu.Unlock()
				idBytes += n
				if err != nil {
					errs = append(errs, fmt.Errorf("replicas %d and %d: %w", i, j, err))
				}
			})
		}
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return Baseline{}, err
	}
	elapsed := time.Since(start)
	var t Traffic
	for i, r := range reps {
		if got := r.set.Len(); got != len(union) {
			return Baseline{}, fmt.Errorf("replica %d holds %d events after the exchange, want %d", i, got, len(union))
		}
		t = t.Add(r.wire.Sent())
	}
	return Baseline{Seconds: elapsed.Seconds(), Traffic: t, Ratio: float64(t.Total()) / float64(missing), IDBytes: idBytes}, nil
}

// newSet returns an in-memory set holding evs, as a node's would.
func newSet(ctx context.Context, evs []events.Event) (*crdt.Set, error) {
	set := crdt.NewMemory(crdt.Options{})
	for len(evs) > 0 {
		n := min(len(evs), 1000)
		if _, err := set.Merge(ctx, evs[:n]); err != nil {
			set.Close()
			return nil, err
		}
		evs = evs[n:]
	}
	return set, nil
}

func newFullStateReplica(ctx context.Context, evs []events.Event) (*fullStateReplica, error) {
	r := &fullStateReplica{wire: NewWire(), ids: make(map[events.ID]bool, len(evs))}
	var err error
	if r.set, err = newSet(ctx, evs); err != nil {
		return nil, err
	}
	for _, e := range evs {
		r.ids[e.ID] = true
	}
	if r.host, err = NewHost(r.wire); err != nil {
		return nil, err
	}
	r.host.SetStreamHandler(fullStateProto, r.serve)
	return r, nil
}

func (r *fullStateReplica) close() {
	if r.host != nil {
		r.host.Close()
	}
	r.set.Close()
}

// snapshot returns the IDs the replica holds now.
func (r *fullStateReplica) snapshot() []events.ID {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]events.ID, 0, len(r.ids))
	for id := range r.ids {
		out = append(out, id)
	}
	return out
}

// lacking returns the events the replica holds whose IDs are not in theirs.
func (r *fullStateReplica) lacking(ctx context.Context, theirs map[events.ID]bool) ([]events.Event, error) {
	var out []events.Event
	for _, id := range r.snapshot() {
		if theirs[id] {
			continue
		}
		e, err := r.set.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func (r *fullStateReplica) merge(ctx context.Context, evs []events.Event) error {
	if _, err := r.set.Merge(ctx, evs); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range evs {
		r.ids[e.ID] = true
	}
	return nil
}

// exchange runs the initiator's side with peer and returns the bytes of
// IDs the two sent.
func (r *fullStateReplica) exchange(ctx context.Context, peer *fullStateReplica) (int64, error) {
	ai := lpeer.AddrInfo{ID: peer.host.ID(), Addrs: peer.host.Addrs()}
	if err := r.host.Connect(ctx, ai); err != nil {
		return 0, err
	}
	s, err := r.host.NewStream(ctx, ai.ID, fullStateProto)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	rw := bufio.NewReadWriter(bufio.NewReader(s), bufio.NewWriter(s))
	mine := r.snapshot()
	if err := writeIDs(rw.Writer, mine); err != nil {
		return 0, err
	}
	theirs, err := readIDs(rw.Reader)
	if err != nil {
		return 0, err
	}
	send, err := r.lacking(ctx, theirs)
	if err != nil {
		return 0, err
	}
	// Both sides now send events at once: write in the background so
	// neither blocks on a full stream window while the other does too.
	werr := make(chan error, 1)
	go func() { werr <- writeEvents(rw.Writer, send) }()
	rerr := r.readEvents(ctx, rw.Reader)
	if err := errors.Join(<-werr, rerr); err != nil {
		s.Reset()
		return 0, err
	}
	// The heal is over when the responder has merged what it was sent.
	if typ, _, err := readFrame(rw.Reader); err != nil || typ != frameMerged {
		s.Reset()
		return 0, fmt.Errorf("waiting for the responder to merge: frame %d, %v", typ, err)
	}
	return int64(32 * (len(mine) + len(theirs))), nil
}

// serve runs the responder's side of an exchange.
func (r *fullStateReplica) serve(s network.Stream) {
	defer s.Close()
	ctx := context.Background()
	rw := bufio.NewReadWriter(bufio.NewReader(s), bufio.NewWriter(s))
	theirs, err := readIDs(rw.Reader)
	if err != nil {
		s.Reset()
		return
	}
	werr := make(chan error, 1)
	go func() {
		err := writeIDs(rw.Writer, r.snapshot())
		if err == nil {
			var send []events.Event
			if send, err = r.lacking(ctx, theirs); err == nil {
				err = writeEvents(rw.Writer, send)
			}
		}
		werr <- err
	}()
	rerr := r.readEvents(ctx, rw.Reader)
	if errors.Join(<-werr, rerr) != nil {
		s.Reset()
		return
	}
	if writeFrame(rw.Writer, frameMerged, nil) != nil || rw.Flush() != nil {
		s.Reset()
	}
}

func writeFrame(w *bufio.Writer, typ byte, payload []byte) error {
	w.WriteByte(typ)
	var n [binary.MaxVarintLen64]byte
	w.Write(n[:binary.PutUvarint(n[:], uint64(len(payload)))])
	_, err := w.Write(payload)
	return err
}

func readFrame(r *bufio.Reader) (byte, []byte, error) {
	typ, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return 0, nil, err
	}
	if n > 64<<20 {
		return 0, nil, fmt.Errorf("a frame of %d bytes", n)
	}
	payload := make([]byte, n)
	_, err = io.ReadFull(r, payload)
	return typ, payload, err
}

func writeIDs(w *bufio.Writer, ids []events.ID) error {
	for len(ids) > 0 {
		n := min(len(ids), idsPerFrame)
		buf := make([]byte, 0, 32*n)
		for _, id := range ids[:n] {
			buf = append(buf, id[:]...)
		}
		if err := writeFrame(w, frameIDs, buf); err != nil {
			return err
		}
		ids = ids[n:]
	}
	if err := writeFrame(w, frameIDsEnd, nil); err != nil {
		return err
	}
	return w.Flush()
}

func readIDs(r *bufio.Reader) (map[events.ID]bool, error) {
	ids := make(map[events.ID]bool)
	for {
		typ, payload, err := readFrame(r)
		if err != nil {
			return nil, err
		}
		switch typ {
		case frameIDsEnd:
			return ids, nil
		case frameIDs:
			for i := 0; i+32 <= len(payload); i += 32 {
				ids[events.ID(payload[i:i+32])] = true
			}
		default:
			return nil, fmt.Errorf("frame type %d where IDs belong", typ)
		}
	}
}

func writeEvents(w *bufio.Writer, evs []events.Event) error {
	for len(evs) > 0 {
		n := min(len(evs), batchEvents)
		data, err := events.EncodeBatch(evs[:n])
		if err != nil {
			return err
		}
		if err := writeFrame(w, frameEvents, data); err != nil {
			return err
		}
		evs = evs[n:]
	}
	if err := writeFrame(w, frameEventsEnd, nil); err != nil {
		return err
	}
	return w.Flush()
}

func (r *fullStateReplica) readEvents(ctx context.Context, br *bufio.Reader) error {
	for {
		typ, payload, err := readFrame(br)
		if err != nil {
			return err
		}
		switch typ {
		case frameEventsEnd:
			return nil
		case frameEvents:
			evs, err := events.DecodeBatch(payload)
			if err != nil {
				return err
			}
			if err := r.merge(ctx, evs); err != nil {
				return err
			}
		default:
			return fmt.Errorf("frame type %d where events belong", typ)
		}
	}
}
