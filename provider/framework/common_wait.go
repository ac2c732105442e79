package framework

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
)

// failingWaitReasons are container waiting reasons that do not fix
// themselves: a wait for readiness ends at once when it sees one.
var failingWaitReasons = map[string]bool{
	"ErrImagePull": true, "ImagePullBackOff": true, "InvalidImageName": true,
	"CrashLoopBackOff": true, "CreateContainerError": true, "RunContainerError": true,
}

// evidenceTimeout bounds the collection of events and logs for an error.
const evidenceTimeout = 10 * time.Second

// logTailLines is how many log lines of a failing container an error shows.
const logTailLines = 20

// podFailure returns why a pod will not become Ready by itself, or "".
func podFailure(p *api.Pod) string {
	if p.Status.Phase == api.PodFailed || p.Status.Phase == api.PodSucceeded {
		return fmt.Sprintf("the pod finished (phase %s)", p.Status.Phase)
	}
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil && failingWaitReasons[w.Reason] {
			return fmt.Sprintf("container %q is %s", cs.Name, w.Reason)
		}
	}
	return ""
}

// waitPodReady polls until the pod is Running and Ready, or fails early with
// the pod's reasons, events and logs when it cannot get there.
func waitPodReady(ctx context.Context, cli *client.Client, ns, name string) (*api.Pod, error) {
	var p api.Pod
	for {
		err := cli.Get(ctx, ns, name, &p)
		switch {
		case err == nil && p.Status.Phase == api.PodRunning && api.IsPodReady(&p):
			return &p, nil
		case err == nil:
			if why := podFailure(&p); why != "" {
				return &p, fmt.Errorf("pod %s/%s will not become ready: %s\n\n%s", ns, name, why, podEvidence(ctx, cli, &p))
			}
		case api.IsNotFound(err):
			return nil, fmt.Errorf("pod %s/%s was deleted while waiting for it to become ready", ns, name)
		}
		tflog.Debug(ctx, "waiting for the pod to become ready", map[string]any{"pod": ns + "/" + name, "phase": string(p.Status.Phase)})
		if !sleep(ctx, pollInterval) {
			last := "never read"
			if p.Metadata.UID != "" {
				last = podEvidence(context.WithoutCancel(ctx), cli, &p)
			}
			return &p, fmt.Errorf("pod %s/%s did not become ready in time (phase %q)\n\n%s", ns, name, p.Status.Phase, last)
		}
	}
}

// podEvidence describes why a pod is not ready: its phase and conditions,
// each container's state and last termination, the pod's recent events and
// the last log lines of containers that are not ready (when the node's
// agent is reachable).
func podEvidence(ctx context.Context, cli *client.Client, p *api.Pod) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), evidenceTimeout)
	defer cancel()
	var b strings.Builder
	fmt.Fprintf(&b, "Pod %s/%s: phase %s", p.Metadata.Namespace, p.Metadata.Name, orDash(string(p.Status.Phase)))
	if p.Spec.NodeName != "" {
		fmt.Fprintf(&b, " on node %s", p.Spec.NodeName)
	}
	if p.Status.Reason != "" || p.Status.Message != "" {
		fmt.Fprintf(&b, " (%s: %s)", p.Status.Reason, p.Status.Message)
	}
	b.WriteString("\n")
	if c := api.FindCondition(p.Status.Conditions, api.PodReady); c != nil && c.Status != api.ConditionTrue && c.Message != "" {
		fmt.Fprintf(&b, "  not ready: %s\n", c.Message)
	}
	for _, cs := range p.Status.ContainerStatuses {
		fmt.Fprintf(&b, "  container %s (%s): %s, ready %t, restarts %d\n", cs.Name, cs.Image, stateText(cs.State), cs.Ready, cs.RestartCount)
		if t := cs.LastState.Terminated; t != nil {
			fmt.Fprintf(&b, "    last termination: %s\n", stateText(cs.LastState))
		}
		if !cs.Ready {
			if lines := logTail(ctx, cli, p, cs.Name); lines != "" {
				fmt.Fprintf(&b, "    last log lines:\n%s", indent(lines, "      "))
			}
		}
	}
	if evs := eventsFor(ctx, cli, p.Metadata.Namespace, "Pod", p.Metadata.Name); evs != "" {
		b.WriteString("  events:\n" + evs)
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func stateText(s api.ContainerState) string {
	switch {
	case s.Running != nil:
		return "running"
	case s.Waiting != nil:
		return strings.TrimSpace("waiting: " + s.Waiting.Reason + " " + s.Waiting.Message)
	case s.Terminated != nil:
		t := s.Terminated
		out := fmt.Sprintf("terminated: %s, exit code %d", orDash(t.Reason), t.ExitCode)
		if t.Message != "" {
			out += "; " + strings.TrimSpace(t.Message)
		}
		return out
	}
	return "unknown"
}

func indent(s, prefix string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString(prefix + l + "\n")
	}
	return b.String()
}

