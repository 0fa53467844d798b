package scheduler

import (
	"strings"
	"testing"
)

func TestParseConstraint(t *testing.T) {
	good := []struct {
		in   string
		want Constraint
	}{
		{"node.labels.zone == a", Constraint{"node.labels.zone", "==", "a"}},
		{"node.labels.zone==a", Constraint{"node.labels.zone", "==", "a"}},
		{"  node.hostname != host2  ", Constraint{"node.hostname", "!=", "host2"}},
		{"node.id == host1", Constraint{"node.id", "==", "host1"}},
		{"node.role == manager", Constraint{"node.role", "==", "manager"}},
		{"node.role != Worker", Constraint{"node.role", "!=", "Worker"}},
		{"Node.Labels.Disk == ssd", Constraint{"node.labels.Disk", "==", "ssd"}},
		{"NODE.HOSTNAME == h", Constraint{"node.hostname", "==", "h"}},
		{"node.labels.region == eu-west-1", Constraint{"node.labels.region", "==", "eu-west-1"}},
	}
	for _, tc := range good {
		got, err := ParseConstraint(tc.in)
		if err != nil {
			t.Errorf("ParseConstraint(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseConstraint(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}

	bad := []struct {
		in, wantErr string
	}{
		{"", "want KEY == VALUE or KEY != VALUE"},
		{"node.labels.zone = a", "want KEY == VALUE or KEY != VALUE"},
		{"node.labels.zone", "want KEY == VALUE or KEY != VALUE"},
		{"== a", "missing key"},
		{"node.labels.zone ==", "missing value"},
		{"node.labels.zone == a == b", "more than one operator"},
		{"node.labels.zone == a != b", "more than one operator"},
		{"node.name == a", `"node.name": unknown key (want node.hostname, node.id, node.role or node.labels.NAME)`},
		{"engine.labels.os == linux", "unknown key"},
		{"node.labels. == a", `label name "": must be non-empty`},
		{"node.labels.my zone == a", `label name "my zone"`},
		{"node.role == boss", `role "boss": want manager or worker`},
	}
	for _, tc := range bad {
		_, err := ParseConstraint(tc.in)
		if err == nil {
			t.Errorf("ParseConstraint(%q) succeeded, want error containing %q", tc.in, tc.wantErr)
			continue
		}
		if !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("ParseConstraint(%q) error = %q, want it to contain %q", tc.in, err, tc.wantErr)
		}
	}
}

func TestTaskSpecValidate(t *testing.T) {
	cases := []struct {
		name    string
		task    TaskSpec
		wantErr string
	}{
		{"ok", testTask("web", 1, withPort(80, ""), withCPUs(0.5), withSpread("node.labels.zone")), ""},
		{"bad op", testTask("web", 1, func(t *TaskSpec) { t.Constraints = []Constraint{{"node.hostname", "=", "a"}} }), `operator "="`},
		{"bad spread", testTask("web", 1, withSpread("zone")), `spread preference "zone": "zone": unknown key`},
		{"negative cpu", testTask("web", 1, withCPUs(-1)), "cpu reservation -1"},
		{"negative memory", testTask("web", 1, withMemory(-1)), "memory reservation -1"},
		{"bad protocol", testTask("web", 1, withPort(80, "sctp")), `protocol "sctp": want tcp or udp`},
		{"self colocation", testTask("web", 1, withColocate("web")), "cannot share a host with itself"},
	}
	for _, tc := range cases {
		err := tc.task.Validate()
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: Validate: %v", tc.name, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: Validate = %v, want error containing %q", tc.name, err, tc.wantErr)
		}
	}
}

func TestPortString(t *testing.T) {
	for _, tc := range []struct {
		p    Port
		want string
	}{
		{Port{8080, ""}, "8080/tcp"},
		{Port{8080, "TCP"}, "8080/tcp"},
		{Port{53, "udp"}, "53/udp"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.p, got, tc.want)
		}
	}
}

func TestTaskName(t *testing.T) {
	if got := testTask("web", 4).Name(); got != "web.4" {
		t.Errorf("Name = %q, want web.4", got)
	}
}
