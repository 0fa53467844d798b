package network

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterctl/clusterctl/api"
)

// Service discovery across hosts. Every agent answers DNS on the gateway
// address of each cluster network it has (the gateway is on the network's
// bridge on every host) with the addresses the store leases to tasks:
//
//	SERVICE            every running task of the service on that network
//	SERVICE.APP        the same, named with its Compose project
//	APP-SERVICE-SLOT   one task, as Compose names its container
//
// Containers are pointed at it with --dns GATEWAY (the placement code does
// that for tasks on cluster networks): Docker's embedded DNS answers the
// names of containers on this host, and forwards the rest to us. After a
// move a name still resolves, to the same address: the lease follows the
// task.

// dnsTTL is short: a name moves with its task, and its address stays, so
// a stale answer is right anyway; a scaled-down service's names go soon.
const dnsTTL = 5

// Records maps names to addresses, per cluster network.
type Records struct {
	mu    sync.RWMutex
	names map[string]map[string][]netip.Addr // network -> lower-case name -> addresses
}

// BuildRecords computes the names of every network's leased addresses
// from the store's networks and tasks.
func BuildRecords(nets []api.Network, tasks []api.TaskStatus) map[string]map[string][]netip.Addr {
	byID := map[string]api.TaskStatus{}
	for _, t := range tasks {
		byID[t.ID] = t
	}
	out := map[string]map[string][]netip.Addr{}
	for _, n := range nets {
		names := map[string][]netip.Addr{}
		for _, l := range n.Leases {
			t, ok := byID[l.Task]
			a, err := netip.ParseAddr(l.Addr)
			if !ok || err != nil || t.Desired == "shutdown" {
				continue
			}
			slot := t.Task[strings.LastIndexByte(t.Task, '.')+1:]
			for _, name := range []string{t.Service, t.Service + "." + t.App, t.App + "-" + t.Service + "-" + slot} {
				key := strings.ToLower(name)
				names[key] = append(names[key], a)
			}
		}
		for k := range names {
			slices.SortFunc(names[k], func(x, y netip.Addr) int { return x.Compare(y) })
		}
		out[n.Name] = names
	}
	return out
}

// Set replaces the records.
func (r *Records) Set(names map[string]map[string][]netip.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.names = names
}

// Lookup returns a name's addresses on a network.
func (r *Records) Lookup(network, name string) []netip.Addr {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.names[network][strings.ToLower(strings.TrimSuffix(name, "."))]
}

// answer builds the reply to a query on network: A records for names it
// knows, an empty answer for other types of a known name, NXDOMAIN else.
func (r *Records) answer(network string, q *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	if len(q.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		return m
	}
	qs := q.Question[0]
	addrs := r.Lookup(network, qs.Name)
	if len(addrs) == 0 {
		m.Rcode = dns.RcodeNameError
		return m
	}
	if qs.Qtype != dns.TypeA && qs.Qtype != dns.TypeANY {
		return m // the name exists, with no record of that type
	}
	for _, a := range addrs {
		m.Answer = append(m.Answer, &dns.A{
			Hdr: dns.RR_Header{Name: qs.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: dnsTTL},
			A:   net.IP(a.AsSlice()),
		})
	}
	return m
}

// DNS serves the records on the gateway address of each cluster network
// this host has, over UDP and TCP.
type DNS struct {
	Records *Records
	Port    int // 53; tests use another
	Log     *slog.Logger

	mu      sync.Mutex
	servers map[string][]*dns.Server // network -> its UDP and TCP servers
}

// Serve makes sure a server answers for network on addr; a network whose
// server runs already is left alone.
func (d *DNS) Serve(network string, addr netip.Addr) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.servers == nil {
		d.servers = map[string][]*dns.Server{}
	}
	if _, ok := d.servers[network]; ok {
		return nil
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		_ = w.WriteMsg(d.Records.answer(network, q))
	})
	hostPort := net.JoinHostPort(addr.String(), strconv.Itoa(d.Port))
	var started []*dns.Server
	for _, proto := range []string{"udp", "tcp"} {
		srv := &dns.Server{Addr: hostPort, Net: proto, Handler: h, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second}
		ready := make(chan error, 1)
		srv.NotifyStartedFunc = func() { ready <- nil }
		go func() {
			if err := srv.ListenAndServe(); err != nil {
				ready <- err
			}
		}()
		if err := <-ready; err != nil {
			for _, s := range started {
				_ = s.Shutdown()
			}
			return fmt.Errorf("dns for %s on %s/%s: %w", network, hostPort, proto, err)
		}
		started = append(started, srv)
	}
	d.servers[network] = started
	return nil
}

// Stop stops network's servers (all with ""), e.g. when its devices go.
func (d *DNS) Stop(network string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for name, srvs := range d.servers {
		if network != "" && name != network {
			continue
		}
		for _, s := range srvs {
			errs = append(errs, s.Shutdown())
		}
		delete(d.servers, name)
	}
	return errors.Join(errs...)
}
