package server

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/store"
)

// requestContext bounds a non-streaming request by the request timeout.
func (s *Server) requestContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.requestTimeout)
}

// listOptions reads ?labelSelector= and ?fieldSelector= (only
// spec.nodeName, only for pods).
func listOptions(r *http.Request, rt objectRoute) (store.ListOptions, error) {
	q := r.URL.Query()
	opts := store.ListOptions{Namespace: rt.namespace}
	sel, err := api.ParseSelector(q.Get(api.QueryLabelSelector))
	if err != nil {
		return opts, err
	}
	if len(sel) > 0 {
		opts.Labels = sel
	}
	if fs := strings.TrimSpace(q.Get(api.QueryFieldSelector)); fs != "" {
		field, value, ok := strings.Cut(fs, "=")
		if !ok || strings.TrimSpace(field) != api.FieldNodeName || rt.ki.Kind != "Pod" {
			return opts, api.NewError(api.ReasonBadRequest,
				"field selector %q: the only field selector is %s=NAME, on pods", fs, api.FieldNodeName)
		}
		node := strings.TrimSpace(value)
		opts.Filter = func(o api.Object) bool { return o.(*api.Pod).Spec.NodeName == node }
	}
	return opts, nil
}

// resourceVersionParam reads ?resourceVersion=N (0 when absent).
func resourceVersionParam(r *http.Request) (int64, error) {
	v := r.URL.Query().Get(api.QueryResourceVersion)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, api.NewError(api.ReasonBadRequest, "resourceVersion %q: must be a non-negative integer", v)
	}
	return n, nil
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request, rt objectRoute) {
	ctx, cancel := s.requestContext(r)
	defer cancel()
	opts, err := listOptions(r, rt)
	if err != nil {
		writeError(w, err)
		return
	}
	if opts.ResourceVersion, err = resourceVersionParam(r); err != nil {
		writeError(w, err)
		return
	}
	list := rt.ki.NewList()
	if err := s.store.List(ctx, list, opts); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

// namedObject is an empty object of the route's kind carrying its name and
// namespace, ready for a store read.
func namedObject(rt objectRoute) api.Object {
	obj := rt.ki.New()
	m := obj.GetMeta()
	m.Name = rt.name
	if rt.ki.Namespaced {
		m.Namespace = rt.namespace
	}
	return obj
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request, rt objectRoute) {
	ctx, cancel := s.requestContext(r)
	defer cancel()
	obj := namedObject(rt)
	if err := s.store.Get(ctx, obj); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, obj)
}

// readObject decodes the request body as an object of the route's kind and
// checks that it names what the path names (filling the namespace, and for
// updates the name, when the body leaves them out).
func (s *Server) readObject(w http.ResponseWriter, r *http.Request, rt objectRoute) (api.Object, error) {
	obj := rt.ki.New()
	if err := decodeBody(w, r, s.maxBody, obj); err != nil {
		return nil, err
	}
	tm := obj.GetTypeMeta()
	if tm.Kind != "" && tm.Kind != rt.ki.Kind {
		return nil, api.NewError(api.ReasonBadRequest, "the body is a %s but %s takes a %s", tm.Kind, r.URL.Path, rt.ki.Kind)
	}
	if tm.APIVersion != "" && tm.APIVersion != api.Version {
		return nil, api.NewError(api.ReasonBadRequest, "apiVersion must be %q, got %q", api.Version, tm.APIVersion)
	}
	m := obj.GetMeta()
	if rt.ki.Namespaced {
		switch {
		case m.Namespace == "":
			m.Namespace = rt.namespace
		case m.Namespace != rt.namespace:
			return nil, api.NewError(api.ReasonBadRequest,
				"metadata.namespace %q does not match the namespace %q of the path", m.Namespace, rt.namespace)
		}
	}
	if rt.name != "" {
		switch {
		case m.Name == "":
			m.Name = rt.name
		case m.Name != rt.name:
			return nil, api.NewError(api.ReasonBadRequest,
				"metadata.name %q does not match the name %q of the path", m.Name, rt.name)
		}
	}
	return obj, nil
}

// statusValue is the Status field of obj (invalid for kinds without one).
func statusValue(obj api.Object) reflect.Value {
	return reflect.ValueOf(obj).Elem().FieldByName("Status")
}

