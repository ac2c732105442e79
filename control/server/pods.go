package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/pki"
	"github.com/berth-io/berth/control/store"
)

// handleEviction deletes a pod gracefully unless that would take its
// deployment below replicas - maxUnavailable available pods, in which case
// it answers TooManyRequests: a drain retries later. A pod that is not
// Ready serves nobody, so evicting it costs no availability and is always
// allowed (a crash-looping pod never blocks a drain).
func (s *Server) handleEviction(w http.ResponseWriter, r *http.Request, rt objectRoute) {
	ctx, cancel := s.requestContext(r)
	defer cancel()
	var req api.EvictionRequest
	if r.ContentLength != 0 {
		if err := decodeBody(w, r, s.maxBody, &req); err != nil && !isEmptyBody(err) {
			writeError(w, err)
			return
		}
	}
	if req.GracePeriodSeconds != nil && *req.GracePeriodSeconds < 0 {
		writeError(w, api.NewError(api.ReasonBadRequest, "gracePeriodSeconds must not be negative, got %d", *req.GracePeriodSeconds))
		return
	}
	// Evictions are decided one at a time, so two evictions of one
	// deployment's pods cannot both count the same available pods.
	s.evictMu.Lock()
	defer s.evictMu.Unlock()
	pod := namedObject(rt).(*api.Pod)
	if err := s.store.Get(ctx, pod); err != nil {
		writeError(w, err)
		return
	}
	if !api.IsPodTerminating(pod) && api.IsPodReady(pod) {
		if err := s.checkDisruption(ctx, pod); err != nil {
			writeError(w, err)
			return
		}
	}
	result, err := s.deletePod(ctx, pod, req.GracePeriodSeconds)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, result)
}

func isEmptyBody(err error) bool {
	var st *api.Status
	return errors.As(err, &st) && strings.HasPrefix(st.Message, "request body is empty")
}

// checkDisruption refuses evicting pod when its deployment would then have
// fewer than replicas - maxUnavailable available pods (Ready and not
// terminating, among the pods its selector matches).
func (s *Server) checkDisruption(ctx context.Context, pod *api.Pod) error {
	owner := api.ControllerOf(&pod.Metadata)
	if owner == nil || owner.Kind != "Deployment" {
		return nil
	}
	dep := &api.Deployment{Metadata: api.ObjectMeta{Namespace: pod.Metadata.Namespace, Name: owner.Name}}
	if err := s.store.Get(ctx, dep); err != nil {
		if api.IsNotFound(err) {
			return nil // an orphan: the garbage collector removes it anyway
		}
		return err
	}
	if dep.Metadata.UID != owner.UID || len(dep.Spec.Selector) == 0 {
		return nil
	}
	replicas := api.DefaultReplicas
	if dep.Spec.Replicas != nil {
		replicas = *dep.Spec.Replicas
	}
	maxUnavailable := api.FromString(api.DefaultMaxUnavailable)
	if dep.Spec.Strategy.MaxUnavailable != nil {
		maxUnavailable = *dep.Spec.Strategy.MaxUnavailable
	}
	allowed, err := api.ResolveIntOrPercent(maxUnavailable, replicas, false)
	if err != nil {
		return fmt.Errorf("deployment %s maxUnavailable: %w", api.Key(dep), err)
	}
	pods := &api.PodList{}
	if err := s.store.List(ctx, pods, store.ListOptions{Namespace: dep.Metadata.Namespace, Labels: dep.Spec.Selector}); err != nil {
		return fmt.Errorf("count available pods of deployment %s: %w", api.Key(dep), err)
	}
	available := int32(0)
	for i := range pods.Items {
		p := &pods.Items[i]
		if api.IsPodReady(p) && !api.IsPodTerminating(p) {
			available++
		}
	}
	after := available - 1 // the pod to evict is Ready
	need := replicas - allowed
	if after < need {
		return api.NewError(api.ReasonTooManyRequests,
			"cannot evict pod %s now: deployment %s has %d available pods and needs at least %d (replicas %d - maxUnavailable %d); retry once replacement pods are Ready",
			api.Key(pod), dep.Metadata.Name, available, need, replicas, allowed)
	}
	return nil
}

