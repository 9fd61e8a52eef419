package peer

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// The cluster view: every member's signed record (record.go), at every
// member. Records spread two ways, as member lists do in SWIM or Serf: a
// node that gains a member swaps whole lists with it (push-pull, on the
// view protocol), and every member publishes its own record on the view
// topic, which gossipsub carries to every member, when its connections
// change and every memberBeat; a node also swaps lists with a member
// picked at random every viewExchangeInterval (less often in large
// views), which repairs what gossip lost. A node that closes publishes a last record that says it left, and
// hands it to the members it has connections to.
//
// A node has news that a member is alive when its record comes, and for
// as long as a member the node reaches lists a connection to it
// (memberTable.reachedLocked): the records of a stable cluster stay the
// same, and come once a beat, a minute, each no more than a few hundred
// bytes, so that what a member costs the others stays small next to the
// events it replicates.

// memberBeat is how often a member signs and publishes a new record when
// nothing about it has changed. A variable: tests shorten it, and
// suspectAfter and unreachableAfter with it (setMemberBeat).
var memberBeat = time.Minute

// setMemberBeat sets memberBeat and the states' timeouts that follow it.
func setMemberBeat(d time.Duration) {
	memberBeat, suspectAfter, unreachableAfter = d, d/2, 2*d
}

// View exchange bounds. Each side sends one frame, of at most every record
// the table can hold and its own.
const (
	frameRecords         byte = 12 // uvarint-length-prefixed signed records
	maxViewFrame              = (maxMembers + 1) * (maxRecordBytes + binary.MaxVarintLen16)
	viewTimeout               = 5 * time.Second // a whole exchange
	viewExchangesServed       = 8               // at once, one per peer
	viewExchangeInterval      = 30 * time.Second
	minRecordGap              = 500 * time.Millisecond // between records a node signs early
	leaveTimeout              = time.Second            // for the members to take a closing node's last record
)

// ErrViewBusy reports a peer that swaps member lists with too many others
// to take one more.
var ErrViewBusy = errors.New("peer: too many member list exchanges in progress")

// view keeps this node's record and spreads the cluster's.
type view struct {
	n           *Host
	key         crypto.PrivKey
	name        string
	incarnation uint64

	mu     sync.Mutex
	beat   uint64
	own    []byte          // the record this node signed last
	topics []*pubsub.Topic // topics[0] is the one this node publishes on
	subs   []*pubsub.Subscription
	served map[lpeer.ID]bool // peers whose exchange is being served
	// changed wakes the beat loop when this node's connections to members
	// change, which its record lists: it signs and publishes a new one
	// within minRecordGap.
	changed chan struct{}

	// joined closes once the node holds a member's list, or has no one
	// to join (no bootstrap peers, no discovery).
	joined     chan struct{}
	joinedOnce sync.Once
	rejected   atomic.Uint64 // records refused: badly signed, malformed, without proof
}

func newView(n *Host, name string) (*view, error) {
	key := n.h.Peerstore().PrivKey(n.h.ID())
	if key == nil {
		return nil, errors.New("peer: the host has no private key to sign its member record with")
	}
	return &view{n: n, key: key, name: name, incarnation: uint64(time.Now().UnixNano()),
		served: make(map[lpeer.ID]bool), changed: make(chan struct{}, 1), joined: make(chan struct{})}, nil
}

// start joins the view topics and serves the view protocol.
func (v *view) start(ctx context.Context, ps *pubsub.PubSub) error {
	for _, nm := range v.n.keyNames() {
		if err := ps.RegisterTopicValidator(nm.viewTopic, v.validate, pubsub.WithValidatorInline(true)); err != nil {
			return err
		}
		t, err := ps.Join(nm.viewTopic)
		if err != nil {
			return err
		}
		sub, err := t.Subscribe()
		if err != nil {
			return err
		}
		v.topics, v.subs = append(v.topics, t), append(v.subs, sub)
		v.n.goLoop(ctx, func(ctx context.Context) { v.receiveLoop(ctx, sub) })
	}
	for _, nm := range v.n.keyNames() {
		v.n.h.SetStreamHandler(nm.view, v.handleExchange)
	}
	v.n.goLoop(ctx, v.beatLoop)
	return nil
}

