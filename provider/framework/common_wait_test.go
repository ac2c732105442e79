package framework

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
	"github.com/berth-io/berth/control/client/clienttest"
)

// controllerAgent is the user agent of the scripted controller's client;
// its requests do not count as reads of the wait.
const controllerAgent = "scripted-controller"

// rolloutFake is a control plane for a rollout wait whose deployment
// controller is a script: every read of the deployment by the wait moves
// the wait's clock on by a second and then runs the script's step for
// that read, so a test decides exactly what the wait sees and when,
// without depending on how fast the machine is.
type rolloutFake struct {
	t   *testing.T
	ctx context.Context
	srv *clienttest.Server
	cli *client.Client // the provider's
	ctl *client.Client // the scripted controller's

	mu    sync.Mutex
	clock time.Time
	reads int
	step  func(read int)
	logs  map[string]string // pod/container → last log lines

	events int // events made, for their names
}

func newRolloutFake(t *testing.T) *rolloutFake {
	t.Helper()
	srv, err := clienttest.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	f := &rolloutFake{
		t: t, ctx: t.Context(), srv: srv, cli: srv.Client(), ctl: srv.Client(client.WithUserAgent(controllerAgent)),
		clock: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), logs: map[string]string{},
	}
	path := api.ObjectPath(api.KindOf(&api.Deployment{}), "default", "web")
	srv.AddHook(func(r *http.Request) error {
		if r.Method != http.MethodGet || r.URL.Path != path || strings.HasPrefix(r.UserAgent(), controllerAgent) {
			return nil
		}
		f.mu.Lock()
		f.reads++
		f.clock = f.clock.Add(time.Second)
		read, step := f.reads, f.step
		f.mu.Unlock()
		if step != nil {
			step(read)
		}
		return nil
	})
	return f
}

func (f *rolloutFake) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.clock
}

func (f *rolloutFake) watch() *rolloutWatch {
	return &rolloutWatch{
		cli: f.cli, poll: time.Millisecond, margin: 30 * time.Second, snapshotEvery: 5 * time.Second, now: f.now,
		tail: func(_ context.Context, p *api.Pod, container string) string {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.logs[p.Metadata.Name+"/"+container]
		},
	}
}

// deployment creates web (3 replicas, progress deadline 90 s) as the
// provider would have applied it.
func (f *rolloutFake) deployment() *api.Deployment {
	f.t.Helper()
	replicas, deadline := int32(3), int32(90)
	labels := map[string]string{"app": "web"}
	d := &api.Deployment{
		Metadata: api.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: api.DeploymentSpec{
			Replicas: &replicas, Selector: labels, ProgressDeadlineSeconds: &deadline,
			Template: api.PodTemplate{
				Metadata: api.TemplateMeta{Labels: labels},
				Spec:     api.PodSpec{Containers: []api.Container{{Name: "web", Image: "registry.example/web:broken"}}},
			},
		},
	}
	if err := f.cli.Create(f.ctx, d); err != nil {
		f.t.Fatal(err)
	}
	return d
}

// setStatus writes the deployment's status as its controller would
// (safe to call from a step).
func (f *rolloutFake) setStatus(change func(s *api.DeploymentStatus, generation int64)) {
	var d api.Deployment
	if err := f.ctl.Get(f.ctx, "default", "web", &d); err != nil {
		f.t.Error(err)
		return
	}
	change(&d.Status, d.Metadata.Generation)
	if err := f.ctl.UpdateStatus(f.ctx, &d); err != nil {
		f.t.Error(err)
	}
}

// progressing is the status of a rollout of revision 2 over live revision
// 1 that last progressed at t.
func progressing(t time.Time) func(*api.DeploymentStatus, int64) {
	return func(s *api.DeploymentStatus, generation int64) {
		*s = api.DeploymentStatus{
			ObservedGeneration: generation, Replicas: 4, UpdatedReplicas: 1, ReadyReplicas: 3, AvailableReplicas: 3,
			DesiredRevision: 2, LiveRevision: 1, RolloutState: api.RolloutProgressing, LastProgressTime: &t,
			Message: "rolling out revision 2: 1 of 3 pods updated, 0 available",
		}
	}
}

// pod creates a pod of the deployment's revision with hash, running on
// node n1, ready or not, with the container status given.
func (f *rolloutFake) pod(name, hash string, revision int, ready bool, cs api.ContainerStatus) *api.Pod {
	f.t.Helper()
	p := &api.Pod{
		Metadata: api.ObjectMeta{
			Name: name, Namespace: "default",
			Labels:      map[string]string{"app": "web", api.LabelTemplateHash: hash},
			Annotations: map[string]string{api.AnnotationRevision: fmt.Sprint(revision)},
		},
		Spec: api.PodSpec{NodeName: "n1", Containers: []api.Container{{Name: "web", Image: cs.Image}}},
	}
	if err := f.cli.Create(f.ctx, p); err != nil {
		f.t.Fatal(err)
	}
	status := api.ConditionFalse
	if ready {
		status = api.ConditionTrue
	}
	cs.Name, cs.Ready = "web", ready
	p.Status = api.PodStatus{
		Phase:             api.PodRunning,
		Conditions:        []api.Condition{{Type: api.PodReady, Status: status, LastTransitionTime: f.now()}},
		ContainerStatuses: []api.ContainerStatus{cs},
	}
	if err := f.cli.UpdateStatus(f.ctx, p); err != nil {
		f.t.Fatal(err)
	}
	return p
}

