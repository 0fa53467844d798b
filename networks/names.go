package networks

import "strings"

// Names the managers and the agents agree on.
const (
	// DriverName is the Docker network driver of cluster networks:
	// agents serve it as /run/docker/plugins/clusternet.sock.
	DriverName = "clusternet"
	// IPAMDriverName is their Docker IPAM driver (clusteripam.sock).
	IPAMDriverName = "clusteripam"
	// EndpointTaskOpt is the endpoint driver option (EndpointSettings.
	// DriverOpts, docker network connect --driver-opt) naming the task an
	// endpoint is for: the placement code sets it, and the network driver
	// refuses a task's address to an endpoint of anything else.
	EndpointTaskOpt = "io.clusterctl.task"
	// adHocPrefix starts the owner of an address Docker asked for outside
	// any task (a container run by hand).
	adHocPrefix = "docker:"
)

// AdHocOwner names the owner of an address a container run by hand on
// host asked for; id tells it from the others.
func AdHocOwner(host, id string) string { return adHocPrefix + host + ":" + id }

// IsAdHoc says whether a lease's owner is a container run by hand, not a
// task: Docker frees such an address, the leader leaves it alone.
func IsAdHoc(owner string) bool { return strings.HasPrefix(owner, adHocPrefix) }
