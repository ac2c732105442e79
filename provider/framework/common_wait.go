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
	evs := podEvents(ctx, cli, p.Metadata.Namespace, func(name string) bool { return name == p.Metadata.Name })
	return podReport(p, evs[p.Metadata.Name], false, func(container string) string { return logTail(ctx, cli, p, container) })
}

// maxEventsPerPod bounds the events a pod's report lists (the latest).
const maxEventsPerPod = 10

// podReport formats what explains a pod that is not ready: phase, node
// and why it is not ready, each container's state, readiness, restarts
// and last termination, the pod's events (only Warnings when
// warningsOnly: probe failures, crashes, pull errors) and the last log
// lines tail returns for each container that is not ready.
func podReport(p *api.Pod, events []api.Event, warningsOnly bool, tail func(container string) string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Pod %s/%s", p.Metadata.Namespace, p.Metadata.Name)
	if rev := p.Metadata.Annotations[api.AnnotationRevision]; rev != "" {
		fmt.Fprintf(&b, " (revision %s)", rev)
	}
	fmt.Fprintf(&b, ": phase %s", orDash(string(p.Status.Phase)))
	if p.Spec.NodeName != "" {
		fmt.Fprintf(&b, " on node %s", p.Spec.NodeName)
	}
	if api.IsPodTerminating(p) {
		b.WriteString(", being deleted")
	}
	if p.Status.Reason != "" || p.Status.Message != "" {
		fmt.Fprintf(&b, " (%s: %s)", p.Status.Reason, p.Status.Message)
	}
	b.WriteString("\n")
	if c := api.FindCondition(p.Status.Conditions, api.PodReady); c != nil && c.Status != api.ConditionTrue && c.Message != "" {
		fmt.Fprintf(&b, "  not ready: %s\n", c.Message)
	}
	if c := api.FindCondition(p.Status.Conditions, api.PodScheduled); c != nil && c.Status != api.ConditionTrue && c.Message != "" {
		fmt.Fprintf(&b, "  not scheduled: %s\n", c.Message)
	}
	for _, cs := range p.Status.ContainerStatuses {
		fmt.Fprintf(&b, "  container %s (%s): %s, ready %t, restarts %d\n", cs.Name, cs.Image, stateText(cs.State), cs.Ready, cs.RestartCount)
		if t := cs.LastState.Terminated; t != nil {
			fmt.Fprintf(&b, "    last termination: %s\n", stateText(cs.LastState))
		}
	}
	var shown []api.Event
	for _, e := range events {
		if !warningsOnly || e.Type == api.EventWarning {
			shown = append(shown, e)
		}
	}
	shown = mergeRepeats(shown)
	if len(shown) > maxEventsPerPod {
		shown = shown[len(shown)-maxEventsPerPod:]
	}
	if len(shown) > 0 {
		if warningsOnly {
			b.WriteString("  warnings:\n")
		} else {
			b.WriteString("  events:\n")
		}
		for _, e := range shown {
			fmt.Fprintf(&b, "    %s %s: %s (x%d)\n", e.Type, e.Reason, strings.TrimSpace(e.Message), max(e.Count, 1))
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Ready || tail == nil {
			continue
		}
		if lines := strings.TrimRight(tail(cs.Name), "\n"); lines != "" {
			fmt.Fprintf(&b, "  last log lines of container %s:\n%s", cs.Name, indent(lines, "    "))
		}
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

// logTailTimeout bounds the request for one container's last log lines:
// the node's agent may be slow or gone, and logs are only a help.
const logTailTimeout = 3 * time.Second

// logTail returns the last log lines of a container, or "" when the
// node's agent cannot be reached in time (the error says so in the debug
// log).
func logTail(ctx context.Context, cli *client.Client, p *api.Pod, container string) string {
	ctx, cancel := context.WithTimeout(ctx, logTailTimeout)
	defer cancel()
	rc, err := cli.Logs(ctx, p.Metadata.Namespace, p.Metadata.Name, client.LogOptions{Container: container, TailLines: logTailLines})
	if err != nil {
		tflog.Debug(ctx, "container logs unavailable", map[string]any{"pod": p.Metadata.Name, "container": container, "error": err.Error()})
		return ""
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 16<<10))
	if err != nil && !errors.Is(err, io.EOF) && len(data) == 0 {
		return ""
	}
	return string(data)
}

// mergeRepeats merges events that say the same thing (object, type,
// reason, message) into one that counts them all and keeps the latest
// time (a recorder that could not update an earlier event made a new
// one), and orders them oldest first.
func mergeRepeats(evs []api.Event) []api.Event {
	type sameness struct{ kind, name, typ, reason, msg string }
	index := map[sameness]int{}
	var out []api.Event
	for _, e := range evs {
		k := sameness{e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Type, e.Reason, strings.TrimSpace(e.Message)}
		i, ok := index[k]
		if !ok {
			e.Count = max(e.Count, 1)
			index[k] = len(out)
			out = append(out, e)
			continue
		}
		out[i].Count += max(e.Count, 1)
		if e.LastTimestamp.After(out[i].LastTimestamp) {
			out[i].LastTimestamp = e.LastTimestamp
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].LastTimestamp.Before(out[j].LastTimestamp) })
	return out
}

// podEvents lists the events about the pods whose names match, by pod
// name.
func podEvents(ctx context.Context, cli *client.Client, ns string, match func(name string) bool) map[string][]api.Event {
	var list api.EventList
	if err := cli.List(ctx, &list, client.ListOptions{Namespace: ns}); err != nil {
		tflog.Debug(ctx, "events unavailable", map[string]any{"namespace": ns, "error": err.Error()})
		return nil
	}
	out := map[string][]api.Event{}
	for _, e := range list.Items {
		if o := e.InvolvedObject; o.Kind == "Pod" && match(o.Name) {
			out[o.Name] = append(out[o.Name], e)
		}
	}
	return out
}

// objectWarnings lists the Warning events about one object, oldest first,
// leaving out those whose message is skip.
func objectWarnings(ctx context.Context, cli *client.Client, ns, kind, name, skip string) string {
	var list api.EventList
	if err := cli.List(ctx, &list, client.ListOptions{Namespace: ns}); err != nil {
		return ""
	}
	var evs []api.Event
	for _, e := range list.Items {
		o := e.InvolvedObject
		if o.Kind == kind && o.Name == name && e.Type == api.EventWarning && strings.TrimSpace(e.Message) != strings.TrimSpace(skip) {
			evs = append(evs, e)
		}
	}
	evs = mergeRepeats(evs)
	if len(evs) > maxEventsPerPod {
		evs = evs[len(evs)-maxEventsPerPod:]
	}
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "    %s %s: %s (x%d)\n", e.Type, e.Reason, strings.TrimSpace(e.Message), max(e.Count, 1))
	}
	return b.String()
}

