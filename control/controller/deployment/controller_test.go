package deployment

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
	"github.com/berth-io/berth/control/client/clienttest"
)

// rig runs one deployment controller against the fake API, one sync at a
// time and on a clock the test moves, while the test plays the user, the
// scheduler and the node agents: so a race between the controller's
// writes and anyone else's is set up exactly, not hoped for.
type rig struct {
	t    *testing.T
	ctx  context.Context
	srv  *clienttest.Server
	user *client.Client
	c    *Controller
	infs []*client.Informer

	mu  sync.Mutex
	now time.Time
}

func newRig(t *testing.T) *rig {
	t.Helper()
	srv, err := clienttest.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	r := &rig{t: t, ctx: t.Context(), srv: srv, user: srv.Client(client.WithUserAgent("user")),
		now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	r.restart()
	return r
}

// restart replaces the controller with a fresh one (new informers, no
// memory), as a new leader would start.
func (r *rig) restart() {
	r.t.Helper()
	cli := r.srv.Client(client.WithUserAgent(Name))
	inf := func(kind string) *client.Informer {
		ki, _ := api.LookupKind(kind)
		return client.NewInformer(cli, ki, client.InformerOptions{})
	}
	deps, pods, revs := inf("Deployment"), inf("Pod"), inf("Revision")
	r.c = New(cli, deps, pods, revs, Options{Now: r.clock})
	ctx, cancel := context.WithCancel(r.ctx)
	r.t.Cleanup(cancel)
	r.infs = []*client.Informer{deps, pods, revs}
	for _, i := range r.infs {
		go i.Run(ctx)
		if err := i.WaitForSync(r.ctx); err != nil {
			r.t.Fatal(err)
		}
	}
}

func (r *rig) clock() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.now
}

func (r *rig) advance(d time.Duration) {
	r.mu.Lock()
	r.now = r.now.Add(d)
	r.mu.Unlock()
}

// sync lets the controller's caches catch up with the API and syncs web
// once, starting over (as the work queue would) when it met a newer
// version; it returns the sync's error.
func (r *rig) sync() error {
	r.t.Helper()
	for range 50 {
		r.srv.Bookmark()
		rv := r.srv.ResourceVersion()
		if err := clienttest.WaitFor(r.ctx, func() bool {
			for _, i := range r.infs {
				if i.ResourceVersion() < rv {
					return false
				}
			}
			return true
		}); err != nil {
			r.t.Fatal(err)
		}
		if err := r.c.syncOnce(r.ctx, "default/web"); !errors.Is(err, errStale) {
			return err
		}
	}
	r.t.Fatal("the deployment kept changing under the controller")
	return nil
}

// nodes plays the scheduler and the agents: every pod of web is bound,
// Running, and Ready when ready says so; deleted pods go at once.
func (r *rig) nodes(ready func(*api.Pod) bool) {
	r.t.Helper()
	var l api.PodList
	if err := r.user.List(r.ctx, &l, client.ListOptions{Namespace: "default"}); err != nil {
		r.t.Fatal(err)
	}
	for i := range l.Items {
		p := &l.Items[i]
		if api.IsPodTerminating(p) {
			if err := r.user.Delete(r.ctx, p, client.GracePeriod(0)); err != nil && !api.IsNotFound(err) {
				r.t.Fatal(err)
			}
			continue
		}
		if p.Spec.NodeName == "" {
			p.Spec.NodeName = "n1"
			if err := r.user.Update(r.ctx, p); err != nil {
				r.t.Fatal(err)
			}
		}
		st := api.ConditionFalse
		if ready(p) {
			st = api.ConditionTrue
		}
		if c := api.FindCondition(p.Status.Conditions, api.PodReady); c != nil && c.Status == st {
			continue
		}
		p.Status.Phase = api.PodRunning
		api.SetCondition(&p.Status.Conditions, api.Condition{Type: api.PodReady, Status: st}, r.clock())
		if err := r.user.UpdateStatus(r.ctx, p); err != nil {
			r.t.Fatal(err)
		}
	}
}

func goodImage(p *api.Pod) bool { return !strings.Contains(p.Spec.Containers[0].Image, "bad") }

func (r *rig) deployment() *api.Deployment {
	r.t.Helper()
	var d api.Deployment
	if err := r.user.Get(r.ctx, "default", "web", &d); err != nil {
		r.t.Fatal(err)
	}
	return &d
}

// settle syncs and plays the nodes until cond holds of the deployment.
func (r *rig) settle(what string, cond func(*api.Deployment) bool) *api.Deployment {
	r.t.Helper()
	for range 30 {
		if err := r.sync(); err != nil {
			r.t.Fatalf("sync: %v", err)
		}
		if d := r.deployment(); cond(d) {
			return d
		}
		r.nodes(goodImage)
	}
	d := r.deployment()
	r.t.Fatalf("never %s: generation %d, status %+v", what, d.Metadata.Generation, d.Status)
	return nil
}

// setImage changes web's image as a user would.
func (r *rig) setImage(image string) {
	r.t.Helper()
	d := r.deployment()
	d.Spec.Template.Spec.Containers[0].Image = image
	if err := r.user.Update(r.ctx, d); err != nil {
		r.t.Fatal(err)
	}
}

