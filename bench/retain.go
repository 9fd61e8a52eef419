package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scopemesh/scopemesh"
	"github.com/scopemesh/scopemesh/bench/internal/cluster"
	"github.com/scopemesh/scopemesh/bench/internal/report"
	"github.com/scopemesh/scopemesh/hlc"
)

type retainParams struct {
	Events    int           `json:"events"`
	Callers   int           `json:"callers"`
	Retention time.Duration `json:"retention"` // simulated
	Span      time.Duration `json:"span"`      // simulated time the run covers
	Repeat    int           `json:"repeat"`
	Samples   int           `json:"samples"`
	Modes     []string      `json:"modes"`
	MaxBytes  int64         `json:"max_bytes"`
	Rate      int           `json:"rate"` // events/s offered; 0: as fast as Record goes
}

// retainSample is the store's state at one point of a run.
type retainSample struct {
	Recorded   int     `json:"recorded"`
	Hours      float64 `json:"hours"` // simulated time since the start
	StoreBytes int64   `json:"store_bytes"`
	Reclaim    int64   `json:"reclaimable_bytes"` // of StoreBytes, deleted data not yet compacted away
	Held       int     `json:"held"`
}

type retainResult struct {
	Mode         string         `json:"mode"` // "retain", "keep" or "cap"
	Round        int            `json:"round"`
	Events       int            `json:"events"`
	Seconds      float64        `json:"seconds"`
	EventsPerSec float64        `json:"events_per_sec"`
	CPUPerEvent  float64        `json:"cpu_us_per_event"`
	Expired      uint64         `json:"expired"`
	Samples      []retainSample `json:"samples"`
}

func runRetain(ctx context.Context, e *env, args []string) error {
	p := retainParams{Events: 2_000_000, Callers: 8, Retention: 4 * time.Hour, Span: 12 * time.Hour, Repeat: 1, Samples: 60, MaxBytes: 256 << 20}
	fs := e.flags("retain")
	fs.IntVar(&p.Events, "events", p.Events, "events recorded per run")
	fs.IntVar(&p.Callers, "callers", p.Callers, "concurrent Record callers")
	fs.DurationVar(&p.Retention, "retention", p.Retention, "Config.Retention, in simulated time (at least 10m)")
	fs.DurationVar(&p.Span, "span", p.Span, "simulated time the run's events cover, by a manual clock")
	fs.IntVar(&p.Repeat, "repeat", p.Repeat, "rounds; each runs with retention and without, the order alternating")
	fs.IntVar(&p.Samples, "samples", p.Samples, "store measurements per run")
	modes := words{list: []string{"retain", "keep"}, allowed: []string{"retain", "keep", "cap"}}
	fs.Var(&modes, "modes", "runs with retention (retain), without (keep), and keeping everything under -max-bytes (cap)")
	fs.Int64Var(&p.MaxBytes, "max-bytes", p.MaxBytes, "Config.MaxBytes of the cap runs")
	fs.IntVar(&p.Rate, "rate", p.Rate, "events/s offered, over all callers; 0: as fast as they go")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	p.Modes = modes.list
	run := report.New("retain", p)
	var results []retainResult
	for round := range p.Repeat {
		modes := slices.Clone(p.Modes)
		if round%2 == 1 {
			slices.Reverse(modes)
		}
		for _, mode := range modes {
			r, err := retainOnce(ctx, mode, round, p)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", round, mode, err)
			}
			results = append(results, r)
		}
	}
	t := report.Table{Title: fmt.Sprintf("recording on Pebble for %v of simulated time, retention %v", p.Span, p.Retention),
		Header: []string{"round", "mode", "events", "events/s", "CPU µs/event", "expired", "held at end", "store at end"}}
	for _, r := range results {
		last := r.Samples[len(r.Samples)-1]
		t.Add(r.Round, r.Mode, r.Events, r.EventsPerSec, r.CPUPerEvent, report.Int(int64(r.Expired)), report.Int(int64(last.Held)), report.Bytes(last.StoreBytes))
	}
	t.Print(os.Stdout)
	sum := summariseRetain(results, p)
	if sum.capped > 0 {
		fmt.Printf("under a cap of %s, the store peaked at %.2f × the cap once it first reached it, and took %.2f × on average over the last fifth of the runs\n",
			report.Bytes(p.MaxBytes), sum.capPeak, sum.capLevel)
	}
	if sum.throughput == 0 {
		return e.finish(run, results, nil)
	}
	fmt.Printf("\nthroughput with retention / without: %.3f (CPU µs/event %.2f / %.2f); expiry costs %.2f µs of CPU per expired event\n",
		sum.throughput, sum.cpuRetain, sum.cpuKeep, sum.expiryCPU)
	fmt.Printf("over the last fifth of the runs with retention, the node held %.2f × the events the retention implies (the retainer ticks each second, %v of simulated time), and its store took %.2f × the bytes of one holding as many events without retention\n",
		sum.held, time.Duration(float64(p.Span)/(float64(p.Events)/sum.eventsPerSec)).Round(time.Minute), sum.level)
	return e.finish(run, results, []target{
		atLeast("Record throughput with retention / without", sum.throughput, 0.9, "×"),
		atMost("events held / what the retention implies", sum.held, 1.25, "×"),
		atMost("store with retention / one holding as many events", sum.level, 1.25, "×"),
	})
}

