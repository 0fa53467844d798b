package server_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/contextfile"
	"github.com/clusterctl/clusterctl/enroll"
	"github.com/clusterctl/clusterctl/internal/testcreds"
	"github.com/clusterctl/clusterctl/pki"
	"github.com/clusterctl/clusterctl/server"
	"github.com/clusterctl/clusterctl/transport"
)

// join enrolls a node with a token, as `clusterctl agent` or `login` do.
func join(t *testing.T, m *manager, name, role, token string) (*transport.Creds, error) {
	t.Helper()
	creds, _, err := enroll.Ensure(ctxT(t, callTimeout), enroll.Node{Dir: t.TempDir(), Name: name, Servers: []string{m.addr()}, Token: token, Role: role})
	return creds, err
}

// assertStatusErr checks err is an answer of the given HTTP status that
// says want.
func assertStatusErr(t *testing.T, what string, err error, code int, want string) {
	t.Helper()
	var se *api.StatusError
	if !errors.As(err, &se) || se.Code != code || !strings.Contains(se.Message, want) {
		t.Errorf("%s: %v, want %d saying %q", what, err, code, want)
	}
}

// TestRefusedCallers calls a real manager, over TLS, as callers it must
// refuse: no certificate, another cluster's, wrong or rotated tokens, and
// a worker on endpoints that are not a worker's.
func TestRefusedCallers(t *testing.T) {
	t.Parallel()
	m, _ := runSingle(t, "m1")
	admin := m.client()
	ctx := ctxT(t, 30*time.Second)
	workerToken := token(t, m, pki.RoleWorker)

	t.Run("the bootstrap's context file", func(t *testing.T) {
		ctxFile, err := contextfile.Load(filepath.Join(m.cfg.DataDir, server.AdminDirName, "context.json"))
		if err != nil {
			t.Fatal(err)
		}
		c, err := ctxFile.Client()
		if err != nil {
			t.Fatal(err)
		}
		if st, err := c.Status(ctx); err != nil || st.Leader != "m1" {
			t.Errorf("status with the admin context: %+v, %v", st, err)
		}
	})

	t.Run("no certificate", func(t *testing.T) {
		resp, err := testcreds.NoCert(adminCreds(t, m).CAPEM(), callTimeout).Get(transport.URL(m.addr()) + "/v1/status")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("status without a certificate: %d, want 401", resp.StatusCode)
		}
	})

	t.Run("another cluster's certificate", func(t *testing.T) {
		// A CA claiming this very cluster ID: only the real CA's key signs.
		forged := testcreds.Forged(t, adminCreds(t, m).Identity().Cluster, pki.RoleClient, "mallory")
		_, err := api.NewClient([]string{m.addr()}, forged).Status(ctx)
		if !api.IsTLSRefusal(err) {
			t.Errorf("status with another CA's certificate: %v, want a TLS refusal", err)
		}
	})

	t.Run("wrong token", func(t *testing.T) {
		tok, err := pki.ParseToken(workerToken)
		if err != nil {
			t.Fatal(err)
		}
		tok.Secret = strings.Repeat("b", len(tok.Secret))
		_, err = join(t, m, "host9", pki.RoleWorker, tok.String())
		assertStatusErr(t, "a made-up secret", err, http.StatusForbidden, "worker join token is not valid")
		other, _ := pki.NewCA("elsewhere", time.Now())
		foreign, _ := pki.NewToken(other, pki.RoleWorker)
		if _, err := join(t, m, "host9", pki.RoleWorker, foreign.String()); err == nil || !strings.Contains(err.Error(), "not the one the join token pins") {
			t.Errorf("another cluster's token: %v, want the pin refused", err)
		}
	})

	worker, err := join(t, m, "host1", pki.RoleWorker, workerToken)
	if err != nil {
		t.Fatal(err)
	}
	if id := worker.Identity(); id.Role != pki.RoleWorker || id.Name != "host1" {
		t.Fatalf("worker's certificate names %+v", id)
	}
	wc := api.NewClient([]string{m.addr()}, worker)

	t.Run("a worker where workers may not go", func(t *testing.T) {
		err := wc.RegisterHost(ctx, api.RegisterHost{Name: "host1", Addr: "10.0.0.1", Docker: "unix:///x"})
		if err != nil {
			t.Fatalf("a worker registering its own host: %v", err)
		}
		_, err = wc.Join(ctx, api.JoinRequest{Name: "evil", RaftAddr: "127.0.0.1:1", APIAddr: "127.0.0.1:2"})
		assertStatusErr(t, "a worker joining Raft", err, http.StatusForbidden, "is not for a worker")
		_, err = wc.Token(ctx, pki.RoleManager)
		assertStatusErr(t, "a worker reading the manager token", err, http.StatusForbidden, "is not for a worker")
		_, err = wc.SetVar(ctx, "k", "v")
		assertStatusErr(t, "a worker setting a variable", err, http.StatusForbidden, "is not for a worker")
		err = wc.Heartbeat(ctx, "host2", api.Heartbeat{})
		assertStatusErr(t, "a worker beating for another host", err, http.StatusForbidden, "cannot act for host host2")
		_, err = join(t, m, "host1", pki.RoleWorker, workerToken)
		assertStatusErr(t, "a second host1 while host1 is up", err, http.StatusConflict, `host "host1" is up`)
	})

	t.Run("a worker claiming to be forwarded for a manager", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPut, transport.URL(m.addr())+"/v1/vars/k", strings.NewReader(`{"value":"v"}`))
		req.Header.Set("X-Clusterctl-Caller", "manager/m1")
		resp, err := worker.HTTPClient(callTimeout).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("status %d, want 403", resp.StatusCode)
		}
	})

	t.Run("rotated token", func(t *testing.T) {
		rotated, err := admin.RotateToken(ctx, pki.RoleWorker)
		if err != nil || rotated.Token == workerToken {
			t.Fatalf("rotate: %+v, %v", rotated, err)
		}
		_, err = join(t, m, "host2", pki.RoleWorker, workerToken)
		assertStatusErr(t, "the old worker token", err, http.StatusForbidden, "not valid")
		if _, err := join(t, m, "host2", pki.RoleWorker, rotated.Token); err != nil {
			t.Errorf("the new worker token: %v", err)
		}
		if _, err := wc.Status(ctx); err != nil {
			t.Errorf("a worker that joined before the rotation: %v", err)
		}
	})
}

