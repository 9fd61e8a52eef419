package peer

import (
	"bufio"
	"context"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multistream"
	"golang.org/x/crypto/chacha20poly1305"
)

// A closed cluster is one whose members share a secret key. Members prove
// they hold it to each other when they connect, and only proven members get
// gossip, sync, query, DHT and relay service; event batches are sealed with
// an AEAD under a key derived from it, so relays, eavesdroppers and
// outsiders in the mesh learn nothing from them.
//
// An outsider that connects learns neither the cluster's name nor any name
// derived from its key: the protocols it sees are the same for every closed
// cluster (closedNames), the proof answers it gets are unlinkable HMACs,
// and the topic and DHT records, which derive from the key, reach proven
// members only (provenHost).
//
// A node can hold several keys while the cluster changes keys: it proves
// with all of them, accepts any, joins the topics of all, and seals with
// the first. Rotating without a partition takes three steps: every member
// adds the new key after the old; then every member puts the new key first;
// then every member drops the old one.

// KeyLen is the length of a cluster key.
const KeyLen = 32

// ErrClusterKey reports a cluster key of the wrong length.
var ErrClusterKey = errors.New("peer: a cluster key must be 32 bytes")

// ErrNotMember reports a peer that did not prove it holds the cluster key.
var ErrNotMember = errors.New("peer: not a proven member of the cluster")

// keyIDLen is the length of the identifier that tells which key sealed a
// batch.
const keyIDLen = 8

// clusterKey holds what one cluster key derives.
type clusterKey struct {
	id    [keyIDLen]byte
	names names
	auth  []byte      // HMAC key of membership proofs
	seal  cipher.AEAD // XChaCha20-Poly1305: random 24-byte nonces never repeat in practice
}

// keyring is a node's cluster keys, the one it seals with first. A nil
// keyring is an open cluster.
type keyring []*clusterKey

func newKeyring(cluster string, keys [][]byte) (keyring, error) {
	var ring keyring
	for _, k := range keys {
		if len(k) != KeyLen {
			return nil, fmt.Errorf("%w, got %d", ErrClusterKey, len(k))
		}
		derive := func(purpose string, n int) []byte {
			out, err := hkdf.Key(sha256.New, k, []byte(cluster), "scopemesh/v1/"+purpose, n)
			if err != nil {
				panic(err) // only for lengths beyond 255 hash blocks
			}
			return out
		}
		aead, err := chacha20poly1305.NewX(derive("seal", chacha20poly1305.KeySize))
		if err != nil {
			return nil, err
		}
		ck := &clusterKey{names: closedNames(hex.EncodeToString(derive("names", 16))), auth: derive("auth", 32), seal: aead}
		copy(ck.id[:], derive("id", keyIDLen))
		ring = append(ring, ck)
	}
	return ring, nil
}

func (r keyring) find(id []byte) *clusterKey {
	for _, k := range r {
		if string(k.id[:]) == string(id) {
			return k
		}
	}
	return nil
}

// Sealed batches are keyID ‖ nonce ‖ ciphertext; the topic or protocol they
// travel on is authenticated with them, so a batch cannot be replayed on
// another channel.

func (r keyring) seal(channel string, plain []byte) []byte {
	k := r[0]
	out := make([]byte, keyIDLen+k.seal.NonceSize(), keyIDLen+k.seal.NonceSize()+len(plain)+k.seal.Overhead())
	copy(out, k.id[:])
	rand.Read(out[keyIDLen:])
	return k.seal.Seal(out, out[keyIDLen:], plain, []byte(channel))
}

func (r keyring) open(channel string, sealed []byte) ([]byte, error) {
	if len(sealed) < keyIDLen {
		return nil, fmt.Errorf("%w: sealed batch of %d bytes", ErrNotMember, len(sealed))
	}
	k := r.find(sealed[:keyIDLen])
	if k == nil || len(sealed) < keyIDLen+k.seal.NonceSize() {
		return nil, fmt.Errorf("%w: batch sealed with an unknown key", ErrNotMember)
	}
	nonce := sealed[keyIDLen : keyIDLen+k.seal.NonceSize()]
	plain, err := k.seal.Open(nil, nonce, sealed[keyIDLen+k.seal.NonceSize():], []byte(channel))
	if err != nil {
		return nil, fmt.Errorf("%w: batch does not open: %v", ErrNotMember, err)
	}
	return plain, nil
}

// The membership proof. The verifier sends a fresh 32-byte nonce; the
// prover answers, for each of its keys,
// HMAC(auth key, "scopemesh/v1/proof" ‖ nonce ‖ prover ID ‖ verifier ID),
// and the verifier tries its own keys against each. The nonce defeats
// replay; naming prover and verifier in that order defeats reflection (a
// verifier's own answer names the roles the other way round); libp2p's
// secure channel authenticates both peer IDs, so a proof cannot be relayed
// to a third party either. The answer names no key, so an outsider that
// asks for one learns nothing it could match with another member's.
const (
	nonceLen     = 32
	proofTimeout = 5 * time.Second
	// gateFor is how long a peer that failed to prove membership is
	// refused.
	gateFor = time.Minute
)

