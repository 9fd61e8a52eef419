package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/internal/httpquery"
	"github.com/scopemesh/scopemesh/query"
)

// The commands that talk to a running node through its local API.

func newStatusCommand() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show a running node's identity, addresses, events and replication",
		Args:  cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			var st statusJSON
			if err := c.call(cmd.Context(), http.MethodGet, "/v1/status", nil, nil, &st); err != nil {
				return err
			}
			if cf.json {
				return writeJSON(cmd.OutOrStdout(), st)
			}
			return writeStatus(cmd.OutOrStdout(), st, time.Now())
		}),
	}
	cf.register(cmd)
	return cmd
}

func newPeersCommand() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "peers",
		Short: "List the cluster members a running node knows, and how it reaches them",
		Long: `peers lists the cluster members a running node knows — those it has
connections to and those it knows of through the others' member lists —
with each one's name and state: connected, directly (and over which
transport) or through a relay; reachable, its records reaching the node
through others; suspect or unreachable, no news of it for 30 s or two
minutes; or left. Then its round-trip time, its last reconciliation and
the events it delivered.`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			var peers []peerJSON
			if err := c.call(cmd.Context(), http.MethodGet, "/v1/peers", nil, nil, &peers); err != nil {
				return err
			}
			if cf.json {
				return writeJSON(cmd.OutOrStdout(), peers)
			}
			return writePeers(cmd.OutOrStdout(), peers, time.Now())
		}),
	}
	cf.register(cmd)
	return cmd
}

func newConnectCommand() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "connect ADDR",
		Short: "Have a running node join the member at ADDR and learn the cluster from it",
		Long: `connect has a running node dial the member at ADDR, a multiaddr ending in
/p2p/<peer ID>, keep it registered (redialled whenever it is lost), and swap
member lists with it. It reports how many members the node knows then.`,
		Example: `  scopemesh connect /ip4/192.0.2.7/tcp/4001/p2p/12D3KooWA1b2…`,
		Args:    cobra.ExactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			var res joinResponse
			if err := c.call(cmd.Context(), http.MethodPost, "/v1/peers", nil, joinRequest{Addr: args[0]}, &res); err != nil {
				return err
			}
			if cf.json {
				return writeJSON(cmd.OutOrStdout(), res)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "joined: %d members known\n", res.Members)
			return err
		}),
	}
	cf.register(cmd)
	return cmd
}

func newForgetCommand() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "forget ID|NAME",
		Short: "Drop a member that will not come back from a running node's view",
		Long: `forget drops a member, by peer ID or by name, from a running node's view of
the cluster, so that cluster queries stop waiting for it; a member
unreachable for --forget-after (a day) goes by itself. If it comes back,
started anew, it is a member again. A connected member is not forgotten.`,
		Args: cobra.ExactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			var res forgetResponse
			if err := c.call(cmd.Context(), http.MethodDelete, "/v1/peers/"+url.PathEscape(args[0]), nil, nil, &res); err != nil {
				return err
			}
			if cf.json {
				return writeJSON(cmd.OutOrStdout(), res)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "forgot %s\n", res.ID)
			return err
		}),
	}
	cf.register(cmd)
	return cmd
}

func newTailCommand() *cobra.Command {
	var (
		cf    clientFlags
		ff    filterFlags
		count int
	)
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Print events as they reach a running node, recorded there or replicated",
		Long: `tail prints the events matching the filter flags as they reach a running
node — recorded there or replicated from other members — until interrupted
or, with --count, until that many have arrived. With --json it prints one
JSON event per line.`,
		Example: `  scopemesh tail --kind http.request --attr path=/cart
  scopemesh tail --trace 4fdedb0a1c2b3d4e5f60718293a4b5c6 --json`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			f, err := ff.filter(time.Now())
			if err != nil {
				return err
			}
			if count < 0 {
				return usagef("--count %d is negative", count)
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			return tail(cmd, c, f, count, cf.json)
		}),
	}
	cf.register(cmd)
	ff.register(cmd, false)
	cmd.Flags().IntVar(&count, "count", 0, "stop after `N` events (default: run until interrupted)")
	return cmd
}

func tail(cmd *cobra.Command, c *apiClient, f query.Filter, count int, asJSON bool) error {
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	body, err := c.stream(ctx, httpquery.Values(f))
	if err != nil {
		return err
	}
	defer body.Close()
	out, warn := cmd.OutOrStdout(), cmd.ErrOrStderr()
	lines := bufio.NewScanner(body)
	lines.Buffer(make([]byte, 64<<10), 64<<20)
	seen := 0
	for lines.Scan() {
		var line streamLine
		if err := json.Unmarshal(lines.Bytes(), &line); err != nil {
			return fmt.Errorf("reading the event stream: %w", err)
		}
		if g := line.Gap; g != nil {
			fmt.Fprintf(warn, "scopemesh: fell behind and missed %d events; `scopemesh query --after %s` lists them\n", g.Dropped, g.From)
			continue
		}
		if line.Event == nil {
			continue
		}
		if asJSON {
			err = json.NewEncoder(out).Encode(line.Event)
		} else {
			err = writeEvent(out, *line.Event)
		}
		if err != nil {
			return err
		}
		if seen++; count > 0 && seen >= count {
			return nil
		}
	}
	if ctx.Err() != nil {
		return nil // interrupted: the usual way a tail ends
	}
	if err := lines.Err(); err != nil {
		return fmt.Errorf("reading the event stream: %w", err)
	}
	return errors.New("the node ended the event stream: it is shutting down")
}

