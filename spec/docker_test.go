package spec_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/strslice"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/go-connections/nat"

	"github.com/clusterctl/clusterctl/spec"
	"github.com/clusterctl/clusterctl/spec/mock"
)

func TestContainerWeb(t *testing.T) {
	a := mock.App()
	web := mock.Web()
	web.Labels = map[string]string{"team": "blue", spec.LabelTask: "forged"}
	web.Environment = []string{"DB_URL=http://db:7000", "DOCKER_HOST_NAME=fake"}
	web.Ports = append(web.Ports,
		spec.Port{Target: 8080, Published: 18080, Protocol: "tcp", HostIP: "127.0.0.1"},
		spec.Port{Target: 53, Protocol: "udp"})
	web.Resources.LimitCPUs, web.Resources.LimitMemoryBytes = 1.5, 256<<20
	web.Restart = spec.RestartPolicy{Condition: spec.RestartAlways}

	cc, err := a.Container(web, spec.TaskRef{ID: "task-9", Slot: 2, Host: "host3", Version: web.Version()})
	if err != nil {
		t.Fatal(err)
	}
	if cc.Name != "hello-web-2" {
		t.Errorf("name %q", cc.Name)
	}
	wantLabels := map[string]string{
		"team":              "blue",
		spec.LabelProject:   "hello",
		spec.LabelService:   "web",
		spec.LabelNumber:    "2",
		spec.LabelOneoff:    "False",
		spec.LabelTask:      "task-9",
		spec.LabelVersion:   web.Version(),
		spec.LabelManagedBy: "true",
	}
	if !reflect.DeepEqual(cc.Config.Labels, wantLabels) {
		t.Errorf("labels %v", cc.Config.Labels)
	}
	if want := []string{"DB_URL=http://db:7000", "DOCKER_HOST_NAME=host3"}; !reflect.DeepEqual(cc.Config.Env, want) {
		t.Errorf("env %v", cc.Config.Env)
	}
	if cc.Config.Image != "sample/web:latest" || cc.Config.Cmd != nil || cc.Config.Entrypoint != nil || cc.Config.Healthcheck != nil {
		t.Errorf("image %q cmd %v entrypoint %v healthcheck %v: want the image's", cc.Config.Image, cc.Config.Cmd, cc.Config.Entrypoint, cc.Config.Healthcheck)
	}
	wantExposed := nat.PortSet{"8080/tcp": {}, "53/udp": {}}
	if !reflect.DeepEqual(cc.Config.ExposedPorts, wantExposed) {
		t.Errorf("exposed %v", cc.Config.ExposedPorts)
	}
	wantBindings := nat.PortMap{
		"8080/tcp": {{HostPort: "8080"}, {HostIP: "127.0.0.1", HostPort: "18080"}},
		"53/udp":   {{}},
	}
	if !reflect.DeepEqual(cc.Host.PortBindings, wantBindings) {
		t.Errorf("bindings %v", cc.Host.PortBindings)
	}
	if cc.Host.RestartPolicy.Name != container.RestartPolicyDisabled {
		t.Errorf("restart policy %+v: the managers restart, not Docker", cc.Host.RestartPolicy)
	}
	if cc.Host.NanoCPUs != 1_500_000_000 || cc.Host.Memory != 256<<20 {
		t.Errorf("limits cpus %d memory %d", cc.Host.NanoCPUs, cc.Host.Memory)
	}
	if cc.Host.NetworkMode != "hello_default" {
		t.Errorf("network mode %q", cc.Host.NetworkMode)
	}
	wantNet := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
		"hello_default": {Aliases: []string{"web"}},
	}}
	if !reflect.DeepEqual(cc.Network, wantNet) || cc.Connect != nil {
		t.Errorf("network %+v connect %+v", cc.Network, cc.Connect)
	}
}

