package client

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/berth-io/berth/control/api"
)

// ListWatcher is what an Informer reads from; *Client implements it, and
// tests may pass a fake.
type ListWatcher interface {
	// List reads every object of the list's kind matching opts.
	List(ctx context.Context, list api.ObjectList, opts ListOptions) error
	// Watch opens a stream of changes.
	Watch(ctx context.Context, ki api.KindInfo, opts WatchOptions) (Watcher, error)
}

// IndexFunc returns the index values of an object (none to leave it out
// of the index), for example the node name of a pod.
type IndexFunc func(obj api.Object) []string

// Handler receives an Informer's changes. Any of the functions may be nil.
// They run one at a time on the informer's goroutine, in the order of the
// changes, so they must be quick: the usual handler puts a key on a
// [WorkQueue]. Objects are shared with the cache and must not be changed;
// copy them with [DeepCopy] first.
type Handler struct {
	// OnAdd is called for an object the cache had not seen.
	OnAdd func(obj api.Object)
	// OnUpdate is called when a cached object changed.
	OnUpdate func(old, new api.Object)
	// OnDelete is called with the last known state of a removed object.
	OnDelete func(obj api.Object)
}

// InformerOptions filter what an Informer caches and tune its retries.
type InformerOptions struct {
	// Namespace limits the cache to one namespace; "" caches all.
	Namespace string
	// Labels keeps objects carrying every key=value.
	Labels map[string]string
	// NodeName keeps pods bound to that node (for the node agent).
	NodeName string
	// Logger receives relists and stream errors; nil discards them.
	Logger *slog.Logger
	// MinBackoff is the first wait after a failed list or watch (default
	// 200 ms); it doubles up to MaxBackoff (default 30 s).
	MinBackoff time.Duration
	// MaxBackoff caps the wait between attempts.
	MaxBackoff time.Duration
}

// Informer keeps an in-memory, indexed copy of the objects of one kind: it
// lists them, then watches from the list's revision, resuming a broken
// watch from the last revision it saw and listing again when that revision
// has been compacted (Gone) or after errors, with back-off. Handlers see
// every change as add, update or delete — a relist turns into the changes
// it reveals — and HasSynced says when the first list has been applied.
//
// Add indexers and handlers before Run; read the cache from any goroutine.
type Informer struct {
	lw   ListWatcher
	ki   api.KindInfo
	opts InformerOptions
	log  *slog.Logger

	mu       sync.RWMutex
	items    map[string]api.Object
	indexers map[string]IndexFunc
	indices  map[string]map[string]map[string]struct{}
	rv       int64
	handlers []Handler
	started  bool

	syncedOnce sync.Once
	synced     chan struct{}
}

// NewInformer makes an Informer of one kind; call Run to fill it.
func NewInformer(lw ListWatcher, ki api.KindInfo, opts InformerOptions) *Informer {
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 200 * time.Millisecond
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(30*time.Second, opts.MinBackoff)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Informer{
		lw: lw, ki: ki, opts: opts, log: log.With("kind", ki.Kind),
		items:    map[string]api.Object{},
		indexers: map[string]IndexFunc{},
		indices:  map[string]map[string]map[string]struct{}{},
		synced:   make(chan struct{}),
	}
}

// Kind returns the kind the informer caches.
func (inf *Informer) Kind() api.KindInfo { return inf.ki }

// AddIndexer adds a named index; it must be called before Run.
func (inf *Informer) AddIndexer(name string, fn IndexFunc) {
	inf.mu.Lock()
	defer inf.mu.Unlock()
	if inf.started {
		panic("client: AddIndexer after Informer.Run")
	}
	inf.indexers[name] = fn
	inf.indices[name] = map[string]map[string]struct{}{}
}

// AddHandler adds a change handler; it must be called before Run.
func (inf *Informer) AddHandler(h Handler) {
	inf.mu.Lock()
	defer inf.mu.Unlock()
	if inf.started {
		panic("client: AddHandler after Informer.Run")
	}
	inf.handlers = append(inf.handlers, h)
}

// HasSynced reports whether the first list has been applied, so the cache
// holds a complete (if perhaps slightly old) picture.
func (inf *Informer) HasSynced() bool {
	select {
	case <-inf.synced:
		return true
	default:
		return false
	}
}

// WaitForSync blocks until the first list has been applied or ctx ends.
func (inf *Informer) WaitForSync(ctx context.Context) error {
	select {
	case <-inf.synced:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for %s cache to sync: %w", inf.ki.Resource, ctx.Err())
	}
}

// ResourceVersion is the latest revision the cache reflects.
func (inf *Informer) ResourceVersion() int64 {
	inf.mu.RLock()
	defer inf.mu.RUnlock()
	return inf.rv
}

