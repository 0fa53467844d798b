package store_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/clusterctl/clusterctl/store"
	"github.com/clusterctl/clusterctl/store/mock"
)

func TestInitCluster(t *testing.T) {
	s := store.New(nil)
	mustRefuse(t, s, store.CmdInitCluster, store.InitCluster{}, store.ErrInvalid)
	mustApply(t, s, store.CmdInitCluster, store.InitCluster{ClusterID: "one"})
	if got := s.View().ClusterID(); got != "one" {
		t.Fatalf("cluster id %q, want one", got)
	}
	mustApply(t, s, store.CmdInitCluster, store.InitCluster{ClusterID: "one"}) // same ID: no-op
	mustRefuse(t, s, store.CmdInitCluster, store.InitCluster{ClusterID: "two"}, store.ErrConflict)
	if got := s.View().ClusterID(); got != "one" {
		t.Fatalf("cluster id %q after refused init, want one", got)
	}
}

func TestRegisterServer(t *testing.T) {
	s := store.New(nil)
	srv := mock.Server()
	mustApply(t, s, store.CmdRegisterServer, srv)
	srv.APIAddr = "http://10.99.0.11:7500"
	mustApply(t, s, store.CmdRegisterServer, srv) // same raft address: upsert
	got, ok := s.View().Server(srv.Name)
	if !ok || got != srv {
		t.Fatalf("server %+v (found %v), want %+v", got, ok, srv)
	}

	clash := srv
	clash.RaftAddr = "10.99.0.12:7401"
	err := mustRefuse(t, s, store.CmdRegisterServer, clash, store.ErrConflict)
	if want := "server name server1 already used by 10.99.0.11:7401"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}
	mustRefuse(t, s, store.CmdRegisterServer, store.Server{Name: "x"}, store.ErrInvalid)

	mustApply(t, s, store.CmdRemoveServer, store.NameRef{Name: srv.Name})
	if servers := s.View().Servers(); len(servers) != 0 {
		t.Fatalf("servers after remove: %+v", servers)
	}
	mustApply(t, s, store.CmdRemoveServer, store.NameRef{Name: "missing"})
}

func TestRegisterHost(t *testing.T) {
	s := store.New(nil)
	h := mock.Host()
	h.State = store.HostDown
	h.Registered = time.Time{}
	h.LastHeartbeat = time.Time{}
	index := mustApply(t, s, store.CmdRegisterHost, h)

	got, ok := s.View().Host(h.Name)
	if !ok {
		t.Fatal("host not found after register")
	}
	if got.State != store.HostUp || got.ModifyIndex != index {
		t.Fatalf("state %q index %d, want up at %d", got.State, got.ModifyIndex, index)
	}
	if !got.Registered.Equal(appendedAt) || !got.LastHeartbeat.Equal(appendedAt) {
		t.Fatalf("registered %v heartbeat %v, want the entry time %v", got.Registered, got.LastHeartbeat, appendedAt)
	}

	again := mock.Host()
	again.Registered = appendedAt.Add(time.Hour)
	again.CPUs = 16
	index = mustApply(t, s, store.CmdRegisterHost, again)
	got, _ = s.View().Host(h.Name)
	if !got.Registered.Equal(appendedAt) {
		t.Fatalf("re-register changed Registered to %v, want %v kept", got.Registered, appendedAt)
	}
	if got.CPUs != 16 || got.ModifyIndex != index {
		t.Fatalf("re-register: cpus %d index %d, want 16 at %d", got.CPUs, got.ModifyIndex, index)
	}
	mustRefuse(t, s, store.CmdRegisterHost, store.Host{}, store.ErrInvalid)
}

