package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/pki"
	"github.com/clusterctl/clusterctl/server"
	"github.com/clusterctl/clusterctl/store"
	"github.com/clusterctl/clusterctl/transport"
)

// callTimeout bounds one client call in these tests (the client retries
// on other managers within it).
const callTimeout = 10 * time.Second

// cluster is three managers on loopback forming one cluster.
type cluster struct {
	creds  *transport.Creds // the operator's, made by m1's bootstrap
	mgrs   map[string]*manager
	leader string   // name of the leader once ready
	follow []string // names of the followers once ready
}

func (c *cluster) addrs(names ...string) []string {
	var out []string
	for _, n := range names {
		out = append(out, c.mgrs[n].addr())
	}
	return out
}

func (c *cluster) all() []string { return c.addrs("m1", "m2", "m3") }

// client is a client of some managers, as the operator.
func (c *cluster) client(servers []string) *api.Client { return api.NewClient(servers, c.creds) }

// startCluster bootstraps m1, then starts m2 and m3 joining it with the
// manager token, each knowing the three API addresses, and waits until
// they form a cluster.
func startCluster(t *testing.T) *cluster {
	log := testLogger(t)
	ports := freePorts(t, 6)
	var join []string
	for i := range 3 {
		join = append(join, fmt.Sprintf("127.0.0.1:%d", ports[2*i]))
	}
	c := &cluster{mgrs: map[string]*manager{}}
	start := time.Now()
	for i := range 3 {
		name := fmt.Sprintf("m%d", i+1)
		cfg := server.Config{
			Name: name, DataDir: t.TempDir(), Bind: "127.0.0.1",
			APIPort: ports[2*i], RaftPort: ports[2*i+1], Join: join, Log: log,
		}
		if i == 0 {
			cfg.Bootstrap = true
		} else {
			cfg.Token = token(t, c.mgrs["m1"], pki.RoleManager)
		}
		c.mgrs[name] = startManager(t, cfg)
		if i == 0 {
			c.creds = adminCreds(t, c.mgrs[name])
		}
	}
	st := readyStatus(t, c.client(c.all()), 3, 30*time.Second)
	t.Logf("cluster %s formed in %v, leader %s", st.ClusterID, time.Since(start), st.Leader)
	// Every manager serves the same cluster ID (followers apply it later).
	for name, m := range c.mgrs {
		eventually(t, 10*time.Second, name+" knows the cluster ID", func() error {
			self, err := c.client(nil).Self(ctxT(t, 2*time.Second), m.addr())
			if err != nil {
				return err
			}
			if self.ClusterID != st.ClusterID {
				return fmt.Errorf("cluster ID %q, want %q", self.ClusterID, st.ClusterID)
			}
			return nil
		})
	}
	c.leader = st.Leader
	for _, s := range st.Servers {
		if s.State == "follower" {
			c.follow = append(c.follow, s.Name)
		}
		if want := c.mgrs[s.Name].addr(); s.API != want {
			t.Fatalf("status has API %s for %s, want %s", s.API, s.Name, want)
		}
	}
	return c
}