// clearServerFields drops what a client may not set on create: the server
// and store own these.
func clearServerFields(obj api.Object) {
	m := obj.GetMeta()
	m.UID = ""
	m.ResourceVersion = 0
	m.Generation = 0
	m.CreationTimestamp = time.Time{}
	m.DeletionTimestamp = nil
	m.DeletionGracePeriodSeconds = nil
	if f := statusValue(obj); f.IsValid() {
		f.SetZero()
	}
}

func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request, rt objectRoute) {
	ctx, cancel := s.requestContext(r)
	defer cancel()
	obj, err := s.readObject(w, r, rt)
	if err != nil {
		writeError(w, err)
		return
	}
	c := callerFrom(r.Context())
	if rt.ki.Kind == "Node" {
		if err := checkNodeName(c.id, "create", obj.GetMeta().Name); err != nil {
			writeError(w, err)
			return
		}
	}
	clearServerFields(obj)
	api.Default(obj)
	if errs := api.Validate(obj); len(errs) > 0 {
		writeError(w, api.NewInvalid(rt.ki.Kind, displayName(obj), errs))
		return
	}
	if rt.ki.Namespaced {
		if err := s.checkNamespaceOpen(ctx, obj.GetMeta().Namespace); err != nil {
			writeError(w, err)
			return
		}
	}
	undo := func() {}
	switch o := obj.(type) {
	case *api.Service:
		if undo, err = s.allocateService(ctx, o, nil); err != nil {
			writeError(w, err)
			return
		}
	case *api.Node:
		if undo, err = s.allocatePodCIDR(ctx, o); err != nil {
			writeError(w, err)
			return
		}
	}
	if err := s.store.Create(ctx, obj); err != nil {
		undo()
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, obj)
}

// displayName names an object in messages before it has a name.
func displayName(obj api.Object) string {
	m := obj.GetMeta()
	if m.Name == "" && m.GenerateName != "" {
		return api.Key(obj) + m.GenerateName + "*"
	}
	return api.Key(obj)
}

// checkNamespaceOpen refuses creates in a namespace that does not exist or
// is being deleted.
func (s *Server) checkNamespaceOpen(ctx context.Context, name string) error {
	ns := &api.Namespace{Metadata: api.ObjectMeta{Name: name}}
	if err := s.store.Get(ctx, ns); err != nil {
		if api.IsNotFound(err) {
			return api.NewError(api.ReasonNotFound, "namespace %q not found: create the namespace first", name)
		}
		return err
	}
	if ns.Metadata.DeletionTimestamp != nil || ns.Status.Phase == api.NamespaceTerminating {
		return api.NewError(api.ReasonForbidden,
			"namespace %q is being deleted (Terminating): nothing new may be created in it", name)
	}
	return nil
}

func (s *Server) handleUpdate(w http.ResponseWriter, r *http.Request, rt objectRoute) {
	ctx, cancel := s.requestContext(r)
	defer cancel()
	obj, err := s.readObject(w, r, rt)
	if err != nil {
		writeError(w, err)
		return
	}
	old := namedObject(rt)
	if err := s.store.Get(ctx, old); err != nil {
		writeError(w, err)
		return
	}
	if rv := obj.GetMeta().ResourceVersion; rv != 0 && rv != old.GetMeta().ResourceVersion {
		writeError(w, api.NewConflict(rt.ki.Kind, api.Key(old), rv, old.GetMeta().ResourceVersion))
		return
	}
	api.Default(obj)
	switch o := obj.(type) {
	case *api.Service:
		keepServiceAllocations(o, old.(*api.Service))
	case *api.Node:
		if o.Spec.PodCIDR == "" {
			o.Spec.PodCIDR = old.(*api.Node).Spec.PodCIDR
		}
	}
	// The stored status is kept by the store; validate what will be stored.
	if f := statusValue(obj); f.IsValid() {
		f.Set(statusValue(old))
	}
	if errs := api.ValidateUpdate(old, obj); len(errs) > 0 {
		writeError(w, api.NewInvalid(rt.ki.Kind, api.Key(obj), errs))
		return
	}
	undo := func() {}
	if svc, ok := obj.(*api.Service); ok {
		if undo, err = s.allocateService(ctx, svc, old.(*api.Service)); err != nil {
			writeError(w, err)
			return
		}
	}
	if err := s.store.Update(ctx, obj); err != nil {
		undo()
		writeError(w, err)
		return
	}
	if svc, ok := obj.(*api.Service); ok {
		s.releaseUnused(ctx, old.(*api.Service), svc)
	}
	writeJSON(w, http.StatusOK, obj)
}

