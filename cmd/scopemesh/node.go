package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/scopemesh/scopemesh"
)

// nodeSettings are the settings of `scopemesh node`. Each has a flag and a
// config file key of the same name (its yaml tag); a flag given on the
// command line wins over the file, the file over the default.
type nodeSettings struct {
	Name           string        `yaml:"name"`
	DataDir        string        `yaml:"data-dir"`
	Memory         bool          `yaml:"memory"`
	SyncWrites     bool          `yaml:"sync-writes"`
	Listen         []string      `yaml:"listen"`
	Bootstrap      []string      `yaml:"bootstrap"`
	Cluster        string        `yaml:"cluster"`
	Relays         []string      `yaml:"relays"`
	RelayService   bool          `yaml:"relay-service"`
	ClusterKeyFile string        `yaml:"cluster-key-file"`
	AcceptKeyFiles []string      `yaml:"accept-key-files"`
	AllowPeers     []string      `yaml:"allow-peers"`
	SignEvents     bool          `yaml:"sign-events"`
	Reachability   string        `yaml:"reachability"`
	DHT            string        `yaml:"dht"`
	MDNS           bool          `yaml:"mdns"`
	SyncInterval   time.Duration `yaml:"sync-interval"`
	ForgetAfter    time.Duration `yaml:"forget-after"`
	MaxClockOffset time.Duration `yaml:"max-clock-offset"`
	Retention      time.Duration `yaml:"retention"`
	MaxBytes       byteSize      `yaml:"max-bytes"`
	API            string        `yaml:"api"`
	APIRemote      bool          `yaml:"api-remote"`
	UI             string        `yaml:"ui"`
	Metrics        string        `yaml:"metrics"`
	LogLevel       string        `yaml:"log-level"`
	LogFormat      string        `yaml:"log-format"`
}

func defaultNodeSettings() nodeSettings {
	return nodeSettings{
		DataDir:   defaultDataDir(),
		DHT:       "auto",
		MDNS:      true,
		LogLevel:  "info",
		LogFormat: "text",

		Reachability: "auto",
	}
}

// apiOff is the --api value that turns the API off.
const apiOff = "none"

