package sampleapp

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/clusterctl/clusterctl/compose"
)

// Every shape of the app loads as Compose, with the volume and placement
// it asks for.
func TestComposeLoads(t *testing.T) {
	for _, app := range []App{
		{Name: "shop", Port: 8080, Volume: "backend: copy"},
		{Name: "blk", Port: 8081, Volume: "backend: block, size: 64MiB", WebOnHost1: true},
		{Name: "loc", Port: 8082, Volume: "local"},
		{Name: "net", Port: 8083, WebOnHost1: true},
	} {
		file := filepath.Join(t.TempDir(), "compose.yml")
		if err := os.WriteFile(file, []byte(app.Compose()), 0o644); err != nil {
			t.Fatal(err)
		}
		loaded, err := compose.Load(context.Background(), compose.Options{Files: []string{file}})
		if err != nil {
			t.Fatalf("%s: %v", app.Name, err)
		}
		p := loaded.Project
		vol, hasVol := p.Volumes["data"]
		switch {
		case app.Volume == "" && hasVol, app.Volume != "" && !hasVol:
			t.Errorf("%s: volume %v, want %q", app.Name, hasVol, app.Volume)
		case app.Volume == "local" && vol.Driver != "":
			t.Errorf("%s: driver %q, want Docker's local one", app.Name, vol.Driver)
		case app.Volume != "" && app.Volume != "local" && vol.Driver != "clustervol":
			t.Errorf("%s: driver %q, want clustervol", app.Name, vol.Driver)
		}
		web := p.Services["web"]
		pinned := web.Deploy != nil && len(web.Deploy.Placement.Constraints) == 1
		if pinned != app.WebOnHost1 {
			t.Errorf("%s: web pinned %v, want %v", app.Name, pinned, app.WebOnHost1)
		}
	}
}
