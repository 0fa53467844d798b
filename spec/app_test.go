package spec_test

import (
	"reflect"
	"testing"

	"github.com/clusterctl/clusterctl/scheduler"
	"github.com/clusterctl/clusterctl/spec"
	"github.com/clusterctl/clusterctl/spec/mock"
)

func TestLookups(t *testing.T) {
	a := mock.App()
	if s, ok := a.Service("web"); !ok || s.Image != "sample/web:latest" {
		t.Errorf("Service(web) = %+v, %v", s, ok)
	}
	if _, ok := a.Service("nope"); ok {
		t.Error("Service(nope) found")
	}
	if v, ok := a.Volume("data"); !ok || v.DockerName != "hello_data" {
		t.Errorf("Volume(data) = %+v, %v", v, ok)
	}
	if _, ok := a.Volume("hello_data"); ok {
		t.Error("Volume looks up Compose keys, not Docker names")
	}
	if n, ok := a.Network("default"); !ok || n.DockerName != "hello_default" {
		t.Errorf("Network(default) = %+v, %v", n, ok)
	}
	if _, ok := a.Network("nope"); ok {
		t.Error("Network(nope) found")
	}
}

func TestVersion(t *testing.T) {
	base := mock.Web().Version()
	if len(base) != 16 {
		t.Fatalf("version %q: want 16 hex digits", base)
	}
	if again := mock.Web().Version(); again != base {
		t.Errorf("version not stable: %s then %s", base, again)
	}
	for _, tc := range []struct {
		name   string
		change func(s *spec.Service)
		same   bool
	}{
		{"replicas", func(s *spec.Service) { s.Replicas = 7 }, true},
		{"no replicas", func(s *spec.Service) { s.Replicas = 0 }, true},
		{"labels", func(s *spec.Service) { s.Labels = map[string]string{"b": "2", "a": "1"} }, false},
		{"image", func(s *spec.Service) { s.Image = "sample/web:v2" }, false},
		{"env", func(s *spec.Service) { s.Environment = append(s.Environment, "DEBUG=1") }, false},
		{"port", func(s *spec.Service) { s.Ports[0].Published = 8081 }, false},
		{"restart", func(s *spec.Service) { s.Restart.MaxAttempts = 2 }, false},
		{"constraint", func(s *spec.Service) { s.Constraints = []string{"node.role == worker"} }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mock.Web()
			tc.change(&s)
			if got := s.Version(); (got == base) != tc.same {
				t.Errorf("version %s vs %s: same = %v, want %v", got, base, got == base, tc.same)
			}
		})
	}
	// Map order never matters.
	s1, s2 := mock.Web(), mock.Web()
	s1.Labels = map[string]string{"a": "1", "b": "2", "c": "3"}
	s2.Labels = map[string]string{"c": "3", "b": "2", "a": "1"}
	if s1.Version() != s2.Version() {
		t.Error("version depends on map order")
	}
}

func TestContainerName(t *testing.T) {
	s := mock.Web()
	if got := spec.ContainerName("hello", s, 3); got != "hello-web-3" {
		t.Errorf("got %q, want hello-web-3", got)
	}
	s.ContainerName = "front"
	if got := spec.ContainerName("hello", s, 1); got != "front" {
		t.Errorf("got %q, want container_name", got)
	}
}

func TestTaskSpec(t *testing.T) {
	a := mock.App()
	a.Volumes = append(a.Volumes, spec.Volume{Name: "cache", DockerName: "hello_cache", Driver: "local"})
	db := mock.DB()
	db.Mounts = append(db.Mounts,
		spec.Mount{Type: "volume", Source: "cache", Target: "/cache"}, // local: not the scheduler's business
		spec.Mount{Type: "volume", Source: "data", Target: "/again"},  // the same cluster volume once
		spec.Mount{Type: "volume", Target: "/anon"},
		spec.Mount{Type: "tmpfs", Target: "/tmp"})
	got := a.TaskSpec(db, "t1", 1)
	want := scheduler.TaskSpec{ID: "t1", App: "hello", Service: "db", Slot: 1, Volumes: []string{"hello_data"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("db:\n got %+v\nwant %+v", got, want)
	}

	web := mock.Web()
	web.Constraints = []string{"node.labels.zone == a", "node.role != manager"}
	web.Spread = []string{"node.labels.zone"}
	web.Ports = append(web.Ports, spec.Port{Target: 9000, Protocol: "tcp"}, spec.Port{Target: 53, Published: 5353, Protocol: "udp"})
	got = a.TaskSpec(web, "t2", 2)
	want = scheduler.TaskSpec{
		ID: "t2", App: "hello", Service: "web", Slot: 2,
		Constraints: []scheduler.Constraint{{Key: "node.labels.zone", Op: "==", Value: "a"}, {Key: "node.role", Op: "!=", Value: "manager"}},
		Spread:      []string{"node.labels.zone"},
		CPUs:        0.25, MemoryBytes: 64 << 20,
		Ports: []scheduler.Port{{HostPort: 8080, Protocol: "tcp"}, {HostPort: 5353, Protocol: "udp"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("web:\n got %+v\nwant %+v", got, want)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("scheduler refuses the task: %v", err)
	}
}

func TestTaskSpecColocate(t *testing.T) {
	for _, tc := range []struct {
		name string
		side spec.Service
		want string
	}{
		{"network_mode", spec.Service{NetworkMode: "service:db", VolumesFrom: []string{"web"}}, "db"},
		{"volumes_from", spec.Service{VolumesFrom: []string{"container:legacy", "web:ro"}}, "web"},
		{"volumes_from service:", spec.Service{VolumesFrom: []string{"service:web:rw"}}, "web"},
		{"container only", spec.Service{NetworkMode: "container:legacy", VolumesFrom: []string{"container:other:ro"}}, ""},
		{"none", spec.Service{NetworkMode: "host"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.side.Name = "side"
			if got := mock.App().TaskSpec(tc.side, "t", 1).ColocateWith; got != tc.want {
				t.Errorf("ColocateWith %q, want %q", got, tc.want)
			}
			if got := spec.Partner(tc.side); got != tc.want {
				t.Errorf("Partner %q, want %q", got, tc.want)
			}
		})
	}
}