// outcomeMargin is how long past a rollout's progress deadline the wait
// gives the control plane to report the outcome before it fails with what
// it knows: time for a controller leader to be elected anew, notice the
// deadline and apply the failure policy.
const outcomeMargin = 30 * time.Second

// snapshotInterval is how often a rollout wait keeps the evidence of the
// rolling revision's pods that are not ready: a rollback deletes them
// before the outcome is known.
const snapshotInterval = 5 * time.Second

// maxEvidencePods bounds the pods whose evidence an error shows.
const maxEvidencePods = 3

// rolloutOutcome is how a rollout ended.
type rolloutOutcome struct {
	deployment *api.Deployment
	err        error
}

// rolloutWatch waits for the outcome of a rollout; tests shorten its
// timings and stand in for the nodes' logs.
type rolloutWatch struct {
	cli *client.Client
	// poll is how often the deployment is read.
	poll time.Duration
	// margin is how long past the progress deadline the control plane may
	// leave the rollout without progress and without an outcome.
	margin time.Duration
	// snapshotEvery is how often the failing pods' evidence is kept.
	snapshotEvery time.Duration
	// tail returns a container's last log lines, "" when unavailable.
	tail func(ctx context.Context, p *api.Pod, container string) string
	// now is the clock the quiet time is measured with.
	now func() time.Time
}