func newNodeCommand() *cobra.Command {
	s := defaultNodeSettings()
	var (
		configFile string
		asJSON     bool
	)
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Run a node: a cluster member, bootstrap or relay for others",
		Long: `node runs a scopemesh node until SIGINT or SIGTERM, then closes it, so every
event it acknowledged is on disk. It prints its peer ID and the addresses
other nodes can bootstrap from, and serves a local API that the other
commands (status, peers, tail, query, trace, record, sync) use.

Settings come from flags, a config file (--config, YAML or JSON, keys named
as the flags) and defaults, in that order of precedence.

A node with a public address can serve nodes behind NAT: give it
--relay-service --reachability public, and give them --bootstrap and
--relays with its address.

The API is a unix socket, <data-dir>/api.sock, that only the node's user may
open. With --api 127.0.0.1:PORT it is plain HTTP on a loopback port, and
every request needs the token the node makes at its first start in
<data-dir>/api.token (mode 0600; an in-memory node keeps it next to its
runtime socket): "Authorization: Bearer TOKEN". The other commands read it
from --api-token-file, $SCOPEMESH_API_TOKEN or the default data dir.

--ui 127.0.0.1:8080 serves a web view of the cluster, its events and its
traces, and Prometheus metrics at /metrics, on a loopback port; it needs the
API's token: open http://127.0.0.1:8080/?token=TOKEN once, and the browser
keeps it (Prometheus sends it as a bearer token). --metrics ADDR serves
/metrics alone, on any address, without a token: counts, never events.

--api-remote lets the API listen on any address, over TLS with a
self-signed certificate made at the first start, <data-dir>/api.crt (its
key in api.key, mode 0600), whose SHA-256 fingerprint the node prints.
Copy api.crt and api.token to a client, check the fingerprint
(openssl x509 -in api.crt -noout -fingerprint -sha256) and run
  scopemesh status --api https://HOST:PORT --api-cert api.crt --api-token-file api.token
($SCOPEMESH_API_CERT may name the certificate instead; the client trusts
that certificate exactly, and no other).`,
		Example: `  # a public bootstrap and relay node
  scopemesh node --listen /ip4/0.0.0.0/tcp/4001 --listen /ip4/0.0.0.0/udp/4001/quic-v1 \
      --relay-service --reachability public --dht server

  # a node behind NAT that joins through it
  scopemesh node --bootstrap /ip4/203.0.113.7/udp/4001/quic-v1/p2p/12D3KooW... \
      --relays /ip4/203.0.113.7/udp/4001/quic-v1/p2p/12D3KooW...

  # the web view and metrics on a loopback port
  scopemesh node --ui 127.0.0.1:8080

  # an API that other machines reach over TLS
  scopemesh node --api 0.0.0.0:7400 --api-remote`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if configFile != "" {
				if err := s.mergeFile(configFile, cmd.Flags().Changed); err != nil {
					return err
				}
			}
			if cmd.Flags().Changed("memory") && cmd.Flags().Changed("data-dir") {
				return usagef("--memory and --data-dir exclude each other")
			}
			return runNode(cmd, s, asJSON)
		}),
	}
	fs := cmd.Flags()
	fs.StringVar(&configFile, "config", "", "read settings from this YAML or JSON `file`")
	fs.StringVar(&s.Name, "name", "", "name the node to people — in peers lists, traces and --node filters — by this `name` (default: the host name)")
	fs.StringVar(&s.DataDir, "data-dir", s.DataDir, "keep events, identity and the API's socket, token and certificate in this `dir`")
	fs.BoolVar(&s.Memory, "memory", false, "keep events in memory only, with a fresh identity: nothing survives exit")
	fs.BoolVar(&s.SyncWrites, "sync-writes", false, "flush every recorded event to disk before acknowledging it")
	fs.StringSliceVar(&s.Listen, "listen", nil, "listen on this `multiaddr` (repeat; default: TCP and QUIC on every interface, ports the system picks)")
	fs.StringSliceVar(&s.Bootstrap, "bootstrap", nil, "dial this `multiaddr` ending in /p2p/<peer ID> at start, and whenever it is lost (repeat)")
	fs.StringVar(&s.Cluster, "cluster", s.Cluster, "replicate with nodes of the cluster of this `name`; without one (or --cluster-key-file) the node finds no one by itself: it joins only --bootstrap peers and those connected to it")
	fs.StringSliceVar(&s.Relays, "relays", nil, "reserve a slot on this relay, a `multiaddr` ending in /p2p/<peer ID>, when behind NAT (repeat)")
	fs.BoolVar(&s.RelayService, "relay-service", false, "relay connections between members behind NAT (for nodes with a public address)")
	fs.StringVar(&s.ClusterKeyFile, "cluster-key-file", "", "close the cluster with the key in this `file`: 32 random bytes, raw or as 64 hex digits, that every member holds")
	fs.StringSliceVar(&s.AcceptKeyFiles, "accept-key-files", nil, "also accept the cluster key in this `file`, while the cluster changes keys (repeat)")
	fs.StringSliceVar(&s.AllowPeers, "allow-peers", nil, "talk only to the peer with this `ID` (repeat)")
	fs.BoolVar(&s.SignEvents, "sign-events", false, "sign recorded events, and accept only events signed by their origin (every member must set it alike)")
	fs.StringVar(&s.Reachability, "reachability", s.Reachability, "whether the node is reachable from the internet: auto (AutoNAT finds out), public or private")
	fs.StringVar(&s.DHT, "dht", s.DHT, "take part in the cluster's DHT: auto, off, client or server")
	fs.BoolVar(&s.MDNS, "mdns", s.MDNS, "find members on the local network (--mdns=false to stop)")
	fs.DurationVar(&s.SyncInterval, "sync-interval", 0, fmt.Sprintf("reconcile with a member this often (default %v)", scopemesh.DefaultSyncInterval))
	fs.DurationVar(&s.ForgetAfter, "forget-after", 0, fmt.Sprintf("drop a member from the cluster view once it has been unreachable this long (default %v)", scopemesh.DefaultForgetAfter))
	fs.DurationVar(&s.MaxClockOffset, "max-clock-offset", 0, fmt.Sprintf("refuse events whose clock is further ahead than this (default %v)", scopemesh.DefaultMaxClockOffset))
	fs.DurationVar(&s.Retention, "retention", 0, fmt.Sprintf("keep events this long, then let them expire; negative keeps everything (default %v)", scopemesh.DefaultRetention))
	fs.Var(&s.MaxBytes, "max-bytes", "let the oldest events expire to keep the store under this `size` (20GiB, 500MB, bytes; default: no cap)")
	fs.StringVar(&s.API, "api", "", "serve the local API on this unix socket `path` or loopback host:port (which needs the token in <data-dir>/"+apiTokenName+"); "+apiOff+" for no API (default: <data-dir>/"+apiSocketName+")")
	fs.BoolVar(&s.APIRemote, "api-remote", false, "allow --api on any address, over TLS with the certificate <data-dir>/"+apiCertName+" and the token: whoever has both controls the node")
	fs.StringVar(&s.UI, "ui", "", "serve the web view and /metrics on this loopback `host:port`, to those with the token in <data-dir>/"+apiTokenName)
	fs.StringVar(&s.Metrics, "metrics", "", "serve Prometheus metrics at /metrics on this `host:port`, to anyone (counts, never events)")
	fs.StringVar(&s.LogLevel, "log-level", s.LogLevel, "log at this level: debug, info, warn or error")
	fs.StringVar(&s.LogFormat, "log-format", s.LogFormat, "log as text or json")
	fs.BoolVar(&asJSON, "json", false, "print the start-up report as one JSON line")
	return cmd
}

