// Command raftbench measures the control plane on a 3-host lab: committed
// writes per second and their latency through the API (single writes, and
// batches of several commands in one log entry), and leader failover time.
// Latencies are printed against a baseline measured in the same run: an
// API round trip that touches no log (a stale read of a variable on the
// leader, on a kept-alive TLS connection as every other request).
// It needs root and `make build` (make bench does both).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/bench/internal/benchcli"
	"github.com/clusterctl/clusterctl/contextfile"
	"github.com/clusterctl/clusterctl/store"
	"github.com/clusterctl/clusterctl/transport"
)

func main() {
	bin := flag.String("bin", "bin/clusterctl", "clusterctl binary")
	ops := flag.Int("ops", 2000, "sequential operations per latency measurement")
	conc := flag.Int("concurrency", 16, "concurrent clients for throughput")
	dur := flag.Duration("duration", 5*time.Second, "duration of each throughput measurement")
	batch := flag.Int("batch", 10, "commands per batched write")
	kills := flag.Int("kills", 10, "leader kills for the failover measurement")
	flag.Parse()
	b := &bench{cli: benchcli.New(*bin, "raftbench")}
	err := b.run(*ops, *conc, *dur, *batch, *kills)
	if _, derr := b.cli.Run("lab", "down"); derr != nil && err == nil {
		err = derr
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "raftbench: "+err.Error())
		os.Exit(1)
	}
}

type bench struct {
	cli     benchcli.CLI
	servers []string
	addrOf  map[string]string // host name -> API address
	creds   *transport.Creds  // the lab's operator's
}

func (b *bench) run(ops, conc int, dur time.Duration, batch, kills int) error {
	if _, err := b.cli.Run("lab", "down"); err != nil {
		return err
	}
	if _, err := b.cli.Run("lab", "up", "--hosts", "3", "--images", ""); err != nil {
		return err
	}
	c, err := contextfile.Load(b.cli.Context)
	if err != nil {
		return err
	}
	if b.creds, err = c.Creds(); err != nil {
		return err
	}
	b.servers, b.addrOf = c.Servers, map[string]string{}
	for i, h := range c.Hosts {
		b.addrOf[h.Name] = c.Servers[i]
	}
	leaderAPI, err := b.leaderAPI()
	if err != nil {
		return err
	}
	leader := api.NewClient([]string{leaderAPI}, b.creds)
	ctx := context.Background()

	base := latencies(ops, func(int) error { _, _, err := leader.GetVar(ctx, "k0", true); return err })
	single := latencies(ops, func(i int) error { _, err := leader.SetVar(ctx, fmt.Sprintf("k%d", i%100), "v"); return err })
	batched := latencies(ops/batch, func(i int) error { _, err := leader.SetVars(ctx, vars(i, batch)); return err })
	singleRate := throughput(conc, dur, func(w, i int) error {
		_, err := leader.SetVar(ctx, fmt.Sprintf("t%d-%d", w, i%100), "v")
		return err
	})
	batchRate := throughput(conc, dur, func(w, i int) error { _, err := leader.SetVars(ctx, vars(w*1000+i, batch)); return err }) * float64(batch)
	readLin := latencies(ops, func(i int) error { _, _, err := leader.GetVar(ctx, fmt.Sprintf("k%d", i%100), false); return err })
	fail, err := b.failovers(kills)
	if err != nil {
		return err
	}

	fmt.Printf("| measurement | p50 | p99 | baseline p50 (API round trip) | p50 ratio |\n|---|---|---|---|---|\n")
	row := func(name string, l []time.Duration) {
		fmt.Printf("| %s | %s | %s | %s | %.1fx |\n", name, ms(benchcli.Percentile(l, 50)), ms(benchcli.Percentile(l, 99)), ms(benchcli.Percentile(base, 50)), ratio(benchcli.Percentile(l, 50), benchcli.Percentile(base, 50)))
	}
	row("API round trip, no log (baseline)", base)
	row("write, 1 command per entry", single)
	row(fmt.Sprintf("write, %d commands per entry", batch), batched)
	row("linearizable read (barrier)", readLin)
	fmt.Printf("\n| throughput (%d clients, %s) | commands/s |\n|---|---|\n", conc, dur)
	fmt.Printf("| single writes | %.0f |\n| batched writes (%d per entry) | %.0f |\n", singleRate, batch, batchRate)
	hb := 500 * time.Millisecond
	fmt.Printf("\n| leader failover over %d kills | p50 | max | ratio p50 / heartbeat timeout (%s) |\n|---|---|---|---|\n", kills, hb)
	fmt.Printf("| host of the leader stopped -> a survivor leads and answers | %s | %s | %.1fx |\n", ms(benchcli.Percentile(fail, 50)), ms(slices.Max(fail)), ratio(benchcli.Percentile(fail, 50), hb))
	fmt.Printf("\ntargets: p99 single write < 20ms: %s; failover p50 < 2s: %s; max < 3s: %s\n",
		verdict(benchcli.Percentile(single, 99) < 20*time.Millisecond), verdict(benchcli.Percentile(fail, 50) < 2*time.Second), verdict(slices.Max(fail) < 3*time.Second))
	return nil
}

