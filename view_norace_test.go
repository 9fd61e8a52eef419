//go:build !race

package scopemesh

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestClusterViewFifty: fifty nodes, each joining one or two earlier ones
// at random.
func TestClusterViewFifty(t *testing.T) {
	if testing.Short() {
		t.Skip("fifty nodes")
	}
	nodes := mockCluster(t, 50)
	rng := rand.New(rand.NewPCG(50, 1))
	for i := 1; i < len(nodes); i++ {
		to := []int{rng.IntN(i)}
		if j := rng.IntN(i); i > 1 && rng.IntN(2) == 0 && j != to[0] {
			to = append(to, j)
		}
		joinTo(t, nodes, i, to...)
	}
	t.Logf("50 nodes: views converged %v after the last join", viewsConverge(t, nodes, 30*time.Second))
	queriesFind(t, nodes, 10)
}