func TestHostHeartbeat(t *testing.T) {
	s := store.New(nil)
	mustRefuse(t, s, store.CmdHostHeartbeat, store.HostHeartbeat{Name: "ghost", At: mock.Now}, store.ErrNotFound)

	h := mock.Host()
	mustApply(t, s, store.CmdRegisterHost, h)
	mustApply(t, s, store.CmdSetHostState, store.SetHostState{Names: []string{h.Name}, State: store.HostDown})

	at := mock.Now.Add(time.Minute)
	c := mock.Container()
	c.ID, c.State = "new", "exited"
	index := mustApply(t, s, store.CmdHostHeartbeat, store.HostHeartbeat{
		Name: h.Name, At: at, Containers: []store.Container{c}, ContainersChanged: true,
	})
	got, _ := s.View().Host(h.Name)
	if got.State != store.HostUp || !got.LastHeartbeat.Equal(at) || got.ModifyIndex != index {
		t.Fatalf("after heartbeat: state %q at %v index %d, want up at %v index %d",
			got.State, got.LastHeartbeat, got.ModifyIndex, at, index)
	}
	if !reflect.DeepEqual(got.Containers, []store.Container{c}) {
		t.Fatalf("containers %+v, want %+v", got.Containers, c)
	}

	// Containers not flagged as changed are ignored.
	later := at.Add(time.Minute)
	mustApply(t, s, store.CmdHostHeartbeat, store.HostHeartbeat{Name: h.Name, At: later, Containers: nil})
	got, _ = s.View().Host(h.Name)
	if !reflect.DeepEqual(got.Containers, []store.Container{c}) || !got.LastHeartbeat.Equal(later) {
		t.Fatalf("unflagged heartbeat: containers %+v at %v, want %+v at %v", got.Containers, got.LastHeartbeat, c, later)
	}
	if !got.Registered.Equal(h.Registered) {
		t.Fatalf("heartbeat changed Registered to %v", got.Registered)
	}

	// Usage is kept as sent, without bumping the index.
	before := got.ModifyIndex
	usage := &store.HostUsage{CPUCores: 0.25, MemoryBytes: 1 << 30, At: later}
	mustApply(t, s, store.CmdHostHeartbeat, store.HostHeartbeat{Name: h.Name, At: later, Usage: usage})
	got, _ = s.View().Host(h.Name)
	if got.Usage == nil || *got.Usage != *usage || got.ModifyIndex != before {
		t.Fatalf("usage %+v index %d, want %+v index %d", got.Usage, got.ModifyIndex, usage, before)
	}
}

func TestDrainSurvivesRegistration(t *testing.T) {
	s := store.New(nil)
	h := mock.Host()
	mustApply(t, s, store.CmdRegisterHost, h)
	mustApply(t, s, store.CmdSetHostDrain, store.SetHostDrain{Name: h.Name, Draining: true})
	mustApply(t, s, store.CmdRegisterHost, h) // an agent restart
	if got, _ := s.View().Host(h.Name); !got.Draining {
		t.Fatal("a registration ended the drain")
	}
	mustApply(t, s, store.CmdSetHostDrain, store.SetHostDrain{Name: h.Name, Draining: false})
	if got, _ := s.View().Host(h.Name); got.Draining {
		t.Fatal("activate did not end the drain")
	}
	mustRefuse(t, s, store.CmdSetHostDrain, store.SetHostDrain{Name: "ghost", Draining: true}, store.ErrNotFound)
}

func TestOneActiveMovePerTask(t *testing.T) {
	s := store.New(nil)
	m := store.Move{ID: "m1", TaskID: "t1", From: "host1", To: "host2", State: store.MoveRunning}
	mustApply(t, s, store.CmdPutMove, m)
	second := m
	second.ID = "m2"
	mustRefuse(t, s, store.CmdPutMove, second, store.ErrConflict)
	m.State = store.MoveDone
	mustApply(t, s, store.CmdPutMove, m)
	mustApply(t, s, store.CmdPutMove, second)
}