// mergeFile takes from a config file the settings not given as flags.
func (s *nodeSettings) mergeFile(path string, flagGiven func(name string) bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return &usageError{fmt.Errorf("--config: %w", err)}
	}
	file := defaultNodeSettings()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil && !errors.Is(err, io.EOF) {
		return usagef("--config %s: %v", path, err)
	}
	dst, src := reflect.ValueOf(s).Elem(), reflect.ValueOf(file)
	for i := range dst.NumField() {
		if !flagGiven(dst.Type().Field(i).Tag.Get("yaml")) {
			dst.Field(i).Set(src.Field(i))
		}
	}
	return nil
}

// config returns the node's Config, or every problem of the settings.
func (s nodeSettings) config() (scopemesh.Config, error) {
	cfg := scopemesh.Config{
		Name:           s.Name,
		SyncWrites:     s.SyncWrites,
		ListenAddrs:    s.Listen,
		Bootstrap:      s.Bootstrap,
		Cluster:        s.Cluster,
		DisableMDNS:    !s.MDNS,
		Relays:         s.Relays,
		RelayService:   s.RelayService,
		AllowPeers:     s.AllowPeers,
		SignEvents:     s.SignEvents,
		SyncInterval:   s.SyncInterval,
		ForgetAfter:    s.ForgetAfter,
		MaxClockOffset: s.MaxClockOffset,
		Retention:      s.Retention,
		MaxBytes:       int64(s.MaxBytes),
	}
	if !s.Memory {
		cfg.DataDir = s.DataDir
	}
	var errs []error
	if !s.Memory && s.DataDir == "" {
		errs = append(errs, errors.New("--data-dir is empty: name a directory, or pass --memory"))
	}
	var ok bool
	if cfg.DHT, ok = dhtModes[s.DHT]; !ok {
		errs = append(errs, fmt.Errorf("--dht %q is not auto, off, client or server", s.DHT))
	}
	if cfg.Reachability, ok = reachabilities[s.Reachability]; !ok {
		errs = append(errs, fmt.Errorf("--reachability %q is not auto, public or private", s.Reachability))
	}
	for _, a := range s.Listen {
		if _, err := ma.NewMultiaddr(a); err != nil {
			errs = append(errs, fmt.Errorf("--listen %q: %v", a, err))
		}
	}
	for _, list := range []struct {
		flag  string
		addrs []string
	}{{"--bootstrap", s.Bootstrap}, {"--relays", s.Relays}} {
		for _, a := range list.addrs {
			if err := scopemesh.ValidateAddr(a); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", list.flag, err))
			}
		}
	}
	if s.Cluster == "" && s.ClusterKeyFile == "" && (s.DHT == "client" || s.DHT == "server") {
		errs = append(errs, fmt.Errorf("--dht %s needs --cluster or --cluster-key-file: a node that names no cluster finds no one by itself", s.DHT))
	}
	if s.SyncInterval < 0 {
		errs = append(errs, fmt.Errorf("--sync-interval %v is negative", s.SyncInterval))
	}
	if s.MaxClockOffset < 0 {
		errs = append(errs, fmt.Errorf("--max-clock-offset %v is negative", s.MaxClockOffset))
	}
	if s.Retention > 0 && s.Retention < scopemesh.MinRetention {
		errs = append(errs, fmt.Errorf("--retention %v is under the minimum, %v", s.Retention, scopemesh.MinRetention))
	}
	if _, ok := logLevels[s.LogLevel]; !ok {
		errs = append(errs, fmt.Errorf("--log-level %q is not debug, info, warn or error", s.LogLevel))
	}
	if s.LogFormat != "text" && s.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("--log-format %q is not text or json", s.LogFormat))
	}
	if s.API != "" && s.API != apiOff {
		a, err := parseAPIAddr(s.API)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("--api: %w", err))
		case a.tls && !s.APIRemote:
			errs = append(errs, fmt.Errorf("--api %s: only --api-remote serves TLS; a loopback API is plain HTTP with a token", s.API))
		}
	}
	for _, l := range []struct{ flag, addr string }{{"--ui", s.UI}, {"--metrics", s.Metrics}} {
		if _, _, err := net.SplitHostPort(l.addr); l.addr != "" && err != nil {
			errs = append(errs, fmt.Errorf("%s %q is not host:port", l.flag, l.addr))
		}
	}
	if s.ClusterKeyFile != "" {
		key, err := readClusterKey(s.ClusterKeyFile)
		errs = append(errs, err)
		cfg.ClusterKey = key
	}
	for _, f := range s.AcceptKeyFiles {
		key, err := readClusterKey(f)
		errs = append(errs, err)
		cfg.AcceptKeys = append(cfg.AcceptKeys, key)
	}
	if len(s.AcceptKeyFiles) > 0 && s.ClusterKeyFile == "" {
		errs = append(errs, errors.New("--accept-key-files needs --cluster-key-file"))
	}
	if err := errors.Join(errs...); err != nil {
		return cfg, &usageError{err}
	}
	return cfg, nil
}

