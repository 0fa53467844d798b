package compose

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// write puts files in a fresh directory and returns their paths.
func write(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func load(t *testing.T, dir string, opts Options) (*App, error) {
	t.Helper()
	for i, f := range opts.Files {
		opts.Files[i] = filepath.Join(dir, f)
	}
	return Load(context.Background(), opts)
}

const hello = `
services:
  web:
    image: sample/web:latest
    ports: ["8080:8080"]
    environment:
      DB_URL: http://db:${DB_PORT}
    depends_on:
      db: {condition: service_healthy}
  db:
    image: sample/kvdb:latest
    volumes: [data:/data]
    healthcheck: {test: ["CMD", "/kvdb", "health"]}
    cap_add: [NET_ADMIN]
    deploy:
      replicas: 1
      endpoint_mode: vip
  debug:
    image: sample/web:latest
    profiles: [debug]
volumes:
  data: {driver: clustervol, driver_opts: {backend: copy}}
x-notes: anything
`

func TestLoadHonoursAndWarns(t *testing.T) {
	dir := write(t, map[string]string{"compose.yml": hello, ".env": "DB_PORT=7000\n"})
	app, err := load(t, dir, Options{Files: []string{"compose.yml"}, Project: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	if app.Project.Name != "hello" {
		t.Errorf("project %q", app.Project.Name)
	}
	if got := app.Project.Services["web"].Environment["DB_URL"]; got == nil || *got != "http://db:7000" {
		t.Errorf(".env interpolation: DB_URL = %v", got)
	}
	if !slices.Equal(app.Order, []string{"db", "web"}) {
		t.Errorf("order %v, want db before web and no inactive profile", app.Order)
	}
	want := []string{
		"service db: cap_add is not supported by clusterctl and is ignored",
		"service db deploy: endpoint_mode is not supported by clusterctl and is ignored",
	}
	if !slices.Equal(app.Warnings, want) {
		t.Errorf("warnings\n%s\nwant\n%s", strings.Join(app.Warnings, "\n"), strings.Join(want, "\n"))
	}
}

func TestLoadProfilesAndMerge(t *testing.T) {
	dir := write(t, map[string]string{
		"compose.yml":  hello,
		"override.yml": "services:\n  web:\n    image: sample/web:v2\n",
		".env":         "DB_PORT=7000\n",
	})
	app, err := load(t, dir, Options{Files: []string{"compose.yml", "override.yml"}, Profiles: []string{"debug"}})
	if err != nil {
		t.Fatal(err)
	}
	if app.Project.Services["web"].Image != "sample/web:v2" {
		t.Errorf("-f override not merged: %s", app.Project.Services["web"].Image)
	}
	if _, ok := app.Project.Services["debug"]; !ok {
		t.Error("profile debug not enabled")
	}
}

func TestLoadRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{"yaml error with its line", "services:\n  web:\n    image: a\n   ports: [1]\n", "line 3, column 4"},
		{"build without image", "services:\n  web:\n    build: .\n", "has build: and no image"},
		{"unknown dependency", "services:\n  web:\n    image: a\n    depends_on: [nope]\n", "nope"},
		{"cycle", "services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [a]\n", "a -> b -> a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := write(t, map[string]string{"compose.yml": tc.body})
			_, err := load(t, dir, Options{Files: []string{"compose.yml"}, Project: "p"})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	if _, err := Load(context.Background(), Options{}); err == nil || !strings.Contains(err.Error(), "-f FILE") {
		t.Fatalf("no files: %v", err)
	}
}