func TestContainerDB(t *testing.T) {
	a := mock.App()
	a.Volumes = append(a.Volumes, spec.Volume{Name: "logs", DockerName: "hello_logs", Driver: "local"})
	a.Networks = append(a.Networks,
		spec.Network{Name: "back", DockerName: "hello_back", Driver: "bridge"},
		spec.Network{Name: "admin", DockerName: "ops-net", External: true})
	db := mock.DB()
	db.Command = []string{"/kvdb", "-dir", "/data"}
	db.Entrypoint = []string{""}
	db.Hostname = "database"
	db.Mounts = append(db.Mounts,
		spec.Mount{Type: "volume", Source: "logs", Target: "/logs", ReadOnly: true},
		spec.Mount{Type: "volume", Target: "/anon"},
		spec.Mount{Type: "bind", Source: "/srv/conf", Target: "/conf", ReadOnly: true},
		spec.Mount{Type: "bind", Source: "/srv/run", Target: "/run/x"},
		spec.Mount{Type: "tmpfs", Target: "/tmp"})
	// Sorted by name, as FromCompose leaves them: admin first.
	db.Networks = []spec.Attachment{{Network: "admin"}, {Network: "back", Aliases: []string{"db", "store"}}, db.Networks[0]}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}

	cc, err := a.Container(db, spec.TaskRef{ID: "t", Slot: 1, Host: "host1", Version: "v"})
	if err != nil {
		t.Fatal(err)
	}
	if cc.Config.Hostname != "database" || !reflect.DeepEqual(cc.Config.Cmd, strslice.StrSlice{"/kvdb", "-dir", "/data"}) ||
		!reflect.DeepEqual(cc.Config.Entrypoint, strslice.StrSlice{""}) {
		t.Errorf("hostname %q cmd %q entrypoint %q", cc.Config.Hostname, cc.Config.Cmd, cc.Config.Entrypoint)
	}
	wantHC := &container.HealthConfig{Test: []string{"CMD", "/kvdb", "health"}, Interval: 5 * time.Second, Timeout: 3 * time.Second, Retries: 5}
	if !reflect.DeepEqual(cc.Config.Healthcheck, wantHC) {
		t.Errorf("healthcheck %+v", cc.Config.Healthcheck)
	}
	wantMounts := []mount.Mount{
		{Type: mount.TypeVolume, Source: "hello_data", Target: "/data",
			VolumeOptions: &mount.VolumeOptions{DriverConfig: &mount.Driver{Name: "clustervol"}}},
		{Type: mount.TypeVolume, Source: "hello_logs", Target: "/logs", ReadOnly: true},
		{Type: mount.TypeVolume, Target: "/anon"},
		{Type: mount.TypeTmpfs, Target: "/tmp"},
	}
	if !reflect.DeepEqual(cc.Host.Mounts, wantMounts) {
		t.Errorf("mounts:\n got %+v\nwant %+v", cc.Host.Mounts, wantMounts)
	}
	if want := []string{"/srv/conf:/conf:ro", "/srv/run:/run/x"}; !reflect.DeepEqual(cc.Host.Binds, want) {
		t.Errorf("binds %v", cc.Host.Binds)
	}
	// One endpoint at create (API 1.41), the others connected before start.
	if cc.Host.NetworkMode != "ops-net" {
		t.Errorf("network mode %q", cc.Host.NetworkMode)
	}
	wantNet := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{"ops-net": {Aliases: []string{"db"}}}}
	if !reflect.DeepEqual(cc.Network, wantNet) {
		t.Errorf("network %+v", cc.Network.EndpointsConfig)
	}
	wantConnect := []spec.NetworkConnect{
		{Network: "hello_back", Endpoint: &network.EndpointSettings{Aliases: []string{"db", "store"}}},
		{Network: "hello_default", Endpoint: &network.EndpointSettings{Aliases: []string{"db", "kv"},
			IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: "10.10.0.5"}}},
	}
	if !reflect.DeepEqual(cc.Connect, wantConnect) {
		t.Errorf("connect:\n got %+v\nwant %+v", cc.Connect, wantConnect)
	}
}

func TestContainerSharing(t *testing.T) {
	a := mock.App()
	side := spec.Service{Name: "side", Image: "side:1", Replicas: 1, NetworkMode: "service:db",
		VolumesFrom: []string{"db:ro", "web", "service:web:rw", "container:legacy", "container:other:ro"}}
	a.Services = append(a.Services, side)
	cc, err := a.Container(side, spec.TaskRef{ID: "t", Slot: 1, Host: "h", Version: "v"})
	if err != nil {
		t.Fatal(err)
	}
	if cc.Host.NetworkMode != "container:hello-db-1" || cc.Network != nil || cc.Connect != nil {
		t.Errorf("network mode %q network %+v connect %+v", cc.Host.NetworkMode, cc.Network, cc.Connect)
	}
	want := []string{"hello-db-1:ro", "hello-web-1", "hello-web-1:rw", "legacy", "other:ro"}
	if !reflect.DeepEqual(cc.Host.VolumesFrom, want) {
		t.Errorf("volumes_from %v, want %v", cc.Host.VolumesFrom, want)
	}

	// Slot 2 joins db's slot 2; a partner with container_name is the one.
	a.Services[0].ContainerName = "the-db"
	cc, err = a.Container(side, spec.TaskRef{Slot: 2})
	if err != nil {
		t.Fatal(err)
	}
	if cc.Host.NetworkMode != "container:the-db" || cc.Host.VolumesFrom[1] != "hello-web-2" {
		t.Errorf("network mode %q volumes_from %v", cc.Host.NetworkMode, cc.Host.VolumesFrom)
	}

	for _, mode := range []string{"host", "none", "bridge"} {
		s := spec.Service{Name: "x", Image: "x", NetworkMode: mode}
		cc, err := a.Container(s, spec.TaskRef{Slot: 1})
		if err != nil || string(cc.Host.NetworkMode) != mode || cc.Network != nil {
			t.Errorf("network_mode %s: mode %q network %+v err %v", mode, cc.Host.NetworkMode, cc.Network, err)
		}
	}
}

