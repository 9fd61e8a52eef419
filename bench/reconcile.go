package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"time"

	"github.com/scopemesh/scopemesh/bench/internal/report"
	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/hlc"
	"github.com/scopemesh/scopemesh/internal/fixture"
	"github.com/scopemesh/scopemesh/rbsr"
)

type reconcileParams struct {
	N          []int    `json:"n"`
	D          []int    `json:"d"`
	Layouts    []string `json:"layouts"`
	FrameLimit int      `json:"frame_limit"`
	MaxRounds  int      `json:"max_rounds"`
	Repeat     int      `json:"repeat"`
}

type reconcileResult struct {
	Layout     string  `json:"layout"`
	N          int     `json:"n"` // events on each side
	D          int     `json:"d"` // events on one side only, in all
	Rounds     int     `json:"rounds"`
	BytesOut   int     `json:"bytes_out"` // initiator to responder
	BytesIn    int     `json:"bytes_in"`
	PerID      float64 `json:"x32d"` // all bytes over 32 × d: the cost of sending the differing IDs once
	InitCPUms  float64 `json:"init_ms"`
	RespCPUms  float64 `json:"resp_ms"`
	InitMedian float64 `json:"init_median_ms"`
	RespMedian float64 `json:"resp_median_ms"`
	LoadSecs   float64 `json:"load_seconds"` // building both sets through crdt.New
	Found      int     `json:"found"`        // differences the session found: d, unless it failed
	Err        string  `json:"err,omitempty"`
}

func runReconcile(ctx context.Context, e *env, args []string) error {
	p := reconcileParams{N: []int{1_000_000}, D: []int{1, 1000, 100_000}, Repeat: 3}
	layouts := words{list: []string{"clustered", "scattered"}, allowed: []string{"clustered", "scattered"}}
	fs := e.flags("reconcile")
	fs.Var((*ints)(&p.N), "n", "events on each side, a comma-separated list (up to 10,000,000)")
	fs.Var((*ints)(&p.D), "d", "events on one side only, in all, a comma-separated list")
	fs.Var(&layouts, "layouts", "where the differences lie: clustered (the newest events, as a partition leaves them), scattered")
	fs.IntVar(&p.FrameLimit, "frame", 0, "reconciliation frame limit in bytes; 0: rbsr.DefaultFrameLimit (64 KiB)")
	fs.IntVar(&p.MaxRounds, "max-rounds", 0, "the initiator's round limit; 0: the crdt default (256)")
	fs.IntVar(&p.Repeat, "repeat", p.Repeat, "sessions per configuration; CPU times are the fastest and the median")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	p.Layouts = layouts.list

	run := report.New("reconcile", p)
	var results []reconcileResult
	for _, n := range p.N {
		for _, d := range p.D {
			for _, layout := range p.Layouts {
				fmt.Fprintf(os.Stderr, "n = %s, d = %s, %s\n", report.Int(int64(n)), report.Int(int64(d)), layout)
				r, err := reconcileOnce(ctx, n, d, layout, p)
				if err != nil {
					return fmt.Errorf("n=%d d=%d %s: %w", n, d, layout, err)
				}
				results = append(results, r)
				runtime.GC() // the next configuration's sets need the memory
			}
		}
	}

	t := report.Table{Title: "the reconciler alone (CPU: one goroutine per side, fastest of the sessions)", Header: []string{
		"layout", "n", "d", "rounds", "bytes out", "bytes in", "× 32·d", "initiator", "responder", "load", "found"}}
	for _, r := range results {
		found := report.Int(int64(r.Found))
		if r.Err != "" {
			found += " (" + r.Err + ")"
		}
		t.Add(r.Layout, r.N, r.D, r.Rounds, report.Bytes(int64(r.BytesOut)), report.Bytes(int64(r.BytesIn)), r.PerID,
			ms(r.InitCPUms), ms(r.RespCPUms), secs(r.LoadSecs), found)
	}
	t.Print(os.Stdout)
	return e.finish(run, results, reconcileTargets(results))
}

// reconcileTargets checks issue 5's figures at n = 1,000,000: clustered
// d = 1,000 in ≤ 3 round trips, ≤ 1.5 × 32·d bytes, ≤ 5 ms CPU per side;
// scattered d = 1,000 ≤ 25 × 32·d; d = 1 ≤ 3 KiB in all.
func reconcileTargets(rs []reconcileResult) []target {
	var ts []target
	for _, r := range rs {
		if r.N != 1_000_000 {
			continue
		}
		switch {
		case r.D == 1000 && r.Layout == "clustered":
			ts = append(ts,
				atMost("reconcile clustered d=1,000: round trips", float64(r.Rounds), 3, ""),
				atMost("reconcile clustered d=1,000: bytes / 32·d", r.PerID, 1.5, "×"),
				atMost("reconcile clustered d=1,000: initiator CPU", r.InitCPUms, 5, "ms"),
				atMost("reconcile clustered d=1,000: responder CPU", r.RespCPUms, 5, "ms"))
		case r.D == 1000 && r.Layout == "scattered":
			ts = append(ts, atMost("reconcile scattered d=1,000: bytes / 32·d", r.PerID, 25, "×"))
		case r.D == 1:
			ts = append(ts, atMost("reconcile "+r.Layout+" d=1: bytes", float64(r.BytesOut+r.BytesIn)/1024, 3, "KiB"))
		}
	}
	return ts
}