// authProtocol is the protocol of membership proofs, the same for every
// closed cluster.
const authProtocol protocol.ID = "/scopemesh/auth/2"

func (k *clusterKey) proof(nonce []byte, prover, verifier lpeer.ID) []byte {
	m := hmac.New(sha256.New, k.auth)
	m.Write([]byte("scopemesh/v1/proof"))
	m.Write(nonce)
	m.Write([]byte(prover))
	m.Write([]byte(verifier))
	return m.Sum(nil)
}

// answerProof serves the prover's side of a membership check.
func (r keyring) answerProof(s network.Stream) error {
	br, bw := bufio.NewReader(s), bufio.NewWriter(s)
	_, nonce, err := readFrame(br, nonceLen)
	if err != nil || len(nonce) != nonceLen {
		return fmt.Errorf("%w: bad nonce", ErrFrame)
	}
	self, verifier := s.Conn().LocalPeer(), s.Conn().RemotePeer()
	var answer []byte
	for _, k := range r {
		answer = append(answer, k.proof(nonce, self, verifier)...)
	}
	return writeFrame(bw, frameProof, answer)
}

// checkProof runs the verifier's side: it reports nil if the peer on s
// proved it holds one of r's keys.
func (r keyring) checkProof(s network.Stream) error {
	br, bw := bufio.NewReader(s), bufio.NewWriter(s)
	nonce := make([]byte, nonceLen)
	rand.Read(nonce)
	if err := writeFrame(bw, frameNonce, nonce); err != nil {
		return err
	}
	_, answer, err := readFrame(br, maxProofKeys*proofEntryLen)
	if err != nil {
		return err
	}
	return r.verifyAnswer(answer, nonce, s.Conn().RemotePeer(), s.Conn().LocalPeer())
}

// A proof answer is up to maxProofKeys HMACs.
const (
	proofEntryLen = sha256.Size
	maxProofKeys  = 16
)

// verifyAnswer reports nil if answer holds a valid proof by prover, for
// verifier's nonce, under one of r's keys.
func (r keyring) verifyAnswer(answer, nonce []byte, prover, verifier lpeer.ID) error {
	if len(answer)%proofEntryLen != 0 {
		return fmt.Errorf("%w: proof of %d bytes", ErrFrame, len(answer))
	}
	for _, k := range r {
		want := k.proof(nonce, prover, verifier)
		for i := 0; i < len(answer); i += proofEntryLen {
			if hmac.Equal(answer[i:i+proofEntryLen], want) {
				return nil
			}
		}
	}
	return ErrNotMember
}

// Frames of the membership proof.
const (
	frameNonce byte = 9
	frameProof byte = 10
)

// proofs tracks which peers proved membership. Its zero value is usable.
type proofs struct {
	mu    sync.Mutex
	state map[lpeer.ID]*proofState
}

type proofState struct {
	done   chan struct{} // closed once the check ended
	member bool
}

// start returns p's check, and whether the caller must run it.
func (ps *proofs) start(p lpeer.ID) (*proofState, bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.state == nil {
		ps.state = make(map[lpeer.ID]*proofState)
	}
	if st, ok := ps.state[p]; ok {
		return st, false
	}
	st := &proofState{done: make(chan struct{})}
	ps.state[p] = st
	return st, true
}

// forget drops p's result, so that its next connection is checked again.
func (ps *proofs) forget(p lpeer.ID) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	delete(ps.state, p)
}

// proven reports whether p proved membership, waiting for a check under
// way until ctx ends.
func (ps *proofs) proven(ctx context.Context, p lpeer.ID) bool {
	ps.mu.Lock()
	st, ok := ps.state[p]
	ps.mu.Unlock()
	if !ok {
		return false
	}
	select {
	case <-st.done:
		return st.member
	default:
	}
	select {
	case <-st.done:
		return st.member
	case <-ctx.Done():
		return false
	}
}

// proofCheck returns p's membership check, starting it if none has
// started since p connected.
func (n *Host) proofCheck(p lpeer.ID) *proofState {
	st, mine := n.proofs.start(p)
	if mine {
		n.goLoop(n.ctx, func(ctx context.Context) { n.verify(ctx, p, st) })
	}
	return st
}

