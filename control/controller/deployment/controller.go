// Package deployment is the deployment controller: it keeps each
// deployment's pods matching its template and replica count, rolling a
// template change out revision by revision within maxSurge and
// maxUnavailable, gating on readiness plus minReadySeconds, and applying
// the failure policy (roll back to the live revision, or pause) when the
// progress deadline passes. It records every template as a numbered
// Revision, keyed by api.TemplateHash, and reports the rollout in status.
//
// When a template returns to an earlier revision's (a user's rollback), that
// revision is renumbered as the newest, as Kubernetes does, so revision
// numbers always order rollouts. An automatic rollback by the failure
// policy keeps the live revision's number: it is still what serves.
//
// It must never touch pods it does not control (by owner UID), and never
// act on a deployment that is being deleted (the garbage collector removes
// its pods and revisions).
package deployment

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/client"
)

// Name is the controller's name in events.
const Name = "deployment-controller"

// Options tune the controller.
type Options struct {
	// Logger receives rollout decisions.
	Logger *slog.Logger
	// Recorder, when set, records rollout events.
	Recorder *client.EventRecorder
	// Workers is the number of deployments synced at once (default 2).
	Workers int
	// Now is the clock (default time.Now); tests may replace it.
	Now func() time.Time
}

// Controller runs deployments.
type Controller struct {
	cli  *client.Client
	deps *client.Informer
	pods *client.Informer
	revs *client.Informer
	opts Options
	log  *slog.Logger
	q    *client.WorkQueue

	mu sync.Mutex
	// pending holds this controller's own pod writes until the pod
	// informer shows them, so a sync never acts twice on one change.
	pending map[string]map[string]pendingWrite
}

type pendingWrite struct {
	pod     *api.Pod
	deleted bool
	at      time.Time
}

// pendingTTL bounds how long an unconfirmed write is trusted.
const pendingTTL = 2 * time.Minute

// New makes the controller from informers of deployments, pods and
// revisions (all namespaces) and registers its handlers and indexes: call
// it before the informers run.
func New(cli *client.Client, deployments, pods, revisions *client.Informer, opts Options) *Controller {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Workers <= 0 {
		opts.Workers = 2
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Controller{
		cli: cli, deps: deployments, pods: pods, revs: revisions, opts: opts,
		log: opts.Logger.With("component", Name), q: client.NewWorkQueue(),
		pending: map[string]map[string]pendingWrite{},
	}
	pods.AddIndexer(client.IndexControllerUID, client.IndexByControllerUID)
	revisions.AddIndexer(client.IndexControllerUID, client.IndexByControllerUID)
	enqueue := func(o api.Object) { c.q.Add(client.ObjectKey(o)) }
	deployments.AddHandler(client.Handler{
		OnAdd: enqueue, OnUpdate: func(_, o api.Object) { enqueue(o) }, OnDelete: enqueue,
	})
	owner := func(o api.Object) {
		if r := api.ControllerOf(o.GetMeta()); r != nil && r.Kind == "Deployment" {
			c.q.Add(o.GetMeta().Namespace + "/" + r.Name)
		}
	}
	pods.AddHandler(client.Handler{OnAdd: owner, OnUpdate: func(_, o api.Object) { owner(o) }, OnDelete: owner})
	revisions.AddHandler(client.Handler{OnAdd: owner, OnUpdate: func(_, o api.Object) { owner(o) }, OnDelete: owner})
	return c
}

// Run syncs deployments until ctx ends; the informers must be running.
func (c *Controller) Run(ctx context.Context) error {
	for _, inf := range []*client.Informer{c.deps, c.pods, c.revs} {
		if err := inf.WaitForSync(ctx); err != nil {
			return nil
		}
	}
	go func() {
		// A slow resync catches anything a missed event left behind.
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				for _, o := range c.deps.List() {
					c.q.Add(client.ObjectKey(o))
				}
			}
		}
	}()
	c.q.Run(ctx, c.opts.Workers, c.log, c.sync)
	return nil
}

