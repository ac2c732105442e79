package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"time"

	"github.com/berth-io/berth/control/api"
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

// handleSnapshot streams an etcd snapshot of the member this instance's
// client talks to; restore it with control/etcd's Restore (or etcdutl
// snapshot restore).
func (s *Server) handleSnapshot(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.stopCtx, cancel)
	defer stop()
	rd, err := s.store.Client().Snapshot(ctx)
	if err != nil {
		writeError(w, fmt.Errorf("start etcd snapshot: %w", err))
		return
	}
	defer rd.Close()
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="berth-etcd.snapshot"`)
	buf := make([]byte, 256<<10)
	wrote := false
	for {
		n, rerr := rd.Read(buf)
		if n > 0 {
			if !wrote {
				w.WriteHeader(http.StatusOK)
				wrote = true
			}
			_ = rc.SetWriteDeadline(time.Now().Add(s.writeTimeout))
			if _, err := w.Write(buf[:n]); err != nil {
				return
			}
		}
		if rerr == io.EOF {
			if !wrote {
				w.WriteHeader(http.StatusOK)
			}
			return
		}
		if rerr != nil {
			if !wrote {
				writeError(w, fmt.Errorf("read etcd snapshot: %w", rerr))
			} else {
				// The client sees a truncated body: abort the response so
				// it cannot mistake it for a whole snapshot.
				s.log.Error("etcd snapshot broke off", "err", rerr)
				panic(http.ErrAbortHandler)
			}
			return
		}
	}
}

func countOnly() []clientv3.OpOption { return []clientv3.OpOption{clientv3.WithCountOnly()} }