// retainSummary compares the runs with retention and without.
type retainSummary struct {
	throughput         float64 // mean events/s with retention over without
	eventsPerSec       float64 // mean events/s with retention
	cpuRetain, cpuKeep float64 // CPU µs per event recorded
	expiryCPU          float64 // µs per expired event
	held               float64 // events held late in the runs with retention, over those the retention implies
	level              float64 // store bytes late in the runs with retention, over those of a store holding as many events
	capped             int     // cap runs
	capPeak, capLevel  float64 // store bytes over MaxBytes: the most once first reached, and late in the run
}

func summariseRetain(rs []retainResult, p retainParams) retainSummary {
	var s retainSummary
	var epsR, epsK, expired []float64
	var levels, held []float64
	var kept [][]retainSample
	for _, r := range rs {
		if r.Mode == "keep" {
			epsK = append(epsK, r.EventsPerSec)
			s.cpuKeep += r.CPUPerEvent
			kept = append(kept, r.Samples)
		}
	}
	implied := float64(p.Events) * float64(p.Retention) / float64(p.Span)
	for _, r := range rs {
		if r.Mode == "cap" {
			s.capped++
			s.capPeak = max(s.capPeak, capPeak(r.Samples, p.MaxBytes))
			var tail []float64
			for _, x := range r.Samples[len(r.Samples)*4/5:] {
				tail = append(tail, float64(x.StoreBytes)/float64(p.MaxBytes))
			}
			s.capLevel += mean(tail)
		}
		if r.Mode != "retain" {
			continue
		}
		epsR = append(epsR, r.EventsPerSec)
		s.cpuRetain += r.CPUPerEvent
		expired = append(expired, float64(r.Expired))
		// Without retention the store holds every event: its size when it
		// held as many, its fixed costs (the write-ahead log, the
		// memtable) included, is what expiry's own costs — tombstones
		// not yet compacted, trace entries not yet due — add to.
		for _, x := range r.Samples[len(r.Samples)*4/5:] {
			held = append(held, float64(x.Held)/implied)
			for _, k := range kept {
				levels = append(levels, float64(x.StoreBytes)/bytesAt(k, x.Held))
			}
		}
	}
	s.cpuRetain /= float64(max(len(epsR), 1))
	s.cpuKeep /= float64(max(len(epsK), 1))
	s.eventsPerSec = mean(epsR)
	s.throughput = mean(epsR) / mean(epsK)
	if n := mean(expired); n > 0 {
		s.expiryCPU = (s.cpuRetain - s.cpuKeep) * float64(p.Events) / n
	}
	s.level, s.held = mean(levels), mean(held)
	s.capLevel /= float64(max(s.capped, 1))
	if len(epsK) == 0 || len(epsR) == 0 {
		s.throughput = 0
	}
	return s
}