// TestCertificatesExpireAndAreRenewed runs a cluster whose certificates
// last 3 s: a node that renews keeps working long past its first
// certificate's end, the manager's own included; one that does not is
// refused once its certificate has expired.
func TestCertificatesExpireAndAreRenewed(t *testing.T) {
	t.Parallel()
	cfg := managerConfig(t, "m1", testLogger(t))
	cfg.CertTTL = 3 * time.Second
	m := startManager(t, cfg)
	// The tokens first: the bootstrap's operator has a 3 s certificate too.
	manager, workerToken := token(t, m, pki.RoleManager), token(t, m, pki.RoleWorker)
	stale, err := join(t, m, "alice", pki.RoleClient, manager)
	if err != nil {
		t.Fatal(err)
	}
	worker, err := join(t, m, "host1", pki.RoleWorker, workerToken)
	if err != nil {
		t.Fatal(err)
	}
	first := worker.Leaf()
	wc := api.NewClient([]string{m.addr()}, worker)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go enroll.KeepRenewed(ctx, worker, enroll.Renewer(worker, wc), testLogger(t))

	// An operator that renews once, in its certificate's last third, as
	// the CLI does on use.
	bob, err := join(t, m, "bob", pki.RoleClient, manager)
	if err != nil {
		t.Fatal(err)
	}
	bobClient := api.NewClient([]string{m.addr()}, bob)
	eventually(t, 10*time.Second, "bob's certificate in its last third", func() error {
		if !pki.NeedsRenewal(bob.Leaf(), time.Now()) {
			return errors.New("not yet")
		}
		return nil
	})
	if err := enroll.Renew(ctxT(t, callTimeout), bob, bobClient); err != nil {
		t.Fatalf("an operator's renewal: %v", err)
	}
	if id := bob.Identity(); id.Role != pki.RoleClient || id.Name != "bob" {
		t.Errorf("renewed as %+v", id)
	}

	staleClient := api.NewClient([]string{m.addr()}, stale)
	// Refused on the connection it kept open (401), and by a new
	// handshake.
	eventually(t, 10*time.Second, "the unrenewed certificate refused", func() error {
		_, err := staleClient.Status(ctxT(t, callTimeout))
		var se *api.StatusError
		if errors.As(err, &se) && se.Code == http.StatusUnauthorized && strings.Contains(se.Message, "expired") {
			return nil
		}
		return fmt.Errorf("status with the operator's certificate: %v", err)
	})
	if _, err := api.NewClient([]string{m.addr()}, stale).Status(ctxT(t, callTimeout)); !api.IsTLSRefusal(err) {
		t.Errorf("a new connection with an expired certificate: %v, want a TLS refusal", err)
	}
	if time.Now().Before(stale.Leaf().NotAfter) {
		t.Errorf("refused before its end, %s", stale.Leaf().NotAfter)
	}
	// Past the end of the worker's and the manager's first certificates.
	if _, err := bobClient.Status(ctxT(t, callTimeout)); err != nil {
		t.Errorf("status with the operator's renewed certificate: %v", err)
	}
	if _, err := wc.Status(ctxT(t, callTimeout)); err != nil {
		t.Errorf("status with a renewed certificate after the first one's end: %v", err)
	}
	if now := worker.Leaf(); now.SerialNumber.Cmp(first.SerialNumber) == 0 || !now.NotAfter.After(first.NotAfter) {
		t.Errorf("the worker's certificate was not renewed: %s until %s", now.SerialNumber, now.NotAfter)
	}
}
