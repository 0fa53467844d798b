package spec_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/clusterctl/clusterctl/compose"
	"github.com/clusterctl/clusterctl/spec"
)

// fromYAML writes a Compose file (and any extra files) to a temporary
// directory, loads it as `clusterctl up` does, and maps it.
func fromYAML(t *testing.T, yaml string, extra map[string]string) (spec.App, error) {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{"compose.yml": yaml}
	for k, v := range extra {
		files[k] = v
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	app, err := compose.Load(context.Background(), compose.Options{Files: []string{filepath.Join(dir, "compose.yml")}, Project: "demo"})
	if err != nil {
		t.Fatalf("compose.Load: %v", err)
	}
	return spec.FromCompose(app)
}

func mustYAML(t *testing.T, yaml string, extra map[string]string) spec.App {
	t.Helper()
	a, err := fromYAML(t, yaml, extra)
	if err != nil {
		t.Fatalf("FromCompose: %v", err)
	}
	return a
}

func service(t *testing.T, a spec.App, name string) spec.Service {
	t.Helper()
	s, ok := a.Service(name)
	if !ok {
		t.Fatalf("no service %s in %+v", name, a.Services)
	}
	return s
}

func TestFromComposeHelloSample(t *testing.T) {
	c, err := compose.Load(context.Background(), compose.Options{Files: []string{"../samples/hello/compose.yml"}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := spec.FromCompose(c)
	if err != nil {
		t.Fatal(err)
	}
	if a.Name != "hello" {
		t.Errorf("name %q, want hello (the directory)", a.Name)
	}
	if got := names(a); !reflect.DeepEqual(got, []string{"db", "web"}) {
		t.Errorf("order %v, want db before web", got)
	}
	db, web := service(t, a, "db"), service(t, a, "web")
	if want := []spec.Mount{{Type: "volume", Source: "data", Target: "/data"}}; !reflect.DeepEqual(db.Mounts, want) {
		t.Errorf("db mounts %+v", db.Mounts)
	}
	if db.Restart != (spec.RestartPolicy{Condition: spec.RestartAlways}) {
		t.Errorf("db restart %+v", db.Restart)
	}
	wantHC := &spec.Healthcheck{Test: []string{"CMD", "/kvdb", "health"}, Interval: 5 * time.Second,
		Timeout: 3 * time.Second, StartPeriod: 5 * time.Second, Retries: 5}
	if !reflect.DeepEqual(db.Healthcheck, wantHC) {
		t.Errorf("db healthcheck %+v", db.Healthcheck)
	}
	if want := []spec.Port{{Target: 8080, Published: 8080, Protocol: "tcp"}}; !reflect.DeepEqual(web.Ports, want) {
		t.Errorf("web ports %+v", web.Ports)
	}
	if want := []string{"DB_URL=http://db:7000"}; !reflect.DeepEqual(web.Environment, want) {
		t.Errorf("web env %v", web.Environment)
	}
	if want := []spec.Dependency{{Service: "db", Condition: spec.ConditionHealthy}}; !reflect.DeepEqual(web.DependsOn, want) {
		t.Errorf("web depends_on %+v", web.DependsOn)
	}
	if web.Replicas != 1 || web.Restart.Condition != spec.RestartNever {
		t.Errorf("web replicas %d restart %+v", web.Replicas, web.Restart)
	}
	// No networks in the file: both services are on the implicit default.
	if want := []spec.Network{{Name: "default", DockerName: "hello_default", Driver: "bridge"}}; !reflect.DeepEqual(a.Networks, want) {
		t.Errorf("networks %+v", a.Networks)
	}
	if want := []spec.Attachment{{Network: "default"}}; !reflect.DeepEqual(web.Networks, want) {
		t.Errorf("web networks %+v", web.Networks)
	}
	if want := []spec.Volume{{Name: "data", DockerName: "hello_data", Driver: "local"}}; !reflect.DeepEqual(a.Volumes, want) {
		t.Errorf("volumes %+v", a.Volumes)
	}
}

func names(a spec.App) []string {
	var out []string
	for _, s := range a.Services {
		out = append(out, s.Name)
	}
	return out
}

const full = `
services:
  web:
    image: sample/web:latest
    command: ["/web", "-v"]
    entrypoint: /init
    hostname: front
    labels: {team: blue}
    environment:
      FROM_BOTH: from-environment
      UNSET_VAR:
      EMPTY: ""
    env_file: [web.env]
    ports:
      - "8080:8080"
      - "127.0.0.1:9090:90/udp"
      - "7000"
      - {target: 81, published: "8081", host_ip: 0.0.0.0}
    volumes:
      - data:/data:ro
      - ./conf:/conf
      - {type: tmpfs, target: /scratch}
    networks: [front, back]
    depends_on:
      db: {condition: service_healthy}
      cache: {condition: service_completed_successfully}
    restart: on-failure:3
    healthcheck:
      test: curl -f http://localhost:8080/
      interval: 1m30s
      timeout: 2s
      start_period: 10s
      retries: 4
    deploy:
      replicas: 3
      resources:
        limits: {cpus: "1.5", memory: 512M}
        reservations: {cpus: "0.1", memory: 64M}
      placement:
        constraints: ["node.labels.zone == a", "node.role != manager"]
        preferences: [{spread: node.labels.zone}]
  db:
    image: sample/kvdb:latest
    entrypoint: []
    networks:
      back:
        aliases: [database, kv]
        ipv4_address: 10.5.0.5
    volumes: [cluster:/data]
    healthcheck: {test: ["CMD", "/kvdb", "health"]}
    restart: always
    deploy:
      restart_policy: {condition: on-failure, max_attempts: 4, delay: 5s}
  cache:
    image: cache:1
    scale: 2
    healthcheck: {disable: true}
  sidecar:
    image: side:1
    container_name: the-sidecar
    network_mode: service:db
    volumes_from: ["db:ro", "container:legacy"]
    healthcheck: {test: ["NONE"]}
    restart: unless-stopped
    deploy:
      replicas: 1
      restart_policy: {max_attempts: 2}
volumes:
  data: {}
  cluster:
    driver: clustervol
    driver_opts: {backend: copy}
    labels: {tier: gold}
  named: {name: custom-volume}
networks:
  front: {}
  back:
    driver: clusternet
    driver_opts: {vni: "42"}
    labels: {tier: gold}
    ipam:
      driver: clusteripam
      config: [{subnet: 10.5.0.0/16, gateway: 10.5.0.1, ip_range: 10.5.1.0/24}]
  outside: {external: true, name: shared-net}
`

func loadFull(t *testing.T) spec.App {
	t.Helper()
	t.Setenv("UNSET_VAR", "") // make sure it is not set in the test's environment
	os.Unsetenv("UNSET_VAR")
	return mustYAML(t, full, map[string]string{"web.env": "FROM_FILE=1\nFROM_BOTH=from-file\n"})
}

func TestFromComposeService(t *testing.T) {
	a := loadFull(t)
	web := service(t, a, "web")
	want := spec.Service{
		Name:        "web",
		Image:       "sample/web:latest",
		Command:     []string{"/web", "-v"},
		Entrypoint:  []string{"/init"},
		Environment: []string{"EMPTY=", "FROM_BOTH=from-environment", "FROM_FILE=1"},
		Labels:      map[string]string{"team": "blue"},
		Hostname:    "front",
		Ports: []spec.Port{
			{Target: 8080, Published: 8080, Protocol: "tcp"},
			{Target: 90, Published: 9090, Protocol: "udp", HostIP: "127.0.0.1"},
			{Target: 7000, Protocol: "tcp"},
			{Target: 81, Published: 8081, Protocol: "tcp", HostIP: "0.0.0.0"},
		},
		Networks: []spec.Attachment{{Network: "back"}, {Network: "front"}},
		DependsOn: []spec.Dependency{
			{Service: "cache", Condition: spec.ConditionCompleted},
			{Service: "db", Condition: spec.ConditionHealthy},
		},
		Healthcheck: &spec.Healthcheck{
			Test:     []string{"CMD-SHELL", "curl -f http://localhost:8080/"},
			Interval: 90 * time.Second, Timeout: 2 * time.Second, StartPeriod: 10 * time.Second, Retries: 4,
		},
		Restart:     spec.RestartPolicy{Condition: spec.RestartOnFailure, MaxAttempts: 3},
		Replicas:    3,
		Constraints: []string{"node.labels.zone == a", "node.role != manager"},
		Spread:      []string{"node.labels.zone"},
		Resources: spec.Resources{LimitCPUs: 1.5, LimitMemoryBytes: 512 << 20,
			ReserveCPUs: 0.1, ReserveMemoryBytes: 64 << 20},
	}
	mounts := web.Mounts
	web.Mounts = nil
	if !reflect.DeepEqual(web, want) {
		t.Errorf("web:\n got %+v\nwant %+v", web, want)
	}
	if len(mounts) != 3 {
		t.Fatalf("mounts %+v", mounts)
	}
	if mounts[0] != (spec.Mount{Type: "volume", Source: "data", Target: "/data", ReadOnly: true}) {
		t.Errorf("volume mount %+v: want the volume's key as source", mounts[0])
	}
	if m := mounts[1]; m.Type != "bind" || !filepath.IsAbs(m.Source) || filepath.Base(m.Source) != "conf" || m.Target != "/conf" {
		t.Errorf("bind mount %+v: want an absolute source", m)
	}
	if mounts[2] != (spec.Mount{Type: "tmpfs", Target: "/scratch"}) {
		t.Errorf("tmpfs mount %+v", mounts[2])
	}
}

func TestFromComposeOtherServices(t *testing.T) {
	a := loadFull(t)
	db, cache, side := service(t, a, "db"), service(t, a, "cache"), service(t, a, "sidecar")
	if want := []string{""}; !reflect.DeepEqual(db.Entrypoint, want) {
		t.Errorf("entrypoint: [] gave %q, want Docker's reset marker [\"\"]", db.Entrypoint)
	}
	if want := []spec.Attachment{{Network: "back", Aliases: []string{"database", "kv"}, IPv4Address: "10.5.0.5"}}; !reflect.DeepEqual(db.Networks, want) {
		t.Errorf("db networks %+v", db.Networks)
	}
	if cache.Replicas != 2 {
		t.Errorf("cache replicas %d, want scale: 2", cache.Replicas)
	}
	if cache.Healthcheck != nil || side.Healthcheck != nil {
		t.Errorf("disabled healthchecks %+v %+v, want nil", cache.Healthcheck, side.Healthcheck)
	}
	if side.NetworkMode != "service:db" || side.Networks != nil || side.ContainerName != "the-sidecar" {
		t.Errorf("sidecar network_mode %q networks %+v name %q", side.NetworkMode, side.Networks, side.ContainerName)
	}
	if want := []string{"db:ro", "container:legacy"}; !reflect.DeepEqual(side.VolumesFrom, want) {
		t.Errorf("volumes_from %v", side.VolumesFrom)
	}
	// compose-go turns network_mode service:db and volumes_from db into
	// dependencies.
	if want := []spec.Dependency{{Service: "db", Condition: spec.ConditionStarted}}; !reflect.DeepEqual(side.DependsOn, want) {
		t.Errorf("sidecar depends_on %+v", side.DependsOn)
	}
	if got := names(a); indexOf(got, "db") > indexOf(got, "sidecar") || indexOf(got, "cache") > indexOf(got, "web") {
		t.Errorf("order %v: dependencies must come first", got)
	}
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

func TestFromComposeRestart(t *testing.T) {
	a := loadFull(t)
	for _, tc := range []struct {
		service string
		want    spec.RestartPolicy
	}{
		{"web", spec.RestartPolicy{Condition: spec.RestartOnFailure, MaxAttempts: 3}},
		// deploy.restart_policy overrides restart: always.
		{"db", spec.RestartPolicy{Condition: spec.RestartOnFailure, MaxAttempts: 4, Delay: 5 * time.Second}},
		{"cache", spec.RestartPolicy{Condition: spec.RestartNever}},
		// restart_policy without a condition means any.
		{"sidecar", spec.RestartPolicy{Condition: spec.RestartAlways, MaxAttempts: 2}},
	} {
		if got := service(t, a, tc.service).Restart; got != tc.want {
			t.Errorf("%s restart %+v, want %+v", tc.service, got, tc.want)
		}
	}
}

func TestFromComposeRestartFlag(t *testing.T) {
	for _, tc := range []struct {
		restart string
		want    spec.RestartPolicy
		err     string
	}{
		{"no", spec.RestartPolicy{Condition: spec.RestartNever}, ""},
		{"always", spec.RestartPolicy{Condition: spec.RestartAlways}, ""},
		{"unless-stopped", spec.RestartPolicy{Condition: spec.RestartAlways}, ""},
		{"on-failure", spec.RestartPolicy{Condition: spec.RestartOnFailure}, ""},
		{"on-failure:3", spec.RestartPolicy{Condition: spec.RestartOnFailure, MaxAttempts: 3}, ""},
		{"on-failure:x", spec.RestartPolicy{}, `service s: restart "on-failure:x": max attempts must be a number >= 0`},
		{"always:2", spec.RestartPolicy{}, `service s: restart "always:2": want no, always, unless-stopped or on-failure[:N]`},
		{"sometimes", spec.RestartPolicy{}, `service s: restart "sometimes": want no, always`},
	} {
		t.Run(tc.restart, func(t *testing.T) {
			a, err := fromYAML(t, "services:\n  s:\n    image: x\n    restart: \""+tc.restart+"\"\n", nil)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := a.Services[0].Restart; got != tc.want {
				t.Errorf("restart %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestFromComposeTopLevel(t *testing.T) {
	a := loadFull(t)
	wantNets := []spec.Network{
		{Name: "back", DockerName: "demo_back", Driver: "clusternet", DriverOpts: map[string]string{"vni": "42"},
			IPAM:   spec.IPAM{Driver: "clusteripam", Subnets: []spec.Subnet{{Subnet: "10.5.0.0/16", Gateway: "10.5.0.1", IPRange: "10.5.1.0/24"}}},
			Labels: map[string]string{"tier": "gold"}},
		// cache names no network: it is on the implicit default one.
		{Name: "default", DockerName: "demo_default", Driver: "bridge"},
		{Name: "front", DockerName: "demo_front", Driver: "bridge"},
		{Name: "outside", DockerName: "shared-net", External: true},
	}
	if !reflect.DeepEqual(a.Networks, wantNets) {
		t.Errorf("networks:\n got %+v\nwant %+v", a.Networks, wantNets)
	}
	wantVols := []spec.Volume{
		{Name: "cluster", DockerName: "demo_cluster", Driver: "clustervol", DriverOpts: map[string]string{"backend": "copy"},
			Labels: map[string]string{"tier": "gold"}},
		{Name: "data", DockerName: "demo_data", Driver: "local"},
		{Name: "named", DockerName: "custom-volume", Driver: "local"},
	}
	if !reflect.DeepEqual(a.Volumes, wantVols) {
		t.Errorf("volumes:\n got %+v\nwant %+v", a.Volumes, wantVols)
	}
}

func TestFromComposeDefaultNetwork(t *testing.T) {
	// One service on a named network, one on none: only the latter puts
	// the implicit default network in the app.
	a := mustYAML(t, `
services:
  a: {image: x, networks: [mine]}
  b: {image: x}
  c: {image: x, network_mode: host}
networks:
  mine: {}
`, nil)
	if got := netNames(a); !reflect.DeepEqual(got, []string{"demo_default", "demo_mine"}) {
		t.Errorf("networks %v", got)
	}
	if want := []spec.Attachment{{Network: "default"}}; !reflect.DeepEqual(service(t, a, "b").Networks, want) {
		t.Errorf("b networks %+v", service(t, a, "b").Networks)
	}
	if c := service(t, a, "c"); c.Networks != nil || c.NetworkMode != "host" {
		t.Errorf("c networks %+v mode %q", c.Networks, c.NetworkMode)
	}
	a = mustYAML(t, "services:\n  a: {image: x, networks: [mine]}\nnetworks:\n  mine: {}\n", nil)
	if got := netNames(a); !reflect.DeepEqual(got, []string{"demo_mine"}) {
		t.Errorf("networks %v: no default network when no service uses it", got)
	}
}

func TestFromComposeDependsOnList(t *testing.T) {
	a := mustYAML(t, "services:\n  a: {image: x, depends_on: [c, b]}\n  b: {image: x}\n  c: {image: x}\n", nil)
	want := []spec.Dependency{{Service: "b", Condition: spec.ConditionStarted}, {Service: "c", Condition: spec.ConditionStarted}}
	if got := service(t, a, "a").DependsOn; !reflect.DeepEqual(got, want) {
		t.Errorf("depends_on %+v, want %+v", got, want)
	}
	if got := names(a); !reflect.DeepEqual(got, []string{"b", "c", "a"}) {
		t.Errorf("order %v", got)
	}
}

func netNames(a spec.App) []string {
	var out []string
	for _, n := range a.Networks {
		out = append(out, n.DockerName)
	}
	return out
}

func TestFromComposeRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, err string
	}{
		{"port range", "services:\n  s: {image: x, ports: [\"9000-9001:80\"]}\n",
			"service s: port 80: published range 9000-9001 is not supported"},
		{"bad restart_policy", "services:\n  s:\n    image: x\n    deploy: {restart_policy: {condition: sometimes}}\n",
			`service s: deploy.restart_policy.condition "sometimes": want none, on-failure or any`},
		{"address outside the subnet", "services:\n  s: {image: x, networks: {n: {ipv4_address: 10.6.0.5}}}\n" +
			"networks:\n  n: {ipam: {config: [{subnet: 10.5.0.0/16}]}}\n",
			"service s: network n: ipv4_address 10.6.0.5 is in no subnet of the network"},
		{"more sidecars than partners", "services:\n  s: {image: x, network_mode: \"service:m\", deploy: {replicas: 2}}\n  m: {image: x}\n",
			"service s: network_mode service:m: 2 replicas but m has 1"},
		{"bad constraint", "services:\n  s:\n    image: x\n    deploy: {placement: {constraints: [\"node.colour == red\"]}}\n",
			`service s: constraint "node.colour == red"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := fromYAML(t, tc.yaml, nil)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err %v, want %q", err, tc.err)
			}
		})
	}
}

func TestFromComposeNil(t *testing.T) {
	if _, err := spec.FromCompose(nil); err == nil {
		t.Error("nil app: want an error")
	}
}
