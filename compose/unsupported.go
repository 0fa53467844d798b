package compose

import (
	"fmt"
	"sort"

	"github.com/compose-spec/compose-go/v2/types"
)

// What clusterctl honours, key by key. Anything else the user wrote is
// named in a warning. The lists follow the raw model (what the files say,
// after merging and interpolation), not compose-go's typed project, which
// fills in defaults the user never wrote.
var (
	supportedTop = keys("name", "version", "services", "volumes", "networks")
	// build is honoured only in the sense that a service with an image
	// runs that image; Load refuses build without image.
	supportedService = keys("image", "command", "entrypoint", "environment", "env_file", "labels", "ports",
		"volumes", "networks", "depends_on", "healthcheck", "restart", "deploy", "network_mode", "volumes_from",
		"profiles", "container_name", "hostname", "scale")
	supportedDeploy    = keys("replicas", "placement", "resources", "restart_policy", "mode")
	supportedPlacement = keys("constraints", "preferences")
	supportedResources = keys("limits", "reservations")
	supportedVolume    = keys("driver", "driver_opts", "external", "name", "labels")
	supportedNetwork   = keys("driver", "driver_opts", "ipam", "external", "name", "labels")
)

func keys(k ...string) map[string]bool {
	m := make(map[string]bool, len(k))
	for _, s := range k {
		m[s] = true
	}
	return m
}

// unsupported lists a warning for every key of the model that clusterctl
// does not honour, in a stable order.
func unsupported(model map[string]any, p *types.Project) []string {
	var w []string
	w = append(w, unknownKeys("top level", model, supportedTop)...)
	for _, name := range sortedKeys(asMap(model["services"])) {
		svc := asMap(asMap(model["services"])[name])
		where := "service " + name
		w = append(w, unknownKeys(where, svc, supportedService)...)
		if _, ok := svc["build"]; ok {
			w = append(w, fmt.Sprintf("%s: build is ignored: clusterctl runs the image %s", where, p.Services[name].Image))
		}
		deploy := asMap(svc["deploy"])
		w = append(w, unknownKeys(where+" deploy", deploy, supportedDeploy)...)
		w = append(w, unknownKeys(where+" deploy.placement", asMap(deploy["placement"]), supportedPlacement)...)
		w = append(w, unknownKeys(where+" deploy.resources", asMap(deploy["resources"]), supportedResources)...)
		if mode, ok := deploy["mode"].(string); ok && mode != "replicated" {
			w = append(w, fmt.Sprintf("%s: deploy.mode %s is not supported: deployed as replicated", where, mode))
		}
	}
	for _, name := range sortedKeys(asMap(model["volumes"])) {
		w = append(w, unknownKeys("volume "+name, asMap(asMap(model["volumes"])[name]), supportedVolume)...)
	}
	for _, name := range sortedKeys(asMap(model["networks"])) {
		w = append(w, unknownKeys("network "+name, asMap(asMap(model["networks"])[name]), supportedNetwork)...)
	}
	return w
}

// unknownKeys names the keys of m not in supported. Extensions (x-*) are
// for the user's own use and never warned about.
func unknownKeys(where string, m map[string]any, supported map[string]bool) []string {
	var w []string
	for _, k := range sortedKeys(m) {
		if !supported[k] && !isExtension(k) {
			w = append(w, fmt.Sprintf("%s: %s is not supported by clusterctl and is ignored", where, k))
		}
	}
	return w
}

func isExtension(k string) bool { return len(k) > 2 && k[:2] == "x-" }

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