// rolledOut reports that the rollout of the deployment's spec is complete.
func rolledOut(d *api.Deployment) bool {
	return d.Status.ObservedGeneration == d.Metadata.Generation && d.Status.RolloutState == api.RolloutComplete
}

// webWithFailingRollout creates web (2 replicas, surge 1, none
// unavailable, progress deadline 90 s, the given failure policy), rolls
// web:1 out, starts a rollout of web:bad and lets its deadline pass.
func webWithFailingRollout(r *rig, policy api.FailurePolicy) {
	r.t.Helper()
	replicas, deadline := int32(2), int32(90)
	labels := map[string]string{"app": "web"}
	d := &api.Deployment{
		Metadata: api.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: api.DeploymentSpec{
			Replicas: &replicas, Selector: labels, ProgressDeadlineSeconds: &deadline,
			Strategy: api.DeploymentStrategy{MaxSurge: ios("1"), MaxUnavailable: ios("0"), OnFailure: policy},
			Template: api.PodTemplate{
				Metadata: api.TemplateMeta{Labels: labels},
				Spec:     api.PodSpec{Containers: []api.Container{{Name: "web", Image: "registry.example/web:1"}}},
			},
		},
	}
	if err := r.user.Create(r.ctx, d); err != nil {
		r.t.Fatal(err)
	}
	r.settle("rolled out web:1", rolledOut)
	r.setImage("registry.example/web:bad")
	r.settle("started web:bad", func(d *api.Deployment) bool {
		return d.Status.ObservedGeneration == d.Metadata.Generation && d.Status.UpdatedReplicas == 1
	})
	r.nodes(goodImage)
	r.advance(91 * time.Second)
}

// onControllerRequest runs fn once, before the fake serves the first
// request of the controller that matches.
func (r *rig) onControllerRequest(match func(*http.Request) bool, fn func() error) {
	var once sync.Once
	r.srv.AddHook(func(req *http.Request) error {
		if req.UserAgent() != Name || !match(req) {
			return nil
		}
		var err error
		once.Do(func() { err = fn() })
		return err
	})
}

var webPath = api.ObjectPath(api.KindOf(&api.Deployment{}), "default", "web")

func TestFailurePolicyNeverOverwritesAChangeMadeWhileItActs(t *testing.T) {
	for _, policy := range []api.FailurePolicy{api.FailureRollback, api.FailurePause} {
		t.Run(string(policy), func(t *testing.T) {
			r := newRig(t)
			webWithFailingRollout(r, policy)
			// The user fixes the image between the controller's record of
			// the failure and its change of the spec.
			r.onControllerRequest(func(req *http.Request) bool { return req.Method == http.MethodGet && req.URL.Path == webPath },
				func() error { r.setImage("registry.example/web:3"); return nil })
			if err := r.sync(); err != nil {
				t.Fatalf("sync: %v", err)
			}
			d := r.deployment()
			if img := d.Spec.Template.Spec.Containers[0].Image; img != "registry.example/web:3" || d.Spec.Paused {
				t.Fatalf("the failure policy overwrote the user's change: image %s, paused %t", img, d.Spec.Paused)
			}
			d = r.settle("rolled out the user's change", rolledOut)
			if d.Status.DesiredRevision != 3 || d.Status.LiveRevision != 3 {
				t.Fatalf("status %+v: want revision 3 desired and live", d.Status)
			}
		})
	}
}

func TestFailurePolicyWhoseSpecChangeFailedIsCarriedOutByTheNextController(t *testing.T) {
	for _, policy := range []api.FailurePolicy{api.FailureRollback, api.FailurePause} {
		t.Run(string(policy), func(t *testing.T) {
			r := newRig(t)
			webWithFailingRollout(r, policy)
			r.onControllerRequest(func(req *http.Request) bool { return req.Method == http.MethodPut && req.URL.Path == webPath },
				func() error { return api.NewError(api.ReasonUnavailable, "leader lost its lease") })
			if err := r.sync(); err == nil {
				t.Fatal("the sync whose spec change failed reported no error")
			}
			want := api.RolloutRolledBack
			if policy == api.FailurePause {
				want = api.RolloutPaused
			}
			if d := r.deployment(); d.Status.RolloutState != want {
				t.Fatalf("state %s after the failed spec change, want %s recorded first", d.Status.RolloutState, want)
			}
			r.restart()
			d := r.settle("carried out the failure policy", func(d *api.Deployment) bool {
				return d.Status.ObservedGeneration == d.Metadata.Generation && d.Status.AvailableReplicas == 2
			})
			if d.Status.RolloutState != want || d.Status.FailedRevision != 2 || d.Status.LiveRevision != 1 {
				t.Fatalf("status %+v: want %s with revision 2 failed and revision 1 live", d.Status, want)
			}
			switch policy {
			case api.FailureRollback:
				if img := d.Spec.Template.Spec.Containers[0].Image; img != "registry.example/web:1" {
					t.Fatalf("image %s after the rollback, want web:1", img)
				}
			case api.FailurePause:
				if !d.Spec.Paused {
					t.Fatal("spec.paused is not set after the Pause policy")
				}
			}
		})
	}
}
