package spec_test

import (
	"strings"
	"testing"

	"github.com/clusterctl/clusterctl/spec"
	"github.com/clusterctl/clusterctl/spec/mock"
)

func TestMockIsValid(t *testing.T) {
	if err := mock.App().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidate(t *testing.T) {
	// Each case breaks one thing in a valid app; web is Services[1], db
	// Services[0].
	for _, tc := range []struct {
		name    string
		breakIt func(a *spec.App)
		err     string
	}{
		{"app name", func(a *spec.App) { a.Name = "my/app" }, `app name: name "my/app": only letters, digits`},
		{"app name dots", func(a *spec.App) { a.Name = "a..b" }, `app name: name "a..b": must not contain '..'`},
		{"app name start", func(a *spec.App) { a.Name = "-app" }, `app name: name "-app": must start with a letter or digit`},
		{"no services", func(a *spec.App) { a.Services = nil }, "app hello has no services"},
		{"service twice", func(a *spec.App) { a.Services[1].Name = "db" }, "service db is defined twice"},
		{"service name", func(a *spec.App) { a.Services[1].Name = "../web" }, `service ../web: name "../web": must start with a letter or digit`},
		{"empty service name", func(a *spec.App) { a.Services[1].Name = "" }, "service : name is empty"},
		{"image", func(a *spec.App) { a.Services[1].Image = "" }, "service web: no image"},
		{"replicas", func(a *spec.App) { a.Services[1].Replicas = -1 }, "service web: replicas -1: must be >= 0"},
		{"container_name", func(a *spec.App) { a.Services[1].ContainerName = "front" },
			"service web: container_name front allows one replica, not 2"},
		{"container_name chars", func(a *spec.App) { a.Services[0].ContainerName = "a b" },
			`service db: container_name: name "a b": only letters`},
		{"depends_on", func(a *spec.App) { a.Services[1].DependsOn[0].Service = "dbb" },
			"service web: depends on undefined service dbb"},
		{"depends_on condition", func(a *spec.App) { a.Services[1].DependsOn[0].Condition = "service_ready" },
			`service web: depends_on db: condition "service_ready": want service_started, service_healthy or service_completed_successfully`},
		{"network_mode", func(a *spec.App) {
			a.Services[1].Networks = nil
			a.Services[1].Ports = nil
			a.Services[1].NetworkMode = "service:dbx"
		},
			"service web: network_mode service:dbx: undefined service dbx"},
		{"network_mode self", func(a *spec.App) {
			a.Services[1].Networks = nil
			a.Services[1].Ports = nil
			a.Services[1].NetworkMode = "service:web"
		},
			"service web: network_mode service:web: a service cannot share with itself"},
		{"network_mode replicas", func(a *spec.App) {
			a.Services[1].Networks = nil
			a.Services[1].Ports = nil
			a.Services[1].NetworkMode = "service:db"
		},
			"service web: network_mode service:db: 2 replicas but db has 1 (task N joins db task N)"},
		{"network_mode and networks", func(a *spec.App) { a.Services[1].Ports = nil; a.Services[1].NetworkMode = "host" },
			"service web: network_mode host and networks: use one or the other"},
		{"ports with host network", func(a *spec.App) { a.Services[1].Networks = nil; a.Services[1].NetworkMode = "host" },
			"service web: ports: not allowed with network_mode host"},
		{"hostname with shared network", func(a *spec.App) {
			a.Services[0].Networks = nil
			a.Services[0].NetworkMode = "service:web"
			a.Services[0].Hostname = "db"
		}, "service db: hostname db: not allowed with network_mode service:web"},
		{"volumes_from", func(a *spec.App) { a.Services[1].VolumesFrom = []string{"dbx:ro"} },
			"service web: volumes_from dbx:ro: undefined service dbx"},
		{"volumes_from two partners", func(a *spec.App) {
			a.Services = append(a.Services, spec.Service{Name: "side", Image: "x", Replicas: 1,
				Restart: spec.RestartPolicy{Condition: spec.RestartNever}, NetworkMode: "service:db", VolumesFrom: []string{"web"}})
		}, "service side: volumes_from web: shares a host with both db and web"},
		{"volume", func(a *spec.App) { a.Services[0].Mounts[0].Source = "dta" },
			"service db: mount /data: undefined volume dta"},
		{"mount type", func(a *spec.App) { a.Services[0].Mounts[0].Type = "npipe" },
			`service db: mount /data: type "npipe": want volume, bind or tmpfs`},
		{"mount target", func(a *spec.App) { a.Services[0].Mounts[0].Target = "data" },
			`service db: mount target "data": not an absolute path`},
		{"bind source", func(a *spec.App) { a.Services[0].Mounts[0] = spec.Mount{Type: "bind", Source: "data", Target: "/data"} },
			`service db: bind mount /data: source "data" is not an absolute path`},
		{"network", func(a *spec.App) { a.Services[1].Networks[0].Network = "front" },
			"service web: undefined network front"},
		{"ipv4 parse", func(a *spec.App) { a.Services[0].Networks[0].IPv4Address = "10.10.0.500" },
			`service db: network default: ipv4_address "10.10.0.500": not an IPv4 address`},
		{"ipv4 subnet", func(a *spec.App) { a.Services[0].Networks[0].IPv4Address = "10.11.0.5" },
			"service db: network default: ipv4_address 10.11.0.5 is in no subnet of the network"},
		{"subnet", func(a *spec.App) { a.Networks[0].IPAM.Subnets[0].Subnet = "10.10.0.0/33" },
			`network default: subnet "10.10.0.0/33"`},
		{"gateway", func(a *spec.App) { a.Networks[0].IPAM.Subnets[0].Gateway = "10.9.0.1" },
			"network default: gateway 10.9.0.1 is not in subnet 10.10.0.0/24"},
		{"network docker name", func(a *spec.App) { a.Networks[0].DockerName = "" },
			"network default: docker name is empty"},
		{"volume name", func(a *spec.App) { a.Volumes[0].Name = "a/b" },
			`volume: name "a/b": only letters`},
		{"constraint", func(a *spec.App) { a.Services[1].Constraints = []string{"node.labels.zone = a"} },
			`service web: constraint "node.labels.zone = a": want KEY == VALUE or KEY != VALUE`},
		{"constraint key", func(a *spec.App) { a.Services[1].Constraints = []string{"node.zone == a"} },
			`service web: constraint "node.zone == a": "node.zone": unknown key`},
		{"spread", func(a *spec.App) { a.Services[1].Spread = []string{"zone"} },
			`service web: spread preference "zone": "zone": unknown key`},
		{"restart", func(a *spec.App) { a.Services[1].Restart.Condition = "always" },
			`service web: restart condition "always": want none, on-failure or any`},
		{"port protocol", func(a *spec.App) { a.Services[1].Ports[0].Protocol = "sctp" },
			`service web: port 8080: protocol "sctp": want tcp or udp`},
		{"port host ip", func(a *spec.App) { a.Services[1].Ports[0].HostIP = "localhost" },
			`service web: port 8080: host_ip "localhost"`},
		{"reservation over limit", func(a *spec.App) { a.Services[1].Resources.LimitCPUs = 0.1 },
			"service web: cpu reservation 0.25 exceeds the limit 0.1"},
		{"negative memory", func(a *spec.App) { a.Services[1].Resources.LimitMemoryBytes = -1 },
			"service web: memory must be >= 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := mock.App()
			tc.breakIt(&a)
			err := a.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err %v, want %q", err, tc.err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("err %q: want one line", err)
			}
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	for _, tc := range []struct {
		name  string
		tweak func(a *spec.App)
	}{
		{"anonymous volume", func(a *spec.App) {
			a.Services[0].Mounts = append(a.Services[0].Mounts, spec.Mount{Type: "volume", Target: "/cache"})
		}},
		{"sidecar of one container", func(a *spec.App) {
			a.Services[0].ContainerName = "the-db"
			a.Services = append(a.Services, spec.Service{Name: "side", Image: "x", Replicas: 3,
				Restart: spec.RestartPolicy{Condition: spec.RestartNever}, NetworkMode: "service:db", VolumesFrom: []string{"db:ro", "container:legacy"}})
		}},
		{"zero replicas", func(a *spec.App) { a.Services[1].Replicas = 0 }},
		{"address without subnet", func(a *spec.App) {
			a.Networks[0].IPAM.Subnets = nil
			a.Services[0].Networks[0].IPv4Address = "172.30.0.9"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := mock.App()
			tc.tweak(&a)
			if err := a.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