// handleLog proxies to the agent of the pod's node, streaming.
func (s *Server) handleLog(w http.ResponseWriter, r *http.Request, rt objectRoute) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.stopCtx, cancel)
	defer stop()
	q := r.URL.Query()
	target, err := s.logTarget(ctx, rt, q.Get(api.QueryContainer))
	if err != nil {
		writeError(w, err)
		return
	}
	agentQuery := url.Values{}
	for _, k := range []string{api.QueryFollow, api.QueryTailLines} {
		if v := q.Get(k); v != "" {
			agentQuery.Set(k, v)
		}
	}
	u := strings.TrimSuffix(target.endpoint, "/") + AgentLogPath(target.namespace, target.pod, target.container)
	if len(agentQuery) > 0 {
		u += "?" + agentQuery.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		writeError(w, api.NewError(api.ReasonInternal, "node %s has an unusable agent endpoint %q: %v", target.node, target.endpoint, err))
		return
	}
	resp, err := s.agentClient.Do(req)
	if err != nil {
		writeError(w, api.NewError(api.ReasonUnavailable, "reach the agent of node %s at %s: %v", target.node, target.endpoint, err))
		return
	}
	defer resp.Body.Close()
	if err := checkAgentPeer(resp, target.node); err != nil {
		writeError(w, api.NewError(api.ReasonUnavailable, "the agent endpoint %s of node %s: %v", target.endpoint, target.node, err))
		return
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var st api.Status
		if json.Unmarshal(body, &st) == nil && st.Reason != "" {
			writeJSON(w, resp.StatusCode, &st)
			return
		}
		writeError(w, api.NewError(api.ReasonUnavailable, "the agent of node %s answered %s: %s", target.node, resp.Status, strings.TrimSpace(string(body))))
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	} else {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()
	buf := make([]byte, 32<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			_ = rc.SetWriteDeadline(time.Now().Add(s.writeTimeout))
			if _, err := w.Write(buf[:n]); err != nil {
				return
			}
			_ = rc.Flush()
		}
		if rerr != nil {
			return
		}
	}
}

// AgentLogPath is the path on a node agent's HTTPS server that serves a
// container's log: /v1/logs/{namespace}/{pod}/{container}, taking ?follow=
// and ?tailLines= as the API's log endpoint does.
func AgentLogPath(namespace, pod, container string) string {
	return "/v1/logs/" + url.PathEscape(namespace) + "/" + url.PathEscape(pod) + "/" + url.PathEscape(container)
}

type logTarget struct {
	namespace, pod, container string
	node, endpoint            string
}

// logTarget finds the container and the agent serving its log.
func (s *Server) logTarget(ctx context.Context, rt objectRoute, container string) (logTarget, error) {
	ctx, cancel := context.WithTimeout(ctx, s.requestTimeout)
	defer cancel()
	pod := namedObject(rt).(*api.Pod)
	if err := s.store.Get(ctx, pod); err != nil {
		return logTarget{}, err
	}
	var names []string
	for _, c := range pod.Spec.Containers {
		names = append(names, c.Name)
	}
	switch {
	case container == "" && len(names) == 1:
		container = names[0]
	case container == "":
		return logTarget{}, api.NewError(api.ReasonBadRequest,
			"pod %s has several containers: choose one with ?container= (%s)", api.Key(pod), strings.Join(names, ", "))
	case !slices.Contains(names, container):
		return logTarget{}, api.NewError(api.ReasonNotFound,
			"pod %s has no container %q (it has %s)", api.Key(pod), container, strings.Join(names, ", "))
	}
	if pod.Spec.NodeName == "" {
		return logTarget{}, api.NewError(api.ReasonBadRequest, "pod %s is not scheduled to a node yet, so it has no logs", api.Key(pod))
	}
	node := &api.Node{Metadata: api.ObjectMeta{Name: pod.Spec.NodeName}}
	if err := s.store.Get(ctx, node); err != nil {
		if api.IsNotFound(err) {
			return logTarget{}, api.NewError(api.ReasonUnavailable, "node %s of pod %s no longer exists", pod.Spec.NodeName, api.Key(pod))
		}
		return logTarget{}, err
	}
	if node.Status.AgentEndpoint == "" {
		return logTarget{}, api.NewError(api.ReasonUnavailable, "node %s has not reported its agent endpoint yet", node.Metadata.Name)
	}
	return logTarget{
		namespace: pod.Metadata.Namespace, pod: pod.Metadata.Name, container: container,
		node: node.Metadata.Name, endpoint: node.Status.AgentEndpoint,
	}, nil
}

// checkAgentPeer makes sure the agent that answered is the pod's node's own:
// another node's serving certificate would chain to the CA too.
func checkAgentPeer(resp *http.Response, node string) error {
	if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 {
		return fmt.Errorf("answered without TLS")
	}
	id, err := pki.IdentityFromCert(resp.TLS.PeerCertificates[0])
	if err != nil {
		return err
	}
	if id.Role != pki.RoleNodeServer || id.Name != node {
		return fmt.Errorf("answered as %s, not as node %s's agent", id, node)
	}
	return nil
}
