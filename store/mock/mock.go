// Package mock returns valid store objects for tests to tweak, so tests say
// only what matters to them instead of pages of struct literals (like
// Nomad's nomad/mock). Every call returns a fresh object with fixed values.
package mock

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/clusterctl/clusterctl/store"
)

// Now is the fixed time mock objects carry, in UTC.
var Now = time.Date(2025, time.March, 4, 10, 30, 0, 0, time.UTC)

// ClusterID is the cluster ID of mock clusters.
const ClusterID = "c0ffee00-0000-4000-8000-000000000001"

// Server returns a manager named server1.
func Server() store.Server {
	return store.Server{Name: "server1", RaftAddr: "10.99.0.11:7401", APIAddr: "http://10.99.0.11:7400"}
}

// Container returns a running container of the mock task.
func Container() store.Container {
	return store.Container{
		ID:     "3f2a9c1b7d4e",
		Name:   "shop-db-1",
		Image:  "kvdb:latest",
		State:  "running",
		Labels: map[string]string{"clusterctl.task": "shop-db-1"},
	}
}

// Host returns an up host named host1 with 4 CPUs and 8 GiB, running the
// mock container.
func Host() store.Host {
	return hostN(1)
}

// Hosts returns n up hosts named host1..hostN with addresses 10.99.0.101...
func Hosts(n int) []store.Host {
	hosts := make([]store.Host, n)
	for i := range hosts {
		hosts[i] = hostN(i + 1)
	}
	return hosts
}

// hostN returns the i-th mock host.
func hostN(i int) store.Host {
	addr := fmt.Sprintf("10.99.0.%d", 100+i)
	return store.Host{
		Name:          fmt.Sprintf("host%d", i),
		Addr:          addr,
		Docker:        "tcp://" + addr + ":2375",
		DockerVersion: "20.10.24",
		Labels:        map[string]string{"zone": "lab"},
		CPUs:          4,
		MemoryBytes:   8 << 30,
		State:         store.HostUp,
		LastHeartbeat: Now,
		Containers:    []store.Container{Container()},
		Registered:    Now,
	}
}

// App returns an app named shop with a one-service Compose file.
func App() store.App {
	return store.App{
		Name:    "shop",
		Compose: "services:\n  db:\n    image: kvdb:latest\n    volumes: [data:/data]\nvolumes:\n  data: {}\n",
		Created: Now,
	}
}

// Service returns the db service of the shop app.
func Service() store.Service {
	return store.Service{
		App:  "shop",
		Name: "db",
		Spec: json.RawMessage(`{"image":"kvdb:latest","replicas":1}`),
	}
}

// Task returns slot 1 of shop/db, running on host1.
func Task() store.Task {
	return store.Task{
		ID:            "shop-db-1",
		App:           "shop",
		Service:       "db",
		Slot:          1,
		DesiredState:  "running",
		DesiredHost:   "host1",
		ObservedState: "running",
		Host:          "host1",
		ContainerID:   "3f2a9c1b7d4e",
		IPs:           []string{"10.200.0.2"},
	}
}

// Volume returns the shop data volume, owned by host1 at generation 1.
func Volume() store.Volume {
	return store.Volume{Name: "shop_data", Backend: "copy", OwnerHost: "host1", Generation: 1, SizeBytes: 64 << 20}
}

// Network returns the shop overlay network.
func Network() store.Network {
	return store.Network{Name: "shop_default", Subnet: "10.200.0.0/24", VNI: 4097}
}

// Lease returns the lease of the mock task's address.
func Lease() store.IPLease {
	return store.IPLease{Network: "shop_default", Addr: "10.200.0.2", TaskID: "shop-db-1", MAC: "02:42:0a:c8:00:02"}
}

// Move returns a move of the mock task from host1 to host2, pre-copying.
func Move() store.Move {
	return store.Move{
		ID:      "move-1",
		TaskID:  "shop-db-1",
		From:    "host1",
		To:      "host2",
		Step:    "precopy",
		State:   "running",
		Started: Now,
		Updated: Now,
	}
}

// Var returns a cluster variable.
func Var() store.Var {
	return store.Var{Key: "lab/greeting", Value: "hello"}
}
