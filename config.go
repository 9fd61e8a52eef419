package scopemesh

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p/core/host"
	lpeer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/hlc"
	"github.com/scopemesh/scopemesh/peer"
)

// DHTMode says how a node takes part in its cluster's Kademlia DHT, used to
// find members across networks. The DHT is the cluster's own (its protocol
// prefix comes from the cluster name), never the public IPFS DHT.
type DHTMode = peer.DHTMode

// The DHT modes. The zero value is DHTAuto.
const (
	DHTAuto   = peer.DHTAuto   // server unless the node finds itself behind NAT
	DHTOff    = peer.DHTOff    // no DHT: peers come from mDNS, Bootstrap and Connect
	DHTClient = peer.DHTClient // query the DHT, serve nothing
	DHTServer = peer.DHTServer // query and serve the DHT
)

// Reachability overrides what a node believes about being reachable from
// the internet; normally AutoNAT finds out by asking peers to dial back.
type Reachability = peer.Reachability

// The reachability settings. The zero value is ReachabilityAuto.
const (
	ReachabilityAuto    = peer.ReachabilityAuto    // let AutoNAT find out
	ReachabilityPublic  = peer.ReachabilityPublic  // a bootstrap or relay node with a public address
	ReachabilityPrivate = peer.ReachabilityPrivate // known to be behind NAT: reserve relay slots at once
)

// Defaults of Config.
const (
	DefaultCluster        = "default"
	DefaultSyncInterval   = 30 * time.Second
	DefaultMaxClockOffset = 500 * time.Millisecond
	DefaultRetention      = 7 * 24 * time.Hour
)

// MinDiskBytes is the smallest MaxBytes a node with a DataDir takes: the
// store's log and memtables take some 256 MiB whatever it holds, and a cap
// near that would leave the events next to nothing.
const MinDiskBytes = 1 << 30

// DefaultForgetAfter is how long a member may be unreachable before a
// node drops it from its view, when Config.ForgetAfter is zero.
const DefaultForgetAfter = peer.DefaultForgetAfter

// MinRetention is the shortest Retention a node takes: a few horizon
// steps, so that no event is expired on arrival by a clock a little ahead.
const MinRetention = 10 * time.Minute

