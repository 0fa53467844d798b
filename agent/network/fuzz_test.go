package network

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	ipamplugin "github.com/docker/go-plugins-helpers/ipam"
	netplugin "github.com/docker/go-plugins-helpers/network"

	"github.com/clusterctl/clusterctl/networks"
	"github.com/clusterctl/clusterctl/store"
)

// pluginPaths are the plugin calls the fuzzer sends, by its first byte.
var pluginPaths = []string{
	"/IpamDriver.RequestPool", "/IpamDriver.RequestAddress", "/IpamDriver.ReleaseAddress", "/IpamDriver.ReleasePool",
	"/NetworkDriver.CreateNetwork", "/NetworkDriver.CreateEndpoint", "/NetworkDriver.Join", "/NetworkDriver.Leave",
	"/NetworkDriver.DeleteEndpoint", "/NetworkDriver.DeleteNetwork", "/NetworkDriver.EndpointOperInfo",
}

// FuzzPluginRequests sends Docker's IPAM and network plugin calls, with
// any body, to clusteripam and clusternet served over HTTP as dockerd
// reaches them: nothing panics, every refusal is an error of one line,
// and no address is ever leased to two tasks. Its seed corpus is in
// testdata/fuzz.
func FuzzPluginRequests(f *testing.F) {
	ep := strings.Repeat("e", 64)
	for _, seed := range []struct {
		op   uint8
		body string
	}{
		{0, `{"AddressSpace":"","Pool":"10.200.3.0/24"}`},
		{0, `{"Options":{"io.clusterctl.network":"fresh"}}`},
		{1, `{"PoolID":"shop_default","Address":"10.200.3.9","Options":{"io.clusterctl.task":"shop.db.1.x"}}`},
		{1, `{"PoolID":"shop_default","Address":"10.200.3.1"}`},
		{2, `{"PoolID":"shop_default","Address":"10.200.3.9"}`},
		{4, `{"NetworkID":"n1","IPv4Data":[{"Pool":"10.200.3.0/24","Gateway":"10.200.3.1/24"}]}`},
		{5, `{"NetworkID":"n1","EndpointID":"` + ep + `","Interface":{"Address":"10.200.3.9/24"},"Options":{"io.clusterctl.task":"shop.db.1.x"}}`},
		{6, `{"NetworkID":"n1","EndpointID":"` + ep + `","SandboxKey":"/var/run/docker/netns/x"}`},
		{7, `{"NetworkID":"n1","EndpointID":"` + ep + `"}`},
		{8, `{"NetworkID":"n1","EndpointID":"../../etc"}`},
		{9, `{"NetworkID":"n1"}`},
		{5, `{"NetworkID":"n1","EndpointID":"x","Interface":{"Address":"not an address","MacAddress":"zz"}}`},
		{1, `[]`},
	} {
		f.Add(seed.op, seed.body)
	}
	urls, st := servePlugins(f)
	f.Fuzz(func(t *testing.T, op uint8, body string) {
		path := pluginPaths[int(op)%len(pluginPaths)]
		url := urls["/NetworkDriver."]
		if strings.HasPrefix(path, "/IpamDriver.") {
			url = urls["/IpamDriver."]
		}
		resp, err := http.Post(url+path, "application/vnd.docker.plugins.v1.2+json", strings.NewReader(body))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			// Our refusals are {"Err": "..."}; a body that is not the
			// call's JSON is refused by the plugin SDK in plain text.
			var answer struct{ Err string }
			msg := strings.TrimSuffix(string(raw), "\n")
			if json.Unmarshal(raw, &answer) == nil {
				msg = answer.Err
			}
			if msg == "" || strings.Contains(msg, "\n") {
				t.Errorf("%s %q: answered %d %q: want an error of one line", path, body, resp.StatusCode, raw)
			}
		}
		owners := map[string]string{}
		for _, l := range st.View().Leases("") {
			key := l.Network + "/" + l.Addr
			if other, ok := owners[key]; ok && other != l.TaskID {
				t.Fatalf("%s leased to %s and %s", key, other, l.TaskID)
			}
			owners[key] = l.TaskID
		}
	})
}

// servePlugins serves both plugins over HTTP on a cluster of two hosts
// with one network, and returns their addresses (by path prefix) and the
// store.
func servePlugins(f *testing.F) (map[string]string, *store.Store) {
	st := store.New(nil)
	apply := func(b []byte) (uint64, error) {
		l := rawLog(st, b)
		return l.Index, store.ResponseError(st.Apply(l))
	}
	c := &managers{st: st, m: networks.New(st, apply, nil)}
	for name, addr := range map[string]string{"host1": "10.99.0.11", "host2": "10.99.0.12"} {
		if _, err := apply(store.MustEncode(store.CmdRegisterHost, store.Host{Name: name, Addr: addr})); err != nil {
			f.Fatal(err)
		}
	}
	if _, err := c.m.Create(networks.Request{Name: "shop_default", Subnet: "10.200.3.0/24"}); err != nil {
		f.Fatal(err)
	}
	state, err := LoadState(filepath.Join(f.TempDir(), "networks.json"))
	if err != nil {
		f.Fatal(err)
	}
	driver := &Driver{Host: "host1", Cluster: driverManagers{c}, Plane: newFakePlane(), State: state, Log: slog.New(slog.DiscardHandler)}
	ipam := &IPAM{Host: "host1", Cluster: c}
	urls := map[string]string{}
	for prefix, h := range map[string]interface{ Serve(net.Listener) error }{
		"/IpamDriver.": ipamplugin.NewHandler(ipam), "/NetworkDriver.": netplugin.NewHandler(driver),
	} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			f.Fatal(err)
		}
		f.Cleanup(func() { l.Close() })
		go func() { _ = h.Serve(l) }()
		urls[prefix] = "http://" + l.Addr().String()
	}
	return urls, st
}
