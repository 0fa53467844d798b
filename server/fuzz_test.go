package server

import (
	"bytes"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/internal/checks"
	"github.com/clusterctl/clusterctl/pki"
	"github.com/clusterctl/clusterctl/store"
	"github.com/clusterctl/clusterctl/store/mock"
)

// requestKinds are the API's request bodies, by the fuzzer's first byte.
var requestKinds = []func() any{
	func() any { return &api.Deploy{} }, func() any { return &api.Scale{} }, func() any { return &api.MoveRequest{} },
	func() any { return &api.VolumeCreate{} }, func() any { return &api.VolumeAttach{} }, func() any { return &api.VolumeTarget{} },
	func() any { return &api.NetworkCreate{} }, func() any { return &api.LeaseRequest{} }, func() any { return &api.RegisterHost{} },
	func() any { return &api.Heartbeat{} }, func() any { return &api.JoinRequest{} }, func() any { return &api.SetVars{} },
	func() any { return &api.CertificateRequest{} },
}

// FuzzAPIRequests decodes any body as each of the API's requests, the way
// every handler does (strictly: unknown fields, trailing data and
// oversized bodies refused), and runs a decoded move request through the
// task lookup its handler does: nothing panics and every refusal is one
// line. A certificate request goes through the checks its handler makes
// before anything is signed: its key request, addresses and token. Its
// seed corpus is in testdata/fuzz.
func FuzzAPIRequests(f *testing.F) {
	for _, seed := range []struct {
		kind uint8
		body string
	}{
		{0, `{"name":"shop","compose":"services: {}","spec":{}}`},
		{1, `{"service":"web","replicas":3}`},
		{2, `{"app":"shop","service":"db","slot":1,"to":"host2","dry_run":true}`},
		{2, `{"service":"db","slot":-1,"to":""}`},
		{2, `{"app":"shop","service":"web","timeout_ms":-5,"live":true}`},
		{3, `{"name":"../x","options":{"backend":"block","size":"1GiB"}}`},
		{6, `{"name":"back","subnet":"10.200.0.0/33"}`},
		{8, `{"name":"host1","addr":"10.99.0.11","cpus":-1}`},
		{9, `{"containers":[{"id":"x","labels":{"a":"b"}}],"usage":{"cpu_cores":1e308}}`},
		{11, `{"vars":[{"key":"","value":"x"}]}`},
		{2, `{"app":"shop"} {"app":"again"}`},
		{2, `{"app":"shop","unknown":1}`},
		{12, `{"token":"CCTL1-worker-0423f742846ecc67c1054d4b4e1c30c6-vo4cquxfwg3skppamswahk2clke7oxni","name":"host9","addrs":["10.99.0.19"],"csr":"LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0KLS0tLS1FTkQgQ0VSVElGSUNBVEUgUkVRVUVTVC0tLS0tCg=="}`},
		{12, `{"token":"CCTL1-admin--","addrs":["not-an-ip"],"csr":""}`},
	} {
		f.Add(seed.kind, []byte(seed.body))
	}
	st := storeWithApp(f)
	f.Fuzz(func(t *testing.T, kind uint8, body []byte) {
		v := requestKinds[int(kind)%len(requestKinds)]()
		r := httptest.NewRequest("POST", "/v1/x", bytes.NewReader(body))
		if err := decode(r, v); err != nil {
			checks.OneLine(t, "decode", err)
			return
		}
		switch req := v.(type) {
		case *api.MoveRequest:
			if _, err := findTask(st.View(), req.App, req.Service, req.Slot); err != nil {
				checks.OneLine(t, "find task", err)
			}
		case *api.CertificateRequest:
			_, csrErr := pki.ParseCSR(req.CSR)
			_, ipErr := parseIPs(req.Addrs)
			_, tokErr := pki.ParseToken(req.Token)
			for what, err := range map[string]error{"certificate request": csrErr, "addresses": ipErr, "token": tokErr} {
				if err != nil {
					checks.OneLine(t, what, err)
				}
			}
		}
	})
}

// storeWithApp is a store holding one app with a two-replica service.
func storeWithApp(f *testing.F) *store.Store {
	st := store.New(nil)
	apply := func(cmd []byte) {
		res := st.Apply(&raft.Log{Index: st.AppliedIndex() + 1, Type: raft.LogCommand, Data: cmd, AppendedAt: time.Now()})
		if err := store.ResponseError(res); err != nil {
			f.Fatal(err)
		}
	}
	apply(store.MustEncode(store.CmdPutApp, mock.App()))
	svc := mock.Service()
	apply(store.MustEncode(store.CmdPutService, svc))
	for slot := 1; slot <= 2; slot++ {
		t := mock.Task()
		t.ID, t.Slot = t.ID+string(rune('0'+slot)), slot
		apply(store.MustEncode(store.CmdPutTask, t))
	}
	return st
}
