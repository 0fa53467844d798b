package agent

import "testing"

func TestStatusLine(t *testing.T) {
	cases := []struct {
		status string
		health string
		exit   int
	}{
		{"Up 5 seconds (healthy)", "healthy", 0},
		{"Up 2 minutes (unhealthy)", "unhealthy", 0},
		{"Up 1 second (health: starting)", "starting", 0},
		{"Up 3 hours", "", 0},
		{"Exited (137) 5 seconds ago", "", 137},
		{"Exited (0) About a minute ago", "", 0},
		{"Created", "", 0},
	}
	for _, c := range cases {
		if got := healthOf(c.status); got != c.health {
			t.Errorf("healthOf(%q) = %q, want %q", c.status, got, c.health)
		}
		if got := exitCodeOf(c.status); got != c.exit {
			t.Errorf("exitCodeOf(%q) = %d, want %d", c.status, got, c.exit)
		}
	}
}