// Config configures a Node. The zero value runs an in-memory node with the
// default cluster settings. Open does not modify the Config it is given.
type Config struct {
	// Name names the node to people: in other members' Peers, in traces,
	// in the CLI, in query filters by node. At most 64 bytes. Empty means
	// the host name. Names need not be unique; peer IDs are.
	Name string

	// DataDir is where the node keeps its events, clock bound and identity
	// key. Empty means an in-memory store and a fresh identity: nothing
	// survives Close.
	DataDir string

	// SyncWrites makes Record wait until its event is flushed to disk, so
	// it survives a power loss, not only a crash of the process. Flushes
	// cost about a millisecond each on many disks; concurrent Records share
	// them. By default the store flushes in the background every 100ms.
	SyncWrites bool

	// Datastore, if set, stores the events instead of the store DataDir
	// would open. The node does not close it. The identity key is then kept
	// in it too, unless DataDir is also set.
	Datastore datastore.Batching

	// ListenAddrs are the multiaddrs to listen on. Empty means TCP and QUIC
	// on all interfaces, on ports the system picks.
	ListenAddrs []string

	// Bootstrap lists multiaddrs, each ending in /p2p/<peer ID>, dialled at
	// start and re-dialled while unreachable.
	Bootstrap []string

	// Cluster names the cluster: nodes replicate only with nodes of the same
	// cluster. A node finds the others by itself (mDNS, the DHT) only in a
	// cluster it names, here or with a ClusterKey, so that two programs
	// that name none never merge their events because they share a
	// network. Empty: the node joins only the peers Bootstrap and Connect
	// give it, in a cluster named DefaultCluster.
	Cluster string

	// DisableMDNS turns off discovery of peers on the local network, which
	// is on in a named cluster.
	DisableMDNS bool

	// DHT sets how the node uses the DHT to find peers. Zero is DHTAuto in
	// a named cluster, DHTOff otherwise; DHTClient and DHTServer need a
	// named cluster.
	DHT DHTMode

	// Relays are multiaddrs of relays that nodes behind NAT reserve slots
	// on, each ending in /p2p/<peer ID>.
	Relays []string

	// RelayService makes the node relay connections between other members,
	// for nodes behind NAT, and for no one else. Give it to nodes with a
	// public address.
	RelayService bool

	// Reachability, if not ReachabilityAuto, tells the node whether it is
	// reachable from the internet instead of waiting for AutoNAT to find
	// out, which takes 15s or more and needs peers willing to dial back.
	// Public nodes then serve the DHT and relays at once; private ones
	// reserve slots on Relays at once.
	Reachability Reachability

	// Host, if set, is a libp2p host to run on instead of one built from
	// the fields above (ListenAddrs, Relays, RelayService); the node's
	// identity is then the host's. The node does not close it.
	Host host.Host

	// Gater, with Host, is the connection gater Host was built with
	// (libp2p.ConnectionGater(g) for g := peer.NewGater(allowed...)): the
	// node records its refusals there (Disconnect, failed membership
	// proofs), so refused peers cannot even connect. Without it, a node on
	// a host of its own closes such connections as they open.
	Gater *peer.Gater

	// SyncInterval is how often the node reconciles its events with a peer.
	// Zero means DefaultSyncInterval.
	SyncInterval time.Duration

	// ForgetAfter is how long a member may stay unreachable before the
	// node drops it from its view of the cluster, and cluster queries no
	// longer wait for it (Node.Forget drops one at once). Zero means
	// DefaultForgetAfter, a day.
	ForgetAfter time.Duration

	// MaxClockOffset is how far ahead of local time a remote event's clock
	// may be before it is refused. Zero means DefaultMaxClockOffset.
	MaxClockOffset time.Duration

	// ClusterKey closes the cluster: a 32-byte secret every member holds.
	// It names the cluster's topic, protocols and DHT rendezvous, so
	// outsiders cannot find them; members prove they hold it when they
	// connect, and only proven members are served; event batches are
	// sealed with a key derived from it. Read it from a file or the
	// environment, never a command line. Nil: an open cluster.
	ClusterKey []byte

	// AcceptKeys are further cluster keys accepted while the cluster
	// changes keys: the node proves and opens with them too, and seals
	// with ClusterKey. To rotate without a partition, every member first
	// adds the new key here, then makes it the ClusterKey with the old one
	// here, then drops the old one.
	AcceptKeys [][]byte

	// AllowPeers, if set, lists the only peer IDs the node talks to.
	AllowPeers []string

	// SignEvents makes the node sign the events it records with its
	// Ed25519 identity, and accept only events signed by their origin, so
	// that no member can forge another's events. The node's identity must
	// be Ed25519 (the default). Every member of the cluster must set it
	// alike.
	SignEvents bool

	// WallClock is the physical clock the node's hybrid logical clock
	// reads. Nil means the system clock; simulations and tests set their
	// own.
	WallClock hlc.WallClock

	// Limits bound the events the node records and accepts. Zero fields mean
	// events.DefaultLimits.
	Limits events.Limits

	// Retention is how long the node keeps events: those whose HLC time
	// lies more than Retention before now (rounded down to the minute, so
	// that nodes with one setting agree without talking) expire — deleted
	// here, and never taken back from a peer. Zero means
	// DefaultRetention; negative keeps everything. At least MinRetention.
	Retention time.Duration

	// MaxBytes caps the bytes the node's events take: its store's size
	// less the space of deleted events that the store has yet to compact
	// away (Status.StoreBytes less Status.Reclaimable). Over it, the node
	// lets its oldest events expire, whatever Retention says, until it is
	// a tenth under. Zero means no cap. With a DataDir, at least
	// MinDiskBytes.
	MaxBytes int64
}