func splitKey(key string) (string, string) {
	ns, name, _ := strings.Cut(key, "/")
	return ns, name
}

// podView is a pod with what the rollout needs to know about it.
type podView struct {
	pod       *api.Pod
	isNew     bool
	revision  int64
	available bool
	ready     bool
	rank      int // deletion preference: lower goes first
}

// sync reconciles one deployment; a conflict with a newer version is
// retried at once.
func (c *Controller) sync(ctx context.Context, key string) error {
	err := c.syncOnce(ctx, key)
	if errors.Is(err, errStale) {
		c.q.AddAfter(key, 10*time.Millisecond)
		return nil
	}
	return err
}

func (c *Controller) syncOnce(ctx context.Context, key string) error {
	ns, name := splitKey(key)
	obj, ok := c.deps.Get(ns, name)
	if !ok {
		c.mu.Lock()
		delete(c.pending, key)
		c.mu.Unlock()
		return nil
	}
	d := client.DeepCopy(obj.(*api.Deployment))
	if d.Metadata.DeletionTimestamp != nil {
		return nil
	}
	now := c.opts.Now().UTC()
	replicas := api.DefaultReplicas
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	surge, unavail, err := ResolveBounds(replicas, d.Spec.Strategy.MaxSurge, d.Spec.Strategy.MaxUnavailable)
	if err != nil {
		return fmt.Errorf("deployment %s: %w", key, err)
	}
	revs := c.revisionsOf(d)
	hash := api.TemplateHash(&d.Spec.Template)
	desired := findHash(revs, hash)
	var live *api.Revision
	for _, r := range revs {
		if r.Number == d.Status.LiveRevision {
			live = r
		}
	}
	st := d.Status

	// A rollback or pause decided before whose spec update failed.
	if st.ObservedGeneration > d.Metadata.Generation {
		if st.RolloutState == api.RolloutRolledBack && live != nil && live.TemplateHash != hash {
			return c.rollbackSpec(ctx, d, live)
		}
		if st.RolloutState == api.RolloutPaused && !d.Spec.Paused {
			return c.pauseSpec(ctx, d)
		}
	}

	if desired == nil {
		desired, err = c.createRevision(ctx, d, hash, revs)
		if err != nil {
			return err
		}
		revs = append(revs, desired)
	} else if st.DesiredRevision != 0 && st.DesiredRevision != desired.Number && desired.Number < newest(revs) {
		// The template went back to an older revision's: that revision
		// becomes the newest again, as in Kubernetes, so "undo" keeps
		// meaning "the one before".
		n, err := c.newestNumber(ctx, d, revs)
		if err != nil {
			return err
		}
		if desired, err = c.renumber(ctx, d, desired, n+1); err != nil {
			return err
		}
		for i, r := range revs {
			if r.Metadata.Name == desired.Metadata.Name {
				revs[i] = desired
			}
		}
	}
	byHash := map[string]int64{}
	for _, r := range revs {
		byHash[r.TemplateHash] = r.Number
	}

	views, terminating, finished := c.podViews(key, d, hash, byHash, now)
	var counts = Counts{Replicas: replicas, MaxSurge: surge, MaxUnavailable: unavail, Terminating: terminating}
	var ready int32
	var nextCheck time.Duration
	minReady := time.Duration(d.Spec.MinReadySeconds) * time.Second
	for _, v := range views {
		if v.ready {
			ready++
			if !v.available {
				since, _ := api.PodReadySince(v.pod)
				if wait := since.Add(minReady).Sub(now); wait > 0 && (nextCheck == 0 || wait < nextCheck) {
					nextCheck = wait
				}
			}
		}
		if v.isNew {
			counts.NewTotal++
			if v.available {
				counts.NewAvailable++
			}
		} else {
			counts.OldTotal++
			if v.available {
				counts.OldAvailable++
			}
		}
	}

	// Finished pods of a deployment never run again: replace them.
	for _, p := range finished {
		if err := c.deletePod(ctx, key, p); err != nil {
			return err
		}
	}

	plan := Plan{}
	if !d.Spec.Paused {
		plan = PlanStep(counts)
	}
	if err := c.execute(ctx, key, d, desired, views, plan); err != nil {
		return err
	}

	complete := counts.NewTotal == replicas && counts.NewAvailable == replicas && counts.OldTotal == 0
	deadline := time.Duration(api.DefaultProgressDeadlineSeconds) * time.Second
	if d.Spec.ProgressDeadlineSeconds != nil {
		deadline = time.Duration(*d.Spec.ProgressDeadlineSeconds) * time.Second
	}
	available := counts.NewAvailable + counts.OldAvailable
	out := decideState(stateInput{
		prev: st, generation: d.Metadata.Generation, paused: d.Spec.Paused, desired: desired.Number,
		complete: complete, now: now, deadline: deadline,
		progressed: madeProgress(st, counts, plan, available),
	})

	ns2 := api.DeploymentStatus{
		ObservedGeneration:  d.Metadata.Generation,
		Replicas:            counts.NewTotal + counts.OldTotal,
		UpdatedReplicas:     counts.NewTotal,
		ReadyReplicas:       ready,
		AvailableReplicas:   available,
		UnavailableReplicas: max(replicas-available, 0),
		DesiredRevision:     desired.Number,
		LiveRevision:        out.live,
		RolloutState:        out.state,
		LastProgressTime:    out.lastProgress,
		FailedRevision:      out.failedRevision,
		Conditions:          append([]api.Condition(nil), st.Conditions...),
	}
	switch out.state {
	case api.RolloutProgressing:
		ns2.Message = fmt.Sprintf("rolling out revision %d: %d of %d pods updated, %d available", desired.Number, counts.NewTotal, replicas, counts.NewAvailable)
	case api.RolloutComplete:
		ns2.Message = fmt.Sprintf("revision %d is live with %d available pods", desired.Number, counts.NewAvailable)
	case api.RolloutPaused:
		ns2.Message = st.Message
		if st.RolloutState != api.RolloutPaused || ns2.Message == "" {
			ns2.Message = fmt.Sprintf("paused at revision %d: set spec.paused to false to resume", desired.Number)
		}
	default:
		ns2.Message = st.Message
	}

	if out.exceeded {
		why := failureReasons(views, d, deadline)
		switch {
		case d.Spec.Strategy.OnFailure != api.FailurePause && live != nil && live.Number != desired.Number:
			ns2.RolloutState = api.RolloutRolledBack
			ns2.FailedRevision = desired.Number
			ns2.DesiredRevision = live.Number
			ns2.Message = fmt.Sprintf("revision %d failed: %s; rolled back to revision %d", desired.Number, why, live.Number)
			ns2.ObservedGeneration = d.Metadata.Generation + 1 // the rollback's own spec change
			setConditions(&ns2, replicas, unavail, now)
			if err := c.writeStatus(ctx, d, ns2); err != nil {
				return err
			}
			c.event(ctx, d, api.EventWarning, "RolledBack", ns2.Message)
			return c.rollbackSpec(ctx, d, live)
		case d.Spec.Strategy.OnFailure == api.FailurePause:
			ns2.RolloutState = api.RolloutPaused
			ns2.FailedRevision = desired.Number
			ns2.Message = fmt.Sprintf("revision %d failed: %s; paused with revision %d live", desired.Number, why, out.live)
			if out.live == 0 {
				ns2.Message = fmt.Sprintf("revision %d failed: %s; paused (no revision has been live yet)", desired.Number, why)
			}
			ns2.ObservedGeneration = d.Metadata.Generation + 1 // the pause's own spec change
			setConditions(&ns2, replicas, unavail, now)
			if err := c.writeStatus(ctx, d, ns2); err != nil {
				return err
			}
			c.event(ctx, d, api.EventWarning, "RolloutPaused", ns2.Message)
			return c.pauseSpec(ctx, d)
		default:
			ns2.RolloutState = api.RolloutFailed
			ns2.FailedRevision = desired.Number
			ns2.Message = fmt.Sprintf("revision %d failed: %s; no earlier revision is live to roll back to", desired.Number, why)
			c.event(ctx, d, api.EventWarning, "RolloutFailed", ns2.Message)
		}
	}
	setConditions(&ns2, replicas, unavail, now)
	if err := c.writeStatus(ctx, d, ns2); err != nil {
		return err
	}
	if err := c.pruneRevisions(ctx, d, revs, desired.Number, ns2.LiveRevision, views); err != nil {
		return err
	}

	// Wake up for the next thing that can change without an event: a pod
	// becoming available after minReadySeconds, or the deadline.
	if ns2.RolloutState == api.RolloutProgressing && ns2.LastProgressTime != nil {
		if wait := ns2.LastProgressTime.Add(deadline).Sub(now) + time.Second; nextCheck == 0 || wait < nextCheck {
			nextCheck = wait
		}
	}
	if nextCheck > 0 {
		c.q.AddAfter(key, nextCheck)
	}
	return nil
}