// logTail returns the last log lines of a container, or "" when the
// node's agent cannot be reached (the error says so in the debug log).
func logTail(ctx context.Context, cli *client.Client, p *api.Pod, container string) string {
	rc, err := cli.Logs(ctx, p.Metadata.Namespace, p.Metadata.Name, client.LogOptions{Container: container, TailLines: logTailLines})
	if err != nil {
		tflog.Debug(ctx, "container logs unavailable", map[string]any{"pod": p.Metadata.Name, "container": container, "error": err.Error()})
		return ""
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 16<<10))
	if err != nil && !errors.Is(err, io.EOF) {
		return ""
	}
	return string(data)
}

// eventsFor lists the recent events about an object (or, with a name
// ending in "-", about every object whose name starts with it).
func eventsFor(ctx context.Context, cli *client.Client, ns, kind, name string) string {
	var list api.EventList
	if err := cli.List(ctx, &list, client.ListOptions{Namespace: ns}); err != nil {
		return ""
	}
	var evs []api.Event
	for _, e := range list.Items {
		o := e.InvolvedObject
		if o.Kind != kind {
			continue
		}
		if o.Name == name || (strings.HasSuffix(name, "-") && strings.HasPrefix(o.Name, name)) {
			evs = append(evs, e)
		}
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].LastTimestamp.Before(evs[j].LastTimestamp) })
	if len(evs) > 10 {
		evs = evs[len(evs)-10:]
	}
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "    %s %s %s/%s: %s (x%d)\n", e.Type, e.Reason, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Message, e.Count)
	}
	return b.String()
}

// rolloutOutcome is how a rollout ended.
type rolloutOutcome struct {
	deployment *api.Deployment
	err        error
}

// waitRollout polls until the deployment's controller has acted on
// generation and the rollout has ended: Complete returns the deployment;
// RolledBack, Paused or Failed return it with an error that says what is
// live now and carries the failing pods' evidence.
func waitRollout(ctx context.Context, cli *client.Client, ns, name string, generation int64) rolloutOutcome {
	var d api.Deployment
	seen := &failureLog{byPod: map[string]string{}}
	for {
		if err := cli.Get(ctx, ns, name, &d); err == nil && d.Status.ObservedGeneration >= generation {
			switch d.Status.RolloutState {
			case api.RolloutComplete:
				return rolloutOutcome{deployment: &d}
			case api.RolloutRolledBack, api.RolloutPaused, api.RolloutFailed:
				return rolloutOutcome{deployment: &d, err: rolloutError(ctx, cli, &d, seen)}
			}
			seen.record(ctx, cli, &d)
			if d.Spec.Paused {
				// Paused by the user: there is nothing to wait for.
				return rolloutOutcome{deployment: &d}
			}
		} else if api.IsNotFound(err) {
			return rolloutOutcome{err: fmt.Errorf("deployment %s/%s was deleted during its rollout", ns, name)}
		}
		tflog.Debug(ctx, "waiting for the rollout", map[string]any{
			"deployment": ns + "/" + name, "state": string(d.Status.RolloutState),
			"updated": d.Status.UpdatedReplicas, "available": d.Status.AvailableReplicas,
		})
		if !sleep(ctx, pollInterval) {
			if d.Metadata.UID == "" {
				return rolloutOutcome{err: fmt.Errorf("wait for the rollout of deployment %s/%s: %w", ns, name, ctx.Err())}
			}
			err := fmt.Errorf("rollout of deployment %s/%s did not finish in time: revision %d is desired, revision %d is live, %d of %d replicas updated and %d available (%s)\n\n%s",
				ns, name, d.Status.DesiredRevision, d.Status.LiveRevision, d.Status.UpdatedReplicas, replicasOf(&d), d.Status.AvailableReplicas,
				orDash(d.Status.Message), failingPodsEvidence(context.WithoutCancel(ctx), cli, &d, seen))
			return rolloutOutcome{deployment: &d, err: err}
		}
	}
}