func newQueryCommand() *cobra.Command {
	var (
		cf      clientFlags
		ff      filterFlags
		cluster bool
	)
	cmd := &cobra.Command{
		Use:   "query",
		Short: "List the events a running node holds, or its whole cluster holds",
		Long: `query lists the events matching the filter flags, oldest first: those the
node's replica holds, or with --cluster those of every member that answers.
When more events match than --limit, it says how to list the next page.`,
		Example: `  scopemesh query --kind db.query --since 10m
  scopemesh query --cluster --trace 4fdedb0a1c2b3d4e5f60718293a4b5c6 --json`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			f, err := ff.filter(time.Now())
			if err != nil {
				return err
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			q := httpquery.Values(f)
			if cluster {
				q.Set("cluster", "true")
			}
			var res resultJSON
			if err := c.call(cmd.Context(), http.MethodGet, "/v1/events", q, nil, &res); err != nil {
				return err
			}
			if cf.json {
				return writeJSON(cmd.OutOrStdout(), res)
			}
			for _, e := range res.Events {
				if err := writeEvent(cmd.OutOrStdout(), e); err != nil {
					return err
				}
			}
			writeResultNotes(cmd.ErrOrStderr(), res, cluster)
			return nil
		}),
	}
	cf.register(cmd)
	ff.register(cmd, true)
	cmd.Flags().BoolVar(&cluster, "cluster", false, "ask every cluster member, not only this node")
	return cmd
}

func newTraceCommand() *cobra.Command {
	var (
		cf    clientFlags
		width int
	)
	cmd := &cobra.Command{
		Use:   "trace TRACE-ID",
		Short: "Draw one trace across the cluster: its events, node by node, in causal order",
		Long: `trace gathers every event of one trace from the cluster's members and draws
it: one lane per node, events in causal order with their time offsets, and an
arrow wherever a cause on one node led to an event on another.`,
		Args: cobra.ExactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			id, err := events.ParseTraceID(args[0])
			if err != nil {
				return &usageError{err}
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			var t query.Trace
			if err := c.call(cmd.Context(), http.MethodGet, "/v1/traces/"+id.String(), nil, nil, &t); err != nil {
				return err
			}
			if cf.json {
				return writeJSON(cmd.OutOrStdout(), t)
			}
			if len(t.Events) == 0 {
				return fmt.Errorf("no member that answered holds events of trace %v", id)
			}
			// The decoded trace lacks its index: arrange the events again.
			drawn := query.NewTrace(id, t.Events)
			drawn.Complete, drawn.Peers, drawn.Names = t.Complete, t.Peers, t.Names
			return drawn.Render(cmd.OutOrStdout(), query.RenderOptions{Width: terminalWidth(width)})
		}),
	}
	cf.register(cmd)
	cmd.Flags().IntVar(&width, "width", 0, "cut lines at `N` columns (default: $COLUMNS, else 100)")
	return cmd
}

// terminalWidth returns width, else $COLUMNS, else 100.
func terminalWidth(width int) int {
	if width > 0 {
		return width
	}
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n > 0 {
		return n
	}
	return 100
}

func newRecordCommand() *cobra.Command {
	var (
		cf                     clientFlags
		trace, parent, payload string
		newTrace               bool
	)
	cmd := &cobra.Command{
		Use:   "record KIND [KEY=VALUE...]",
		Short: "Record an event on a running node, for scripts and demos",
		Long: `record records an event of the given kind, with the given attributes, on a
running node, which replicates it to its cluster. It prints the event's ID;
--new-trace starts a trace and prints its ID too, for the events that follow
(--trace ID --parent EVENT-ID).`,
		Example: `  scopemesh record deploy.start version=1.4.2 --new-trace
  scopemesh record deploy.step step=migrate --trace $TRACE --parent $EVENT`,
		Args: cobra.MinimumNArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			attrs, err := parseAttrs(args[1:])
			if err != nil {
				return usagef("attributes: %v", err)
			}
			req := recordRequest{Kind: args[0], Attrs: attrs, Trace: trace, Parent: parent}
			if payload != "" {
				req.Payload = []byte(payload)
			}
			switch {
			case newTrace && trace != "":
				return usagef("--new-trace and --trace exclude each other")
			case newTrace:
				req.Trace = events.NewTraceID().String()
			case trace != "":
				if _, err := events.ParseTraceID(trace); err != nil {
					return usagef("--trace: %v", err)
				}
			}
			if parent != "" {
				if _, err := events.ParseID(parent); err != nil {
					return usagef("--parent: %v", err)
				}
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			var e events.Event
			if err := c.call(cmd.Context(), http.MethodPost, "/v1/events", nil, req, &e); err != nil {
				return err
			}
			if cf.json {
				return writeJSON(cmd.OutOrStdout(), e)
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), recordedLine(e))
			return err
		}),
	}
	cf.register(cmd)
	fs := cmd.Flags()
	fs.StringVar(&trace, "trace", "", "the trace `ID` the event belongs to")
	fs.BoolVar(&newTrace, "new-trace", false, "start a new trace with this event")
	fs.StringVar(&parent, "parent", "", "the `ID` of the event that caused this one")
	fs.StringVar(&payload, "payload", "", "opaque application data to carry")
	return cmd
}

func newSyncCommand() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "Reconcile a running node's events with every connected member now",
		Long: `sync makes a running node reconcile its events with every connected member
at once, rather than at its next sync interval, and reports each session.`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			var res map[string]syncResultJSON
			if err := c.call(cmd.Context(), http.MethodPost, "/v1/sync", nil, struct{}{}, &res); err != nil {
				return err
			}
			if cf.json {
				return writeJSON(cmd.OutOrStdout(), res)
			}
			return writeSyncResults(cmd.OutOrStdout(), res)
		}),
	}
	cf.register(cmd)
	return cmd
}