// clusterKeyLen is the length of a cluster key.
const clusterKeyLen = 32

// readClusterKey reads a cluster key from a file: 32 bytes, raw or as hex.
// Keys come from files, never the command line, where other users of the
// machine could read them.
func readClusterKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cluster key: %w", err)
	}
	if len(b) == clusterKeyLen {
		return b, nil
	}
	if key, err := hex.DecodeString(strings.TrimSpace(string(b))); err == nil && len(key) == clusterKeyLen {
		return key, nil
	}
	return nil, fmt.Errorf("cluster key %s: want %d bytes, raw or as %d hex digits; make one with `head -c %d /dev/urandom > %s`",
		path, clusterKeyLen, 2*clusterKeyLen, clusterKeyLen, path)
}

var (
	dhtModes = map[string]scopemesh.DHTMode{
		"auto": scopemesh.DHTAuto, "off": scopemesh.DHTOff, "client": scopemesh.DHTClient, "server": scopemesh.DHTServer,
	}
	reachabilities = map[string]scopemesh.Reachability{
		"auto": scopemesh.ReachabilityAuto, "public": scopemesh.ReachabilityPublic, "private": scopemesh.ReachabilityPrivate,
	}
	logLevels = map[string]slog.Level{
		"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError,
	}
)

// apiAddr returns where the API listens, and whether it is on at all. A
// remote API on TCP serves TLS.
func (s nodeSettings) apiAddr() (apiAddr, bool) {
	switch {
	case s.API == apiOff:
		return apiAddr{}, false
	case s.API != "":
		a, _ := parseAPIAddr(s.API) // checked by config
		a.tls = a.network == "tcp" && s.APIRemote
		return a, true
	case s.Memory:
		return apiAddr{network: "unix", address: runtimeSocket()}, true
	}
	return apiAddr{network: "unix", address: filepath.Join(s.DataDir, apiSocketName)}, true
}

// credentialsDir is where the API's credentials are: the data dir, or for
// an in-memory node the directory of its runtime socket; and the setting
// that names it.
func (s nodeSettings) credentialsDir() (dir, setting string) {
	if s.Memory {
		return filepath.Dir(runtimeSocket()), "$XDG_RUNTIME_DIR"
	}
	return s.DataDir, "--data-dir"
}

func (s nodeSettings) logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: logLevels[s.LogLevel]}
	if s.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// startReport is what a node prints when it has started.