func newRolloutWatch(cli *client.Client) *rolloutWatch {
	return &rolloutWatch{
		cli: cli, poll: pollInterval, margin: outcomeMargin, snapshotEvery: snapshotInterval,
		tail: func(ctx context.Context, p *api.Pod, container string) string { return logTail(ctx, cli, p, container) },
		now:  time.Now,
	}
}

// waitRollout waits for the rollout of the deployment as applied (its
// generation and template).
func waitRollout(ctx context.Context, cli *client.Client, applied *api.Deployment) rolloutOutcome {
	return newRolloutWatch(cli).wait(ctx, applied)
}

// progressSignal is what changes in a deployment's status when its
// controller acts on it: a new generation observed, a new state, or
// progress recorded.
type progressSignal struct {
	observed int64
	state    api.RolloutState
	progress int64
}

func signalOf(d *api.Deployment) progressSignal {
	s := progressSignal{observed: d.Status.ObservedGeneration, state: d.Status.RolloutState}
	if t := d.Status.LastProgressTime; t != nil {
		s.progress = t.UnixNano()
	}
	return s
}

func progressDeadline(d *api.Deployment) time.Duration {
	if d.Spec.ProgressDeadlineSeconds != nil {
		return time.Duration(*d.Spec.ProgressDeadlineSeconds) * time.Second
	}
	return time.Duration(api.DefaultProgressDeadlineSeconds) * time.Second
}

// wait polls until the deployment's controller has acted on the applied
// generation and the rollout has ended: Complete returns the deployment;
// RolledBack, Paused or Failed return it with an error that says what is
// live now and carries the failing revision's evidence. It never waits
// much past the progress deadline: when the controller has reported
// neither progress nor an outcome for the deadline plus the margin (it
// is not running, or lost the outcome), the wait fails with what is
// known rather than run into the Terraform timeout. The quiet time is
// measured on this machine's clock from the last change the controller
// made to the status, so clocks that disagree do not matter.
func (w *rolloutWatch) wait(ctx context.Context, applied *api.Deployment) rolloutOutcome {
	ns, name, generation := applied.Metadata.Namespace, applied.Metadata.Name, applied.Metadata.Generation
	hash := api.TemplateHash(&applied.Spec.Template)
	var d api.Deployment
	seen := &podSnapshots{byPod: map[string]podSnapshot{}}
	quietSince, snapped := w.now(), w.now()
	var last progressSignal
	read := false
	for {
		err := w.cli.Get(ctx, ns, name, &d)
		switch {
		case err == nil:
			if sig := signalOf(&d); !read || sig != last {
				last, quietSince, read = sig, w.now(), true
			}
			if d.Status.ObservedGeneration >= generation {
				switch d.Status.RolloutState {
				case api.RolloutComplete:
					return rolloutOutcome{deployment: &d}
				case api.RolloutRolledBack, api.RolloutPaused, api.RolloutFailed:
					return rolloutOutcome{deployment: &d, err: w.failedError(ctx, &d, hash, seen)}
				}
				if d.Spec.Paused {
					// Paused by the user: there is nothing to wait for.
					return rolloutOutcome{deployment: &d}
				}
			}
			if quiet, limit := w.now().Sub(quietSince), progressDeadline(&d)+w.margin; quiet > limit {
				return rolloutOutcome{deployment: &d, err: w.silentError(ctx, &d, generation, hash, quiet, seen)}
			}
			refresh := w.now().Sub(snapped) >= w.snapshotEvery
			seen.take(ctx, w, &d, hash, refresh)
			if refresh {
				snapped = w.now()
			}
		case api.IsNotFound(err):
			return rolloutOutcome{err: fmt.Errorf("deployment %s/%s was deleted during its rollout", ns, name)}
		}
		tflog.Debug(ctx, "waiting for the rollout", map[string]any{
			"deployment": ns + "/" + name, "state": string(d.Status.RolloutState),
			"updated": d.Status.UpdatedReplicas, "available": d.Status.AvailableReplicas,
		})
		if !sleep(ctx, w.poll) {
			if d.Metadata.UID == "" {
				return rolloutOutcome{err: fmt.Errorf("wait for the rollout of deployment %s/%s: %w", ns, name, ctx.Err())}
			}
			err := fmt.Errorf("rollout of deployment %s/%s did not finish in time: %s\n\n%s",
				ns, name, statusSummary(&d), w.evidence(ctx, &d, hash, seen))
			return rolloutOutcome{deployment: &d, err: err}
		}
	}
}

