package scheduler

import (
	"cmp"
	"errors"
	"slices"
	"strconv"
	"strings"
)

// Placement says which host a task should run on.
type Placement struct {
	TaskID string
	Host   string
	// Score is the host's score under the stack's strategy, higher is
	// better: for spread, minus the service's tasks already there; for
	// binpack, the host's used fraction with the task. It compares hosts
	// for one task only; it is for display and debugging.
	Score float64
}

// Failure says why a task could not be placed, in one line for the user,
// like "web.4: no host fits: 3 hosts: port 8080/tcp in use".
type Failure struct {
	TaskID string
	Reason string
}

// Plan is the scheduler's answer: where each task goes, and why the others
// go nowhere. The leader checks it against current state before committing.
type Plan struct {
	Placements []Placement
	Failures   []Failure
}

// Err returns nil if every task was placed, or an error with one line per
// failure, for callers that treat any failure as fatal.
func (p Plan) Err() error {
	if len(p.Failures) == 0 {
		return nil
	}
	errs := make([]error, len(p.Failures))
	for i, f := range p.Failures {
		errs[i] = errors.New(f.Reason)
	}
	return errors.Join(errs...)
}

// summarize turns per-reason host counts into "3 hosts: reason; 1 host:
// reason", most frequent first and then alphabetically, so the line is the
// same for the same state.
func summarize(rejected map[string]int) string {
	if len(rejected) == 0 {
		return "no hosts"
	}
	reasons := make([]string, 0, len(rejected))
	for r := range rejected {
		reasons = append(reasons, r)
	}
	slices.SortFunc(reasons, func(a, b string) int {
		if c := cmp.Compare(rejected[b], rejected[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	var sb strings.Builder
	for i, r := range reasons {
		if i > 0 {
			sb.WriteString("; ")
		}
		sb.WriteString(hostCount(rejected[r]) + ": " + r)
	}
	return sb.String()
}

// hostCount returns "1 host" or "N hosts".
func hostCount(n int) string {
	if n == 1 {
		return "1 host"
	}
	return strconv.Itoa(n) + " hosts"
}
