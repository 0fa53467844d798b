// Package mock returns valid spec objects for tests to tweak, instead of
// pages of struct literals in every package that needs an app.
package mock

import (
	"time"

	"github.com/clusterctl/clusterctl/spec"
)

// App returns a valid app shaped like samples/hello: db (a cluster
// volume, a healthcheck, a fixed address) and web (two replicas publishing
// 8080, waiting for db to be healthy), on one network with a subnet. Each
// call returns fresh values.
func App() spec.App {
	return spec.App{
		Name:     "hello",
		Services: []spec.Service{DB(), Web()},
		Networks: []spec.Network{{
			Name:       "default",
			DockerName: "hello_default",
			Driver:     "bridge",
			IPAM:       spec.IPAM{Subnets: []spec.Subnet{{Subnet: "10.10.0.0/24", Gateway: "10.10.0.1"}}},
		}},
		Volumes: []spec.Volume{{
			Name:       "data",
			DockerName: "hello_data",
			Driver:     spec.ClusterVolumeDriver,
			DriverOpts: map[string]string{"backend": "copy"},
		}},
	}
}

// DB returns App's db service.
func DB() spec.Service {
	return spec.Service{
		Name:     "db",
		Image:    "sample/kvdb:latest",
		Mounts:   []spec.Mount{{Type: "volume", Source: "data", Target: "/data"}},
		Networks: []spec.Attachment{{Network: "default", Aliases: []string{"kv"}, IPv4Address: "10.10.0.5"}},
		Healthcheck: &spec.Healthcheck{
			Test:     []string{"CMD", "/kvdb", "health"},
			Interval: 5 * time.Second,
			Timeout:  3 * time.Second,
			Retries:  5,
		},
		Restart:  spec.RestartPolicy{Condition: spec.RestartAlways},
		Replicas: 1,
	}
}

// Web returns App's web service.
func Web() spec.Service {
	return spec.Service{
		Name:        "web",
		Image:       "sample/web:latest",
		Environment: []string{"DB_URL=http://db:7000"},
		Ports:       []spec.Port{{Target: 8080, Published: 8080, Protocol: "tcp"}},
		Networks:    []spec.Attachment{{Network: "default"}},
		DependsOn:   []spec.Dependency{{Service: "db", Condition: spec.ConditionHealthy}},
		Restart:     spec.RestartPolicy{Condition: spec.RestartNever},
		Replicas:    2,
		Resources:   spec.Resources{ReserveCPUs: 0.25, ReserveMemoryBytes: 64 << 20},
	}
}