func TestContainerErrors(t *testing.T) {
	a := mock.App()
	for _, tc := range []struct {
		name string
		s    spec.Service
		err  string
	}{
		{"volume", spec.Service{Name: "x", Mounts: []spec.Mount{{Type: "volume", Source: "nope", Target: "/n"}}}, "service x: mount /n: undefined volume nope"},
		{"network", spec.Service{Name: "x", Networks: []spec.Attachment{{Network: "nope"}}}, "service x: undefined network nope"},
		{"network_mode", spec.Service{Name: "x", NetworkMode: "service:nope"}, "service x: network_mode service:nope: undefined service nope"},
		{"volumes_from", spec.Service{Name: "x", VolumesFrom: []string{"nope:ro"}}, "service x: volumes_from nope:ro: undefined service nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.Container(tc.s, spec.TaskRef{Slot: 1})
			if err == nil || err.Error() != tc.err {
				t.Errorf("err %v, want %q", err, tc.err)
			}
		})
	}
}

func TestNetworkCreate(t *testing.T) {
	a := mock.App()
	n := spec.Network{Name: "back", DockerName: "hello_back", Driver: "clusternet",
		DriverOpts: map[string]string{"vni": "42"}, Labels: map[string]string{"tier": "gold"},
		IPAM: spec.IPAM{Driver: "clusteripam", Subnets: []spec.Subnet{{Subnet: "10.5.0.0/16", Gateway: "10.5.0.1", IPRange: "10.5.1.0/24"}}}}
	got := a.NetworkCreate(n)
	want := network.CreateOptions{
		Driver:  "clusternet",
		Options: map[string]string{"vni": "42"},
		IPAM: &network.IPAM{Driver: "clusteripam", Config: []network.IPAMConfig{
			{Subnet: "10.5.0.0/16", Gateway: "10.5.0.1", IPRange: "10.5.1.0/24"}}},
		Labels: map[string]string{"tier": "gold", spec.LabelProject: "hello", spec.LabelNetwork: "back", spec.LabelManagedBy: "true"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if got := a.NetworkCreate(spec.Network{Name: "plain", Driver: "bridge"}); got.IPAM != nil {
		t.Errorf("IPAM %+v: want Docker's default", got.IPAM)
	}
}

func TestVolumeCreate(t *testing.T) {
	a := mock.App()
	got := a.VolumeCreate(a.Volumes[0])
	want := volume.CreateOptions{
		Name:       "hello_data",
		Driver:     "clustervol",
		DriverOpts: map[string]string{"backend": "copy"},
		Labels:     map[string]string{spec.LabelProject: "hello", spec.LabelVolume: "data", spec.LabelManagedBy: "true"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

// TestFromComposeToContainer runs the whole path for the sample app: the
// web container of a loaded file is on the default network, publishes
// 8080 and tells the app where it runs.
func TestFromComposeToContainer(t *testing.T) {
	a := mustYAML(t, `
services:
  web:
    image: sample/web:latest
    ports: ["8080:8080"]
    networks:
      front:
      back: {aliases: [www], ipv4_address: 10.5.0.9}
networks:
  front: {}
  back: {ipam: {config: [{subnet: 10.5.0.0/16}]}}
`, nil)
	web := service(t, a, "web")
	cc, err := a.Container(web, spec.TaskRef{ID: "t", Slot: 1, Host: "host2", Version: web.Version()})
	if err != nil {
		t.Fatal(err)
	}
	if cc.Name != "demo-web-1" || cc.Host.NetworkMode != "demo_back" {
		t.Errorf("name %q mode %q", cc.Name, cc.Host.NetworkMode)
	}
	ep := cc.Network.EndpointsConfig["demo_back"]
	if ep == nil || !reflect.DeepEqual(ep.Aliases, []string{"web", "www"}) || ep.IPAMConfig.IPv4Address != "10.5.0.9" {
		t.Errorf("endpoint %+v", ep)
	}
	if len(cc.Connect) != 1 || cc.Connect[0].Network != "demo_front" {
		t.Errorf("connect %+v", cc.Connect)
	}
	if want := []string{"DOCKER_HOST_NAME=host2"}; !reflect.DeepEqual(cc.Config.Env, want) {
		t.Errorf("env %v", cc.Config.Env)
	}
}
