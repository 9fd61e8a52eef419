package query

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/scopemesh/scopemesh/events"
)

// RenderOptions shape a trace's text rendering.
type RenderOptions struct {
	Width int               // columns; 0: 80
	Names map[string]string // names for node IDs; default: the trace's Names, else the IDs' last 6 characters
}

// Render writes the trace for a terminal: one lane per node, events in
// causal order, each with its wall-clock offset from the trace's first
// event — from when it began, for an event that stands for a span — and
// its duration if it has one, and an arrow from its parent when that ran
// on another node.
//
//	trace 4fdedb0a…: 5 events on 3 nodes, complete
//	  A = node-3   B = node-5   C = node-2
//	   +0.000ms  ●        A http.request path=/cart/1
//	   +0.018ms  ╰─▶●     B rpc.call method=Cart.Get
//	   +0.034ms     ╰─▶●  C db.query [1.2ms] table=carts
//	   +0.053ms     ●◀─╯  B rpc.reply status=OK
func (t *Trace) Render(w io.Writer, opts RenderOptions) error {
	width := opts.Width
	if width <= 0 {
		width = 80
	}
	lanes := t.Lanes()
	lane := make(map[string]int, len(lanes))
	for i, l := range lanes {
		lane[l.Node] = i
	}
	var b strings.Builder
	state := "complete"
	if !t.Complete {
		state = "incomplete"
	}
	fmt.Fprintf(&b, "trace %v: %d events on %d nodes, %s\n", t.ID, len(t.Events), len(lanes), state)
	names := opts.Names
	if names == nil {
		names = t.Names
	}
	legend := make([]string, len(lanes))
	for i, l := range lanes {
		legend[i] = fmt.Sprintf("%c = %s", letter(i), shortName(l.Node, names))
	}
	fmt.Fprintf(&b, "  %s\n", strings.Join(legend, "   "))
	if len(t.Gaps) > 0 {
		fmt.Fprintf(&b, "  %d parent events are missing from every replica asked (marked ?)\n", len(t.Gaps))
	}
	if len(t.Expired) > 0 {
		fmt.Fprintf(&b, "  %d parent events expired with the part of the trace before %s (marked ?)\n",
			len(t.Expired), time.Unix(0, t.Horizon.Wall).UTC().Format(time.RFC3339))
	}

	// A lane is drawn as a line between its node's first and last event.
	first, last := map[int]int{}, map[int]int{}
	for row, e := range t.Events {
		l := lane[e.Node]
		if _, ok := first[l]; !ok {
			first[l] = row
		}
		last[l] = row
	}
	var start int64
	if len(t.Events) > 0 {
		start, _ = events.Extent(t.Events[0])
	}
	for row, e := range t.Events {
		cells := make([]rune, 3*len(lanes))
		for i := range cells {
			cells[i] = ' '
		}
		for l := range lanes {
			if first[l] < row && row < last[l] {
				cells[3*l] = '│'
			}
		}
		at := 3 * lane[e.Node]
		cells[at] = '●'
		mark := ""
		if parent, ok := t.Parent(e.ID); ok && parent.Node != e.Node {
			from := 3 * lane[parent.Node]
			if from < at {
				cells[from] = '╰'
				for i := from + 1; i < at-1; i++ {
					cells[i] = '─'
				}
				cells[at-1] = '▶'
			} else {
				cells[from] = '╯'
				for i := at + 2; i < from; i++ {
					cells[i] = '─'
				}
				cells[at+1] = '◀'
			}
		} else if !e.Parent.IsZero() && !ok {
			mark = "? "
		}
		began, _ := events.Extent(e)
		offset := time.Duration(began - start)
		kind := e.Kind
		if _, d, ok := events.Interval(e); ok {
			kind += " [" + roundDuration(d).String() + "]"
		}
		line := fmt.Sprintf("  %+9.3fms  %s  %c %s%s %s", float64(offset)/float64(time.Millisecond),
			string(cells),
			letter(lane[e.Node]), mark, kind, attrsText(e.Attrs))
		b.WriteString(strings.TrimRight(line, " "))
		b.WriteByte('\n')
	}
	var out strings.Builder
	for _, line := range strings.SplitAfter(b.String(), "\n") {
		text, newline := strings.CutSuffix(line, "\n")
		out.WriteString(truncate(text, width))
		if newline {
			out.WriteByte('\n')
		}
	}
	_, err := io.WriteString(w, out.String())
	return err
}

// roundDuration keeps the digits of d that matter when reading a trace:
// microseconds of a duration over a millisecond, milliseconds of one over
// a second.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(time.Microsecond)
	}
	return d
}

// letter names lane i: A, B, ... Z, then a, b, ...
func letter(i int) rune {
	switch {
	case i < 26:
		return rune('A' + i)
	case i < 52:
		return rune('a' + i - 26)
	}
	return '*'
}

func shortName(node string, names map[string]string) string {
	if n := names[node]; n != "" {
		return n
	}
	if len(node) > 6 {
		return "…" + node[len(node)-6:]
	}
	return node
}

// attrsText lists attributes as k=v in key order, but those of a span's
// identity and interval, which the lanes and the duration show.
func attrsText(attrs map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		switch k {
		case events.AttrSpanID, events.AttrParentSpanID, events.AttrStart, events.AttrDuration:
			continue
		}
		parts = append(parts, k+"="+attrs[k])
	}
	return strings.Join(parts, " ")
}

// truncate cuts s to at most width runes, marking the cut.
func truncate(s string, width int) string {
	if utf8.RuneCountInString(s) <= width {
		return s
	}
	r := []rune(s)
	return string(r[:width-1]) + "…"
}
