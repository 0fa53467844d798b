//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/internal/lincheck"
)

// TestLinearizable records concurrent reads and writes from several clients
// while the leader's host is killed and another manager is partitioned,
// and checks the history with porcupine.
func TestLinearizable(t *testing.T) {
	const clients, minOps = 6, 1500
	c := labCLI(t)
	c.must("lab", "up", "--hosts", "3", "--images", "")
	hist := lincheck.NewHistory()
	var ok atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for id := range clients {
		wg.Add(1)
		client := c.client()
		go func() {
			defer wg.Done()
			runClient(id, client, hist, &ok, stop)
		}()
	}
	waitOps := func(n int64) {
		eventually(t, 60*time.Second, fmt.Sprintf("%d successful operations", n), func() error {
			if got := ok.Load(); got < n {
				return fmt.Errorf("%d so far", got)
			}
			return nil
		})
	}
	waitOps(minOps / 4)
	leader := leaderOf(t, c.client())
	c.must("lab", "stop", leader)
	t.Logf("killed the leader %s after %d operations", leader, ok.Load())
	waitOps(minOps / 2)
	other := "host1"
	for other == leader || other == "" {
		other = map[string]string{"host1": "host2", "host2": "host3"}[other]
	}
	c.must("lab", "partition", other)
	t.Logf("partitioned %s after %d operations (no quorum until healed)", other, ok.Load())
	time.Sleep(time.Second) // let operations fail and time out against the partition
	c.must("lab", "heal", other)
	c.must("lab", "start", leader)
	waitOps(minOps)
	close(stop)
	wg.Wait()
	t.Logf("history: %d operations recorded, %d succeeded", hist.Len(), ok.Load())

	res, info := hist.Check(2 * time.Minute)
	if res != porcupine.Ok {
		out := filepath.Join(os.TempDir(), "linearizability.html")
		_ = porcupine.VisualizePath(lincheck.Model, info, out)
		t.Fatalf("history is not linearizable (%s): see %s", res, out)
	}
}

// runClient does random reads and writes on a few keys until stop.
func runClient(id int, c *api.Client, hist *lincheck.History, ok *atomic.Int64, stop <-chan struct{}) {
	rng := rand.New(rand.NewPCG(uint64(id), 42))
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		default:
		}
		key := fmt.Sprintf("lin-%d", rng.IntN(4))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if rng.IntN(2) == 0 {
			in := lincheck.Input{Write: true, Key: key, Value: fmt.Sprintf("c%d-%d", id, n)}
			done := hist.Call(id, in)
			_, err := c.SetVar(ctx, key, in.Value)
			done(lincheck.Output{}, err)
			countOK(ok, err)
		} else {
			done := hist.Call(id, lincheck.Input{Key: key})
			v, found, err := c.GetVar(ctx, key, false)
			done(lincheck.Output{Value: v.Value, Found: found}, err)
			countOK(ok, err)
		}
		cancel()
	}
}

func countOK(ok *atomic.Int64, err error) {
	if err == nil {
		ok.Add(1)
	} else if !strings.Contains(err.Error(), "deadline") {
		time.Sleep(10 * time.Millisecond) // a refused request: do not spin
	}
}
