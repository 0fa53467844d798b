package volumes

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/clusterctl/clusterctl/agentapi"
	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/store"
)

// Progress receives a volume operation's progress reports.
type Progress func(agentapi.VolumeProgress)

// Long volume operations, as reports name them.
const (
	OpMove    = "move"
	OpPreCopy = "precopy"
	OpSync    = "sync"
)

// handover is a volume about to change hands: the volume as read, the
// host holding it and the host it goes to.
type handover struct {
	vol      store.Volume
	from, to *store.Host // from is nil for a volume attached nowhere, or on a host that is down (block only)
}

// copiesData says whether the handover streams data from host to host: a
// copy volume that has an owner to copy from.
func (h handover) copiesData() bool { return h.from != nil && h.vol.Backend == store.VolumeCopy }

// planHandover checks that name can go to target: both hosts up with an
// agent, the volume's data reachable. inUseOK allows a volume that a
// container mounts (a pre-copy runs beside its writer).
func (m *Manager) planHandover(name, target string, inUseOK bool) (handover, error) {
	v := m.store.View()
	vol, ok := v.Volume(name)
	if !ok {
		return handover{}, store.Refuse(store.ErrNotFound, "no volume %q", name)
	}
	to, ok := v.Host(target)
	if !ok {
		return handover{}, store.Refuse(store.ErrNotFound, "no host %q in the cluster", target)
	}
	if to.State != store.HostUp || to.AgentAPI == "" {
		return handover{}, store.Refuse(store.ErrConflict, "host %s is %s: its agent cannot take volume %s", target, to.State, name)
	}
	if vol.OwnerHost == target {
		return handover{}, store.Refuse(store.ErrConflict, "volume %s is already attached to %s", name, target)
	}
	if vol.MovingTo != "" && vol.MovingTo != target {
		return handover{}, store.Refuse(store.ErrConflict, "volume %s is being moved to %s", name, vol.MovingTo)
	}
	if users := runningUsers(v, name, vol.Backend == store.VolumeBlock); len(users) > 0 && !inUseOK {
		return handover{}, store.Refuse(store.ErrConflict, "volume %s is in use by %s: stop it first, or move the container with its volume (clusterctl move)", name, users[0])
	}
	h := handover{vol: vol, to: &to}
	if vol.OwnerHost == "" {
		return h, nil
	}
	from, ok := v.Host(vol.OwnerHost)
	if ok && from.State == store.HostUp && from.AgentAPI != "" {
		h.from = &from
		return h, nil
	}
	if vol.Backend == store.VolumeCopy {
		return handover{}, store.Refuse(store.ErrConflict, "volume %s: its data is on %s, which is down: it can move once %s is up", name, vol.OwnerHost, vol.OwnerHost)
	}
	// A block volume's image is on shared storage: the lease of a dead
	// host is taken over; the new generation fences it if it comes back.
	m.log.Warn("taking over the volume of a host that is down", "volume", name, "host", vol.OwnerHost)
	return h, nil
}

// Move hands a volume no container uses to target with its data: a copy
// volume is pre-copied while nothing is locked, marked as moving (no new
// mounts), synced a last time and verified by the target, which then
// holds the lease; a block volume is detached and handed over. The old
// owner's copy is removed once the target has its own, unless keep. On a
// failure before the lease changed hands the volume stays where it was,
// intact and attached; the target keeps what it received, so a retry
// sends only the rest.
func (m *Manager) Move(ctx context.Context, name, target string, keep bool, progress Progress) (api.VolumeReport, error) {
	start := time.Now()
	h, err := m.planHandover(name, target, false)
	if err != nil {
		return api.VolumeReport{}, err
	}
	rep := api.VolumeReport{Volume: name, Op: OpMove, Backend: h.vol.Backend, From: h.vol.OwnerHost, To: target}
	if h.copiesData() {
		if err := m.preCopy(ctx, h, progress, &rep); err != nil {
			return rep, err
		}
	}
	if err := m.handover(ctx, name, target, progress, &rep); err != nil {
		return rep, err
	}
	if err := m.attachOn(ctx, name, target, progress, &rep); err != nil {
		return rep, fmt.Errorf("volume %s now belongs to %s, but attaching it there failed (its data is safe; clusterctl volume attach %s %s tries again): %w", name, target, name, target, err)
	}
	if h.copiesData() && !keep {
		if err := m.cleanup(ctx, name, *h.from, progress, &rep); err != nil {
			return rep, err
		}
	}
	rep.SourceKept = keep && h.copiesData()
	rep.TotalMS = time.Since(start).Milliseconds()
	return rep, nil
}