// Get returns the cached object ns/name (ns "" for cluster-scoped kinds).
func (inf *Informer) Get(ns, name string) (api.Object, bool) {
	inf.mu.RLock()
	defer inf.mu.RUnlock()
	o, ok := inf.items[cacheKey(ns, name)]
	return o, ok
}

// List returns every cached object, ordered by key.
func (inf *Informer) List() []api.Object {
	inf.mu.RLock()
	defer inf.mu.RUnlock()
	out := make([]api.Object, 0, len(inf.items))
	for _, o := range inf.items {
		out = append(out, o)
	}
	sortObjects(out)
	return out
}

// Len returns the number of cached objects.
func (inf *Informer) Len() int {
	inf.mu.RLock()
	defer inf.mu.RUnlock()
	return len(inf.items)
}

// ByIndex returns the cached objects whose index named index has value,
// ordered by key.
func (inf *Informer) ByIndex(index, value string) []api.Object {
	inf.mu.RLock()
	defer inf.mu.RUnlock()
	idx, ok := inf.indices[index]
	if !ok {
		panic(fmt.Sprintf("client: no index %q on the %s informer", index, inf.ki.Resource))
	}
	keys := idx[value]
	out := make([]api.Object, 0, len(keys))
	for k := range keys {
		out = append(out, inf.items[k])
	}
	sortObjects(out)
	return out
}

// ObjectKey returns the cache key of an object: "namespace/name", or
// "name" for cluster-scoped kinds.
func ObjectKey(obj api.Object) string {
	m := obj.GetMeta()
	return cacheKey(m.Namespace, m.Name)
}

func cacheKey(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "/" + name
}

func sortObjects(objs []api.Object) {
	sort.Slice(objs, func(i, j int) bool { return ObjectKey(objs[i]) < ObjectKey(objs[j]) })
}

// Index names for the index functions below, shared so every component
// that builds informers registers them under the same names.
const (
	IndexNodeName      = "spec.nodeName"
	IndexControllerUID = "controller-uid"
	IndexNamespace     = "namespace"
)

// IndexByNodeName indexes pods by spec.nodeName (unbound pods are left
// out).
func IndexByNodeName(obj api.Object) []string {
	if p, ok := obj.(*api.Pod); ok && p.Spec.NodeName != "" {
		return []string{p.Spec.NodeName}
	}
	return nil
}

// IndexByControllerUID indexes objects by the UID of their controller
// owner.
func IndexByControllerUID(obj api.Object) []string {
	if r := api.ControllerOf(obj.GetMeta()); r != nil {
		return []string{r.UID}
	}
	return nil
}

// IndexByNamespace indexes objects by namespace.
func IndexByNamespace(obj api.Object) []string {
	return []string{obj.GetMeta().Namespace}
}

// healthyWatch is how long a watch must stay open to count as healthy when
// it delivered nothing.
const healthyWatch = 5 * time.Second