func (f *rolloutFake) event(pod, typ, reason, msg string) {
	f.t.Helper()
	f.events++
	e := &api.Event{
		Metadata:       api.ObjectMeta{Name: fmt.Sprintf("event-%d", f.events), Namespace: "default"},
		InvolvedObject: api.ObjectReference{Kind: "Pod", Namespace: "default", Name: pod},
		Type:           typ, Reason: reason, Message: msg, Count: 1, LastTimestamp: f.now(),
	}
	if err := f.cli.Create(f.ctx, e); err != nil {
		f.t.Fatal(err)
	}
}

func TestRolloutWaitFailsWhenNoControllerActsOnTheChange(t *testing.T) {
	f := newRolloutFake(t)
	out := f.watch().wait(f.ctx, f.deployment())
	if out.err == nil {
		t.Fatal("the wait ended without an error although no controller ever acted")
	}
	for _, want := range []string{"has not acted on the change to deployment default/web", "the change is generation 1", "elected leader"} {
		if !strings.Contains(out.err.Error(), want) {
			t.Errorf("error does not say %q:\n%s", want, out.err)
		}
	}
	if f.now().Sub(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) > 90*time.Second+30*time.Second+5*time.Second {
		t.Errorf("the wait went on until %s, past the progress deadline plus the margin", f.now())
	}
}

func TestRolloutWaitFailsWithWhatIsKnownWhenNoOutcomeFollowsTheDeadline(t *testing.T) {
	f := newRolloutFake(t)
	d := f.deployment()
	hash := api.TemplateHash(&d.Spec.Template)
	f.pod("web-"+hash+"-aaaaa", hash, 2, false, api.ContainerStatus{Image: "registry.example/web:broken", State: api.ContainerState{Running: &api.ContainerStateRunning{}}})
	f.event("web-"+hash+"-aaaaa", api.EventWarning, "Unhealthy", "Readiness probe failed: HTTP GET http://10.244.1.5:8080/healthz: status 503")
	f.step = func(read int) {
		if read == 1 {
			// The controller starts the rollout, then falls silent (a
			// rollback it lost, a leader that stopped).
			f.setStatus(progressing(f.now()))
		}
	}
	out := f.watch().wait(f.ctx, d)
	if out.err == nil {
		t.Fatal("the wait ended without an error although the rollout never had an outcome")
	}
	t.Logf("the error:\n%s", out.err)
	for _, want := range []string{
		"reported neither progress nor an outcome", "progress deadline of 1m30s", "failure policy (Rollback)",
		"state Progressing, revision 2 desired, revision 1 live, 1 of 3 replicas updated and 3 available",
		"Pod default/web-" + hash + "-aaaaa (revision 2)", "Readiness probe failed",
	} {
		if !strings.Contains(out.err.Error(), want) {
			t.Errorf("error does not say %q:\n%s", want, out.err)
		}
	}
	if quiet := f.now().Sub(time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC)); quiet > 90*time.Second+30*time.Second+5*time.Second {
		t.Errorf("the wait went on %s after the last progress, past the progress deadline plus the margin", quiet)
	}
}

func TestRolloutWaitOutlastsTheDeadlineWhileTheControllerReportsProgress(t *testing.T) {
	f := newRolloutFake(t)
	d := f.deployment()
	f.step = func(read int) {
		switch {
		case read == 400: // 400 s in, far past one deadline
			f.setStatus(func(s *api.DeploymentStatus, generation int64) {
				now := f.now()
				*s = api.DeploymentStatus{ObservedGeneration: generation, Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 3,
					DesiredRevision: 2, LiveRevision: 2, RolloutState: api.RolloutComplete, LastProgressTime: &now}
			})
		case read%60 == 1: // a slow rollout: a new pod available every minute
			f.setStatus(progressing(f.now()))
		}
	}
	out := f.watch().wait(f.ctx, d)
	if out.err != nil {
		t.Fatalf("a rollout that kept progressing failed: %v", out.err)
	}
	if out.deployment.Status.RolloutState != api.RolloutComplete {
		t.Fatalf("state %s, want Complete", out.deployment.Status.RolloutState)
	}
}

