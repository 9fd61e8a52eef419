package rbsr

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/hlc"
	"github.com/scopemesh/scopemesh/internal/fixture"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected output of testdata/session scripts")

// testSet is a Set over the sorted-slice model, with a horizon a script
// sets.
type testSet struct {
	keys    *sliceKeys
	horizon crdt.Key
}

var (
	_ Set[*sliceKeys]      = (*testSet)(nil)
	_ Set[crdt.RankedKeys] = (*crdt.Set)(nil)
)

func newTestSet(keys []crdt.Key) *testSet { return &testSet{keys: newSliceKeys(keys)} }

func (s *testSet) ReadKeys(fn func(*sliceKeys) error) error {
	s.keys.mu.RLock()
	defer s.keys.mu.RUnlock()
	return fn(s.keys)
}

func (s *testSet) Horizon() crdt.Key { return s.horizon }

func (s *testSet) has(k crdt.Key) bool {
	s.keys.mu.RLock()
	defer s.keys.mu.RUnlock()
	_, ok := slices.BinarySearchFunc(s.keys.keys, k, crdt.Key.Compare)
	return ok
}

// Scripts name events by number: event i has the time fixture.Start+i µs
// and an ID hashed from i, so its key sorts by i.
func eventTime(i int) hlc.Timestamp { return hlc.Timestamp{Wall: fixture.Start + int64(i)*1000} }

func eventID(i int) events.ID {
	return events.ID(sha256.Sum256(binary.AppendUvarint([]byte("event"), uint64(i))))
}

func eventKey(i int) crdt.Key { return crdt.MakeKey(eventTime(i), eventID(i)) }

// eventNumber returns the number of the event with the given ID, or -1.
func eventNumber(id events.ID, upTo int) int {
	for i := range upTo {
		if eventID(i) == id {
			return i
		}
	}
	return -1
}

// timeNumber returns the number of the event at time t.
func timeNumber(t hlc.Timestamp) int64 { return (t.Wall - fixture.Start) / 1000 }

// harness runs the sessions of a script between side a (initiator) and
// side b (responder).
type harness struct {
	a, b     *testSet
	cfg      Config
	batch    int // events per batch the driver encodes
	numbers  map[events.ID]int
	ini      *Initiator // the session being stepped by hand, if any
	resp     *Responder // the other, if any
	peer     *Responder // the honest responder behind the hand-stepped initiator
	lastSent Frame      // the initiator's last frame
	out      strings.Builder
}

func newHarness() *harness {
	return &harness{a: newTestSet(nil), b: newTestSet(nil), batch: 100, numbers: make(map[events.ID]int)}
}

func (h *harness) printf(format string, args ...any) { fmt.Fprintf(&h.out, format, args...) }

func (h *harness) number(id events.ID) string {
	if n, ok := h.numbers[id]; ok {
		return strconv.Itoa(n)
	}
	return "?"
}

// encodeBatch is the scripts' events batch: the events' numbers.
func (h *harness) encodeBatch(ids []events.ID) []byte {
	var b []byte
	for _, id := range ids {
		n, ok := h.numbers[id]
		if !ok {
			panic("an event the scripts did not make")
		}
		b = binary.AppendUvarint(b, uint64(n))
	}
	return b
}

func decodeBatch(b []byte) ([]int, error) {
	var ns []int
	for len(b) > 0 {
		v, k := binary.Uvarint(b)
		if k <= 0 || v > 1<<20 {
			return nil, errors.New("not a batch")
		}
		ns, b = append(ns, int(v)), b[k:]
	}
	return ns, nil
}

// batches encodes ids in batches of h.batch, as a driver would.
func (h *harness) batches(ids []events.ID) [][]byte {
	var out [][]byte
	for len(ids) > 0 {
		n := min(len(ids), h.batch)
		out = append(out, h.encodeBatch(ids[:n]))
		ids = ids[n:]
	}
	return out
}

// merge adds a batch's events to s and returns how many were new there and
// how many it already held.
func (h *harness) merge(s *testSet, batch []byte) (added, dup int) {
	ns, err := decodeBatch(batch)
	if err != nil {
		return 0, 0
	}
	for _, n := range ns {
		k := eventKey(n)
		if s.has(k) {
			dup++
			continue
		}
		s.keys.insert(k)
		added++
	}
	return added, dup
}

