package contextfile_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/clusterctl/clusterctl/contextfile"
)

func TestPathPrecedence(t *testing.T) {
	xdg := t.TempDir()
	home := t.TempDir()
	tmp := t.TempDir()
	tests := []struct {
		name string
		flag string
		env  string
		xdg  string
		home string
		want string
	}{
		{"flag beats env", "/from/flag.json", "/from/env.json", xdg, home, "/from/flag.json"},
		{"env beats default", "", "/from/env.json", xdg, home, "/from/env.json"},
		{"default under XDG_CONFIG_HOME", "", "", xdg, home, filepath.Join(xdg, "clusterctl", "context.json")},
		{"default under HOME/.config", "", "", "", home, filepath.Join(home, ".config", "clusterctl", "context.json")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(contextfile.EnvVar, tt.env)
			t.Setenv("XDG_CONFIG_HOME", tt.xdg)
			t.Setenv("HOME", tt.home)
			t.Setenv("TMPDIR", tmp)
			if got := contextfile.Path(tt.flag); got != tt.want {
				t.Errorf("Path(%q) = %q, want %q", tt.flag, got, tt.want)
			}
		})
	}
}

// With no usable config dir, Path still gives a path: a file in the temp dir.
func TestPathWithoutConfigDir(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv(contextfile.EnvVar, "")
	t.Setenv("XDG_CONFIG_HOME", "")
	t.Setenv("HOME", "")
	t.Setenv("TMPDIR", tmp)
	got := contextfile.Path("")
	if !strings.HasPrefix(got, tmp+string(filepath.Separator)) || filepath.Base(got) != "context.json" {
		t.Errorf("Path(\"\") = %q, want a context.json under %s", got, tmp)
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "dirs", "context.json")
	want := &contextfile.Context{
		Name: "lab",
		Hosts: []contextfile.Host{
			{Name: "host1", Addr: "10.99.0.11", Docker: "tcp://10.99.0.11:2375"},
			{Name: "host2", Addr: "10.99.0.12", Docker: "tcp://10.99.0.12:2375"},
		},
	}
	if err := contextfile.Save(path, want); err != nil {
		t.Fatalf("Save: %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("Save did not write %s: %v", path, err)
	}
	if !bytes.HasSuffix(b, []byte("\n")) {
		t.Errorf("file does not end in a newline: %q", b)
	}
	if !json.Valid(b) {
		t.Errorf("file is not valid JSON: %s", b)
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	if raw["name"] != "lab" {
		t.Errorf(`file has "name" %v, want "lab": %s`, raw["name"], b)
	}
	got, err := contextfile.Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load = %+v, want %+v", got, want)
	}

	// Saving again replaces the file rather than appending to it.
	want.Hosts = want.Hosts[:1]
	if err := contextfile.Save(path, want); err != nil {
		t.Fatalf("second Save: %v", err)
	}
	if got, err = contextfile.Load(path); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Load after second Save = %+v, %v; want %+v", got, err, want)
	}
}

func TestLoadMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.json")
	c, err := contextfile.Load(path)
	if err == nil {
		t.Fatalf("Load of a missing file = %+v, want an error", c)
	}
	for _, want := range []string{path, "clusterctl lab up", "--context"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestLoadInvalidJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(path, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := contextfile.Load(path)
	if err == nil {
		t.Fatalf("Load of invalid JSON = %+v, want an error", c)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not mention the path %s", err, path)
	}
	if strings.Contains(err.Error(), "clusterctl lab up") {
		t.Errorf("error %q treats a broken file as a missing one", err)
	}
}

func TestRemoveIfOwned(t *testing.T) {
	tests := []struct {
		name      string
		content   *contextfile.Context // nil: no file
		owner     string
		wantExist bool
	}{
		{"owned file is removed", &contextfile.Context{Name: "lab"}, "lab", false},
		{"other writer's file stays", &contextfile.Context{Name: "prod"}, "lab", true},
		{"unnamed file stays", &contextfile.Context{}, "lab", true},
		{"missing file is fine", nil, "lab", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "context.json")
			if tt.content != nil {
				if err := contextfile.Save(path, tt.content); err != nil {
					t.Fatal(err)
				}
			}
			if err := contextfile.RemoveIfOwned(path, tt.owner); err != nil {
				t.Fatalf("RemoveIfOwned: %v", err)
			}
			_, err := os.Stat(path)
			if exists := err == nil; exists != tt.wantExist {
				t.Errorf("after RemoveIfOwned file exists = %v, want %v (stat: %v)", exists, tt.wantExist, err)
			}
			if !tt.wantExist && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("stat after removal: %v, want not-exist", err)
			}
		})
	}
}

// A file that is not a context (say, the user pointed --context at the wrong
// file) is never deleted.
func TestRemoveIfOwnedLeavesUnreadableFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "context.json")
	if err := os.WriteFile(path, []byte("not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := contextfile.RemoveIfOwned(path, "lab"); err != nil {
		t.Fatalf("RemoveIfOwned: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("file was removed: %v", err)
	}
}

// A context file may name its credentials relative to itself (the
// bootstrap's admin/context.json does: "."); Load makes the path absolute.
func TestCredentialsRelativeToTheFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "admin", "context.json")
	if err := contextfile.Save(path, &contextfile.Context{Name: "admin", Servers: []string{"10.0.0.1:7400"}, TLS: "."}); err != nil {
		t.Fatal(err)
	}
	c, err := contextfile.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.TLS != filepath.Join(dir, "admin") {
		t.Errorf("TLS %q, want %q", c.TLS, filepath.Join(dir, "admin"))
	}
	if _, err := c.Creds(); err == nil || !strings.Contains(err.Error(), "ca.pem") {
		t.Errorf("credentials missing from the directory: %v, want it to name ca.pem", err)
	}
	if _, err := (&contextfile.Context{}).Creds(); err == nil || !strings.Contains(err.Error(), "clusterctl login") {
		t.Errorf("a context without credentials: %v, want it to say clusterctl login", err)
	}
}
