//go:build e2e

package e2e

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestDemo runs what `make demo` runs, on a fresh lab: the database and a
// web front end move while the prober visits, and the last line says the
// database kept its address and its data.
func TestDemo(t *testing.T) {
	c := labCLI(t)
	cmd := exec.Command(binary, "demo", "--images", images, "-f", "../samples/dockercon/compose.yml")
	cmd.Env = append(cmd.Environ(), "CLUSTERCTL_CONTEXT="+c.context)
	out, err := cmd.CombinedOutput()
	t.Logf("demo:\n%s", out)
	if err != nil {
		t.Fatalf("clusterctl demo: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	last := lines[len(lines)-1]
	ok := regexp.MustCompile(`^demo: ok moved=db from=host[123] to=host[123] ip_kept=true data_kept=true downtime_ms=\d+$`)
	if !ok.MatchString(last) {
		t.Errorf("last line %q, want %s", last, ok)
	}
	if from, to := field(last, "from"), field(last, "to"); from == to {
		t.Errorf("db moved from %s to %s", from, to)
	}
}

// field is the value of key=value in a line.
func field(line, key string) string {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}
