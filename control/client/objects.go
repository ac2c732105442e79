package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berth-io/berth/control/api"
)

// namespaceOf returns the namespace a namespaced object lives in (the
// default one when unset), or "" for cluster-scoped kinds.
func namespaceOf(ki api.KindInfo, obj api.Object) string {
	if !ki.Namespaced {
		return ""
	}
	if ns := obj.GetMeta().Namespace; ns != "" {
		return ns
	}
	return api.DefaultNamespace
}

// Create stores a new object and reads the stored one (with its UID,
// resourceVersion and defaults) back into obj.
func (c *Client) Create(ctx context.Context, obj api.Object) error {
	ki := api.KindOf(obj)
	api.SetTypeMeta(obj)
	path := api.CollectionPath(ki, namespaceOf(ki, obj))
	if err := c.do(ctx, request{method: http.MethodPost, path: path, body: obj}, obj); err != nil {
		return fmt.Errorf("create %s %q: %w", ki.Kind, objName(obj), err)
	}
	return nil
}

// Get reads the object ns/name (ns is ignored for cluster-scoped kinds)
// into obj, whose Go type says the kind.
func (c *Client) Get(ctx context.Context, ns, name string, obj api.Object) error {
	ki := api.KindOf(obj)
	if ki.Namespaced && ns == "" {
		ns = api.DefaultNamespace
	}
	if err := c.do(ctx, request{method: http.MethodGet, path: api.ObjectPath(ki, ns, name)}, obj); err != nil {
		return fmt.Errorf("get %s %q: %w", ki.Kind, keyOf(ki, ns, name), err)
	}
	return nil
}

// Update writes obj's spec and metadata (not its status) if obj carries
// the stored resourceVersion, and reads the stored result back into obj; a
// stale resourceVersion fails with a Conflict ([api.IsConflict]).
func (c *Client) Update(ctx context.Context, obj api.Object) error {
	ki := api.KindOf(obj)
	api.SetTypeMeta(obj)
	path := api.ObjectPath(ki, namespaceOf(ki, obj), obj.GetMeta().Name)
	if err := c.do(ctx, request{method: http.MethodPut, path: path, body: obj}, obj); err != nil {
		return fmt.Errorf("update %s %q: %w", ki.Kind, objName(obj), err)
	}
	return nil
}

// UpdateStatus writes obj's status only, compare-and-swap on its
// resourceVersion like Update, and reads the stored result back into obj.
func (c *Client) UpdateStatus(ctx context.Context, obj api.Object) error {
	ki := api.KindOf(obj)
	api.SetTypeMeta(obj)
	path := api.ObjectPath(ki, namespaceOf(ki, obj), obj.GetMeta().Name) + "/status"
	if err := c.do(ctx, request{method: http.MethodPut, path: path, body: obj}, obj); err != nil {
		return fmt.Errorf("update status of %s %q: %w", ki.Kind, objName(obj), err)
	}
	return nil
}

// DeleteOption changes how Delete removes an object.
type DeleteOption func(url.Values)

// GracePeriod overrides the pod's termination grace period; 0 removes a pod
// at once, without waiting for its node (for nodes that cannot act).
func GracePeriod(seconds int64) DeleteOption {
	return func(q url.Values) { q.Set(api.QueryGracePeriod, strconv.FormatInt(seconds, 10)) }
}

// Delete deletes obj (by its kind, namespace and name). A pod bound to a
// running node starts terminating and disappears once its node has stopped
// it.
func (c *Client) Delete(ctx context.Context, obj api.Object, opts ...DeleteOption) error {
	ki := api.KindOf(obj)
	q := url.Values{}
	for _, o := range opts {
		o(q)
	}
	path := api.ObjectPath(ki, namespaceOf(ki, obj), obj.GetMeta().Name)
	if err := c.do(ctx, request{method: http.MethodDelete, path: path, query: q}, nil); err != nil {
		return fmt.Errorf("delete %s %q: %w", ki.Kind, objName(obj), err)
	}
	return nil
}

// ListOptions filter a List.
type ListOptions struct {
	// Namespace limits the list to one namespace; "" lists every
	// namespace (and is the only choice for cluster-scoped kinds).
	Namespace string
	// Labels keeps objects carrying every key=value.
	Labels map[string]string
	// NodeName keeps pods bound to that node (field selector).
	NodeName string
}

func (o ListOptions) query() url.Values {
	q := url.Values{}
	if len(o.Labels) > 0 {
		q.Set(api.QueryLabelSelector, api.FormatSelector(o.Labels))
	}
	if o.NodeName != "" {
		q.Set(api.QueryFieldSelector, api.FieldNodeName+"="+o.NodeName)
	}
	return q
}