// stop leaves the topics and stops serving exchanges, once the node has
// said it leaves (leave).
func (v *view) stop() error {
	for _, nm := range v.n.keyNames() {
		v.n.h.RemoveStreamHandler(nm.view)
	}
	var errs []error
	for i, t := range v.topics {
		v.subs[i].Cancel()
		errs = append(errs, t.Close())
	}
	return errors.Join(errs...)
}

// markJoined records that the node holds the cluster's member list.
func (v *view) markJoined() { v.joinedOnce.Do(func() { close(v.joined) }) }

// hasJoined reports whether the node holds the cluster's member list.
func (v *view) hasJoined() bool {
	select {
	case <-v.joined:
		return true
	default:
		return false
	}
}

// sign signs a new record of this node, saying it left if left, and keeps
// it as the one to hand out.
func (v *view) sign(left bool) ([]byte, error) {
	n := v.n
	r := &memberRecord{Name: v.name, Incarnation: v.incarnation, Left: left}
	for _, a := range n.h.Addrs() {
		if len(r.Addrs) == maxRecordAddrs {
			break
		}
		if b := a.Bytes(); len(b) <= maxAddrBytes {
			r.Addrs = append(r.Addrs, b)
		}
	}
	now := n.cfg.Clock.Now()
	r.Wall, r.Logical = now.Wall, now.Logical
	for _, p := range n.connectedMembers() {
		if len(r.Links) == maxLinks {
			break
		}
		r.Links = append(r.Links, linkDigest(p))
	}
	slices.Sort(r.Links)
	if n.keys != nil {
		r.Proof = proofOfKey(n.keys[0].auth, n.h.ID(), v.incarnation)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.beat++
	r.Beat = v.beat
	env, err := signRecord(r, v.key)
	if err != nil {
		return nil, fmt.Errorf("peer: signing this node's member record: %w", err)
	}
	v.own = env
	return env, nil
}

// ownRecord returns the record this node signed last, signing one if it
// has none yet.
func (v *view) ownRecord() ([]byte, error) {
	v.mu.Lock()
	own := v.own
	v.mu.Unlock()
	if own != nil {
		return own, nil
	}
	return v.sign(false)
}

// restore takes the records a node saved when it last ran (SaveMembers):
// each member is known as last heard when it signed its record, and
// nothing is passed on — the members have newer records of their own.
func (v *view) restore(saved []byte) {
	if len(saved) == 0 {
		return
	}
	envs, err := splitRecords(saved)
	if err != nil {
		v.n.log.Warn("the saved member records do not read; starting without them", "err", err)
		return
	}
	for _, env := range envs {
		p, r, err := openRecord(env, v.n.keys)
		if err != nil || p == v.n.h.ID() {
			continue
		}
		if v.n.members.restore(p, r, slices.Clone(env)) && !r.Left {
			v.n.h.Peerstore().AddAddrs(p, r.addrs(), peerstore.AddressTTL)
		}
	}
}

// save hands the records the node holds to Config.SaveMembers.
func (v *view) save() error {
	if v.n.cfg.SaveMembers == nil {
		return nil
	}
	if err := v.n.cfg.SaveMembers(joinRecords(nil, v.n.members.envelopes())); err != nil {
		return fmt.Errorf("peer: saving the member records: %w", err)
	}
	return nil
}

// publish publishes env, a signed record, on the view topic this node
// publishes on: sealed, in a closed cluster.
func (v *view) publish(ctx context.Context, env []byte) error {
	data := env
	if v.n.keys != nil {
		data = v.n.keys.seal(v.topics[0].String(), env)
	}
	return v.topics[0].Publish(ctx, data)
}

// nudge has the beat loop publish a new record soon: this node's
// connections changed. It never blocks.
func (v *view) nudge() {
	select {
	case v.changed <- struct{}{}:
	default:
	}
}

// beatLoop publishes a new record of this node every memberBeat, and soon
// after its connections change, and swaps lists with a member picked at
// random every exchangeInterval.
func (v *view) beatLoop(ctx context.Context) {
	beat := time.NewTicker(memberBeat)
	defer beat.Stop()
	swap := time.NewTimer(exchangeInterval(0))
	defer swap.Stop()
	var saved time.Time // never: the first beat saves what the node restored or learned
	savedSize := -1
	for {
		if env, err := v.sign(false); err == nil {
			if err := v.publish(ctx, env); err != nil && ctx.Err() == nil {
				v.n.log.Debug("publishing this node's member record", "err", err)
			}
		}
		if !v.waitForBeat(ctx, beat.C, swap) {
			return
		}
		size := v.n.members.size()
		if since := time.Since(saved); since >= saveMembersEvery || size != savedSize && since >= saveMembersSoon {
			saved, savedSize = time.Now(), size
			if err := v.save(); err != nil {
				v.n.log.Warn("saving the member records", "err", err)
			}
		}
	}
}

// saveMembersEvery is how often a running node hands its member records
// to Config.SaveMembers, besides when it closes: a list of hundreds of
// members is megabytes, and ten minutes old is recent enough to redial.
// When the number of members changed it does so sooner, at most every
// saveMembersSoon: a node killed soon after it joined knows whom to redial.
const (
	saveMembersEvery = 10 * time.Minute
	saveMembersSoon  = 30 * time.Second
)

// waitForBeat swaps lists when swap fires, until the next beat or a change
// of connections calls for a record. It returns false once ctx is done.
func (v *view) waitForBeat(ctx context.Context, beat <-chan time.Time, swap *time.Timer) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case <-beat:
			return true
		case <-v.changed:
			return sleep(ctx, minRecordGap) // the changes of a moment share a record
		case <-swap.C:
			peers := v.n.connectedMembers()
			if len(peers) > 0 {
				p := peers[rand.IntN(len(peers))]
				v.n.goLoop(ctx, func(ctx context.Context) { v.exchange(ctx, p) })
			}
			swap.Reset(exchangeInterval(v.n.members.size()))
		}
	}
}