func TestSetHostState(t *testing.T) {
	s := store.New(nil)
	for _, h := range mock.Hosts(3) {
		mustApply(t, s, store.CmdRegisterHost, h)
	}
	mustRefuse(t, s, store.CmdSetHostState,
		store.SetHostState{Names: []string{"host1", "ghost"}, State: store.HostDown}, store.ErrNotFound)
	mustRefuse(t, s, store.CmdSetHostState,
		store.SetHostState{Names: []string{"host1"}, State: "sideways"}, store.ErrInvalid)

	index := mustApply(t, s, store.CmdSetHostState,
		store.SetHostState{Names: []string{"host1", "host3"}, State: store.HostDown})
	want := map[string]store.HostState{"host1": store.HostDown, "host2": store.HostUp, "host3": store.HostDown}
	for _, h := range s.View().Hosts() {
		if h.State != want[h.Name] {
			t.Errorf("%s: state %q, want %q", h.Name, h.State, want[h.Name])
		}
		if h.State == store.HostDown && h.ModifyIndex != index {
			t.Errorf("%s: modify index %d, want %d", h.Name, h.ModifyIndex, index)
		}
	}
}

func TestDeleteHost(t *testing.T) {
	s := store.New(nil)
	for _, h := range mock.Hosts(2) {
		mustApply(t, s, store.CmdRegisterHost, h)
	}
	mustApply(t, s, store.CmdDeleteHost, store.NameRef{Name: "host1"})
	hosts := s.View().Hosts()
	if len(hosts) != 1 || hosts[0].Name != "host2" {
		t.Fatalf("hosts after delete: %+v", hosts)
	}
}

func TestVars(t *testing.T) {
	s := store.New(nil)
	for _, kv := range [][2]string{{"b/2", "two"}, {"a/1", "one"}, {"b/1", "uno"}, {"c", "three"}} {
		mustApply(t, s, store.CmdSetVar, store.Var{Key: kv[0], Value: kv[1]})
	}
	index := mustApply(t, s, store.CmdSetVar, store.Var{Key: "b/2", Value: "dos"})
	v, ok := s.View().Var("b/2")
	if !ok || v.Value != "dos" || v.ModifyIndex != index {
		t.Fatalf("var b/2 = %+v (found %v), want dos at %d", v, ok, index)
	}
	if got := keys(s.View().Vars("b/")); got != "b/1,b/2" {
		t.Fatalf("vars b/: %s", got)
	}
	if got := keys(s.View().Vars("")); got != "a/1,b/1,b/2,c" {
		t.Fatalf("all vars: %s", got)
	}
	mustRefuse(t, s, store.CmdSetVar, store.Var{Value: "x"}, store.ErrInvalid)
	mustApply(t, s, store.CmdDeleteVar, store.NameRef{Name: "b/1"})
	if _, ok := s.View().Var("b/1"); ok {
		t.Fatal("b/1 still set after delete")
	}
	mustApply(t, s, store.CmdDeleteVar, store.NameRef{Name: "b/1"}) // missing: no-op
}

// keys joins the keys of vars.
func keys(vars []store.Var) string {
	ks := make([]string, len(vars))
	for i, v := range vars {
		ks[i] = v.Key
	}
	return strings.Join(ks, ",")
}

// kindCase puts a mock object, reads it back and deletes it by key.
type kindCase struct {
	name      string
	put, del  store.CommandType
	obj       any // with ModifyIndex 0
	key       string
	read      func(v *store.View) (any, bool)
	withIndex func(index uint64) any // obj as stored at index
}