// PreCopy brings target's staging copy of a copy volume up to date while
// the volume stays where it is, in use or not. Nothing changes hands.
func (m *Manager) PreCopy(ctx context.Context, name, target string, progress Progress) (api.VolumeReport, error) {
	start := time.Now()
	h, err := m.planHandover(name, target, true)
	if err != nil {
		return api.VolumeReport{}, err
	}
	rep := api.VolumeReport{Volume: name, Op: OpPreCopy, Backend: h.vol.Backend, From: h.vol.OwnerHost, To: target, Generation: h.vol.Generation}
	if h.vol.Backend != store.VolumeCopy {
		return rep, store.Refuse(store.ErrInvalid, "volume %s is a block volume: its image is on shared storage, there is nothing to pre-copy", name)
	}
	if h.from == nil {
		return rep, store.Refuse(store.ErrConflict, "volume %s is attached nowhere: it has no data to copy yet", name)
	}
	err = m.preCopy(ctx, h, progress, &rep)
	rep.TotalMS = time.Since(start).Milliseconds()
	return rep, err
}

// preCopy runs pre-copy rounds from the owner to the target.
func (m *Manager) preCopy(ctx context.Context, h handover, progress Progress, rep *api.VolumeReport) error {
	t := time.Now()
	res, err := m.agent(h.from.AgentAPI).Sync(ctx, h.vol.Name, agentapi.SyncRequest{Target: h.to.AgentAPI, TargetHost: h.to.Name}, progress)
	if err != nil {
		return agentRefusal(fmt.Sprintf("pre-copy volume %s from %s to %s", h.vol.Name, h.from.Name, h.to.Name), err)
	}
	addSync(rep, res)
	rep.FlushMS = res.FlushMS
	rep.PreCopyMS = time.Since(t).Milliseconds()
	return nil
}

// addSync adds an agent's sync to a report.
func addSync(rep *api.VolumeReport, res *agentapi.SyncResult) {
	rep.Rounds += res.Rounds
	rep.Bytes, rep.BytesSent, rep.Resent = res.Bytes, rep.BytesSent+res.BytesSent, rep.Resent+res.Resent
}

// Sync is the final step of a handover: it marks the volume as moving (no
// new mounts), then for a copy volume runs the last round once no
// container mounts it and has the target verify and switch its copy in;
// for a block volume it unmounts it on its owner. Then the lease goes to
// target with a new generation. The old owner keeps its copy (Move
// removes it; volume rm removes every host's).
func (m *Manager) Sync(ctx context.Context, name, target string, progress Progress) (api.VolumeReport, error) {
	start := time.Now()
	h, err := m.planHandover(name, target, false)
	if err != nil {
		return api.VolumeReport{}, err
	}
	rep := api.VolumeReport{Volume: name, Op: OpSync, Backend: h.vol.Backend, From: h.vol.OwnerHost, To: target}
	err = m.handover(ctx, name, target, progress, &rep)
	rep.TotalMS = time.Since(start).Milliseconds()
	return rep, err
}

