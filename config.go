package scopemesh

import (
	"errors"
	"fmt"
	"time"

	"github.com/ipfs/go-datastore"

	"github.com/scopemesh/scopemesh/events"
)

// DHTMode says how a node takes part in the Kademlia DHT used to find the
// cluster's peers across networks.
type DHTMode int

// The DHT modes. The zero value is DHTAuto.
const (
	DHTAuto   DHTMode = iota // server when publicly reachable, client otherwise
	DHTOff                   // no DHT: peers come from mDNS, Bootstrap and Connect
	DHTClient                // query the DHT, serve nothing
	DHTServer                // query and serve the DHT
)

func (m DHTMode) String() string {
	switch m {
	case DHTAuto:
		return "auto"
	case DHTOff:
		return "off"
	case DHTClient:
		return "client"
	case DHTServer:
		return "server"
	}
	return fmt.Sprintf("DHTMode(%d)", int(m))
}

// Defaults of Config.
const (
	DefaultCluster        = "default"
	DefaultSyncInterval   = 30 * time.Second
	DefaultMaxClockOffset = 500 * time.Millisecond
)

// Config configures a Node. The zero value runs an in-memory node with the
// default cluster settings. Open does not modify the Config it is given.
type Config struct {
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
	// cluster. Empty means DefaultCluster.
	Cluster string

	// DisableMDNS turns off discovery of peers on the local network.
	DisableMDNS bool

	// DHT sets how the node uses the DHT to find peers. Zero is DHTAuto.
	DHT DHTMode

	// Relays are multiaddrs of relays that nodes behind NAT reserve slots
	// on, each ending in /p2p/<peer ID>.
	Relays []string

	// SyncInterval is how often the node reconciles its events with a peer.
	// Zero means DefaultSyncInterval.
	SyncInterval time.Duration

	// MaxClockOffset is how far ahead of local time a remote event's clock
	// may be before it is refused. Zero means DefaultMaxClockOffset.
	MaxClockOffset time.Duration

	// Limits bound the events the node records and accepts. Zero fields mean
	// events.DefaultLimits.
	Limits events.Limits
}

// withDefaults returns a copy of c with zero fields set to their defaults,
// or every problem of c in one error.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	if c.SyncInterval < 0 {
		errs = append(errs, fmt.Errorf("SyncInterval %v is negative", c.SyncInterval))
	}
	if c.MaxClockOffset < 0 {
		errs = append(errs, fmt.Errorf("MaxClockOffset %v is negative", c.MaxClockOffset))
	}
	if c.DHT < DHTAuto || c.DHT > DHTServer {
		errs = append(errs, fmt.Errorf("DHT mode %d is unknown", int(c.DHT)))
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("scopemesh: invalid config: %w", errors.Join(errs...))
	}
	if c.Cluster == "" {
		c.Cluster = DefaultCluster
	}
	if c.SyncInterval == 0 {
		c.SyncInterval = DefaultSyncInterval
	}
	if c.MaxClockOffset == 0 {
		c.MaxClockOffset = DefaultMaxClockOffset
	}
	return c, nil
}
