package deployment

import (
	"testing"
	"time"

	"github.com/berth-io/berth/control/api"
)

func TestDecideState(t *testing.T) {
	t0 := time.Unix(10_000, 0)
	at := func(d time.Duration) *time.Time { x := t0.Add(d); return &x }
	prog := api.DeploymentStatus{ObservedGeneration: 2, DesiredRevision: 2, LiveRevision: 1, RolloutState: api.RolloutProgressing, LastProgressTime: at(0)}
	tests := []struct {
		name      string
		in        stateInput
		wantState api.RolloutState
		wantLive  int64
		exceeded  bool
		progress  *time.Time
	}{
		{"a new template starts a rollout and its clock",
			stateInput{prev: api.DeploymentStatus{ObservedGeneration: 1, DesiredRevision: 1, LiveRevision: 1, RolloutState: api.RolloutComplete}, generation: 2, desired: 2, now: t0.Add(time.Hour), deadline: time.Minute},
			api.RolloutProgressing, 1, false, at(time.Hour)},
		{"no progress within the deadline fails",
			stateInput{prev: prog, generation: 2, desired: 2, now: t0.Add(61 * time.Second), deadline: time.Minute},
			api.RolloutProgressing, 1, true, at(0)},
		{"progress resets the deadline",
			stateInput{prev: prog, generation: 2, desired: 2, progressed: true, now: t0.Add(61 * time.Second), deadline: time.Minute},
			api.RolloutProgressing, 1, false, at(61 * time.Second)},
		{"completion makes the desired revision live",
			stateInput{prev: prog, generation: 2, desired: 2, complete: true, now: t0.Add(time.Second), deadline: time.Minute},
			api.RolloutComplete, 2, false, at(time.Second)},
		{"rolled back stays until the user changes the spec",
			stateInput{prev: api.DeploymentStatus{ObservedGeneration: 3, DesiredRevision: 1, LiveRevision: 1, FailedRevision: 2, RolloutState: api.RolloutRolledBack, LastProgressTime: at(0)}, generation: 3, desired: 1, complete: true, now: t0.Add(time.Hour), deadline: time.Minute},
			api.RolloutRolledBack, 1, false, at(0)},
		{"a user's change after a rollback starts a new rollout",
			stateInput{prev: api.DeploymentStatus{ObservedGeneration: 3, DesiredRevision: 1, LiveRevision: 1, FailedRevision: 2, RolloutState: api.RolloutRolledBack, LastProgressTime: at(0)}, generation: 4, desired: 3, now: t0.Add(time.Hour), deadline: time.Minute},
			api.RolloutProgressing, 1, false, at(time.Hour)},
		{"paused holds whatever the pods do",
			stateInput{prev: prog, generation: 3, desired: 2, paused: true, complete: true, now: t0.Add(time.Hour), deadline: time.Minute},
			api.RolloutPaused, 1, false, at(0)},
		{"resuming restarts the clock",
			stateInput{prev: api.DeploymentStatus{ObservedGeneration: 3, DesiredRevision: 2, LiveRevision: 1, RolloutState: api.RolloutPaused, LastProgressTime: at(0)}, generation: 4, desired: 2, now: t0.Add(time.Hour), deadline: time.Minute},
			api.RolloutProgressing, 1, false, at(time.Hour)},
		{"failed without a live revision stays failed",
			stateInput{prev: api.DeploymentStatus{ObservedGeneration: 1, DesiredRevision: 1, FailedRevision: 1, RolloutState: api.RolloutFailed, LastProgressTime: at(0)}, generation: 1, desired: 1, now: t0.Add(time.Hour), deadline: time.Minute},
			api.RolloutFailed, 0, false, at(0)},
		{"a failed first rollout that finally comes up completes",
			stateInput{prev: api.DeploymentStatus{ObservedGeneration: 1, DesiredRevision: 1, FailedRevision: 1, RolloutState: api.RolloutFailed, LastProgressTime: at(0)}, generation: 1, desired: 1, complete: true, now: t0.Add(time.Hour), deadline: time.Minute},
			api.RolloutComplete, 1, false, at(time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decideState(tt.in)
			if got.state != tt.wantState || got.live != tt.wantLive || got.exceeded != tt.exceeded {
				t.Fatalf("got state %s live %d exceeded %v, want %s %d %v", got.state, got.live, got.exceeded, tt.wantState, tt.wantLive, tt.exceeded)
			}
			if (got.lastProgress == nil) != (tt.progress == nil) || got.lastProgress != nil && !got.lastProgress.Equal(*tt.progress) {
				t.Fatalf("lastProgress %v, want %v", got.lastProgress, tt.progress)
			}
		})
	}
}

func TestOnlyForwardStepsCountAsProgress(t *testing.T) {
	prev := api.DeploymentStatus{UpdatedReplicas: 2, AvailableReplicas: 3}
	tests := []struct {
		name      string
		counts    Counts
		plan      Plan
		available int32
		want      bool
	}{
		{"nothing happens", Counts{NewTotal: 2}, Plan{}, 3, false},
		{"a new pod beyond the previous count", Counts{NewTotal: 2}, Plan{CreateNew: 1}, 3, true},
		{"new pods counted beyond the previous count", Counts{NewTotal: 3}, Plan{}, 3, true},
		{"an old pod removed", Counts{NewTotal: 2}, Plan{DeleteOldAvailable: 1}, 3, true},
		{"an unavailable old pod removed", Counts{NewTotal: 2}, Plan{DeleteOldUnavailable: 1}, 3, true},
		{"excess new pods removed", Counts{NewTotal: 2}, Plan{DeleteNew: 1}, 3, true},
		{"one more pod available", Counts{NewTotal: 2}, Plan{}, 4, true},
		{"a finished new pod replaced", Counts{NewTotal: 1}, Plan{CreateNew: 1}, 3, false},
		{"fewer available", Counts{NewTotal: 2}, Plan{}, 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := madeProgress(prev, tt.counts, tt.plan, tt.available); got != tt.want {
				t.Errorf("madeProgress = %v, want %v", got, tt.want)
			}
		})
	}
}
