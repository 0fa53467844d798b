package volumes

import (
	"strings"
	"testing"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/internal/checks"
)

// FuzzVolumeRequests sends what a plugin Create or `clusterctl volume
// create` carries (a name, a backend, a size, another option) to the
// managers' volume side, then an attach: nothing panics, every refusal is
// one line, and no accepted name could leave the volumes' directory. Its
// seed corpus is in testdata/fuzz.
func FuzzVolumeRequests(f *testing.F) {
	for _, seed := range [][4]string{
		{"db-data", "", "", ""},
		{"pg", "block", "1GiB", ""},
		{"../etc", "copy", "", ""},
		{"a/b", "", "", ""},
		{"x", "nfs", "", ""},
		{"x", "block", "-1", ""},
		{"x", "copy", "1GiB", ""},
		{"x", "", "", "mountpoint"},
		{".hidden", "block", "99999999999999999999TiB", ""},
	} {
		f.Add(seed[0], seed[1], seed[2], seed[3])
	}
	f.Fuzz(func(t *testing.T, name, backend, size, extra string) {
		m := newTestManager(t, nil)
		opts := map[string]string{}
		for k, v := range map[string]string{"backend": backend, "size": size, extra: "1"} {
			if k != "" && v != "" {
				opts[k] = v
			}
		}
		vol, err := m.Create(api.VolumeCreate{Name: name, Options: opts})
		if err != nil {
			checks.OneLine(t, "create", err)
			return
		}
		if vol.Name == "" || strings.ContainsAny(vol.Name, "/\\\x00") || strings.Contains(vol.Name, "..") {
			t.Fatalf("volume name %q accepted", vol.Name)
		}
		if _, err := m.Attach(vol.Name, "host1"); err != nil {
			checks.OneLine(t, "attach", err)
		}
		if _, err := m.Attach(vol.Name, "host2"); err == nil {
			t.Fatalf("volume %s attached to two hosts", vol.Name)
		}
	})
}