// handover marks the volume moving, does the owner's last step and gives
// target the lease; on a failure before that, it clears the mark, so the
// volume stays usable where it was.
func (m *Manager) handover(ctx context.Context, name, target string, progress Progress, rep *api.VolumeReport) (err error) {
	t := time.Now()
	vol, err := m.mark(name, target)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			m.unmark(name, target)
		}
	}()
	h, err := m.planHandover(name, target, false)
	if err != nil {
		return err
	}
	if h.from != nil {
		if err := m.release(ctx, h, progress, rep); err != nil {
			return err
		}
	}
	handed, err := m.change(name, func(_ *store.View, cur *store.Volume) (bool, error) {
		if cur.MovingTo != target || cur.OwnerHost != vol.OwnerHost {
			return false, store.Refuse(store.ErrConflict, "volume %s changed during its handover to %s", name, target)
		}
		cur.OwnerHost, cur.Generation, cur.MovingTo = target, cur.Generation+1, ""
		if cur.Backend == store.VolumeCopy && rep.Bytes > 0 {
			cur.SizeBytes = rep.Bytes // measured by the move's last round
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	rep.Generation = handed.Generation
	rep.FinalSyncMS = time.Since(t).Milliseconds()
	m.log.Info("volume handed over", "volume", name, "from", vol.OwnerHost, "to", target, "generation", handed.Generation)
	return nil
}

// release does the owner's last step before the lease goes: the final
// sync of a copy volume, the detach of a block one.
func (m *Manager) release(ctx context.Context, h handover, progress Progress, rep *api.VolumeReport) error {
	ag := m.agent(h.from.AgentAPI)
	if h.vol.Backend == store.VolumeBlock {
		report(progress, agentapi.VolumeProgress{Volume: h.vol.Name, Host: h.from.Name, Step: agentapi.StepDetach})
		if err := ag.DetachVolume(ctx, h.vol.Name, localRequest(h.vol)); err != nil {
			return agentRefusal(fmt.Sprintf("detach volume %s on %s", h.vol.Name, h.from.Name), err)
		}
		return nil
	}
	res, err := ag.Sync(ctx, h.vol.Name, agentapi.SyncRequest{Target: h.to.AgentAPI, TargetHost: h.to.Name, Final: true}, progress)
	if err != nil {
		return agentRefusal(fmt.Sprintf("final sync of volume %s from %s to %s", h.vol.Name, h.from.Name, h.to.Name), err)
	}
	addSync(rep, res)
	rep.FinalSyncBytes = res.BytesSent
	return nil
}

// mark records that name is being handed to target; a mark to the same
// target (a retry after a failure) is kept.
func (m *Manager) mark(name, target string) (store.Volume, error) {
	return m.change(name, func(_ *store.View, cur *store.Volume) (bool, error) {
		if cur.MovingTo == target {
			return false, nil
		}
		if cur.MovingTo != "" {
			return false, store.Refuse(store.ErrConflict, "volume %s is being moved to %s", name, cur.MovingTo)
		}
		cur.MovingTo = target
		return true, nil
	})
}

// unmark clears a move's mark after a failure, so the volume can be
// mounted where it is again. A failure to clear is logged: the next move
// to the same target, or its retry, takes the mark over.
func (m *Manager) unmark(name, target string) {
	_, err := m.change(name, func(_ *store.View, cur *store.Volume) (bool, error) {
		if cur.MovingTo != target {
			return false, nil
		}
		cur.MovingTo = ""
		return true, nil
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		m.log.Warn("clear a failed move's mark", "volume", name, "target", target, "err", err)
	}
}

// AttachOn gives host the lease (if nobody holds it) and attaches the
// volume there now, without waiting for a container to mount it.
func (m *Manager) AttachOn(ctx context.Context, name, host string) error {
	if _, err := m.Attach(name, host); err != nil {
		return err
	}
	return m.attachOn(ctx, name, host, nil, &api.VolumeReport{})
}

// attachOn asks host's agent to attach the volume, which host must hold.
func (m *Manager) attachOn(ctx context.Context, name, host string, progress Progress, rep *api.VolumeReport) error {
	t := time.Now()
	v := m.store.View()
	vol, ok := v.Volume(name)
	if !ok {
		return store.Refuse(store.ErrNotFound, "no volume %q", name)
	}
	if vol.OwnerHost != host {
		return store.Refuse(store.ErrConflict, "volume %s is attached to %s, not %s", name, vol.OwnerHost, host)
	}
	h, ok := v.Host(host)
	if !ok || h.AgentAPI == "" {
		return store.Refuse(store.ErrConflict, "host %s has no agent", host)
	}
	report(progress, agentapi.VolumeProgress{Volume: name, Host: host, Step: agentapi.StepAttach})
	if err := m.agent(h.AgentAPI).AttachVolume(ctx, name, localRequest(vol)); err != nil {
		return agentRefusal(fmt.Sprintf("attach volume %s on %s", name, host), err)
	}
	rep.Generation = vol.Generation
	rep.AttachMS = time.Since(t).Milliseconds()
	return nil
}

// Detach unmounts a block volume on its owner and releases its lease, so
// that any host may attach it next. A copy volume's data lives on its
// owner, so it stays attached there: it changes hands by a move.
func (m *Manager) Detach(ctx context.Context, name string) error {
	v := m.store.View()
	vol, ok := v.Volume(name)
	if !ok {
		return store.Refuse(store.ErrNotFound, "no volume %q", name)
	}
	if vol.Backend == store.VolumeCopy {
		return store.Refuse(store.ErrInvalid, "volume %s is a copy volume: its data lives on %s, so it stays attached there; clusterctl volume move takes it elsewhere", name, dash(vol.OwnerHost))
	}
	if vol.OwnerHost == "" {
		return nil
	}
	if users := RunningUsers(v, name); len(users) > 0 {
		return store.Refuse(store.ErrConflict, "volume %s is in use by %s", name, users[0])
	}
	if h, ok := v.Host(vol.OwnerHost); ok && h.State == store.HostUp && h.AgentAPI != "" {
		if err := m.agent(h.AgentAPI).DetachVolume(ctx, name, localRequest(vol)); err != nil {
			return agentRefusal(fmt.Sprintf("detach volume %s on %s", name, h.Name), err)
		}
	}
	_, err := m.change(name, func(_ *store.View, cur *store.Volume) (bool, error) {
		if cur.OwnerHost != vol.OwnerHost || cur.Generation != vol.Generation {
			return false, store.Refuse(store.ErrConflict, "volume %s changed while it was detached", name)
		}
		cur.OwnerHost, cur.MovingTo = "", ""
		return true, nil
	})
	return err
}

// cleanup removes a copy volume's old copy on a host that no longer holds
// it, now that its new owner verified its own.
func (m *Manager) cleanup(ctx context.Context, name string, old store.Host, progress Progress, rep *api.VolumeReport) error {
	t := time.Now()
	report(progress, agentapi.VolumeProgress{Volume: name, Host: old.Name, Step: agentapi.StepCleanup})
	if err := m.agent(old.AgentAPI).RemoveVolume(ctx, name, store.VolumeCopy); err != nil {
		return fmt.Errorf("volume %s moved, but removing its old copy on %s failed (remove it by hand or it goes with volume rm): %w", name, old.Name, err)
	}
	rep.CleanupMS = time.Since(t).Milliseconds()
	return nil
}

// localRequest is what an agent needs to attach or detach vol.
func localRequest(vol store.Volume) agentapi.LocalRequest {
	return agentapi.LocalRequest{Backend: vol.Backend, Generation: vol.Generation, SizeBytes: vol.SizeBytes}
}

// agentRefusal wraps an agent's error: a refusal because of the state
// (in use) stays a conflict for the API; others are failures.
func agentRefusal(doing string, err error) error {
	if agentapi.IsConflict(err) {
		return store.Refuse(store.ErrConflict, "%s: %v", doing, err)
	}
	return fmt.Errorf("%s: %w", doing, err)
}

func report(progress Progress, p agentapi.VolumeProgress) {
	if progress != nil {
		progress(p)
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Reclaim gives a volume's lease back to from after a move to to rolled
// back before any container mounted it on to: from's copy is still the
// data as of the handover (its container was stopped before the last
// sync), so no data has to travel back. A mark of the move (moving_to)
// is cleared. The new generation fences to, should it still hold a stale
// view of the lease.
func (m *Manager) Reclaim(name, from, to string) error {
	_, err := m.change(name, func(_ *store.View, cur *store.Volume) (bool, error) {
		switch {
		case cur.OwnerHost == from && cur.MovingTo == to:
			cur.MovingTo = ""
		case cur.OwnerHost == from || cur.OwnerHost == "" && cur.Backend == store.VolumeBlock:
			return false, nil
		case cur.OwnerHost != to:
			return false, store.Refuse(store.ErrConflict, "volume %s belongs to %s, not %s: not reclaimed for %s", name, cur.OwnerHost, to, from)
		default:
			cur.OwnerHost, cur.Generation, cur.MovingTo = from, cur.Generation+1, ""
		}
		return true, nil
	})
	if err == nil {
		m.log.Info("volume reclaimed after a rolled-back move", "volume", name, "host", from, "from", to)
	}
	return err
}

// RemoveCopy removes the copy a copy volume left on a host that no longer
// holds it, after a move whose target verified its own. The owner's copy
// is never removed this way.
func (m *Manager) RemoveCopy(ctx context.Context, name, host string) error {
	v := m.store.View()
	vol, ok := v.Volume(name)
	if !ok || vol.Backend != store.VolumeCopy {
		return nil
	}
	if vol.OwnerHost == host {
		return store.Refuse(store.ErrConflict, "volume %s belongs to %s: its copy there is the volume", name, host)
	}
	h, ok := v.Host(host)
	if !ok || h.AgentAPI == "" {
		return nil
	}
	return m.cleanup(ctx, name, h, nil, &api.VolumeReport{})
}

// CreateOn makes a copy volume attached on host now (a live move's
// checkpoint travels in one), or finds it so.
func (m *Manager) CreateOn(ctx context.Context, name, host string) error {
	if _, err := m.Create(api.VolumeCreate{Name: name, Options: map[string]string{"backend": store.VolumeCopy}}); err != nil {
		return err
	}
	return m.AttachOn(ctx, name, host)
}

// PathOn is where a volume attached on host is on that host's disk, as
// its agent says.
func (m *Manager) PathOn(ctx context.Context, name, host string) (string, error) {
	h, ok := m.store.View().Host(host)
	if !ok || h.AgentAPI == "" {
		return "", store.Refuse(store.ErrConflict, "host %s has no agent", host)
	}
	st, err := m.agent(h.AgentAPI).Volume(ctx, name)
	if err != nil {
		return "", fmt.Errorf("volume %s on %s: %w", name, host, err)
	}
	if !st.Attached || st.Path == "" {
		return "", store.Refuse(store.ErrConflict, "volume %s is not attached on %s", name, host)
	}
	return st.Path, nil
}