func reconcileOnce(ctx context.Context, n, d int, layout string, p reconcileParams) (reconcileResult, error) {
	res := reconcileResult{Layout: layout, N: n, D: d}
	ka, kb := splitKeys(n, d, layout == "clustered")
	want := differing(ka, kb)

	t0 := time.Now()
	sa, err := crdt.New(ctx, newKeyStore(ka), crdt.Options{})
	if err != nil {
		return res, err
	}
	defer sa.Close()
	sb, err := crdt.New(ctx, newKeyStore(kb), crdt.Options{})
	if err != nil {
		return res, err
	}
	defer sb.Close()
	res.LoadSecs = time.Since(t0).Seconds()
	ka, kb = nil, nil

	opts := rbsr.Options{FrameLimit: p.FrameLimit, MaxRounds: p.MaxRounds}
	var initTimes, respTimes []float64
	for range max(p.Repeat, 1) {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		init, err := rbsr.NewReconciler(sa, opts)
		if err != nil {
			return res, err
		}
		resp, err := rbsr.NewReconciler(sb, opts)
		if err != nil {
			return res, err
		}
		var initTime, respTime time.Duration
		out, in := 0, 0
		t := time.Now()
		msg, err := init.Initiate()
		initTime += time.Since(t)
		for done := false; err == nil && !done; {
			out += len(msg)
			var reply []byte
			t = time.Now()
			reply, err = resp.Respond(msg)
			respTime += time.Since(t)
			if err != nil {
				break
			}
			in += len(reply)
			t = time.Now()
			msg, done, err = init.Reconcile(reply)
			initTime += time.Since(t)
		}
		res.Rounds, res.BytesOut, res.BytesIn = init.Rounds(), out, in
		res.Found = len(init.Have()) + len(init.Need())
		initTimes = append(initTimes, float64(initTime)/1e6)
		respTimes = append(respTimes, float64(respTime)/1e6)
		if errors.Is(err, rbsr.ErrRounds) {
			// What the session learned holds; a node would fetch it and
			// start another session. Report it as it stands.
			res.Err = err.Error()
			break
		}
		if err != nil {
			return res, err
		}
		if res.Found != want {
			return res, fmt.Errorf("the session found %d differences, want %d", res.Found, want)
		}
	}
	res.PerID = float64(res.BytesOut+res.BytesIn) / float64(32*want)
	res.InitCPUms, res.RespCPUms = slices.Min(initTimes), slices.Min(respTimes)
	res.InitMedian, res.RespMedian = report.Median(initTimes), report.Median(respTimes)
	return res, nil
}

// splitKeys returns the keys of two sets of n events each that differ in d
// events, half on each side (one, on the responder, for d = 1). Keys follow
// a node's clock: a few microseconds apart, sometimes equal in wall time.
// Clustered puts the differences at the newest end, as a partition leaves
// them; scattered spreads them at random. The crdt package's own benchmark
// builds its sets the same way.
func splitKeys(n, d int, clustered bool) (a, b []crdt.Key) {
	universe := keySequence(uint64(n+d), n+d-d/2)
	rng := rand.New(rand.NewPCG(uint64(d), 3))
	side := make([]uint8, len(universe)) // 0: both, 1: a only, 2: b only
	if clustered {
		for i := len(universe) - d; i < len(universe); i++ {
			side[i] = uint8(1 + i%2)
		}
	} else {
		for placed := 0; placed < d; {
			if i := rng.IntN(len(universe)); side[i] == 0 {
				side[i] = uint8(1 + placed%2)
				placed++
			}
		}
	}
	if d == 1 {
		for i := range side {
			if side[i] != 0 {
				side[i] = 2
			}
		}
	}
	a = make([]crdt.Key, 0, n)
	b = make([]crdt.Key, 0, n)
	for i, k := range universe {
		switch side[i] {
		case 0:
			a, b = append(a, k), append(b, k)
		case 1:
			a = append(a, k)
		case 2:
			b = append(b, k)
		}
	}
	return a, b
}

// keySequence returns n keys in key order.
func keySequence(seed uint64, n int) []crdt.Key {
	rng := rand.New(rand.NewPCG(seed, 7))
	keys := make([]crdt.Key, n)
	wall := fixture.Start
	var id events.ID
	runStart := 0
	for i := range keys {
		if rng.IntN(16) != 0 {
			// A new wall time: sort the run of keys that shared the last.
			slices.SortFunc(keys[runStart:i], func(x, y crdt.Key) int { return x.Compare(y) })
			runStart = i
			wall += int64(1 + rng.IntN(5000))
		}
		for j := 0; j < len(id); j += 8 {
			binary.LittleEndian.PutUint64(id[j:], rng.Uint64())
		}
		keys[i] = crdt.MakeKey(hlc.Timestamp{Wall: wall, Logical: uint32(rng.IntN(3))}, id)
	}
	slices.SortFunc(keys[runStart:], func(x, y crdt.Key) int { return x.Compare(y) })
	return keys
}

// differing counts the keys in exactly one of two sorted lists.
func differing(a, b []crdt.Key) int {
	i, j, n := 0, 0, 0
	for i < len(a) && j < len(b) {
		switch c := bytes.Compare(a[i][:], b[j][:]); {
		case c == 0:
			i, j = i+1, j+1
		case c < 0:
			i, n = i+1, n+1
		default:
			j, n = j+1, n+1
		}
	}
	return n + len(a) - i + len(b) - j
}