func kindCases() []kindCase {
	app, svc, task, vol := mock.App(), mock.Service(), mock.Task(), mock.Volume()
	nw, lease, mv := mock.Network(), mock.Lease(), mock.Move()
	return []kindCase{
		{"app", store.CmdPutApp, store.CmdDeleteApp, app, app.Name,
			func(v *store.View) (any, bool) { return v.App(app.Name) },
			func(i uint64) any { o := app; o.ModifyIndex = i; return o }},
		{"service", store.CmdPutService, store.CmdDeleteService, svc, "shop/db",
			func(v *store.View) (any, bool) { return v.Service("shop", "db") },
			func(i uint64) any { o := svc; o.ModifyIndex = i; return o }},
		{"task", store.CmdPutTask, store.CmdDeleteTask, task, task.ID,
			func(v *store.View) (any, bool) { return v.Task(task.ID) },
			func(i uint64) any { o := task; o.ModifyIndex = i; return o }},
		{"volume", store.CmdPutVolume, store.CmdDeleteVolume, vol, vol.Name,
			func(v *store.View) (any, bool) { return v.Volume(vol.Name) },
			func(i uint64) any { o := vol; o.ModifyIndex = i; return o }},
		{"network", store.CmdPutNetwork, store.CmdDeleteNetwork, nw, nw.Name,
			func(v *store.View) (any, bool) { return v.Network(nw.Name) },
			func(i uint64) any { o := nw; o.ModifyIndex = i; return o }},
		{"lease", store.CmdPutLease, store.CmdDeleteLease, lease, "shop_default/10.200.0.2",
			func(v *store.View) (any, bool) { return v.Lease(lease.Network, lease.Addr) },
			func(i uint64) any { o := lease; o.ModifyIndex = i; return o }},
		{"move", store.CmdPutMove, store.CmdDeleteMove, mv, mv.ID,
			func(v *store.View) (any, bool) { return v.Move(mv.ID) },
			func(i uint64) any { o := mv; o.ModifyIndex = i; return o }},
	}
}

func TestPutAndDelete(t *testing.T) {
	for _, tc := range kindCases() {
		t.Run(tc.name, func(t *testing.T) {
			s := store.New(nil)
			index := mustApply(t, s, tc.put, tc.obj)
			got, ok := tc.read(s.View())
			if !ok || !reflect.DeepEqual(got, tc.withIndex(index)) {
				t.Fatalf("read back %+v (found %v), want %+v", got, ok, tc.withIndex(index))
			}
			mustApply(t, s, tc.del, store.NameRef{Name: tc.key})
			if got, ok := tc.read(s.View()); ok {
				t.Fatalf("still there after delete: %+v", got)
			}
			mustApply(t, s, tc.del, store.NameRef{Name: tc.key}) // missing: no-op
		})
	}
}

func TestListsByParent(t *testing.T) {
	s := store.New(nil)
	for i, app := range []string{"shop", "blog", "shop"} {
		task := mock.Task()
		task.App, task.ID, task.Host = app, fmt.Sprintf("%s-%d", app, i), fmt.Sprintf("host%d", i%2+1)
		mustApply(t, s, store.CmdPutTask, task)
		svc := mock.Service()
		svc.App, svc.Name = app, fmt.Sprintf("svc%d", i)
		mustApply(t, s, store.CmdPutService, svc)
		lease := mock.Lease()
		lease.Network, lease.Addr = app+"_net", fmt.Sprintf("10.0.0.%d", i)
		mustApply(t, s, store.CmdPutLease, lease)
	}
	v := s.View()
	if n := len(v.Tasks("shop")); n != 2 {
		t.Errorf("shop tasks: %d, want 2", n)
	}
	if n := len(v.Tasks("")); n != 3 {
		t.Errorf("all tasks: %d, want 3", n)
	}
	if n := len(v.Services("blog")); n != 1 {
		t.Errorf("blog services: %d, want 1", n)
	}
	if n := len(v.Leases("shop_net")); n != 2 {
		t.Errorf("shop_net leases: %d, want 2", n)
	}
}

