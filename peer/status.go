package peer

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/scopemesh/scopemesh/hlc"
)

// ClockSkew reports an origin node whose events arrived with clocks too far
// ahead of this node's: they were not merged.
type ClockSkew struct {
	Origin string        // the events' Node
	Events uint64        // how many were refused
	Ahead  time.Duration // how far ahead the latest one was
	Last   time.Time     // when the latest one arrived
}

// Status is the cluster as one node sees it.
type Status struct {
	ID        string        // the node's peer ID
	Name      string        // its name (Config.Name)
	Joined    bool          // it holds the cluster's member list (Host.Join)
	Addrs     []string      // its dialable multiaddrs
	Events    int           // events held in its replica
	Peers     []PeerInfo    // cluster members it knows of, by ID
	Connected int           // how many of them are connected
	Gossip    GossipStats   // delta replication counters
	ClockSkew []ClockSkew   // origins whose clocks ran too far ahead, by origin
	Uptime    time.Duration // since the node started

	// Sync sessions and cluster queries since the node started, each side
	// apart: sessions it started and those peers started; queries it
	// answered for peers and those it asked of them.
	SyncInitiated, SyncServed   SyncStats
	QueriesServed, QueriesAsked QueryStats

	// Retention: what the node keeps, and what it has let go.
	Horizon     hlc.Timestamp // the node keeps no events from before it; zero if it keeps everything
	StoreBytes  int64         // bytes its store takes, on disk or in memory
	Reclaimable int64         // of StoreBytes, held by deleted events until the store compacts them away
	Expired     uint64        // events deleted below the horizon since the node started
	Retention   time.Duration // how long it keeps events; negative: for good (the Node's setting)
	MaxBytes    int64         // the cap on StoreBytes less Reclaimable; 0: none (the Node's setting)
}

// Bounds of the clock-skew table. Its keys are the origins that events
// name, which whoever sends them chooses: it keeps the maxSkewOrigins seen
// last, and forgets an origin not seen for skewExpiry.
const (
	maxSkewOrigins = 32
	skewExpiry     = time.Hour
)

// skewTable collects clock-skew warnings per origin. It is safe for
// concurrent use.
type skewTable struct {
	now func() time.Time

	mu      sync.Mutex
	origins map[string]*ClockSkew
}

func (t *skewTable) record(origin string, ts hlc.Timestamp) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.origins == nil {
		t.origins = make(map[string]*ClockSkew)
	}
	s, ok := t.origins[origin]
	if !ok {
		if len(t.origins) >= maxSkewOrigins {
			t.evictLocked(now)
		}
		s = &ClockSkew{Origin: origin}
		t.origins[origin] = s
	}
	s.Events++
	s.Ahead = time.Duration(ts.Wall - now.UnixNano())
	s.Last = now
}

// evictLocked drops the expired origins, or, if none has expired, the one
// seen least recently.
//
// REQUIRES: t.mu
func (t *skewTable) evictLocked(now time.Time) {
	var oldest string
	for o, s := range t.origins {
		if now.Sub(s.Last) > skewExpiry {
			delete(t.origins, o)
		} else if oldest == "" || s.Last.Before(t.origins[oldest].Last) {
			oldest = o
		}
	}
	if len(t.origins) >= maxSkewOrigins {
		delete(t.origins, oldest)
	}
}

func (t *skewTable) list() []ClockSkew {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]ClockSkew, 0, len(t.origins))
	for _, s := range t.origins {
		if now.Sub(s.Last) <= skewExpiry {
			out = append(out, *s)
		}
	}
	slices.SortFunc(out, func(a, b ClockSkew) int { return strings.Compare(a.Origin, b.Origin) })
	return out
}