// statusSummary says where a rollout stands, from its status.
func statusSummary(d *api.Deployment) string {
	s := d.Status
	return fmt.Sprintf("state %s, revision %d desired, revision %d live, %d of %d replicas updated and %d available (%s)",
		orDash(string(s.RolloutState)), s.DesiredRevision, s.LiveRevision, s.UpdatedReplicas, replicasOf(d), s.AvailableReplicas, orDash(s.Message))
}

func replicasOf(d *api.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return api.DefaultReplicas
	}
	return *d.Spec.Replicas
}

// silentError says that the control plane reported neither progress nor
// an outcome for longer than the rollout's progress deadline allows.
func (w *rolloutWatch) silentError(ctx context.Context, d *api.Deployment, generation int64, hash string, quiet time.Duration, seen *podSnapshots) error {
	key := d.Metadata.Namespace + "/" + d.Metadata.Name
	quiet = quiet.Round(time.Second)
	var what string
	if d.Status.ObservedGeneration < generation {
		what = fmt.Sprintf("the control plane has not acted on the change to deployment %s for %s (its status describes generation %d, the change is generation %d): "+
			"no deployment controller seems to be running, so check that the control plane has an elected leader. The change is stored and rolls out once a controller runs",
			key, quiet, d.Status.ObservedGeneration, generation)
	} else {
		policy := d.Spec.Strategy.OnFailure
		if policy == "" {
			policy = api.FailureRollback
		}
		what = fmt.Sprintf("the rollout of deployment %s reported neither progress nor an outcome for %s, past its progress deadline of %s: "+
			"the control plane should have applied the failure policy (%s) by now. Last reported: %s",
			key, quiet, progressDeadline(d), policy, statusSummary(d))
	}
	return fmt.Errorf("%s.\n\n%s", what, w.evidence(ctx, d, hash, seen))
}

// failedError says what is live after a failed rollout and why it failed.
func (w *rolloutWatch) failedError(ctx context.Context, d *api.Deployment, hash string, seen *podSnapshots) error {
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
	return fmt.Errorf("%s.\n\nWhy: %s\n\n%s", what, orDash(s.Message), w.evidence(ctx, d, hash, seen))
}

// ofRevision reports whether a pod name is that of one of the deployment's
// pods of the revision with template hash (pods are named
// <deployment>-<hash>-<suffix>, the deployment's name shortened to keep
// the name a DNS label).
func ofRevision(podName, deployment, hash string) bool {
	prefix := deployment
	if n := api.MaxNameLength - 17; len(prefix) > n {
		prefix = strings.TrimRight(prefix[:n], "-")
	}
	return strings.HasPrefix(podName, prefix+"-"+hash+"-")
}

// failingPods returns the pods of the revision with template hash that
// are not ready (terminating ones too: a rollback is deleting them), by
// name.
func failingPods(pods []api.Pod, hash string) []*api.Pod {
	var out []*api.Pod
	for i := range pods {
		p := &pods[i]
		if p.Metadata.Labels[api.LabelTemplateHash] == hash && !api.IsPodReady(p) {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Metadata.Name < out[j].Metadata.Name })
	return out
}

