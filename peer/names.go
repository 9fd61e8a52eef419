package peer

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/libp2p/go-libp2p/core/protocol"
)

// names are the cluster's network names. In an open cluster every one
// includes the cluster's name, so clusters sharing a network (or the DHT)
// never exchange events.
type names struct {
	topic      string      // gossipsub topic of event batches
	viewTopic  string      // the topic of member records
	view       protocol.ID // stream protocol of member list exchanges
	sync       protocol.ID // stream protocol of reconciliation
	query      protocol.ID // stream protocol of cluster queries
	batches    protocol.ID // stream protocol of fetching announced batches
	dhtPrefix  protocol.ID // the cluster's private DHT
	rendezvous string      // what members advertise on the DHT
	mdns       string      // mDNS service name
}

func namesFor(cluster string) names {
	base := "/scopemesh/" + cluster
	// mDNS service names are DNS labels: use a digest of the cluster name.
	digest := sha256.Sum256([]byte(cluster))
	return names{
		topic:      base + "/events/3",
		viewTopic:  base + "/members/1",
		view:       protocol.ID(base + "/members/1"),
		sync:       protocol.ID(base + "/sync/3"),
		query:      protocol.ID(base + "/query/1"),
		batches:    protocol.ID(base + "/batches/1"),
		dhtPrefix:  protocol.ID(base),
		rendezvous: base + "/members",
		mdns:       "_sm-" + hex.EncodeToString(digest[:5]) + "._udp", // DNS-SD service names have at most 15 characters
	}
}

// closedNames are the names of a closed cluster's key, whose identifier id
// derives from the key. Only the topic and the DHT rendezvous, which reach
// proven members alone, use it: the protocols, the DHT's and the mDNS
// service are the same for every closed cluster, as an outsider sees them
// before any proof.
func closedNames(id string) names {
	return names{
		topic:      "/scopemesh/" + id + "/events/3",
		viewTopic:  "/scopemesh/" + id + "/members/1",
		view:       "/scopemesh/closed/members/1",
		sync:       "/scopemesh/closed/sync/3",
		query:      "/scopemesh/closed/query/1",
		batches:    "/scopemesh/closed/batches/1",
		dhtPrefix:  "/scopemesh/closed",
		rendezvous: "/scopemesh/" + id + "/members",
		mdns:       "_scopemesh._udp",
	}
}