type startReport struct {
	ID      string
	Cluster string   // empty: none named
	Closed  bool     `json:",omitempty"` // a cluster key closes the cluster
	Addrs   []string // dialable multiaddrs, each ending in /p2p/<ID>
	API     string   `json:",omitempty"` // empty: no API
	// APITokenFile holds the token a TCP API requires; empty: a unix socket.
	APITokenFile string `json:",omitempty"`
	// APICertFile is the certificate the clients of a remote API pin, and
	// APICertSHA256 its fingerprint, to check their copies against.
	APICertFile   string `json:",omitempty"`
	APICertSHA256 string `json:",omitempty"`
	// UI is the web view's address, which serves /metrics too, to those
	// with the token in UITokenFile; Metrics that of --metrics. Empty: not
	// served.
	UI          string `json:",omitempty"`
	UITokenFile string `json:",omitempty"`
	Metrics     string `json:",omitempty"`
}

// shutdownGrace bounds how long a stopping node waits for API requests in
// flight.
const shutdownGrace = 10 * time.Second

func runNode(cmd *cobra.Command, s nodeSettings, asJSON bool) error {
	cfg, err := s.config()
	if err != nil {
		return err
	}
	log := s.logger(cmd.ErrOrStderr())
	// The library logs through the default logger.
	slog.SetDefault(log)

	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Take the API's address first: a bad or busy one is found before the
	// node joins its cluster.
	addr, apiOn := s.apiAddr()
	var (
		ln    net.Listener
		creds apiCredentials
	)
	if apiOn {
		if ln, creds, err = s.listenGuardedAPI(addr); err != nil {
			return err
		}
		addr = boundAPIAddr(addr, ln)
	}
	webLns, err := s.listenWeb()
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		return err
	}
	node, err := scopemesh.Open(ctx, cfg)
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		webLns.close()
		return err
	}
	report := startReport{ID: node.ID(), Cluster: cfg.Cluster, Closed: cfg.ClusterKey != nil, Addrs: node.Addrs()}
	var api *httpServer
	if apiOn {
		api = serveAPI(node, ln, addr, creds, log)
		report.API = addr.String()
		report.APITokenFile, report.APICertFile, report.APICertSHA256 = creds.tokenFile, creds.certFile, creds.certSHA
	}
	servers := webLns.serve(node, log, &report)
	if err := printStart(cmd.OutOrStdout(), report, asJSON); err != nil {
		log.Warn("printing the start-up report", "err", err)
	}
	log.Info("node running", "id", report.ID, "cluster", report.Cluster, "api", report.API)

	logAddrChanges(ctx, log, node, slices.Sorted(slices.Values(report.Addrs)))
	// A second signal kills the process at once.
	stop()
	log.Info("stopping the node")

	var errs []error
	if api != nil {
		servers = append(servers, api)
	}
	shutdown, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	for _, srv := range servers {
		errs = append(errs, srv.Shutdown(shutdown))
	}
	cancel()
	errs = append(errs, node.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stopping the node: %w", err)
	}
	log.Info("node stopped")
	return nil
}

// boundAPIAddr is addr with the port ln listens on, which the system picks
// for port 0; the host stays as given, 0.0.0.0 say rather than [::].
func boundAPIAddr(addr apiAddr, ln net.Listener) apiAddr {
	if addr.network != "tcp" {
		return addr
	}
	host, _, _ := net.SplitHostPort(addr.address) // checked by parseAPIAddr
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	addr.address = net.JoinHostPort(host, port)
	return addr
}

// listenGuardedAPI listens at addr and, on TCP, makes or reads the
// credentials that guard it.
func (s nodeSettings) listenGuardedAPI(addr apiAddr) (net.Listener, apiCredentials, error) {
	ln, err := listenAPI(addr, s.APIRemote)
	if err != nil || addr.network != "tcp" {
		return ln, apiCredentials{}, err
	}
	dir, setting := s.credentialsDir()
	var creds apiCredentials
	if err = makePrivateDir(dir, "the directory of the API's credentials", setting); err == nil {
		creds, err = loadCredentials(dir, addr)
	}
	if err != nil {
		ln.Close()
		return nil, apiCredentials{}, err
	}
	return ln, creds, nil
}