func TestPutRefusals(t *testing.T) {
	s := store.New(nil)
	vol := mock.Volume()
	vol.Generation = 3
	mustApply(t, s, store.CmdPutVolume, vol)
	stale := vol
	stale.Generation, stale.OwnerHost = 2, "host9"
	mustRefuse(t, s, store.CmdPutVolume, stale, store.ErrConflict)

	mustApply(t, s, store.CmdPutNetwork, mock.Network())
	other := mock.Network()
	other.Name = "other"
	mustRefuse(t, s, store.CmdPutNetwork, other, store.ErrConflict) // same VNI
	other.VNI = mock.Network().VNI + 1
	other.Subnet = "10.200.0.128/25" // inside the mock's 10.200.0.0/24
	mustRefuse(t, s, store.CmdPutNetwork, other, store.ErrConflict)
	other.Subnet = "10.200.300.0/24"
	mustRefuse(t, s, store.CmdPutNetwork, other, store.ErrInvalid)
	other.Subnet = "10.200.1.0/24"
	mustApply(t, s, store.CmdPutNetwork, other)

	mustApply(t, s, store.CmdPutLease, mock.Lease())
	taken := mock.Lease()
	taken.TaskID = "other-task"
	mustRefuse(t, s, store.CmdPutLease, taken, store.ErrConflict)

	badApp := mock.App()
	badApp.Name = "a/b"
	mustRefuse(t, s, store.CmdPutApp, badApp, store.ErrInvalid)
	orphan := mock.Task()
	orphan.App = ""
	mustRefuse(t, s, store.CmdPutTask, orphan, store.ErrInvalid)
	mustRefuse(t, s, store.CmdDeleteService, store.NameRef{Name: "no-slash"}, store.ErrInvalid)
}

func TestBatch(t *testing.T) {
	s := store.New(nil)
	good, err := store.EncodeBatch(
		encode(t, store.CmdRegisterHost, mock.Host()),
		encode(t, store.CmdPutApp, mock.App()),
		encode(t, store.CmdPutTask, mock.Task()),
	)
	if err != nil {
		t.Fatal(err)
	}
	res := applyData(t, s, good)
	if res.Err != nil {
		t.Fatalf("good batch refused: %v", res.Err)
	}
	task, ok := s.View().Task(mock.Task().ID)
	if _, hostOK := s.View().Host("host1"); !ok || !hostOK || task.ModifyIndex != res.Index {
		t.Fatalf("batch not applied at %d: task %+v", res.Index, task)
	}

	before := dump(s.View())
	bad, err := store.EncodeBatch(
		encode(t, store.CmdSetVar, store.Var{Key: "k", Value: "v"}),
		encode(t, store.CmdHostHeartbeat, store.HostHeartbeat{Name: "ghost"}),
		encode(t, store.CmdDeleteTask, store.NameRef{Name: mock.Task().ID}),
	)
	if err != nil {
		t.Fatal(err)
	}
	res = applyData(t, s, bad)
	if !errors.Is(res.Err, store.ErrNotFound) || !strings.Contains(res.Err.Error(), "batch command 1") {
		t.Fatalf("bad batch: err %v, want not found in command 1", res.Err)
	}
	assertSameState(t, before, dump(s.View()))

	nested, _ := store.EncodeBatch(good)
	if res := applyData(t, s, nested); !errors.Is(res.Err, store.ErrInvalid) {
		t.Fatalf("nested batch: err %v, want invalid", res.Err)
	}
}

// applyPanic applies data and returns the panic message ("" if none).
func applyPanic(s *store.Store, index uint64, data []byte) (msg string) {
	defer func() {
		if r := recover(); r != nil {
			msg = fmt.Sprint(r)
		}
	}()
	s.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: data})
	return ""
}

