package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/etcd"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// ReadyTimeout bounds the linearizable read /readyz makes: an instance
// whose etcd cannot answer within it is not ready.
const ReadyTimeout = 2 * time.Second

// VersionInfo is the body of GET /v1/version.
type VersionInfo struct {
	// Version of the berth binary serving the API.
	Version string `json:"version"`
	// APIVersion is the API version it serves, "v1".
	APIVersion string `json:"apiVersion"`
	// GoVersion the binary was built with.
	GoVersion string `json:"goVersion"`
}

// handleHealthz answers while the process can serve HTTP at all.
func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	s.setLabels(r, attributes{verb: "healthz"})
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ok\n")
}

// handleReadyz answers ok when etcd answers a linearizable read within
// ReadyTimeout, and 503 with the reason otherwise.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	s.setLabels(r, attributes{verb: "readyz"})
	ctx, cancel := context.WithTimeout(r.Context(), ReadyTimeout)
	defer cancel()
	// A Get is linearizable by default: it goes through the raft leader.
	if _, err := s.store.Client().Get(ctx, "/berth-readyz", countOnly()...); err != nil {
		writeError(w, api.NewError(api.ReasonUnavailable, "etcd did not answer a linearizable read within %s: %v", ReadyTimeout, err))
		return
	}
	if s.stopCtx.Err() != nil {
		writeError(w, api.NewError(api.ReasonUnavailable, "the api server is stopping"))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ok\n")
}

func (s *Server) handleVersion(w http.ResponseWriter, r *http.Request) {
	v := s.cfg.Version
	if v == "" {
		v = "dev"
	}
	writeJSON(w, http.StatusOK, &VersionInfo{Version: v, APIVersion: api.Version, GoVersion: runtime.Version()})
}

// handleSnapshot streams a verified etcd snapshot of the member this
// instance's client talks to; restore it with control/etcd's Restore. A
// snapshot that breaks off or fails its checksum aborts the response, so
// the client never mistakes it for a whole one.
func (s *Server) handleSnapshot(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.stopCtx, cancel)
	defer stop()
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	sw := &snapshotWriter{w: w, rc: rc, timeout: s.writeTimeout}
	err := etcd.Snapshot(ctx, s.store.Client(), sw)
	if err == nil {
		if !sw.wrote {
			sw.header()
		}
		return
	}
	if !sw.wrote {
		writeError(w, fmt.Errorf("take etcd snapshot: %w", err))
		return
	}
	s.log.Error("etcd snapshot broke off", "err", err)
	panic(http.ErrAbortHandler)
}

// snapshotWriter sends the snapshot, writing the headers with the first
// bytes so an early failure can still answer a Status.
type snapshotWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	wrote   bool
}

func (sw *snapshotWriter) header() {
	sw.w.Header().Set("Content-Type", "application/octet-stream")
	sw.w.Header().Set("Content-Disposition", `attachment; filename="berth-etcd.snapshot"`)
	sw.w.WriteHeader(http.StatusOK)
	sw.wrote = true
}

func (sw *snapshotWriter) Write(p []byte) (int, error) {
	if !sw.wrote {
		sw.header()
	}
	_ = sw.rc.SetWriteDeadline(time.Now().Add(sw.timeout))
	return sw.w.Write(p)
}

func countOnly() []clientv3.OpOption { return []clientv3.OpOption{clientv3.WithCountOnly()} }
