package deployment

import (
	"time"

	"github.com/berth-io/berth/control/api"
)

// stateInput is what decides a deployment's rollout state.
type stateInput struct {
	prev       api.DeploymentStatus
	generation int64
	paused     bool
	desired    int64 // desired revision number
	complete   bool  // every replica is a new, available pod and no old pod is left
	progressed bool
	now        time.Time
	deadline   time.Duration
}

// stateOutput is the decided state.
type stateOutput struct {
	state          api.RolloutState
	lastProgress   *time.Time
	failedRevision int64
	live           int64
	// exceeded says the progress deadline has passed: the caller applies
	// the failure policy.
	exceeded bool
}

// decideState is the rollout state machine. A generation the controller
// has not seen yet (a user's change) starts a new rollout; the outcomes
// RolledBack and Failed stay until the next such change, so the IaC state
// sees them; Paused holds while spec.paused does.
func decideState(in stateInput) stateOutput {
	out := stateOutput{live: in.prev.LiveRevision, lastProgress: in.prev.LastProgressTime}
	changed := in.generation != in.prev.ObservedGeneration || in.desired != in.prev.DesiredRevision
	now := in.now
	switch {
	case in.paused:
		out.state = api.RolloutPaused
		if in.prev.RolloutState == api.RolloutPaused {
			out.failedRevision = in.prev.FailedRevision
		}
		return out
	case !changed && in.prev.RolloutState == api.RolloutRolledBack:
		out.state = api.RolloutRolledBack
		out.failedRevision = in.prev.FailedRevision
		if in.complete {
			out.live = in.desired
		}
		return out
	case in.complete:
		out.state = api.RolloutComplete
		out.live = in.desired
		if in.prev.RolloutState != api.RolloutComplete || changed {
			out.lastProgress = &now
		}
		return out
	case !changed && in.prev.RolloutState == api.RolloutFailed:
		out.state = api.RolloutFailed
		out.failedRevision = in.prev.FailedRevision
		return out
	}
	out.state = api.RolloutProgressing
	if changed || in.progressed || in.prev.LastProgressTime == nil || in.prev.RolloutState != api.RolloutProgressing {
		out.lastProgress = &now
	}
	if now.Sub(*out.lastProgress) > in.deadline {
		out.exceeded = true
	}
	return out
}

// madeProgress says whether this step moves the rollout forward, as
// Kubernetes counts it: more pods of the desired revision than ever
// before (prev.UpdatedReplicas), old pods or excess new ones removed, or
// more pods available. Replacing pods of the desired revision that
// finished or were lost is not progress: a revision whose pods keep
// failing that way must still reach its deadline rather than roll on
// forever.
func madeProgress(prev api.DeploymentStatus, counts Counts, plan Plan, available int32) bool {
	return counts.NewTotal+plan.CreateNew > prev.UpdatedReplicas ||
		plan.DeleteOldAvailable+plan.DeleteOldUnavailable+plan.DeleteNew > 0 ||
		available > prev.AvailableReplicas
}