// setConditions mirrors the state into conditions.
func setConditions(s *api.DeploymentStatus, replicas, unavail int32, now time.Time) {
	avail := api.ConditionFalse
	if s.AvailableReplicas >= replicas-unavail {
		avail = api.ConditionTrue
	}
	api.SetCondition(&s.Conditions, api.Condition{Type: "Available", Status: avail, Reason: "MinimumReplicas",
		Message: fmt.Sprintf("%d of %d pods available (at least %d required)", s.AvailableReplicas, replicas, replicas-unavail)}, now)
	prog := api.ConditionTrue
	if s.RolloutState != api.RolloutProgressing && s.RolloutState != api.RolloutComplete {
		prog = api.ConditionFalse
	}
	api.SetCondition(&s.Conditions, api.Condition{Type: "Progressing", Status: prog, Reason: string(s.RolloutState), Message: s.Message}, now)
}

// errStale says the deployment changed under a sync; the sync starts over
// from the newer version the informer brings.
var errStale = errors.New("deployment changed meanwhile")

// writeStatus writes s unless it is what is stored. A conflict returns
// errStale, so a failure policy never acts on a status it could not record.
func (c *Controller) writeStatus(ctx context.Context, d *api.Deployment, s api.DeploymentStatus) error {
	if reflect.DeepEqual(normalizeTimes(d.Status), normalizeTimes(s)) {
		return nil
	}
	d.Status = s
	if err := c.cli.UpdateStatus(ctx, d); err != nil {
		if api.IsConflict(err) {
			return errStale
		}
		return err
	}
	return nil
}

