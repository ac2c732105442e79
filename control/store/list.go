package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/berth-io/berth/control/api"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// watchBuffer is how many events a watch holds for a slow reader before
// it stops reading etcd (etcd then buffers on its side).
const watchBuffer = 128

// listKinds maps a list's Go type to its kind.
var listKinds = func() map[reflect.Type]api.KindInfo {
	m := make(map[reflect.Type]api.KindInfo)
	for _, ki := range api.Kinds() {
		m[reflect.TypeOf(ki.NewList())] = ki
	}
	return m
}()

// kindOfList returns the kind of a list from its Go type.
func kindOfList(list api.ObjectList) (api.KindInfo, error) {
	ki, ok := listKinds[reflect.TypeOf(list)]
	if !ok {
		return api.KindInfo{}, fmt.Errorf("list: %T is not a list type of package api", list)
	}
	return ki, nil
}

// ListOptions select what List returns.
type ListOptions struct {
	// Namespace limits a namespaced kind to one namespace; "" lists all.
	// It is ignored for cluster-scoped kinds.
	Namespace string
	// Labels must all be carried by an object for it to be listed.
	Labels map[string]string
	// Filter, when set, must also accept the object, for selections
	// labels cannot express (a pod's spec.nodeName).
	Filter func(api.Object) bool
	// ResourceVersion reads the list as it was at this revision; 0 reads
	// the latest. A compacted revision fails with Gone.
	ResourceVersion int64
}

// matches reports whether obj passes the label selector and the filter.
func matches(obj api.Object, labels map[string]string, filter func(api.Object) bool) bool {
	if !api.SelectorMatches(labels, obj.GetMeta().Labels) {
		return false
	}
	return filter == nil || filter(obj)
}

// List fills list (a list type of package api, such as *api.PodList) with
// the matching objects sorted by namespace and name, read in one range
// request at one revision, and sets the list's resourceVersion to that
// revision: a Watch with FromRevision set to it continues exactly where the
// list ends. A compacted revision fails with Gone (list again at the
// latest); a revision etcd has not reached yet fails with Timeout.
func (s *Store) List(ctx context.Context, list api.ObjectList, opts ListOptions) error {
	ki, err := kindOfList(list)
	if err != nil {
		return err
	}
	ropts := []clientv3.OpOption{clientv3.WithPrefix()}
	if opts.ResourceVersion > 0 {
		ropts = append(ropts, clientv3.WithRev(opts.ResourceVersion))
	}
	prefix := s.kindPrefix(ki, opts.Namespace)
	resp, err := s.cli.Get(ctx, prefix, ropts...)
	switch {
	case errors.Is(err, rpctypes.ErrCompacted):
		return api.NewError(api.ReasonGone,
			"list %s at resourceVersion %d: that revision has been compacted: list again without a resourceVersion",
			ki.Resource, opts.ResourceVersion)
	case errors.Is(err, rpctypes.ErrFutureRev):
		return api.NewError(api.ReasonTimeout,
			"list %s at resourceVersion %d: the store has not reached that revision yet: retry",
			ki.Resource, opts.ResourceVersion)
	case err != nil:
		return fmt.Errorf("list %s: %w", ki.Resource, err)
	}
	decoded, err := decodeAll(ki, resp.Kvs)
	if err != nil {
		return fmt.Errorf("list %s: %w", ki.Resource, err)
	}
	objs := decoded[:0]
	for _, obj := range decoded {
		if matches(obj, opts.Labels, opts.Filter) {
			objs = append(objs, obj)
		}
	}
	// Keys sort "a-b/x" before "a/x" ('-' < '/'), which is not namespace
	// order; sort only when needed, as it rarely is.
	byName := func(a, b api.Object) int {
		ma, mb := a.GetMeta(), b.GetMeta()
		return cmp.Or(cmp.Compare(ma.Namespace, mb.Namespace), cmp.Compare(ma.Name, mb.Name))
	}
	if !slices.IsSortedFunc(objs, byName) {
		slices.SortFunc(objs, byName)
	}
	list.SetObjectItems(objs)
	list.SetResourceVersion(resp.Header.Revision)
	return nil
}