func TestCluster(t *testing.T) {
	c := startCluster(t)
	f1, f2 := c.mgrs[c.follow[0]], c.mgrs[c.follow[1]]

	t.Run("WriteThroughFollowerReadThroughOther", func(t *testing.T) {
		// Each round writes through one follower and at once reads through
		// the other: a linearizable read must see the acknowledged write.
		for i := range 20 {
			w, r := f1, f2
			if i%2 == 1 {
				w, r = f2, f1
			}
			key, value := fmt.Sprintf("fwd/%d", i), fmt.Sprintf("value-%d", i)
			index, err := c.client([]string{w.addr()}).SetVar(ctxT(t, callTimeout), key, value)
			if err != nil {
				t.Fatalf("SetVar %s through follower %s: %v", key, w.cfg.Name, err)
			}
			if index == 0 {
				t.Fatalf("SetVar %s: index 0", key)
			}
			v, found, err := c.client([]string{r.addr()}).GetVar(ctxT(t, callTimeout), key, false)
			if err != nil || !found {
				t.Fatalf("GetVar %s through follower %s right after the write: found %v, %v", key, r.cfg.Name, found, err)
			}
			if v.Value != value || v.ModifyIndex != index {
				t.Fatalf("GetVar %s = %+v, want value %q at index %d", key, v, value, index)
			}
		}
	})

	t.Run("BatchedWrite", func(t *testing.T) {
		var vars []store.Var
		for i := range 10 {
			vars = append(vars, store.Var{Key: fmt.Sprintf("batch/%02d", i), Value: fmt.Sprintf("b%d", i)})
		}
		index, err := c.client([]string{f1.addr()}).SetVars(ctxT(t, callTimeout), vars)
		if err != nil {
			t.Fatalf("SetVars: %v", err)
		}
		read := c.client([]string{f2.addr()})
		for _, want := range vars {
			v, found, err := read.GetVar(ctxT(t, callTimeout), want.Key, false)
			if err != nil || !found {
				t.Fatalf("GetVar %s: found %v, %v", want.Key, found, err)
			}
			if v.Value != want.Value {
				t.Errorf("%s = %q, want %q", want.Key, v.Value, want.Value)
			}
			if v.ModifyIndex != index {
				t.Errorf("%s has ModifyIndex %d, want %d: the batch was not one log entry", want.Key, v.ModifyIndex, index)
			}
		}
	})

	t.Run("StaleReadsOnEachManager", func(t *testing.T) {
		index, err := c.client(c.all()).SetVar(ctxT(t, callTimeout), "stale/k", "stale-v")
		if err != nil {
			t.Fatalf("SetVar: %v", err)
		}
		for name, m := range c.mgrs {
			client := c.client([]string{m.addr()})
			took := eventually(t, 10*time.Second, "stale read on "+name, func() error {
				v, found, err := client.GetVar(ctxT(t, callTimeout), "stale/k", true)
				switch {
				case err != nil:
					return err
				case !found:
					return errors.New("not there yet")
				case v.Value != "stale-v" || v.ModifyIndex != index:
					return fmt.Errorf("got %+v, want stale-v at %d", v, index)
				}
				return nil
			})
			t.Logf("stale read on %s saw the write after %v", name, took)
		}
	})

	t.Run("StrictJSON", func(t *testing.T) {
		base := transport.URL(f1.addr())
		huge := `{"value":"` + strings.Repeat("x", 1<<20) + `"}`
		cases := []struct {
			name, method, path, body string
			code                     int
			want                     string // in the error message
		}{
			{"unknown field", "PUT", "/v1/vars/strict", `{"value":"v","colour":"red"}`, 400, `unknown field "colour"`},
			{"malformed", "PUT", "/v1/vars/strict", `{"value":`, 400, "invalid JSON body"},
			{"two values", "PUT", "/v1/vars/strict", `{"value":"a"} {"value":"b"}`, 400, "more than one value"},
			{"over 1 MiB", "PUT", "/v1/vars/strict", huge, 400, "larger than 1048576 bytes"},
			{"key with a space", "PUT", "/v1/vars/bad%20key", `{"value":"v"}`, 400, `invalid variable key "bad key"`},
			{"unknown path", "GET", "/v1/nope", "", 404, "no such API: GET /v1/nope"},
		}
		hc := c.creds.HTTPClient(callTimeout)
		for _, tc := range cases {
			req, err := http.NewRequest(tc.method, base+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Errorf("%s: status %d, want %d (%s)", tc.name, resp.StatusCode, tc.code, b)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("%s: Content-Type %q, want application/json", tc.name, ct)
			}
			var e api.Error
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&e); err != nil {
				t.Errorf("%s: body %q is not a JSON error: %v", tc.name, b, err)
				continue
			}
			if !strings.Contains(e.Error, tc.want) {
				t.Errorf("%s: error %q does not say %q", tc.name, e.Error, tc.want)
			}
		}
		// None of the refused writes took effect.
		read := c.client(c.all())
		for _, key := range []string{"strict", "bad key"} {
			if v, found, err := read.GetVar(ctxT(t, callTimeout), key, false); err != nil || found {
				t.Errorf("GetVar %q after refused writes: %+v, found %v, %v", key, v, found, err)
			}
		}
	})

	t.Run("Events", func(t *testing.T) {
		client := c.client([]string{f2.addr()})
		ctx, cancel := context.WithCancel(context.Background())
		events := make(chan store.Event, 256)
		errc := make(chan error, 1)
		go func() {
			errc <- client.Events(ctx, 0, func(ev store.Event) error {
				select {
				case events <- ev:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
		}()
		t.Cleanup(func() {
			cancel()
			select {
			case <-errc:
			case <-time.After(10 * time.Second):
				t.Error("the event stream did not end after cancel")
			}
		})
		// From index 0 the stream first replays what the buffer holds
		// (the cluster's init at least): then it is live.
		select {
		case <-events:
		case <-time.After(10 * time.Second):
			t.Fatal("no event replayed from index 0")
		}
		index, err := c.client(c.all()).SetVar(ctxT(t, callTimeout), "events/k", "ev-v")
		if err != nil {
			t.Fatalf("SetVar: %v", err)
		}
		timeout := time.After(10 * time.Second)
	wait:
		for {
			select {
			case ev := <-events:
				if ev.Type != store.EventVarSet || ev.Key != "events/k" {
					continue
				}
				if ev.Index != index {
					t.Errorf("var.set event at index %d, the write committed at %d", ev.Index, index)
				}
				var v store.Var
				if err := json.Unmarshal(ev.Object, &v); err != nil || v.Value != "ev-v" {
					t.Errorf("var.set event object %s: %+v, %v", ev.Object, v, err)
				}
				break wait
			case <-timeout:
				t.Fatalf("no %s event for events/k (written at %d)", store.EventVarSet, index)
			}
		}
		cancel()
		select {
		case err := <-errc:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Events returned %v after cancel, want context.Canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Events did not return after cancel")
		}
		errc <- nil // for the cleanup
	})

	t.Run("Hosts", func(t *testing.T) {
		client := c.client([]string{f1.addr()}) // forwarded to the leader
		for _, name := range []string{"alive", "dying"} {
			err := client.RegisterHost(ctxT(t, callTimeout), api.RegisterHost{Name: name, Addr: "10.0.0.1", Docker: "unix:///var/run/docker.sock", CPUs: 2, MemoryBytes: 1 << 30})
			if err != nil {
				t.Fatalf("RegisterHost %s: %v", name, err)
			}
		}
		if err := client.Heartbeat(ctxT(t, callTimeout), "dying", api.Heartbeat{}); err != nil {
			t.Fatalf("Heartbeat dying: %v", err)
		}
		lastDying := time.Now() // the dying host's last sign of life
		// The alive host heartbeats every 500 ms (agents do every second)
		// until the subtest ends.
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				hctx, hcancel := context.WithTimeout(ctx, 2*time.Second)
				err := client.Heartbeat(hctx, "alive", api.Heartbeat{})
				hcancel()
				if err != nil && ctx.Err() == nil {
					t.Errorf("Heartbeat alive: %v", err)
				}
				select {
				case <-ctx.Done():
				case <-time.After(500 * time.Millisecond):
				}
			}
		}()
		t.Cleanup(func() { cancel(); wg.Wait() })

		var seenDown time.Duration
		eventually(t, 10*time.Second, "the dying host is marked down", func() error {
			hosts, err := client.Hosts(ctxT(t, callTimeout), false)
			if err != nil {
				return err
			}
			state := map[string]store.HostState{}
			for _, h := range hosts.Hosts {
				state[h.Name] = h.State
			}
			if state["alive"] != store.HostUp {
				t.Fatalf("the heartbeating host is %q, want up", state["alive"])
			}
			if state["dying"] != store.HostDown {
				return fmt.Errorf("dying is %q", state["dying"])
			}
			seenDown = time.Since(lastDying)
			return nil
		})
		t.Logf("a host that stopped heartbeating was seen down after %v (TTL 3s)", seenDown)
		if seenDown > 5*time.Second {
			t.Errorf("host marked down after %v, want within 5s", seenDown)
		}
		err := client.Heartbeat(ctxT(t, callTimeout), "nosuchhost", api.Heartbeat{})
		if !api.IsNotFound(err) {
			t.Errorf("heartbeat of an unknown host: %v, want a 404", err)
		}
	})

	var down *manager // the leader failover stops, for Restart
	t.Run("Failover", func(t *testing.T) {
		old := c.mgrs[c.leader]
		survivors := c.client(c.addrs(c.follow...))
		if _, err := survivors.SetVar(ctxT(t, callTimeout), "failover/before", "acked"); err != nil {
			t.Fatalf("SetVar before failover: %v", err)
		}
		start := time.Now()
		if !old.stop() {
			t.Fatalf("leader %s did not stop", old.cfg.Name)
		}
		down = old
		stopped := time.Since(start)
		var newLeader string
		took := eventuallyEvery(t, 10*time.Second, 10*time.Millisecond, "a new leader", func() error {
			for _, name := range c.follow {
				self, err := c.client(nil).Self(ctxT(t, time.Second), c.mgrs[name].addr())
				if err != nil {
					return err
				}
				if self.State == "leader" && self.LeaderName == name {
					newLeader = name
					return nil
				}
			}
			return errors.New("no survivor leads yet")
		})
		t.Logf("leader %s stopped in %v; %s leads %v after the stop began", old.cfg.Name, stopped, newLeader, took)
		if took > 3*time.Second {
			t.Errorf("failover took %v, want under 3s", took)
		}
		if _, err := survivors.SetVar(ctxT(t, callTimeout), "failover/after", "written-while-down"); err != nil {
			t.Fatalf("SetVar after failover: %v", err)
		}
		v, found, err := survivors.GetVar(ctxT(t, callTimeout), "failover/before", false)
		if err != nil || !found || v.Value != "acked" {
			t.Fatalf("acknowledged value after failover: %+v, found %v, %v", v, found, err)
		}
		// The earlier writes of the first subtest survived too.
		if v, found, err := survivors.GetVar(ctxT(t, callTimeout), "fwd/19", false); err != nil || !found || v.Value != "value-19" {
			t.Errorf("fwd/19 after failover: %+v, found %v, %v", v, found, err)
		}
	})

	t.Run("Restart", func(t *testing.T) {
		if down == nil {
			t.Fatal("failover did not stop a manager")
		}
		m := startManager(t, down.cfg) // same name, data dir, ports
		c.mgrs[m.cfg.Name] = m
		client := c.client([]string{m.addr()})
		took := eventually(t, 20*time.Second, "the restarted manager catches up", func() error {
			v, found, err := client.GetVar(ctxT(t, callTimeout), "failover/after", true)
			switch {
			case err != nil:
				return err
			case !found:
				return errors.New("not caught up yet")
			case v.Value != "written-while-down":
				return fmt.Errorf("got %+v", v)
			}
			return nil
		})
		t.Logf("restarted %s caught up %v after Start", m.cfg.Name, took)
		readyStatus(t, c.client(c.all()), 3, 20*time.Second)
	})
}
