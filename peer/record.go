package peer

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
	"github.com/libp2p/go-libp2p/core/crypto"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/scopemesh/scopemesh/hlc"
)

// A member record is what a member says of itself: its name, addresses,
// the members it has connections to, and whether it has left. The member
// signs it with its peer identity, in a libp2p signed envelope, so that
// whoever passes a record on cannot change it; and (Incarnation, Beat)
// orders its records, so that a newer one replaces an older one wherever
// it arrives, in whatever order. A member signs a record with a new Beat
// whenever its connections change and every memberBeat.

// Member record bounds, checked before anything is decoded.
const (
	maxRecordBytes = 4 << 10 // a signed envelope
	MaxNameBytes   = 64      // Config.Name
	maxRecordAddrs = 16
	maxAddrBytes   = 256
	maxLinks       = 64 // the connections a record lists: the most a node keeps to members
)

// ErrRecord reports a member record that breaks the rules: badly signed,
// too large, or malformed.
var ErrRecord = errors.New("peer: bad member record")

// memberRecord is the signed part of a member record.
type memberRecord struct {
	Name        string   `cbor:"1,keyasint,omitempty"`
	Addrs       [][]byte `cbor:"2,keyasint,omitempty"` // multiaddrs, binary, without /p2p
	Incarnation uint64   `cbor:"3,keyasint"`           // the time its node started, Unix nanoseconds
	Beat        uint64   `cbor:"4,keyasint"`           // counts the records of the incarnation
	Wall        int64    `cbor:"5,keyasint"`           // its HLC reading when it signed
	Logical     uint32   `cbor:"6,keyasint,omitempty"`
	Left        bool     `cbor:"7,keyasint,omitempty"` // it closed: its last record
	Links       []uint64 `cbor:"8,keyasint,omitempty"` // linkDigest of each member it has a connection to
	// Proof, in a closed cluster, is proofOfKey: a record whose member
	// does not hold the key is refused, whoever passes it on.
	Proof []byte `cbor:"9,keyasint,omitempty"`
}

var _ record.Record = (*memberRecord)(nil)

// memberRecordDomain separates these signatures from any other the key
// makes.
const memberRecordDomain = "scopemesh-member-record"

// memberRecordCodec is the envelope's payload type.
var memberRecordCodec = []byte("/scopemesh/member-record/1")

func (r *memberRecord) Domain() string { return memberRecordDomain }
func (r *memberRecord) Codec() []byte  { return memberRecordCodec }

func (r *memberRecord) MarshalRecord() ([]byte, error) { return recordEncMode.Marshal(r) }

func (r *memberRecord) UnmarshalRecord(data []byte) error {
	if err := recordDecMode.Unmarshal(data, r); err != nil {
		return err
	}
	return r.check()
}

var (
	recordEncMode = func() cbor.EncMode {
		m, err := cbor.CoreDetEncOptions().EncMode()
		if err != nil {
			panic(err)
		}
		return m
	}()
	recordDecMode = func() cbor.DecMode {
		m, err := cbor.DecOptions{
			MaxNestedLevels:  4,
			MaxArrayElements: maxLinks,
			MaxMapPairs:      16,
			IndefLength:      cbor.IndefLengthForbidden,
			DupMapKey:        cbor.DupMapKeyEnforcedAPF,
			UTF8:             cbor.UTF8RejectInvalid,
		}.DecMode()
		if err != nil {
			panic(err)
		}
		return m
	}()
)

// check checks the bounds the decoder's options do not.
func (r *memberRecord) check() error {
	if len(r.Name) > MaxNameBytes || !utf8.ValidString(r.Name) {
		return fmt.Errorf("a name of %d bytes, at most %d of UTF-8", len(r.Name), MaxNameBytes)
	}
	if len(r.Addrs) > maxRecordAddrs {
		return fmt.Errorf("%d addresses, at most %d", len(r.Addrs), maxRecordAddrs)
	}
	for _, a := range r.Addrs {
		if len(a) > maxAddrBytes {
			return fmt.Errorf("an address of %d bytes, at most %d", len(a), maxAddrBytes)
		}
		if _, err := ma.NewMultiaddrBytes(a); err != nil {
			return fmt.Errorf("an address: %v", err)
		}
	}
	return nil
}

// newer reports whether r replaces old, a record of the same member.
func (r *memberRecord) newer(old *memberRecord) bool {
	if r.Incarnation != old.Incarnation {
		return r.Incarnation > old.Incarnation
	}
	return r.Beat > old.Beat
}

// clock is the HLC reading the record carries.
func (r *memberRecord) clock() hlc.Timestamp { return hlc.Timestamp{Wall: r.Wall, Logical: r.Logical} }

// addrs returns the record's addresses; the check vouched for them.
func (r *memberRecord) addrs() []ma.Multiaddr {
	out := make([]ma.Multiaddr, 0, len(r.Addrs))
	for _, b := range r.Addrs {
		if a, err := ma.NewMultiaddrBytes(b); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// linkDigest is what a record lists of a member it has a connection to:
// eight bytes rather than a whole peer ID, which is what reading it needs,
// finding a neighbour of a member that some member links to.
func linkDigest(p lpeer.ID) uint64 {
	sum := sha256.Sum256([]byte(p))
	return binary.BigEndian.Uint64(sum[:8])
}

// proofOfKey is a closed cluster's part of a member record: an HMAC,
// under the key's proof key, of the member and its incarnation.
func proofOfKey(auth []byte, p lpeer.ID, incarnation uint64) []byte {
	mac := hmac.New(sha256.New, auth)
	mac.Write([]byte("scopemesh/v1/member-record"))
	mac.Write([]byte(p))
	mac.Write(binary.BigEndian.AppendUint64(nil, incarnation))
	return mac.Sum(nil)
}

// signRecord seals r with key.
func signRecord(r *memberRecord, key crypto.PrivKey) ([]byte, error) {
	env, err := record.Seal(r, key)
	if err != nil {
		return nil, err
	}
	return env.Marshal()
}

// openRecord checks and decodes a signed member record, and returns it
// with its member's ID. In a closed cluster (keys not nil), the record
// must prove one of the keys.
func openRecord(data []byte, keys keyring) (lpeer.ID, *memberRecord, error) {
	if len(data) > maxRecordBytes {
		return "", nil, fmt.Errorf("%w: %d bytes, at most %d", ErrRecord, len(data), maxRecordBytes)
	}
	r := new(memberRecord)
	env, err := record.ConsumeTypedEnvelope(data, r)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %v", ErrRecord, err)
	}
	p, err := lpeer.IDFromPublicKey(env.PublicKey)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %v", ErrRecord, err)
	}
	if keys != nil && !keys.proves(p, r) {
		return "", nil, fmt.Errorf("%w: %s does not prove the cluster key", ErrRecord, p)
	}
	return p, r, nil
}

// proves reports whether r, the record of p, proves one of the keys.
func (ring keyring) proves(p lpeer.ID, r *memberRecord) bool {
	for _, k := range ring {
		if hmac.Equal(r.Proof, proofOfKey(k.auth, p, r.Incarnation)) {
			return true
		}
	}
	return false
}