// normalizeTimes makes statuses comparable across a JSON round trip.
func normalizeTimes(s api.DeploymentStatus) api.DeploymentStatus {
	if s.LastProgressTime != nil {
		t := s.LastProgressTime.UTC().Round(0)
		s.LastProgressTime = &t
	}
	conds := make([]api.Condition, len(s.Conditions))
	for i, c := range s.Conditions {
		c.LastTransitionTime = c.LastTransitionTime.UTC().Round(0)
		conds[i] = c
	}
	s.Conditions = conds
	return s
}

// rollbackSpec sets the deployment's template back to the live revision's.
func (c *Controller) rollbackSpec(ctx context.Context, d *api.Deployment, live *api.Revision) error {
	return c.policySpec(ctx, d, "roll back to revision "+strconv.FormatInt(live.Number, 10), func(s *api.DeploymentSpec) {
		s.Template = copyTemplate(live.Template)
	})
}

// pauseSpec sets spec.paused.
func (c *Controller) pauseSpec(ctx context.Context, d *api.Deployment) error {
	return c.policySpec(ctx, d, "pause", func(s *api.DeploymentSpec) { s.Paused = true })
}

// policySpec makes a failure policy's change to the spec of d, the
// version whose failure the status records. When the spec changed since
// (a user's newer change), the policy is given up: the newer change is a
// new rollout, and the next sync sees it. A write that conflicts with a
// status-only change is made again on the newer version.
func (c *Controller) policySpec(ctx context.Context, d *api.Deployment, what string, change func(*api.DeploymentSpec)) error {
	key := client.ObjectKey(d)
	for attempt := 0; ; attempt++ {
		var cur api.Deployment
		if err := c.cli.Get(ctx, d.Metadata.Namespace, d.Metadata.Name, &cur); err != nil {
			return fmt.Errorf("%s deployment %s: %w", what, key, err)
		}
		if cur.Metadata.UID != d.Metadata.UID || cur.Metadata.Generation != d.Metadata.Generation || cur.Metadata.DeletionTimestamp != nil {
			c.log.Info("the spec changed after the rollout failed; the newer change wins over the failure policy",
				"deployment", key, "policy", what, "failedGeneration", d.Metadata.Generation, "generation", cur.Metadata.Generation)
			return nil
		}
		change(&cur.Spec)
		err := c.cli.Update(ctx, &cur)
		if err == nil {
			c.log.Info("failure policy applied", "deployment", key, "policy", what)
			return nil
		}
		if !api.IsConflict(err) || attempt >= 3 {
			return fmt.Errorf("%s deployment %s: %w", what, key, err)
		}
	}
}

