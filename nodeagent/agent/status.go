package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"time"

	"github.com/berth-io/berth/control/api"
)

// podStatus computes the pod's status from the worker's state, keeping
// transition times of conditions that did not change.
func (w *podWorker) podStatus(pod *api.Pod) api.PodStatus {
	st := api.PodStatus{
		Conditions:         append([]api.Condition(nil), pod.Status.Conditions...),
		HostIP:             w.a.cfg.InternalIP,
		ObservedGeneration: pod.Metadata.Generation,
	}
	if w.ip.IsValid() {
		st.PodIP = w.ip.String()
	}
	if !w.startTime.IsZero() {
		t := w.startTime.UTC()
		st.StartTime = &t
	}
	allReady, running, started, done, failed := true, 0, 0, 0, 0
	for _, c := range pod.Spec.Containers {
		cs := w.ctrs[c.Name]
		s := api.ContainerStatus{Name: c.Name, Image: c.Image}
		if cs == nil {
			s.State.Waiting = &api.ContainerStateWaiting{Reason: "ContainerCreating"}
			if w.netErr != nil {
				s.State.Waiting = &api.ContainerStateWaiting{Reason: "PodNetworkUnavailable", Message: w.netErr.Error()}
			}
			allReady = false
			st.ContainerStatuses = append(st.ContainerStatuses, s)
			continue
		}
		s.ImageID, s.ContainerID, s.RestartCount = cs.imageDigest, cs.id, cs.restartCount
		if cs.lastTerm != nil {
			s.LastState.Terminated = cs.lastTerm
		}
		switch {
		case cs.running:
			running++
			started++
			s.State.Running = &api.ContainerStateRunning{StartedAt: cs.startedAt.UTC()}
			s.Ready = cs.readiness == nil || cs.readiness.Passing()
		case cs.done:
			started++
			done++
			s.State.Terminated = cs.lastTerm
			s.LastState = api.ContainerState{}
			if cs.lastTerm != nil && cs.lastTerm.ExitCode != 0 {
				failed++
			}
		case cs.waiting != nil:
			if cs.lastTerm != nil {
				started++
			}
			s.State.Waiting = cs.waiting
		case cs.lastTerm != nil:
			started++
			s.State.Waiting = &api.ContainerStateWaiting{Reason: "CrashLoopBackOff"}
		default:
			s.State.Waiting = &api.ContainerStateWaiting{Reason: "ContainerCreating"}
		}
		if !s.Ready {
			allReady = false
		}
		st.ContainerStatuses = append(st.ContainerStatuses, s)
	}
	n := len(pod.Spec.Containers)
	switch {
	case done == n && failed > 0:
		st.Phase = api.PodFailed
	case done == n:
		st.Phase = api.PodSucceeded
	case running > 0 || started == n:
		st.Phase = api.PodRunning
	default:
		st.Phase = api.PodPending
	}
	ready := api.Condition{Type: api.PodReady, Status: api.ConditionFalse, Reason: "ContainersNotReady"}
	switch {
	case api.IsPodTerminating(pod):
		ready.Reason = "PodTerminating"
	case allReady && n > 0:
		ready = api.Condition{Type: api.PodReady, Status: api.ConditionTrue}
	}
	now := w.a.now().UTC()
	if prev := api.FindCondition(st.Conditions, api.PodReady); prev != nil && prev.Status == ready.Status && prev.Reason == ready.Reason {
		now = prev.LastTransitionTime
	}
	api.SetCondition(&st.Conditions, ready, now)
	return st
}

// writeStatus writes the pod's status through the status subresource when
// it differs from what the API has.
func (w *podWorker) writeStatus(ctx context.Context, pod *api.Pod) {
	st := w.podStatus(pod)
	if sameStatus(st, pod.Status) {
		return
	}
	pod.Status = st
	ctx, cancel := context.WithTimeout(ctx, w.a.cfg.APITimeout.or(DefaultAPITimeout))
	defer cancel()
	if err := w.a.cli.UpdateStatus(ctx, pod); err != nil {
		if !api.IsConflict(err) && !api.IsNotFound(err) {
			w.a.log.Warn("write pod status", "pod", w.namespace+"/"+w.name, "err", err)
		}
		w.retryAt = w.a.now().Add(500 * time.Millisecond)
		return
	}
	w.a.markContact()
}

func sameStatus(a, b api.PodStatus) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}
