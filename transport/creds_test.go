package transport_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/clusterctl/clusterctl/internal/testcreds"
	"github.com/clusterctl/clusterctl/pki"
	"github.com/clusterctl/clusterctl/transport"
	"github.com/hashicorp/raft"
)

// hello answers who called.
var hello = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	id, _ := transport.PeerOf(r.TLS)
	_, _ = io.WriteString(w, id.Role+"/"+id.Name)
})

func get(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// A port for some roles lets in only certificates of this cluster naming
// one of them, and a client checks the server the same way.
func TestPortsAdmitOnlyTheirRolesOfThisCluster(t *testing.T) {
	agent := testcreds.New(t, pki.RoleWorker, "host1")
	url := testcreds.Serve(t, agent, hello, pki.RoleManager, pki.RoleWorker)
	client := func(c *transport.Creds) *http.Client {
		return &http.Client{Transport: transport.RoundTripper(c.ClientTLS(pki.RoleWorker)), Timeout: 5 * time.Second}
	}
	if who, err := get(client(testcreds.New(t, pki.RoleManager, "m1")), url); err != nil || who != "manager/m1" {
		t.Fatalf("a manager: %q, %v", who, err)
	}
	for name, c := range map[string]*http.Client{
		"no certificate":          testcreds.NoCert(testcreds.CA(t).CertPEM, 5*time.Second),
		"an operator":             client(testcreds.New(t, pki.RoleClient, "alice")),
		"another cluster's agent": client(testcreds.Forged(t, testcreds.Cluster, pki.RoleWorker, "host1")),
	} {
		if who, err := get(c, url); err == nil {
			t.Errorf("%s got in: %q", name, who)
		}
	}
	// An agent port is not a manager's: a client for managers refuses it.
	if _, err := get(testcreds.New(t, pki.RoleClient, "alice").HTTPClient(5*time.Second), url); err == nil {
		t.Error("a client for managers accepted an agent's certificate")
	}
}

// The API lets a caller in without a certificate (the handler then
// refuses it, but for a join), never with a bad one.
func TestAPIPortTakesNoCertificateButNotABadOne(t *testing.T) {
	url := testcreds.Serve(t, testcreds.New(t, pki.RoleManager, "m1"), hello)
	if who, err := get(testcreds.NoCert(testcreds.CA(t).CertPEM, 5*time.Second), url); err != nil || who != "/" {
		t.Fatalf("without a certificate: %q, %v", who, err)
	}
	if _, err := get(testcreds.Forged(t, "elsewhere", pki.RoleClient, "alice").HTTPClient(5*time.Second), url); err == nil {
		t.Error("another cluster's operator got in")
	}
}

// A node joining with a token trusts only the CA the token pins.
func TestPinnedTLSTrustsOnlyTheTokensCA(t *testing.T) {
	url := testcreds.Serve(t, testcreds.New(t, pki.RoleManager, "m1"), hello)
	pinned := func(ca *pki.CA) *http.Client {
		tok, err := pki.NewToken(ca, pki.RoleWorker)
		if err != nil {
			t.Fatal(err)
		}
		return &http.Client{Transport: transport.RoundTripper(transport.PinnedTLS(tok)), Timeout: 5 * time.Second}
	}
	if _, err := get(pinned(testcreds.CA(t)), url); err != nil {
		t.Fatalf("the pinned CA: %v", err)
	}
	other, _ := pki.NewCA(testcreds.Cluster, time.Now())
	if _, err := get(pinned(other), url); err == nil || !strings.Contains(err.Error(), "not the one the join token pins") {
		t.Errorf("another CA: %v, want a refusal naming the pin", err)
	}
}

// A renewed certificate is the one the next connections show, and is kept
// in the credentials directory.
func TestRenewReplacesTheCertificate(t *testing.T) {
	ca := testcreds.CA(t)
	dir := t.TempDir()
	first, _ := ca.Issue("host1", pki.RoleWorker, nil, time.Now())
	creds, err := transport.SaveCreds(dir, ca.CertPEM, first.CertPEM, first.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	renewed, _ := ca.Issue("host1", pki.RoleWorker, nil, time.Now())
	if err := creds.Renew(renewed.CertPEM, renewed.KeyPEM); err != nil {
		t.Fatal(err)
	}
	if creds.Leaf().SerialNumber.Cmp(renewed.Cert.SerialNumber) != 0 {
		t.Error("the renewed certificate is not the current one")
	}
	again, err := transport.LoadCreds(dir)
	if err != nil || again.Leaf().SerialNumber.Cmp(renewed.Cert.SerialNumber) != 0 {
		t.Errorf("reloaded after the renewal: %v", err)
	}
	someoneElse, _ := ca.Issue("host2", pki.RoleWorker, nil, time.Now())
	if err := creds.Renew(someoneElse.CertPEM, someoneElse.KeyPEM); err == nil {
		t.Error("renewed with another node's certificate")
	}
}

// Raft's transport connects only managers of this cluster.
func TestRaftTransportRefusesNonManagers(t *testing.T) {
	addr := freeAddr(t)
	m1, err := testcreds.New(t, pki.RoleManager, "m1").RaftTransport(addr, addr, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer m1.Close()
	go func() {
		for rpc := range m1.Consumer() {
			rpc.Respond(&raft.AppendEntriesResponse{Success: true}, nil)
		}
	}()
	send := func(role string) error {
		from := freeAddr(t)
		trans, err := testcreds.New(t, role, "peer").RaftTransport(from, from, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		defer trans.Close()
		var resp raft.AppendEntriesResponse
		return trans.AppendEntries("m1", raft.ServerAddress(addr), &raft.AppendEntriesRequest{}, &resp)
	}
	if err := send(pki.RoleManager); err != nil {
		t.Fatalf("a manager's append entries: %v", err)
	}
	for _, role := range []string{pki.RoleWorker, pki.RoleClient} {
		if err := send(role); err == nil {
			t.Errorf("a %s's append entries got through", role)
		}
	}
}

// freeAddr is a loopback address with a port nothing listens on.
func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