func printStart(w io.Writer, r startReport, asJSON bool) error {
	if asJSON {
		return writeJSONLine(w, r)
	}
	var b strings.Builder
	switch {
	case r.Cluster == "" && r.Closed:
		fmt.Fprintf(&b, "node %s, of a closed cluster\n", r.ID)
	case r.Cluster == "":
		fmt.Fprintf(&b, "node %s, of no named cluster: it finds no one by itself (mDNS and the DHT are off); peers join it through --bootstrap and connections\n", r.ID)
	default:
		fmt.Fprintf(&b, "node %s, cluster %q\n", r.ID, r.Cluster)
	}
	b.WriteString("dialable at:\n")
	for _, a := range r.Addrs {
		fmt.Fprintf(&b, "  %s\n", a)
	}
	switch {
	case r.APICertFile != "":
		fmt.Fprintf(&b, "API at %s over TLS; clients need the token in %s and pin the certificate %s\n", r.API, r.APITokenFile, r.APICertFile)
		fmt.Fprintf(&b, "  certificate SHA-256 %s\n", r.APICertSHA256)
		fmt.Fprintf(&b, "  copy both to a client, then: scopemesh status --api %s --api-cert %s --api-token-file %s\n",
			remoteAPIHint(r.API), apiCertName, apiTokenName)
	case r.APITokenFile != "":
		fmt.Fprintf(&b, "API at %s; requests need the token in %s (scopemesh status --api %s)\n", r.API, r.APITokenFile, r.API)
	case r.API != "":
		fmt.Fprintf(&b, "API at %s (scopemesh status --api %s)\n", r.API, r.API)
	}
	if r.UI != "" {
		fmt.Fprintf(&b, "web view at %s; sign in with the token in %s (%s?token=TOKEN), metrics at %smetrics\n", r.UI, r.UITokenFile, r.UI, r.UI)
	}
	if r.Metrics != "" {
		fmt.Fprintf(&b, "metrics at %s\n", r.Metrics)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// remoteAPIHint is the address a client on another machine gives for the
// remote API at api: HOST in place of an unspecified IP such as 0.0.0.0.
func remoteAPIHint(api string) string {
	host, port, err := net.SplitHostPort(strings.TrimPrefix(api, "https://"))
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsUnspecified() {
		return api
	}
	return "https://" + net.JoinHostPort("HOST", port)
}

// logAddrChanges logs the node's addresses whenever they change — a node
// behind NAT gains relay addresses a moment after start — until ctx ends.
func logAddrChanges(ctx context.Context, log *slog.Logger, node *scopemesh.Node, addrs []string) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := node.Addrs()
		slices.Sort(now)
		if !slices.Equal(now, addrs) {
			log.Info("addresses changed", "addrs", now)
			addrs = now
		}
	}
}

// webListeners are the listeners of the web view and the metrics, taken
// before the node starts; nil: not served.
type webListeners struct {
	ui, metrics net.Listener
	token       []byte // the API's token, which the web view asks for
	tokenFile   string
}

// listenWeb listens for the web view and the metrics, as the settings
// ask, and reads the token the web view needs.
func (s nodeSettings) listenWeb() (w webListeners, err error) {
	defer func() {
		if err != nil {
			w.close()
		}
	}()
	if s.UI != "" {
		if w.ui, err = listenLoopback("--ui", s.UI); err != nil {
			return w, err
		}
		dir, setting := s.credentialsDir()
		if err = makePrivateDir(dir, "the directory of the API's credentials", setting); err != nil {
			return w, err
		}
		if w.token, w.tokenFile, err = loadToken(dir); err != nil {
			return w, err
		}
	}
	if s.Metrics != "" {
		if w.metrics, err = net.Listen("tcp", s.Metrics); err != nil {
			return w, fmt.Errorf("--metrics: %w", err)
		}
	}
	return w, nil
}

func (w webListeners) close() {
	for _, ln := range []net.Listener{w.ui, w.metrics} {
		if ln != nil {
			ln.Close()
		}
	}
}

// serve serves the web view and the metrics of node on their listeners,
// notes their addresses in report, and returns their servers.
func (w webListeners) serve(node *scopemesh.Node, log *slog.Logger, report *startReport) []*httpServer {
	var servers []*httpServer
	metricsH := metricsHandler(node, log)
	if w.ui != nil {
		servers = append(servers, serveHTTP(w.ui, log, func(context.Context) http.Handler {
			return uiHandler(node, metricsH, w.token, w.tokenFile)
		}))
		report.UI = "http://" + w.ui.Addr().String() + "/"
		report.UITokenFile = w.tokenFile
	}
	if w.metrics != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", metricsH)
		servers = append(servers, serveHTTP(w.metrics, log, func(context.Context) http.Handler { return mux }))
		report.Metrics = "http://" + w.metrics.Addr().String() + "/metrics"
	}
	return servers
}