func (s *Server) handleUpdateStatus(w http.ResponseWriter, r *http.Request, rt objectRoute) {
	ctx, cancel := s.requestContext(r)
	defer cancel()
	in, err := s.readObject(w, r, rt)
	if err != nil {
		writeError(w, err)
		return
	}
	obj := namedObject(rt)
	if err := s.store.Get(ctx, obj); err != nil {
		writeError(w, err)
		return
	}
	if pod, ok := obj.(*api.Pod); ok {
		if err := checkPodBinding(callerFrom(r.Context()).id, "update the status of", pod); err != nil {
			writeError(w, err)
			return
		}
	}
	// What will be stored: the stored object with the new status, at the
	// resourceVersion the caller read.
	statusValue(obj).Set(statusValue(in))
	obj.GetMeta().ResourceVersion = in.GetMeta().ResourceVersion
	api.Default(obj)
	if errs := api.Validate(obj); len(errs) > 0 {
		writeError(w, api.NewInvalid(rt.ki.Kind, api.Key(obj), errs))
		return
	}
	if err := s.store.UpdateStatus(ctx, obj); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, obj)
}

// gracePeriodParam reads ?gracePeriodSeconds=N, or nil when absent.
func gracePeriodParam(r *http.Request) (*int64, error) {
	v := r.URL.Query().Get(api.QueryGracePeriod)
	if v == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return nil, api.NewError(api.ReasonBadRequest, "gracePeriodSeconds %q: must be a non-negative integer", v)
	}
	return &n, nil
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request, rt objectRoute) {
	ctx, cancel := s.requestContext(r)
	defer cancel()
	grace, err := gracePeriodParam(r)
	if err != nil {
		writeError(w, err)
		return
	}
	obj := namedObject(rt)
	if err := s.store.Get(ctx, obj); err != nil {
		writeError(w, err)
		return
	}
	c := callerFrom(r.Context())
	var result api.Object
	switch o := obj.(type) {
	case *api.Pod:
		if err = checkPodBinding(c.id, "delete", o); err == nil {
			result, err = s.deletePod(ctx, o, grace)
		}
	case *api.Namespace:
		result, err = s.deleteNamespace(ctx, o)
	case *api.Node:
		result, err = s.deleteNode(ctx, o)
	case *api.Service:
		if err = s.store.Delete(ctx, o, store.DeleteOptions{UID: o.Metadata.UID}); err == nil {
			s.releaseUnused(ctx, o, nil)
			result = o
		}
	default:
		if err = s.store.Delete(ctx, obj, store.DeleteOptions{UID: obj.GetMeta().UID}); err == nil {
			result = obj
		}
	}
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, result)
}

// deletePod removes a pod that no node runs (unbound or finished) at once,
// and begins a graceful deletion of a running one: it sets
// deletionTimestamp and deletionGracePeriodSeconds, and the pod's agent
// stops it and then deletes it with gracePeriodSeconds=0. A grace period of
// 0 removes any pod at once.
func (s *Server) deletePod(ctx context.Context, pod *api.Pod, grace *int64) (api.Object, error) {
	for attempt := 0; ; attempt++ {
		immediate := pod.Spec.NodeName == "" || api.IsPodFinished(pod) || (grace != nil && *grace == 0)
		if immediate {
			if err := s.store.Delete(ctx, pod, store.DeleteOptions{UID: pod.Metadata.UID}); err != nil {
				return nil, err
			}
			return pod, nil
		}
		if pod.Metadata.DeletionTimestamp != nil {
			// Already terminating: a shorter grace period may hurry it.
			if grace == nil || (pod.Metadata.DeletionGracePeriodSeconds != nil && *grace >= *pod.Metadata.DeletionGracePeriodSeconds) {
				return pod, nil
			}
		} else {
			now := s.now().UTC()
			pod.Metadata.DeletionTimestamp = &now
		}
		g := api.DefaultTerminationGracePeriodSeconds
		switch {
		case grace != nil:
			g = *grace
		case pod.Spec.TerminationGracePeriodSeconds != nil:
			g = *pod.Spec.TerminationGracePeriodSeconds
		}
		pod.Metadata.DeletionGracePeriodSeconds = &g
		err := s.store.UpdateMeta(ctx, pod)
		if err == nil {
			return pod, nil
		}
		if !api.IsConflict(err) || attempt >= 8 {
			return nil, err
		}
		if err := s.store.Get(ctx, pod); err != nil {
			return nil, err
		}
	}
}

