package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/scopemesh/scopemesh"
	"github.com/scopemesh/scopemesh/events"
)

// Human output. Whatever a script needs is in the --json output instead;
// these formats may change.

// writeJSONLine writes v as one line of JSON.
func writeJSONLine(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeEvent writes one event on one line: local time, origin node, kind,
// attributes, trace.
func writeEvent(w io.Writer, e events.Event) error {
	var b strings.Builder
	b.WriteString(time.Unix(0, e.Time.Wall).Format("2006-01-02 15:04:05.000"))
	b.WriteString("  ")
	b.WriteString(shortID(e.Node))
	b.WriteString("  ")
	b.WriteString(e.Kind)
	for _, k := range slices.Sorted(maps.Keys(e.Attrs)) {
		fmt.Fprintf(&b, " %s=%s", k, e.Attrs[k])
	}
	if !e.Correlation.IsZero() {
		fmt.Fprintf(&b, "  trace=%v", e.Correlation)
	}
	if len(e.Payload) > 0 {
		fmt.Fprintf(&b, "  payload=%dB", len(e.Payload))
	}
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}

// recordedLine reports a recorded event.
func recordedLine(e events.Event) string {
	s := fmt.Sprintf("recorded %s %v", e.Kind, e.ID)
	if !e.Correlation.IsZero() {
		s += fmt.Sprintf(" in trace %v", e.Correlation)
	}
	return s
}

// shortID abbreviates a peer ID to its last six characters, as trace
// renderings do.
func shortID(id string) string {
	if len(id) > 6 {
		return "…" + id[len(id)-6:]
	}
	return id
}

// writeResultNotes says what a query's output does not show: who did not
// answer, and how to get the next page.
func writeResultNotes(w io.Writer, res resultJSON, cluster bool) {
	if cluster {
		answered := 0
		for _, p := range res.Peers {
			if p.Answered {
				answered++
			}
		}
		fmt.Fprintf(w, "%d events from this node and %d of %d members asked\n", len(res.Events), answered, len(res.Peers))
		for _, p := range res.Peers {
			if !p.Answered {
				fmt.Fprintf(w, "  %s did not answer: %s\n", p.ID, p.Err)
			}
		}
	}
	if res.Next != "" {
		fmt.Fprintf(w, "more events match: add --after %s\n", res.Next)
	}
}

func writeStatus(w io.Writer, st statusJSON, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "node\t%s (%s)\n", cmp.Or(st.Name, "unnamed"), st.ID)
	fmt.Fprintf(tw, "uptime\t%v\n", st.Uptime.Round(time.Second))
	fmt.Fprintf(tw, "events\t%d\n", st.Events)
	fmt.Fprintf(tw, "retention\t%s\n", retentionText(st.Status))
	store := "size unknown"
	if st.StoreBytes > 0 {
		store = byteSize(st.StoreBytes).String()
	}
	if st.Reclaimable > 0 {
		store += " (" + byteSize(st.Reclaimable).String() + " of it deleted, to be compacted away)"
	}
	if st.MaxBytes > 0 {
		store += " of a " + byteSize(st.MaxBytes).String() + " cap"
	}
	fmt.Fprintf(tw, "store\t%s\n", store)
	fmt.Fprintf(tw, "peers\t%d connected, %d known\n", st.Connected, len(st.Peers))
	g := st.Gossip
	fmt.Fprintf(tw, "gossip\tsent %d events in %d batches; received %d batches, %d new events; %d rejected\n",
		g.EventsPublished, g.BatchesPublished, g.BatchesReceived, g.EventsMerged, g.BatchesRejected)
	if g.DroppedInbound+g.DroppedOutbound+g.PublishErrors > 0 {
		fmt.Fprintf(tw, "\tdropped %d in, %d out; %d publish errors (sync repairs drops)\n", g.DroppedInbound, g.DroppedOutbound, g.PublishErrors)
	}
	for _, s := range st.ClockSkew {
		fmt.Fprintf(tw, "clock skew\t%s: %d events refused, latest %v ahead, %v ago\n", s.Origin, s.Events, s.Ahead.Round(time.Millisecond), ago(now, s.Last))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("addresses\n")
	for _, a := range st.Addrs {
		fmt.Fprintf(&b, "  %s\n", a)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writePeers(w io.Writer, peers []peerJSON, now time.Time) error {
	if len(peers) == 0 {
		_, err := fmt.Fprintln(w, "no cluster members known yet")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPEER\tSTATE\tVIA\tRTT\tLAST SYNC\tGOSSIPED")
	for _, p := range peers {
		rtt := "-"
		if p.RTT > 0 {
			rtt = p.RTT.Round(10 * time.Microsecond).String()
		}
		name := cmp.Or(p.Name, "-")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", name, p.ID, peerState(p.PeerInfo, now), via(p.Connections), rtt, lastSync(p, now), p.EventsReceived)
	}
	return tw.Flush()
}

func peerState(p scopemesh.PeerInfo, now time.Time) string {
	switch {
	case p.Refused:
		return "refused"
	case p.Connected:
		return "connected " + ago(now, p.ConnectedSince)
	case p.State == scopemesh.StateLeft:
		return "left"
	case p.State != "":
		return string(p.State)
	case !p.UnreachableSince.IsZero():
		return "unreachable " + ago(now, p.UnreachableSince)
	}
	return "not connected"
}

// via says how the connections to a peer run: direct (and over which
// transport) or through a relay.
func via(conns []scopemesh.Connection) string {
	var parts []string
	for _, c := range conns {
		s := "direct " + transportOf(c.Addr)
		if c.Relayed {
			s = "relayed"
		}
		if !slices.Contains(parts, s) {
			parts = append(parts, s)
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " + ")
}

// transportOf names the transport of a multiaddr.
func transportOf(addr string) string {
	for _, t := range []string{"/quic-v1", "/webtransport", "/webrtc-direct", "/ws", "/tcp/", "/udp/"} {
		if strings.Contains(addr+"/", t) {
			return strings.Trim(t, "/")
		}
	}
	return "?"
}

func lastSync(p peerJSON, now time.Time) string {
	switch {
	case p.LastSync.IsZero():
		return "never"
	case p.LastSyncResult.Err != "":
		return "failed " + ago(now, p.LastSync)
	case p.InSync:
		return "in sync " + ago(now, p.LastSync)
	}
	return "partial " + ago(now, p.LastSync)
}

// ago says how long before now t was, to the second.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return now.Sub(t).Round(time.Second).String() + " ago"
}

func writeSyncResults(w io.Writer, res map[string]syncResultJSON) error {
	if len(res) == 0 {
		_, err := fmt.Fprintln(w, "no connected members to reconcile with")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tSENT\tRECEIVED\tROUNDS\tTOOK\tRESULT")
	for _, id := range slices.Sorted(maps.Keys(res)) {
		r := res[id]
		result := "in sync"
		switch {
		case r.Err != "":
			result = "failed: " + r.Err
		case !r.InSync:
			result = "not yet in sync"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%v\t%s\n", id, r.Sent, r.Received, r.Rounds, r.Duration.Round(time.Millisecond), result)
	}
	return tw.Flush()
}

// retentionText says how long a node keeps events and what has expired.
func retentionText(st scopemesh.Status) string {
	keeps := "keeps everything"
	if st.Retention > 0 {
		keeps = "keeps " + st.Retention.String()
	}
	if st.Horizon.IsZero() {
		return keeps
	}
	return fmt.Sprintf("%s; none from before %s (%d expired since the node started)",
		keeps, time.Unix(0, st.Horizon.Wall).UTC().Format(time.RFC3339), st.Expired)
}
