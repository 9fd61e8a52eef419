// Package nemesis holds the fault-injection test of scopemesh: nodes record
// events while a seeded schedule of faults strikes them, then everything is
// healed and a checker verifies what the library promises. The package has
// no code of its own outside its tests.
//
// # The model
//
// A cluster is a fixed set of nodes. A node keeps its identity, its store
// and its physical clock across incarnations; an incarnation is one run of
// scopemesh.Open, ended by Close or by a crash. Each node has writers that
// record sequentially: its own events (half of them in traces that
// continue across restarts) and the hops of requests that cross nodes,
// carried by events.Propagator as a service would carry them (trace,
// parent and HLC). A Record that returns is acknowledged; one that returns
// while its node crashes is indeterminate: it may or may not survive.
//
// A schedule is a list of steps drawn from the seed alone. In each step
// the step's faults strike, every node that is up records a number of
// events paced over the step, the step's requests run, and the faults
// whose time is over are undone. At the end every fault but clock skew is
// undone, every node is started, Node.Sync runs until every node holds the
// same events, and the checker verifies:
//
//   - every acknowledged event is on every node; nothing else is but
//     indeterminate events;
//   - no node lists an event twice or out of (HLC, ID) order, and every
//     event verifies against its ID;
//   - every node lists the identical sequence, read with paged queries;
//   - each node's own clocks strictly increase: per writer in recording
//     order, and from each incarnation to the next, crashes included;
//   - every trace reconstructs identically on every node, through
//     Node.Trace (which asks every peer) and from the local replica alone:
//     the same events in the same causal order, complete, each event after
//     its parent, with gaps only at parents never acknowledged;
//   - every node sees every other as a connected member again;
//   - no incarnation starts with its clock further ahead of its physical
//     clock than the persisted lead (hlc.DefaultPersistAhead) and clock
//     skew explain.
//
// # The faults
//
// On the simulated network (libp2p's mocknet, through Config.Host):
//
//   - partition: the nodes split into two or three groups of random shape;
//     every link between groups is removed and its connections closed
//     (mocknet needs both), for 1 to 8 steps.
//   - cut: one link down for 1 to 3 steps: what its two ends send each
//     other is dropped, though gossip may route around it.
//   - flap: one link's connections reset at once, losing what is in
//     flight (a gossip RPC, a sync session mid-frame); the nodes redial by
//     themselves. mocknet cannot drop single messages: a stream is
//     reliable until its connection dies, so losing messages means losing
//     connections.
//   - delay: latency on one link; slow: latency on every link of one node
//     (mocknet delays each write by the link's latency).
//   - skew: a node's physical clock (Config.WallClock) jumps to a new
//     offset within ±MaxClockOffset, forwards or backwards.
//   - stop: Close, and start again from the same store 1 to 5 steps later.
//   - kill: the process dies. In one process this means: at one instant
//     the node vanishes from the network (its links removed, its
//     connections closed: no goodbye, sessions broken mid-frame), and its
//     store becomes a crash image of itself taken at that instant
//     (vfs.MemFS.CrashClone keeping every write the process made, as a
//     killed process leaves them with the operating system). The dead
//     incarnation is then closed to reap its goroutines, but nothing it
//     does after the instant reaches the network or the next incarnation,
//     which opens the image. A Record under way at the instant is
//     indeterminate.
//   - power-loss: the same, but the image keeps the synced writes and a
//     random share of the others, as a machine that loses power does.
//     These nodes commit with sync (as Config.SyncWrites does), so every
//     acknowledged event must survive even this.
//   - bounce: a crash loop: killed and started again at once, one to three
//     times in a row.
//
// Node-down faults strike from their own goroutine while the node goes on
// recording, so they may land in the middle of a Record. A node keeps its
// peer ID across incarnations: each incarnation gets a new mocknet host
// made from the node's key (mocknet accepts a peer added again once its
// old links are removed), and the store lives on a crashable in-memory
// file system, passed as Config.Datastore.
//
// On real loopback sockets (TestNemesisLoopback) the nodes keep their
// store and identity in Config.DataDir, as deployed, and only the faults
// sockets allow run: partitions, cuts and flaps made with Disconnect and
// Connect on both sides, skew, and stop. A real kill -9 needs a second
// process; crdt's TestAcknowledgedEventsSurviveKill does that for the
// store.
//
// # Running it
//
//	go test ./nemesis                            # the short schedules, as CI runs them
//	go test ./nemesis -run Nemesis -seed 42      # replay seed 42
//	go test ./nemesis -run 'Nemesis$' -long -v   # the long schedule, with its figures
//	go test ./nemesis -run Nemesis -steps 300    # a schedule of 300 steps
//	go test ./nemesis -run Nemesis -plan -v      # log the schedule first
//	go test ./nemesis -run Soak -soak 5m -v      # the soak test
//
// regressions_test.go holds a test of its own for each defect the nemesis
// found, so that each stays fixed.
//
// Without -seed a seed is drawn from the clock. Every run logs its seed and
// the command that replays it, and a failure repeats both with the faults
// as they were applied. The schedule, the nodes' keys and the content of
// every event are functions of the seed and the step, so a seed replays the
// same faults in the same order on the same nodes. What a seed cannot fix is
// goroutine timing: which Records a crash catches, which gossip a cut
// drops, when a sync session runs. A failure that depends on such timing
// may need a few runs of its seed to show again (-count).
//
// The soak test records steadily on four nodes with their stores on disk
// while partitions come and go every ten seconds. It samples the live heap
// every five seconds and measures each heal's convergence lag: the time
// from the heal until every node holds every event acknowledged before it.
// The event set grows by design, and with it each node's in-memory index,
// so the heap may grow in proportion to the events held, and by nothing
// else.
package nemesis