func TestUnknownCommandPanics(t *testing.T) {
	s := store.New(nil)
	msg := applyPanic(s, 7, append([]byte{200}, `{}`...))
	if !strings.Contains(msg, "unknown command type 200") || !strings.Contains(msg, "entry 7") {
		t.Fatalf("panic %q does not name the type and index", msg)
	}

	msg = applyPanic(s, 8, append([]byte{byte(store.CmdRegisterHost)}, `{"name": 12`...))
	if !strings.Contains(msg, "register-host") || !strings.Contains(msg, "entry 8") {
		t.Fatalf("panic %q for an undecodable payload does not name the type and index", msg)
	}

	inner := append([]byte{222}, `{}`...)
	batch, _ := store.EncodeBatch(inner)
	if msg := applyPanic(s, 9, batch); !strings.Contains(msg, "unknown command type 222") {
		t.Fatalf("panic %q for a batch holding an unknown type", msg)
	}

	if msg := applyPanic(s, 10, nil); msg == "" {
		t.Fatal("empty entry did not panic")
	}

	// The write transaction was released: the store still applies.
	mustApply(t, s, store.CmdSetVar, store.Var{Key: "k", Value: "v"})
	if s.AppliedIndex() != 1 {
		t.Fatalf("applied index %d, want 1 (panicked entries are not applied)", s.AppliedIndex())
	}
}

func TestNonCommandEntriesIgnored(t *testing.T) {
	s := store.New(nil)
	for _, typ := range []raft.LogType{raft.LogNoop, raft.LogConfiguration, raft.LogBarrier} {
		if resp := s.Apply(&raft.Log{Index: 5, Type: typ, Data: []byte{200}}); resp != nil {
			t.Fatalf("%v entry: response %v, want nil", typ, resp)
		}
	}
	if s.AppliedIndex() != 0 || s.View().Index() != 0 {
		t.Fatalf("index moved by non-command entries: %d", s.AppliedIndex())
	}
}

func TestViewReturnsCopies(t *testing.T) {
	s := store.New(nil)
	mustApply(t, s, store.CmdRegisterHost, mock.Host())
	mustApply(t, s, store.CmdPutTask, mock.Task())
	mustApply(t, s, store.CmdPutService, mock.Service())

	h, _ := s.View().Host("host1")
	h.Labels["zone"] = "mutated"
	h.Containers[0].Labels["x"] = "y"
	task, _ := s.View().Task(mock.Task().ID)
	task.IPs[0] = "mutated"
	svc := s.View().Services("shop")[0]
	svc.Spec[0] = '['

	if h, _ := s.View().Host("host1"); h.Labels["zone"] != "lab" || len(h.Containers[0].Labels) != 1 {
		t.Fatalf("host mutated through a returned copy: %+v", h)
	}
	if task, _ := s.View().Task(mock.Task().ID); task.IPs[0] != "10.200.0.2" {
		t.Fatalf("task mutated through a returned copy: %+v", task)
	}
	if svc, _ := s.View().Service("shop", "db"); svc.Spec[0] != '{' {
		t.Fatalf("service mutated through a returned copy: %s", svc.Spec)
	}
}

func TestViewIsPointInTime(t *testing.T) {
	s := store.New(nil)
	mustApply(t, s, store.CmdSetVar, store.Var{Key: "a", Value: "1"})
	v := s.View()
	mustApply(t, s, store.CmdSetVar, store.Var{Key: "b", Value: "2"})
	if n := len(v.Vars("")); n != 1 || v.Index() != 1 {
		t.Fatalf("old view sees %d vars at index %d, want 1 at 1", n, v.Index())
	}
	if n := len(s.View().Vars("")); n != 2 {
		t.Fatalf("new view sees %d vars, want 2", n)
	}
}

func TestMocksApply(t *testing.T) {
	s := store.New(nil)
	mustApply(t, s, store.CmdInitCluster, store.InitCluster{ClusterID: mock.ClusterID})
	mustApply(t, s, store.CmdRegisterServer, mock.Server())
	mustApply(t, s, store.CmdSetVar, mock.Var())
	for _, h := range mock.Hosts(3) {
		mustApply(t, s, store.CmdRegisterHost, h)
	}
	for _, tc := range kindCases() {
		mustApply(t, s, tc.put, tc.obj)
	}
	h, _ := s.View().Host("host2")
	if h.Addr != "10.99.0.102" {
		t.Fatalf("mock host2 addr %q", h.Addr)
	}
}