func (h *harness) frame(f Frame) string {
	p := f.Payload
	switch f.Type {
	case FrameInitiate:
		if len(p) < hlc.EncodedLen {
			return fmt.Sprintf("Initiate %x", p)
		}
		t, _ := hlc.DecodeTimestamp(p[:hlc.EncodedLen])
		from := "start"
		if t != crdt.MinKey.Time() {
			from = strconv.FormatInt(timeNumber(t), 10)
		}
		return fmt.Sprintf("Initiate from=%s %dB", from, len(p)-hlc.EncodedLen)
	case FrameReconcile, FrameReconciled:
		return fmt.Sprintf("%s %dB", frameName(f.Type), len(p))
	case FrameWant:
		var bits []string
		for i := range len(p) * 8 {
			if p[i/8]&(1<<(i%8)) != 0 {
				bits = append(bits, strconv.Itoa(i))
			}
		}
		return "Want " + summarise(bits)
	case FrameEvents:
		ns, err := decodeBatch(p)
		if err != nil {
			return fmt.Sprintf("Events %x", p)
		}
		s := make([]string, len(ns))
		for i, n := range ns {
			s[i] = strconv.Itoa(n)
		}
		return "Events " + summarise(s)
	case FrameAck:
		v, _ := binary.Uvarint(p)
		return fmt.Sprintf("Ack %d", v)
	case FrameEnd:
		switch {
		case len(p) == 0:
			return "End"
		case len(p) == 1 && p[0] == 1:
			return "End insync"
		}
		return fmt.Sprintf("End %x", p)
	case FrameHorizon:
		t, err := hlc.DecodeTimestamp(p)
		if err != nil {
			return fmt.Sprintf("Horizon %x", p)
		}
		return fmt.Sprintf("Horizon %d", timeNumber(t))
	}
	return fmt.Sprintf("%s %x", frameName(f.Type), p)
}

// summarise lists up to 8 items and counts the rest.
func summarise(items []string) string {
	if len(items) <= 8 {
		return "[" + strings.Join(items, " ") + "]"
	}
	return fmt.Sprintf("[%s … %s] (%d)", strings.Join(items[:4], " "), strings.Join(items[len(items)-2:], " "), len(items))
}

var frameNames = map[FrameType]string{
	FrameReconcile: "Reconcile", FrameReconciled: "Reconciled", FrameWant: "Want",
	FrameEvents: "Events", FrameAck: "Ack", FrameEnd: "End", FrameError: "Error",
	FrameInitiate: "Initiate", FrameHorizon: "Horizon",
}

func frameName(t FrameType) string {
	if n, ok := frameNames[t]; ok {
		return n
	}
	return fmt.Sprintf("Frame(%d)", t)
}

func frameType(name string) (FrameType, error) {
	for t, n := range frameNames {
		if n == name {
			return t, nil
		}
	}
	v, err := strconv.Atoi(name)
	return FrameType(v), err
}

// sentinel names the sentinel an error matches, for scripts to show.
func sentinel(err error) string {
	for _, s := range []struct {
		err  error
		name string
	}{{ErrFrame, "ErrFrame"}, {ErrLimit, "ErrLimit"}, {ErrSession, "ErrSession"}, {ErrMessage, "ErrMessage"}, {ErrVersion, "ErrVersion"}, {ErrRounds, "ErrRounds"}, {ErrOptions, "ErrOptions"}} {
		if errors.Is(err, s.err) {
			return s.name
		}
	}
	return "unknown"
}

func (h *harness) ready(dir string, r Ready, err error) {
	if err != nil {
		h.printf("error %s: %v\n", sentinel(err), err)
		return
	}
	for _, f := range r.Frames {
		h.printf("%s %s\n", dir, h.frame(f))
	}
	if r.Send != nil {
		s := make([]string, len(r.Send))
		for i, id := range r.Send {
			s[i] = h.number(id)
		}
		h.printf("send %s\n", summarise(s))
	}
	if r.Merge != nil {
		h.printf("merge %s\n", strings.TrimPrefix(h.frame(Frame{FrameEvents, r.Merge}), "Events "))
	}
	if r.Done {
		h.printf("done\n")
	}
}

// result is what an honest session between a and b did.
type result struct {
	err              error
	rounds, passes   int
	inSync           bool
	movedAB, movedBA int // events that were new where they arrived
	dupAB, dupBA     int // events that arrived where they already were
	frames           int
}

