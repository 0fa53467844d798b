package networks

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/clusterctl/clusterctl/store"
)

// newTestManager returns a manager over a store that applies commands
// directly, with hosts host1 (10.99.0.11) and host2 (10.99.0.12).
func newTestManager(t *testing.T) *Manager {
	t.Helper()
	st := store.New(nil)
	var mu sync.Mutex
	apply := func(b []byte) (uint64, error) {
		mu.Lock() // raft applies one entry at a time
		defer mu.Unlock()
		index := st.AppliedIndex() + 1
		res := st.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: b, AppendedAt: time.Now()})
		return index, store.ResponseError(res)
	}
	for i, name := range []string{"host1", "host2"} {
		b, err := store.Encode(store.CmdRegisterHost, store.Host{Name: name, Addr: fmt.Sprintf("10.99.0.%d", 11+i)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := apply(b); err != nil {
			t.Fatal(err)
		}
	}
	return New(st, apply, nil)
}

func mustCreate(t *testing.T, m *Manager, req Request) store.Network {
	t.Helper()
	n, err := m.Create(req)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCreatePicksSubnetVNIAndGateway(t *testing.T) {
	m := newTestManager(t)
	a := mustCreate(t, m, Request{Name: "shop_default"})
	b := mustCreate(t, m, Request{Name: "shop_back"})
	if a.Subnet != "10.200.0.0/24" || a.Gateway != "10.200.0.1" || a.VNI != firstVNI {
		t.Errorf("first network %+v", a)
	}
	if b.Subnet != "10.200.1.0/24" || b.VNI != firstVNI+1 {
		t.Errorf("second network %+v: want the next free subnet and VNI", b)
	}
	again := mustCreate(t, m, Request{Name: "shop_default"})
	if again.ModifyIndex != a.ModifyIndex {
		t.Errorf("create again changed the network: %+v", again)
	}
	mine := mustCreate(t, m, Request{Name: "mine", Subnet: "10.50.0.0/16"})
	if mine.Gateway != "10.50.0.1" {
		t.Errorf("given subnet: %+v", mine)
	}
}

func TestCreateRefusals(t *testing.T) {
	m := newTestManager(t)
	mustCreate(t, m, Request{Name: "a", Subnet: "10.200.0.0/24"})
	for _, tc := range []struct {
		req  Request
		kind error
		want string
	}{
		{Request{Name: "a/b"}, store.ErrInvalid, `invalid network name "a/b"`},
		{Request{Name: "..", Subnet: "10.1.0.0/24"}, store.ErrInvalid, "invalid network name"},
		{Request{Name: "b", Subnet: "10.200.0.128/25"}, store.ErrConflict, "overlaps 10.200.0.0/24 of network a"},
		{Request{Name: "b", Subnet: "10.99.0.0/24"}, store.ErrConflict, "holds host host1's own address 10.99.0.11"},
		{Request{Name: "b", Subnet: "10.1.0.1/24"}, store.ErrInvalid, "host bits set: did you mean 10.1.0.0/24"},
		{Request{Name: "b", Subnet: "fd00::/64"}, store.ErrInvalid, "want an IPv4 prefix"},
		{Request{Name: "b", Subnet: "10.1.0.0/30"}, store.ErrInvalid, "too small"},
		{Request{Name: "a", Subnet: "10.7.0.0/24"}, store.ErrConflict, "exists with subnet 10.200.0.0/24"},
	} {
		_, err := m.Create(tc.req)
		if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("create %+v: %v, want %q", tc.req, err, tc.want)
		}
	}
	if n := len(m.store.View().Networks()); n != 1 {
		t.Errorf("%d networks after refusals, want 1", n)
	}
}

func TestLeases(t *testing.T) {
	m := newTestManager(t)
	mustCreate(t, m, Request{Name: "net", Subnet: "10.60.0.0/29"}) // .2 to .6 for tasks
	first, err := m.Lease("net", "task-a", "")
	if err != nil || first.Addr != "10.60.0.2" || first.MAC != "02:ce:0a:3c:00:02" {
		t.Fatalf("first lease %+v, %v", first, err)
	}
	again, err := m.Lease("net", "task-a", "")
	if err != nil || again.Addr != first.Addr {
		t.Errorf("the same task again: %+v, %v; want its address back", again, err)
	}
	pref, err := m.Lease("net", "task-b", "10.60.0.5")
	if err != nil || pref.Addr != "10.60.0.5" {
		t.Fatalf("preferred address: %+v, %v", pref, err)
	}
	for _, tc := range []struct {
		owner, addr, want string
		kind              error
	}{
		{"task-c", "10.60.0.5", "leased to task task-b", store.ErrConflict},
		{"task-c", "10.60.0.1", "gateway", store.ErrInvalid},
		{"task-c", "10.60.0.7", "not a host address", store.ErrInvalid},
		{"task-c", "10.61.0.2", "not in network net's subnet", store.ErrInvalid},
		{"task-c", "bogus", "invalid address", store.ErrInvalid},
	} {
		if _, err := m.Lease("net", tc.owner, tc.addr); !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("lease %s for %s: %v, want %q", tc.addr, tc.owner, err, tc.want)
		}
	}
	for _, owner := range []string{"task-c", "task-d", "task-e"} { // .3 .4 .6
		if _, err := m.Lease("net", owner, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Lease("net", "task-f", ""); !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "no free address") {
		t.Errorf("exhausted pool: %v", err)
	}
	if err := m.ReleaseTask("task-b"); err != nil {
		t.Fatal(err)
	}
	if l, err := m.Lease("net", "task-f", ""); err != nil || l.Addr != "10.60.0.5" {
		t.Errorf("after task-b went: %+v, %v; want its address", l, err)
	}
	if err := m.Remove("net"); !errors.Is(err, store.ErrConflict) {
		t.Errorf("remove a network with leases: %v", err)
	}
}

// Many tasks leasing at once never get the same address.
func TestConcurrentLeasesAreDistinct(t *testing.T) {
	m := newTestManager(t)
	mustCreate(t, m, Request{Name: "net", Subnet: "10.70.0.0/24"})
	var wg sync.WaitGroup
	addrs := make([]string, 40)
	for i := range addrs {
		wg.Go(func() {
			l, err := m.Lease("net", fmt.Sprintf("task-%d", i), "")
			if err != nil {
				t.Error(err)
			}
			addrs[i] = l.Addr
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, a := range addrs {
		if seen[a] {
			t.Fatalf("address %s given twice: %v", a, addrs)
		}
		seen[a] = true
	}
	if got := len(m.store.View().Leases("net")); got != len(addrs) {
		t.Errorf("%d leases in the store, want %d", got, len(addrs))
	}
}

func TestRemove(t *testing.T) {
	m := newTestManager(t)
	mustCreate(t, m, Request{Name: "net"})
	if err := m.Remove("net"); err != nil {
		t.Fatal(err)
	}
	if err := m.Remove("net"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("remove twice: %v", err)
	}
}

func TestSetEndpointHost(t *testing.T) {
	m := newTestManager(t)
	mustCreate(t, m, Request{Name: "net"})
	l, err := m.Lease("net", "task-a", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"host1", "host2", ""} {
		got, err := m.SetEndpointHost("net", l.Addr, host)
		if err != nil || got.Host != host || got.TaskID != "task-a" {
			t.Fatalf("endpoint on %q: %+v, %v", host, got, err)
		}
	}
	if _, err := m.SetEndpointHost("net", "10.200.0.99", "host1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("endpoint of an address not leased: %v", err)
	}
}

// TestClearEndpointHostOnlyFromItsHost: a move's source that says late
// that its endpoint went does not undo the endpoint on the new host.
func TestClearEndpointHostOnlyFromItsHost(t *testing.T) {
	m := newTestManager(t)
	mustCreate(t, m, Request{Name: "net"})
	l, err := m.Lease("net", "task-a", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.SetEndpointHost("net", l.Addr, "host2"); err != nil {
		t.Fatal(err)
	}
	if got, err := m.ClearEndpointHost("net", l.Addr, "host1"); err != nil || got.Host != "host2" {
		t.Fatalf("host1's late clear: %+v, %v; want the endpoint left on host2", got, err)
	}
	if got, err := m.ClearEndpointHost("net", l.Addr, "host2"); err != nil || got.Host != "" {
		t.Fatalf("host2's clear: %+v, %v; want no endpoint", got, err)
	}
	if _, err := m.ClearEndpointHost("net", "10.200.0.99", "host1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("clear of an address not leased: %v", err)
	}
}

func TestSubnetArithmetic(t *testing.T) {
	for _, tc := range []struct{ subnet, next, broadcast string }{
		{"10.200.0.0/24", "10.200.1.0/24", "10.200.0.255"},
		{"10.60.0.8/29", "10.60.0.16/29", "10.60.0.15"},
		{"10.0.0.0/8", "11.0.0.0/8", "10.255.255.255"},
	} {
		p := netip.MustParsePrefix(tc.subnet)
		if got := nextPrefix(p).String(); got != tc.next {
			t.Errorf("next of %s: %s, want %s", tc.subnet, got, tc.next)
		}
		if got := broadcast(p).String(); got != tc.broadcast {
			t.Errorf("broadcast of %s: %s, want %s", tc.subnet, got, tc.broadcast)
		}
	}
}
