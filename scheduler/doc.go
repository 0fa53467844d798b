// Package scheduler decides which host each task runs on.
//
// It is pure: it reads a Snapshot of the cluster (built by the caller from a
// store.View) and returns a Plan; it does no I/O and keeps no truth of its
// own. The leader checks the plan against the state it has by then and
// commits it, so two managers planning at once cannot both win.
//
// The placement core is built like Nomad's scheduler/feasible, from small
// pieces that a Stack chains together:
//
//   - a source iterator yields candidate hosts: a ring of all hosts (seeded
//     shuffle in production, snapshot order in tests) whose start rotates
//     between placements, or the one host a task is pinned to, or hosts
//     grouped by spread-preference label values, least-loaded group first;
//   - checkers say whether one host can take the task and record why not
//     (host up, constraints, volume locality, co-location, resources, ports);
//   - a limit iterator stops after a few feasible hosts (max(2, ceil(log2 N)),
//     as Nomad does), so a placement costs about the same on 5 hosts as on
//     5000 while most hosts fit;
//   - rankers score the sampled hosts (spread or binpack, after any spread
//     preferences) and the best one wins.
//
// When no host fits, every host is checked once more so the failure can say
// why, aggregated SwarmKit style: "web.4: no host fits: 3 hosts: port
// 8080/tcp in use", most frequent reason first.
package scheduler