func (c *Controller) event(ctx context.Context, d *api.Deployment, typ, reason, msg string) {
	if c.opts.Recorder != nil {
		c.opts.Recorder.Event(ctx, d, typ, reason, msg)
	}
}

// revisionsOf returns the deployment's revisions, oldest first.
func (c *Controller) revisionsOf(d *api.Deployment) []*api.Revision {
	var out []*api.Revision
	for _, o := range c.revs.ByIndex(client.IndexControllerUID, d.Metadata.UID) {
		out = append(out, o.(*api.Revision))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number < out[j].Number })
	return out
}

// newestNumber returns the highest revision number the deployment has,
// read from the API as well as the cache: the informer may not yet show a
// revision this controller (or a previous leader) created moments ago, and
// numbering from the cache alone would give two templates the same number.
func (c *Controller) newestNumber(ctx context.Context, d *api.Deployment, cached []*api.Revision) (int64, error) {
	n := newest(cached)
	var list api.RevisionList
	if err := c.cli.List(ctx, &list, client.ListOptions{Namespace: d.Metadata.Namespace,
		Labels: map[string]string{api.LabelDeployment: d.Metadata.Name}}); err != nil {
		return 0, fmt.Errorf("list revisions of deployment %s: %w", client.ObjectKey(d), err)
	}
	for i := range list.Items {
		if api.IsControlledBy(&list.Items[i].Metadata, &d.Metadata) {
			n = max(n, list.Items[i].Number)
		}
	}
	return n, nil
}

// newest returns the highest revision number.
func newest(revs []*api.Revision) int64 {
	var n int64
	for _, r := range revs {
		n = max(n, r.Number)
	}
	return n
}

// renumber gives an existing revision a new number, and its pods the
// matching annotation (best effort: the annotation is for people).
func (c *Controller) renumber(ctx context.Context, d *api.Deployment, rev *api.Revision, number int64) (*api.Revision, error) {
	r := client.DeepCopy(rev)
	old := r.Number
	r.Number = number
	if err := c.cli.Update(ctx, r); err != nil {
		if api.IsConflict(err) {
			return nil, errStale
		}
		return nil, fmt.Errorf("renumber revision %d of deployment %s: %w", old, client.ObjectKey(d), err)
	}
	c.log.Info("template returned to an earlier revision; renumbered it", "deployment", client.ObjectKey(d), "from", old, "to", number)
	for _, o := range c.pods.ByIndex(client.IndexControllerUID, d.Metadata.UID) {
		p := o.(*api.Pod)
		if p.Metadata.Labels[api.LabelTemplateHash] != r.TemplateHash || api.IsPodTerminating(p) {
			continue
		}
		cp := client.DeepCopy(p)
		if cp.Metadata.Annotations == nil {
			cp.Metadata.Annotations = map[string]string{}
		}
		cp.Metadata.Annotations[api.AnnotationRevision] = strconv.FormatInt(number, 10)
		if err := c.cli.Update(ctx, cp); err != nil && !api.IsConflict(err) && !api.IsNotFound(err) {
			c.log.Warn("could not update the revision annotation of a pod", "pod", client.ObjectKey(p), "err", err)
		}
	}
	return r, nil
}

