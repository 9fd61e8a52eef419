package peer

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// FuzzReadFrame: no input makes the frame reader panic or return more
// than its limit.
func FuzzReadFrame(f *testing.F) {
	var ok bytes.Buffer
	w := bufio.NewWriter(&ok)
	writeFrame(w, frameEvents, []byte("payload"))
	f.Add(ok.Bytes())
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		const limit = 1 << 10
		typ, payload, err := readFrame(bufio.NewReader(bytes.NewReader(b)), limit)
		if err == nil && len(payload) > limit {
			t.Fatalf("a frame of %d bytes past a limit of %d (type %d)", len(payload), limit, typ)
		}
	})
}

// FuzzOpenSealed: arbitrary bytes never open as a sealed batch, and never
// panic.
func FuzzOpenSealed(f *testing.F) {
	ring, err := newKeyring("fuzz", [][]byte{bytes.Repeat([]byte{7}, KeyLen)})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ring.seal("topic", []byte("batch")))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		plain, err := ring.open("topic", b)
		if err != nil && !errors.Is(err, ErrNotMember) {
			t.Fatalf("error %v does not match ErrNotMember", err)
		}
		if err == nil && len(plain) >= len(b) {
			t.Fatalf("%d bytes opened to %d", len(b), len(plain))
		}
	})
}

// FuzzProofAnswer: no answer to a membership check panics, and only the
// right proof passes.
func FuzzProofAnswer(f *testing.F) {
	ring, err := newKeyring("fuzz", [][]byte{bytes.Repeat([]byte{7}, KeyLen)})
	if err != nil {
		f.Fatal(err)
	}
	nonce := bytes.Repeat([]byte{1}, nonceLen)
	good := ring[0].proof(nonce, "prover", "verifier")
	f.Add(good)
	f.Add(good[:10])
	f.Fuzz(func(t *testing.T, answer []byte) {
		err := ring.verifyAnswer(answer, nonce, "prover", "verifier")
		if err == nil && !bytes.Contains(answer, good) {
			t.Fatalf("answer %x passed without the proof", answer)
		}
	})
}

// FuzzOpenRecord: no input makes a member record open wrongly or panic: a
// record that opens passes its checks, and opens again the same from its
// own encoding.
func FuzzOpenRecord(f *testing.F) {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	env, err := signRecord(&memberRecord{Name: "n", Incarnation: 1, Beat: 2, Links: []uint64{3}}, key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(env)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, r, err := openRecord(b, nil)
		if err != nil {
			if !errors.Is(err, ErrRecord) {
				t.Fatalf("an error outside ErrRecord: %v", err)
			}
			return
		}
		if r.check() != nil || p == "" {
			t.Fatalf("a record that opened breaks its bounds: %+v", r)
		}
	})
}

// FuzzSplitRecords: a member list frame splits into at most maxMembers+1
// records of at most maxRecordBytes, or is refused.
func FuzzSplitRecords(f *testing.F) {
	f.Add(joinRecords([]byte("own"), [][]byte{[]byte("a"), {}}))
	f.Add([]byte{0xff, 0xff, 0x03})
	f.Fuzz(func(t *testing.T, b []byte) {
		envs, err := splitRecords(b)
		if err != nil {
			return
		}
		if len(envs) > maxMembers+1 {
			t.Fatalf("%d records", len(envs))
		}
		for _, env := range envs {
			if len(env) > maxRecordBytes {
				t.Fatalf("a record of %d bytes", len(env))
			}
		}
	})
}
