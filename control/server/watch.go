package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/store"
)

// bookmarkObject is the object of a BOOKMARK event: only the revision to
// resume from.
type bookmarkObject struct {
	Metadata struct {
		ResourceVersion int64 `json:"resourceVersion"`
	} `json:"metadata"`
}

// handleWatch streams newline-delimited api.WatchEvents: every change after
// ?resourceVersion=N (after the current revision when N is 0), a BOOKMARK
// every bookmark interval carrying the revision to resume from (the
// interval is advertised in the api.HeaderBookmarkInterval header), and an
// ERROR event (reason Gone after compaction) before the stream ends. The
// stream ends when the client goes, the server stops or the store's watch
// breaks.
func (s *Server) handleWatch(w http.ResponseWriter, r *http.Request, rt objectRoute) {
	opts, err := listOptions(r, rt)
	if err != nil {
		writeError(w, err)
		return
	}
	from, err := resourceVersionParam(r)
	if err != nil {
		writeError(w, err)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.stopCtx, cancel)
	defer stop()
	if from == 0 {
		rctx, rcancel := context.WithTimeout(ctx, s.requestTimeout)
		from, err = s.store.Revision(rctx)
		rcancel()
		if err != nil {
			writeError(w, err)
			return
		}
	}
	events, err := s.store.Watch(ctx, rt.ki, store.WatchOptions{
		Namespace: opts.Namespace, Labels: opts.Labels, Filter: opts.Filter, FromRevision: from,
	})
	if err != nil {
		writeError(w, err)
		return
	}
	s.metrics.watches.Inc()
	defer s.metrics.watches.Dec()

	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{}) // a watch outlives the read timeout
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set(api.HeaderBookmarkInterval, strconv.FormatFloat(s.bookmarkInterval.Seconds(), 'f', -1, 64))
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriter(w)
	send := func(ev api.WatchEvent) error {
		_ = rc.SetWriteDeadline(time.Now().Add(s.writeTimeout))
		data, err := json.Marshal(ev)
		if err != nil {
			return fmt.Errorf("encode watch event: %w", err)
		}
		if _, err := bw.Write(append(data, '\n')); err != nil {
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		return rc.Flush()
	}
	// The headers go out now, so the client knows the watch is established.
	_ = rc.Flush()

	last := from
	ticker := time.NewTicker(s.bookmarkInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			var b bookmarkObject
			b.Metadata.ResourceVersion = last
			raw, _ := json.Marshal(b)
			if err := send(api.WatchEvent{Type: api.Bookmark, Object: raw}); err != nil {
				return
			}
		case ev, ok := <-events:
			if !ok {
				return
			}
			var out api.WatchEvent
			switch {
			case ev.Type == api.Error || ev.Err != nil:
				st := toStatus(ev.Err)
				raw, _ := json.Marshal(st)
				_ = send(api.WatchEvent{Type: api.Error, Object: raw})
				return
			case ev.Type == api.Bookmark:
				var b bookmarkObject
				b.Metadata.ResourceVersion = ev.Revision
				raw, _ := json.Marshal(b)
				out = api.WatchEvent{Type: api.Bookmark, Object: raw}
			default:
				raw, err := json.Marshal(ev.Object)
				if err != nil {
					s.log.Error("encode watched object", "resource", rt.ki.Resource, "err", err)
					return
				}
				out = api.WatchEvent{Type: ev.Type, Object: raw}
			}
			if ev.Revision > last {
				last = ev.Revision
			}
			if err := send(out); err != nil {
				return
			}
		}
	}
}