// withDefaults returns a copy of c with zero fields set to their defaults,
// or every problem of c in one error.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	if c.SyncInterval < 0 {
		errs = append(errs, fmt.Errorf("SyncInterval %v is negative", c.SyncInterval))
	}
	if c.ForgetAfter < 0 {
		errs = append(errs, fmt.Errorf("ForgetAfter %v is negative", c.ForgetAfter))
	}
	if len(c.Name) > peer.MaxNameBytes || !utf8.ValidString(c.Name) {
		errs = append(errs, fmt.Errorf("Name %q: at most %d bytes of UTF-8", c.Name, peer.MaxNameBytes))
	}
	if c.MaxClockOffset < 0 {
		errs = append(errs, fmt.Errorf("MaxClockOffset %v is negative", c.MaxClockOffset))
	}
	if c.Retention > 0 && c.Retention < MinRetention {
		errs = append(errs, fmt.Errorf("Retention %v is under the minimum, %v", c.Retention, MinRetention))
	}
	if c.MaxBytes < 0 {
		errs = append(errs, fmt.Errorf("MaxBytes %d is negative", c.MaxBytes))
	}
	if c.MaxBytes > 0 && c.MaxBytes < MinDiskBytes && c.DataDir != "" && c.Datastore == nil {
		errs = append(errs, fmt.Errorf("MaxBytes %d is under the minimum for a store on disk, %d: Pebble's log and memtables alone take some 256 MiB", c.MaxBytes, MinDiskBytes))
	}
	if !c.DHT.Valid() {
		errs = append(errs, fmt.Errorf("DHT mode %d is unknown", int(c.DHT)))
	}
	if c.Reachability < ReachabilityAuto || c.Reachability > ReachabilityPrivate {
		errs = append(errs, fmt.Errorf("Reachability %d is unknown", int(c.Reachability)))
	}
	for _, list := range []struct {
		name  string
		addrs []string
	}{{"Bootstrap", c.Bootstrap}, {"Relays", c.Relays}} {
		for _, a := range list.addrs {
			if _, err := peer.ParseAddr(a); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", list.name, err))
			}
		}
	}
	named := c.Cluster != "" || c.ClusterKey != nil
	if !named && (c.DHT == DHTClient || c.DHT == DHTServer) {
		errs = append(errs, fmt.Errorf("DHT %v needs a Cluster or a ClusterKey: a node that names no cluster finds no one by itself", c.DHT))
	}
	if c.Gater != nil && c.Host == nil {
		errs = append(errs, errors.New("Gater is for a Host of your own; without one the node installs its own"))
	}
	if c.ClusterKey == nil && len(c.AcceptKeys) > 0 {
		errs = append(errs, errors.New("AcceptKeys need a ClusterKey"))
	}
	for i, k := range append([][]byte{c.ClusterKey}, c.AcceptKeys...) {
		if (i > 0 || k != nil) && len(k) != peer.KeyLen {
			errs = append(errs, fmt.Errorf("cluster key %d is %d bytes, want %d", i, len(k), peer.KeyLen))
		}
	}
	for _, id := range c.AllowPeers {
		if _, err := lpeer.Decode(id); err != nil {
			errs = append(errs, fmt.Errorf("AllowPeers: %q is not a peer ID: %v", id, err))
		}
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("scopemesh: invalid config: %w", errors.Join(errs...))
	}
	if !named {
		c.DisableMDNS, c.DHT = true, DHTOff
	}
	if c.Cluster == "" {
		c.Cluster = DefaultCluster
	}
	if c.Name == "" {
		c.Name = hostName()
	}
	if c.SyncInterval == 0 {
		c.SyncInterval = DefaultSyncInterval
	}
	if c.MaxClockOffset == 0 {
		c.MaxClockOffset = DefaultMaxClockOffset
	}
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	return c, nil
}

// hostName is the default node name: the host's, cut to fit.
func hostName() string {
	name, err := os.Hostname()
	if err != nil {
		return ""
	}
	return strings.ToValidUTF8(name[:min(len(name), peer.MaxNameBytes)], "")
}
