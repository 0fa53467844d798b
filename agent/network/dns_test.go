package network

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterctl/clusterctl/api"
)

func testRecords() *Records {
	nets := []api.Network{{Name: "shop_default", Leases: []api.Lease{
		{Addr: "10.200.0.9", Task: "t-db-1"},
		{Addr: "10.200.0.4", Task: "t-web-1"},
		{Addr: "10.200.0.3", Task: "t-web-2"},
		{Addr: "10.200.0.7", Task: "t-old", Host: "host1"},
		{Addr: "10.200.0.8", Task: "docker:host1:abc"},
	}}}
	tasks := []api.TaskStatus{
		{ID: "t-db-1", App: "shop", Service: "db", Task: "db.1", Desired: "running"},
		{ID: "t-web-1", App: "shop", Service: "web", Task: "web.1", Desired: "running"},
		{ID: "t-web-2", App: "shop", Service: "web", Task: "web.2", Desired: "running"},
		{ID: "t-old", App: "shop", Service: "web", Task: "web.3", Desired: "shutdown"},
	}
	r := &Records{}
	r.Set(BuildRecords(nets, tasks))
	return r
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestRecordsNameEveryTask(t *testing.T) {
	r := testRecords()
	for name, want := range map[string][]netip.Addr{
		"db":           addrs("10.200.0.9"),
		"DB.shop.":     addrs("10.200.0.9"),
		"web":          addrs("10.200.0.3", "10.200.0.4"),
		"shop-web-1":   addrs("10.200.0.4"),
		"shop-web-3":   nil, // shutting down
		"nosuch":       nil,
		"shop-db-1.":   addrs("10.200.0.9"),
		"web.otherapp": nil,
	} {
		if got := r.Lookup("shop_default", name); !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
	if got := r.Lookup("other", "db"); got != nil {
		t.Errorf("db on another network: %v", got)
	}
}

// A real server on loopback answers A queries, says NXDOMAIN for unknown
// names, and an empty answer for other types of a known name.
func TestDNSServerAnswers(t *testing.T) {
	d := &DNS{Records: testRecords(), Port: 15353}
	if err := d.Serve("shop_default", netip.MustParseAddr("127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Stop("") })
	if err := d.Serve("shop_default", netip.MustParseAddr("127.0.0.1")); err != nil {
		t.Fatalf("serve again: %v", err)
	}
	c := &dns.Client{Timeout: 2 * time.Second}
	for _, proto := range []string{"udp", "tcp"} {
		c.Net = proto
		q := new(dns.Msg).SetQuestion("web.", dns.TypeA)
		resp, _, err := c.Exchange(q, "127.0.0.1:15353")
		if err != nil || resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 2 {
			t.Fatalf("%s: web A: %v, %v", proto, resp, err)
		}
		if a := resp.Answer[0].(*dns.A).A.String(); a != "10.200.0.3" {
			t.Errorf("%s: first answer %s", proto, a)
		}
	}
	c.Net = "udp"
	resp, _, err := c.Exchange(new(dns.Msg).SetQuestion("nosuch.", dns.TypeA), "127.0.0.1:15353")
	if err != nil || resp.Rcode != dns.RcodeNameError {
		t.Errorf("unknown name: %v, %v", resp, err)
	}
	resp, _, err = c.Exchange(new(dns.Msg).SetQuestion("db.", dns.TypeAAAA), "127.0.0.1:15353")
	if err != nil || resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 0 {
		t.Errorf("AAAA of a known name: %v, %v", resp, err)
	}
	if err := d.Stop("shop_default"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := (&dns.Client{Net: "tcp", Timeout: 500 * time.Millisecond}).Exchange(new(dns.Msg).SetQuestion("db.", dns.TypeA), "127.0.0.1:15353"); err == nil {
		t.Error("the server still answers after Stop")
	}
}