func findHash(revs []*api.Revision, hash string) *api.Revision {
	for _, r := range revs {
		if r.TemplateHash == hash {
			return r
		}
	}
	return nil
}

func ownerRef(d *api.Deployment) api.OwnerReference {
	return api.OwnerReference{Kind: "Deployment", Name: d.Metadata.Name, UID: d.Metadata.UID, Controller: true}
}

// truncate shortens a name prefix so the generated name stays a DNS label.
func truncate(s string, n int) string {
	if len(s) > n {
		s = strings.TrimRight(s[:n], "-")
	}
	return s
}

// createRevision records the deployment's current template as the next
// revision.
func (c *Controller) createRevision(ctx context.Context, d *api.Deployment, hash string, revs []*api.Revision) (*api.Revision, error) {
	newestNumber, err := c.newestNumber(ctx, d, revs)
	if err != nil {
		return nil, err
	}
	next := newestNumber + 1
	r := &api.Revision{
		Metadata: api.ObjectMeta{
			Name:            truncate(d.Metadata.Name, api.MaxNameLength-11) + "-" + hash,
			Namespace:       d.Metadata.Namespace,
			Labels:          map[string]string{api.LabelDeployment: d.Metadata.Name, api.LabelTemplateHash: hash},
			OwnerReferences: []api.OwnerReference{ownerRef(d)},
		},
		Deployment:   d.Metadata.Name,
		Number:       next,
		TemplateHash: hash,
		Template:     copyTemplate(d.Spec.Template),
	}
	if err := c.cli.Create(ctx, r); err != nil {
		if api.IsAlreadyExists(err) {
			// Made by an earlier sync the informer has not shown yet.
			var got api.Revision
			if gerr := c.cli.Get(ctx, r.Metadata.Namespace, r.Metadata.Name, &got); gerr == nil && api.IsControlledBy(&got.Metadata, &d.Metadata) {
				return &got, nil
			}
		}
		return nil, fmt.Errorf("record revision %d of deployment %s: %w", next, client.ObjectKey(d), err)
	}
	c.log.Info("new revision", "deployment", client.ObjectKey(d), "revision", next, "hash", hash)
	return r, nil
}

// podViews classifies the deployment's pods (with this controller's own
// unconfirmed writes applied).
func (c *Controller) podViews(key string, d *api.Deployment, hash string, byHash map[string]int64, now time.Time) (views []podView, terminating int32, finished []*api.Pod) {
	pods := map[string]*api.Pod{}
	for _, o := range c.pods.ByIndex(client.IndexControllerUID, d.Metadata.UID) {
		pods[client.ObjectKey(o)] = o.(*api.Pod)
	}
	c.mu.Lock()
	for pk, w := range c.pending[key] {
		cur, seen := pods[pk]
		switch {
		case now.Sub(w.at) > pendingTTL:
			delete(c.pending[key], pk)
		case !w.deleted && seen, w.deleted && (!seen || cur.Metadata.DeletionTimestamp != nil):
			delete(c.pending[key], pk) // confirmed
		case !w.deleted:
			pods[pk] = w.pod
		default:
			p := client.DeepCopy(cur)
			at := w.at
			p.Metadata.DeletionTimestamp = &at
			pods[pk] = p
		}
	}
	c.mu.Unlock()
	minReady := time.Duration(d.Spec.MinReadySeconds) * time.Second
	for _, p := range pods {
		if api.IsPodTerminating(p) {
			terminating++
			continue
		}
		if api.IsPodFinished(p) {
			finished = append(finished, p)
			terminating++
			continue
		}
		v := podView{pod: p, isNew: p.Metadata.Labels[api.LabelTemplateHash] == hash}
		v.revision = byHash[p.Metadata.Labels[api.LabelTemplateHash]]
		if since, ok := api.PodReadySince(p); ok {
			v.ready = true
			v.available = !since.Add(minReady).After(now)
		}
		switch {
		case p.Spec.NodeName == "":
			v.rank = 0
		case !v.ready:
			v.rank = 1
		case !v.available:
			v.rank = 2
		default:
			v.rank = 3
		}
		views = append(views, v)
	}
	sort.Slice(views, func(i, j int) bool { return client.ObjectKey(views[i].pod) < client.ObjectKey(views[j].pod) })
	return views, terminating, finished
}

