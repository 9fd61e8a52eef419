package crdt

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recsOf returns n records whose keys start with byte b.
func recsOf(b byte, n int) []record {
	recs := make([]record, n)
	for i := range recs {
		recs[i].Key[0], recs[i].Key[1] = b, byte(i)
	}
	return recs
}

// TestGroupCommitSharesCommits holds the first commits until the other
// writers have queued, and checks that they then share commits, that no
// more than maxLeaders commits run at once, and that every writer's
// records are committed once, together, before its write returns.
func TestGroupCommitSharesCommits(t *testing.T) {
	var g groupCommit
	const writers = 12
	release := make(chan struct{})
	var (
		mu         sync.Mutex
		commits    [][]record
		running    atomic.Int32
		maxRunning atomic.Int32
		entered    atomic.Int32 // records passed to commits so far
	)
	commit := func(recs []record) error {
		entered.Add(int32(len(recs)))
		n := running.Add(1)
		defer running.Add(-1)
		for m := maxRunning.Load(); n > m && !maxRunning.CompareAndSwap(m, n); m = maxRunning.Load() {
		}
		<-release
		mu.Lock()
		commits = append(commits, append([]record(nil), recs...))
		mu.Unlock()
		return nil
	}
	var wg sync.WaitGroup
	committed := make([]bool, writers)
	for w := range writers {
		wg.Go(func() {
			if err := g.write(recsOf(byte(w), 3), commit); err != nil {
				t.Error(err)
			}
			// The writer's records are committed by now.
			mu.Lock()
			defer mu.Unlock()
			for _, c := range commits {
				for _, r := range c {
					committed[w] = committed[w] || r.Key[0] == byte(w)
				}
			}
		})
	}
	// Every writer is in a commit or queued for one: a leader takes the
	// writers queued before it started.
	deadline := time.Now().Add(10 * time.Second)
	for {
		g.mu.Lock()
		waiting := 3*len(g.queue) + int(entered.Load())
		g.mu.Unlock()
		if waiting == 3*writers {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d records in a commit or queued", waiting, 3*writers)
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()

	if m := maxRunning.Load(); m > maxLeaders {
		t.Errorf("%d commits ran at once, at most %d may", m, maxLeaders)
	}
	if len(commits) >= writers {
		t.Errorf("%d writers made %d commits: none shared", writers, len(commits))
	}
	seen := map[Key]int{}
	for _, c := range commits {
		for i, r := range c {
			seen[r.Key]++
			// A writer's records are consecutive in one commit.
			if r.Key[1] > 0 && (i == 0 || c[i-1].Key != Key{0: r.Key[0], 1: r.Key[1] - 1}) {
				t.Errorf("record %d of writer %d is not after its writer's previous one", r.Key[1], r.Key[0])
			}
		}
	}
	for w := range writers {
		if !committed[w] {
			t.Errorf("writer %d returned before its records were committed", w)
		}
		for i := range 3 {
			if n := seen[Key{0: byte(w), 1: byte(i)}]; n != 1 {
				t.Errorf("record %d of writer %d committed %d times", i, w, n)
			}
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.leaders != 0 || len(g.queue) != 0 {
		t.Errorf("after every write: %d leaders, %d queued", g.leaders, len(g.queue))
	}
}

// TestGroupCommitFailsTheGroup checks that a failed commit fails every
// writer whose records were in it, and only those.
func TestGroupCommitFailsTheGroup(t *testing.T) {
	var g groupCommit
	errBad := errors.New("bad commit")
	var (
		mu     sync.Mutex
		failed = map[byte]bool{} // writers whose records were in a failed commit
	)
	commit := func(recs []record) error {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range recs {
			if r.Key[0]%4 == 0 {
				for _, r := range recs {
					failed[r.Key[0]] = true
				}
				return errBad
			}
		}
		return nil
	}
	const writers = 64
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() { errs[w] = g.write(recsOf(byte(w), 2), commit) })
	}
	wg.Wait()
	for w, err := range errs {
		if want := failed[byte(w)]; want != errors.Is(err, errBad) || (!want && err != nil) {
			t.Errorf("writer %d, in a failed commit: %v, got %v", w, want, err)
		}
	}
}

// TestGroupCommitBoundsGroups checks that a leader takes queued writers
// only up to maxGroupRecords records, however many wait.
func TestGroupCommitBoundsGroups(t *testing.T) {
	g := groupCommit{queue: []*groupWriter{
		{recs: make([]record, maxGroupRecords/2)},
		{recs: make([]record, maxGroupRecords/2)},
		{recs: make([]record, 1)},
	}}
	if group := g.takeLocked(1); len(group) != 1 || len(g.queue) != 2 {
		t.Errorf("a leader of 1 record took %d writers and left %d, want 1 and 2", len(group), len(g.queue))
	}
	if group := g.takeLocked(maxGroupRecords); len(group) != 0 || len(g.queue) != 2 {
		t.Errorf("a full leader took %d writers, want none", len(group))
	}
	if group := g.takeLocked(0); len(group) != 2 || g.queue != nil {
		t.Errorf("an empty leader took %d writers and left %d, want 2 and none", len(group), len(g.queue))
	}
}