// protectedNamespaces exist from bootstrap and hold berth's own objects.
var protectedNamespaces = map[string]bool{api.DefaultNamespace: true, api.SystemNamespace: true}

// deleteNamespace marks a namespace Terminating on the first delete (the
// garbage collector then empties it, and creates in it are refused), and
// removes it on a delete once it is Terminating and empty.
func (s *Server) deleteNamespace(ctx context.Context, ns *api.Namespace) (api.Object, error) {
	if protectedNamespaces[ns.Metadata.Name] {
		return nil, api.NewError(api.ReasonForbidden, "namespace %q is part of every cluster and cannot be deleted", ns.Metadata.Name)
	}
	if ns.Metadata.DeletionTimestamp == nil || ns.Status.Phase != api.NamespaceTerminating {
		if ns.Status.Phase != api.NamespaceTerminating {
			if err := s.store.GuaranteedUpdate(ctx, ns, true, func() error {
				ns.Status.Phase = api.NamespaceTerminating
				return nil
			}); err != nil {
				return nil, fmt.Errorf("mark namespace %s terminating: %w", ns.Metadata.Name, err)
			}
		}
		for attempt := 0; ns.Metadata.DeletionTimestamp == nil; attempt++ {
			now := s.now().UTC()
			ns.Metadata.DeletionTimestamp = &now
			err := s.store.UpdateMeta(ctx, ns)
			if err == nil {
				break
			}
			if !api.IsConflict(err) || attempt >= 8 {
				return nil, fmt.Errorf("mark namespace %s deleted: %w", ns.Metadata.Name, err)
			}
			if err := s.store.Get(ctx, ns); err != nil {
				return nil, err
			}
		}
		return ns, nil
	}
	var left []string
	for _, ki := range api.Kinds() {
		if !ki.Namespaced {
			continue
		}
		list := ki.NewList()
		if err := s.store.List(ctx, list, store.ListOptions{Namespace: ns.Metadata.Name}); err != nil {
			return nil, fmt.Errorf("check that namespace %s is empty: %w", ns.Metadata.Name, err)
		}
		if n := len(list.ObjectItems()); n > 0 {
			left = append(left, fmt.Sprintf("%d %s", n, ki.Resource))
		}
	}
	if len(left) > 0 {
		return nil, api.NewError(api.ReasonConflict,
			"namespace %q is Terminating and still holds %s: the garbage collector removes them, then deletes the namespace",
			ns.Metadata.Name, strings.Join(left, ", "))
	}
	if err := s.store.Delete(ctx, ns, store.DeleteOptions{UID: ns.Metadata.UID}); err != nil {
		return nil, err
	}
	return ns, nil
}

// deleteNode revokes the node's certificates, removes the Node and frees
// its pod CIDR.
func (s *Server) deleteNode(ctx context.Context, n *api.Node) (api.Object, error) {
	if err := s.revokeNodeCertificates(ctx, n.Metadata.Name); err != nil {
		return nil, err
	}
	if err := s.store.Delete(ctx, n, store.DeleteOptions{UID: n.Metadata.UID}); err != nil {
		return nil, err
	}
	if n.Spec.PodCIDR != "" {
		if err := s.store.Release(ctx, poolPodCIDRs, n.Spec.PodCIDR); err != nil {
			s.log.Warn("release pod cidr of deleted node", "node", n.Metadata.Name, "cidr", n.Spec.PodCIDR, "err", err)
		}
	}
	return n, nil
}