func replicasOf(d *api.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return api.DefaultReplicas
	}
	return *d.Spec.Replicas
}

// rolloutError says what is live after a failed rollout and why it failed.
func rolloutError(ctx context.Context, cli *client.Client, d *api.Deployment, seen *failureLog) error {
	s := d.Status
	key := d.Metadata.Namespace + "/" + d.Metadata.Name
	var what string
	switch s.RolloutState {
	case api.RolloutRolledBack:
		what = fmt.Sprintf("the rollout of revision %d failed and the control plane rolled deployment %s back: revision %d is live and serving, and the deployment's template is that revision's again, so the next plan shows your change once more", s.FailedRevision, key, s.LiveRevision)
	case api.RolloutPaused:
		what = fmt.Sprintf("the rollout of revision %d failed and deployment %s is paused where it stopped: revision %d is live, %d of %d replicas run the new revision; fix the template, or set paused = false to retry", s.FailedRevision, key, s.LiveRevision, s.UpdatedReplicas, replicasOf(d))
	default:
		what = fmt.Sprintf("the rollout of revision %d of deployment %s failed: revision %d is live", s.FailedRevision, key, s.LiveRevision)
	}
	return fmt.Errorf("%s.\n\nWhy: %s\n\n%s", what, orDash(s.Message), failingPodsEvidence(ctx, cli, d, seen))
}

// failingPodsEvidence collects the evidence of a deployment's pods that
// are not ready, and the warning events of its pods that are already gone.
func failingPodsEvidence(ctx context.Context, cli *client.Client, d *api.Deployment, seen *failureLog) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), evidenceTimeout)
	defer cancel()
	var b strings.Builder
	var pods api.PodList
	shown := map[string]bool{}
	if err := cli.List(ctx, &pods, client.ListOptions{Namespace: d.Metadata.Namespace, Labels: d.Spec.Selector}); err == nil {
		for i := range pods.Items {
			p := &pods.Items[i]
			if api.IsPodReady(p) || api.IsPodTerminating(p) || len(shown) >= 3 {
				continue
			}
			shown[p.Metadata.Name] = true
			b.WriteString(podEvidence(ctx, cli, p))
		}
	}
	// Pods the controller removed (rolled back) keep the evidence seen
	// while they failed.
	for _, name := range seen.order {
		if !shown[name] && len(shown) < 3 {
			shown[name] = true
			b.WriteString("(seen while the rollout ran) " + seen.byPod[name])
		}
	}
	if evs := eventsFor(ctx, cli, d.Metadata.Namespace, "Pod", d.Metadata.Name+"-"); evs != "" {
		b.WriteString("Events of the deployment's pods:\n" + evs)
	}
	if evs := eventsFor(ctx, cli, d.Metadata.Namespace, "Deployment", d.Metadata.Name); evs != "" {
		b.WriteString("Events of the deployment:\n" + evs)
	}
	if b.Len() == 0 {
		return "No failing pod or event is left to show."
	}
	return b.String()
}

// failureLog remembers the evidence of pods seen failing during a rollout,
// since a rollback deletes them before the outcome is known.
type failureLog struct {
	order []string
	byPod map[string]string
}

// record lists the deployment's pods and keeps the evidence of each newly
// failing one.
func (f *failureLog) record(ctx context.Context, cli *client.Client, d *api.Deployment) {
	if len(f.order) >= 3 {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var pods api.PodList
	if err := cli.List(rctx, &pods, client.ListOptions{Namespace: d.Metadata.Namespace, Labels: d.Spec.Selector}); err != nil {
		return
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if _, ok := f.byPod[p.Metadata.Name]; ok || podFailure(p) == "" || len(f.order) >= 3 {
			continue
		}
		f.byPod[p.Metadata.Name] = podEvidence(ctx, cli, p)
		f.order = append(f.order, p.Metadata.Name)
	}
}