// evidence describes why the revision with template hash did not roll
// out: for each of its pods that is not ready (at most maxEvidencePods),
// its state, containers, Warning events and last log lines; the same as
// seen during the wait for such pods that are gone; the Warning events of
// its other pods; and the deployment's own Warning events. Pods of other
// revisions, which serve, are left out.
func (w *rolloutWatch) evidence(ctx context.Context, d *api.Deployment, hash string, seen *podSnapshots) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), evidenceTimeout)
	defer cancel()
	ns := d.Metadata.Namespace
	var b strings.Builder
	shown := map[string]bool{}
	var pods api.PodList
	if err := w.cli.List(ctx, &pods, client.ListOptions{Namespace: ns, Labels: d.Spec.Selector}); err == nil {
		failing := failingPods(pods.Items, hash)
		evs := podEvents(ctx, w.cli, ns, func(name string) bool { return ofRevision(name, d.Metadata.Name, hash) })
		for _, p := range failing {
			if len(shown) >= maxEvidencePods {
				break
			}
			shown[p.Metadata.Name] = true
			snap, ok := seen.byPod[p.Metadata.Name]
			if api.IsPodTerminating(p) && ok {
				// Being deleted by a rollback: what was seen while it ran
				// has the logs the node may no longer serve.
				b.WriteString(snap.text(w.now().Sub(snap.at)))
				continue
			}
			b.WriteString(podReport(p, evs[p.Metadata.Name], true, func(c string) string { return w.tail(ctx, p, c) }))
		}
		for _, name := range seen.order {
			if snap := seen.byPod[name]; !shown[name] && len(shown) < maxEvidencePods {
				shown[name] = true
				b.WriteString(snap.text(w.now().Sub(snap.at)))
			}
		}
		var rest []api.Event
		for name, list := range evs {
			if shown[name] {
				continue
			}
			for _, e := range list {
				if e.Type == api.EventWarning {
					rest = append(rest, e)
				}
			}
		}
		if rest = mergeRepeats(rest); len(rest) > 0 {
			if len(rest) > maxEventsPerPod {
				rest = rest[len(rest)-maxEventsPerPod:]
			}
			b.WriteString("Warnings of the revision's other pods:\n")
			for _, e := range rest {
				fmt.Fprintf(&b, "    %s %s Pod/%s: %s (x%d)\n", e.Type, e.Reason, e.InvolvedObject.Name, strings.TrimSpace(e.Message), max(e.Count, 1))
			}
		}
	}
	if evs := objectWarnings(ctx, w.cli, ns, "Deployment", d.Metadata.Name, d.Status.Message); evs != "" {
		b.WriteString("Warnings of the deployment:\n" + evs)
	}
	if b.Len() == 0 {
		return "No failing pod or event is left to show."
	}
	return b.String()
}

// podSnapshots keeps the evidence of the rolling revision's pods seen not
// ready during a rollout, since a rollback deletes them before the
// outcome is known.
type podSnapshots struct {
	order []string
	byPod map[string]podSnapshot
}

type podSnapshot struct {
	report string
	at     time.Time
}

func (s podSnapshot) text(age time.Duration) string {
	return fmt.Sprintf("(as seen %s before this report) %s", age.Round(time.Second), s.report)
}

// take keeps the evidence of the revision's pods that are not ready (of
// at most maxEvidencePods pods), within evidenceTimeout: at once for a
// pod newly seen failing in a way that does not fix itself (a crash loop
// can be rolled back within moments), and for every such pod when
// refresh is set.
func (s *podSnapshots) take(ctx context.Context, w *rolloutWatch, d *api.Deployment, hash string, refresh bool) {
	ctx, cancel := context.WithTimeout(ctx, evidenceTimeout)
	defer cancel()
	var pods api.PodList
	if err := w.cli.List(ctx, &pods, client.ListOptions{Namespace: d.Metadata.Namespace, Labels: d.Spec.Selector}); err != nil {
		return
	}
	var keep []*api.Pod
	for _, p := range failingPods(pods.Items, hash) {
		_, known := s.byPod[p.Metadata.Name]
		switch {
		case api.IsPodTerminating(p), !known && len(s.order)+len(keep) >= maxEvidencePods:
		case refresh, !known && podFailure(p) != "":
			keep = append(keep, p)
		}
	}
	if len(keep) == 0 {
		return
	}
	evs := podEvents(ctx, w.cli, d.Metadata.Namespace, func(name string) bool { return ofRevision(name, d.Metadata.Name, hash) })
	for _, p := range keep {
		if _, known := s.byPod[p.Metadata.Name]; !known {
			s.order = append(s.order, p.Metadata.Name)
		}
		s.byPod[p.Metadata.Name] = podSnapshot{
			report: podReport(p, evs[p.Metadata.Name], true, func(c string) string { return w.tail(ctx, p, c) }),
			at:     w.now(),
		}
	}
}