// parallelDecodeMin is the list size from which decoding is spread over
// the CPUs: JSON decoding is most of the cost of a large list.
const parallelDecodeMin = 256

// decodeAll decodes every kv into a new object of kind ki, in order,
// using all CPUs for large lists.
func decodeAll(ki api.KindInfo, kvs []*mvccpb.KeyValue) ([]api.Object, error) {
	objs := make([]api.Object, len(kvs))
	decodeRange := func(lo, hi int) error {
		for i := lo; i < hi; i++ {
			obj := ki.New()
			if err := decodeInto(obj, kvs[i].Value, kvs[i].ModRevision); err != nil {
				return fmt.Errorf("key %s: %w", kvs[i].Key, err)
			}
			objs[i] = obj
		}
		return nil
	}
	workers := runtime.GOMAXPROCS(0)
	if len(kvs) < parallelDecodeMin || workers < 2 {
		return objs, decodeRange(0, len(kvs))
	}
	chunk := (len(kvs) + workers - 1) / workers
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*chunk, min((w+1)*chunk, len(kvs))
		if lo >= hi {
			break
		}
		wg.Go(func() { errs[w] = decodeRange(lo, hi) })
	}
	wg.Wait()
	return objs, errors.Join(errs...)
}

// WatchOptions select what Watch delivers.
type WatchOptions struct {
	// Namespace limits a namespaced kind to one namespace; "" watches all.
	Namespace string
	// Labels must all be carried by an object for its changes to be
	// delivered.
	Labels map[string]string
	// Filter, when set, must also accept the object.
	Filter func(api.Object) bool
	// FromRevision delivers every change with a revision greater than it
	// (pass a list's resourceVersion); 0 starts from the store's revision
	// when Watch is called.
	FromRevision int64
}

// WatchEvent is one change delivered by Watch.
type WatchEvent struct {
	// Type is api.Added, api.Modified, api.Deleted or api.Error.
	Type api.EventType
	// Object is the object after the change; for Deleted, its last value
	// with resourceVersion set to the deletion's revision. Nil for Error.
	Object api.Object
	// Revision is the etcd revision of the change; resume a watch from it.
	Revision int64
	// Err is set for Error events: an api Gone error after compaction
	// (list again), or why the stream broke. The channel closes after it.
	Err error
}

// Watch streams the changes to objects of kind ki until ctx ends, then
// closes the channel. With Labels or Filter, an object that stops matching
// is delivered as Deleted (carrying its new value) and one that starts
// matching as Added, so a cache of the matching objects stays right. When
// etcd has compacted the revision to start from, or the stream breaks, one
// Error event is delivered and the channel closes: list again and watch
// from the list's resourceVersion. The reader must keep reading or cancel
// ctx; events are never dropped.
func (s *Store) Watch(ctx context.Context, ki api.KindInfo, opts WatchOptions) (<-chan WatchEvent, error) {
	if ki.New == nil {
		return nil, fmt.Errorf("watch: kind info without a constructor (use api.LookupKind or api.KindOf)")
	}
	if opts.FromRevision <= 0 {
		// "From now" means from this call, not from whenever etcd
		// registers the watch.
		rev, err := s.Revision(ctx)
		if err != nil {
			return nil, fmt.Errorf("watch %s: %w", ki.Resource, err)
		}
		opts.FromRevision = rev
	}
	prefix := s.kindPrefix(ki, opts.Namespace)
	wopts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithPrevKV(), clientv3.WithRev(opts.FromRevision + 1)}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	wch := s.cli.Watch(wctx, prefix, wopts...)
	out := make(chan WatchEvent, watchBuffer)
	w := &watcher{ki: ki, opts: opts, out: out, prefix: prefix}
	go func() {
		defer close(out)
		defer cancel()
		w.run(wctx, wch)
	}()
	return out, nil
}

// watcher turns etcd watch responses into WatchEvents.
type watcher struct {
	ki     api.KindInfo
	opts   WatchOptions
	out    chan<- WatchEvent
	prefix string
}