// verify checks p's membership, once per connection spell, and reports
// the outcome in st. A peer that fails is disconnected and refused for
// gateFor.
func (n *Host) verify(ctx context.Context, p lpeer.ID, st *proofState) {
	ctx, cancel := context.WithTimeout(ctx, proofTimeout)
	defer cancel()
	err := func() error {
		s, err := n.h.NewStream(network.WithAllowLimitedConn(ctx, "scopemesh-auth"), p, authProtocol)
		if err != nil {
			return err
		}
		defer s.Close()
		stop := context.AfterFunc(ctx, func() { s.Reset() })
		defer stop()
		return n.keys.checkProof(s)
	}()
	st.member = err == nil
	close(st.done)
	switch {
	case err == nil:
		n.admitted(n.members.admit(p))
	case n.ctx.Err() != nil:
	case errors.Is(err, ErrNotMember), errors.Is(err, multistream.ErrNotSupported[protocol.ID]{}):
		// A wrong proof, or no proof protocol.
		n.log.Info("refusing a peer that did not prove cluster membership", "peer", p, "err", err, "for", gateFor)
		n.gater.refuseFor(p, gateFor)
		n.proofs.forget(p)
		n.h.Network().ClosePeer(p)
	default:
		// No answer in time, or the stream broke (the peer restarted,
		// the link dropped): drop the connection and check again on the
		// next one. A member on a loaded machine can be slow to answer,
		// and costs a reconnection, not a minute refused.
		n.log.Debug("membership check interrupted", "peer", p, "err", err)
		n.proofs.forget(p)
		n.h.Network().ClosePeer(p)
	}
}

// handleProof answers a peer's membership check.
func (n *Host) handleProof(s network.Stream) {
	if !n.enter() {
		s.Reset()
		return
	}
	defer n.wg.Done()
	defer s.Close()
	s.SetDeadline(time.Now().Add(proofTimeout))
	if err := n.keys.answerProof(s); err != nil {
		s.Reset()
	}
}

// provenHost is the libp2p host as a closed cluster's gossipsub and DHT
// see it: they open streams to, and take streams from, proven members
// only, waiting for a check under way, so that an outsider learns neither
// the cluster's topics nor its DHT's records.
type provenHost struct {
	host.Host
	n *Host
}

// proven waits, at most proofTimeout, for p's membership check.
func (h provenHost) proven(ctx context.Context, p lpeer.ID) bool {
	ctx, cancel := context.WithTimeout(ctx, proofTimeout)
	defer cancel()
	st := h.n.proofCheck(p)
	select {
	case <-st.done:
		return st.member && !h.n.gater.Refused(p)
	case <-ctx.Done():
		return false
	}
}

func (h provenHost) NewStream(ctx context.Context, p lpeer.ID, pids ...protocol.ID) (network.Stream, error) {
	if !h.proven(ctx, p) {
		return nil, fmt.Errorf("%w: %s", ErrNotMember, p)
	}
	return h.Host.NewStream(ctx, p, pids...)
}

func (h provenHost) SetStreamHandler(pid protocol.ID, handler network.StreamHandler) {
	h.Host.SetStreamHandler(pid, h.gate(handler))
}

func (h provenHost) SetStreamHandlerMatch(pid protocol.ID, match func(protocol.ID) bool, handler network.StreamHandler) {
	h.Host.SetStreamHandlerMatch(pid, match, h.gate(handler))
}

// gate passes the streams of proven members to handler, and resets the
// others.
func (h provenHost) gate(handler network.StreamHandler) network.StreamHandler {
	return func(s network.Stream) {
		if !h.proven(context.Background(), s.Conn().RemotePeer()) {
			s.Reset()
			return
		}
		handler(s)
	}
}

// expired is a done context: member(expired, p) answers without waiting.
var expired = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// member reports whether p may get gossip, sync and query service: in an
// open cluster any peer not refused; in a closed one, a peer that proved
// membership (waiting for a check under way until ctx ends).
func (n *Host) member(ctx context.Context, p lpeer.ID) bool {
	if n.gater.Refused(p) {
		return false
	}
	return n.keys == nil || n.proofs.proven(ctx, p)
}

// trusted reports whether p may ask for what only members get — queries,
// relaying: in a closed cluster a member that proved the key, as member
// says; in an open one a member admitted by a completed sync session or
// known by the record members passed on, or a peer registered by
// Bootstrap or Connect.
func (n *Host) trusted(ctx context.Context, p lpeer.ID) bool {
	if !n.member(ctx, p) {
		return false
	}
	member, _, _ := n.members.standing(p)
	return n.keys != nil || member
}

// keyNames returns the names of every key, or the open cluster's.
func (n *Host) keyNames() []names {
	if n.keys == nil {
		return []names{n.names}
	}
	out := make([]names, len(n.keys))
	for i, k := range n.keys {
		out[i] = k.names
	}
	return slices.Clip(out)
}

// protocols returns one protocol of every key's names, the first key's
// first, each once, for opening a stream any member understands.
func (n *Host) protocols(pick func(names) protocol.ID) []protocol.ID {
	var out []protocol.ID
	for _, nm := range n.keyNames() {
		if p := pick(nm); !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// clusterHost returns the host the cluster's gossipsub and DHT run on:
// in a closed cluster, one that serves proven members only.
func (n *Host) clusterHost() host.Host {
	if n.keys == nil {
		return n.h
	}
	return provenHost{Host: n.h, n: n}
}