// sync runs a whole session between honest drivers, tracing each frame if
// trace is set.
func (h *harness) sync(trace bool) result {
	var res result
	ini := NewInitiator(h.a, h.cfg)
	resp, err := NewResponder(h.b, h.cfg)
	if err != nil {
		return result{err: err}
	}
	var toA []Frame
	emit := func(dir string, f Frame) {
		res.frames++
		if f.Type == FrameInitiate {
			res.passes++
		}
		if trace {
			h.printf("%s %s\n", dir, h.frame(f))
		}
	}
	respond := func(f Frame) error {
		emit("→", f)
		rr, err := resp.Step(f)
		if err == nil && rr.Send != nil {
			for _, batch := range h.batches(rr.Send) {
				bf, err := resp.Batch(batch)
				if err != nil {
					return fmt.Errorf("responder: %w", err)
				}
				toA = append(toA, bf)
			}
			rr, err = resp.Sent()
		}
		if err == nil && rr.Merge != nil {
			added, dup := h.merge(h.b, rr.Merge)
			res.movedAB, res.dupAB = res.movedAB+added, res.dupAB+dup
			rr, err = resp.Merged(added)
		}
		if err != nil {
			return fmt.Errorf("responder: %w", err)
		}
		toA = append(toA, rr.Frames...)
		return nil
	}
	next := func() (Frame, error) {
		if len(toA) == 0 {
			return Frame{}, errors.New("the initiator waits for a frame the responder never sent")
		}
		f := toA[0]
		toA = toA[1:]
		emit("←", f)
		return f, nil
	}
	rd, err := ini.Start()
	for err == nil {
		for _, f := range rd.Frames {
			if err = respond(f); err != nil {
				break
			}
		}
		if err != nil || rd.Done {
			break
		}
		if rd.Send != nil {
			for _, batch := range h.batches(rd.Send) {
				var f Frame
				if f, err = ini.Batch(batch); err == nil {
					err = respond(f)
				}
				if err == nil {
					f, err = next()
				}
				if err == nil {
					_, err = ini.Step(f)
				}
				if err != nil {
					break
				}
			}
			if err == nil {
				rd, err = ini.Sent()
			}
			continue
		}
		if rd.Merge != nil {
			added, dup := h.merge(h.a, rd.Merge)
			res.movedBA, res.dupBA = res.movedBA+added, res.dupBA+dup
		}
		var f Frame
		if f, err = next(); err == nil {
			rd, err = ini.Step(f)
		}
	}
	res.err, res.rounds, res.inSync = err, ini.Rounds(), ini.InSync()
	if err == nil && (resp.InSync() != ini.InSync() || len(toA) > 0) {
		res.err = fmt.Errorf("the sides disagree: initiator in sync %v, responder %v, %d frames unread", ini.InSync(), resp.InSync(), len(toA))
	}
	return res
}

// equalAbove reports whether a and b hold the same keys above both
// horizons.
func (h *harness) equalAbove() bool {
	from := maxKey(h.a.horizon, h.b.horizon)
	above := func(s *testSet) []crdt.Key {
		i, _ := slices.BinarySearchFunc(s.keys.keys, from, crdt.Key.Compare)
		return s.keys.keys[i:]
	}
	return slices.Equal(above(h.a), above(h.b))
}

func maxKey(a, b crdt.Key) crdt.Key {
	if a.Compare(b) > 0 {
		return a
	}
	return b
}

// parseNumbers reads "1-100 205 300-310" into event numbers.
func parseNumbers(args []string) ([]int, error) {
	var ns []int
	for _, a := range args {
		lo, hi, found := strings.Cut(a, "-")
		l, err := strconv.Atoi(lo)
		if err != nil {
			return nil, err
		}
		u := l
		if found {
			if u, err = strconv.Atoi(hi); err != nil {
				return nil, err
			}
		}
		for i := l; i <= u; i++ {
			ns = append(ns, i)
		}
	}
	return ns, nil
}