func (w *watcher) run(ctx context.Context, wch clientv3.WatchChan) {
	for {
		var resp clientv3.WatchResponse
		var ok bool
		select {
		case <-ctx.Done():
			return
		case resp, ok = <-wch:
		}
		if !ok {
			if ctx.Err() == nil {
				w.send(ctx, WatchEvent{Type: api.Error, Err: api.NewError(api.ReasonUnavailable,
					"watch %s: the etcd watch stream closed: watch again", w.ki.Resource)})
			}
			return
		}
		if resp.CompactRevision != 0 {
			w.send(ctx, WatchEvent{Type: api.Error, Revision: resp.CompactRevision, Err: api.NewError(api.ReasonGone,
				"watch %s from resourceVersion %d: that revision has been compacted (oldest available %d): list again and watch from the list's resourceVersion",
				w.ki.Resource, w.opts.FromRevision, resp.CompactRevision)})
			return
		}
		if err := resp.Err(); err != nil {
			if ctx.Err() == nil {
				w.send(ctx, WatchEvent{Type: api.Error, Err: api.NewError(api.ReasonUnavailable,
					"watch %s: %v: watch again from the last revision seen", w.ki.Resource, err)})
			}
			return
		}
		for _, ev := range resp.Events {
			e, deliver, err := w.convert(ev)
			if err != nil {
				w.send(ctx, WatchEvent{Type: api.Error, Revision: ev.Kv.ModRevision, Err: err})
				return
			}
			if deliver && !w.send(ctx, e) {
				return
			}
		}
	}
}

// send delivers e unless ctx ends first, and reports whether it did.
func (w *watcher) send(ctx context.Context, e WatchEvent) bool {
	select {
	case w.out <- e:
		return true
	case <-ctx.Done():
		return false
	}
}

// convert turns one etcd event into a WatchEvent, applying the selection:
// deliver is false when neither the old nor the new value matches.
func (w *watcher) convert(ev *clientv3.Event) (e WatchEvent, deliver bool, err error) {
	rev := ev.Kv.ModRevision
	var prev api.Object
	if ev.PrevKv != nil {
		prev = w.ki.New()
		if err := decodeInto(prev, ev.PrevKv.Value, ev.PrevKv.ModRevision); err != nil {
			return e, false, fmt.Errorf("watch %s: key %s: %w", w.ki.Resource, ev.PrevKv.Key, err)
		}
	}
	if ev.Type == mvccpb.DELETE {
		if prev == nil {
			// The previous value was compacted away: deliver what the key
			// says, so a cache still drops the object.
			prev = w.fromKey(string(ev.Kv.Key))
			prev.GetMeta().ResourceVersion = rev
			return WatchEvent{Type: api.Deleted, Object: prev, Revision: rev}, true, nil
		}
		prev.GetMeta().ResourceVersion = rev
		if !matches(prev, w.opts.Labels, w.opts.Filter) {
			return e, false, nil
		}
		return WatchEvent{Type: api.Deleted, Object: prev, Revision: rev}, true, nil
	}
	cur := w.ki.New()
	if err := decodeInto(cur, ev.Kv.Value, rev); err != nil {
		return e, false, fmt.Errorf("watch %s: key %s: %w", w.ki.Resource, ev.Kv.Key, err)
	}
	now := matches(cur, w.opts.Labels, w.opts.Filter)
	was := prev != nil && matches(prev, w.opts.Labels, w.opts.Filter)
	switch {
	case now && was:
		return WatchEvent{Type: api.Modified, Object: cur, Revision: rev}, true, nil
	case now:
		return WatchEvent{Type: api.Added, Object: cur, Revision: rev}, true, nil
	case was:
		return WatchEvent{Type: api.Deleted, Object: cur, Revision: rev}, true, nil
	}
	return e, false, nil
}

// fromKey makes an empty object named by a key under the watch prefix.
func (w *watcher) fromKey(key string) api.Object {
	obj := w.ki.New()
	api.SetTypeMeta(obj)
	rest := strings.TrimPrefix(key, w.prefix)
	m := obj.GetMeta()
	if w.ki.Namespaced && w.opts.Namespace != "" {
		m.Namespace, m.Name = w.opts.Namespace, rest
	} else if ns, name, ok := strings.Cut(rest, "/"); ok && w.ki.Namespaced {
		m.Namespace, m.Name = ns, name
	} else {
		m.Name = rest
	}
	return obj
}
