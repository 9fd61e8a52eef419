package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"
)

// mcpPath is where the MCP server's HTTP endpoint serves.
const mcpPath = "/mcp"

// mcpSessionTimeout closes an HTTP session its client left idle this long,
// so abandoned sessions do not pile up.
const mcpSessionTimeout = 10 * time.Minute

func newMCPCommand() *cobra.Command {
	var (
		cf          clientFlags
		httpAddr    string
		allowRecord bool
	)
	cmd := &cobra.Command{
		Use:   "mcp",
		Short: "Serve a running node's cluster to AI assistants over the Model Context Protocol",
		Long: `mcp is a Model Context Protocol server for AI assistants. It answers through a
running node's API, reached as the other commands reach it (--api and the
token rules): the cluster's status and members, queries over its events,
whole traces as causal trees, and recent traces that match kinds, attributes,
errors or a slow operation. Answers are bounded, summaries first, with
cursors for more.

It serves over stdin and stdout, the way an assistant starts a local MCP
server. With --http 127.0.0.1:PORT it serves streamable HTTP on that
loopback address instead, at /mcp, and every request must carry the node's
API token as "Authorization: Bearer TOKEN".

It is read-only: --allow-record adds the record_event tool, which records
events on the node.`,
		Example: `  scopemesh mcp --api 127.0.0.1:7400 --api-token-file /var/lib/scopemesh/api.token
  scopemesh mcp --http 127.0.0.1:7401`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if httpAddr != "" {
				if host, _, err := net.SplitHostPort(httpAddr); err != nil || !loopbackHost(host) {
					return usagef("--http %q is not a loopback host:port: the MCP server answers this machine only", httpAddr)
				}
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			srv := newMCPServer(c, allowRecord)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if httpAddr == "" {
				t := &mcp.IOTransport{Reader: io.NopCloser(cmd.InOrStdin()), Writer: nopWriteCloser{cmd.OutOrStdout()}}
				if err := srv.Run(ctx, t); err != nil && ctx.Err() == nil {
					return err
				}
				return nil
			}
			token, from, err := cf.token()
			if err != nil {
				return fmt.Errorf("--http serves only requests that carry the node's API token: %w", err)
			}
			return serveMCPHTTP(ctx, srv, httpAddr, token, from, cmd.ErrOrStderr())
		}),
	}
	cf.registerAPI(cmd)
	cmd.Flags().StringVar(&httpAddr, "http", "", "serve streamable HTTP at /mcp on this loopback `host:port`, instead of stdin and stdout")
	cmd.Flags().BoolVar(&allowRecord, "allow-record", false, "offer the record_event tool, which records events on the node")
	return cmd
}

// nopWriteCloser lets the MCP transport close stdout without closing it.
type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// serveMCPHTTP serves srv as streamable HTTP on addr until ctx ends,
// refusing requests without token, which it read from the file from.
func serveMCPHTTP(ctx context.Context, srv *mcp.Server, addr string, token []byte, from string, log io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle(mcpPath, mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv },
		&mcp.StreamableHTTPOptions{SessionTimeout: mcpSessionTimeout}))
	hs := &http.Server{Handler: apiGuard{token: token, checkHost: true}.wrap(mux), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(log, "scopemesh: serving MCP at http://%s%s; requests must carry the token in %s as \"Authorization: Bearer TOKEN\"\n", ln.Addr(), mcpPath, from)
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	// Sessions hold event streams open: give requests in flight a moment,
	// then cut what is left.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutdownCtx); err != nil {
		hs.Close()
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