// exchangeInterval is how often a node of a view of size members swaps
// lists with one at random. Larger views swap less often, as memberlist's
// push-pull does: a list grows with the view, and gossip and the beats
// already carry most of what an exchange would repair.
func exchangeInterval(size int) time.Duration {
	const threshold = 32
	if size <= threshold {
		return viewExchangeInterval
	}
	scale := math.Ceil(math.Log2(float64(size))-math.Log2(threshold)) + 1
	return time.Duration(scale) * viewExchangeInterval
}

// validate checks a record gossiped on a view topic before gossipsub
// takes or forwards it; the record rides along to the receive loop.
func (v *view) validate(_ context.Context, from lpeer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	if from == v.n.h.ID() {
		return pubsub.ValidationAccept
	}
	if !v.n.trusted(expired, from) {
		return pubsub.ValidationIgnore
	}
	env := msg.Data
	if v.n.keys != nil {
		var err error
		if env, err = v.n.keys.open(msg.GetTopic(), msg.Data); err != nil {
			v.rejected.Add(1)
			return pubsub.ValidationReject
		}
	}
	p, r, err := openRecord(env, v.n.keys)
	if err != nil {
		v.rejected.Add(1)
		v.n.log.Debug("rejected a gossiped member record", "from", from, "err", err)
		return pubsub.ValidationReject
	}
	msg.ValidatorData = openedRecord{p, r, env}
	return pubsub.ValidationAccept
}