// payload reads a payload token of a step.
func (h *harness) payload(tok string) ([]byte, error) {
	kind, arg, _ := strings.Cut(tok, ":")
	switch kind {
	case "":
		return nil, nil
	case "hex":
		return hex.DecodeString(arg)
	case "zeros":
		n, err := strconv.Atoi(arg)
		return make([]byte, n), err
	case "time":
		n, err := strconv.Atoi(arg)
		return eventTime(n).AppendBinary(nil), err
	case "uvarint":
		n, err := strconv.Atoi(arg)
		return binary.AppendUvarint(nil, uint64(n)), err
	case "bits":
		ns, err := parseNumbers(strings.Split(arg, ","))
		if err != nil || len(ns) == 0 {
			return nil, err
		}
		return wantBitmap(ns), nil
	case "events":
		ns, err := parseNumbers(strings.Split(arg, ","))
		var b []byte
		for _, n := range ns {
			b = binary.AppendUvarint(b, uint64(n))
		}
		return b, err
	case "initiate", "message":
		// An honest first message from a's side, starting at event arg
		// (or the beginning): as a pass's first frame carries it, after
		// where the pass starts, or bare.
		o := h.cfg.Reconcile
		if arg != "" {
			n, err := strconv.Atoi(arg)
			if err != nil {
				return nil, err
			}
			o.From = crdt.TimeKey(eventTime(n))
		}
		rec, err := newReconciler(readFunc[*sliceKeys](h.a), o)
		if err != nil {
			return nil, err
		}
		msg, err := rec.Initiate()
		if kind == "message" {
			return msg, err
		}
		return append(rec.From().Time().AppendBinary(nil), msg...), err
	}
	return nil, fmt.Errorf("unknown payload %q", tok)
}

func (h *harness) run(t *testing.T, cmd string, args []string) {
	t.Helper()
	kv := func() map[string]int {
		m := make(map[string]int)
		for _, a := range args {
			k, v, _ := strings.Cut(a, "=")
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("%s: %v", a, err)
			}
			m[k] = n
		}
		return m
	}
	side := func(name string) *testSet {
		switch name {
		case "a":
			return h.a
		case "b":
			return h.b
		}
		t.Fatalf("no side %q", name)
		return nil
	}
	switch cmd {
	case "set":
		ns, err := parseNumbers(args[1:])
		if err != nil {
			t.Fatal(err)
		}
		keys := make([]crdt.Key, len(ns))
		for i, n := range ns {
			keys[i] = eventKey(n)
			h.numbers[eventID(n)] = n
		}
		s := side(args[0])
		s.keys = newSliceKeys(keys)
		h.printf("%s holds %d\n", args[0], len(keys))
	case "horizon":
		n, err := strconv.Atoi(args[1])
		if err != nil {
			t.Fatal(err)
		}
		side(args[0]).horizon = crdt.TimeKey(eventTime(n))
		h.printf("ok\n")
	case "config":
		m := kv()
		h.cfg = Config{MaxRounds: m["maxrounds"], MaxListed: m["maxlisted"], Reconcile: Options{FrameLimit: m["frame"], MaxRounds: m["recrounds"], IDListThreshold: m["listthreshold"]}}
		if b := m["batch"]; b > 0 {
			h.batch = b
		}
		h.printf("ok\n")
	case "sync":
		trace := len(args) == 0 || args[0] != "quiet"
		res := h.sync(trace)
		if res.err != nil {
			h.printf("error %s: %v\n", sentinel(res.err), res.err)
		}
		h.printf("rounds=%d passes=%d frames=%d insync=%v a=%d b=%d moved a→b=%d b→a=%d dup=%d equal=%v\n",
			res.rounds, res.passes, res.frames, res.inSync, h.a.keys.Len(), h.b.keys.Len(), res.movedAB, res.movedBA, res.dupAB+res.dupBA, h.equalAbove())
	case "initiator":
		h.ini, h.resp = NewInitiator(h.a, h.cfg), nil
		var err error
		if h.peer, err = NewResponder(h.b, h.cfg); err != nil {
			t.Fatal(err)
		}
		h.printf("ok\n")
	case "responder":
		var err error
		h.ini, h.peer = nil, nil
		if h.resp, err = NewResponder(h.b, h.cfg); err != nil {
			t.Fatal(err)
		}
		h.printf("ok\n")
	case "start":
		r, err := h.ini.Start()
		h.sent(r)
		h.ready("→", r, err)
	case "answer":
		// The honest responder's answer to the initiator's last frame, as
		// the responder sends it, without stepping the initiator.
		r, err := h.peer.Step(h.lastSent)
		h.ready("←", r, err)
	case "step":
		typ, err := frameType(args[0])
		if err != nil {
			t.Fatal(err)
		}
		var p []byte
		if len(args) > 1 {
			if args[1] == "answer" {
				r, err := h.peer.Step(h.lastSent)
				if err != nil || len(r.Frames) != 1 {
					t.Fatalf("the honest responder did not answer: %v", err)
				}
				p = r.Frames[0].Payload
			} else if p, err = h.payload(args[1]); err != nil {
				t.Fatal(err)
			}
		}
		f := Frame{typ, p}
		if h.ini != nil {
			r, err := h.ini.Step(f)
			h.sent(r)
			h.ready("→", r, err)
		} else {
			r, err := h.resp.Step(f)
			h.ready("←", r, err)
		}
	case "batch":
		p, err := h.payload(args[0])
		if err != nil {
			t.Fatal(err)
		}
		var f Frame
		if h.ini != nil {
			f, err = h.ini.Batch(p)
			h.sent(Ready{Frames: []Frame{f}})
		} else {
			f, err = h.resp.Batch(p)
		}
		h.ready("→", Ready{Frames: []Frame{f}}, err)
	case "sent":
		var r Ready
		var err error
		if h.ini != nil {
			r, err = h.ini.Sent()
			h.sent(r)
		} else {
			r, err = h.resp.Sent()
		}
		h.ready("→", r, err)
	case "merged":
		n, err := strconv.Atoi(args[0])
		if err != nil {
			t.Fatal(err)
		}
		r, err := h.resp.Merged(n)
		h.ready("←", r, err)
	case "state":
		if h.ini != nil {
			h.printf("rounds=%d insync=%v err=%v\n", h.ini.Rounds(), h.ini.InSync(), h.ini.Err() != nil)
		} else {
			h.printf("rounds=%d insync=%v err=%v listed=%d\n", h.resp.Rounds(), h.resp.InSync(), h.resp.Err() != nil, len(h.resp.listed))
		}
	default:
		t.Fatalf("unknown command %q", cmd)
	}
}