// List reads the objects of list's kind into list; its resourceVersion is
// the revision to watch from.
func (c *Client) List(ctx context.Context, list api.ObjectList, opts ListOptions) error {
	ki, err := KindOfList(list)
	if err != nil {
		return err
	}
	path := api.CollectionPath(ki, opts.Namespace)
	if err := c.do(ctx, request{method: http.MethodGet, path: path, query: opts.query()}, list); err != nil {
		return fmt.Errorf("list %s: %w", ki.Resource, err)
	}
	return nil
}

// KindOfList returns the kind of a list from its Go type.
func KindOfList(list api.ObjectList) (api.KindInfo, error) {
	t := reflect.TypeOf(list)
	for _, ki := range api.Kinds() {
		if reflect.TypeOf(ki.NewList()) == t {
			return ki, nil
		}
	}
	return api.KindInfo{}, fmt.Errorf("unknown list type %T", list)
}

// WatchOptions filter a Watch and say where it starts.
type WatchOptions struct {
	// Namespace limits the watch to one namespace; "" watches all.
	Namespace string
	// Labels keeps objects carrying every key=value.
	Labels map[string]string
	// NodeName keeps pods bound to that node.
	NodeName string
	// ResourceVersion starts the watch after this revision (usually a
	// list's); 0 starts after the current revision.
	ResourceVersion int64
}

// Event is one decoded change of a watch stream.
type Event struct {
	// Type says what happened; Bookmark events carry only
	// ResourceVersion and a nil Object.
	Type api.EventType
	// Object is the object after the change (before it, for Deleted).
	Object api.Object
	// ResourceVersion is the revision of the change: resume from it.
	ResourceVersion int64
}

// Watcher is an open watch stream. Events closes when the stream ends;
// then Err says why (nil after Stop, a cancelled context, or a server that
// ended the stream cleanly; an *api.Status, for example Gone, when the
// server sent an error).
type Watcher interface {
	// Events delivers the changes in order.
	Events() <-chan Event
	// Err is the reason the stream ended, valid once Events is closed.
	Err() error
	// Stop ends the stream; it is safe to call more than once.
	Stop()
}

// Watch opens a stream of changes to objects of one kind.
//
// A stream that delivers nothing, not even a BOOKMARK, for
// [WatchIdleIntervals] times the bookmark interval the server advertises
// (api.HeaderBookmarkInterval; 90 s when a server does not say) is taken
// for dead: it ends with an error, and the endpoint that served it is
// tried last by the client's next requests, so the caller (an [Informer])
// watches again from its last revision on another control-plane host.
func (c *Client) Watch(ctx context.Context, ki api.KindInfo, opts WatchOptions) (Watcher, error) {
	q := ListOptions{Namespace: opts.Namespace, Labels: opts.Labels, NodeName: opts.NodeName}.query()
	q.Set(api.QueryWatch, "true")
	q.Set(api.QueryResourceVersion, strconv.FormatInt(opts.ResourceVersion, 10))
	wctx, cancel := context.WithCancel(ctx)
	resp, ep, err := c.stream(wctx, request{method: http.MethodGet, path: api.CollectionPath(ki, opts.Namespace), query: q})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("watch %s: %w", ki.Resource, err)
	}
	w := &watcher{
		c: c, ki: ki, endpoint: ep, body: resp.Body, cancel: cancel, ctx: wctx, events: make(chan Event),
		idle: watchIdleTimeout(resp.Header.Get(api.HeaderBookmarkInterval)),
	}
	go w.run()
	return w, nil
}

// WatchIdleIntervals is how many bookmark intervals a watch may stay
// silent before the client takes it for dead. Three tolerate a late
// bookmark or two on a loaded server without waiting long on a dead one.
const WatchIdleIntervals = 3

// Bounds of a watch's idle timeout.
const (
	// minWatchIdle keeps a server with a very short bookmark interval (a
	// test's) from making watches fail on every scheduling hiccup.
	minWatchIdle = time.Second
	// legacyWatchIdle applies to servers that do not advertise their
	// interval: they sent a bookmark every 30 s.
	legacyWatchIdle = WatchIdleIntervals * 30 * time.Second
)

// watchIdleTimeout turns the advertised bookmark interval (seconds) into
// how long a watch may stay silent.
func watchIdleTimeout(header string) time.Duration {
	secs, err := strconv.ParseFloat(strings.TrimSpace(header), 64)
	if err != nil || secs <= 0 || math.IsInf(secs, 0) || math.IsNaN(secs) {
		return legacyWatchIdle
	}
	// Cap before converting so an absurd header cannot overflow.
	interval := time.Duration(min(secs, 24*3600) * float64(time.Second))
	return max(WatchIdleIntervals*interval, minWatchIdle)
}

type watcher struct {
	c        *Client
	ki       api.KindInfo
	endpoint string
	body     io.ReadCloser
	ctx      context.Context
	cancel   context.CancelFunc
	events   chan Event
	idle     time.Duration

	mu        sync.Mutex
	err       error
	once      sync.Once
	closeOnce sync.Once
	idleFired atomic.Bool
}