// openedRecord is a checked record and its signed form.
type openedRecord struct {
	id  lpeer.ID
	r   *memberRecord
	env []byte
}

// receiveLoop takes the records gossiped on a view topic.
func (v *view) receiveLoop(ctx context.Context, sub *pubsub.Subscription) {
	for {
		msg, err := sub.Next(ctx)
		if err != nil {
			return
		}
		if o, ok := msg.ValidatorData.(openedRecord); ok {
			v.take(o, false)
		}
	}
}

// take adds o to the member table if it is news. A record its member
// handed over in an exchange (byItself), news of a member new here,
// started anew or leaving, is to be passed on (the result): the member
// handed it to this node alone, or to the members it has connections to,
// and the others should know at once.
func (v *view) take(o openedRecord, byItself bool) (passOn bool) {
	n := v.n
	if o.id == n.h.ID() {
		return false
	}
	news, previous, evicted := n.members.learn(o.id, o.r, o.env)
	fresh := previous != o.r.Incarnation
	if evicted != "" {
		n.h.ConnManager().Unprotect(evicted, memberTag)
	}
	if !news {
		return false
	}
	if !o.r.Left {
		n.h.Peerstore().AddAddrs(o.id, o.r.addrs(), peerstore.AddressTTL)
		if fresh && previous != 0 {
			n.restarted(o.id, o.r.Incarnation)
		}
	}
	return byItself && (fresh || o.r.Left)
}

