package agent

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/pki"
)

// Handler serves the agent API: /v1/logs/{ns}/{pod}/{container}
// (?follow=true&tailLines=N) for the control plane and admins only,
// /healthz and /metrics. The TLS layer must already have verified the
// caller's certificate against the cluster CA.
func (a *Agent) Handler() http.Handler {
	a.registerGauges()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/logs/{namespace}/{pod}/{container}", a.handleLogs)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if err := a.Healthy(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.met.reg, promhttp.HandlerOpts{}))
	return mux
}

func writeStatus(w http.ResponseWriter, code int, reason api.Reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(api.NewError(reason, "%s", msg))
}

// callerMayReadLogs allows the control plane (which proxies `berth logs`)
// and admins; nodes may not read each other's logs.
func callerMayReadLogs(r *http.Request) (pki.Identity, bool) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return pki.Identity{}, false
	}
	id, err := pki.IdentityFromCert(r.TLS.VerifiedChains[0][0])
	if err != nil {
		return pki.Identity{}, false
	}
	return id, id.Role == pki.RoleServer || id.Role == pki.RoleAdmin
}

func (a *Agent) handleLogs(w http.ResponseWriter, r *http.Request) {
	id, ok := callerMayReadLogs(r)
	if !ok {
		writeStatus(w, http.StatusForbidden, api.ReasonForbidden, "only the control plane and admins may read container logs (caller "+id.String()+")")
		return
	}
	ns, name, container := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
	q := r.URL.Query()
	follow, _ := strconv.ParseBool(q.Get(api.QueryFollow))
	var tail int64
	if s := q.Get(api.QueryTailLines); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 0 {
			writeStatus(w, http.StatusBadRequest, api.ReasonBadRequest, "tailLines must be a non-negative number, got "+strconvQuote(s))
			return
		}
		tail = v
	}
	if a.pods == nil {
		writeStatus(w, http.StatusServiceUnavailable, api.ReasonUnavailable, "the agent has not started syncing pods yet")
		return
	}
	o, found := a.pods.Get(ns, name)
	if !found {
		writeStatus(w, http.StatusNotFound, api.ReasonNotFound, "pod "+ns+"/"+name+" is not on node "+a.cfg.NodeName)
		return
	}
	pod := o.(*api.Pod)
	known := false
	for _, c := range pod.Spec.Containers {
		known = known || c.Name == container
	}
	if !known {
		writeStatus(w, http.StatusNotFound, api.ReasonNotFound, "pod "+ns+"/"+name+" has no container "+strconvQuote(container))
		return
	}
	uid := pod.Metadata.UID
	pw := &podWorker{a: a, uid: uid, namespace: ns, name: name}
	alive := func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.workers[uid] != nil
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	flush := func() { _ = rc.Flush() }
	if err := writeLog(r.Context(), w, flush, pw.logPath(container), tail, follow, alive); err != nil {
		a.log.Debug("stream log", "pod", ns+"/"+name, "container", container, "err", err)
	}
}

func strconvQuote(s string) string { return strconv.Quote(strings.TrimSpace(s)) }