// execute carries out a plan.
func (c *Controller) execute(ctx context.Context, key string, d *api.Deployment, desired *api.Revision, views []podView, plan Plan) error {
	for range plan.CreateNew {
		if err := c.createPod(ctx, key, d, desired); err != nil {
			return err
		}
	}
	var newPods, oldUnavailable, oldAvailable []podView
	for _, v := range views {
		switch {
		case v.isNew:
			newPods = append(newPods, v)
		case v.available:
			oldAvailable = append(oldAvailable, v)
		default:
			oldUnavailable = append(oldUnavailable, v)
		}
	}
	// Least useful first: unscheduled, not ready, not yet available; then
	// older revisions; then the newest pod.
	order := func(vs []podView) {
		sort.SliceStable(vs, func(i, j int) bool {
			a, b := vs[i], vs[j]
			if a.rank != b.rank {
				return a.rank < b.rank
			}
			if a.revision != b.revision {
				return a.revision < b.revision
			}
			return a.pod.Metadata.CreationTimestamp.After(b.pod.Metadata.CreationTimestamp)
		})
	}
	order(newPods)
	order(oldUnavailable)
	order(oldAvailable)
	del := func(vs []podView, n int32) error {
		for i := int32(0); i < n && int(i) < len(vs); i++ {
			if err := c.deletePod(ctx, key, vs[i].pod); err != nil {
				return err
			}
		}
		return nil
	}
	if err := del(newPods, plan.DeleteNew); err != nil {
		return err
	}
	if err := del(oldUnavailable, plan.DeleteOldUnavailable); err != nil {
		return err
	}
	return del(oldAvailable, plan.DeleteOldAvailable)
}

func (c *Controller) remember(key string, p *api.Pod, deleted bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.pending[key]
	if m == nil {
		m = map[string]pendingWrite{}
		c.pending[key] = m
	}
	m[client.ObjectKey(p)] = pendingWrite{pod: p, deleted: deleted, at: c.opts.Now().UTC()}
}

// createPod stamps out one pod of the desired revision.
func (c *Controller) createPod(ctx context.Context, key string, d *api.Deployment, rev *api.Revision) error {
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	t := copyTemplate(d.Spec.Template)
	labels := map[string]string{}
	for k, v := range t.Metadata.Labels {
		labels[k] = v
	}
	labels[api.LabelTemplateHash] = rev.TemplateHash
	ann := map[string]string{}
	for k, v := range t.Metadata.Annotations {
		ann[k] = v
	}
	ann[api.AnnotationRevision] = strconv.FormatInt(rev.Number, 10)
	p := &api.Pod{
		Metadata: api.ObjectMeta{
			Name:            truncate(d.Metadata.Name, api.MaxNameLength-17) + "-" + rev.TemplateHash + "-" + hex.EncodeToString(suffix)[:5],
			Namespace:       d.Metadata.Namespace,
			Labels:          labels,
			Annotations:     ann,
			OwnerReferences: []api.OwnerReference{ownerRef(d)},
		},
		Spec: t.Spec,
	}
	p.Spec.NodeName = ""
	if err := c.cli.Create(ctx, p); err != nil {
		return fmt.Errorf("create pod for deployment %s: %w", key, err)
	}
	c.remember(key, p, false)
	return nil
}

