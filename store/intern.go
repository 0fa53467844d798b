package store

// internMax bounds an interner: past it, the table starts over, so a
// stream of ever-new values cannot grow it without end.
const internMax = 1 << 16

// interner hands out one copy of each repeated string.
//
// Decoding gives every string of every object its own allocation, yet
// most fields of a task repeat across thousands of tasks: the app, the
// service, the host, the states, the version. Interned, a million tasks of
// a thousand services hold a thousand service names instead of a million,
// which saves about 55 bytes per task in every replica. It is a plain map,
// not the unique package: a store interns only inside a write transaction,
// one at a time, and the unique package's concurrent table cost ten times
// as much per string.
type interner struct {
	m map[string]string
}

// newInterner returns an empty interner.
func newInterner() *interner { return &interner{m: map[string]string{}} }

// intern returns the interner's copy of s, making s that copy if it has
// none. Decoded strings are their own allocations, so keeping one keeps no
// larger buffer alive.
func (in *interner) intern(s string) string {
	if s == "" {
		return s
	}
	if c, ok := in.m[s]; ok {
		return c
	}
	if len(in.m) >= internMax {
		clear(in.m)
	}
	in.m[s] = s
	return s
}

// internTask interns the fields of t that repeat across tasks. IDs,
// container IDs and messages are unique or rare, and left alone.
func internTask(in *interner, t *Task) {
	t.App = in.intern(t.App)
	t.Service = in.intern(t.Service)
	t.DesiredState = in.intern(t.DesiredState)
	t.DesiredHost = in.intern(t.DesiredHost)
	t.Version = in.intern(t.Version)
	t.ObservedState = in.intern(t.ObservedState)
	t.Host = in.intern(t.Host)
	t.Health = in.intern(t.Health)
}