func TestRolloutWaitEndsOnEveryFailedOutcome(t *testing.T) {
	for _, state := range []api.RolloutState{api.RolloutRolledBack, api.RolloutPaused, api.RolloutFailed} {
		t.Run(string(state), func(t *testing.T) {
			f := newRolloutFake(t)
			d := f.deployment()
			f.step = func(read int) {
				switch read {
				case 1:
					f.setStatus(progressing(f.now()))
				case 5:
					f.setStatus(func(s *api.DeploymentStatus, generation int64) {
						s.RolloutState, s.FailedRevision, s.DesiredRevision = state, 2, 1
						s.Message = "revision 2 failed: no progress for 1m30s"
						if state != api.RolloutFailed {
							s.ObservedGeneration = generation + 1 // the failure policy's own spec change, not yet made
						}
					})
				case 6:
					// The failure policy's spec change was lost and the
					// controller went back to the rollout: the outcome
					// was visible for one read only.
					f.setStatus(progressing(f.now()))
				}
			}
			out := f.watch().wait(f.ctx, d)
			if out.err == nil {
				t.Fatalf("the wait ended without an error on %s", state)
			}
			if !strings.Contains(out.err.Error(), "the rollout of revision 2") || !strings.Contains(out.err.Error(), "no progress for 1m30s") {
				t.Fatalf("error does not name the failed revision and why:\n%s", out.err)
			}
			f.mu.Lock()
			reads := f.reads
			f.mu.Unlock()
			if reads > 10 {
				t.Fatalf("the wait read the deployment %d times: it missed the outcome", reads)
			}
		})
	}
}

func TestRolloutEvidenceShowsOnlyTheFailingRevisionsPods(t *testing.T) {
	f := newRolloutFake(t)
	d := f.deployment()
	hash := api.TemplateHash(&d.Spec.Template)
	healthy := f.pod("web-0123456789-old01", "0123456789", 1, true, api.ContainerStatus{Image: "registry.example/web:v1", State: api.ContainerState{Running: &api.ContainerStateRunning{}}})
	f.event(healthy.Metadata.Name, api.EventNormal, "Started", "started container web")
	failing := "web-" + hash + "-bbbbb"
	f.pod(failing, hash, 2, false, api.ContainerStatus{
		Image: "registry.example/web:broken", RestartCount: 4,
		State:     api.ContainerState{Waiting: &api.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 40s restarting failed container"}},
		LastState: api.ContainerState{Terminated: &api.ContainerStateTerminated{Reason: "Error", ExitCode: 2}},
	})
	f.event(failing, api.EventNormal, "Pulled", "pulled image registry.example/web:broken")
	for range 3 { // a node's recorder that cannot update its events makes one per repeat
		f.event(failing, api.EventWarning, "Unhealthy", "Liveness probe failed: HTTP GET http://10.244.1.5:8080/healthz: status 503")
	}
	f.event("web-"+hash+"-gone1", api.EventWarning, "Unhealthy", "Readiness probe failed: connection refused")
	f.logs[failing+"/web"] = "listening on :8080\npanic: broken on purpose\n"

	got := f.watch().evidence(f.ctx, d, hash, &podSnapshots{byPod: map[string]podSnapshot{}})
	for _, want := range []string{
		"Pod default/" + failing + " (revision 2): phase Running on node n1",
		"container web (registry.example/web:broken): waiting: CrashLoopBackOff back-off 40s restarting failed container, ready false, restarts 4",
		"last termination: terminated: Error, exit code 2",
		"Warning Unhealthy: Liveness probe failed: HTTP GET http://10.244.1.5:8080/healthz: status 503 (x3)\n",
		"last log lines of container web:\n    listening on :8080\n    panic: broken on purpose\n",
		"Warnings of the revision's other pods:\n    Warning Unhealthy Pod/web-" + hash + "-gone1: Readiness probe failed: connection refused",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("evidence lacks %q:\n%s", want, got)
		}
	}
	for _, unwanted := range []string{healthy.Metadata.Name, "Normal", "Pulled"} {
		if strings.Contains(got, unwanted) {
			t.Errorf("evidence shows %q, which does not explain the failure:\n%s", unwanted, got)
		}
	}
}

func TestRolloutEvidenceKeepsWhatWasSeenOfPodsARollbackDeletes(t *testing.T) {
	f := newRolloutFake(t)
	d := f.deployment()
	hash := api.TemplateHash(&d.Spec.Template)
	name := "web-" + hash + "-ccccc"
	p := f.pod(name, hash, 2, false, api.ContainerStatus{Image: "registry.example/web:broken", State: api.ContainerState{Running: &api.ContainerStateRunning{}}})
	f.logs[name+"/web"] = "GET /healthz 503\n"
	w := f.watch()
	seen := &podSnapshots{byPod: map[string]podSnapshot{}}
	seen.take(f.ctx, w, d, hash, true)

	// The rollback deletes the pod, and its node no longer serves the logs.
	if err := f.cli.Delete(f.ctx, p); err != nil {
		t.Fatal(err)
	}
	delete(f.logs, name+"/web")
	got := w.evidence(f.ctx, d, hash, seen)
	if !strings.Contains(got, "(as seen") || !strings.Contains(got, "Pod default/"+name) || !strings.Contains(got, "GET /healthz 503") {
		t.Fatalf("evidence lacks what was seen of the deleted pod:\n%s", got)
	}
}