// passOn publishes the records an exchange brought that the cluster
// should know at once; after the exchange, which need not wait for gossip.
func (v *view) passOn(envs [][]byte) {
	if len(envs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(v.n.ctx, viewTimeout)
	defer cancel()
	for _, env := range envs {
		if err := v.publish(ctx, env); err != nil && ctx.Err() == nil {
			v.n.log.Debug("passing on a member record", "err", err)
		}
	}
}

// takeAll opens and takes the records of an exchange's frame, which from
// sent, and returns those to pass on. Records that do not open are
// counted and skipped, and those the table holds already are not opened
// again.
func (v *view) takeAll(from lpeer.ID, payload []byte) (passOn [][]byte, err error) {
	envs, err := splitRecords(payload)
	if err != nil {
		return nil, err
	}
	for _, env := range envs {
		if v.n.members.holds(env) {
			continue // most of a list, in a settled cluster
		}
		p, r, err := openRecord(env, v.n.keys)
		if err != nil {
			v.rejected.Add(1)
			continue
		}
		o := openedRecord{p, r, slices.Clone(env)}
		if v.take(o, p == from) {
			passOn = append(passOn, o.env)
		}
	}
	return passOn, nil
}

// joinRecords writes envs, uvarint-length-prefixed, after own if any.
func joinRecords(own []byte, envs [][]byte) []byte {
	var b bytes.Buffer
	if own != nil {
		envs = append([][]byte{own}, envs...)
	}
	for _, env := range envs {
		b.Write(binary.AppendUvarint(nil, uint64(len(env))))
		b.Write(env)
	}
	return b.Bytes()
}

// splitRecords reads what joinRecords wrote: at most maxMembers+1 records
// of at most maxRecordBytes each.
func splitRecords(payload []byte) ([][]byte, error) {
	var out [][]byte
	for len(payload) > 0 {
		if len(out) > maxMembers {
			return nil, fmt.Errorf("%w: more than %d member records", ErrFrame, maxMembers+1)
		}
		n, k := binary.Uvarint(payload)
		if k <= 0 || n > maxRecordBytes || n > uint64(len(payload)-k) {
			return nil, fmt.Errorf("%w: a member record's length", ErrFrame)
		}
		out = append(out, payload[k:k+int(n)])
		payload = payload[k+int(n):]
	}
	return out, nil
}

// exchange swaps member lists with p: it sends every record it holds, and
// takes p's. The first exchange that completes joins the node.
func (v *view) exchange(ctx context.Context, p lpeer.ID) error {
	n := v.n
	ctx, cancel := context.WithTimeout(ctx, viewTimeout)
	defer cancel()
	own, err := v.ownRecord()
	if err != nil {
		return err
	}
	raw, err := n.h.NewStream(network.WithAllowLimitedConn(ctx, "scopemesh-members"), p, n.protocols(func(nm names) protocol.ID { return nm.view })...)
	if err != nil {
		return fmt.Errorf("peer: opening a member list exchange: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { raw.Reset() })
	defer stop()
	s := newStream(raw, SyncLimits{Idle: viewTimeout, Bytes: maxViewFrame + 64})
	if err := s.send(frameRecords, joinRecords(own, n.members.envelopes())); err != nil {
		raw.Reset()
		return err
	}
	_, payload, err := s.recvMax(maxViewFrame, frameRecords)
	if err != nil {
		raw.Reset()
		return fmt.Errorf("peer: a member list exchange with %s: %w", p, err)
	}
	raw.Close()
	passOn, err := v.takeAll(p, payload)
	if err != nil {
		return fmt.Errorf("peer: a member list from %s: %w", p, err)
	}
	v.markJoined()
	v.passOn(passOn)
	return nil
}

// handleExchange serves an exchange a member started: only members may
// add records to the view, or read it.
func (v *view) handleExchange(raw network.Stream) {
	n := v.n
	p, ok := n.accept(raw, n.trusted)
	if !ok {
		return
	}
	defer n.wg.Done()
	s := newStream(raw, SyncLimits{Idle: viewTimeout, Bytes: maxViewFrame + 64})
	if !v.serve(p) {
		s.send(frameError, []byte(ErrViewBusy.Error()))
		s.within(viewTimeout, raw.Close)
		return
	}
	passOn, err := v.answer(p, raw, s)
	v.done(p) // before closing, so a peer that saw the close may swap again
	if err != nil {
		raw.Reset()
		return
	}
	s.within(viewTimeout, raw.Close)
	v.markJoined()
	v.passOn(passOn)
}

// answer takes p's list and sends back this node's. It returns the
// records of p's list to pass on.
func (v *view) answer(p lpeer.ID, raw network.Stream, s *stream) (passOn [][]byte, err error) {
	ctx, cancel := context.WithTimeout(v.n.ctx, viewTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { raw.Reset() })
	defer stop()
	_, payload, err := s.recvMax(maxViewFrame, frameRecords)
	if err != nil {
		return nil, err
	}
	// Taken before answering: the answer then holds what p's list
	// lacked that this node's has, and p's own record.
	if passOn, err = v.takeAll(p, payload); err != nil {
		s.send(frameError, []byte(err.Error()))
		return nil, err
	}
	own, err := v.ownRecord()
	if err != nil {
		return nil, err
	}
	return passOn, s.send(frameRecords, joinRecords(own, v.n.members.envelopes()))
}

// serve claims one of the exchanges served at once for p, if p has none
// and one is free.
func (v *view) serve(p lpeer.ID) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.served[p] || len(v.served) >= viewExchangesServed {
		return false
	}
	v.served[p] = true
	return true
}

func (v *view) done(p lpeer.ID) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.served, p)
}

// leave signs this node's last record, publishes it and hands it to the
// members it has connections to, waiting at most leaveTimeout for them.
func (v *view) leave() {
	if len(v.topics) == 0 {
		return // it never started
	}
	env, err := v.sign(true)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(v.n.ctx, leaveTimeout)
	defer cancel()
	v.publish(ctx, env)
	var wg sync.WaitGroup
	for _, p := range v.n.connectedMembers() {
		wg.Go(func() { v.exchange(ctx, p) })
	}
	wg.Wait()
}

// join swaps lists with p, trying again until that completes or ctx
// ends.
func (v *view) join(ctx context.Context, p lpeer.ID) error {
	for {
		err := v.exchange(ctx, p)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (%v)", ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