// deletePod begins a pod's graceful deletion.
func (c *Controller) deletePod(ctx context.Context, key string, p *api.Pod) error {
	if err := c.cli.Delete(ctx, p); err != nil && !api.IsNotFound(err) {
		return fmt.Errorf("delete pod of deployment %s: %w", key, err)
	}
	c.remember(key, p, true)
	return nil
}

// pruneRevisions deletes old revisions beyond the history limit that no
// pod runs any more.
func (c *Controller) pruneRevisions(ctx context.Context, d *api.Deployment, revs []*api.Revision, desired, live int64, views []podView) error {
	limit := int(api.DefaultRevisionHistoryLimit)
	if d.Spec.RevisionHistoryLimit != nil {
		limit = int(*d.Spec.RevisionHistoryLimit)
	}
	inUse := map[int64]bool{desired: true, live: true}
	for _, v := range views {
		inUse[v.revision] = true
	}
	var old []*api.Revision
	for _, r := range revs {
		if !inUse[r.Number] {
			old = append(old, r)
		}
	}
	sort.Slice(old, func(i, j int) bool { return old[i].Number > old[j].Number })
	for i := limit; i < len(old); i++ {
		if err := c.cli.Delete(ctx, old[i]); err != nil && !api.IsNotFound(err) {
			return fmt.Errorf("prune revision %d of deployment %s: %w", old[i].Number, client.ObjectKey(d), err)
		}
	}
	return nil
}

// failureReasons names the new pods that keep the rollout from
// progressing, and why.
func failureReasons(views []podView, d *api.Deployment, deadline time.Duration) string {
	var parts []string
	more := 0
	for _, v := range views {
		if !v.isNew || v.available {
			continue
		}
		if len(parts) >= 3 {
			more++
			continue
		}
		parts = append(parts, "pod "+v.pod.Metadata.Name+": "+podProblem(v.pod))
	}
	head := fmt.Sprintf("no progress for %s", deadline)
	if len(parts) == 0 {
		return head
	}
	s := head + " (" + strings.Join(parts, "; ")
	if more > 0 {
		s += fmt.Sprintf("; and %d more", more)
	}
	return s + ")"
}

// podProblem says why a pod is not available, from what its node reports.
func podProblem(p *api.Pod) string {
	if p.Spec.NodeName == "" {
		if c := api.FindCondition(p.Status.Conditions, api.PodScheduled); c != nil && c.Message != "" {
			return "not scheduled: " + c.Message
		}
		return "not scheduled yet"
	}
	for _, cs := range p.Status.ContainerStatuses {
		switch {
		case cs.State.Waiting != nil && cs.State.Waiting.Reason != "":
			return withMessage("container "+cs.Name+" waiting: "+cs.State.Waiting.Reason, cs.State.Waiting.Message)
		case cs.State.Terminated != nil:
			t := cs.State.Terminated
			return withMessage(fmt.Sprintf("container %s terminated: %s (exit code %d)", cs.Name, t.Reason, t.ExitCode), t.Message)
		case cs.LastState.Terminated != nil && !cs.Ready:
			t := cs.LastState.Terminated
			return withMessage(fmt.Sprintf("container %s restarted %d times, last exit: %s (exit code %d)", cs.Name, cs.RestartCount, t.Reason, t.ExitCode), t.Message)
		case !cs.Ready:
			return "container " + cs.Name + " is not ready"
		}
	}
	if p.Status.Reason != "" {
		return withMessage(p.Status.Reason, p.Status.Message)
	}
	if api.IsPodReady(p) {
		return "ready, but not yet for minReadySeconds"
	}
	return "not ready on node " + p.Spec.NodeName
}

// copyTemplate returns an independent copy of a pod template.
func copyTemplate(t api.PodTemplate) api.PodTemplate {
	return client.DeepCopy(&api.Revision{Template: t}).Template
}

func withMessage(s, msg string) string {
	msg = strings.TrimSpace(msg)
	if msg == "" {
		return s
	}
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	return s + ": " + msg
}