// sent remembers the initiator's last frame, for the honest peer to answer.
func (h *harness) sent(r Ready) {
	if n := len(r.Frames); n > 0 && r.Frames[n-1].Type != FrameEvents {
		h.lastSent = r.Frames[n-1]
	}
}

// TestSessionScripts runs the scripts in testdata/session: each case is a
// command, "----", and the output expected, ended by a blank line. -rewrite
// writes the output the code gives instead.
func TestSessionScripts(t *testing.T) {
	files, _ := filepath.Glob("testdata/session/*.txt")
	if len(files) == 0 {
		t.Fatal("no scripts")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			h := newHarness()
			lines := strings.Split(string(data), "\n")
			var out strings.Builder
			for i := 0; i < len(lines); i++ {
				line := lines[i]
				if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
					out.WriteString(line + "\n")
					continue
				}
				if i+1 >= len(lines) || lines[i+1] != "----" {
					t.Fatalf("%s:%d: a command without ---- after it", file, i+1)
				}
				j := i + 2
				for j < len(lines) && lines[j] != "" {
					j++
				}
				want := strings.Join(lines[i+2:j], "\n")
				fields := strings.Fields(line)
				h.out.Reset()
				h.run(t, fields[0], fields[1:])
				got := strings.TrimSuffix(h.out.String(), "\n")
				if got != want && !*rewrite {
					t.Errorf("%s:%d: %s\ngot:\n%s\nwant:\n%s", file, i+1, line, got, want)
				}
				out.WriteString(line + "\n----\n")
				if got != "" {
					out.WriteString(got + "\n")
				}
				i = j - 1
			}
			if *rewrite {
				if err := os.WriteFile(file, []byte(strings.TrimSuffix(out.String(), "\n")), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestSessionModel runs honest sessions between random sets under small
// limits and checks them against the model: afterwards both sides hold
// the union, each event crossed once, only what the other side lacked, and
// the session ended in sync.
func TestSessionModel(t *testing.T) {
	trials := 60
	if testing.Short() || raceEnabled {
		trials = 15
	}
	for trial := range trials {
		rng := rand.New(rand.NewPCG(uint64(trial), 23))
		h := newHarness()
		n := 1 + rng.IntN(3000)
		var a, b []crdt.Key
		for i := range n {
			h.numbers[eventID(i)] = i
			switch r := rng.IntN(10); {
			case r < 6:
				a, b = append(a, eventKey(i)), append(b, eventKey(i))
			case r < 8:
				a = append(a, eventKey(i))
			default:
				b = append(b, eventKey(i))
			}
		}
		h.a, h.b = newTestSet(a), newTestSet(b)
		onlyA, onlyB := len(difference(a, b)), len(difference(b, a))
		h.cfg = Config{
			MaxListed: []int{0, 64, 300}[rng.IntN(3)],
			Reconcile: Options{FrameLimit: []int{0, MinFrameLimit, 4096}[rng.IntN(3)], MaxRounds: []int{0, 3, 8}[rng.IntN(3)]},
		}
		h.batch = 1 + rng.IntN(200)
		res := h.sync(false)
		if res.err != nil || !res.inSync || !h.equalAbove() {
			t.Fatalf("trial %d (%+v): %+v, equal %v", trial, h.cfg, res, h.equalAbove())
		}
		if res.movedAB != onlyA || res.movedBA != onlyB || res.dupAB+res.dupBA != 0 {
			t.Fatalf("trial %d (%+v): moved %d and %d, %d twice; want %d and %d", trial, h.cfg, res.movedAB, res.movedBA, res.dupAB+res.dupBA, onlyA, onlyB)
		}
	}
}

// FuzzSession feeds arbitrary frames to both roles: neither panics, every
// error is one of the package's, a failed session stays failed, and what a
// responder is asked to send are events it holds.
func FuzzSession(f *testing.F) {
	h := newHarness()
	var a, b []crdt.Key
	for i := range 300 {
		h.numbers[eventID(i)] = i
		if i%7 != 0 {
			a = append(a, eventKey(i))
		}
		if i%5 != 0 {
			b = append(b, eventKey(i))
		}
	}
	h.a, h.b = newTestSet(a), newTestSet(b)
	first, _ := h.payload("initiate:")
	seed := func(frames ...Frame) []byte {
		var d []byte
		for _, fr := range frames {
			d = append(d, byte(fr.Type))
			d = binary.AppendUvarint(d, uint64(len(fr.Payload)))
			d = append(d, fr.Payload...)
		}
		return d
	}
	f.Add(seed(Frame{FrameInitiate, first}, Frame{FrameWant, []byte{0xff}}, Frame{FrameEnd, []byte{1}}))
	f.Add(seed(Frame{FrameInitiate, first}, Frame{FrameReconcile, first[hlc.EncodedLen:]}, Frame{FrameEvents, []byte{1, 2}}))
	f.Add(seed(Frame{FrameHorizon, eventTime(5).AppendBinary(nil)}, Frame{FrameReconciled, []byte{reconcileVersion, 0}}))
	f.Add(seed(Frame{FrameAck, []byte{0x80}}, Frame{FrameWant, []byte{1, 2, 3}}))
	known := []error{ErrFrame, ErrLimit, ErrSession, ErrMessage, ErrVersion}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := Config{MaxRounds: 8, MaxListed: 64, Reconcile: Options{FrameLimit: MinFrameLimit}}
		resp, err := NewResponder(h.b, cfg)
		if err != nil {
			t.Fatal(err)
		}
		ini := NewInitiator(h.a, cfg)
		if _, err := ini.Start(); err != nil {
			t.Fatal(err)
		}
		check := func(role string, r Ready, err error) {
			if err != nil {
				if !slices.ContainsFunc(known, func(k error) bool { return errors.Is(err, k) }) {
					t.Fatalf("%s: error %v is none of the package's", role, err)
				}
				return
			}
			for _, fr := range r.Frames {
				if (fr.Type == FrameReconciled || fr.Type == FrameReconcile) && len(fr.Payload) > MinFrameLimit {
					t.Fatalf("%s wrote a message of %d bytes", role, len(fr.Payload))
				}
			}
		}
		for len(data) > 0 {
			typ := FrameType(data[0])
			n, k := binary.Uvarint(data[1:])
			if k <= 0 || n > uint64(len(data)-1-k) {
				return
			}
			fr := Frame{typ, data[1+k : 1+k+int(n)]}
			data = data[1+k+int(n):]

			r, err := resp.Step(fr)
			check("responder", r, err)
			switch {
			case err != nil:
				if _, again := resp.Step(Frame{FrameEnd, nil}); again == nil {
					t.Fatal("a failed responder took another frame")
				}
			case r.Send != nil:
				for _, id := range r.Send {
					if n, ok := h.numbers[id]; !ok || !h.b.has(eventKey(n)) {
						t.Fatalf("the responder was asked to send %x, which it does not hold", id)
					}
				}
				_, err = resp.Batch(nil)
				if err == nil {
					r, err = resp.Sent()
				}
				check("responder", r, err)
			case r.Merge != nil:
				r, err = resp.Merged(0)
				check("responder", r, err)
			}

			r, err = ini.Step(fr)
			check("initiator", r, err)
			switch {
			case err != nil:
				if _, again := ini.Step(Frame{FrameReconciled, nil}); again == nil {
					t.Fatal("a failed initiator took another frame")
				}
			case r.Send != nil:
				if _, err := ini.Batch(nil); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}