// Events implements Watcher.
func (w *watcher) Events() <-chan Event { return w.events }

// Err implements Watcher.
func (w *watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Stop implements Watcher.
func (w *watcher) Stop() {
	w.once.Do(func() {
		w.cancel()
		w.closeBody()
	})
}

func (w *watcher) closeBody() { w.closeOnce.Do(func() { w.body.Close() }) }

func (w *watcher) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ctx.Err() == nil {
		w.err = err
	}
}

func (w *watcher) run() {
	defer close(w.events)
	defer w.Stop()
	// The idle timer runs while the stream is read and stops while an
	// event waits for the consumer, so a slow consumer is not mistaken
	// for a dead server.
	idle := time.AfterFunc(w.idle, func() {
		w.idleFired.Store(true)
		w.closeBody()
	})
	defer idle.Stop()
	apiErr := false
	defer func() {
		// A stream that broke, went silent or was ended by the server
		// (it is stopping, or lost its store) points at a host in
		// trouble: the client tries the others first. An API error (Gone)
		// is a healthy server's answer.
		if w.ctx.Err() == nil && !apiErr {
			why := w.Err()
			if why == nil {
				why = fmt.Errorf("watch %s: the server ended the stream", w.ki.Resource)
			}
			w.c.endpointFailed(w.endpoint, why)
		}
	}()
	sc := bufio.NewScanner(w.body)
	sc.Buffer(make([]byte, 64*1024), 64*1024*1024)
	for sc.Scan() {
		if !idle.Stop() {
			break // fired while the line was read: the body is closed
		}
		line := sc.Bytes()
		if len(line) == 0 {
			idle.Reset(w.idle)
			continue
		}
		ev, err := decodeEvent(w.ki, line)
		if err != nil {
			var st *api.Status
			apiErr = errors.As(err, &st)
			w.fail(fmt.Errorf("watch %s: %w", w.ki.Resource, err))
			return
		}
		select {
		case w.events <- ev:
		case <-w.ctx.Done():
			return
		}
		idle.Reset(w.idle)
	}
	if w.idleFired.Load() {
		w.fail(fmt.Errorf("watch %s: nothing, not even a bookmark, for %s from %s: the stream is presumed dead", w.ki.Resource, w.idle, w.endpoint))
		return
	}
	if err := sc.Err(); err != nil && !errors.Is(err, io.EOF) {
		w.fail(fmt.Errorf("watch %s: read stream from %s: %w", w.ki.Resource, w.endpoint, err))
	}
}

// decodeEvent decodes one line of a watch stream. An ERROR event returns
// its Status as the error.
func decodeEvent(ki api.KindInfo, line []byte) (Event, error) {
	var we api.WatchEvent
	if err := json.Unmarshal(line, &we); err != nil {
		return Event{}, fmt.Errorf("decode watch event: %w", err)
	}
	switch we.Type {
	case api.Error:
		var st api.Status
		if err := json.Unmarshal(we.Object, &st); err != nil || st.Reason == "" {
			return Event{}, fmt.Errorf("watch error event without a status: %s", string(we.Object))
		}
		return Event{}, &st
	case api.Bookmark:
		var b struct {
			Metadata struct {
				ResourceVersion int64 `json:"resourceVersion"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(we.Object, &b); err != nil {
			return Event{}, fmt.Errorf("decode bookmark: %w", err)
		}
		return Event{Type: api.Bookmark, ResourceVersion: b.Metadata.ResourceVersion}, nil
	case api.Added, api.Modified, api.Deleted:
		obj := ki.New()
		if err := json.Unmarshal(we.Object, obj); err != nil {
			return Event{}, fmt.Errorf("decode %s in %s event: %w", ki.Kind, we.Type, err)
		}
		api.SetTypeMeta(obj)
		return Event{Type: we.Type, Object: obj, ResourceVersion: obj.GetMeta().ResourceVersion}, nil
	}
	return Event{}, fmt.Errorf("unknown watch event type %q", we.Type)
}

func objName(obj api.Object) string {
	return keyOf(api.KindOf(obj), obj.GetMeta().Namespace, obj.GetMeta().Name)
}

func keyOf(ki api.KindInfo, ns, name string) string {
	if !ki.Namespaced || ns == "" {
		return name
	}
	return ns + "/" + name
}

// DeepCopy returns an independent copy of obj, so an object from a shared
// cache can be changed and written without touching the cache.
func DeepCopy[T api.Object](obj T) T {
	data, err := json.Marshal(obj)
	if err != nil {
		panic(fmt.Sprintf("client: copy %T: %v", obj, err))
	}
	out := api.KindOf(obj).New()
	if err := json.Unmarshal(data, out); err != nil {
		panic(fmt.Sprintf("client: copy %T: %v", obj, err))
	}
	return out.(T)
}