// Run fills the cache and keeps it current until ctx ends.
func (inf *Informer) Run(ctx context.Context) {
	inf.mu.Lock()
	inf.started = true
	inf.mu.Unlock()
	backoff := inf.opts.MinBackoff
	wait := func() bool {
		d := backoff/2 + rand.N(backoff/2+1)
		backoff = min(backoff*2, inf.opts.MaxBackoff)
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	needList := true
	for ctx.Err() == nil {
		if needList {
			if err := inf.relist(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				inf.log.Warn("list failed; retrying", "err", err)
				if !wait() {
					return
				}
				continue
			}
			needList = false
		}
		opened := time.Now()
		progressed, err := inf.watch(ctx)
		if ctx.Err() != nil {
			return
		}
		// A stream that delivered events, or stayed open a while, was
		// healthy: resume at once rather than back off.
		if progressed || time.Since(opened) >= healthyWatch {
			progressed = true
			backoff = inf.opts.MinBackoff
		}
		switch {
		case api.IsGone(err):
			inf.log.Info("watch revision compacted; listing again", "resourceVersion", inf.ResourceVersion())
			needList = true
			continue
		case err != nil:
			inf.log.Warn("watch failed; resuming", "resourceVersion", inf.ResourceVersion(), "err", err)
		}
		if !progressed && !wait() {
			return
		}
	}
}

// relist lists the kind and turns the difference to the cache into
// changes.
func (inf *Informer) relist(ctx context.Context) error {
	list := inf.ki.NewList()
	if err := inf.lw.List(ctx, list, ListOptions{Namespace: inf.opts.Namespace, Labels: inf.opts.Labels, NodeName: inf.opts.NodeName}); err != nil {
		return err
	}
	items := list.ObjectItems()
	fresh := make(map[string]api.Object, len(items))
	for _, o := range items {
		api.SetTypeMeta(o)
		fresh[ObjectKey(o)] = o
	}
	type change struct{ old, new api.Object }
	var changes []change
	inf.mu.Lock()
	for k, o := range fresh {
		old, ok := inf.items[k]
		if ok && old.GetMeta().ResourceVersion == o.GetMeta().ResourceVersion {
			continue
		}
		inf.put(k, old, o)
		changes = append(changes, change{old: old, new: o})
	}
	for k, old := range inf.items {
		if _, ok := fresh[k]; !ok {
			inf.remove(k, old)
			changes = append(changes, change{old: old})
		}
	}
	inf.rv = list.GetResourceVersion()
	handlers := inf.handlers
	inf.mu.Unlock()
	sort.Slice(changes, func(i, j int) bool {
		return changeKey(changes[i].old, changes[i].new) < changeKey(changes[j].old, changes[j].new)
	})
	for _, c := range changes {
		switch {
		case c.new == nil:
			dispatchDelete(handlers, c.old)
		case c.old == nil:
			dispatchAdd(handlers, c.new)
		default:
			dispatchUpdate(handlers, c.old, c.new)
		}
	}
	inf.syncedOnce.Do(func() { close(inf.synced) })
	return nil
}

func changeKey(old, new api.Object) string {
	if new != nil {
		return ObjectKey(new)
	}
	return ObjectKey(old)
}

// watch consumes one watch stream; it reports whether any event arrived
// and why the stream ended.
func (inf *Informer) watch(ctx context.Context) (bool, error) {
	w, err := inf.lw.Watch(ctx, inf.ki, WatchOptions{
		Namespace: inf.opts.Namespace, Labels: inf.opts.Labels, NodeName: inf.opts.NodeName,
		ResourceVersion: inf.ResourceVersion(),
	})
	if err != nil {
		return false, err
	}
	defer w.Stop()
	progressed := false
	for {
		select {
		case <-ctx.Done():
			return progressed, nil
		case ev, ok := <-w.Events():
			if !ok {
				return progressed, w.Err()
			}
			progressed = true
			inf.apply(ev)
		}
	}
}

// apply records one watch event and calls the handlers.
func (inf *Informer) apply(ev Event) {
	inf.mu.Lock()
	if ev.ResourceVersion > inf.rv {
		inf.rv = ev.ResourceVersion
	}
	handlers := inf.handlers
	if ev.Type == api.Bookmark || ev.Object == nil {
		inf.mu.Unlock()
		return
	}
	k := ObjectKey(ev.Object)
	old, had := inf.items[k]
	switch ev.Type {
	case api.Deleted:
		if !had {
			inf.mu.Unlock()
			return
		}
		inf.remove(k, old)
		inf.mu.Unlock()
		dispatchDelete(handlers, ev.Object)
	default:
		if had && old.GetMeta().ResourceVersion >= ev.Object.GetMeta().ResourceVersion {
			inf.mu.Unlock()
			return // already applied (a relist saw it first)
		}
		inf.put(k, old, ev.Object)
		inf.mu.Unlock()
		if had {
			dispatchUpdate(handlers, old, ev.Object)
		} else {
			dispatchAdd(handlers, ev.Object)
		}
	}
}

// put stores o under k, replacing old in the indices. Callers hold mu.
func (inf *Informer) put(k string, old, o api.Object) {
	if old != nil {
		inf.unindex(k, old)
	}
	inf.items[k] = o
	for name, fn := range inf.indexers {
		for _, v := range fn(o) {
			set := inf.indices[name][v]
			if set == nil {
				set = map[string]struct{}{}
				inf.indices[name][v] = set
			}
			set[k] = struct{}{}
		}
	}
}

// remove deletes k. Callers hold mu.
func (inf *Informer) remove(k string, old api.Object) {
	inf.unindex(k, old)
	delete(inf.items, k)
}

func (inf *Informer) unindex(k string, old api.Object) {
	for name, fn := range inf.indexers {
		for _, v := range fn(old) {
			if set := inf.indices[name][v]; set != nil {
				delete(set, k)
				if len(set) == 0 {
					delete(inf.indices[name], v)
				}
			}
		}
	}
}

func dispatchAdd(hs []Handler, o api.Object) {
	for _, h := range hs {
		if h.OnAdd != nil {
			h.OnAdd(o)
		}
	}
}

func dispatchUpdate(hs []Handler, old, o api.Object) {
	for _, h := range hs {
		if h.OnUpdate != nil {
			h.OnUpdate(old, o)
		}
	}
}

func dispatchDelete(hs []Handler, o api.Object) {
	for _, h := range hs {
		if h.OnDelete != nil {
			h.OnDelete(o)
		}
	}
}
