// Command clocks shows three nodes whose wall clocks disagree by hundreds of
// milliseconds passing a request around, and prints the timeline twice: by
// each node's wall clock, where replies seem to arrive before they were sent,
// and by hybrid logical clock, where every receive follows its send.
//
//	go run ./examples/clocks
package main

import (
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/scopemesh/scopemesh/hlc"
)

// skewedClock reads a shared physical clock shifted by a fixed offset, as a
// machine whose clock is off would.
type skewedClock struct {
	base   hlc.WallClock
	offset time.Duration
}

func (s skewedClock) Now() time.Time { return s.base.Now().Add(s.offset) }

type node struct {
	name  string
	clock *hlc.Clock
	wall  hlc.WallClock
}

type entry struct {
	node, what string
	wall       time.Time     // the node's own wall clock reading
	time       hlc.Timestamp // the node's hybrid logical time
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "clocks:", err)
		os.Exit(1)
	}
}

func run() error {
	// One true physical time, moved by hand so the output is the same on
	// every run.
	truth := hlc.NewManualClock(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	var nodes []*node
	for _, n := range []struct {
		name   string
		offset time.Duration
	}{{"edge-a", 0}, {"svc-b", +180 * time.Millisecond}, {"db-c", -240 * time.Millisecond}} {
		wall := skewedClock{truth, n.offset}
		c, err := hlc.NewClock(hlc.Config{WallClock: wall, MaxOffset: 500 * time.Millisecond})
		if err != nil {
			return err
		}
		nodes = append(nodes, &node{name: n.name, clock: c, wall: wall})
	}
	a, b, c := nodes[0], nodes[1], nodes[2]

	var log []entry
	record := func(n *node, what string) hlc.Timestamp {
		ts := n.clock.Now()
		log = append(log, entry{n.name, what, n.wall.Now(), ts})
		return ts
	}
	// send records the send on from, lets the message travel, and records
	// the receive on to after merging the sender's timestamp.
	send := func(from, to *node, msg string) error {
		ts := record(from, "send "+msg+" to "+to.name)
		truth.Advance(3 * time.Millisecond)
		if err := to.clock.Update(ts); err != nil {
			return err
		}
		record(to, "recv "+msg+" from "+from.name)
		truth.Advance(2 * time.Millisecond)
		return nil
	}

	start := truth.Now()
	record(a, "request arrives")
	steps := []struct {
		from, to *node
		msg      string
	}{{a, b, "GET /cart"}, {b, c, "SELECT cart"}, {c, b, "rows"}, {b, a, "200 OK"}}
	for _, s := range steps {
		if err := send(s.from, s.to, s.msg); err != nil {
			return err
		}
	}
	record(a, "response sent")

	print := func(title string, entries []entry) {
		fmt.Println(title)
		for _, e := range entries {
			hlcOffset := time.Duration(e.time.Wall - start.UnixNano())
			fmt.Printf("  %-7s wall %+6dms  hlc %+6dms.%d  %s\n",
				e.node, e.wall.Sub(start).Milliseconds(), hlcOffset.Milliseconds(), e.time.Logical, e.what)
		}
		fmt.Println()
	}
	byWall := slices.Clone(log)
	slices.SortStableFunc(byWall, func(x, y entry) int { return x.wall.Compare(y.wall) })
	print("By each node's wall clock (milliseconds after the request; receives seem to precede sends):", byWall)

	byHLC := slices.Clone(log)
	slices.SortFunc(byHLC, func(x, y entry) int { return x.time.Compare(y.time) })
	print("By hybrid logical clock (every receive after its send):", byHLC)
	return nil
}