// capPeak returns the largest store size over limit, once the store first
// reached limit.
func capPeak(samples []retainSample, limit int64) float64 {
	var peak int64
	reached := false
	for _, x := range samples {
		if reached = reached || x.StoreBytes >= limit; reached {
			peak = max(peak, x.StoreBytes)
		}
	}
	return float64(peak) / float64(limit)
}

// bytesAt returns the store's size when it held held events, interpolated
// between the samples around that point.
func bytesAt(samples []retainSample, held int) float64 {
	for i := 1; i < len(samples); i++ {
		a, b := samples[i-1], samples[i]
		if b.Held >= held && b.Held > a.Held {
			f := float64(held-a.Held) / float64(b.Held-a.Held)
			return float64(a.StoreBytes) + f*float64(b.StoreBytes-a.StoreBytes)
		}
	}
	return float64(samples[len(samples)-1].StoreBytes)
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	var t float64
	for _, x := range xs {
		t += x
	}
	return t / float64(len(xs))
}

// retainOnce records p.Events on a Pebble node whose manual clock moves
// p.Span forward over the run, with retention (mode "retain") or keeping
// everything ("keep"), measuring the store as it goes.
func retainOnce(ctx context.Context, mode string, round int, p retainParams) (retainResult, error) {
	dir, err := os.MkdirTemp("", "scopemesh-bench-retain-")
	if err != nil {
		return retainResult{}, err
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	wall := hlc.NewManualClock(start)
	cfg := scopemesh.Config{
		DataDir: dir, WallClock: wall, Retention: -1,
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, DisableMDNS: true, DHT: scopemesh.DHTOff,
	}
	switch mode {
	case "retain":
		cfg.Retention = p.Retention
	case "cap":
		cfg.MaxBytes = p.MaxBytes
	}
	n, err := scopemesh.Open(ctx, cfg)
	if err != nil {
		return retainResult{}, err
	}
	defer n.Close()

	progress := report.Stderr(fmt.Sprintf("round %d, %s", round, mode), p.Events)
	defer progress.Done()
	step := p.Span / time.Duration(p.Events)
	w := cluster.NewWorkload(ctx, p.Events)
	res := retainResult{Mode: mode, Round: round, Events: p.Events}
	var mu sync.Mutex // guards res.Samples
	every := max(p.Events/p.Samples, 1)
	var recorded sync.WaitGroup
	errs := make([]error, p.Callers)
	cpu := report.CPUPerEvent()
	began := time.Now()
	var count atomic.Int64
	for k := range p.Callers {
		recorded.Go(func() {
			for i := range cluster.Share(k, p.Callers, p.Events) {
				if _, err := n.Record(w.Event(i)); err != nil {
					errs[k] = err
					return
				}
				wall.Advance(step)
				c := count.Add(1)
				if p.Rate > 0 {
					time.Sleep(time.Until(began.Add(time.Duration(c) * time.Second / time.Duration(p.Rate))))
				}
				if c%int64(every) == 0 {
					st := n.Status()
					mu.Lock()
					res.Samples = append(res.Samples, retainSample{Recorded: int(c), Hours: wall.Now().Sub(start).Hours(), StoreBytes: st.StoreBytes, Reclaim: st.Reclaimable, Held: st.Events})
					mu.Unlock()
				}
				if c%1024 == 0 {
					progress.Add(1024)
				}
			}
		})
	}
	recorded.Wait()
	elapsed := time.Since(began)
	res.CPUPerEvent = cpu(p.Events)
	for _, err := range errs {
		if err != nil {
			return res, err
		}
	}
	res.Seconds, res.EventsPerSec = elapsed.Seconds(), float64(p.Events)/elapsed.Seconds()
	st := n.Status()
	res.Expired = st.Expired
	slices.SortFunc(res.Samples, func(a, b retainSample) int { return a.Recorded - b.Recorded })
	res.Samples = append(res.Samples, retainSample{Recorded: p.Events, Hours: wall.Now().Sub(start).Hours(), StoreBytes: st.StoreBytes, Reclaim: st.Reclaimable, Held: st.Events})
	return res, nil
}