func vars(i, n int) []store.Var {
	out := make([]store.Var, n)
	for j := range out {
		out[j] = store.Var{Key: fmt.Sprintf("b%d-%d", i%100, j), Value: "v"}
	}
	return out
}

// leaderAPI waits until all three managers are healthy and returns the
// leader's API address.
func (b *bench) leaderAPI() (string, error) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if out, err := b.cli.Run("status", "-o", "json"); err == nil {
			var st api.Status
			if json.Unmarshal([]byte(out), &st) == nil && st.Leader != "" && healthy(st) {
				return b.addrOf[st.Leader], nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "", fmt.Errorf("the three managers did not become healthy within 30s")
}

// healthy says whether every manager leads or follows.
func healthy(st api.Status) bool {
	for _, s := range st.Servers {
		if s.State != "leader" && s.State != "follower" {
			return false
		}
	}
	return len(st.Servers) == 3
}

// failovers stops the leader's host n times, timing until one of the
// survivors reports that it leads, then boots the host again and waits for
// the three managers.
func (b *bench) failovers(n int) ([]time.Duration, error) {
	var out []time.Duration
	for range n {
		leaderAddr, err := b.leaderAPI()
		if err != nil {
			return nil, err
		}
		var leader string
		var survivors []string
		for name, addr := range b.addrOf {
			if addr == leaderAddr {
				leader = name
			} else {
				survivors = append(survivors, addr)
			}
		}
		if _, err := b.cli.Run("lab", "stop", leader); err != nil {
			return nil, err
		}
		start := time.Now()
		if err := waitLeader(survivors, b.creds); err != nil {
			return nil, err
		}
		out = append(out, time.Since(start))
		if _, err := b.cli.Run("lab", "start", leader); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// waitLeader polls the survivors until one says it leads.
func waitLeader(servers []string, creds *transport.Creds) error {
	c := api.NewClient(servers, creds)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range servers {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			self, err := c.Self(ctx, s)
			cancel()
			if err == nil && self.State == "leader" {
				return nil
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("no new leader within 30s")
}

// latencies runs op n times in sequence and returns each duration.
func latencies(n int, op func(i int) error) []time.Duration {
	out := make([]time.Duration, 0, n)
	for i := range n {
		start := time.Now()
		if err := op(i); err != nil {
			fmt.Fprintln(os.Stderr, "raftbench: operation failed:", err)
			continue
		}
		out = append(out, time.Since(start))
	}
	return out
}

// throughput runs op from conc goroutines for d and returns operations/s.
func throughput(conc int, d time.Duration, op func(worker, i int) error) float64 {
	var mu sync.Mutex
	total := 0
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for i := 0; time.Now().Before(end); i++ {
				if op(w, i) == nil {
					n++
				}
			}
			mu.Lock()
			total += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	return float64(total) / d.Seconds()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }

func ratio(a, b time.Duration) float64 { return a.Seconds() / b.Seconds() }

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}
